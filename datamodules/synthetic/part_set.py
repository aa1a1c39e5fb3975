"""The embedded part-segmentation set: synthetic shapes with labelled parts, in ShapeNetPart's layout.

The 16 synthetic classes whose builders label their parts
(:data:`~datamodules.synthetic.shapes.part_classes.PART_CLASSES`: airplane fuselage/wing/tail/engine,
chair seat/back/leg, mug body/handle, ...; 47 global part ids) are generated once into the
cache as a folder in exactly the ``shapenetcore_partanno_segmentation_benchmark_v0_normal``
layout — ``synsetoffset2category.txt``, ``train_test_split/shuffled_{train,val,test}_file_list.json``,
``<synset>/<token>.txt`` rows ``x y z nx ny nz part`` — plus ``pointdwc_parts.txt``, the
part-id table the release leaves to code. :class:`SyntheticParts` then reads it with the
ShapeNetPart reader, so both go through the same code.

Differences from the release, by design: the synsets are made up (``9000000<k>``, one per
class), each shape has between ``min_points`` and ``max_points`` points (the release: about
2.5k, varying), and **the normals are zeros** (the shape builders sample surfaces without
normals; nothing in pointdwc uses them). Shape ``i`` of a split is drawn from its own
generator ``default_rng([seed, 10 + split index, i])`` (the classification set uses split keys
0 and 1, the procedural stream 7: these shapes are never pretraining shapes).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from rich.progress import track

from datamodules.cache import atomic_directory, default_cache_dir
from datamodules.part_table import PARTS_FILE, SYNSET_FILE
from datamodules.formats.shapenet_part import SPLIT_DIR, ShapeNetPart, split_list_path
from datamodules.synthetic.shapes import CLASS_NAMES
from datamodules.synthetic.shapes.part_classes import PART_CLASSES, global_part_ids
from datamodules.synthetic.generate import generate_shape_with_parts

VERSION = 1
"""Bump whenever the generated data changes: it is part of the folder name."""

SPLITS = ("train", "val", "test")
SPLIT_KEY = 10
META_FILE = "pointdwc_synthetic_parts.json"


def synthetic_synset(class_name: str) -> str:
    """The made-up synset (folder name) of a part class: ``90000000`` + its index in PART_CLASSES."""
    index = [name for name, _ in PART_CLASSES].index(class_name)
    return f"{90000000 + index}"


def generate_part_shape(class_name: str, rng: np.random.Generator, num_points: int) -> tuple[np.ndarray, np.ndarray]:
    """A (num_points, 3) float32 cloud of ``class_name`` and each point's global part id (num_points,) int64."""
    cloud, owner, parts = generate_shape_with_parts(CLASS_NAMES.index(class_name), rng, num_points)
    ids = global_part_ids()[class_name]
    per_part = np.array([ids[part.label] for part in parts], dtype=np.int64)  # KeyError: an unlabelled part
    return cloud, per_part[owner]


def _rows_text(rows: np.ndarray) -> str:
    """``np.savetxt(..., fmt="%.6f")``'s text (the release's), formatted in one go (twice as fast)."""
    line = " ".join(["%.6f"] * rows.shape[1]) + "\n"
    return (line * len(rows)) % tuple(rows.ravel().tolist())


def _split_plan(split: str, per_class: int, seed: int) -> list[str]:
    """The class of each shape of ``split``: ``per_class`` of each, shuffled (the release's lists are shuffled)."""
    names = [name for name, _ in PART_CLASSES for _ in range(per_class)]
    order = np.random.default_rng([seed, SPLIT_KEY + SPLITS.index(split), 2**31]).permutation(len(names))
    return [names[k] for k in order]


