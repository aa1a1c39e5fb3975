"""A ragged part-segmentation split seen as fixed-size clouds ``(n, num_points, 3)``, resampled on access.

:class:`~datamodules.dataset.PointCloudSplit` holds clouds of one size, read by the
DataModule, the probe, ``embed`` and ``attention`` with integer, slice and array indices
(``clouds[i]``, ``clouds[a:b, :p]``, ``clouds[rows]``). ShapeNetPart's shapes have
different point counts; this view resamples each one with its own fixed generator
(:func:`~datamodules.formats.part_split.fixed_rng`), so a shape is the same cloud on every read,
in every process, without storing a resampled copy of the split.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from datamodules.formats.part_split import PartSplit, fixed_rng, resample_indices


class ResampledClouds:
    """Array-like ``(len(split), num_points, 3)`` float32 over a :class:`PartSplit`.

    Args:
        split: the packed shapes.
        num_points: points per cloud.
        seed: of the fixed resampling.
        replace: resample with replacement (the field's loaders) or distinct points where possible.
    """

    def __init__(self, split: PartSplit, num_points: int, seed: int = 0, replace: bool = True) -> None:
        self.split = split
        self.num_points = num_points
        self.seed = seed
        self.replace = replace

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.split), self.num_points, 3)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32)

    @property
    def ndim(self) -> int:
        return 3

    def __len__(self) -> int:
        return len(self.split)

    def cloud(self, index: int) -> np.ndarray:
        """(num_points, 3) cloud of shape ``index``."""
        lo, hi = int(self.split.offsets[index]), int(self.split.offsets[index + 1])
        rows = resample_indices(hi - lo, self.num_points, fixed_rng(self.seed, self.split.split, index), self.replace)
        return np.asarray(self.split.points[lo + rows], dtype=np.float32)

    def __getitem__(self, key: Any) -> np.ndarray:
        """Clouds by an int, a slice or an integer array, optionally followed by point and coordinate indices."""
        first, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        if isinstance(first, (int, np.integer)):
            index = int(first) + (len(self) if first < 0 else 0)
            if not 0 <= index < len(self):
                raise IndexError(f"index {first} outside [0, {len(self)})")
            return self.cloud(index)[rest] if rest else self.cloud(index)
        if isinstance(first, slice):
            rows = np.arange(len(self))[first]
        else:
            rows = np.asarray(first)
            if rows.dtype.kind not in "iu" or rows.ndim != 1:
                raise TypeError("ResampledClouds is read by an int, a slice or a 1-d integer array")
            rows = np.where(rows < 0, rows + len(self), rows)
            if len(rows) and not (0 <= rows.min() and rows.max() < len(self)):
                raise IndexError(f"indices outside [0, {len(self)})")
        out = np.empty((len(rows), self.num_points, 3), dtype=np.float32)
        for k, i in enumerate(rows):
            out[k] = self.cloud(int(i))
        return out[(slice(None), *rest)] if rest else out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)
