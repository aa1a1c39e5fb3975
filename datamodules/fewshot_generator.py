"""Few-shot folds drawn from any labelled data set, reproducibly from a seed.

As the released ModelNet40 folds were made (Point-BERT's generator): W classes at random,
S train shapes of each from the **train** split and ``query`` (20) test shapes of each from
the **test** split, labels renumbered ``0 … W-1``. Only classes with at least S train and
``query`` test shapes can be drawn. Fold ``k`` of seed ``s`` is a pure function of the data
set's labels, ``(way, shot, query)`` and ``(s, k)``: the same on every machine and every run,
and independent of the other folds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datamodules.dataset import PointCloudSet, PointCloudSplit
from datamodules.detect import resolve_dataset
from datamodules.errors import DataError
from datamodules.splits.fewshot_fold import FewShotFold, FoldSet, check_way


@dataclass(frozen=True)
class FoldIndex:
    """Which shapes of the source make one fold."""

    classes: np.ndarray
    """(way,) source label of fold class ``0 … way-1``."""
    train: np.ndarray
    """(way·shot,) rows of the source's train split, grouped by fold class."""
    test: np.ndarray
    """(way·query,) rows of the source's test split, grouped by fold class."""


def sample_fold(
    train_labels: np.ndarray,
    test_labels: np.ndarray,
    way: int,
    shot: int,
    query: int = 20,
    seed: int = 0,
    fold: int = 0,
    class_names: list[str] | None = None,
    source: str = "the data set",
) -> FoldIndex:
    """Draw fold ``fold`` of seed ``seed`` (see the module docstring); DataError naming the option that cannot be met."""
    for option, value in (("--shot", shot), ("--query", query)):
        if value < 1:
            raise DataError(f"{option}={value}: must be at least 1")
    train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
    num_classes = int(max(train_labels.max(initial=-1), test_labels.max(initial=-1))) + 1
    names = class_names or [str(c) for c in range(num_classes)]
    train_count = np.bincount(train_labels, minlength=num_classes)
    test_count = np.bincount(test_labels, minlength=num_classes)
    eligible = np.flatnonzero((train_count >= shot) & (test_count >= query))
    check_way(way, num_classes, f"of {source}")
    if way > len(eligible):
        short_test = [f"{names[c]} {test_count[c]}" for c in range(num_classes) if test_count[c] < query]
        short_train = [f"{names[c]} {train_count[c]}" for c in range(num_classes) if train_count[c] < shot]
        details = []
        if short_test:
            details.append(f"fewer than --query={query} test shapes: {', '.join(short_test[:8])}")
        if short_train:
            details.append(f"fewer than --shot={shot} train shapes: {', '.join(short_train[:8])}")
        raise DataError(
            f"--way={way}: only {len(eligible)} of the {num_classes} classes of {source} have at least {shot} train "
            f"and {query} test shapes ({'; '.join(details)}); lower --way, --shot or --query"
        )
    rng = np.random.default_rng([seed, fold, 0xF01D])
    classes = rng.choice(eligible, size=way, replace=False)
    train_rows, test_rows = [], []
    for cls in classes:
        train_rows.append(rng.choice(np.flatnonzero(train_labels == cls), size=shot, replace=False))
        test_rows.append(rng.choice(np.flatnonzero(test_labels == cls), size=query, replace=False))
    return FoldIndex(classes.astype(np.int64), np.concatenate(train_rows), np.concatenate(test_rows))


class GeneratedFewShot(FoldSet):
    """Fold ``fold`` of ``way``-way ``shot``-shot tasks drawn from a labelled data set with ``seed``.

    Args:
        dataset: the labelled source by class path (``datamodules.ModelNet40H5``, ...).
        root: shortcut: a data folder whose layout is detected. Neither given: the embedded
            synthetic set.
        way: classes per fold.
        shot: train shapes per class (from the source's train split).
        query: test shapes per class (from the source's test split).
        fold: which fold of the seed.
        seed: the draw.
    """

    def __init__(
        self,
        dataset: PointCloudSet | None = None,
        root: str | None = None,
        way: int = 5,
        shot: int = 10,
        query: int = 20,
        fold: int = 0,
        seed: int = 0,
    ) -> None:
        self.dataset = resolve_dataset(dataset, root, "data.dataset.dataset", "data.dataset.root")
        self.way = way
        self.shot = shot
        self.query = query
        self.fold = fold
        self.seed = seed
        self._fold: FewShotFold | None = None
        self._source: tuple[PointCloudSplit, PointCloudSplit] | None = None

    def prepare(self, progress: bool = True) -> None:
        """Generate or pack the source (its own one-time work)."""
        self.dataset.prepare(progress=progress)

    def other_fold(self, fold: int) -> GeneratedFewShot:
        """Fold ``fold`` of the same source, way, shot, query and seed (sharing the loaded source)."""
        other = GeneratedFewShot(self.dataset, None, self.way, self.shot, self.query, fold, self.seed)
        other._source = self._source
        return other

    def source_splits(self) -> tuple[PointCloudSplit, PointCloudSplit]:
        """The source's train and test splits (loaded once)."""
        if self._source is None:
            self._source = (self.dataset.load("train"), self.dataset.load("test"))
        return self._source

    def index(self) -> FoldIndex:
        """The rows of the source this fold takes."""
        train, test = self.source_splits()
        return sample_fold(
            train.labels, test.labels, self.way, self.shot, self.query, self.seed, self.fold,
            train.class_names, self.dataset.describe(),
        )

    def fold_data(self) -> FewShotFold:
        if self._fold is None:
            train, test = self.source_splits()
            index = self.index()
            remap = {int(c): i for i, c in enumerate(index.classes)}
            names = [train.class_names[c] for c in index.classes]

            def part(split: PointCloudSplit, rows: np.ndarray, name: str) -> PointCloudSplit:
                order = np.argsort(rows, kind="stable")  # read a memory-mapped split front to back
                points = np.empty((len(rows), *split.points.shape[1:]), dtype=np.float32)
                points[order] = split.points[rows[order]]
                labels = np.asarray([remap[int(c)] for c in split.labels[rows]], dtype=np.int64)
                return PointCloudSplit(points, labels, names, f"{self.describe()} [{name}]")

            self._fold = FewShotFold(
                part(train, index.train, "train"), part(test, index.test, "test"), self.way, self.shot, self.fold,
                self.describe(), [int(c) for c in index.classes], index.train, index.test,
            )
        return self._fold

    def describe(self) -> str:
        return (
            f"GeneratedFewShot({self.way}-way {self.shot}-shot, {self.query} test shapes per class, fold {self.fold}, "
            f"seed {self.seed}, from {self.dataset.describe()})"
        )