def write_synthetic_parts(
    root: Path,
    per_class: dict[str, int],
    min_points: int = 1536,
    max_points: int = 3072,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Generate the part set into ``root`` (a new folder) in ShapeNetPart's layout; return ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    lines = [f"{name}\t{synthetic_synset(name)}" for name, _ in PART_CLASSES]
    (root / SYNSET_FILE).write_text("\n".join(lines) + "\n")
    table = global_part_ids()
    parts_lines = [
        f"{synthetic_synset(name)}\t{pid}\t{part}" for name, ids in table.items() for part, pid in ids.items()
    ]
    (root / PARTS_FILE).write_text("\n".join(parts_lines) + "\n")
    (root / SPLIT_DIR).mkdir(exist_ok=True)
    for name, _ in PART_CLASSES:
        (root / synthetic_synset(name)).mkdir(exist_ok=True)
    for split in SPLITS:
        entries = []
        plan = _split_plan(split, per_class[split], seed)
        for i, name in enumerate(track(plan, description=f"synthetic parts {split}", disable=not progress)):
            rng = np.random.default_rng([seed, SPLIT_KEY + SPLITS.index(split), i])
            count = int(rng.integers(min_points, max_points + 1))
            cloud, part = generate_part_shape(name, rng, count)
            rows = np.concatenate([cloud, np.zeros_like(cloud), part[:, None].astype(np.float32)], axis=1)
            token = f"{name}-{split}-{i:05d}"
            (root / synthetic_synset(name) / f"{token}.txt").write_text(_rows_text(rows))
            entries.append(f"shape_data/{synthetic_synset(name)}/{token}")
        split_list_path(root, split).write_text(json.dumps(entries))
    return root


def synthetic_parts_dirname(per_class: dict[str, int], min_points: int, max_points: int, seed: int) -> str:
    """Cache folder name encoding the generation parameters."""
    counts = "-".join(f"{split[:2]}{per_class[split]}" for split in SPLITS)
    return f"synthetic-parts-v{VERSION}-s{seed}-{counts}-p{min_points}-{max_points}"


def ensure_synthetic_parts(
    per_class: dict[str, int], min_points: int = 1536, max_points: int = 3072, seed: int = 0, progress: bool = True
) -> Path:
    """The generated folder in the cache, generated first (atomically) if it is not there."""
    if min_points < 1 or max_points < min_points:
        raise ValueError(f"need 1 <= min_points <= max_points, got {min_points}, {max_points}")
    root = default_cache_dir() / synthetic_parts_dirname(per_class, min_points, max_points, seed)
    if (root / META_FILE).is_file():
        return root
    meta = {"version": VERSION, "seed": seed, "per_class": per_class, "points": [min_points, max_points]}
    with atomic_directory(root) as tmp:
        write_synthetic_parts(tmp, per_class, min_points, max_points, seed, progress)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")  # last: marks completion
    return root


class SyntheticParts(ShapeNetPart):
    """The embedded part-segmentation set (16 classes, 47 parts), generated once, read as ShapeNetPart.

    Args:
        num_train_per_class: training shapes per class (release split ``train``).
        num_val_per_class: validation shapes per class (``val``).
        num_test_per_class: test shapes per class (``test``).
        min_points: fewest original points of a shape.
        max_points: most original points of a shape.
        seed: generation seed.
        num_points: points served per shape by ``load`` (see :class:`ShapeNetPart`).
        replace: resampling with replacement (see :class:`ShapeNetPart`).
    """

    def __init__(
        self,
        num_train_per_class: int = 32,
        num_val_per_class: int = 8,
        num_test_per_class: int = 16,
        min_points: int = 1536,
        max_points: int = 3072,
        seed: int = 0,
        num_points: int = 2048,
        replace: bool = True,
    ) -> None:
        self.num_train_per_class = num_train_per_class
        self.num_val_per_class = num_val_per_class
        self.num_test_per_class = num_test_per_class
        self.min_points = min_points
        self.max_points = max_points
        self.per_class = {"train": num_train_per_class, "val": num_val_per_class, "test": num_test_per_class}
        name = synthetic_parts_dirname(self.per_class, min_points, max_points, seed)
        super().__init__(str(default_cache_dir() / name), num_points, normalize=True, replace=replace, seed=seed)

    def ensure_files(self, progress: bool = True) -> None:
        """Generate the folder unless it is in the cache."""
        if not (self.root / META_FILE).is_file():
            self.root = ensure_synthetic_parts(self.per_class, self.min_points, self.max_points, self.seed, progress)

    def describe(self) -> str:
        return f"SyntheticParts(seed={self.seed}, {self.num_points} points)"

    @classmethod
    def detect(cls, root: Path) -> list:
        return []
