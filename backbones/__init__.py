"""Point-cloud backbones behind one interface: points (B, N, 3) -> BackboneOutput."""

from backbones.base import BackboneOutput, PointBackbone
from backbones.point_vit import PointViT

__all__ = ["BackboneOutput", "PointBackbone", "PointViT"]
