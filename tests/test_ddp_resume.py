"""Mid-epoch resume under DDP (two CPU processes, gloo): bit-identical to an uninterrupted run.

Under DDP Lightning replaces the training loader's sampler with a ``DistributedSampler``
(a new loader object); the position saved and restored must be the one of the loader
Lightning iterates, for each rank.
"""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from tests.helpers import fit_seeded, tiny_data


class StopAfterStep(pl.Callback):
    """Stop the fit once ``step`` optimizer steps are done (picklable, for the spawned ranks)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            trainer.should_stop = True


DDP = dict(strategy="ddp_fork", accelerator="cpu", devices=2, max_epochs=2)


def test_ddp_resume_from_the_middle_of_an_epoch_is_exact(tiny_modelnet: Path, tmp_path: Path) -> None:
    """24 clouds, batch 4 per rank, 2 ranks: 3 steps an epoch. Stopped after step 4 (the middle of
    the second epoch, sampler epoch 1) and resumed from the step-4 checkpoint: student, teacher
    (with BatchNorm statistics) and centre equal those of the uninterrupted 6 steps."""
    straight, _ = fit_seeded(tmp_path / "a", tiny_data(tiny_modelnet), **DDP)
    saver = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=4, save_top_k=-1)
    fit_seeded(tmp_path / "b", tiny_data(tiny_modelnet), [saver, StopAfterStep(4)], enable_checkpointing=True, **DDP)
    (mid,) = (tmp_path / "ckpt").iterdir()
    assert "step=4" in mid.name
    resumed, _ = fit_seeded(tmp_path / "c", tiny_data(tiny_modelnet), ckpt_path=str(mid), **DDP)
    # (the launching process's trainer does not count the ranks' steps: the weights tell)
    at_stop = torch.load(mid, map_location="cpu", weights_only=True)["state_dict"]
    assert not torch.equal(at_stop["distill_loss.center"], straight.state_dict()["distill_loss.center"])
    state_a, state_b = straight.state_dict(), resumed.state_dict()
    assert state_a.keys() == state_b.keys()
    assert any(k.startswith("teacher.") for k in state_a) and "distill_loss.center" in state_a
    for name in state_a:
        assert torch.equal(state_a[name], state_b[name]), name
