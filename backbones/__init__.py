"""Point-cloud backbones behind one interface: points (B, N, 3) -> BackboneOutput."""

from backbones.base import BackboneOutput, PointBackbone
from backbones.point_vit import PointViT
from backbones.pretrained import load_pretrained

__all__ = ["BackboneOutput", "PointBackbone", "PointViT", "load_pretrained"]
