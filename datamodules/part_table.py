"""Categories and their global part ids: ShapeNetPart's 16 (50 parts) or a set's own table.

ShapeNetPart labels every point with a *global* part id 0-49, each category owning a
consecutive range (Airplane 0-3, Bag 4-5, ..., Table 47-49). A prediction for a shape of
one category may only use that category's ids (the field's restricted argmax), and its IoU
is averaged over exactly those parts, so every reader and metric needs this table.

The release does not ship it (every codebase hard-codes it); pointdwc knows it by synset.
A folder in the release layout may carry its own table instead, in ``pointdwc_parts.txt``
(one ``<synset>\\t<global part id>\\t<part name>`` per line): the synthetic part set does,
so the same reader serves both. Categories are those of ``synsetoffset2category.txt`` in
its line order (a file that lists fewer than all categories selects those); part ids stay
global, so a model's output width is the whole table's part count either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from datamodules.dataset import read_lines
from datamodules.errors import DataError

SYNSET_FILE = "synsetoffset2category.txt"
PARTS_FILE = "pointdwc_parts.txt"

RELEASE_CATEGORIES: tuple[tuple[str, str, int], ...] = (
    ("Airplane", "02691156", 4),
    ("Bag", "02773838", 2),
    ("Cap", "02954340", 2),
    ("Car", "02958343", 4),
    ("Chair", "03001627", 4),
    ("Earphone", "03261776", 3),
    ("Guitar", "03467517", 3),
    ("Knife", "03624134", 2),
    ("Lamp", "03636649", 4),
    ("Laptop", "03642806", 2),
    ("Motorbike", "03790512", 6),
    ("Mug", "03797390", 2),
    ("Pistol", "03948459", 3),
    ("Rocket", "04099429", 3),
    ("Skateboard", "04225987", 3),
    ("Table", "04379243", 3),
)
"""ShapeNetPart's categories (name, synset, number of parts), in global part-id order."""


def release_parts() -> dict[str, list[tuple[int, str]]]:
    """Synset -> [(global part id, name)] of the release; names are ``<Category>_<k>`` (the release has none)."""
    table: dict[str, list[tuple[int, str]]] = {}
    start = 0
    for name, synset, count in RELEASE_CATEGORIES:
        table[synset] = [(start + k, f"{name}_{k}") for k in range(count)]
        start += count
    return table


def read_parts_file(path: Path) -> dict[str, list[tuple[int, str]]]:
    """Synset -> [(global part id, name)] from a ``pointdwc_parts.txt``; DataError naming the line."""
    table: dict[str, list[tuple[int, str]]] = {}
    seen: dict[int, int] = {}
    for number, line in enumerate(read_lines(path, "<synset> <global part id> <part name> per line"), 1):
        fields = line.split()
        if len(fields) != 3 or not fields[1].isdigit():
            raise DataError(f"{path}: line {number} is {line!r}, expected '<synset> <global part id> <part name>'")
        part = int(fields[1])
        if part in seen:
            raise DataError(f"{path}: line {number} gives part id {part} again (first on line {seen[part]})")
        seen[part] = number
        table.setdefault(fields[0], []).append((part, fields[2]))
    return table


@dataclass(frozen=True)
class PartTable:
    """The categories of a data set (in label order) and the global part ids each one owns."""

    categories: tuple[str, ...]
    """Category names; category index ``i`` is ``categories[i]``."""
    synsets: tuple[str, ...]
    """The folder name (synset) of each category."""
    part_ids: tuple[tuple[int, ...], ...]
    """The global part ids of each category, ascending."""
    part_names: tuple[str, ...]
    """A name for every global part id ``0 .. num_parts - 1`` (ids of unlisted categories too)."""

    @property
    def num_categories(self) -> int:
        return len(self.categories)

    @property
    def num_parts(self) -> int:
        """Width of a segmentation output: every global id of the whole table, listed categories or not."""
        return len(self.part_names)

    def part_mask(self) -> np.ndarray:
        """(num_categories, num_parts) bool: which part ids each category may predict."""
        mask = np.zeros((self.num_categories, self.num_parts), dtype=bool)
        for c, ids in enumerate(self.part_ids):
            mask[c, list(ids)] = True
        return mask

    def to_dict(self) -> dict[str, Any]:
        """Plain types (for meta files and checkpoints)."""
        return {
            "categories": list(self.categories),
            "synsets": list(self.synsets),
            "part_ids": [list(ids) for ids in self.part_ids],
            "part_names": list(self.part_names),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PartTable:
        return cls(
            tuple(data["categories"]),
            tuple(data["synsets"]),
            tuple(tuple(int(i) for i in ids) for ids in data["part_ids"]),
            tuple(data["part_names"]),
        )


def read_part_table(root: Path) -> PartTable:
    """The table of the release-layout folder ``root``: its synset file against its parts file or the release's."""
    synset_file = root / SYNSET_FILE
    parts_file = root / PARTS_FILE
    known = read_parts_file(parts_file) if parts_file.is_file() else release_parts()
    source = parts_file.name if parts_file.is_file() else "ShapeNetPart's 16 categories"
    names, synsets, ids = [], [], []
    for number, line in enumerate(read_lines(synset_file, "'<category name> <synset>' per line"), 1):
        fields = line.split()
        if len(fields) != 2:
            raise DataError(f"{synset_file}: line {number} is {line!r}, expected '<category name>\\t<synset>'")
        name, synset = fields
        if synset not in known:
            raise DataError(
                f"{synset_file}: line {number}: unknown synset {synset!r} ({name}); not among those of {source}"
            )
        if synset in synsets:
            raise DataError(f"{synset_file}: line {number}: synset {synset} listed twice")
        names.append(name)
        synsets.append(synset)
        ids.append(tuple(sorted(i for i, _ in known[synset])))
    every = {i: part for parts in known.values() for i, part in parts}
    if sorted(every) != list(range(len(every))):
        raise DataError(f"{parts_file}: part ids must be 0 .. {len(every) - 1} without gaps, got {sorted(every)}")
    return PartTable(tuple(names), tuple(synsets), tuple(ids), tuple(every[i] for i in range(len(every))))
