"""Cross-validated selection (``data.folds``): the stratified folds, the choice of step, the refit, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules.classification import ClassificationDataModule
from datamodules.errors import DataError
from datamodules.splits.kfold import resolve_folds, stratified_folds
from lightning_modules.commands.finetune import main as finetune_main
from lightning_modules.commands.finetune import run_finetune
from lightning_modules.commands.fold_selection import choose_step

TINY = str(Path(__file__).parent / "tiny_finetune.yaml")
STEPS = ["--trainer.max_steps", "6", "--trainer.max_epochs", "null", "--model.optim.warmup_steps", "1",
         "--trainer.enable_progress_bar", "false"]


# ---------------------------------------------------------------------- the folds
def test_folds_spread_each_class_and_balance_the_sizes() -> None:
    labels = np.array([1, 0, 1, 0, 1, 0, 1])  # class 0: 3 shapes, class 1: 4 shapes
    folds = stratified_folds(labels, 3, seed=5)
    # laid end to end (class 0 then class 1): positions 0 1 2 | 3 4 5 6 -> folds 0 1 2 | 0 1 2 0
    assert sorted(folds[labels == 0].tolist()) == [0, 1, 2]
    assert sorted(folds[labels == 1].tolist()) == [0, 0, 1, 2]
    assert np.bincount(folds).tolist() == [3, 2, 2]
    assert np.array_equal(folds, stratified_folds(labels, 3, seed=5))  # a pure function of its inputs
    many = np.repeat(np.arange(4), 10)
    assert any(not np.array_equal(stratified_folds(many, 4, seed=s), stratified_folds(many, 4, seed=0)) for s in (1, 2))
    for cls in range(4):  # 10 shapes of a class over 4 folds: 3, 3, 2, 2 in some order
        assert sorted(np.bincount(stratified_folds(many, 4, seed=1)[many == cls], minlength=4).tolist()) == [2, 2, 3, 3]


def test_bad_fold_settings_fail_in_one_line() -> None:
    with pytest.raises(DataError, match="at least 2 folds"):
        stratified_folds(np.zeros(5), 1)
    with pytest.raises(DataError, match="more folds than the 3 train shapes"):
        stratified_folds(np.zeros(3), 4)
    with pytest.raises(DataError, match="data.folds=1"):
        ClassificationDataModule(folds=1)
    with pytest.raises(DataError, match="data.fold_every_n_steps=0"):
        ClassificationDataModule(folds=3, fold_every_n_steps=0)
    assert resolve_folds("auto", 999) == 4 and resolve_folds("auto", 1000) == 0 and resolve_folds(5, 10) == 5


def test_the_step_of_the_best_mean_is_chosen_the_earliest_on_ties() -> None:
    curves = [{25: 50.0, 50: 70.0, 75: 60.0, 100: 10.0}, {25: 60.0, 50: 50.0, 75: 60.0}]
    # means over the steps both folds validated at: 25 -> 55, 50 -> 60, 75 -> 60 (100 is not common)
    assert choose_step(curves) == (50, 60.0)
    assert choose_step(curves, mode="min") == (25, 55.0)
    with pytest.raises(ValueError, match="no common step"):
        choose_step([{1: 1.0}, {2: 1.0}])


# ---------------------------------------------------------------------- end to end
def test_fold_runs_choose_the_step_and_the_refit_fits_every_train_shape(tiny_modelnet, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    tests = []
    test_loader = ClassificationDataModule.test_dataloader
    val_sets = []
    val_loader = ClassificationDataModule.val_dataloader

    def counted(self):
        tests.append(self.trainer.global_step)
        return test_loader(self)

    def seen(self):
        if "val" in self.splits:
            val_sets.append((self.fold, {cloud.tobytes() for cloud in self.splits["val"].points},
                             {cloud.tobytes() for cloud in self.splits["train"].points}))
        return val_loader(self)

    monkeypatch.setattr(ClassificationDataModule, "test_dataloader", counted)
    monkeypatch.setattr(ClassificationDataModule, "val_dataloader", seen)
    cli = run_finetune(["fit", "--config", TINY, "--data.root", str(tiny_modelnet), "--data.folds", "3",
                        "--data.fold_every_n_steps", "2", *STEPS])
    # three fold runs, each validating on its own 8 shapes and fitting on the other 16
    assert [fold for fold, _, _ in val_sets] == [0, 1, 2]
    assert all(len(val) == 8 and len(fit) == 16 and not val & fit for _, val, fit in val_sets)
    assert len(set.union(*(val for _, val, _ in val_sets))) == 24  # every train shape validated once
    # the refit fits the whole train split, with no validation, and the test split is read twice at its end
    assert len(cli.datamodule.splits["train"]) == 24 and "val" not in cli.datamodule.splits
    assert tests == [6, 6]
    (result,) = cli.results
    folds = result.extra["folds"]
    means = {s: np.mean([c[str(s)] for c in folds["curves"]]) for s in (2, 4, 6)}
    best = max(means.values())
    assert folds["chosen_step"] == min(s for s, m in means.items() if m == best)  # the earliest of the best
    assert result.selection_score == pytest.approx(best)
    state = torch.load(result.selected.path, map_location="cpu", weights_only=False)
    assert state["global_step"] == folds["chosen_step"] and Path(result.selected.path).name == f"selected-step{folds['chosen_step']}.ckpt"
    out = capsys.readouterr().out
    assert "stratified 3-fold cross-validation on the train split (data.folds 3; folds of 8 to 8 shapes" in out
    assert "cross-validation chose step" in out and out.count("validation shapes): val/acc") == 3
    run = Path(result.run_folder)
    assert json.loads((run / "results.json").read_text())["runs"][0]["extra"]["folds"]["chosen_step"] == folds["chosen_step"]

    # the refit is the run the same seed gives without cross-validation on the whole train split
    plain = run_finetune(["fit", "--config", TINY, "--data.root", str(tiny_modelnet), "--data.val_fraction", "0", *STEPS])
    assert plain.results[0].last.metrics == result.last.metrics
    refit_last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    plain_last = plain.model.state_dict()  # no validation split: the model keeps its last weights
    assert refit_last.keys() == plain_last.keys()
    for key, value in plain_last.items():
        assert torch.equal(value, refit_last[key]), key


def test_auto_cross_validates_a_small_set_and_names_the_choice(tiny_modelnet, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    cli = run_finetune(["fit", "--config", TINY, "--data.root", str(tiny_modelnet), "--data.folds", "auto",
                        "--data.fold_every_n_steps", "3", *STEPS])
    assert cli.datamodule.num_folds == 4 and len(cli.results[0].extra["folds"]["curves"]) == 4
    assert "4-fold cross-validation on the train split (data.folds auto: the train split has 24 shapes, fewer than 1,000" in capsys.readouterr().out


def test_cross_validation_needs_a_schedule_in_steps_and_a_fresh_start(tiny_modelnet, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert finetune_main(["fit", "--config", TINY, "--data.root", str(tiny_modelnet), "--data.folds", "3",
                          "--trainer.max_steps", "-1"]) == 1
    assert "cross-validated selection needs a schedule in steps (trainer.max_steps)" in capsys.readouterr().err
    assert finetune_main(["fit", "--config", TINY, "--data.root", str(tiny_modelnet), "--data.folds", "3",
                          "--data.fold_every_n_steps", "50", *STEPS]) == 1
    assert "fold 0: no validation ran" in capsys.readouterr().err
