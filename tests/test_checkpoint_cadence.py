"""CheckpointCadence: which epoch ends write a checkpoint, last.ckpt as a link, the final state always saved."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytorch_lightning as pl
import pytest
import torch

from lightning_modules.commands import checkpoint_cadence
from lightning_modules.commands.checkpoint_cadence import CheckpointCadence
from tests.helpers import fit_seeded, tiny_data


def saved_epochs(folder: Path) -> list[int]:
    """The epoch stored in each epoch file of ``folder`` (not last.ckpt), sorted."""
    files = [f for f in folder.glob("*.ckpt") if f.name != "last.ckpt"]
    return sorted(torch.load(f, weights_only=True)["epoch"] for f in files)


def cadence(folder: Path, **kwargs) -> CheckpointCadence:
    return CheckpointCadence(dirpath=folder, filename="e{epoch}", auto_insert_metric_name=False, save_top_k=-1, save_on_train_epoch_end=True, **kwargs)


def test_every_n_epochs_saves_on_the_cadence_and_the_final_epoch(tiny_modelnet, tmp_path) -> None:
    folder = tmp_path / "ckpt"
    fit_seeded(tmp_path, tiny_data(tiny_modelnet), [cadence(folder, every_n_epochs=2)],
               max_epochs=5, enable_checkpointing=True)
    # epoch indices 1 and 3 end the 2nd and 4th epochs; index 4 is the last (always saved)
    assert saved_epochs(folder) == [1, 3, 4]
    last = folder / "last.ckpt"
    assert last.is_symlink() and os.readlink(last) == "e4.ckpt"  # relative: the run folder can move
    assert torch.load(last, weights_only=True)["epoch"] == 4


class FakeClock:
    """``time.monotonic`` of the callback's module, advanced by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class Advance(pl.Callback):
    """Each epoch takes ``minutes`` on the fake clock (runs before the checkpoint callback)."""

    def __init__(self, clock: FakeClock, minutes: float) -> None:
        self.clock, self.minutes = clock, minutes

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.clock.now += 60.0 * self.minutes


def test_every_minutes_saves_at_the_first_epoch_end_past_the_interval(tiny_modelnet, tmp_path, monkeypatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(checkpoint_cadence, "time", clock)
    folder = tmp_path / "ckpt"
    # 4-minute epochs, 10-minute cadence: epoch ends at 4, 8, 12 (save), 16, 20 (save: 8 min since, but the last
    # epoch), 24 ... with 7 epochs: 12 (index 2), 24 (index 5), 28 (index 6, the last)
    fit_seeded(tmp_path, tiny_data(tiny_modelnet), [Advance(clock, 4.0), cadence(folder, every_minutes=10)],
               max_epochs=7, enable_checkpointing=True)
    assert saved_epochs(folder) == [2, 5, 6]


def test_a_fit_stopped_by_max_steps_mid_epoch_saves_its_final_step(tiny_modelnet, tmp_path) -> None:
    folder = tmp_path / "ckpt"
    data = tiny_data(tiny_modelnet)
    _, trainer = fit_seeded(tmp_path, data, [cadence(folder, every_n_epochs=10)], max_epochs=10, max_steps=8,
                            enable_checkpointing=True)
    steps_per_epoch = trainer.num_training_batches
    assert 8 % steps_per_epoch != 0, "the fixture's epoch length must not divide max_steps"
    (saved,) = [f for f in folder.glob("*.ckpt") if f.name != "last.ckpt"]
    assert torch.load(saved, weights_only=True)["global_step"] == 8
    assert torch.load(folder / "last.ckpt", weights_only=True)["global_step"] == 8


def test_one_full_file_per_save_with_the_default_top_k(tiny_modelnet, tmp_path) -> None:
    folder = tmp_path / "ckpt"
    callback = CheckpointCadence(dirpath=folder, filename="e{epoch}", auto_insert_metric_name=False, save_on_train_epoch_end=True)
    fit_seeded(tmp_path, tiny_data(tiny_modelnet), [callback], max_epochs=3, enable_checkpointing=True)
    files = sorted(p.name for p in folder.iterdir())
    assert files == ["e2.ckpt", "last.ckpt"] and (folder / "last.ckpt").is_symlink()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"every_n_train_steps": 5}, "every_n_train_steps is not supported"),
    ({"every_n_epochs": 0}, "every_n_epochs must be >= 1"),
    ({"every_minutes": -1.0}, "every_minutes must be >= 0"),
])
def test_bad_settings_are_refused_naming_the_field(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        CheckpointCadence(**kwargs)


@pytest.mark.parametrize("overlays", [["vit_small.yaml"], ["dgcnn_gpu.yaml"], ["pointnet_gpu.yaml"],
                                      ["vit_small.yaml", "paper/shapenet55.yaml"], ["vit_small.yaml", "batch512.yaml"]])
def test_gpu_presets_write_at_most_one_checkpoint_per_ten_minutes(overlays, tmp_path, monkeypatch) -> None:
    from configs import CONFIG_DIR
    from lightning_modules.commands.cli import run_cli

    monkeypatch.chdir(tmp_path)
    args = [a for name in overlays for a in ("--config", str(CONFIG_DIR / name))]
    cli = run_cli([*args, "--trainer.accelerator", "cpu", "--trainer.logger", "false",
                   "--data.num_workers", "0"], run=False)
    (saver,) = [c for c in cli.trainer.callbacks if isinstance(c, pl.callbacks.ModelCheckpoint)]
    assert isinstance(saver, CheckpointCadence) and saver.every_minutes == 10 and saver.save_last == "link"
    expected_batch = 512 if "batch512.yaml" in overlays else 128
    assert cli.datamodule.batch_size == cli.model.batch_size == expected_batch
    # DINO's first epoch of ShapeNet55 (41,952 clouds) frozen, whatever the batch
    assert cli.model.optim_config.freeze_last_layer_steps == math.ceil(41952 / expected_batch)


def test_saving_after_validation_follows_the_same_cadence(tiny_modelnet, tmp_path) -> None:
    """``save_on_train_epoch_end=False`` with a validation loop: saves at the validation ending each due epoch."""
    folder = tmp_path / "ckpt"
    data = tiny_data(tiny_modelnet)
    data.val_fraction = 0.25
    callback = CheckpointCadence(dirpath=folder, filename="e{epoch}", auto_insert_metric_name=False, save_top_k=-1,
                                 save_on_train_epoch_end=False, every_n_epochs=2)
    fit_seeded(tmp_path, data, [callback], max_epochs=3, enable_checkpointing=True)
    assert saved_epochs(folder) == [1, 2]
