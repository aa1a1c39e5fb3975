"""``pointdwc validate``: pretext losses on train shapes held out of pretraining (``data.val_fraction``)
and the probe's cross-validated accuracy on its train split only; ``pointdwc predict`` points at ``embed``."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from datamodules.detect import resolve_dataset
from datamodules.errors import DataError
from lightning_modules.commands import cli as cli_module
from lightning_modules.commands import entry
from lightning_modules.commands.cli import run_cli
from tests.helpers import fit_seeded, tiny_data

TINY = str(Path(__file__).parent / "tiny.yaml")


def _raw_train(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """The train split read straight from the fixture's HDF5 file (the reference)."""
    with h5py.File(root / "ply_data_train0.h5", "r") as f:
        return f["data"][...], f["label"][...].reshape(-1).astype(np.int64)


def _rows_of(clouds: np.ndarray, raw: np.ndarray) -> list[int]:
    """Which rows of ``raw`` these clouds are (each must be exactly one)."""
    rows = []
    for cloud in clouds:
        (match,) = np.flatnonzero((raw == cloud[None]).all(axis=(1, 2)))
        rows.append(int(match))
    return rows


def _served(loader) -> tuple[np.ndarray, np.ndarray]:
    points, labels = zip(*(batch for batch in loader))
    return torch.cat(points).numpy(), torch.cat(labels).numpy()


def _carved(root: Path, fraction: float, seed: int = 0):
    data = tiny_data(root)
    data.val_fraction, data.seed = fraction, seed
    data.setup("fit")
    return data


def test_the_held_out_shapes_are_disjoint_stratified_seeded_and_leave_training(tiny_modelnet) -> None:
    raw_points, raw_labels = _raw_train(tiny_modelnet)  # 24 shapes, 8 of each of 3 classes
    data = tiny_data(tiny_modelnet)
    data.val_fraction = 0.25
    data.setup("fit")
    val_points, val_labels = _served(data.val_dataloader())
    val_rows = _rows_of(val_points, raw_points)
    train_loader = data.train_dataloader()
    fit_rows = sorted(_rows_of(train_loader.dataset.__getitems__(list(range(len(train_loader.dataset))))[0].numpy(),
                               raw_points))
    assert len(val_rows) == 6 and len(set(val_rows)) == 6
    assert len(fit_rows) == 18 and len(set(fit_rows)) == 18  # training shrinks by exactly the held-out shapes
    assert set(val_rows).isdisjoint(fit_rows) and set(val_rows) | set(fit_rows) == set(range(24))
    np.testing.assert_array_equal(val_labels, raw_labels[val_rows])  # labels travel with their clouds
    assert np.bincount(val_labels, minlength=3).tolist() == [2, 2, 2]  # a quarter of each class
    # an epoch of training serves only fitted shapes
    for points, _ in train_loader:
        assert set(_rows_of(points.numpy(), raw_points)) <= set(fit_rows)
    # same seed, same shapes; another seed, other shapes
    again = _rows_of(_served(_carved(tiny_modelnet, 0.25).val_dataloader())[0], raw_points)
    other = _rows_of(_served(_carved(tiny_modelnet, 0.25, seed=1).val_dataloader())[0], raw_points)
    assert again == val_rows and sorted(other) != sorted(val_rows)
    # no fraction: every shape is fitted and there is no validation loader
    whole = _carved(tiny_modelnet, 0.0)
    assert len(whole.train_dataloader().dataset) == 24 and whole.val_dataloader() == []


def test_a_validation_fraction_out_of_range_is_a_data_error(tiny_modelnet) -> None:
    from datamodules.pointcloud import PointCloudDataModule

    for bad in (1.0, -0.5):
        with pytest.raises(DataError, match=r"data.val_fraction"):
            PointCloudDataModule(root=str(tiny_modelnet), val_fraction=bad)


