"""Backbone + head, applied to a stack of same-size views in one batched pass."""

from __future__ import annotations

from torch import Tensor, nn

from backbones.base import PointBackbone
from lightning_modules.heads import DINOHead, HeadConfig, HeadOutput


class Network(nn.Module):
    """One side of the student/teacher pair."""

    def __init__(self, backbone: PointBackbone, head: HeadConfig) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = DINOHead(backbone.out_dim, head)

    def forward(self, views: Tensor) -> HeadOutput:
        """(V, B, N, 3) views -> logits (V, B, K) and embeddings (V, B, E)."""
        v, b = views.shape[:2]
        out = self.head(self.backbone(views.flatten(0, 1)).global_feature)
        return HeadOutput(out.logits.unflatten(0, (v, b)), out.embedding.unflatten(0, (v, b)))
