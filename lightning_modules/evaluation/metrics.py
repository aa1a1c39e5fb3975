"""Figures of a classifier's predictions, and how every command prints a logged figure.

Accuracies are in percent. The mean per-class accuracy is what the probe's collapse warning
reads: a classifier predicting one class scores exactly chance on it, however unbalanced the split.
"""

from __future__ import annotations

import numpy as np


def format_metric(name: str, value: float) -> str:
    """A logged figure as every command prints it: accuracies (%) with 2 decimals, the SVM's C with 3
    significant digits, losses with 4."""
    if name.endswith("svm_c"):
        return f"{value:.3g}"
    return f"{value:.4g}" if "loss" in name else f"{value:.2f}"


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of correct predictions, in percent."""
    return float((np.asarray(y_pred) == np.asarray(y_true)).mean() * 100.0)


def mean_class_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean over the classes present in ``y_true`` of their recall, in percent.

    Unlike the accuracy, a classifier that predicts one class for everything scores
    exactly chance (100 / classes), however unbalanced the split.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    recalls = [(y_pred[y_true == c] == c).mean() for c in np.unique(y_true)]
    return float(np.mean(recalls) * 100.0)
