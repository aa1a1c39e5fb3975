"""Feature propagation by inverse-distance weighting (PointNet++'s ``three_interpolate``), pure batched torch.

Each query point gets the weighted mean of the features at its ``k`` nearest positions
(patch centres of a PoinT-ViT, or the points a per-point backbone saw), with weights
``1 / (d² + eps)`` normalised to sum to 1 — the squared distance, as PointNet++'s
``PointNetFeaturePropagation`` (and so Point-MAE's segmentation) uses. Distances are taken
in float32 by direct differences (no matrix-product shortcut), also under mixed precision,
since the choice of neighbours is sensitive to rounding.
"""

from __future__ import annotations

import torch
from torch import Tensor

from backbones.grouping import gather_points


def idw_propagate(query: Tensor, positions: Tensor, features: Tensor, k: int = 3, eps: float = 1e-8) -> Tensor:
    """(B, Q, 3) query points, (B, M, 3) positions, (B, M, C) features -> (B, Q, C) interpolated features.

    Uses the ``min(k, M)`` nearest positions of each query point.
    """
    if query.shape[0] != positions.shape[0] or positions.shape[:2] != features.shape[:2]:
        raise ValueError(
            f"idw_propagate: query {tuple(query.shape)}, positions {tuple(positions.shape)} and features "
            f"{tuple(features.shape)} do not fit (B, Q, 3), (B, M, 3), (B, M, C)"
        )
    dist = torch.cdist(query.float(), positions.float(), compute_mode="donot_use_mm_for_euclid_dist").square()
    nearest, index = dist.topk(min(k, positions.shape[1]), dim=-1, largest=False, sorted=True)  # (B, Q, k)
    weights = 1.0 / (nearest + eps)
    weights = weights / weights.sum(dim=-1, keepdim=True)
    neighbours = gather_points(features, index)  # (B, Q, k, C)
    return (neighbours * weights.unsqueeze(-1).to(features.dtype)).sum(dim=2)
