"""The embedded data: procedural shapes, built from parametric parts, cached in release layouts.

:mod:`.generate` makes one shape; :mod:`.shape_set` the cached classification set (ModelNet40's
HDF5 layout), :mod:`.stream` a train split drawn afresh every epoch, :mod:`.part_set` the
part-labelled set (ShapeNetPart's layout); :mod:`.shapes` holds the class builders.

May import: the modules at the top of :mod:`datamodules`, :mod:`datamodules.formats`.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_BEFORE_THE_MOVE = {
    "SyntheticShapes": "shape_set", "ensure_synthetic_dataset": "shape_set", "generate_split": "shape_set",
    "dataset_dirname": "shape_set", "SPLITS": "shape_set", "VERSION": "shape_set",
    "generate_shape": "generate", "generate_shape_with_parts": "generate", "balanced_labels": "generate",
}
"""Names the module ``datamodules.synthetic`` had before it became this package."""


def __getattr__(name: str) -> Any:
    if name in _BEFORE_THE_MOVE:
        return getattr(import_module(f"datamodules.synthetic.{_BEFORE_THE_MOVE[name]}"), name)
    raise AttributeError(f"module 'datamodules.synthetic' has no attribute {name!r}")
