"""PoinT-ViT: the point-cloud Vision Transformer of Distillation with Contrast.

FPS + kNN patches -> mini-PointNet tokens + positional MLP of the patch centres ->
[CLS] + pre-norm transformer -> global feature concat([CLS], max over patch tokens).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from backbones.base import BackboneOutput, PointBackbone
from backbones.grouping import group_patches
from backbones.max_pool import max_pool
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

    def _embed(self, points: Tensor, patches: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """(B, N, 3) points -> the transformer's input ([CLS] + patch tokens, (B, 1+M, D)) and the centres (B, M, 3)."""
        if points.ndim != 3 or points.shape[-1] != 3:
            raise ValueError(f"PointViT expects points of shape (B, N, 3), got {tuple(points.shape)}")
        if patches is not None and patches[1].shape[:2] != (points.shape[0], self.num_patches(points.shape[1])):
            raise ValueError(f"patches of shape {tuple(patches[1].shape)} do not belong to points {tuple(points.shape)}")
        neighborhoods, centers = patches if patches is not None else self.group(points)
        tokens = self.patch_embed(neighborhoods.to(points.dtype)) + self.pos_embed(centers.to(points.dtype))
        b = tokens.shape[0]
        return torch.cat([(self.cls_token + self.cls_pos).expand(b, -1, -1), tokens], dim=1), centers

    def forward(
        self, points: Tensor, return_attention: bool = False, patches: tuple[Tensor, Tensor] | None = None
    ) -> BackboneOutput:
        """(B, N, 3) points -> global feature (B, 2D), tokens (B, 1+M, D), attention.

        ``patches``: :meth:`group` of these points, when already computed (shared by networks
        that see the same points).
        """
        x, centers = self._embed(points, patches)
        attn = None
        for i, block in enumerate(self.blocks):
            x, a = block(x, return_attention and i == len(self.blocks) - 1)
            attn = a if a is not None else attn
        x = self.norm(x)
        feature = torch.cat([x[:, 0], max_pool(x[:, 1:], dim=1)], dim=-1)
        return BackboneOutput(global_feature=feature, tokens=x, attention=attn, centers=centers)

    def block_tokens(self, points: Tensor, blocks: Sequence[int]) -> tuple[list[Tensor], Tensor]:
        """The patch tokens after each of ``blocks`` (0-based), through the final LayerNorm, and the patch centres.

        Returns a list of (B, M, D) tensors ([CLS] dropped; Point-MAE's segmentation
        normalises the blocks it fetches with the encoder's last norm, as here) and the
        (B, M, 3) centres. ``block_tokens(p, [depth - 1])[0]`` is ``forward(p).tokens[:, 1:]``.
        Blocks after the last one asked for are not run.
        """
        wanted = [int(b) for b in blocks]
        if not wanted or min(wanted) < 0 or max(wanted) >= len(self.blocks):
            raise ValueError(f"blocks must be indices in [0, {len(self.blocks)}), got {list(blocks)}")
        x, centers = self._embed(points)
        out: dict[int, Tensor] = {}
        for i, block in enumerate(self.blocks[: max(wanted) + 1]):
            x, _ = block(x)
            if i in wanted:
                out[i] = self.norm(x)[:, 1:]
        return [out[i] for i in wanted], centers


def evenly_spaced_blocks(depth: int, count: int = 3) -> list[int]:
    """``count`` block indices spread over ``depth`` blocks, the last included (12 blocks: 3, 7, 11, as Point-MAE)."""
    if depth < 1 or count < 1:
        raise ValueError(f"need depth >= 1 and count >= 1, got {depth}, {count}")
    return [max(0, math.floor(depth * (k + 1) / count + 0.5) - 1) for k in range(count)]


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
