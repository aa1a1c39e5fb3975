"""ModelNet10/40 as ``modelnet40_normal_resampled`` ships it (10,000 points with normals per shape).

Layout::

    modelnet40_shape_names.txt     (modelnet10_shape_names.txt for ModelNet10)
    modelnet40_train.txt           one shape per line, e.g. night_stand_0001
    modelnet40_test.txt
    <class>/<class>_NNNN.txt       10,000 lines "x,y,z,nx,ny,nz"

A shape's class is its name without the trailing ``_NNNN``. The text files are parsed
once and packed into the cache (xyz only; the first ``num_points`` points, as PointNet++
and Point-BERT read them), then memory-mapped.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

import numpy as np

from datamodules.dataset import PointCloudSet, check_cloud, existing_root, read_lines
from datamodules.errors import DataError
from datamodules.formats.packed import PackedSet


class ModelNetResampled(PackedSet):
    """ModelNet40 (or ModelNet10) from the ``modelnet40_normal_resampled`` release.

    Args:
        root: the ``modelnet40_normal_resampled`` folder.
        num_classes: 40 or 10 (ModelNet10 uses the ``modelnet10_*`` listings of the same folder).
        num_points: points kept per shape (the first ``num_points`` of each file).
        normalize: centre each cloud and scale it into the unit sphere.
    """

    def __init__(
        self, root: str, num_classes: Literal[10, 40] = 40, num_points: int = 8192, normalize: bool = True
    ) -> None:
        if num_classes not in (10, 40):
            raise DataError(f"ModelNetResampled num_classes must be 10 or 40, got {num_classes}")
        self.root = Path(root).expanduser().absolute()
        self.num_classes = num_classes
        self.num_points = num_points
        self.normalize = normalize

    @property
    def prefix(self) -> str:
        return f"modelnet{self.num_classes}"

    def options(self) -> dict:
        return {**super().options(), "num_classes": self.num_classes}

    def class_names(self) -> list[str]:
        path = existing_root(self.root) / f"{self.prefix}_shape_names.txt"
        return read_lines(path, "one class name per line")

    def items(self, split: str) -> list[tuple[Path, int]]:
        self._check_split_name(split)
        names = self.class_names()
        index = {name: label for label, name in enumerate(names)}
        listing = self.root / f"{self.prefix}_{split}.txt"
        items = []
        for number, shape in enumerate(read_lines(listing, f"the {split} split, one shape name per line"), 1):
            cls, sep, digits = shape.rpartition("_")
            if not sep or not digits.isdigit():
                raise DataError(f"{listing}: line {number} is {shape!r}, expected '<class>_NNNN'")
            if cls not in index:
                raise DataError(
                    f"{listing}: line {number} names class {cls!r}, which is not among the {len(names)} "
                    f"classes of {self.prefix}_shape_names.txt"
                )
            items.append((self.root / cls / f"{shape}.txt", index[cls]))
        return items

    def read_item(self, path: Path) -> np.ndarray:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # an empty file is reported below, not as a numpy warning
                rows = np.loadtxt(path, delimiter=",", dtype=np.float32, ndmin=2)
        except (OSError, ValueError) as err:
            raise DataError(f"{path}: not comma-separated numbers x,y,z,nx,ny,nz ({err})") from None
        if rows.shape[0] == 0:
            raise DataError(f"{path}: empty cloud")
        if rows.shape[1] not in (3, 6):
            raise DataError(f"{path}: rows must hold x,y,z,nx,ny,nz (6 values), got {rows.shape[1]}")
        return check_cloud(rows[:, :3], path, "x,y,z", self.num_points)

    def describe(self) -> str:
        return f"ModelNet{self.num_classes}Resampled({self.num_points} points)"

    @classmethod
    def detect(cls, root: Path) -> list[PointCloudSet]:
        return [cls(str(root), n) for n in (40, 10) if (root / f"modelnet{n}_shape_names.txt").is_file()]  # type: ignore[arg-type]
