"""PointNet (Qi et al. 2017) as self-supervised point-cloud papers use it as an encoder.

Shared MLP 3-64-64-64-128-1024 with BatchNorm and ReLU on every point, global max-pool
to a 1024-d feature (OcCo, STRL, CrossPoint). No T-Net by default; the input T-Net is an
option. BatchNorm makes the teacher's statistics matter: see ``lightning_modules.pretrain.ema``
(:func:`set_teacher_mode`) and ``model.sync_batchnorm`` for DDP.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from backbones.base import BackboneOutput, PointBackbone
from backbones.max_pool import max_pool
from backbones.pointwise import PointwiseLinear
from backbones.tnet import TNet


class PointNet(PointBackbone):
    """Points ``(B, N, 3)`` -> global max-pooled feature ``(B, dims[-1])``.

    Args:
        dims: widths of the shared MLP after the 3 input coordinates.
        input_transform: predict and apply PointNet's 3x3 input alignment (T-Net) first.
    """

    def __init__(self, dims: tuple[int, ...] = (64, 64, 64, 128, 1024), input_transform: bool = False) -> None:
        super().__init__()
        if not dims:
            raise ValueError("PointNet: dims needs at least one width")
        self.dims = tuple(dims)
        self.input_transform = input_transform
        self.out_dim = dims[-1]
        self.tnet = TNet(3) if input_transform else None
        widths = [3, *dims]
        self.mlp = nn.Sequential(*(PointwiseLinear(a, b, nn.ReLU()) for a, b in zip(widths[:-1], widths[1:])))

    @property
    def point_feature_dim(self) -> int:
        """Width of :meth:`point_features`: every layer's output."""
        return sum(self.dims)

    def _layers(self, points: Tensor) -> list[Tensor]:
        """The output (B, N, width) of every layer of the shared MLP."""
        if points.ndim != 3 or points.shape[-1] != 3:
            raise ValueError(f"PointNet expects points of shape (B, N, 3), got {tuple(points.shape)}")
        if self.tnet is not None:
            points = torch.bmm(points, self.tnet(points))
        outputs, x = [], points
        for layer in self.mlp:
            x = layer(x)
            outputs.append(x)
        return outputs

    def forward(self, points: Tensor, return_attention: bool = False) -> BackboneOutput:
        """(B, N, 3) -> global feature (B, C); tokens are the per-point features (B, N, C)."""
        per_point = self._layers(points)[-1]
        return BackboneOutput(global_feature=max_pool(per_point, dim=1), tokens=per_point)

    def point_features(self, points: Tensor) -> Tensor:
        """(B, N, sum(dims)): every layer's per-point output concatenated (PointNet's segmentation skips).

        The last ``dims[-1]`` channels are ``forward(points).tokens``.
        """
        return torch.cat(self._layers(points), dim=-1)
