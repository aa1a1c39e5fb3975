"""Linear-probe classifiers and the callback's schedule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from backbones import PointViT
from lightning_modules.evaluation import linear_svm as svm_module
from lightning_modules.evaluation import probe as probe_module
from lightning_modules.commands.cli import run_cli
from lightning_modules.pretrain.dwc import DistillationWithContrast, OptimConfig, TeacherConfig
from lightning_modules.pretrain.heads import HeadConfig
from lightning_modules.pretrain.losses import DistillConfig
from lightning_modules.evaluation.knn import weighted_knn
from lightning_modules.evaluation.linear_svm import SVM_C_GRID, linear_svm
from lightning_modules.evaluation.metrics import mean_class_accuracy
from lightning_modules.evaluation.probe import LinearProbe, extract_features
from tests.helpers import tiny_data, tiny_module, tiny_trainer

TINY = str(Path(__file__).parent / "tiny.yaml")


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
    assert weighted_knn(train_x, train_y, test_x, test_y, 5, 0.07).acc == pytest.approx(expected)


def test_svm_separates_separable_features_and_fails_on_noise() -> None:
    rng = np.random.default_rng(1)
    y = np.arange(200) % 4
    x = rng.normal(size=(200, 16)) + 8 * np.eye(16)[y]
    assert linear_svm(x[:120], y[:120], x[120:], y[120:], c=0.1).acc == 100.0
    noise = rng.normal(size=(200, 16))
    assert linear_svm(noise[:120], y[:120], noise[120:], y[120:], c=0.1).acc < 60.0


def test_extract_features_restores_mode_and_is_batched_consistently() -> None:
    model = tiny_module()
    backbone = model.student.backbone.train()
    pts = np.random.default_rng(0).normal(size=(10, 128, 3)).astype("f4")
    a = extract_features(backbone, pts, batch_size=3, device=torch.device("cpu"))
    b = extract_features(backbone, pts, batch_size=10, device=torch.device("cpu"))
    assert a.shape == (10, backbone.out_dim)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert backbone.training


def test_probe_runs_every_n_epochs_and_at_the_end(tiny_modelnet, tmp_path, monkeypatch, recwarn) -> None:
    torch.manual_seed(0)
    probe = LinearProbe(root=str(tiny_modelnet), every_n_epochs=2, num_points=256)
    ran_at = []
    real = probe.run
    monkeypatch.setattr(probe, "run", lambda trainer, module: (ran_at.append(trainer.current_epoch), real(trainer, module))[1])
    trainer = tiny_trainer(tmp_path, max_epochs=3, callbacks=[probe])
    trainer.fit(tiny_module(), tiny_data(tiny_modelnet))
    assert ran_at == [1, 2]  # after epoch 2 (every 2) and after the last epoch 3; not again at fit end
    logged = {f"probe/{m}" for m in ("svm_acc", "svm_macc", "knn_acc", "knn_macc", "svm_c")}
    assert logged <= set(trainer.callback_metrics)
    assert probe.last is not None and probe.last.step == trainer.global_step
    assert probe.last.svm_c in SVM_C_GRID  # the default is "auto"
    # a healthy network is well above chance: the probe raises no collapse warning
    assert probe.last.svm_macc > 50.0
    assert not [w for w in recwarn if "chance level" in str(w.message)]


def test_a_fit_bounded_by_steps_probes_once_at_the_end(tiny_modelnet, tmp_path, monkeypatch) -> None:
    # max_epochs -1 with max_steps (how a corpus of another size keeps the default's budget): epochs 1
    # and 2 are not the last one, so every_n_epochs 0 probes only the final network, at step 5
    torch.manual_seed(0)
    probe = LinearProbe(root=str(tiny_modelnet), every_n_epochs=0, num_points=256, max_per_class=2)
    steps = []
    real = probe.run
    monkeypatch.setattr(probe, "run", lambda trainer, module: (steps.append(trainer.global_step), real(trainer, module))[1])
    trainer = tiny_trainer(tmp_path, max_epochs=-1, max_steps=5, limit_train_batches=2, callbacks=[probe])
    trainer.fit(tiny_module(), tiny_data(tiny_modelnet))
    assert trainer.global_step == 5 and steps == [5]


def test_probe_rejects_more_points_than_stored(tiny_modelnet, tmp_path) -> None:
    probe = LinearProbe(root=str(tiny_modelnet), num_points=4096)
    with pytest.raises(ValueError, match="probe.num_points=4096"):
        probe._split("train")




# ---------------------------------------------------------------- mean per-class accuracy
def test_mean_class_accuracy_of_a_hand_computed_confusion() -> None:
    # class 0: 3 of 4 right, class 1: 0 of 2, class 2: 4 of 4; class 3 is only predicted
    y_true = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    y_pred = np.array([0, 0, 0, 2, 3, 0, 2, 2, 2, 2])
    assert mean_class_accuracy(y_true, y_pred) == pytest.approx(100 * (3 / 4 + 0 / 2 + 4 / 4) / 3)  # 58.33
    assert (y_pred == y_true).mean() * 100 == pytest.approx(70.0)  # the plain accuracy differs


def test_one_class_predictions_score_exactly_chance_in_mean_class_accuracy() -> None:
    # constant features: the SVM predicts one class; accuracy rewards the big class, macc does not
    train_y, test_y = np.array([0] * 12 + [1] * 4 + [2] * 4), np.array([0] * 8 + [1] * 2 + [2] * 2)
    result = linear_svm(np.zeros((20, 5)), train_y, np.zeros((12, 5)), test_y, c="auto")
    assert result.macc == pytest.approx(100 / 3)
    assert result.acc == pytest.approx(100 * 8 / 12)


def test_knn_mean_class_accuracy_matches_its_predictions() -> None:
    rng = np.random.default_rng(2)
    train_x, test_x = rng.normal(size=(60, 8)).astype("f4"), rng.normal(size=(25, 8)).astype("f4")
    train_y, test_y = rng.integers(0, 4, 60), rng.integers(0, 4, 25)
    pred = naive_weighted_knn(train_x, train_y, test_x, 5, 0.07)
    recalls = [(pred[test_y == c] == c).mean() for c in range(4) if (test_y == c).any()]
    result = weighted_knn(train_x, train_y, test_x, test_y, 5, 0.07)
    assert result.macc == pytest.approx(100 * np.mean(recalls))
    assert result.acc == pytest.approx(100 * (pred == test_y).mean())


# ---------------------------------------------------------------- C by cross-validation
def correlated_pair(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two classes told apart by x1 - x2 only; a shared noise z swamps the class means.

    A tiny C weights the features by the class-mean difference (x1 alone: ~60 %); a
    large C finds x1 - x2 (~100 %).
    """
    y = np.arange(n) % 2
    z = rng.normal(size=n)
    x = np.stack([z + 0.3 * (2 * y - 1) + 0.02 * rng.normal(size=n), z + 0.02 * rng.normal(size=n)], axis=1)
    return x, y


