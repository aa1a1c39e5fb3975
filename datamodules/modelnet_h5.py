"""Reader for the ModelNet40 ``modelnet40_ply_hdf5_2048`` layout.

``shape_names.txt`` (one class per line), ``train_files.txt`` / ``test_files.txt`` (one
shard per line; the official release writes paths like
``data/modelnet40_ply_hdf5_2048/ply_data_train0.h5``, so shards are found by base name
inside the root) and shards with ``data`` (n, P, 3) float and ``label`` (n, 1) integer.
The embedded synthetic data set is cached in the same layout, so this reader serves both.
Every problem is reported as one :class:`DataError` naming the file and the field.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datamodules.errors import DataError

SPLIT_FILES = {"train": "train_files.txt", "test": "test_files.txt"}


@dataclass
class PointCloudSplit:
    """One split held in memory: clouds, labels and class names."""

    points: np.ndarray
    """(n, P, 3) float32."""
    labels: np.ndarray
    """(n,) int64."""
    class_names: list[str]

    def __len__(self) -> int:
        return len(self.points)


def read_class_names(root: Path) -> list[str]:
    """Class names from ``shape_names.txt``."""
    path = root / "shape_names.txt"
    if not path.is_file():
        raise DataError(f"{path}: missing (expected one class name per line)")
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise DataError(f"{path}: no class names in file")
    return names


def shard_paths(root: Path, split: str) -> list[Path]:
    """The shards a split lists, resolved by base name inside ``root``."""
    if split not in SPLIT_FILES:
        raise DataError(f"unknown split {split!r}; expected one of {sorted(SPLIT_FILES)}")
    listing = root / SPLIT_FILES[split]
    if not listing.is_file():
        raise DataError(f"{listing}: missing split file (the {split} split lists its .h5 shards here)")
    names = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    if not names:
        raise DataError(f"{listing}: lists no shards")
    paths = []
    for name in names:
        path = root / os.path.basename(name)
        if not path.is_file():
            raise DataError(f"{path}: listed in {listing.name} as {name!r} but not found")
        paths.append(path)
    return paths


def read_shard(path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """``data`` and ``label`` of one shard, validated."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            for key in ("data", "label"):
                if key not in f:
                    raise DataError(f"{path}: missing dataset {key!r} (found {sorted(f.keys())})")
            data = np.asarray(f["data"][...])
            label = np.asarray(f["label"][...])
    except DataError:
        raise
    except (OSError, KeyError, ValueError) as err:
        raise DataError(f"{path}: not a readable HDF5 file ({err})") from None
    if data.ndim != 3 or data.shape[-1] != 3:
        raise DataError(f"{path}: field 'data' must have shape (n, points, 3), got {data.shape}")
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise DataError(f"{path}: field 'data' is empty, shape {data.shape}")
    if not np.issubdtype(data.dtype, np.floating):
        raise DataError(f"{path}: field 'data' must be floating point, got {data.dtype}")
    label = label.reshape(-1) if label.ndim == 2 and label.shape[1] == 1 else label
    if label.ndim != 1 or label.shape[0] != data.shape[0]:
        raise DataError(f"{path}: field 'label' must have shape ({data.shape[0]}, 1), got {label.shape}")
    if not np.issubdtype(label.dtype, np.integer):
        raise DataError(f"{path}: field 'label' must be integer, got {label.dtype}")
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).any(axis=(1, 2)).sum())
        raise DataError(f"{path}: field 'data' has NaN or Inf coordinates in {bad} clouds")
    if label.size and (label.min() < 0 or label.max() >= num_classes):
        raise DataError(
            f"{path}: field 'label' has values in [{label.min()}, {label.max()}], "
            f"outside the {num_classes} classes of shape_names.txt"
        )
    return data.astype(np.float32, copy=False), label.astype(np.int64)


def read_modelnet_h5(root: str | os.PathLike, split: str) -> PointCloudSplit:
    """Load one split of a ModelNet40-HDF5-layout folder into memory."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: data root does not exist or is not a directory")
    names = read_class_names(root)
    datas, labels = [], []
    for path in shard_paths(root, split):
        d, l = read_shard(path, len(names))
        if datas and d.shape[1] != datas[0].shape[1]:
            raise DataError(f"{path}: field 'data' has {d.shape[1]} points per cloud, other shards {datas[0].shape[1]}")
        datas.append(d)
        labels.append(l)
    return PointCloudSplit(np.concatenate(datas), np.concatenate(labels), names)
