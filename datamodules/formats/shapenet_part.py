"""ShapeNetPart (Yi et al. 2016) in its ``shapenetcore_partanno_segmentation_benchmark_v0_normal`` release.

Layout of the release folder::

    synsetoffset2category.txt      "<Name>\\t<synset>" per line; category index = line order
    train_test_split/shuffled_{train,val,test}_file_list.json
                                   ["shape_data/<synset>/<token>", ...]
    <synset>/<token>.txt           rows "x y z nx ny nz part", part a global id 0-49

Every shape file is read, validated and packed once into the cache (ragged, every original
point: :mod:`datamodules.formats.part_split`), then memory-mapped. Segmentation reads shapes
through :meth:`ShapeNetPart.part_split` (every point, or resampled to 2048 as the field
does); as a :class:`~datamodules.dataset.PointCloudSet` it serves each shape resampled to
``num_points`` with its category as the label, so pretraining and probes can use it too.

A synset file listing fewer categories selects them (the split lists' other shapes are
skipped). Bad files fail with one message naming the file and the line: a row without 7
values, NaN or Inf, a part id outside the shape's category, an unknown synset, a missing
split list or a listed shape without its file.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import track

from datamodules.cache import atomic_directory, default_cache_dir, fingerprint
from datamodules.dataset import (
    CheckReport,
    PointCloudSet,
    PointCloudSplit,
    SplitSummary,
    existing_root,
    normalize_unit_sphere,
)
from datamodules.errors import DataError
from datamodules.formats.part_split import PartSplit, PartSplitWriter
from datamodules.part_table import PARTS_FILE, SYNSET_FILE, PartTable, read_part_table, read_parts_file, release_parts
from datamodules.formats.resampled_clouds import ResampledClouds

PACK_VERSION = 1
"""Bump when the packed format or the reading changes."""

SPLIT_DIR = "train_test_split"
COLUMNS = "x y z nx ny nz part"


def split_list_path(root: Path, split: str) -> Path:
    """``train_test_split/shuffled_<split>_file_list.json`` of ``root``."""
    return root / SPLIT_DIR / f"shuffled_{split}_file_list.json"


@dataclass(frozen=True)
class PartItem:
    """One listed shape: its file, category index and split-list entry."""

    path: Path
    category: int
    name: str
    listed_in: str
    """``<split list>: entry <k>``, for messages."""


def _line_numbers(path: Path) -> list[int]:
    """1-based numbers of the lines that hold data (``np.loadtxt`` skips blank and ``#`` lines)."""
    lines = path.read_text(errors="replace").splitlines()
    return [n for n, line in enumerate(lines, 1) if line.split("#", 1)[0].strip()]


def read_rows(path: Path) -> tuple[np.ndarray, list[int] | None]:
    """The (N, 7) float64 rows of a shape file; DataError naming the first bad line."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an empty file is reported below
            rows = np.loadtxt(path, dtype=np.float64, ndmin=2)
        if rows.size and rows.shape[1] == 7:
            return rows, None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: unreadable ({err})") from None
    except ValueError:
        pass  # located line by line below
    lines = path.read_text(errors="replace").splitlines()
    found = False
    for number, line in enumerate(lines, 1):
        values = line.split("#", 1)[0].split()
        if not values:
            continue
        found = True
        if len(values) != 7:
            raise DataError(f"{path}: line {number} has {len(values)} values, expected 7 ({COLUMNS})")
        for value in values:
            try:
                float(value)
            except ValueError:
                raise DataError(f"{path}: line {number}: {value!r} is not a number ({COLUMNS})") from None
    if not found:
        raise DataError(f"{path}: empty (no '{COLUMNS}' rows)")
    raise DataError(f"{path}: not readable as rows of '{COLUMNS}'")


def _ranges(ids: list[int]) -> str:
    """``[0, 1, 2, 3, 12, 13]`` -> ``0-3, 12-13``."""
    spans: list[list[int]] = []
    for i in ids:
        if spans and i == spans[-1][1] + 1:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    return ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in spans)


class ShapeNetPart(PointCloudSet):
    """ShapeNetPart's part-segmentation release (or a folder in its layout, e.g. the synthetic part set).

    Args:
        root: the ``shapenetcore_partanno_segmentation_benchmark_v0_normal`` folder.
        num_points: points served per shape as a :class:`PointCloudSet` (``load``): each
            shape resampled once, the same draw every time (2048, as the field tests).
        normalize: centre each shape and scale it into the unit sphere (the field's
            ``pc_normalize``, on every original point before any resampling).
        replace: resample with replacement, as the field's loaders do (``False``: distinct
            points when a shape has enough).
        seed: of the fixed resampling.
    """

    splits = ("train", "val", "test")

    def __init__(
        self, root: str, num_points: int = 2048, normalize: bool = True, replace: bool = True, seed: int = 0
    ) -> None:
        self.root = Path(root).expanduser().absolute()
        self.num_points = num_points
        self.normalize = normalize
        self.replace = replace
        self.seed = seed

    # ---------------------------------------------------------------- listing
    def ensure_files(self, progress: bool = True) -> None:
        """Make sure the files are there (a generated set writes them here; a release folder just is)."""

    def table(self) -> PartTable:
        """Categories (synset file order) and their global part ids."""
        self.ensure_files()
        return read_part_table(existing_root(self.root))

    def items(self, split: str, table: PartTable | None = None) -> list[PartItem]:
        """The shapes ``split``'s list names whose synset the synset file lists, validated as a listing."""
        self._check_split_name(split)
        table = table or self.table()
        listing = split_list_path(self.root, split)
        if not listing.is_file():
            raise DataError(f"{listing}: missing (the {split} split list of the ShapeNetPart layout)")
        try:
            entries = json.loads(listing.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise DataError(f"{listing}: not a readable JSON list ({err})") from None
        if not isinstance(entries, list):
            kind = type(entries).__name__
            raise DataError(f"{listing}: expected a JSON list of 'shape_data/<synset>/<token>', got {kind}")
        index = {synset: c for c, synset in enumerate(table.synsets)}
        other = set(release_parts()) | set(self._own_synsets())
        items = []
        for k, entry in enumerate(entries):
            parts = entry.split("/") if isinstance(entry, str) else []
            if len(parts) != 3 or not all(parts):
                raise DataError(f"{listing}: entry {k} is {entry!r}, expected 'shape_data/<synset>/<token>'")
            _, synset, token = parts
            if synset not in index:
                if synset in other:
                    continue  # a category the synset file does not select
                raise DataError(
                    f"{listing}: entry {k} ({entry}) has the unknown synset {synset!r}, "
                    f"which is not in {SYNSET_FILE}"
                )
            items.append(PartItem(self.root / synset / f"{token}.txt", index[synset], entry, f"{listing}: entry {k}"))
        return items

    def _own_synsets(self) -> list[str]:
        """Synsets of the folder's own table (``pointdwc_parts.txt``), if it has one."""
        path = self.root / PARTS_FILE
        return list(read_parts_file(path)) if path.is_file() else []

    def read_shape(self, item: PartItem, table: PartTable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Points (N, 3), normals (N, 3) float32 and global part ids (N,) of one shape, validated."""
        if not item.path.is_file():
            raise DataError(f"{item.path}: missing, but {item.listed_in} lists {item.name}")
        rows, _ = read_rows(item.path)
        bad = ~np.isfinite(rows).all(axis=1)
        if bad.any():
            line = _line_numbers(item.path)[int(np.argmax(bad))]
            raise DataError(f"{item.path}: line {line} has NaN or Inf values ({COLUMNS})")
        part = rows[:, 6]
        allowed = np.asarray(table.part_ids[item.category])
        wrong = (part != np.round(part)) | ~np.isin(part, allowed)
        if wrong.any():
            row = int(np.argmax(wrong))
            line = _line_numbers(item.path)[row]
            raise DataError(
                f"{item.path}: line {line}: part id {part[row]:g} is not one of the parts of "
                f"{table.categories[item.category]} ({allowed.min()}-{allowed.max()})"
            )
        return rows[:, :3].astype(np.float32), rows[:, 3:6].astype(np.float32), part.astype(np.int16)

    # ---------------------------------------------------------------- packing
    def options(self) -> dict[str, Any]:
        """What changes the packed data (part of the cache key)."""
        return {"normalize": self.normalize}

    def cache_path(self, table: PartTable, listing: dict[str, list[PartItem]]) -> Path:
        """The cache folder for these files and options."""
        files = {}
        for split, items in listing.items():
            rows = []
            for item in items:
                try:
                    st = item.path.stat()
                    rows.append((item.name, st.st_size, st.st_mtime_ns))
                except OSError:
                    rows.append((item.name, -1, -1))
            files[split] = rows
        key = fingerprint(
            {
                "version": PACK_VERSION,
                "root": str(self.root),
                "options": self.options(),
                "table": table.to_dict(),
                "files": files,
            }
        )
        return default_cache_dir() / "packed" / f"{type(self).__name__.lower()}-{key}"

    def prepare(self, progress: bool = True, force: bool = False) -> Path:
        """Pack every split into the cache unless it is there; return the folder."""
        known = getattr(self, "_packed", None)
        if known is not None and not force and (known / "meta.json").is_file():
            return known
        self.ensure_files(progress)
        table = self.table()
        listing = {split: self.items(split, table) for split in self.splits}
        target = self.cache_path(table, listing)
        if (target / "meta.json").is_file() and not force:
            self._packed = target
            return target
        meta: dict[str, Any] = {"format": type(self).__name__, "root": str(self.root), "options": self.options()}
        meta["table"] = table.to_dict()
        with atomic_directory(target, replace=force) as tmp:
            for split, items in listing.items():
                writer = PartSplitWriter(tmp, split)
                steps = track(items, description=f"packing {self.describe()} {split}", disable=not progress)
                for item in steps:
                    points, normals, parts = self.read_shape(item, table)
                    if self.normalize:
                        points = normalize_unit_sphere(points).astype(np.float32)
                    writer.append(points, normals, parts, item.category)
                meta[split] = {"count": writer.close(), "names": [item.name for item in items]}
            (tmp / "meta.json").write_text(json.dumps(meta) + "\n")  # last: marks completion
        self._packed = target
        return target

    def _meta(self) -> dict[str, Any]:
        return json.loads((self.prepare(progress=False) / "meta.json").read_text())

    def packed_table(self) -> PartTable:
        """The table the packed data was made with."""
        return PartTable.from_dict(self._meta()["table"])

    def part_split(self, split: str) -> PartSplit:
        """Split ``split`` with every original point, memory-mapped (packs first if needed)."""
        self._check_split_name(split)
        folder = self.prepare(progress=False)
        meta = self._meta()
        return PartSplit(folder, split, meta[split]["names"], meta["table"]["categories"])

    # ---------------------------------------------------------------- PointCloudSet
    def load(self, split: str) -> PointCloudSplit:
        """Each shape resampled once to ``num_points`` (fixed draw) and its category, for pretraining or probes."""
        shapes = self.part_split(split)
        clouds = ResampledClouds(shapes, self.num_points, self.seed, self.replace)
        return PointCloudSplit(clouds, shapes.categories, shapes.category_names, f"{self.describe()} at {self.root}")

    def item_names(self, split: str, count: int) -> list[str]:
        names = self.part_split(split).names
        return names if len(names) == count else super().item_names(split, count)

    def describe(self) -> str:
        return f"ShapeNetPart({self.num_points} points)"

    def check(self, progress: bool = True) -> CheckReport:
        """Read every listed shape (writing nothing); every problem and a summary per split."""
        try:
            self.ensure_files(progress)
            table = self.table()
        except DataError as err:
            return CheckReport([str(err)], [])
        problems: list[str] = []
        summaries: list[SplitSummary] = []
        details = [
            f"{table.num_categories} categories: "
            + ", ".join(f"{name} {min(ids)}-{max(ids)}" for name, ids in zip(table.categories, table.part_ids)),
            f"{table.num_parts} part ids in the table",
        ]
        for split in self.splits:
            try:
                items = self.items(split, table)
            except DataError as err:
                problems.append(str(err))
                continue
            counts, radii, categories, seen = [], [], [], set()
            for item in track(items, description=f"checking {self.describe()} {split}", disable=not progress):
                try:
                    points, _, parts = self.read_shape(item, table)
                except DataError as err:
                    problems.append(str(err))
                    continue
                counts.append(len(points))
                radii.append(float(np.sqrt((points.astype(np.float64) ** 2).sum(-1)).max()))
                categories.append(item.category)
                seen |= set(np.unique(parts).tolist())
            if counts:
                summaries.append(
                    SplitSummary.from_radii(
                        split, np.asarray(radii), np.asarray(categories), table.num_categories, self.num_points
                    )
                )
                lo, mid, hi = np.min(counts), int(np.median(counts)), np.max(counts)
                expected = set().union(*(set(table.part_ids[c]) for c in set(categories)))
                missing = sorted(expected - seen)
                details.append(
                    f"{split}: {len(counts)} shapes, original points per shape min/median/max {lo}/{mid}/{hi}, "
                    f"part ids present {_ranges(sorted(seen))}"
                    + (f", absent from every shape of their category: {missing}" if missing else "")
                )
        return CheckReport(problems, summaries, details)

    @classmethod
    def detect(cls, root: Path) -> list[PointCloudSet]:
        ok = (root / SYNSET_FILE).is_file() and (root / SPLIT_DIR).is_dir()
        return [cls(str(root))] if ok else []
