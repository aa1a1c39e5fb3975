"""Batched point-cloud augmentations, one random draw per cloud, on any device."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class AugmentConfig:
    """Per-crop augmentation (DESIGN.md defaults)."""

    scale: tuple[float, float] = (0.8, 1.25)
    """Scale range, drawn per axis (anisotropic) unless ``isotropic_scale``."""
    rotate_up: bool = True
    """Random rotation about the up axis."""
    up_axis: int = 1
    """Index of the up axis (1 = y, the ModelNet40 h5 convention)."""
    translate: float = 0.1
    """Uniform translation in [-t, t] per axis."""
    jitter_sigma: float = 0.01
    jitter_clip: float = 0.05
    isotropic_scale: bool = False
    """One scale for all three axes (PointNet++'s ``random_scale_point_cloud``, the part-segmentation recipes')."""


def normalize_unit_sphere(points: Tensor) -> Tensor:
    """Centre each cloud (B, N, 3) at its centroid and scale it to max norm 1.

    The rule of :func:`datamodules.dataset.normalize_unit_sphere` (one numpy cloud, as a data set
    reads it) for a batch of tensors on the training device, where the crops are made.
    """
    centered = points - points.mean(dim=1, keepdim=True)
    radius = centered.norm(dim=-1).amax(dim=1).clamp_min(1e-8)
    return centered / radius[:, None, None]


def rotation_about_axis(angles: Tensor, axis: int) -> Tensor:
    """(B,) angles -> (B, 3, 3) rotation matrices about coordinate ``axis``."""
    c, s = torch.cos(angles), torch.sin(angles)
    i, j = [a for a in range(3) if a != axis]
    rot = torch.zeros(angles.shape[0], 3, 3, device=angles.device, dtype=angles.dtype)
    rot[:, axis, axis] = 1.0
    rot[:, i, i] = c
    rot[:, i, j] = -s
    rot[:, j, i] = s
    rot[:, j, j] = c
    return rot


def augment(points: Tensor, cfg: AugmentConfig, generator: torch.Generator | None = None) -> Tensor:
    """Scale, rotate about the up axis, translate and jitter a batch (B, N, 3)."""
    b, n, _ = points.shape
    dev, dt = points.device, points.dtype

    def rand(*shape: int) -> Tensor:
        return torch.rand(*shape, device=dev, dtype=dt, generator=generator)

    lo, hi = cfg.scale
    out = points * (lo + (hi - lo) * rand(b, 1, 1 if cfg.isotropic_scale else 3))
    if cfg.rotate_up:
        out = out @ rotation_about_axis(2 * math.pi * rand(b), cfg.up_axis).transpose(1, 2)
    if cfg.translate > 0:
        out = out + (2 * rand(b, 1, 3) - 1) * cfg.translate
    if cfg.jitter_sigma > 0:
        noise = torch.randn(b, n, 3, device=dev, dtype=dt, generator=generator) * cfg.jitter_sigma
        out = out + noise.clamp(-cfg.jitter_clip, cfg.jitter_clip)
    return out
