"""What every data set offers: named splits of labelled clouds, validated at the boundary.

A :class:`PointCloudSet` is one data set on disk (or generated): the DataModule uses it
as the pretraining source (labels ignored) and :class:`~lightning_modules.evaluation.probe.LinearProbe`
as the probe's train/test data. Concrete sets are chosen by class path in YAML, e.g.
``class_path: datamodules.ShapeNet55``. Every problem with the files is one
:class:`~datamodules.errors.DataError` whose message names the file and the field.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from datamodules.errors import DataError


@dataclass
class PointCloudSplit:
    """One split: clouds (in memory or memory-mapped), labels and class names."""

    points: np.ndarray
    """(n, P, 3) float32."""
    labels: np.ndarray
    """(n,) int64 in [0, len(class_names)); all -1 for an unlabelled set (no class names)."""
    class_names: list[str]
    source: str = ""
    """Where the split came from, for messages."""

    def __len__(self) -> int:
        return len(self.points)

    @property
    def points_per_cloud(self) -> int:
        return int(self.points.shape[1])

    def require_points(self, num_points: int | None, field: str) -> None:
        """Fail with a message naming ``field`` if clouds have fewer than ``num_points``."""
        if num_points is not None and self.points_per_cloud < num_points:
            raise DataError(
                f"{field}={num_points} but the clouds of {self.source} have only {self.points_per_cloud} "
                f"points; lower {field} to at most {self.points_per_cloud}"
            )


def existing_root(root: str | os.PathLike) -> Path:
    """``root`` as an absolute path, or a DataError if it is not a directory."""
    path = Path(root).expanduser().absolute()
    if not path.is_dir():
        raise DataError(f"{path}: data root does not exist or is not a directory")
    return path


def read_lines(path: Path, what: str) -> list[str]:
    """Non-empty stripped lines of a listing file; DataError if it is missing or empty."""
    if not path.is_file():
        raise DataError(f"{path}: missing ({what})")
    try:
        lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: unreadable ({err})") from None
    if not lines:
        raise DataError(f"{path}: empty ({what})")
    return lines


def normalize_unit_sphere(points: np.ndarray) -> np.ndarray:
    """Centre a (P, 3) cloud on its centroid and scale its farthest point to radius 1.

    The one numpy copy: the data sets and the synthetic shape builder use it; the crops' batched
    torch form is :func:`datamodules.views.augment.normalize_unit_sphere`.
    """
    centred = points - points.mean(axis=0, keepdims=True)
    radius = float(np.sqrt((centred**2).sum(axis=1)).max())
    return centred / radius if radius > 0 else centred


def check_cloud(points: np.ndarray, path: Path, field: str, min_points: int) -> np.ndarray:
    """A (P, 3) finite float cloud with at least ``min_points`` points, as float32."""
    if points.ndim != 2 or points.shape[-1] != 3:
        raise DataError(f"{path}: {field} must have shape (points, 3), got {points.shape}")
    if points.shape[0] == 0:
        raise DataError(f"{path}: {field} is an empty cloud")
    if points.shape[0] < min_points:
        raise DataError(f"{path}: {field} has {points.shape[0]} points, fewer than the {min_points} requested")
    if not np.issubdtype(points.dtype, np.floating) and not np.issubdtype(points.dtype, np.integer):
        raise DataError(f"{path}: {field} must be numeric, got {points.dtype}")
    if not np.isfinite(points).all():
        raise DataError(f"{path}: {field} has NaN or Inf coordinates")
    return points.astype(np.float32, copy=False)


@dataclass
class SplitSummary:
    """What ``pointdwc data check`` prints for one split."""

    split: str
    count: int
    class_counts: list[int]
    """Shapes per class (length: number of classes; empty for an unlabelled set)."""
    points_per_cloud: int
    radius: tuple[float, float, float]
    """Min, median and max over clouds of the farthest point's distance to the origin."""

    @classmethod
    def of(
        cls, split: str, points: np.ndarray, labels: np.ndarray, num_classes: int, chunk: int = 1024
    ) -> SplitSummary:
        """Summary of (possibly memory-mapped) ``points`` read in chunks."""
        radii = [
            np.sqrt((np.asarray(points[i : i + chunk], dtype=np.float32) ** 2).sum(-1)).max(-1)
            for i in range(0, len(points), chunk)
        ]
        return cls.from_radii(
            split, np.concatenate(radii) if radii else np.zeros(0), labels, num_classes, int(points.shape[1])
        )

    @classmethod
    def from_radii(
        cls, split: str, radii: np.ndarray, labels: np.ndarray, num_classes: int, points_per_cloud: int
    ) -> SplitSummary:
        """Summary from each cloud's radius (clouds read one by one)."""
        r = np.asarray(radii, dtype=np.float64) if len(radii) else np.zeros(1)
        labels = np.asarray(labels, dtype=np.int64)
        counts = np.bincount(labels[labels >= 0], minlength=num_classes).tolist()  # -1: unlabelled
        return cls(split, len(labels), counts, points_per_cloud, (float(r.min()), float(np.median(r)), float(r.max())))


@dataclass
class CheckReport:
    """Every problem found in a data set (empty: usable) and the summary of its splits."""

    problems: list[str]
    summaries: list[SplitSummary]
    notes: list[str] = field(default_factory=list)
    """Facts about the layout beyond the splits (e.g. the folds of a few-shot setting, the part ids of a segmentation set)."""


class PointCloudSet(ABC):
    """A data set with ``train`` and ``test`` splits of labelled clouds.

    Subclasses read one on-disk layout. ``prepare`` does any one-time work (generation,
    packing into the cache) with a progress bar; ``load`` returns a validated split;
    ``check`` lists every defect it can find without stopping at the first one, and
    summarises the splits (for ``pointdwc data check``); ``detect`` recognises the layout from a folder.
    """

    splits: tuple[str, ...] = ("train", "test")

    def prepare(self, progress: bool = True) -> None:
        """One-time work before ``load`` (default: none)."""

    @abstractmethod
    def load(self, split: str) -> PointCloudSplit:
        """The validated split ``split`` (``train`` or ``test``)."""

    def check(self, progress: bool = True) -> CheckReport:
        """Validate every split without writing anything; one message per problem."""
        found, summaries = [], []
        for split in self.splits:
            try:
                loaded = self.load(split)
            except DataError as err:
                found.append(str(err))
            else:
                summaries.append(SplitSummary.of(split, loaded.points, loaded.labels, len(loaded.class_names)))
        return CheckReport(found, summaries)

    def problems(self, progress: bool = True) -> list[str]:
        """Every defect found, one actionable message each (empty: usable)."""
        return self.check(progress).problems

    def _check_split_name(self, split: str) -> None:
        if split not in self.splits:
            raise DataError(f"{self.describe()}: unknown split {split!r}; expected one of {list(self.splits)}")

    def describe(self) -> str:
        """A short name with the options that select the data, for summaries and messages."""
        return type(self).__name__

    def item_names(self, split: str, count: int) -> list[str]:
        """A name for each of the ``count`` clouds of the loaded ``split``, in order (``pointdwc embed``).

        ``<split>/<index>`` here; formats that know their files name them (relative path,
        or ``file.h5[row]``).
        """
        return [f"{split}/{i}" for i in range(count)]

    @classmethod
    def detect(cls, root: Path) -> list[PointCloudSet]:
        """Instances of this set found in ``root`` (empty when the layout does not match)."""
        return []
