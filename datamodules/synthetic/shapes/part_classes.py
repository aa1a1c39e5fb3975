"""The synthetic classes that have semantic parts, and the names of those parts.

Sixteen of the 28 synthetic classes are assembled from parts with a stable meaning (the
builders label them: ``Part.label``), as ShapeNetPart's 16 categories are. Their parts get
global ids in this order: class by class, part by part (airplane 0-3, armchair 4-7, ...),
47 in all, as ShapeNetPart numbers its 50.

The other twelve have no meaningful part structure to segment and are left out: one
continuous surface (bowl, cup, vase, bottle: the body *is* the shape), parts that are
repeated copies without a name of their own (bookshelf boards, cabinet doors and
drawers, bed and sofa cushions), or a part present in too few instances (bench backs,
desk hutches, bathtub faucets, flower-pot plants of four unrelated kinds).
"""

from __future__ import annotations

PART_CLASSES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("airplane", ("fuselage", "wing", "tail", "engine")),
    ("armchair", ("seat", "back", "leg", "arm")),
    ("car", ("body", "cabin", "wheel")),
    ("chair", ("seat", "back", "leg")),
    ("guitar", ("body", "neck", "head")),
    ("helicopter", ("cabin", "tail", "rotor", "landing_gear")),
    ("jar", ("body", "lid")),
    ("kettle", ("body", "lid", "spout", "handle")),
    ("lamp", ("base", "pole", "shade")),
    ("laptop", ("base", "screen")),
    ("monitor", ("screen", "stand")),
    ("mug", ("body", "handle")),
    ("stool", ("seat", "leg")),
    ("table", ("top", "leg")),
    ("truck", ("cab", "cargo", "chassis", "wheel")),
    ("wine_glass", ("foot", "stem", "bowl")),
)
"""(synthetic class name, its part names in id order), in global part-id order."""


def global_part_ids() -> dict[str, dict[str, int]]:
    """Class name -> part name -> global part id (consecutive over :data:`PART_CLASSES`)."""
    table: dict[str, dict[str, int]] = {}
    next_id = 0
    for name, parts in PART_CLASSES:
        table[name] = {part: next_id + k for k, part in enumerate(parts)}
        next_id += len(parts)
    return table


__all__ = ["PART_CLASSES", "global_part_ids"]