def test_auto_picks_a_larger_c_where_a_tiny_c_underfits() -> None:
    rng = np.random.default_rng(0)
    (train_x, train_y), (test_x, test_y) = correlated_pair(200, rng), correlated_pair(200, rng)
    assert linear_svm(train_x, train_y, test_x, test_y, c=SVM_C_GRID[0]).acc < 75.0
    auto = linear_svm(train_x, train_y, test_x, test_y, c="auto")
    assert auto.c >= 1e-2
    assert auto.acc > 95.0


def test_ties_keep_the_smallest_c() -> None:
    # constant features: every C predicts the same, so every C ties
    y = np.arange(30) % 3
    assert linear_svm(np.ones((30, 4)), y, np.ones((9, 4)), y[:9], c="auto").c == SVM_C_GRID[0]


def test_auto_chooses_c_from_the_train_split_only(monkeypatch) -> None:
    rng = np.random.default_rng(3)
    y = np.arange(240) % 4
    x = rng.normal(size=(240, 16)) + 1.5 * np.eye(16)[y]
    train_x, train_y, test_x, test_y = x[:160], y[:160], x[160:], y[160:]
    fitted, predicted = [], []
    real_svm = svm_module._svm

    def spy(c: float):
        clf = real_svm(c)
        fit, predict = clf.fit, clf.predict
        clf.fit = lambda a, b: (fitted.append(a), fit(a, b))[1]
        clf.predict = lambda a: (predicted.append(a), predict(a))[1]
        return clf

    monkeypatch.setattr(svm_module, "_svm", spy)
    first = linear_svm(train_x, train_y, test_x, test_y, c="auto")
    train_rows = {r.tobytes() for r in train_x}
    assert all(r.tobytes() in train_rows for a in fitted for r in a)  # never fitted on a test row
    assert sum(a is test_x for a in predicted) == 1  # the test split is predicted once
    # another test split (features and labels) cannot move C, only the score
    other_x, other_y = rng.normal(size=(80, 16)), rng.permutation(test_y)
    second = linear_svm(train_x, train_y, other_x, other_y, c="auto")
    assert second.c == first.c
    assert second.acc != first.acc


def test_a_fixed_c_skips_cross_validation(monkeypatch) -> None:
    def no_cv(*args, **kwargs):
        raise AssertionError("cross-validation ran for a fixed C")

    monkeypatch.setattr(svm_module, "select_svm_c", no_cv)
    rng = np.random.default_rng(1)
    y = np.arange(100) % 4
    x = rng.normal(size=(100, 16)) + 8 * np.eye(16)[y]
    result = linear_svm(x[:60], y[:60], x[60:], y[60:], c=0.012)
    assert result.c == 0.012 and result.acc == 100.0
    with pytest.raises(AssertionError, match="cross-validation ran"):
        linear_svm(x[:60], y[:60], x[60:], y[60:], c="auto")


