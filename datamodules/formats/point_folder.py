"""A folder of users' own point files and meshes as a data set: ``fit``, ``test``, the probe, ``embed``.

The folder is searched recursively for every type :mod:`.point_files` reads (``.ply`` points or
meshes, ``.pcd``, ``.npy`` / ``.npz``, ``.txt`` / ``.xyz`` / ``.pts`` / ``.csv``, ``.las`` /
``.laz``, ``.obj`` / ``.off`` / ``.stl`` / ``.glb``). Labels come from class folders (a file's
first folder below the root, after an optional ``train/`` or ``test/`` level) when every file
has one; otherwise the set is unlabelled (labels -1, no class names): fine for pretraining, and
the probe refuses it. Splits come from ``train/`` / ``test/`` folders when there are any (a file
outside them is skipped), else from a seeded split: ``test_fraction`` of each class's sorted files
(of all files, unlabelled) by MeshFolder's permutation.

Each file becomes one stored cloud of ``num_points`` points, packed once into the cache
(:class:`~datamodules.formats.packed.PackedSet`) so later runs memory-map it:

* a point file is centred and scaled into the unit sphere over all its points (``normalize``),
  then cut to a subset: a random one seeded by its relative path (``subsample="random"``; files
  are often ordered, e.g. by scan line), or its first points (``"first"``). The random subset is
  a prefix of one seeded permutation, so the first Q points of a P-point cloud are exactly the
  Q-point cloud: ``embed --num_points Q`` and the probe's first Q see the same points as ``fit``.
* a mesh is sampled on its surface exactly as :class:`~datamodules.formats.mesh_folder.MeshFolder`
  does (max(2048, ``num_points``) points, seeded by its relative path), normalised, and cut, so
  a pure mesh folder gives MeshFolder's clouds.

A file that cannot be used (unreadable, empty, NaN, fewer points than stored, unknown type) is
skipped and counted; ``check`` lists each (one line, capped) and fails when nothing is usable.
"""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import numpy as np
from rich.progress import track

from datamodules.dataset import CheckReport, PointCloudSet, PointCloudSplit, SplitSummary, normalize_unit_sphere
from datamodules.errors import DataError
from datamodules.formats.mesh_folder import SPLIT_NAMES, MeshFolder, seeded_test_rows
from datamodules.formats.packed import PackedSet, SkippableItem
from datamodules.formats.point_files import (
    EXTENSIONS, POINT_EXTENSIONS, PointFile, is_mesh, read_points, scan_folder, subsample_seed,
)

MESH_POINTS = 2048
"""Points sampled on a mesh at least (MeshFolder's default count), so both give the same clouds."""

FEW_POINTS = "fewer than the"
"""In the reason a file with too few points is skipped for."""

MAX_LISTED = 10
"""Skipped files ``check`` lists one by one; the rest are counted."""