def test_fit_validates_on_the_held_out_shapes_only_with_a_fraction(tiny_modelnet, tmp_path) -> None:
    _, plain = fit_seeded(tmp_path / "a", tiny_data(tiny_modelnet))
    assert plain.num_training_batches == 6 and "val/loss" not in plain.callback_metrics
    assert sum(plain.num_val_batches) == 0  # no validation loop
    assert plain.limit_val_batches == 1.0  # the trainer's own setting is back after fit
    held = tiny_data(tiny_modelnet)
    held.val_fraction = 0.25
    _, trainer = fit_seeded(tmp_path / "b", held)
    assert trainer.num_training_batches == 4  # 18 shapes, batches of 4, the last partial one dropped
    assert trainer.num_val_batches == [2]  # 6 shapes: 4 + 2
    assert {"val/loss", "val/loss_distill", "val/loss_contrast"} <= set(trainer.callback_metrics)


class _Recorder:
    """Keeps every validation batch the module sees (crops already made on the device)."""

    def __init__(self) -> None:
        import pytorch_lightning as pl

        batches = self.batches = []

        class Keep(pl.Callback):
            def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
                batches.append({k: v.clone() for k, v in batch.items()})

        self.callback = Keep()


def _reference_losses(model, batch: dict[str, torch.Tensor]) -> tuple[float, float]:
    """DINO's cross-entropy and InfoNCE, pair by pair with plain torch ops, from the checkpoint's networks."""
    g_views, l_views = batch["global"], batch["local"]
    with torch.no_grad():
        teacher = model.teacher(g_views)
        student = [model.student(g_views), model.student(l_views)]
    s_logits = torch.cat([o.logits for o in student])
    s_emb = torch.cat([o.embedding for o in student])
    cfg_d, cfg_c = model.hparams["distill"], model.hparams["contrast"]
    center = model.distill_loss.center
    distill, contrast = [], []
    for g in range(g_views.shape[0]):
        target = torch.softmax((teacher.logits[g] - center) / cfg_d["teacher_temp"], dim=-1)
        for v in range(s_logits.shape[0]):
            if v == g:
                continue
            logp = torch.log_softmax(s_logits[v] / cfg_d["student_temp"], dim=-1)
            distill.append(-(target * logp).sum(-1).mean())
            sims = s_emb[v] @ teacher.embedding[g].T / cfg_c["temperature"]
            contrast.append(F.cross_entropy(sims, torch.arange(sims.shape[0])))
    return float(torch.stack(distill).mean()), float(torch.stack(contrast).mean())


