"""A folder of labelled meshes (users' own CAD data), surface-sampled once and packed.

One subfolder per class, with an optional split level in either of two places::

    <root>/<class>/*.obj|off|stl|ply|glb             split per class by ``test_fraction``
    <root>/<class>/{train,test}/*.ext                the original ModelNet40 OFF release
    <root>/{train,test}/<class>/*.ext

Class names are the sorted class folder names; hidden files and folders are ignored and
so are files of other types (``.mtl``, textures). Without a split level each class's
sorted files are split by a permutation seeded with ``seed``: ``test_fraction`` of them
(at least one, when the class has two or more files) go to ``test``, the rest to
``train``. Each mesh is loaded with trimesh (a glb scene's meshes are concatenated) and
``num_points`` points are sampled on its surface, area-weighted, with a seed derived
from the file's path relative to ``root``, so a pack is reproducible. Unreadable and
degenerate meshes are skipped with a warning; a class left without any shape is an error.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from datamodules.dataset import CheckReport, PointCloudSet, check_cloud, existing_root
from datamodules.errors import DataError
from datamodules.formats.packed import PackedSet, SkippableItem

MESH_EXTENSIONS = (".obj", ".off", ".stl", ".ply", ".glb")
"""Mesh file types read (matched case-insensitively)."""

EXPECTED = "/".join(MESH_EXTENSIONS)
SPLIT_NAMES = ("train", "test")


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _subdirs(folder: Path) -> list[Path]:
    """Non-hidden subfolders of ``folder``, sorted by name."""
    return sorted((p for p in folder.iterdir() if _visible(p) and p.is_dir()), key=lambda p: p.name)


def mesh_files(folder: Path) -> list[Path]:
    """Non-hidden mesh files directly in ``folder``, sorted by name."""
    return sorted(
        (p for p in folder.iterdir() if _visible(p) and p.suffix.lower() in MESH_EXTENSIONS and p.is_file()),
        key=lambda p: p.name,
    )


def _has_mesh(folder: Path) -> bool:
    """Whether ``folder`` holds a mesh file directly (stops at the first one)."""
    try:
        with os.scandir(folder) as entries:
            return any(
                not e.name.startswith(".") and os.path.splitext(e.name)[1].lower() in MESH_EXTENSIONS and e.is_file()
                for e in entries
            )
    except OSError:
        return False


def _import_trimesh() -> ModuleType:
    try:
        import trimesh
    except ImportError:
        raise DataError("MeshFolder reads meshes with trimesh, which is not installed: pip install trimesh") from None
    return trimesh


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence trimesh's log records and numpy/Python warnings: bad files are reported by us."""
    logger = logging.getLogger("trimesh")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def seeded_test_rows(n: int, group: str, test_fraction: float, seed: int) -> set[int]:
    """The rows of a group's ``n`` sorted files that go to ``test``: ``test_fraction`` of them (at least
    one when there are two or more, never all), by a permutation seeded with ``seed`` and the group's name."""
    n_test = 0 if n < 2 else min(max(round(n * test_fraction), 1), n - 1)
    order = np.random.default_rng([seed, zlib.crc32(group.encode())]).permutation(n)
    return set(order[:n_test].tolist())


