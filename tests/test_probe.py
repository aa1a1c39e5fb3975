"""Linear-probe classifiers and the callback's schedule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lightning_modules.probe import LinearProbe, extract_features, knn_accuracy, svm_accuracy
from tests.helpers import tiny_data, tiny_module, tiny_trainer


def naive_weighted_knn(train_x, train_y, test_x, k, t):
    """DINO's weighted kNN vote written per test sample."""
    tr = train_x / np.linalg.norm(train_x, axis=1, keepdims=True)
    preds = []
    for x in test_x:
        sims = tr @ (x / np.linalg.norm(x))
        nn = np.argsort(-sims)[:k]
        votes = {}
        for j in nn:
            votes[train_y[j]] = votes.get(train_y[j], 0.0) + np.exp(sims[j] / t)
        preds.append(max(votes, key=votes.get))
    return np.array(preds)


def test_knn_accuracy_matches_naive_vote() -> None:
    rng = np.random.default_rng(0)
    train_x, test_x = rng.normal(size=(60, 8)).astype("f4"), rng.normal(size=(25, 8)).astype("f4")
    train_y, test_y = rng.integers(0, 4, 60), rng.integers(0, 4, 25)
    expected = (naive_weighted_knn(train_x, train_y, test_x, 5, 0.07) == test_y).mean() * 100
    assert knn_accuracy(train_x, train_y, test_x, test_y, 5, 0.07) == pytest.approx(expected)


def test_svm_separates_separable_features_and_fails_on_noise() -> None:
    rng = np.random.default_rng(1)
    y = np.arange(200) % 4
    x = rng.normal(size=(200, 16)) + 8 * np.eye(16)[y]
    assert svm_accuracy(x[:120], y[:120], x[120:], y[120:], c=0.1) == 100.0
    noise = rng.normal(size=(200, 16))
    assert svm_accuracy(noise[:120], y[:120], noise[120:], y[120:], c=0.1) < 60.0


def test_extract_features_restores_mode_and_is_batched_consistently() -> None:
    model = tiny_module()
    backbone = model.student.backbone.train()
    pts = np.random.default_rng(0).normal(size=(10, 128, 3)).astype("f4")
    a = extract_features(backbone, pts, batch_size=3, device=torch.device("cpu"))
    b = extract_features(backbone, pts, batch_size=10, device=torch.device("cpu"))
    assert a.shape == (10, backbone.out_dim)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert backbone.training


def test_probe_runs_every_n_epochs_and_at_the_end(tiny_modelnet, tmp_path, monkeypatch) -> None:
    probe = LinearProbe(root=str(tiny_modelnet), every_n_epochs=2, num_points=256)
    ran_at = []
    real = probe.run
    monkeypatch.setattr(probe, "run", lambda trainer, module: (ran_at.append(trainer.current_epoch), real(trainer, module))[1])
    trainer = tiny_trainer(tmp_path, max_epochs=3, callbacks=[probe])
    trainer.fit(tiny_module(), tiny_data(tiny_modelnet))
    assert ran_at == [1, 2]  # after epoch 2 (every 2) and after the last epoch 3; not again at fit end
    assert "probe/svm_acc" in trainer.callback_metrics
    assert probe.last is not None and probe.last.step == trainer.global_step


def test_probe_rejects_more_points_than_stored(tiny_modelnet, tmp_path) -> None:
    probe = LinearProbe(root=str(tiny_modelnet), num_points=4096)
    with pytest.raises(ValueError, match="probe.num_points=4096"):
        probe._split("train")


def test_collapse_is_flagged_when_the_probe_is_at_chance(tiny_modelnet, monkeypatch) -> None:
    from lightning_modules.probe import ProbeResult

    probe = LinearProbe(root=str(tiny_modelnet), num_points=256)
    model = tiny_module()
    for _ in range(20):
        model.collapse.update(entropy=0.0, batch_entropy=0.0)
    warned = []
    monkeypatch.setattr("lightning_modules.probe.rank_zero_warn", warned.append)
    probe._warn_if_at_chance(model, ProbeResult(svm_acc=90.0, knn_acc=90.0, step=1))
    assert warned == []
    probe._warn_if_at_chance(model, ProbeResult(svm_acc=33.0, knn_acc=33.0, step=1))  # 3 classes: chance 33 %
    assert len(warned) == 1 and "chance" in warned[0] and "same prototypes" in warned[0]
