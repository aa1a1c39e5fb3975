"""ShapeNet55 as Point-BERT ships it: the usual pretraining corpus (52,470 shapes, 55 classes).

Layout of the release folder (``ShapeNet55-34``)::

    ShapeNet-55/train.txt    one file name per line, e.g. 02691156-1021a09...ad90a11.npy
    ShapeNet-55/test.txt
    shapenet_pc/<synset>-<model id>.npy    (8192, 3) float32

The class of a shape is its synset (the part of the name before the first ``-``); class
names are the sorted synsets found in the two listings. The 52k files are packed once
into the cache (``pointdwc data prepare ROOT``, or automatically on first use, with a
progress bar) and then memory-mapped, so loading never limits the training step.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from datamodules.dataset import PointCloudSet, check_cloud, existing_root, read_lines
from datamodules.errors import DataError
from datamodules.formats.packed import PackedSet

LISTING_DIR = "ShapeNet-55"
CLOUD_DIR = "shapenet_pc"


def read_npy_cloud(path: Path, min_points: int) -> np.ndarray:
    """A (P, 3) cloud from a ``.npy`` file, validated."""
    try:
        points = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{path}: not a readable .npy array, truncated or corrupt? ({err})") from None
    return check_cloud(points, path, "array", min_points)


class ShapeNet55(PackedSet):
    """ShapeNet55 in Point-BERT's layout, for pretraining (and as a 55-class probe).

    Args:
        root: the folder holding ``ShapeNet-55/`` and ``shapenet_pc/``.
        num_points: points kept per cloud (the first ``num_points`` of the 8192 stored).
        normalize: centre each cloud and scale it into the unit sphere (Point-BERT's ``pc_norm``).
    """

    def __init__(self, root: str, num_points: int = 8192, normalize: bool = True) -> None:
        self.root = Path(root).expanduser().absolute()
        self.num_points = num_points
        self.normalize = normalize

    def _names(self, split: str) -> tuple[Path, list[str]]:
        listing = existing_root(self.root) / LISTING_DIR / f"{split}.txt"
        return listing, read_lines(listing, f"the {split} split of ShapeNet55, one .npy file name per line")

    def class_names(self) -> list[str]:
        synsets = set()
        for split in self.splits:
            listing, names = self._names(split)
            for number, name in enumerate(names, 1):
                synsets.add(self._synset(listing, number, name))
        return sorted(synsets)

    @staticmethod
    def _synset(listing: Path, number: int, name: str) -> str:
        synset, dash, _ = name.partition("-")
        if not dash or not synset or not name.endswith(".npy"):
            raise DataError(f"{listing}: line {number} is {name!r}, expected '<synset>-<model id>.npy'")
        return synset

    def items(self, split: str) -> list[tuple[Path, int]]:
        self._check_split_name(split)
        index = {synset: label for label, synset in enumerate(self.class_names())}
        listing, names = self._names(split)
        clouds = self.root / CLOUD_DIR
        if not clouds.is_dir():
            raise DataError(f"{clouds}: missing (the folder of ShapeNet55's .npy clouds)")
        return [(clouds / name, index[self._synset(listing, n, name)]) for n, name in enumerate(names, 1)]

    def read_item(self, path: Path) -> np.ndarray:
        return read_npy_cloud(path, self.num_points)

    def describe(self) -> str:
        return f"ShapeNet55({self.num_points} points)"

    @classmethod
    def detect(cls, root: Path) -> list[PointCloudSet]:
        ok = (root / LISTING_DIR / "train.txt").is_file() and (root / CLOUD_DIR).is_dir()
        return [cls(str(root))] if ok else []
