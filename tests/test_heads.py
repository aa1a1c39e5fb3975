"""The DINO head: sizes, normalised outputs, and what its BatchNorm option is for."""

from __future__ import annotations

import math

import torch
from torch import nn

from lightning_modules.pretrain.heads import DINOHead, HeadConfig
from lightning_modules.pretrain.losses import DistillationLoss


def _head(**kw) -> DINOHead:
    torch.manual_seed(0)
    return DINOHead(32, HeadConfig(out_dim=128, hidden_dim=64, bottleneck_dim=16, contrast_dim=8, **kw))


def test_head_shapes_and_unit_embedding() -> None:
    out = _head()(torch.randn(5, 32))
    assert out.logits.shape == (5, 128) and out.embedding.shape == (5, 8)
    torch.testing.assert_close(out.embedding.norm(dim=-1), torch.ones(5))
    assert out.logits.abs().max() <= 1.0 + 1e-5  # cosines: unit bottleneck, unit prototypes


def test_batchnorm_head_places_a_norm_after_each_hidden_linear_only() -> None:
    mlp = _head(use_bn=True).mlp
    kinds = [type(m) for m in mlp]
    assert kinds == [nn.Linear, nn.BatchNorm1d, nn.GELU, nn.Linear, nn.BatchNorm1d, nn.GELU, nn.Linear]
    assert not any(isinstance(m, nn.BatchNorm1d) for m in _head().mlp)


def test_batchnorm_head_makes_the_centred_teacher_informative_for_near_identical_features() -> None:
    """Features sharing one large component (a fresh backbone's) give a near-uniform centred
    teacher without BatchNorm and a clearly peaked one with it."""
    torch.manual_seed(1)
    feats = 5.0 * torch.randn(1, 32) + 0.05 * torch.randn(64, 32)
    entropy = {}
    for use_bn in (False, True):
        head = _head(use_bn=use_bn).train()
        logits = head(feats).logits
        dino = DistillationLoss(128)
        dino.center.copy_(logits.mean(0, keepdim=True))
        p = dino.teacher_probs(logits.detach(), 0.04)
        entropy[use_bn] = float(-(p * p.clamp_min(1e-12).log()).sum(-1).mean()) / math.log(128)
    assert entropy[False] > 0.95 and entropy[True] < 0.8
