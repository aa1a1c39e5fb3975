"""Shared fixtures: CPU-only, offline W&B, small thread counts, tiny data in real layouts."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.layouts import blob_clouds, write_modelnet_h5

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
torch.set_num_threads(min(2, torch.get_num_threads()))


def _write_tiny_modelnet(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    return write_modelnet_h5(
        folder / "modelnet40_ply_hdf5_2048",
        ["sphere", "ellipsoid", "cigar"],
        {"train": blob_clouds(24, 1024, 3, rng), "test": blob_clouds(12, 1024, 3, rng)},
    )


@pytest.fixture()
def tiny_modelnet(tmp_path: Path) -> Path:
    """A 3-class ModelNet40-HDF5 folder with 1024-point clouds."""
    return _write_tiny_modelnet(tmp_path)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint of the tiny PoinT-ViT after two training steps (teacher and student differ)."""
    from tests.helpers import fit_seeded, tiny_data

    folder = tmp_path_factory.mktemp("tiny_checkpoint")
    _, trainer = fit_seeded(folder, tiny_data(_write_tiny_modelnet(folder)), limit_train_batches=2)
    path = folder / "tiny.ckpt"
    trainer.save_checkpoint(path)
    return path
