"""Stratified k-fold assignment of the train split, for cross-validated checkpoint selection.

On a small labelled set a single carved validation split is a coin toss (30 shapes decide), and
the shapes it holds are never fitted. Cross-validation uses every train shape for validation once
and for fitting ``k - 1`` times; the final network then fits the whole train split.

The rule (a pure function of ``(labels, k, seed)``): each class's members are put in a seeded
random order, the classes are laid end to end in class order, and the i-th shape of that sequence
goes to fold ``(i + offset) mod k``. Every class is then spread as evenly as it can be (its
members' folds differ by at most one in count), and the folds' sizes differ by at most one.
"""

from __future__ import annotations

import numpy as np

from datamodules.errors import DataError

AUTO_FOLDS = 4
"""Folds ``data.folds: auto`` chooses for a small train split."""

AUTO_MAX_SHAPES = 1000
"""``data.folds: auto`` cross-validates a train split of fewer shapes than this; a larger one keeps the
single validation split (``data.val_fraction``), which is then large enough and ``k`` times cheaper."""


def stratified_folds(labels: np.ndarray, k: int, seed: int = 0, field: str = "data.folds") -> np.ndarray:
    """The fold (``0 .. k-1``) of each shape of ``labels``.

    Args:
        labels: (n,) integer class of each train shape.
        k: number of folds, at least 2 and at most ``n``.
        seed: the draw (the same seed always gives the same folds).
        field: the option named in errors.

    Returns:
        (n,) int64 fold index of each shape.
    """
    labels = np.asarray(labels)
    if k < 2:
        raise DataError(f"{field}={k}: cross-validation needs at least 2 folds (0 turns it off)")
    if k > len(labels):
        raise DataError(f"{field}={k}: more folds than the {len(labels)} train shapes")
    rng = np.random.default_rng([seed, 0xF01D5])
    order = np.concatenate([rng.permutation(np.flatnonzero(labels == cls)) for cls in np.unique(labels)])
    folds = np.empty(len(labels), dtype=np.int64)
    folds[order] = np.arange(len(order)) % k
    return folds


def resolve_folds(folds: int | str, train_shapes: int) -> int:
    """``data.folds`` as a number: ``auto`` is :data:`AUTO_FOLDS` below :data:`AUTO_MAX_SHAPES` train shapes, else 0."""
    if folds == "auto":
        return AUTO_FOLDS if train_shapes < AUTO_MAX_SHAPES else 0
    if not isinstance(folds, int) or isinstance(folds, bool) or folds < 0 or folds == 1:
        raise DataError(f"data.folds={folds!r}: 0 (one validation split), 'auto', or a number of folds >= 2")
    return folds
