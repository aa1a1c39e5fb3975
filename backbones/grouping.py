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

    One batched loop for all clouds, six ATen ops an iteration: pick the new point's
    coordinates (``index``), its squared distances (``sub``, ``square``, ``sum``), the running
    minimum over the chosen set (``minimum``) and the next pick (``argmax``). The picks are
    joined once at the end.
    """
    batch, n, _ = points.shape
    if num_samples > n:
        raise ValueError(f"farthest_point_sample: asked for {num_samples} samples from {n} points")
    pts = points.float()
    if random_start:
        current = torch.randint(0, n, (batch,), device=points.device).unsqueeze(1)
    else:
        current = torch.zeros(batch, 1, dtype=torch.long, device=points.device)
    rows = torch.arange(batch, device=points.device).unsqueeze(1)
    picks = [current]
    min_dist: Tensor | None = None
    for _ in range(num_samples - 1):
        dist = (pts - pts[rows, current]).square().sum(-1)  # (B, N): the (B, 1, 3) pick broadcast
        min_dist = dist if min_dist is None else torch.minimum(min_dist, dist)
        current = min_dist.argmax(-1, keepdim=True)
        picks.append(current)
    return torch.cat(picks, dim=1)


def pairwise_sq_dist(queries: Tensor, points: Tensor) -> Tensor:
    """Squared Euclidean distances ``(B, M, N)`` in float32, summed from the differences.

    Never the matrix-product expansion ``|q|² + |p|² - 2 q·p`` that ``torch.cdist`` picks
    for large inputs: it cancels catastrophically for near-duplicate points far from the
    origin, and a matmul may run in TF32 on a GPU. Each (query, point) pair gets
    ``(q - p)²`` summed over the coordinates, exactly as a brute-force loop would.
    """
    return (queries.float().unsqueeze(2) - points.float().unsqueeze(1)).square().sum(-1)


def knn(queries: Tensor, points: Tensor, k: int) -> Tensor:
    """Indices ``(B, M, k)`` of the ``k`` points nearest each query, nearest first.

    Distances from :func:`pairwise_sq_dist` (exact, no matrix product) for 3-D points; for
    feature spaces (DGCNN's dynamic graph) ``torch.cdist`` without its matrix-product path,
    which needs no ``(B, M, N, C)`` difference tensor.
    """
    if k > points.shape[1]:
        raise ValueError(f"knn: k={k} is larger than the {points.shape[1]} points available")
    if points.shape[-1] <= 3:
        dist = pairwise_sq_dist(queries, points)
    else:
        dist = torch.cdist(queries.float(), points.float(), compute_mode="donot_use_mm_for_euclid_dist")
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
