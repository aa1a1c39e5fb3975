"""ScanObjectNN (real scans of 15 object classes) in its three standard h5 variants.

The release's ``h5_files`` folder holds ``main_split/`` and ``main_split_nobg/``; each
variant is a pair of h5 files with ``data`` (n, 2048, 3) float32 and ``label`` (n,):

=============  =======================================================================
``obj_bg``     ``main_split/{training,test}_objectdataset.h5``
``obj_only``   ``main_split_nobg/{training,test}_objectdataset.h5``
``pb_t50_rs``  ``main_split/{training,test}_objectdataset_augmentedrot_scale75.h5``
=============  =======================================================================

Clouds are used as shipped (no re-normalisation), as the field does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from datamodules.dataset import PointCloudSet, PointCloudSplit, existing_root
from datamodules.errors import DataError
from datamodules.formats.modelnet_h5 import h5_row_names, read_shard

CLASS_NAMES = [
    "bag", "bin", "box", "cabinet", "chair", "desk", "display", "door",
    "shelf", "table", "bed", "pillow", "sink", "sofa", "toilet",
]  # fmt: skip
"""The 15 classes in label order."""

VARIANTS: dict[str, tuple[str, str]] = {
    "obj_bg": ("main_split", ""),
    "obj_only": ("main_split_nobg", ""),
    "pb_t50_rs": ("main_split", "_augmentedrot_scale75"),
}
"""variant -> (folder, file-name suffix)."""

SPLIT_PREFIX = {"train": "training", "test": "test"}


class ScanObjectNN(PointCloudSet):
    """One ScanObjectNN variant.

    Args:
        root: the release's ``h5_files`` folder (holding ``main_split/`` and
            ``main_split_nobg/``), or one of those two folders itself.
        variant: ``obj_bg``, ``obj_only`` or ``pb_t50_rs`` (the hardest, the usual headline).
    """

    def __init__(self, root: str, variant: Literal["obj_bg", "obj_only", "pb_t50_rs"] = "pb_t50_rs") -> None:
        if variant not in VARIANTS:
            raise DataError(f"ScanObjectNN variant {variant!r} does not exist; choose one of {sorted(VARIANTS)}")
        self.root = Path(root).expanduser().absolute()
        self.variant = variant

    def file(self, split: str) -> Path:
        """The h5 file of ``split`` (inside ``root/<folder>`` or ``root`` itself)."""
        self._check_split_name(split)
        folder, suffix = VARIANTS[self.variant]
        name = f"{SPLIT_PREFIX[split]}_objectdataset{suffix}.h5"
        root = existing_root(self.root)
        if root.name == folder and (root / name).is_file():
            return root / name
        path = root / folder / name
        if not path.is_file():
            raise DataError(f"{path}: missing (the {split} file of ScanObjectNN {self.variant})")
        return path

    def load(self, split: str) -> PointCloudSplit:
        path = self.file(split)
        data, labels = read_shard(path, len(CLASS_NAMES), names_file="ScanObjectNN's 15 classes")
        return PointCloudSplit(data, labels, list(CLASS_NAMES), source=f"{self.describe()} at {path}")

    def describe(self) -> str:
        return f"ScanObjectNN({self.variant})"

    def item_names(self, split: str, count: int) -> list[str]:
        """``<file>.h5[<row>]`` of every cloud of the split."""
        names = h5_row_names([self.file(split)], existing_root(self.root))
        return names if len(names) == count else super().item_names(split, count)

    @classmethod
    def detect(cls, root: Path) -> list[PointCloudSet]:
        found = []
        for variant, (folder, suffix) in VARIANTS.items():
            name = f"training_objectdataset{suffix}.h5"
            if (root / folder / name).is_file() or (root.name == folder and (root / name).is_file()):
                found.append(cls(str(root), variant))  # type: ignore[arg-type]
        order = ["pb_t50_rs", "obj_bg", "obj_only"]  # the headline variant first
        return sorted(found, key=lambda s: order.index(s.variant))