def test_validate_reports_the_pretext_losses_of_the_held_out_shapes(tiny_checkpoint, tiny_modelnet, tmp_path,
                                                                    monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    root = str(tiny_modelnet)
    raw_points, _ = _raw_train(tiny_modelnet)
    args = ["validate", "--config", TINY, "--data.root", root, "--probe.root", root, "--ckpt_path",
            str(tiny_checkpoint), "--data.val_fraction", "0.25", "--trainer.logger", "false"]
    recorder = _Recorder()
    EXTRA_CALLBACKS.append(recorder.callback)
    first = run_cli(args)
    EXTRA_CALLBACKS.clear()
    printed = capsys.readouterr().out
    metrics = {k: float(v) for k, v in first.trainer.callback_metrics.items()}
    assert {"val/loss", "val/loss_distill", "val/loss_contrast"} <= set(metrics)
    assert "val/loss " in printed  # printed rounded, like fit's figures
    # the batches are the held-out shapes (cropped): their clouds are exactly the carved rows
    held = first.datamodule.rows["val"]
    assert sum(b["global"].shape[1] for b in recorder.batches) == len(held) == 6
    assert sorted(_rows_of(raw_points[held], raw_points)) == sorted(held.tolist())
    assert set(held.tolist()).isdisjoint(first.datamodule.rows["train"].tolist())
    # the logged epoch means equal the two losses recomputed from the checkpoint's networks
    model = first.model.eval()
    refs = [(_reference_losses(model, b), b["global"].shape[1]) for b in recorder.batches]
    sizes = np.array([n for _, n in refs], dtype=np.float64)
    distill = float(np.dot([r[0] for r, _ in refs], sizes) / sizes.sum())
    contrast = float(np.dot([r[1] for r, _ in refs], sizes) / sizes.sum())
    assert metrics["val/loss_distill"] == pytest.approx(distill, rel=1e-5)
    assert metrics["val/loss_contrast"] == pytest.approx(contrast, rel=1e-5)
    assert metrics["val/loss"] == pytest.approx(distill + contrast, rel=1e-5)  # both weights 1 in tiny.yaml
    # deterministic: a second run crops the same views and reports the same losses
    second = run_cli(args)
    again = {k: float(v) for k, v in second.trainer.callback_metrics.items()}
    for name in ("val/loss", "val/loss_distill", "val/loss_contrast"):
        assert again[name] == metrics[name], name


EXTRA_CALLBACKS: list = []
"""Callback objects the next CLI run's trainer gets (LightningCLI builds its callbacks from configs)."""


@pytest.fixture(autouse=True)
def _extra_callbacks(monkeypatch):
    original = cli_module.PointDWCCLI.instantiate_classes

    def instantiate(self) -> None:
        original(self)
        self.trainer.callbacks.extend(EXTRA_CALLBACKS)

    monkeypatch.setattr(cli_module.PointDWCCLI, "instantiate_classes", instantiate)
    yield
    EXTRA_CALLBACKS.clear()


def test_the_probe_in_validate_cross_validates_on_its_train_split_and_never_reads_test(
    tiny_checkpoint, tiny_modelnet, tmp_path, monkeypatch, capsys
) -> None:
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    monkeypatch.chdir(tmp_path)
    root = str(tiny_modelnet)
    cls = type(resolve_dataset(None, root, "data.dataset", "data.root"))
    loaded: list[str] = []
    real_load = cls.load
    monkeypatch.setattr(cls, "load", lambda self, split: (loaded.append(split), real_load(self, split))[1])
    cli = run_cli(["validate", "--config", TINY, "--data.root", root, "--probe.root", root, "--probe.svm_c", "0.1",
                   "--ckpt_path", str(tiny_checkpoint), "--data.val_fraction", "0.25", "--trainer.logger", "false"])
    printed = capsys.readouterr().out
    assert loaded and "test" not in loaded  # neither the pretraining data nor the probe read the test split
    metrics = cli.trainer.callback_metrics
    assert "probe/svm_acc" not in metrics and "probe/cv_svm_acc" in metrics
    protocol = next(line for line in printed.splitlines() if line.startswith("protocol probe/*"))
    assert "train split only" in protocol and "test split untouched" in protocol and "predicted" not in protocol
    # the reference: sklearn's pooled 5-fold stratified CV of the same SVM on the teacher's features
    points, labels = _raw_train(tiny_modelnet)
    with torch.no_grad():
        feats = cli.model.teacher.backbone.eval()(torch.from_numpy(points[:, :256])).global_feature.numpy()
    svm = make_pipeline(StandardScaler(), LinearSVC(C=0.1, dual=True, max_iter=5000, random_state=0))
    pred = cross_val_predict(svm, feats, labels, cv=StratifiedKFold(5, shuffle=True, random_state=0))
    assert float(metrics["probe/cv_svm_acc"]) == pytest.approx(100.0 * (pred == labels).mean(), abs=1e-4)


def test_validate_without_held_out_shapes_is_one_line_and_leaves_no_run_folder(
    tiny_checkpoint, tiny_modelnet, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    root = str(tiny_modelnet)
    status = cli_module.main(["validate", "--config", TINY, "--data.root", root, "--probe.root", root,
                              "--ckpt_path", str(tiny_checkpoint)])
    err = capsys.readouterr().err
    assert status == 1
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("pointdwc: error: data.val_fraction is 0") and "--data.val_fraction F" in err
    assert "new runs" in err
    assert not (tmp_path / "runs").exists()


def test_predict_points_at_embed_and_writes_nothing(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert entry.main(["predict", "--ckpt_path", "x.ckpt", "--config", TINY]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "pointdwc embed" in err
    assert list(tmp_path.iterdir()) == []
    assert entry.main(["--help"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]
    assert "predict" not in listed and "validate" in listed and "embed" in listed
    with pytest.raises(SystemExit) as exc:  # LightningCLI itself no longer offers it either
        run_cli(["predict", "--config", TINY])
    assert exc.value.code == 2


def test_validate_warns_when_the_checkpoint_was_trained_on_the_held_out_shapes(
    tiny_checkpoint, tiny_modelnet, tmp_path, monkeypatch
) -> None:
    import yaml

    monkeypatch.chdir(tmp_path)
    root = str(tiny_modelnet)
    checkpoint = torch.load(tiny_checkpoint, map_location="cpu", weights_only=False)
    for fraction, warned in ((0.0, True), (0.25, False)):
        checkpoint["pointdwc_config"] = yaml.safe_dump({"data": {"val_fraction": fraction, "seed": 0}})
        path = tmp_path / f"trained-{fraction}.ckpt"
        torch.save(checkpoint, path)
        args = ["validate", "--config", TINY, "--data.root", root, "--probe.root", root, "--ckpt_path", str(path),
                "--data.val_fraction", "0.25", "--trainer.logger", "false"]
        with pytest.warns() as record:
            run_cli(args)
        said = [str(w.message) for w in record if "held out data.val_fraction" in str(w.message)]
        assert bool(said) == warned, said


def test_the_console_script_refuses_validate_without_held_out_shapes_in_one_line(tiny_modelnet, tmp_path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(Path(__file__).parents[1])}
    cmd = [sys.executable, "-m", "lightning_modules.commands.entry", "validate", "--config", TINY,
           "--data.root", str(tiny_modelnet), "--ckpt_path", str(tmp_path / "any.ckpt")]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("pointdwc: error: data.val_fraction is 0")
    assert not (tmp_path / "runs").exists()


def test_fit_with_held_out_shapes_then_validate_with_the_runs_config(tiny_modelnet, tmp_path, monkeypatch, capsys) -> None:
    import yaml

    monkeypatch.chdir(tmp_path)
    root = str(tiny_modelnet)
    fit = run_cli(["fit", "--config", TINY, "--data.root", root, "--probe.root", root, "--data.val_fraction", "0.25",
                   "--trainer.max_epochs", "3", "--trainer.check_val_every_n_epoch", "2", "--probe.every_n_epochs", "0",
                   "--trainer.logger", "false"])
    assert "val/loss" in fit.trainer.callback_metrics  # validated at the end of epoch 2
    (run,) = (tmp_path / "runs").iterdir()
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == 3 * 4  # 18 fitted shapes in batches of 4: 4 steps an epoch, the last epoch saved
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["val_fraction"] == 0.25
    capsys.readouterr()
    with pytest.warns() as record:
        validated = run_cli(["validate", "--config", str(run / "config.yaml"), "--ckpt_path",
                             str(run / "checkpoints" / "last.ckpt"), "--trainer.logger", "false"])
    assert not [w for w in record if "held out data.val_fraction" in str(w.message)]  # its own shapes: no warning
    assert np.array_equal(validated.datamodule.rows["val"], fit.datamodule.rows["val"])
    assert {"val/loss", "probe/cv_svm_acc"} <= set(validated.trainer.callback_metrics)


def test_a_fraction_out_of_range_is_one_error_before_any_run_folder(tiny_modelnet, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    status = cli_module.main(["fit", "--config", TINY, "--data.root", str(tiny_modelnet), "--data.val_fraction", "1.5"])
    err = capsys.readouterr().err
    assert status == 1 and err.startswith("pointdwc: error: data.val_fraction=1.5") and "[0, 1)" in err
    assert not (tmp_path / "runs").exists()
