"""A linear SVM on frozen features, its C chosen by cross-validation on the train split only.

A plain function on numpy features (:func:`linear_svm`), so the probe callback, few-shot and
benchmarks call it without Lightning. By default the SVM's C is chosen by stratified
cross-validation on the train split only (:func:`select_svm_c` over :data:`SVM_C_GRID`); the test
split is predicted once, with the refitted model.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from lightning_modules.evaluation.metrics import accuracy, mean_class_accuracy

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline


SVM_C_GRID: tuple[float, ...] = tuple(10.0 ** (e / 2) for e in range(-10, 3))
"""C values tried by ``svm_c="auto"``: 1e-5 … 1e1 in half decades (13 values).

Features are standardised, so one grid fits every backbone width. Near the optimum,
neighbouring half-decades differ by about a point of CV accuracy or less. The low end is
cheap and is where noisy features of a few thousand samples peak; above 10 the
squared-hinge fit is practically unregularised (accuracy saturates) and liblinear slow.
"""

SVM_CV_PATIENCE = 2
"""The ascending C scan stops after this many values in a row (a decade) score below the
best one: past its peak the CV accuracy only falls further, and large C is the slow end
(liblinear needs more iterations the larger C)."""

SVM_C_FALLBACK = 0.05
"""C of ``svm_c="auto"`` when the train split cannot be cross-validated (the old default)."""

SVM_MAX_ITER = 5000
"""liblinear's iteration limit per fit (a refit that reaches it warns)."""


@dataclass(frozen=True)
class SvmResult:
    """Linear SVM on the test split: accuracy and mean per-class accuracy (%), and its C."""

    acc: float
    macc: float
    c: float


def _svm(c: float) -> Pipeline:
    """Standardise, then a one-vs-rest squared-hinge linear SVM.

    The dual solver: at the C a probe picks (<= 1e-2) it was 2-3x faster than the primal
    one that ``dual="auto"`` would take for n > d (2240x256 and 6400x768, same accuracy).
    """
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    return make_pipeline(StandardScaler(), LinearSVC(C=c, dual=True, max_iter=SVM_MAX_ITER, random_state=0))


def _cv_correct(x: np.ndarray, y: np.ndarray, c: float, splits: list[tuple[np.ndarray, np.ndarray]]) -> int:
    """Held-out predictions that are right, summed over the folds."""
    from sklearn.exceptions import ConvergenceWarning

    correct = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the refit still warns
        for fit_idx, val_idx in splits:
            clf = _svm(c).fit(x[fit_idx], y[fit_idx])
            correct += int((clf.predict(x[val_idx]) == y[val_idx]).sum())
    return correct


def select_svm_c(
    train_x: np.ndarray, train_y: np.ndarray, folds: int = 5, grid: tuple[float, ...] = SVM_C_GRID
) -> float:
    """C of the best stratified ``folds``-fold cross-validated accuracy on these samples.

    Only the given (train) samples are used. Folds are fewer when the smallest class has
    fewer members; a class of one sample cannot be both fitted and validated, so then
    there is no cross-validation and :data:`SVM_C_FALLBACK` is returned with a warning.
    The grid is scanned in ascending order and only a strictly better score moves the
    choice (ties keep the smaller C); the scan stops once :data:`SVM_CV_PATIENCE` values
    in a row score below the best. The fold split is seeded: the choice is deterministic.
    """
    return cross_validate_svm_c(train_x, train_y, folds, grid)[0]


def cross_validate_svm_c(
    train_x: np.ndarray, train_y: np.ndarray, folds: int = 5, grid: tuple[float, ...] = SVM_C_GRID
) -> tuple[float, float | None]:
    """:func:`select_svm_c`'s C and its cross-validated accuracy (%) on these samples (None
    when they cannot be cross-validated: a class of one sample)."""
    from sklearn.model_selection import StratifiedKFold

    smallest = int(np.unique(train_y, return_counts=True)[1].min())
    if smallest < 2:
        warnings.warn(
            f"svm_c=auto: a class has a single train sample, so C cannot be cross-validated; "
            f"using C={SVM_C_FALLBACK}",
            stacklevel=3,
        )
        return SVM_C_FALLBACK, None
    splits = list(StratifiedKFold(min(folds, smallest), shuffle=True, random_state=0).split(train_x, train_y))
    best_c, best, worse = 0.0, -1, 0
    for c in sorted(grid):
        correct = _cv_correct(train_x, train_y, c, splits)
        if correct > best:
            best_c, best, worse = c, correct, 0
        elif correct < best:
            worse += 1
            if worse >= SVM_CV_PATIENCE:
                break
    return float(best_c), 100.0 * best / len(train_y)


def check_svm_c(c: float | str) -> float | Literal["auto"]:
    """``c`` if it is ``"auto"`` or a positive number, else a ValueError."""
    if isinstance(c, str):
        if c != "auto":
            raise ValueError(f"svm_c must be a positive number or 'auto', got {c!r}")
        return "auto"
    if not c > 0:
        raise ValueError(f"svm_c must be a positive number or 'auto', got {c!r}")
    return float(c)


def linear_svm(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    c: float | str = "auto",
    folds: int = 5,
) -> SvmResult:
    """Fit a linear SVM on standardised train features and score it on the test split.

    Args:
        train_x, train_y: (n, d) features and (n,) integer labels to fit on.
        test_x, test_y: (m, d) features and (m,) labels, predicted once.
        c: the SVM's C, or ``"auto"``: chosen by :func:`select_svm_c` on the train split.
        folds: cross-validation folds for ``"auto"``.

    Returns:
        accuracy and mean per-class accuracy (percent) on the test split, and the C used.
    """
    c = check_svm_c(c)
    chosen = select_svm_c(train_x, train_y, folds) if c == "auto" else float(c)
    pred = _svm(chosen).fit(train_x, train_y).predict(test_x)
    return SvmResult(accuracy(test_y, pred), mean_class_accuracy(test_y, pred), chosen)