@pytest.mark.parametrize("bad", ["often", 0.0, -1.0])
def test_a_bad_c_is_refused(bad) -> None:
    with pytest.raises(ValueError, match="svm_c"):
        LinearProbe(svm_c=bad)


@pytest.mark.parametrize(("arg", "expected"), [("auto", "auto"), ("0.012", 0.012)])
def test_cli_parses_svm_c(arg, expected, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    cli = run_cli(["--config", TINY, "--probe.svm_c", arg], run=False)
    (probe,) = [cb for cb in cli.trainer.callbacks if isinstance(cb, LinearProbe)]
    assert probe.svm_c == expected


def test_cli_rejects_another_svm_c_word(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        run_cli(["--config", TINY, "--probe.svm_c", "often"], run=False)
    assert "svm_c" in capsys.readouterr().err


# ---------------------------------------------------------------- collapse warning
def collapsed_module() -> DistillationWithContrast:
    """A tiny model whose teacher is collapsed in both ways the probe can see.

    Its backbone's last LayerNorm has weight 0 (bias 0), so every global feature is 0
    whatever the input; the EMA never moves it (momentum 1); and a teacher temperature of
    100 makes its outputs uniform (entropy ~ log K, the monitor's "uniform" verdict).
    """
    model = DistillationWithContrast(
        backbone=PointViT(embed_dim=32, depth=1, num_heads=2, group_size=8, encoder_dims=(16, 32)),
        head=HeadConfig(out_dim=64, hidden_dim=64, bottleneck_dim=32, contrast_dim=16),
        distill=DistillConfig(teacher_temp=100.0, warmup_teacher_temp=100.0),
        optim=OptimConfig(warmup_epochs=1),
        teacher=TeacherConfig(momentum=1.0, momentum_end=1.0),
        batch_size=4,
    )
    with torch.no_grad():
        model.teacher.backbone.norm.weight.zero_()
    return model


def test_a_collapsed_teacher_warns_during_fit(tiny_modelnet, tmp_path) -> None:
    probe = LinearProbe(root=str(tiny_modelnet), every_n_epochs=1, num_points=256)
    trainer = tiny_trainer(tmp_path, max_epochs=1, callbacks=[probe])
    with pytest.warns(UserWarning, match=r"chance level .*collapse suspected: teacher outputs are uniform"):
        trainer.fit(collapsed_module(), tiny_data(tiny_modelnet))
    assert probe.last is not None and probe.last.svm_macc == pytest.approx(100 / 3)


def test_auto_without_two_samples_per_class_falls_back_with_a_warning() -> None:
    x, y = np.eye(4), np.array([0, 0, 1, 2])  # classes 1 and 2 have one sample
    with pytest.warns(UserWarning, match="cannot be cross-validated"):
        assert linear_svm(x, y, x, y, c="auto").c == svm_module.SVM_C_FALLBACK


def test_folds_shrink_to_the_smallest_class(monkeypatch) -> None:
    seen = []
    monkeypatch.setattr(svm_module, "_cv_correct", lambda x, y, c, splits: seen.append(len(splits)) or 0)
    y = np.array([0] * 10 + [1] * 3)
    linear_svm(np.eye(13), y, np.eye(13), y, c="auto")
    assert set(seen) == {3}


def test_probe_embeds_again_only_when_the_network_changed(tiny_modelnet, monkeypatch) -> None:
    """Same network, step and weights: the features are reused; a weight changed in place, a new
    step or another network: embedded again (and the result follows the new weights)."""
    from types import SimpleNamespace

    torch.manual_seed(0)
    probe = LinearProbe(root=str(tiny_modelnet), num_points=256, svm_c=0.1)
    embedded = []
    real = probe_module.extract_features
    monkeypatch.setattr(
        probe_module, "extract_features", lambda net, pts, *a: (embedded.append(len(pts)), real(net, pts, *a))[1]
    )
    model = tiny_module()
    trainer = SimpleNamespace(global_step=3, is_global_zero=True)
    probe.run(trainer, model)
    assert embedded == [24, 12]  # train, test
    first = probe.last
    probe.run(trainer, model)
    assert embedded == [24, 12] and probe.last == first  # nothing changed: nothing embedded
    with torch.no_grad():
        model.teacher.backbone.norm.weight.mul_(1.5)  # in place, same step (an EMA update, a loaded state)
    probe.run(trainer, model)
    assert embedded == [24, 12] * 2
    features_after = probe._cache.get(model.teacher.backbone, 3, "train", lambda: None)
    expected = real(model.teacher.backbone, probe._split("train").points[:, :256], 128, torch.device("cpu"))
    np.testing.assert_array_equal(features_after, expected)
    trainer.global_step = 4
    probe.run(trainer, model)
    assert embedded == [24, 12] * 3
    probe.run(trainer, tiny_module())  # another network with its own weights
    assert embedded == [24, 12] * 4
