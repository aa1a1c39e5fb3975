"""One split of a part-segmentation set, packed once: every original point of every shape, memory-mapped.

Shapes have different point counts (ShapeNetPart: ~2.5k, varying), so a split is stored
ragged in a cache folder: ``<split>_points.npy`` (T, 3) float32, ``<split>_normals.npy``
(T, 3) float32, ``<split>_parts.npy`` (T,) int16 global part ids, ``<split>_offsets.npy``
(n + 1,) int64 (shape ``i`` is rows ``offsets[i]:offsets[i+1]``) and
``<split>_categories.npy`` (n,) int64. :class:`PartSplitWriter` appends shapes without
holding a split in memory; :class:`PartSplit` reads them back as memory-mapped views.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FILES = ("points", "normals", "parts")
DTYPES = {"points": np.float32, "normals": np.float32, "parts": np.int16}
WIDTHS = {"points": 3, "normals": 3, "parts": 0}


@dataclass
class PartShape:
    """One shape with every original point."""

    points: np.ndarray
    """(N, 3) float32."""
    normals: np.ndarray
    """(N, 3) float32 (zeros where a set has none)."""
    parts: np.ndarray
    """(N,) int64 global part ids."""
    category: int
    name: str
    """Its entry in the split list, e.g. ``shape_data/02691156/1a04e3eab45ca15dd86060f189eb133``."""


FIXED_STREAM = 17
"""Generator key of the fixed resampling (evaluation); 18 is the per-epoch one (training)."""
EPOCH_STREAM = 18


def split_key(split: str) -> int:
    """A stable integer for a split name (part of the generator keys)."""
    return zlib.crc32(split.encode())


def fixed_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of shape ``index``'s fixed resampling: the same points every time."""
    return np.random.default_rng([seed, FIXED_STREAM, split_key(split), index])


def epoch_rng(seed: int, epoch: int, split: str, index: int) -> np.random.Generator:
    """The generator of shape ``index``'s resampling in ``epoch`` (a new draw each epoch, reproducible)."""
    return np.random.default_rng([seed, EPOCH_STREAM, epoch, split_key(split), index])


def resample_indices(count: int, num_points: int, rng: np.random.Generator, replace: bool = True) -> np.ndarray:
    """``num_points`` indices into a shape of ``count`` points.

    ``replace=True`` is the field's (PointNet++ / Point-MAE ShapeNetPart loaders:
    ``np.random.choice(N, 2048, replace=True)``); ``False`` draws distinct points when the
    shape has enough, and with replacement only for the shortfall's sake otherwise.
    """
    return rng.choice(count, num_points, replace=replace or count < num_points)


class PartSplitWriter:
    """Append shapes to a split's files in ``folder``; :meth:`close` writes offsets and categories."""

    def __init__(self, folder: Path, split: str) -> None:
        self.folder = folder
        self.split = split
        self.offsets = [0]
        self.categories: list[int] = []
        self._raw = {key: open(folder / f"{split}_{key}.raw", "wb") for key in FILES}

    def append(self, points: np.ndarray, normals: np.ndarray, parts: np.ndarray, category: int) -> None:
        self._raw["points"].write(np.ascontiguousarray(points, dtype=np.float32).tobytes())
        self._raw["normals"].write(np.ascontiguousarray(normals, dtype=np.float32).tobytes())
        self._raw["parts"].write(np.ascontiguousarray(parts, dtype=np.int16).tobytes())
        self.offsets.append(self.offsets[-1] + len(points))
        self.categories.append(int(category))

    def close(self) -> int:
        """Turn the raw files into ``.npy`` files (streamed, never the whole split in memory); return the count."""
        total = self.offsets[-1]
        for key, handle in self._raw.items():
            handle.close()
            raw = self.folder / f"{self.split}_{key}.raw"
            shape = (total, WIDTHS[key]) if WIDTHS[key] else (total,)
            data = np.memmap(raw, DTYPES[key], "r", shape=shape) if total else np.zeros(shape, DTYPES[key])
            np.save(self.folder / f"{self.split}_{key}.npy", data)
            del data
            raw.unlink()
        np.save(self.folder / f"{self.split}_offsets.npy", np.asarray(self.offsets, dtype=np.int64))
        np.save(self.folder / f"{self.split}_categories.npy", np.asarray(self.categories, dtype=np.int64))
        return len(self.categories)


class PartSplit:
    """A packed split: shapes with every original point, memory-mapped.

    Args:
        folder: the cache folder holding the split's files.
        split: its name (``train``, ``val``, ``test``).
        names: each shape's entry in the split list, in order.
        category_names: names of the category indices.
    """

    def __init__(self, folder: Path, split: str, names: list[str], category_names: list[str]) -> None:
        self.folder = Path(folder)
        self.split = split
        self.names = list(names)
        self.category_names = list(category_names)
        self._open()

    def _open(self) -> None:
        load = lambda key: np.load(self.folder / f"{self.split}_{key}.npy", mmap_mode="r")  # noqa: E731
        self.points, self.normals, self.parts = (load(key) for key in FILES)
        self.offsets = np.load(self.folder / f"{self.split}_offsets.npy")
        self.categories = np.load(self.folder / f"{self.split}_categories.npy")

    def __len__(self) -> int:
        return len(self.categories)

    def shape(self, index: int) -> PartShape:
        """Shape ``index`` with every original point (copied out of the memory map)."""
        lo, hi = int(self.offsets[index]), int(self.offsets[index + 1])
        return PartShape(
            np.array(self.points[lo:hi]),
            np.array(self.normals[lo:hi]),
            np.asarray(self.parts[lo:hi], dtype=np.int64),
            int(self.categories[index]),
            self.names[index],
        )

    def resampled(
        self, index: int, num_points: int, rng: np.random.Generator, replace: bool = True
    ) -> PartShape:
        """Shape ``index`` at ``num_points`` points drawn by :func:`resample_indices`."""
        lo, hi = int(self.offsets[index]), int(self.offsets[index + 1])
        rows = lo + resample_indices(hi - lo, num_points, rng, replace)
        return PartShape(
            self.points[rows],
            self.normals[rows],
            np.asarray(self.parts[rows], dtype=np.int64),
            int(self.categories[index]),
            self.names[index],
        )

    def __getstate__(self) -> dict[str, Any]:
        """Pickled for loader workers as its folder, not its data."""
        return {k: v for k, v in self.__dict__.items() if k in ("folder", "split", "names", "category_names")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._open()
