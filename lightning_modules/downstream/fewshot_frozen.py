"""Few-shot classification on frozen features: a linear SVM and kNN fitted on each fold's train shapes.

The fast protocol (seconds on a CPU): the backbone embeds each fold's shapes once (the
probe's features, :func:`~lightning_modules.evaluation.probe.extract_features`, on the first
``num_points`` points), then the probe's classifiers run per fold — a linear SVM on
standardised features whose C is chosen by stratified cross-validation on the fold's
**train** shapes only (:func:`~lightning_modules.evaluation.linear_svm.linear_svm`), and DINO's weighted kNN —
and predict the fold's test shapes once. Nothing is tuned on test shapes.

Folds drawn from one data set share their source, so the shapes they use are embedded once
for all folds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from datamodules.splits.fewshot_fold import FoldSet
from datamodules.fewshot_generator import GeneratedFewShot
from lightning_modules.evaluation.knn import weighted_knn
from lightning_modules.evaluation.linear_svm import linear_svm
from lightning_modules.evaluation.probe import extract_features


@dataclass
class FrozenFoldScores:
    """One fold's test accuracies (%) with frozen features, and the SVM's C."""

    fold: int
    svm_acc: float
    svm_macc: float
    svm_c: float
    knn_acc: float
    knn_macc: float


class FoldFeatures:
    """Features of the folds' shapes, computed once per shape of a shared source."""

    def __init__(self, backbone: nn.Module, num_points: int, batch_size: int, device: torch.device) -> None:
        self.backbone = backbone
        self.num_points = num_points
        self.batch_size = batch_size
        self.device = device
        self._shared: dict[tuple[int, str], tuple[np.ndarray, dict[int, int]]] = {}

    def _embed(self, points: np.ndarray) -> np.ndarray:
        return extract_features(self.backbone, points[:, : self.num_points], self.batch_size, self.device)

    def prepare_shared(self, folds: list[FoldSet]) -> None:
        """Embed, once, every source row any of the generated ``folds`` uses."""
        generated = [f for f in folds if isinstance(f, GeneratedFewShot)]
        if not generated:
            return
        train, test = generated[0].source_splits()
        rows: dict[str, set[int]] = {"train": set(), "test": set()}
        for fold in generated:
            index = fold.index()
            rows["train"].update(index.train.tolist())
            rows["test"].update(index.test.tolist())
        for name, split in (("train", train), ("test", test)):
            wanted = np.asarray(sorted(rows[name]), dtype=np.int64)
            feats = self._embed(np.asarray(split.points[wanted], dtype=np.float32))
            self._shared[(id(split), name)] = (feats, {int(r): i for i, r in enumerate(wanted)})

    def of(self, fold: FoldSet) -> tuple[np.ndarray, np.ndarray]:
        """(train, test) features of a fold."""
        data = fold.fold_data()
        if isinstance(fold, GeneratedFewShot) and data.train_index is not None:
            train_src, test_src = fold.source_splits()
            parts = []
            for split, name, index in ((train_src, "train", data.train_index), (test_src, "test", data.test_index)):
                cached = self._shared.get((id(split), name))
                if cached is None:
                    break
                feats, where = cached
                parts.append(feats[[where[int(r)] for r in index]])
            if len(parts) == 2:
                return parts[0], parts[1]
        return self._embed(data.train.points), self._embed(data.test.points)


def frozen_fewshot(
    features: FoldFeatures, folds: list[FoldSet], svm_c: float | str = "auto", svm_folds: int = 5, knn_k: int = 20,
    knn_temperature: float = 0.07,
) -> list[FrozenFoldScores]:
    """Linear SVM (C by CV on the fold's train shapes) and weighted kNN per fold, test shapes predicted once."""
    features.prepare_shared(folds)
    scores = []
    for fold in folds:
        data = fold.fold_data()
        train_x, test_x = features.of(fold)
        svm = linear_svm(train_x, data.train.labels, test_x, data.test.labels, svm_c, svm_folds)
        knn = weighted_knn(train_x, data.train.labels, test_x, data.test.labels, min(knn_k, len(train_x)), knn_temperature)
        scores.append(FrozenFoldScores(fold.fold, svm.acc, svm.macc, svm.c, knn.acc, knn.macc))
    return scores
