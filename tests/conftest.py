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


@pytest.fixture()
def tiny_modelnet(tmp_path: Path) -> Path:
    """A 3-class ModelNet40-HDF5 folder with 1024-point clouds."""
    rng = np.random.default_rng(0)
    return write_modelnet_h5(
        tmp_path / "modelnet40_ply_hdf5_2048",
        ["sphere", "ellipsoid", "cigar"],
        {"train": blob_clouds(24, 1024, 3, rng), "test": blob_clouds(12, 1024, 3, rng)},
    )
