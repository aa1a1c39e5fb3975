"""PoinT-ViT: the point-cloud Vision Transformer of Distillation with Contrast.

FPS + kNN patches -> mini-PointNet tokens + positional MLP of the patch centres ->
[CLS] + pre-norm transformer -> global feature concat([CLS], max over patch tokens).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from backbones.base import BackboneOutput, PointBackbone
from backbones.grouping import group_patches
from backbones.patch_embed import MiniPointNet
from backbones.transformer import Block


class PointViT(PointBackbone):
    """Point-cloud ViT.

    Args:
        embed_dim: token width D. ``out_dim`` is 2·D (CLS and max-pooled tokens).
        depth: number of transformer blocks.
        num_heads: attention heads.
        mlp_ratio: hidden width of the block MLP relative to D.
        group_size: neighbours k per patch.
        points_per_patch: the number of patches is ``N // points_per_patch`` for a cloud of
            N points (64 for 1024, 16 for 256), so global and local crops are tokenised at
            the same spatial density.
        drop_path: stochastic depth rate of the last block (linearly increasing).
        encoder_dims: hidden widths of the mini-PointNet.
    """

    def __init__(
        self,
        embed_dim: int = 384,
        depth: int = 12,
        num_heads: int = 6,
        mlp_ratio: float = 4.0,
        group_size: int = 32,
        points_per_patch: int = 16,
        drop_path: float = 0.1,
        qkv_bias: bool = True,
        encoder_dims: tuple[int, int] = (128, 256),
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.out_dim = 2 * embed_dim
        self.depth = depth
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.group_size = group_size
        self.points_per_patch = points_per_patch
        self.drop_path = drop_path
        self.qkv_bias = qkv_bias
        self.encoder_dims = tuple(encoder_dims)
        self.patch_embed = MiniPointNet(embed_dim, encoder_dims)
        self.pos_embed = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, embed_dim))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.cls_pos = nn.Parameter(torch.zeros(1, 1, embed_dim))
        rates = torch.linspace(0, drop_path, depth).tolist()
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio, qkv_bias, r) for r in rates)
        self.norm = nn.LayerNorm(embed_dim)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.cls_pos, std=0.02)
        self.apply(_init_weights)

    def num_patches(self, num_points: int) -> int:
        """Patches used for a cloud of ``num_points`` points."""
        return max(1, num_points // self.points_per_patch)

    def group(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """FPS + kNN patches of (B, N, 3) points: ``(neighbourhoods (B, M, k, 3), centres (B, M, 3))``."""
        return group_patches(points, self.num_patches(points.shape[1]), min(self.group_size, points.shape[1]))

    def forward(
        self, points: Tensor, return_attention: bool = False, patches: tuple[Tensor, Tensor] | None = None
    ) -> BackboneOutput:
        """(B, N, 3) points -> global feature (B, 2D), tokens (B, 1+M, D), attention.

        ``patches``: :meth:`group` of these points, when already computed (shared by networks
        that see the same points).
        """
        if points.ndim != 3 or points.shape[-1] != 3:
            raise ValueError(f"PointViT expects points of shape (B, N, 3), got {tuple(points.shape)}")
        if patches is not None and patches[1].shape[:2] != (points.shape[0], self.num_patches(points.shape[1])):
            raise ValueError(f"patches of shape {tuple(patches[1].shape)} do not belong to points {tuple(points.shape)}")
        neighborhoods, centers = patches if patches is not None else self.group(points)
        tokens = self.patch_embed(neighborhoods.to(points.dtype)) + self.pos_embed(centers.to(points.dtype))
        b = tokens.shape[0]
        x = torch.cat([(self.cls_token + self.cls_pos).expand(b, -1, -1), tokens], dim=1)
        attn = None
        for i, block in enumerate(self.blocks):
            x, a = block(x, return_attention and i == len(self.blocks) - 1)
            attn = a if a is not None else attn
        x = self.norm(x)
        feature = torch.cat([x[:, 0], x[:, 1:].amax(dim=1)], dim=-1)
        return BackboneOutput(global_feature=feature, tokens=x, attention=attn, centers=centers)


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
