"""PointNet's T-Net: a small PointNet that predicts a ``d x d`` transform of its input."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from backbones.max_pool import max_pool
from backbones.pointwise import PointwiseLinear


class TNet(nn.Module):
    """Predict a ``(B, d, d)`` alignment matrix from clouds ``(B, N, d)`` (PointNet's input transform).

    Shared MLP 64-128-1024 -> max-pool -> FC 512-256 -> ``d·d``, all with BatchNorm and ReLU
    (Qi et al. 2017). The last layer starts at zero, so the transform starts as the identity.

    Args:
        dim: d, the channels of the input (3 for coordinates).
        mlp_dims: widths of the shared per-point MLP.
        fc_dims: widths of the fully connected layers after pooling.
    """

    def __init__(self, dim: int = 3, mlp_dims: tuple[int, ...] = (64, 128, 1024), fc_dims: tuple[int, ...] = (512, 256)) -> None:
        super().__init__()
        self.dim = dim
        widths = [dim, *mlp_dims]
        self.mlp = nn.Sequential(*(PointwiseLinear(a, b, nn.ReLU()) for a, b in zip(widths[:-1], widths[1:])))
        widths = [mlp_dims[-1], *fc_dims]
        self.fc = nn.Sequential(*(PointwiseLinear(a, b, nn.ReLU()) for a, b in zip(widths[:-1], widths[1:])))
        self.out = nn.Linear(widths[-1], dim * dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor) -> Tensor:
        """(B, N, d) -> (B, d, d): identity plus the predicted correction."""
        pooled = max_pool(self.mlp(x), dim=1)
        delta = self.out(self.fc(pooled)).view(-1, self.dim, self.dim)
        return delta + torch.eye(self.dim, device=x.device, dtype=delta.dtype)
