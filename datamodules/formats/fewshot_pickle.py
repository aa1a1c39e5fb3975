"""The released few-shot fold files: ``ModelNetFewshot/<W>way_<S>shot/<fold>.pkl``.

As Point-BERT's generator writes them and Point-BERT / Point-MAE read them, a file is a
pickle of ``{'train': [...], 'test': [...]}`` whose entries are ``(points, label,
original_label)``: ``points`` float32 ``(P, 6)`` (xyz and normals; ``(P, 3)`` is accepted),
``label`` in ``0 … W-1``, ``original_label`` the class in ModelNet40. ``train`` holds W·S
entries, ``test`` W·20.

A pickle can run code when loaded; this reader only rebuilds numpy arrays, numpy scalars
and plain containers (:class:`ArraysOnlyUnpickler`), so a foreign or malicious file is
refused instead of executed. Every defect is one :class:`~datamodules.errors.DataError`
naming the file and the entry (``'train'[3][0]``).
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from datamodules.dataset import PointCloudSplit, normalize_unit_sphere
from datamodules.errors import DataError

ALLOWED_GLOBALS = frozenset(
    (module, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
) | frozenset(
    {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer")}
)
"""What a fold file may reference: numpy's array, dtype and scalar reconstructors (numpy 1 and 2 names)."""


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle references something other than numpy's array, dtype and scalar reconstructors."""


class ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays, numpy scalars and builtin containers; refuses every other global."""

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102
        if (module, name) not in ALLOWED_GLOBALS:
            raise RefusedGlobal(f"{module}.{name}")
        return super().find_class(module, name)


def load_arrays_pickle(path: Path) -> Any:
    """The object in ``path``, rebuilt by :class:`ArraysOnlyUnpickler`; DataError if it cannot be."""
    if not path.is_file():
        raise DataError(f"{path}: few-shot fold file not found")
    try:
        data = path.read_bytes()
        return ArraysOnlyUnpickler(io.BytesIO(data)).load()
    except RefusedGlobal as err:
        raise DataError(
            f"{path}: not a few-shot fold pickle: it references {err}, which a fold never holds "
            "(only numpy arrays, numpy scalars, tuples, lists and dicts are read)"
        ) from None
    except Exception as err:  # truncated or not a pickle at all
        raise DataError(f"{path}: not a readable pickle ({type(err).__name__}: {err})") from None


def _int(value: Any) -> int | None:
    """``value`` as an int if it is an integer (Python or numpy, possibly a 1-element array)."""
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    return None


def _entries(payload: Any, split: str, path: Path) -> list[Any]:
    entries = payload.get(split) if isinstance(payload, dict) else None
    if not isinstance(entries, (list, tuple)):
        raise DataError(
            f"{path}: field {split!r} is missing or not a list: a fold file holds a dict "
            "{'train': [...], 'test': [...]} of (points, label, original_label) entries"
        )
    if not entries:
        raise DataError(f"{path}: field {split!r} is empty")
    return list(entries)


def _points(value: Any, where: str, min_points: int) -> np.ndarray:
    """The xyz columns of one entry's points, checked."""
    if not isinstance(value, np.ndarray) or value.ndim != 2 or value.shape[1] not in (3, 6):
        shape = getattr(value, "shape", type(value).__name__)
        raise DataError(f"{where} must be a numpy array of shape (points, 6) or (points, 3), got {shape}")
    if not np.issubdtype(value.dtype, np.floating):
        raise DataError(f"{where} must hold floats, got {value.dtype}")
    if value.shape[0] < max(1, min_points):
        raise DataError(f"{where} has {value.shape[0]} points, fewer than the {max(1, min_points)} requested")
    xyz = value[:, :3]
    if not np.isfinite(xyz).all():
        raise DataError(f"{where} has NaN or Inf coordinates")
    return xyz