class MeshFolder(PackedSet):
    """Meshes in one subfolder per class, sampled to point clouds once and cached.

    Args:
        root: the folder holding the class folders (or ``train/`` and ``test/``).
        num_points: points sampled on each mesh's surface.
        test_fraction: share of each class's files put in ``test`` when the folder has
            no split level (ignored otherwise).
        seed: seeds the split and, with each file's relative path, the surface sampling.
        normalize: centre each cloud and scale it into the unit sphere.
    """

    skip_bad_items = True

    def __init__(
        self, root: str, num_points: int = 2048, test_fraction: float = 0.2, seed: int = 0, normalize: bool = True
    ) -> None:
        if num_points < 1:
            raise DataError(f"MeshFolder num_points must be at least 1, got {num_points}")
        if not 0.0 < test_fraction < 1.0:
            raise DataError(f"MeshFolder test_fraction must be between 0 and 1 (exclusive), got {test_fraction}")
        self.root = Path(root).expanduser().absolute()
        self.num_points = num_points
        self.test_fraction = test_fraction
        self.seed = seed
        self.normalize = normalize

    def options(self) -> dict[str, Any]:
        return {**super().options(), "test_fraction": self.test_fraction, "seed": self.seed}

    # ---------------------------------------------------------------- listing
    def _scan(self) -> tuple[list[str], dict[str, list[tuple[Path, int]]], list[str]]:
        """Class names, (file, label) per split and every layout problem found."""
        root = existing_root(self.root)
        try:
            top = _subdirs(root)
            if any(d.name in SPLIT_NAMES for d in top):
                files, problems = self._scan_split_first(root, top)
            else:
                files, problems = self._scan_class_first(root, top)
        except OSError as err:
            raise DataError(f"{err.filename or root}: cannot list folder ({err.strerror or err})") from None
        names = sorted(files)
        if not names and not problems:
            loose = " (it holds mesh files directly: put them in one subfolder per class)" if _has_mesh(root) else ""
            problems.append(
                f"{root}: no class folders holding {EXPECTED} files; expected <class>/*.<ext>, "
                f"<class>/train|test/*.<ext> or train|test/<class>/*.<ext>{loose}"
            )
        index = {name: label for label, name in enumerate(names)}
        items: dict[str, list[tuple[Path, int]]] = {split: [] for split in SPLIT_NAMES}
        for name in names:
            for split in SPLIT_NAMES:
                items[split].extend((path, index[name]) for path in files[name][split])
        if names and not problems:
            for split in SPLIT_NAMES:
                if not items[split]:
                    problems.append(
                        f"{root}: the {split} split has no meshes (a class with a single mesh file puts it "
                        f"in train; a train/test layout needs meshes in both)"
                    )
        return names, items, problems

    def _scan_split_first(self, root: Path, top: list[Path]) -> tuple[dict[str, dict[str, list[Path]]], list[str]]:
        """``<root>/{train,test}/<class>/*.ext``."""
        problems = []
        others = [d.name for d in top if d.name not in SPLIT_NAMES]
        if others:
            problems.append(
                f"{root}: holds train/ or test/ and also {others}; with a top-level split every class "
                f"folder belongs inside train/ and test/"
            )
        files: dict[str, dict[str, list[Path]]] = {}
        for split_dir in top:
            if split_dir.name not in SPLIT_NAMES:
                continue
            for folder in _subdirs(split_dir):
                found = mesh_files(folder)
                if not found:
                    problems.append(f"{folder}: no {EXPECTED} files")
                files.setdefault(folder.name, {s: [] for s in SPLIT_NAMES})[split_dir.name] = found
        return files, problems

    def _scan_class_first(self, root: Path, top: list[Path]) -> tuple[dict[str, dict[str, list[Path]]], list[str]]:
        """``<root>/<class>/*.ext`` or ``<root>/<class>/{train,test}/*.ext``, decided per class."""
        problems = []
        files: dict[str, dict[str, list[Path]]] = {}
        candidates = [(folder, mesh_files(folder)) for folder in top]
        if not any(found or any(_has_mesh(folder / s) for s in SPLIT_NAMES) for folder, found in candidates):
            return files, problems  # no mesh anywhere: reported as a whole by _scan
        for folder, found in candidates:
            split_dirs = [folder / s for s in SPLIT_NAMES if (folder / s).is_dir()]
            if split_dirs and found:
                problems.append(f"{folder}: holds both mesh files and train/ or test/ folders; use one or the other")
                continue
            if split_dirs:
                per_split = {s: [] for s in SPLIT_NAMES}
                for split_dir in split_dirs:
                    per_split[split_dir.name] = mesh_files(split_dir)
                    if not per_split[split_dir.name]:
                        problems.append(f"{split_dir}: no {EXPECTED} files")
                files[folder.name] = per_split
            elif not found:
                problems.append(f"{folder}: no {EXPECTED} files")
            else:
                files[folder.name] = self._split_files(folder.name, found)
        return files, problems

    def _split_files(self, name: str, found: list[Path]) -> dict[str, list[Path]]:
        """One class's sorted files split by a permutation seeded with ``seed`` and the class name."""
        test = seeded_test_rows(len(found), name, self.test_fraction, self.seed)
        return {
            "train": [p for i, p in enumerate(found) if i not in test],
            "test": [p for i, p in enumerate(found) if i in test],
        }

    def _listed(self) -> tuple[list[str], dict[str, list[tuple[Path, int]]]]:
        names, items, problems = self._scan()
        if problems:
            raise DataError(problems[0])
        return names, items

    def class_names(self) -> list[str]:
        return self._listed()[0]

    def items(self, split: str) -> list[tuple[Path, int]]:
        self._check_split_name(split)
        return self._listed()[1][split]

    def check(self, progress: bool = True) -> CheckReport:
        """Every layout problem (all empty folders at once), else every unreadable mesh."""
        try:
            found = self._scan()[2]
        except DataError as err:
            return CheckReport([str(err)], [])
        return CheckReport(found, []) if found else super().check(progress)

    # ---------------------------------------------------------------- reading
    def _item_seed(self, path: Path) -> int:
        """A sampling seed from ``seed`` and the path relative to ``root`` (stable across runs and moves)."""
        try:
            rel = path.relative_to(self.root).as_posix()
        except ValueError:
            rel = path.name
        digest = hashlib.sha256(f"{self.seed}:{rel}".encode()).digest()
        return int.from_bytes(digest[:8], "little")

    def read_item(self, path: Path) -> np.ndarray:
        trimesh = _import_trimesh()
        with _quiet():
            try:
                mesh = trimesh.load(str(path), force="mesh")
            except Exception as err:  # trimesh's parsers raise anything on a corrupt file
                raise SkippableItem(f"{path}: not a readable mesh ({type(err).__name__}: {err})") from None
            if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
                raise SkippableItem(f"{path}: mesh has no faces (empty, corrupt, or a point cloud)")
            if not np.isfinite(np.asarray(mesh.vertices)[np.asarray(mesh.faces)]).all():
                raise SkippableItem(f"{path}: mesh has NaN or Inf vertex coordinates")
            area = float(mesh.area)
            if not np.isfinite(area) or area <= 0:
                raise SkippableItem(f"{path}: mesh has zero or non-finite surface area ({area}): degenerate faces")
            try:
                points, _ = trimesh.sample.sample_surface(mesh, self.num_points, seed=self._item_seed(path))
            except Exception as err:
                raise SkippableItem(f"{path}: surface sampling failed ({type(err).__name__}: {err})") from None
        return check_cloud(np.asarray(points, dtype=np.float64), path, "sampled surface", self.num_points)

    def describe(self) -> str:
        return f"MeshFolder({self.num_points} points)"

    @classmethod
    def detect(cls, root: Path) -> list[PointCloudSet]:
        """Cheap: looks for one mesh file at a supported depth, loads nothing."""
        try:
            top = _subdirs(Path(root))
        except OSError:
            return []
        for folder in top:
            if _has_mesh(folder):
                return [cls(str(root))]
            if folder.name in SPLIT_NAMES:
                try:
                    if any(_has_mesh(sub) for sub in _subdirs(folder)):
                        return [cls(str(root))]
                except OSError:
                    continue
            elif any(_has_mesh(folder / s) for s in SPLIT_NAMES):
                return [cls(str(root))]
        return []
