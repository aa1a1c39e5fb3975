"""DINO's weighted kNN classifier on frozen features.

A plain function on numpy features (:func:`weighted_knn`), so the probe callback, few-shot and
benchmarks call it without Lightning: neighbours by cosine similarity, votes weighted exp(sim / T).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from lightning_modules.evaluation.metrics import accuracy, mean_class_accuracy


@dataclass(frozen=True)
class KnnResult:
    """Weighted kNN on the test split: accuracy and mean per-class accuracy (%)."""

    acc: float
    macc: float


def knn_predict(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, k: int = 20, temperature: float = 0.07
) -> np.ndarray:
    """Labels from DINO's weighted kNN vote on cosine similarity (weights exp(sim / T))."""
    train = F.normalize(torch.from_numpy(np.asarray(train_x)).float(), dim=1)
    test = F.normalize(torch.from_numpy(np.asarray(test_x)).float(), dim=1)
    labels = torch.from_numpy(np.asarray(train_y)).long()
    k = min(k, len(train))
    sims, idx = (test @ train.T).topk(k, dim=1)
    weights = (sims / temperature).exp()
    votes = torch.zeros(len(test), int(labels.max()) + 1).scatter_add_(1, labels[idx], weights)
    return votes.argmax(1).numpy()


def weighted_knn(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    k: int = 20,
    temperature: float = 0.07,
) -> KnnResult:
    """Accuracy and mean per-class accuracy (%) of :func:`knn_predict` on the test split."""
    pred = knn_predict(train_x, train_y, test_x, k, temperature)
    return KnnResult(accuracy(test_y, pred), mean_class_accuracy(test_y, pred))
