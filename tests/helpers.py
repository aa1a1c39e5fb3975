"""Tiny model / data builders shared by the tests."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl

from backbones import PointViT
from datamodules import CropSpec, MultiCropConfig, PointCloudDataModule, PointCloudSet
from lightning_modules.dwc import DistillationWithContrast, OptimConfig
from lightning_modules.heads import HeadConfig


def tiny_module(**optim: float) -> DistillationWithContrast:
    """A PoinT-ViT small enough to train a few steps in a second."""
    return DistillationWithContrast(
        backbone=PointViT(embed_dim=32, depth=1, num_heads=2, group_size=8, encoder_dims=(16, 32)),
        head=HeadConfig(out_dim=64, hidden_dim=64, bottleneck_dim=32, contrast_dim=16),
        optim=OptimConfig(**{"warmup_epochs": 1, **optim}),
        batch_size=4,
    )


def tiny_data(root: Path | None = None, batch_size: int = 4, dataset: PointCloudSet | None = None) -> PointCloudDataModule:
    """Multi-crop data from a fixture folder (or data set): 2×128 global, 2×32 local crops."""
    return PointCloudDataModule(
        dataset=dataset,
        root=None if root is None else str(root),
        batch_size=batch_size,
        num_points=512,
        crops=MultiCropConfig(global_crops=CropSpec(2, 128, (0.5, 1.0)), local_crops=CropSpec(2, 32, (0.1, 0.4))),
    )


def tiny_trainer(tmp_path: Path, **kwargs) -> pl.Trainer:
    """CPU trainer without logger, progress bar or checkpoints."""
    defaults = dict(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
    )
    return pl.Trainer(**{**defaults, **kwargs})
