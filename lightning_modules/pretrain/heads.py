"""Projection heads: the DINO head, plus the small projection the contrastive term uses."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm


@dataclass
class HeadConfig:
    """DINO head sizes (DESIGN.md defaults) and the contrastive embedding width."""

    out_dim: int = 4096
    """K, the number of prototypes the distillation loss is computed over."""
    hidden_dim: int = 2048
    bottleneck_dim: int = 256
    num_layers: int = 3
    use_bn: bool = False
    """BatchNorm after each hidden linear layer of the MLP (DINO's ``use_bn``). It removes the
    component all samples share, which dominates a freshly initialised backbone's features,
    so the centred teacher is not near-uniform from the start."""
    norm_last_layer: bool = True
    """Fix the weight-norm gain of the last layer to 1 (DINO's default, more stable)."""
    contrast_dim: int = 128
    """Width of the L2-normalised embedding the contrastive loss compares."""


@dataclass
class HeadOutput:
    """Logits for distillation, normalised embedding for contrast."""

    logits: Tensor
    embedding: Tensor


class DINOHead(nn.Module):
    """MLP (GELU) -> bottleneck -> L2-normalise -> weight-normalised linear to K logits.

    Also projects the bottleneck to a small L2-normalised embedding for the contrastive
    loss, so both losses share the backbone and the MLP.
    """

    def __init__(self, in_dim: int, config: HeadConfig | None = None) -> None:
        super().__init__()
        cfg = config or HeadConfig()
        layers: list[nn.Module] = []
        dims = [in_dim] + [cfg.hidden_dim] * (cfg.num_layers - 1) + [cfg.bottleneck_dim]
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(dims) - 2:
                if cfg.use_bn:
                    layers.append(nn.BatchNorm1d(b))
                layers.append(nn.GELU())
        self.mlp = nn.Sequential(*layers)
        self.apply(_init_linear)
        self.last_layer = weight_norm(nn.Linear(cfg.bottleneck_dim, cfg.out_dim, bias=False))
        gain = self.last_layer.parametrizations.weight.original0
        with torch.no_grad():
            gain.fill_(1.0)
        gain.requires_grad = not cfg.norm_last_layer
        self.contrast = nn.Linear(cfg.bottleneck_dim, cfg.contrast_dim)
        _init_linear(self.contrast)

    def forward(self, x: Tensor) -> HeadOutput:
        """(B, in_dim) features -> logits (B, K) and embedding (B, contrast_dim)."""
        z = self.mlp(x)
        # The K logits are sharpened at a teacher temperature of 0.04: under bf16 autocast they are
        # computed in fp32 (bf16's 8-bit mantissa would round them before the softmax sees them).
        with torch.autocast(z.device.type, enabled=False):
            logits = self.last_layer(F.normalize(z.float(), dim=-1, eps=1e-6))
        embedding = F.normalize(self.contrast(z), dim=-1, eps=1e-6)
        return HeadOutput(logits=logits, embedding=embedding)


def _init_linear(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
