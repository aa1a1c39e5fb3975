"""Point-cloud backbones behind one interface: points (B, N, 3) -> BackboneOutput."""

from backbones.base import BackboneOutput, PointBackbone
from backbones.dgcnn import DGCNN
from backbones.point_vit import PointViT
from backbones.pointnet import PointNet
from backbones.pretrained_source import load_pretrained

__all__ = ["BackboneOutput", "DGCNN", "PointBackbone", "PointNet", "PointViT", "load_pretrained"]
