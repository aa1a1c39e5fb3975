"""One W-way S-shot fold: W classes, S train shapes and a few test shapes of each.

Folds are read from the released ``ModelNetFewshot`` pickles
(:class:`~datamodules.formats.modelnet_fewshot.ModelNetFewShot`) or drawn from any labelled data set
(:class:`~datamodules.fewshot_generator.GeneratedFewShot`). Either way a fold is a small
:class:`~datamodules.dataset.PointCloudSet` whose labels are ``0 … W-1``, so fine-tuning, the
probe's classifiers and ``pointdwc embed`` read it like any other data set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from datamodules.dataset import PointCloudSet, PointCloudSplit
from datamodules.errors import DataError

SETTING_NAME = re.compile(r"^(\d+)way_?(\d+)shot$")
"""A setting's folder: ``5way_10shot`` as Point-BERT's loader reads it (``5way10shot`` as its
DATASET.md draws it is accepted too)."""


def setting_name(way: int, shot: int) -> str:
    """The folder of a setting in the released layout (``5way_10shot``)."""
    return f"{way}way_{shot}shot"


def parse_setting(name: str) -> tuple[int, int] | None:
    """``(way, shot)`` of a setting folder's name, or None if it is not one."""
    match = SETTING_NAME.match(name)
    return (int(match.group(1)), int(match.group(2))) if match else None


@dataclass
class FewShotFold:
    """The shapes of one fold, labels ``0 … way-1`` in both splits."""

    train: PointCloudSplit
    test: PointCloudSplit
    way: int
    shot: int
    fold: int
    source: str
    """Where the fold came from (a pickle file, or the data set and seed it was drawn from)."""
    original_labels: list[int] = field(default_factory=list)
    """Label of class ``i`` in the data set the fold was cut from."""
    train_index: np.ndarray | None = None
    """Rows of the source's train split (generated folds), so features can be computed once."""
    test_index: np.ndarray | None = None
    columns: int = 3
    """Columns per point in the source (6: xyz + normals in the release; only xyz is used)."""

    def query_counts(self) -> np.ndarray:
        """Test shapes of each class (length ``way``)."""
        return np.bincount(self.test.labels, minlength=self.way)


class FoldSet(PointCloudSet):
    """Base of the few-shot data sets: a :class:`PointCloudSet` whose splits are one fold's."""

    way: int
    shot: int
    fold: int

    def fold_data(self) -> FewShotFold:
        """The fold (read or drawn once, then kept)."""
        raise NotImplementedError

    def load(self, split: str) -> PointCloudSplit:
        """The fold's ``train`` (W·S shapes) or ``test`` split."""
        self._check_split_name(split)
        data = self.fold_data()
        return data.train if split == "train" else data.test


def check_way(way: int, available: int, what: str, field_name: str = "--way") -> None:
    """``way`` classes can be drawn from ``available`` eligible ones, else one DataError naming the option."""
    if way < 2:
        raise DataError(f"{field_name}={way}: a few-shot task needs at least 2 classes")
    if way > available:
        raise DataError(f"{field_name}={way} is larger than the {available} classes {what}")
