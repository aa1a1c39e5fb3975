"""A shared per-point layer: linear -> BatchNorm -> activation, the same for every point.

Channels-last (``(..., C)``) so it is a plain matrix product on CPU and GPU; it equals
PointNet's ``Conv1d(kernel_size=1)`` + ``BatchNorm1d`` on ``(B, C, N)``: the BatchNorm
statistics are taken over every point of every cloud in the batch.
"""

from __future__ import annotations

from torch import Tensor, nn


class PointwiseLinear(nn.Module):
    """``(..., in_dim) -> (..., out_dim)``: linear (no bias, BatchNorm has one), BatchNorm, activation.

    Args:
        in_dim: input channels.
        out_dim: output channels.
        activation: applied after the norm; ``None`` for none.
    """

    def __init__(self, in_dim: int, out_dim: int, activation: nn.Module | None = None) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim, bias=False)
        self.norm = nn.BatchNorm1d(out_dim)
        self.act = activation if activation is not None else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """Normalise over all leading dimensions (every point of every cloud) per channel."""
        lead = x.shape[:-1]
        y = self.norm(self.linear(x).reshape(-1, self.norm.num_features))
        return self.act(y).reshape(*lead, -1)
