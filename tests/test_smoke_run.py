"""An affordable smoke run: fast_dev_run probes a few shapes, the probe's cost is bounded and
visible, the progress bar can be turned off, and pictures cost nothing without W&B."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from pytorch_lightning.callbacks import ModelSummary, ProgressBar

from datamodules.errors import DataError
from datamodules.splits.per_class_subset import per_class_subset
from lightning_modules.commands.cli import run_cli
from lightning_modules.evaluation.probe import LinearProbe

TINY = str(Path(__file__).parent / "tiny.yaml")


def test_per_class_subset_keeps_at_most_n_of_each_class() -> None:
    labels = np.array([2, 0, 0, 1, 0, 2, 1, 0, 1, 1])  # class 0: 4 shapes, 1: 4, 2: 2
    kept = per_class_subset(labels, 3, seed=7)
    assert list(kept) == sorted(kept) and len(set(kept.tolist())) == len(kept)
    assert np.bincount(labels[kept], minlength=3).tolist() == [3, 3, 2]
    assert np.array_equal(kept, per_class_subset(labels, 3, seed=7))  # a pure function of its inputs
    assert per_class_subset(labels, 4, seed=1).tolist() == list(range(10))  # nothing to drop: everything
    with pytest.raises(DataError, match=r"probe.max_per_class=0"):
        per_class_subset(labels, 0)


def test_fast_dev_run_probes_a_few_shapes_of_each_class(tiny_modelnet, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    root = str(tiny_modelnet)  # 3 classes, 8 train and 4 test shapes each
    cli = run_cli(["fit", "--config", TINY, "--data.root", root, "--probe.root", root, "--trainer.fast_dev_run", "true",
                   "--trainer.logger", "false"])
    out = capsys.readouterr().out
    probe = next(cb for cb in cli.trainer.callbacks if isinstance(cb, LinearProbe))
    assert probe.max_per_class == 4
    assert "embedding the 12 train clouds" in out and "embedding the 12 test clouds" in out  # 3 classes x 4
    assert "(at most 4 shapes per class of each split, seeded subset)" in out  # the protocol line says so
    assert probe.last is not None and probe.last.step == 1


def test_max_per_class_bounds_the_probe_and_progress_shows(tiny_modelnet, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    root = str(tiny_modelnet)
    run_cli(["fit", "--config", TINY, "--data.root", root, "--probe.root", root, "--probe.max_per_class", "3",
             "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.logger", "false"])
    out = capsys.readouterr().out
    assert "probe/*: embedding the 9 train clouds (256 points)" in out
    assert "probe/*: embedding the 9 test clouds (256 points)" in out
    assert "fitting the linear SVM (C by 5-fold CV over at most 13 values) on 9 shapes and the kNN" in out


def test_the_progress_bar_can_be_turned_off(tiny_modelnet, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    root = str(tiny_modelnet)
    cli = run_cli(["fit", "--config", TINY, "--data.root", root, "--probe.root", root, "--trainer.max_epochs", "1",
                   "--trainer.max_steps", "1", "--probe.max_per_class", "2", "--trainer.logger", "false",
                   "--trainer.enable_progress_bar", "false"])
    assert cli.trainer.global_step == 1
    assert not any(isinstance(cb, ProgressBar) for cb in cli.trainer.callbacks)


def test_the_model_table_has_no_flops_column_and_can_be_turned_off(tiny_modelnet, tmp_path, monkeypatch,
                                                                   capsys) -> None:
    monkeypatch.chdir(tmp_path)
    root = str(tiny_modelnet)
    base = ["fit", "--config", TINY, "--data.root", root, "--probe.root", root, "--trainer.max_epochs", "1",
            "--trainer.max_steps", "1", "--probe.max_per_class", "2", "--trainer.logger", "false"]
    run_cli(base)
    out = capsys.readouterr().out
    assert "student" in out and "teacher" in out and "trainable" in out  # the table is there
    assert "FLOPs" not in out and "litlogger" not in out
    cli = run_cli([*base, "--trainer.enable_model_summary", "false"])
    out = capsys.readouterr().out
    assert "trainable" not in out and not any(isinstance(cb, ModelSummary) for cb in cli.trainer.callbacks)


def test_pictures_import_and_compute_nothing_without_wandb(tiny_modelnet, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    root = str(tiny_modelnet)
    cli = run_cli(["--config", TINY, "--data.root", root, "--probe.root", root, "--trainer.logger", "false"], run=False)
    from lightning_modules.pictures.visuals import WandbVisuals

    visuals = next(cb for cb in cli.trainer.callbacks if isinstance(cb, WandbVisuals))
    calls = []
    cli.model.teacher.backbone.register_forward_hook(lambda *args: calls.append(1))
    monkeypatch.setitem(sys.modules, "wandb", None)  # any `import wandb` now raises ImportError
    cli.trainer.strategy.connect(cli.model)
    visuals.log_attention(cli.trainer, cli.model)
    visuals.on_train_epoch_end(cli.trainer, cli.model)
    assert calls == []
