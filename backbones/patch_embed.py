"""Mini-PointNet patch embedding (Point-BERT / Point-MAE style)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from backbones.max_pool import max_pool


class MiniPointNet(nn.Module):
    """Embed each patch of k points to one token of width ``embed_dim``.

    Shared MLP -> max-pool -> concat the pooled feature to every point -> MLP -> max-pool.
    LayerNorm instead of BatchNorm, so student and teacher behave the same in train and
    eval mode and nothing depends on batch statistics across crops or ranks.

    The first linear layer after the concat, ``W·[pooled; f] + b``, is computed as
    ``(W_pooled·pooled + b) + W_f·f``: the pooled half once per patch instead of once per
    point (the same function and parameters, k times fewer products for that half; it was
    the largest matrix product of the step).
    """

    def __init__(self, embed_dim: int, hidden_dims: tuple[int, int] = (128, 256)) -> None:
        super().__init__()
        h1, h2 = hidden_dims
        self.first = nn.Sequential(nn.Linear(3, h1), nn.LayerNorm(h1), nn.GELU(), nn.Linear(h1, h2))
        self.second = nn.Sequential(
            nn.Linear(2 * h2, 2 * h2), nn.LayerNorm(2 * h2), nn.GELU(), nn.Linear(2 * h2, embed_dim)
        )

    def forward(self, neighborhoods: Tensor) -> Tensor:
        """(B, M, k, 3) relative patch coordinates -> (B, M, embed_dim) tokens."""
        f = self.first(neighborhoods)
        pooled = max_pool(f, dim=2, keepdim=True)
        concat_linear, h2 = self.second[0], f.shape[-1]
        x = F.linear(f, concat_linear.weight[:, h2:]) + F.linear(
            pooled, concat_linear.weight[:, :h2], concat_linear.bias
        )
        return max_pool(self.second[1:](x), dim=2)
