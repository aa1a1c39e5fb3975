"""The synthetic shape classes: name -> builder, in label order."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from datamodules.synthetic.shapes import containers, devices, furniture, vehicles
from datamodules.synthetic.shapes.parts import Part

Builder = Callable[[np.random.Generator], list[Part]]
"""Draws the parts of one instance of a class: it takes a generator and returns the parts, y up,
standing on the xz-plane; proportions and design variants are drawn per instance."""

CLASSES: tuple[tuple[str, Builder], ...] = (
    ("airplane", vehicles.airplane),
    ("armchair", furniture.armchair),
    ("bathtub", containers.bathtub),
    ("bed", furniture.bed),
    ("bench", furniture.bench),
    ("bookshelf", furniture.bookshelf),
    ("bottle", containers.bottle),
    ("bowl", containers.bowl),
    ("cabinet", furniture.cabinet),
    ("car", vehicles.car),
    ("chair", furniture.chair),
    ("cup", containers.cup),
    ("desk", furniture.desk),
    ("flower_pot", containers.flower_pot),
    ("guitar", devices.guitar),
    ("helicopter", vehicles.helicopter),
    ("jar", containers.jar),
    ("kettle", containers.kettle),
    ("lamp", furniture.lamp),
    ("laptop", devices.laptop),
    ("monitor", devices.monitor),
    ("mug", containers.mug),
    ("sofa", furniture.sofa),
    ("stool", furniture.stool),
    ("table", furniture.table),
    ("truck", vehicles.truck),
    ("vase", containers.vase),
    ("wine_glass", containers.wine_glass),
)
CLASS_NAMES: tuple[str, ...] = tuple(name for name, _ in CLASSES)
"""Class names; label ``i`` is ``CLASS_NAMES[i]`` (line ``i`` of shape_names.txt)."""

__all__ = ["CLASSES", "CLASS_NAMES", "Builder"]
