"""Multi-crop views of point clouds, made as batched tensor ops on the training device.

A crop picks a random seed point, keeps the k points nearest to it (k drawn per cloud as
a fraction of N), resamples them to a fixed count, re-centres and re-scales the crop to
the unit sphere (the 3D analogue of resizing an image crop) and augments it. The teacher
sees the G global crops, the student the global and the L local ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from backbones.grouping import gather_points
from datamodules.views.augment import AugmentConfig, augment, normalize_unit_sphere


@dataclass
class CropSpec:
    """One kind of crop: how many, how large a neighbourhood, how many points out."""

    num_crops: int
    num_points: int
    scale: tuple[float, float]
    """Fraction of the source cloud's points kept around the seed, U(lo, hi)."""


@dataclass
class MultiCropConfig:
    """The multi-crop recipe (DESIGN.md defaults: 2×1024 at 50–100 %, 6×256 at 10–40 %)."""

    global_crops: CropSpec = field(default_factory=lambda: CropSpec(2, 1024, (0.5, 1.0)))
    local_crops: CropSpec = field(default_factory=lambda: CropSpec(6, 256, (0.1, 0.4)))
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    normalize: bool = True
    """Re-centre and re-scale every crop to the unit sphere before augmenting it."""

    def validate(self, prefix: str = "data.crops") -> None:
        """Raise one ValueError naming the first bad field."""
        g, loc = self.global_crops, self.local_crops
        if g.num_crops < 1:
            raise ValueError(f"{prefix}.global_crops.num_crops must be >= 1 (the teacher sees the global crops)")
        if g.num_crops + loc.num_crops < 2:
            raise ValueError(
                f"{prefix}.local_crops.num_crops must be >= 1 when there is a single global crop "
                "(every loss term pairs a student view with a *different* teacher view)"
            )
        for name, spec in (("global_crops", g), ("local_crops", loc)):
            if loc.num_crops == 0 and name == "local_crops":
                continue
            if spec.num_points < 1:
                raise ValueError(f"{prefix}.{name}.num_points must be >= 1, got {spec.num_points}")
            lo, hi = spec.scale
            if not 0.0 < lo <= hi <= 1.0:
                raise ValueError(f"{prefix}.{name}.scale must satisfy 0 < lo <= hi <= 1, got {list(spec.scale)}")
        lo, hi = self.augment.scale
        if not 0.0 < lo <= hi:
            raise ValueError(f"{prefix}.augment.scale must satisfy 0 < lo <= hi, got {list(self.augment.scale)}")


def crop_indices(
    points: Tensor, spec: CropSpec, generator: torch.Generator | None = None, num_crops: int = 1
) -> Tensor:
    """Indices (num_crops·B, spec.num_points) into ``points`` (B, N, 3): ``num_crops`` crops per cloud.

    Row ``c·B + b`` is crop ``c`` of cloud ``b``; all crops are drawn in one batched set of
    ops. The k nearest neighbours of a random seed point are the crop; ``num_points`` of
    them are drawn without replacement, or all of them plus random repeats when k is smaller.
    """
    b, n, _ = points.shape
    dev = points.device
    rows = num_crops * b
    lo, hi = spec.scale
    if not 0.0 < lo <= hi <= 1.0:
        raise ValueError(f"crop scale must satisfy 0 < lo <= hi <= 1, got {spec.scale}")
    frac = lo + (hi - lo) * torch.rand(rows, device=dev, generator=generator)
    k = (frac * n).round().long().clamp(1, n)
    seed = torch.randint(0, n, (num_crops, b), device=dev, generator=generator)
    pts = points.float()
    seed_xyz = pts[torch.arange(b, device=dev), seed]  # (num_crops, B, 3)
    dist = (pts - seed_xyz[:, :, None]).square().sum(-1).flatten(0, 1)  # (num_crops·B, N)
    by_distance = dist.argsort(dim=1)
    # Random order among the k nearest (ranks >= k pushed behind every rank < k).
    ranks = torch.arange(n, device=dev)
    keys = torch.rand(rows, n, device=dev, generator=generator) + (ranks >= k[:, None]).float() * 2.0
    order = keys.argsort(dim=1)
    slot = torch.arange(spec.num_points, device=dev)
    slot = torch.where(slot < k[:, None], slot, slot % k[:, None])
    return torch.gather(by_distance, 1, torch.gather(order, 1, slot))


class MultiCrop:
    """Makes ``{"global": (G, B, n_g, 3), "local": (L, B, n_l, 3)}`` from a batch of clouds."""

    def __init__(self, config: MultiCropConfig | None = None) -> None:
        self.config = config or MultiCropConfig()
        self.config.validate()

    def _crops(self, points: Tensor, spec: CropSpec, generator: torch.Generator | None) -> Tensor:
        """The (C, B, n, 3) crops of one kind: all C·B of them in one batch, no loop over crops."""
        c, b = spec.num_crops, points.shape[0]
        if c == 0:
            return points.new_zeros(0, b, spec.num_points, 3)
        idx = crop_indices(points, spec, generator, num_crops=c)  # (C·B, n)
        crops = gather_points(points.repeat(c, 1, 1), idx)
        if self.config.normalize:
            crops = normalize_unit_sphere(crops)
        return augment(crops, self.config.augment, generator).unflatten(0, (c, b))

    def __call__(self, points: Tensor, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Global and local crops of a batch (B, N, 3)."""
        return {
            "global": self._crops(points, self.config.global_crops, generator),
            "local": self._crops(points, self.config.local_crops, generator),
        }
