"""Shared fixtures: CPU-only, offline W&B, small thread counts, tiny data in real layouts."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
torch.set_num_threads(min(2, torch.get_num_threads()))


def write_modelnet_h5(root: Path, class_names: list[str], splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    """Write a folder in exactly the modelnet40_ply_hdf5_2048 layout."""
    import h5py

    root.mkdir(parents=True, exist_ok=True)
    (root / "shape_names.txt").write_text("\n".join(class_names) + "\n")
    for split, (data, label) in splits.items():
        name = f"ply_data_{split}0.h5"
        with h5py.File(root / name, "w") as f:
            f.create_dataset("data", data=data.astype(np.float32))
            f.create_dataset("label", data=label.astype(np.uint8).reshape(-1, 1))
        (root / f"{split}_files.txt").write_text(f"data/modelnet40_ply_hdf5_2048/{name}\n")
    return root


def blob_clouds(n: int, points: int, num_classes: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Easy labelled clouds: class c is an ellipsoid with axis ratios depending on c."""
    labels = np.arange(n) % num_classes
    x = rng.normal(size=(n, points, 3))
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    scales = np.stack([1.0 + 0.6 * labels, 1.0 + 0.3 * (labels % 2), np.ones(n)], axis=1)[:, None, :]
    x = x * scales
    x /= np.linalg.norm(x, axis=-1).max(axis=1)[:, None, None]
    return x.astype(np.float32), labels


@pytest.fixture()
def tiny_modelnet(tmp_path: Path) -> Path:
    """A 3-class ModelNet40-HDF5 folder with 1024-point clouds."""
    rng = np.random.default_rng(0)
    return write_modelnet_h5(
        tmp_path / "modelnet40_ply_hdf5_2048",
        ["sphere", "ellipsoid", "cigar"],
        {"train": blob_clouds(24, 1024, 3, rng), "test": blob_clouds(12, 1024, 3, rng)},
    )
