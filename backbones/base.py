"""The interface every point-cloud backbone implements.

Points ``(B, N, 3)`` go in; a global feature ``(B, C)`` comes out, plus the token
sequence and last-block attention where the backbone has them. PoinT-ViT, PointNet and
DGCNN all fit this, so the method, the heads and the probe never depend on which one
is used.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn


@dataclass
class BackboneOutput:
    """What a backbone returns for a batch of clouds."""

    global_feature: Tensor
    """(B, C) feature of each cloud: the head's input and the probe's feature."""
    tokens: Tensor | None = None
    """(B, T, D) output tokens (ViT: [CLS] first), or None for backbones without tokens."""
    attention: Tensor | None = None
    """(B, heads, T, T) softmax attention of the last block, when asked for."""
    centers: Tensor | None = None
    """(B, M, 3) patch centres the tokens belong to (ViT), for attention pictures."""


class PointBackbone(nn.Module):
    """Base class: subclasses set ``out_dim`` and implement :meth:`forward`."""

    out_dim: int

    def forward(self, points: Tensor, return_attention: bool = False) -> BackboneOutput:
        raise NotImplementedError
