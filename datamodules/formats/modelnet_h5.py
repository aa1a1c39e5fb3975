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
from pathlib import Path

import numpy as np

from datamodules.dataset import CheckReport, PointCloudSet, PointCloudSplit, SplitSummary, existing_root
from datamodules.errors import DataError

SPLIT_FILES = {"train": "train_files.txt", "test": "test_files.txt"}


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


def read_shard(path: Path, num_classes: int, names_file: str = "shape_names.txt") -> tuple[np.ndarray, np.ndarray]:
    """``data`` and ``label`` of one shard (h5 file), validated."""
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
    except (OSError, KeyError, ValueError, RuntimeError) as err:
        raise DataError(f"{path}: not a readable HDF5 file, truncated or corrupt? ({err})") from None
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
            f"outside the {num_classes} classes of {names_file}"
        )
    return data.astype(np.float32, copy=False), label.astype(np.int64)


def read_shards(
    paths: list[Path], num_classes: int, problems: list[str] | None = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """Concatenated ``data`` and ``label`` of a split's shards, which must agree on points per cloud.

    A bad shard raises its DataError, or with ``problems`` is recorded there and left
    out (``None`` when no shard is usable), so ``check`` can list every bad shard.
    """
    datas, labels = [], []
    for path in paths:
        try:
            d, l = read_shard(path, num_classes)
            if datas and d.shape[1] != datas[0].shape[1]:
                raise DataError(
                    f"{path}: field 'data' has {d.shape[1]} points per cloud, other shards {datas[0].shape[1]}"
                )
        except DataError as err:
            if problems is None:
                raise
            problems.append(str(err))
            continue
        datas.append(d)
        labels.append(l)
    return (np.concatenate(datas), np.concatenate(labels)) if datas else None


def h5_row_names(paths: list[Path], root: Path) -> list[str]:
    """``<path relative to root>[<row>]`` for every row of the ``data`` field of each h5 file."""
    import h5py

    names = []
    for path in paths:
        with h5py.File(path, "r") as f:
            rows = int(f["data"].shape[0])
        rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
        names += [f"{rel}[{i}]" for i in range(rows)]
    return names


def read_modelnet_h5(root: str | os.PathLike, split: str) -> PointCloudSplit:
    """Load one split of a ModelNet40-HDF5-layout folder into memory."""
    root = existing_root(root)
    names = read_class_names(root)
    points, labels = read_shards(shard_paths(root, split), len(names))
    return PointCloudSplit(points, labels, names, source=str(root))


class ModelNet40H5(PointCloudSet):
    """ModelNet40 as ``modelnet40_ply_hdf5_2048`` ships it (12,311 shapes, 2,048 points each).

    Args:
        root: the folder holding ``shape_names.txt``, ``train_files.txt``,
            ``test_files.txt`` and the ``ply_data_*.h5`` shards.
    """

    def __init__(self, root: str) -> None:
        self.root = Path(root).expanduser().absolute()

    def load(self, split: str) -> PointCloudSplit:
        self._check_split_name(split)
        loaded = read_modelnet_h5(self.root, split)
        loaded.source = f"{self.describe()} at {self.root}"
        return loaded

    def item_names(self, split: str, count: int) -> list[str]:
        """``<shard>.h5[<row>]`` of every cloud of the split (shards in listing order)."""
        names = h5_row_names(shard_paths(existing_root(self.root), split), self.root)
        return names if len(names) == count else super().item_names(split, count)

    def check(self, progress: bool = True) -> CheckReport:
        """Every bad listing, shard or field (each shard checked on its own), and the summaries."""
        try:
            names = read_class_names(existing_root(self.root))
        except DataError as err:
            return CheckReport([str(err)], [])
        found, summaries = [], []
        for split in self.splits:
            try:
                paths = shard_paths(self.root, split)
            except DataError as err:
                found.append(str(err))
                continue
            read = read_shards(paths, len(names), found)
            if read is not None:
                summaries.append(SplitSummary.of(split, *read, len(names)))
        return CheckReport(found, summaries)

    @classmethod
    def detect(cls, root: Path) -> list[PointCloudSet]:
        return [cls(str(root))] if (root / "shape_names.txt").is_file() and (root / "train_files.txt").is_file() else []
