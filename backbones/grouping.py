"""Patch grouping for point transformers: farthest point sampling + k nearest neighbours.

Pure batched torch (no CUDA extension), so it runs on CPU and GPU alike. Distances are
always computed in float32, also under mixed precision, because neighbour order is
sensitive to rounding.
"""

from __future__ import annotations

import torch
from torch import Tensor


def farthest_point_sample(points: Tensor, num_samples: int, random_start: bool = False) -> Tensor:
    """Indices ``(B, num_samples)`` of points chosen by farthest point sampling.

    Starts at point 0 (or a random point) and repeatedly adds the point farthest from the
    chosen set. Returns distinct indices as long as the cloud has ``num_samples`` distinct
    points.
    """
    batch, n, _ = points.shape
    if num_samples > n:
        raise ValueError(f"farthest_point_sample: asked for {num_samples} samples from {n} points")
    pts = points.float()
    idx = torch.empty(batch, num_samples, dtype=torch.long, device=points.device)
    min_dist = torch.full((batch, n), float("inf"), device=points.device)
    if random_start:
        current = torch.randint(0, n, (batch,), device=points.device)
    else:
        current = torch.zeros(batch, dtype=torch.long, device=points.device)
    rows = torch.arange(batch, device=points.device)
    for i in range(num_samples):
        idx[:, i] = current
        dist = (pts - pts[rows, current].unsqueeze(1)).square().sum(-1)
        min_dist = torch.minimum(min_dist, dist)
        current = min_dist.argmax(-1)
    return idx


def knn(queries: Tensor, points: Tensor, k: int) -> Tensor:
    """Indices ``(B, M, k)`` of the ``k`` points nearest each query, nearest first."""
    if k > points.shape[1]:
        raise ValueError(f"knn: k={k} is larger than the {points.shape[1]} points available")
    dist = torch.cdist(queries.float(), points.float())
    return dist.topk(k, dim=-1, largest=False, sorted=True).indices


def gather_points(points: Tensor, idx: Tensor) -> Tensor:
    """Pick ``points[b, idx[b, ...]]`` for index tensors of any trailing shape."""
    batch = points.shape[0]
    flat = idx.reshape(batch, -1)
    out = torch.gather(points, 1, flat.unsqueeze(-1).expand(-1, -1, points.shape[-1]))
    return out.reshape(*idx.shape, points.shape[-1])


def group_patches(points: Tensor, num_groups: int, group_size: int) -> tuple[Tensor, Tensor]:
    """Split clouds into overlapping local patches.

    Returns ``(neighborhoods, centers)``: ``(B, M, k, 3)`` neighbour coordinates relative
    to their centre, and ``(B, M, 3)`` centres chosen by FPS.
    """
    center_idx = farthest_point_sample(points, num_groups)
    centers = gather_points(points, center_idx)
    neighbor_idx = knn(centers, points, group_size)
    neighborhoods = gather_points(points, neighbor_idx) - centers.unsqueeze(2)
    return neighborhoods, centers