class PointFolder(PackedSet):
    """Point files and meshes under one folder, labelled by class folders when there are any.

    Args:
        root: the folder (searched recursively).
        num_points: points stored per cloud (a point file with fewer is skipped).
        test_fraction: share of each class's files (of all files, unlabelled) put in ``test`` when
            the folder has no ``train/`` / ``test/`` folders.
        seed: seeds the split, the random subsets and the mesh sampling.
        normalize: centre each cloud and scale it into the unit sphere.
        subsample: how a point file with more points is cut: ``random`` (seeded by its path) or ``first``.
    """

    skip_bad_items = True
    normalize_after_read = False  # read_item normalises over the whole file, then cuts

    def __init__(
        self,
        root: str,
        num_points: int = 2048,
        test_fraction: float = 0.2,
        seed: int = 0,
        normalize: bool = True,
        subsample: Literal["random", "first"] = "random",
    ) -> None:
        if num_points < 1:
            raise DataError(f"PointFolder num_points must be at least 1, got {num_points}")
        if not 0.0 < test_fraction < 1.0:
            raise DataError(f"PointFolder test_fraction must be between 0 and 1 (exclusive), got {test_fraction}")
        if subsample not in ("random", "first"):
            raise DataError(f"PointFolder subsample must be 'random' or 'first', got {subsample!r}")
        self.root = Path(root).expanduser().absolute()
        self.num_points = num_points
        self.test_fraction = test_fraction
        self.seed = seed
        self.normalize = normalize
        self.subsample = subsample

    def options(self) -> dict[str, Any]:
        return {**super().options(), "test_fraction": self.test_fraction, "seed": self.seed,
                "subsample": self.subsample}

    def describe(self) -> str:
        return f"PointFolder({self.num_points} points)"

    # ---------------------------------------------------------------- listing
    def _scan(self) -> tuple[list[PointFile], list[tuple[PointFile, str]]]:
        """The files used and the files skipped by their place or type, with why."""
        found, other = scan_folder(self.root)
        left_out = [(f, f"{f.path}: not a point file or mesh (expected {' '.join(EXTENSIONS)})") for f in other]
        if any(f.split for f in found):  # a train/test layout: every file belongs to one
            left_out += [(f, f"{f.path}: outside train/ and test/, which this folder uses") for f in found if not f.split]
            found = [f for f in found if f.split]
        return found, left_out

    def class_names(self) -> list[str]:
        """The sorted class folders, or ``[]`` when some file has none (the set is unlabelled)."""
        files = self._scan()[0]
        names = [f.class_name for f in files]
        return sorted(set(names)) if names and all(names) else []  # type: ignore[arg-type]

    def _split(self) -> dict[str, list[tuple[PointFile, int]]]:
        files = self._scan()[0]
        if not files:
            raise DataError(f"{self.root}: no point files or meshes ({' '.join(EXTENSIONS)}) in this folder")
        names = self.class_names()
        groups: dict[str, list[PointFile]] = {}
        for f in files:  # by class (sorted), each class's files sorted by path: MeshFolder's order
            groups.setdefault(f.class_name if names else "", []).append(f)
        out: dict[str, list[tuple[PointFile, int]]] = {s: [] for s in SPLIT_NAMES}
        for group in sorted(groups):
            label = names.index(group) if names else -1
            members = groups[group]
            if any(f.split for f in members):
                for f in members:
                    out[f.split].append((f, label))
                continue
            test = seeded_test_rows(len(members), group, self.test_fraction, self.seed)
            for i, f in enumerate(members):
                out["test" if i in test else "train"].append((f, label))
        return out

    def items(self, split: str) -> list[tuple[Path, int]]:
        self._check_split_name(split)
        return [(f.path, label) for f, label in self._split()[split]]

    # ---------------------------------------------------------------- reading
    def relative_name(self, path: Path) -> str:
        """``path`` relative to ``root`` (the name ``embed`` and ``attention`` give its cloud)."""
        return self._relative(path)

    def read_item(self, path: Path) -> np.ndarray:
        """The stored cloud of ``path``: (num_points, 3) float32; :class:`SkippableItem` if unusable."""
        return self._cloud(path, self.normalize)

    def _cloud(self, path: Path, normalize: bool) -> np.ndarray:
        try:
            if is_mesh(path):
                sampler = MeshFolder(str(self.root), num_points=max(MESH_POINTS, self.num_points), seed=self.seed)
                cloud = sampler.read_item(path)  # float32, as MeshFolder packs it
                cloud = normalize_unit_sphere(cloud).astype(np.float32) if normalize else cloud
                return np.ascontiguousarray(cloud[: self.num_points], dtype=np.float32)
            points = read_points(path)
        except SkippableItem:
            raise
        except DataError as err:
            raise SkippableItem(str(err)) from None
        except Exception as err:  # a parser's unexpected failure is still one bad file
            raise SkippableItem(f"{path}: unreadable ({type(err).__name__}: {err})") from None
        if len(points) < self.num_points:
            raise SkippableItem(f"{path}: {len(points)} points, {FEW_POINTS} {self.num_points} stored per cloud")
        if normalize:
            points = normalize_unit_sphere(points)
        if self.subsample == "first":
            points = points[: self.num_points]
        else:
            rng = np.random.default_rng(subsample_seed(self._relative(path), self.seed))
            points = points[rng.permutation(len(points))[: self.num_points]]
        return np.ascontiguousarray(points, dtype=np.float32)

    def _check_skipped(
        self, split: str, items: list[tuple[Path, int]], labels: np.ndarray, skipped: list[str], names: list[str]
    ) -> None:
        """As :class:`PackedSet`, but a test split with nothing readable is a warning: pretraining needs train only."""
        if split == "test" and skipped and len(labels) == 0:
            warnings.warn(f"{self.root}: none of the {len(items)} test files is readable: {skipped[0]}", stacklevel=3)
            return
        if skipped and len(labels) == 0:
            raise DataError(f"{self.root}: none of the {len(items)} {split} files is usable; "
                            f"{self._skip_summary(skipped)}; first: {skipped[0]}")
        super()._check_skipped(split, items, labels, skipped, names)

    def load(self, split: str) -> PointCloudSplit:
        """The packed split; says how many files packing skipped (every run, also when read from the cache)."""
        loaded = super().load(split)
        skipped = self.skipped(split)
        if skipped:
            warnings.warn(f"{self.root}: {len(skipped)} of the {len(skipped) + len(loaded)} {split} files were "
                          f"skipped as unusable (first: {skipped[0][1]}); `pointdwc data check {self.root}` "
                          "lists them", stacklevel=2)
        return loaded

    def _skip_summary(self, skipped: list[str]) -> str:
        """How many files were skipped for too few points (with the fix), and for other reasons."""
        short = sum(FEW_POINTS in reason for reason in skipped)
        if not short:
            return f"{len(skipped)} unreadable"
        return (f"{short} have fewer points than the {self.num_points} stored per cloud (store fewer: --data.dataset "
                f"datamodules.PointFolder --data.dataset.root {self.root} --data.dataset.num_points N), "
                f"{len(skipped) - short} unreadable")

    # ---------------------------------------------------------------- check
    def check(self, progress: bool = True) -> CheckReport:
        """Read every file (writing nothing): counts per format, each skipped file, the splits' summary."""
        try:
            files, left_out = self._scan()
            split = self._split()
        except DataError as err:
            return CheckReport([str(err)], [])
        names = self.class_names()
        skipped = [reason for _, reason in left_out]
        usable: Counter[str] = Counter()
        present: set[int] = set()
        summaries = []
        for name in self.splits:
            radii, labels = [], []
            for f, label in track(split[name], description=f"checking {name}", disable=not progress):
                try:
                    cloud = self._cloud(f.path, normalize=False)
                except DataError as err:
                    skipped.append(str(err))
                    continue
                usable[f.extension] += 1
                radii.append(float(np.sqrt((cloud.astype(np.float64) ** 2).sum(-1)).max()))
                labels.append(label)
            present |= set(labels)
            if labels:
                summaries.append(SplitSummary.from_radii(name, np.asarray(radii), np.asarray(labels), len(names),
                                                         self.num_points))
        listed = Counter(f.extension for f in files)
        notes = [f"{len(files)} files: " + ", ".join(f"{ext} {n} ({usable[ext]} usable)" for ext, n in sorted(listed.items()))]
        notes.append(f"labels: {len(names)} class folders" if names else
                     "labels: none (files outside class folders): for fit; the probe needs a labelled set (--probe.root)")
        has_split = any(f.split for f in files)
        notes.append("split: the train/ and test/ folders" if has_split else
                     f"split: seeded, test_fraction {self.test_fraction}" + (" per class" if names else ""))
        if skipped:
            notes.append(f"skipped {len(skipped)} file(s):")
            notes += [f"  {reason}" for reason in skipped[:MAX_LISTED]]
            if len(skipped) > MAX_LISTED:
                notes.append(f"  ... and {len(skipped) - MAX_LISTED} more")
        problems = []
        if not usable:
            why = f"; {self._skip_summary(skipped)}; first: {skipped[0]}" if skipped else ""
            problems.append(f"{self.root}: none of the {len(files) + len(left_out)} files is usable{why}")
        elif not any(s.split == "train" for s in summaries):
            problems.append(f"{self.root}: no usable file in the train split")
        problems += [f"{self.root / name}: class {name!r} has no usable file"
                     for label, name in enumerate(names) if usable and label not in present]
        return CheckReport(problems, summaries, notes)

    @classmethod
    def detect(cls, root: Path) -> list[PointCloudSet]:
        """A folder holding point files, or meshes outside MeshFolder's class-folder layouts."""
        try:
            files, _ = scan_folder(root)
        except (DataError, OSError):
            return []
        if not files:
            return []
        if any(f.extension in POINT_EXTENSIONS and f.extension != ".ply" for f in files) or any(
            f.extension == ".ply" and not _mesh_or_unreadable(f.path) for f in files
        ):
            return [cls(str(root))]
        return [] if MeshFolder.detect(Path(root)) else [cls(str(root))]  # a pure mesh folder stays MeshFolder


def _mesh_or_unreadable(path: Path) -> bool:
    """Whether a ``.ply`` is a mesh; an unreadable one is no evidence of a point file."""
    try:
        return is_mesh(path)
    except DataError:
        return True
