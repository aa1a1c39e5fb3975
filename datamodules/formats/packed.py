"""Data sets stored as many small files, packed once into the cache and memory-mapped.

ShapeNet55 is 52k ``.npy`` files, ModelNet's resampled release 12k text files and a mesh
folder needs surface sampling: reading those per step would starve any GPU. A
:class:`PackedSet` lists its items (file, label), reads and validates each one once, and
writes ``<split>_points.npy`` (n, P, 3) float32 and ``<split>_labels.npy`` into a cache
directory named by a fingerprint of the listing (paths, sizes, modification times) and
the options; afterwards splits are ``np.load(..., mmap_mode="r")`` views, so the loader
only copies the rows a batch needs and workers share the page cache.
"""

from __future__ import annotations

import json
import os
import warnings
from abc import abstractmethod
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import track

from datamodules.cache import atomic_directory, default_cache_dir, fingerprint
from datamodules.dataset import CheckReport, PointCloudSet, PointCloudSplit, SplitSummary, normalize_unit_sphere
from datamodules.errors import DataError

PACK_VERSION = 1
"""Bump when the packed format or the reading of any format changes."""


class SkippableItem(DataError):
    """A defect of one item that a set may skip with a warning (e.g. a degenerate mesh)."""


class PackedSet(PointCloudSet):
    """Base of the file-per-shape formats: list, read, pack into the cache, memory-map.

    Subclasses define :meth:`class_names`, :meth:`items` and :meth:`read_item`, and set
    ``root`` and ``num_points`` (points stored per cloud: the first ``num_points`` the
    reader returns).
    """

    root: Path
    num_points: int
    normalize: bool = True
    skip_bad_items: bool = False
    """Skip items raising :class:`SkippableItem` (warn and count) instead of failing."""
    read_workers: int = 0
    """Processes reading items while packing (0: this process)."""
    normalize_after_read: bool = True
    """Normalise the first ``num_points`` of what :meth:`read_item` returns (False: it returns the stored cloud)."""

    # ---------------------------------------------------------------- format hooks
    @abstractmethod
    def class_names(self) -> list[str]:
        """The class names; labels index this list."""

    @abstractmethod
    def items(self, split: str) -> list[tuple[Path, int]]:
        """(file, label) of every shape of ``split``, validated as a listing."""

    @abstractmethod
    def read_item(self, path: Path) -> np.ndarray:
        """One cloud (P >= num_points, 3) read and validated from ``path`` (which exists)."""

    def options(self) -> dict[str, Any]:
        """Options that change the packed data (part of the cache key)."""
        return {"num_points": self.num_points, "normalize": self.normalize}

    # ---------------------------------------------------------------- cache
    def _listing(self) -> dict[str, list[tuple[Path, int]]]:
        return {split: self.items(split) for split in self.splits}

    def cache_path(self, listing: dict[str, list[tuple[Path, int]]] | None = None) -> Path:
        """The cache directory of this data set with these options and these files."""
        listing = self._listing() if listing is None else listing
        stats = {}
        for split, items in listing.items():
            rows = []
            for path, label in items:
                try:
                    st = path.stat()
                    rows.append((str(path.relative_to(self.root)), label, st.st_size, st.st_mtime_ns))
                except OSError:
                    rows.append((str(path), label, -1, -1))
            stats[split] = rows
        key = fingerprint(
            {
                "version": PACK_VERSION,
                "format": type(self).__name__,
                "root": str(self.root),
                "options": self.options(),
                "files": stats,
            }
        )
        return default_cache_dir() / "packed" / f"{type(self).__name__.lower()}-{key}"

    def _is_packed(self, path: Path) -> bool:
        return (path / "meta.json").is_file()

    def _read_or_skip(self, path: Path, skipped: list[str], normalize: bool = True) -> np.ndarray | None:
        if not path.is_file():
            raise DataError(f"{path}: listed but not found")
        try:
            cloud = self.read_item(path)
        except SkippableItem as err:
            if not self.skip_bad_items:
                raise
            skipped.append(str(err))
            return None
        cloud = cloud[: self.num_points]
        if self.normalize and normalize and self.normalize_after_read:
            return normalize_unit_sphere(cloud).astype(np.float32)
        return cloud

    def _read_all(self, paths: list[Path], skipped: list[str]) -> Iterator[np.ndarray | None]:
        """Each path's stored cloud in order (None: skipped, its reason appended to ``skipped``), read in
        ``read_workers`` processes when there are any."""
        if self.read_workers <= 0 or len(paths) < 2:
            for path in paths:
                yield self._read_or_skip(path, skipped)
            return
        with ProcessPoolExecutor(self.read_workers) as pool:
            for cloud, reasons in pool.map(self._read_alone, paths, chunksize=8):
                skipped += reasons
                yield cloud

    def _read_alone(self, path: Path) -> tuple[np.ndarray | None, list[str]]:
        """:meth:`_read_or_skip` in a worker process: the cloud and the skip reason it gave, if any."""
        reasons: list[str] = []
        return self._read_or_skip(path, reasons), reasons

    def prepare(self, progress: bool = True, force: bool = False) -> Path:
        """Pack every split into the cache unless it is already there; return the directory."""
        known = getattr(self, "_packed", None)
        if known is not None and not force and self._is_packed(known):
            return known  # fingerprinted once per instance: listing 52k files takes a second
        listing = self._listing()
        target = self.cache_path(listing)
        if self._is_packed(target) and not force:
            self._packed = target
            return target
        names = self.class_names()
        meta: dict[str, Any] = {
            "format": type(self).__name__,
            "root": str(self.root),
            "options": self.options(),
            "classes": names,
        }
        with atomic_directory(target, replace=force) as tmp:
            present: set[int] = set()
            for split, items in listing.items():
                meta[split] = self._pack_split(tmp, split, items, names, progress)
                present |= set(np.load(tmp / f"{split}_labels.npy").tolist())
            self._check_classes(listing, present, names)
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")  # last: marks completion
        self._packed = target
        return target

    def _pack_split(
        self, out: Path, split: str, items: list[tuple[Path, int]], names: list[str], progress: bool
    ) -> dict:
        points = np.lib.format.open_memmap(
            out / f"{split}_points.npy", "w+", np.float32, (len(items), self.num_points, 3)
        )
        labels = np.empty(len(items), dtype=np.int64)
        skipped: list[str] = []
        skipped_files: list[str] = []
        kept = 0
        clouds = zip(items, self._read_all([path for path, _ in items], skipped), strict=True)
        steps = track(clouds, total=len(items), description=f"packing {type(self).__name__} {split}",
                      disable=not progress)
        for (path, label), cloud in steps:
            if cloud is None:
                skipped_files.append(self._relative(path))
                continue
            points[kept] = cloud
            labels[kept] = label
            kept += 1
        self._check_skipped(split, items, labels[:kept], skipped, names)
        points.flush()
        del points
        if kept < len(items):  # rewrite without the skipped rows
            full = np.load(out / f"{split}_points.npy", mmap_mode="r")
            np.save(out / f"{split}_points.tmp.npy", full[:kept])
            del full
            os.replace(out / f"{split}_points.tmp.npy", out / f"{split}_points.npy")
        np.save(out / f"{split}_labels.npy", labels[:kept])
        return {"count": kept, "skipped": len(skipped), "skipped_files": skipped_files, "skipped_reasons": skipped}

    def _check_skipped(
        self, split: str, items: list[tuple[Path, int]], labels: np.ndarray, skipped: list[str], names: list[str]
    ) -> None:
        """Warn about skipped items; fail if the split lost all of them."""
        if not skipped:
            return
        if len(labels) == 0:
            raise DataError(
                f"{self.root}: none of the {len(items)} {split} shapes is readable; first problem: {skipped[0]}"
            )
        shown = "; ".join(skipped[:3]) + (f"; and {len(skipped) - 3} more" if len(skipped) > 3 else "")
        warnings.warn(
            f"{self.root}: skipped {len(skipped)} of {len(items)} {split} shapes as unreadable: {shown}", stacklevel=3
        )
        lost = sorted({label for _, label in items} - set(labels.tolist()))
        if lost:
            warnings.warn(
                f"{self.root}: the {split} split has no readable shape of {[names[i] for i in lost]}", stacklevel=3
            )

    def _check_classes(self, listing: dict[str, list[tuple[Path, int]]], present: set[int], names: list[str]) -> None:
        """Fail if a class has shapes listed but none of them is readable."""
        for label in sorted({label for items in listing.values() for _, label in items} - present):
            folder = next(path.parent for items in listing.values() for path, lab in items if lab == label)
            raise DataError(f"{folder}: class {names[label]!r} has no readable shape")

    # ---------------------------------------------------------------- reading
    def _relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix() if path.is_relative_to(self.root) else str(path)

    def skipped(self, split: str) -> list[tuple[str, str]]:
        """(file relative to ``root``, reason) of each item of ``split`` that packing skipped."""
        meta = json.loads((self.prepare(progress=False) / "meta.json").read_text()).get(split, {})
        files = meta.get("skipped_files", [])
        return list(zip(files, meta.get("skipped_reasons") or [""] * len(files), strict=True))

    def item_names(self, split: str, count: int) -> list[str]:
        """Each packed cloud's file, relative to ``root`` (the listing minus the skipped files)."""
        meta = json.loads((self.prepare(progress=False) / "meta.json").read_text())
        skipped = set(meta.get(split, {}).get("skipped_files", []))
        names = [self._relative(path) for path, _ in self.items(split)]
        names = [n for n in names if n not in skipped]
        return names if len(names) == count else super().item_names(split, count)

    def load(self, split: str) -> PointCloudSplit:
        """The packed split, memory-mapped (packs it first if needed, without a bar)."""
        self._check_split_name(split)
        path = self.prepare(progress=False)
        meta = json.loads((path / "meta.json").read_text())
        points = np.load(path / f"{split}_points.npy", mmap_mode="r")
        labels = np.load(path / f"{split}_labels.npy")
        return PointCloudSplit(points, labels, list(meta["classes"]), source=f"{self.describe()} at {self.root}")

    def check(self, progress: bool = True) -> CheckReport:
        """Read every item of every split (writing nothing); list what is wrong, summarise the rest.

        The summary describes the clouds as stored in the files (before normalisation).
        """
        found: list[str] = []
        summaries: list[SplitSummary] = []
        try:
            names = self.class_names()
        except DataError as err:
            return CheckReport([str(err)], [])
        listing: dict[str, list[tuple[Path, int]]] = {}
        present: set[int] = set()
        for split in self.splits:
            try:
                items = listing[split] = self.items(split)
            except DataError as err:
                found.append(str(err))
                continue
            skipped: list[str] = []
            labels, radii = [], []
            for path, label in track(items, description=f"checking {self.describe()} {split}", disable=not progress):
                try:
                    cloud = self._read_or_skip(path, skipped, normalize=False)
                except DataError as err:
                    found.append(str(err))
                    continue
                if cloud is not None:
                    labels.append(label)
                    radii.append(float(np.sqrt((cloud.astype(np.float64) ** 2).sum(-1)).max()))
            try:  # warns about skipped items, fails if a class or the split lost all of them
                self._check_skipped(split, items, np.asarray(labels, dtype=np.int64), skipped, names)
            except DataError as err:
                found.append(str(err))
            present |= set(labels)
            if labels:
                summaries.append(
                    SplitSummary.from_radii(split, np.asarray(radii), np.asarray(labels), len(names), self.num_points)
                )
        try:
            self._check_classes(listing, present, names)
        except DataError as err:
            found.append(str(err))
        return CheckReport(found, summaries)