def read_split(
    payload: Any, split: str, path: Path, normalize: bool = True, min_points: int = 0
) -> tuple[PointCloudSplit, dict[int, int]]:
    """One split of a fold file and the map label -> original label it uses."""
    points, labels, originals = [], [], {}
    count = None
    for i, entry in enumerate(_entries(payload, split, path)):
        where = f"{path}: entry {split!r}[{i}]"
        if not isinstance(entry, (tuple, list)) or len(entry) != 3:
            raise DataError(f"{where} must be a (points, label, original_label) tuple, got {type(entry).__name__}")
        xyz = _points(entry[0], f"{where}[0] (points)", min_points)
        if count is not None and xyz.shape[0] != count:
            raise DataError(f"{where}[0] (points) has {xyz.shape[0]} points but the entries before it {count}")
        count = xyz.shape[0]
        label, original = _int(entry[1]), _int(entry[2])
        if label is None or label < 0:
            raise DataError(f"{where}[1] (label) must be an integer >= 0, got {entry[1]!r}")
        if original is None:
            raise DataError(f"{where}[2] (original_label) must be an integer, got {entry[2]!r}")
        if originals.setdefault(label, original) != original:
            raise DataError(
                f"{where}: label {label} stands for original label {original} here but {originals[label]} before"
            )
        cloud = xyz.astype(np.float32)
        points.append(normalize_unit_sphere(cloud).astype(np.float32) if normalize else cloud)
        labels.append(label)
    names = [f"class_{originals[k]}" for k in sorted(originals)]
    split_data = PointCloudSplit(np.stack(points), np.asarray(labels, dtype=np.int64), names, f"{path} [{split}]")
    return split_data, originals


def check_fold_counts(
    train: PointCloudSplit, test: PointCloudSplit, way: int, shot: int, query: int, path: Path,
    train_map: dict[int, int], test_map: dict[int, int],
) -> None:
    """Labels ``0 … way-1`` in both splits, ``shot`` train shapes and at least ``query`` test shapes each."""
    expected = list(range(way))
    for split, data in (("train", train), ("test", test)):
        present = sorted(set(data.labels.tolist()))
        if present != expected:
            raise DataError(
                f"{path}: field {split!r} has labels {present}, expected 0..{way - 1} for a {way}-way fold"
            )
    if train_map != test_map:
        raise DataError(f"{path}: the train and test entries map labels to different original labels")
    per_class = np.bincount(train.labels, minlength=way)
    if (per_class != shot).any():
        raise DataError(
            f"{path}: field 'train' has {per_class.tolist()} shapes per label, expected {shot} each ({shot}-shot)"
        )
    queries = np.bincount(test.labels, minlength=way)
    if queries.min() < query:
        worst = int(queries.argmin())
        raise DataError(
            f"{path}: field 'test' has {int(queries[worst])} shapes of label {worst}, fewer than "
            f"--query={query} test shapes per class"
        )


@dataclass
class FoldFile:
    """What a released fold file holds, checked."""

    train: PointCloudSplit
    """xyz only; each cloud centred and scaled into the unit sphere unless read with ``normalize=False``."""
    test: PointCloudSplit
    original_labels: list[int]
    """Original (ModelNet40) label of class ``0 … W-1``."""
    columns: int
    """Columns per point in the file (6: xyz and normals, as released)."""


def read_fold_file(
    path: Path, way: int, shot: int, query: int = 1, normalize: bool = True, min_points: int = 0
) -> FoldFile:
    """Train and test split of a released fold file, checked against its ``way``, ``shot`` and ``query``."""
    payload = load_arrays_pickle(path)
    if not isinstance(payload, dict):
        raise DataError(f"{path}: a fold file holds a dict {{'train': [...], 'test': [...]}}, got {type(payload).__name__}")
    train, train_map = read_split(payload, "train", path, normalize, min_points)
    test, test_map = read_split(payload, "test", path, normalize, min_points)
    check_fold_counts(train, test, way, shot, query, path, train_map, test_map)
    columns = int(payload["train"][0][0].shape[1])
    return FoldFile(train, test, [train_map[k] for k in range(way)], columns)
