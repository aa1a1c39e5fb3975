"""When a run writes its checkpoints: every N epochs or every M minutes, and always at the end.

A full pretraining checkpoint holds the student, the teacher and AdamW's two moments: about
450 MB for PoinT-ViT-S. Lightning's default writes one per epoch plus a ``last.ckpt`` copy, so
a GPU epoch of a few seconds spent about as long writing files as training (two files per
epoch). :class:`CheckpointCadence` writes one file per save, links ``last.ckpt`` to it, saves
at an epoch end only when the cadence is due, and always saves the state training ended in.
"""

from __future__ import annotations

import time
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint


class CheckpointCadence(ModelCheckpoint):
    """A :class:`~pytorch_lightning.callbacks.ModelCheckpoint` saving at epoch ends on a cadence.

    Args:
        every_n_epochs: save at the end of every this many epochs (ignored when
            ``every_minutes`` is given).
        every_minutes: save at the first epoch end at least this many minutes of training
            after the previous save (or the start of the fit), whatever the epoch count.
        save_last: ``"link"`` (default): ``last.ckpt`` is a link to the newest file (one file
            written per save; a copy where links are not allowed); ``True``: a second full copy.
        **kwargs: the other ``ModelCheckpoint`` arguments (``dirpath``, ``filename``, ``save_top_k``,
            ``monitor``, …); ``every_n_train_steps`` and ``train_time_interval`` are refused (they
            save mid-epoch and would bypass the cadence).

    The final state (last epoch, ``trainer.max_steps`` or an early stop) is always written,
    whatever the cadence. The decision is rank 0's, broadcast, so every DDP rank agrees.
    """

    def __init__(
        self,
        *args: Any,
        every_n_epochs: int = 1,
        every_minutes: float | None = None,
        save_last: bool | str = "link",
        **kwargs: Any,
    ) -> None:
        for refused in ("every_n_train_steps", "train_time_interval"):
            if kwargs.get(refused) is not None:
                raise ValueError(f"CheckpointCadence: {refused} is not supported; use every_n_epochs or every_minutes")
        if every_n_epochs < 1:
            raise ValueError(f"CheckpointCadence: every_n_epochs must be >= 1, got {every_n_epochs}")
        if every_minutes is not None and every_minutes < 0:
            raise ValueError(f"CheckpointCadence: every_minutes must be >= 0, got {every_minutes}")
        # Lightning's own epoch trigger stays off: this class decides at each epoch end.
        super().__init__(*args, every_n_epochs=0, save_last=save_last, **kwargs)
        self.cadence_epochs = every_n_epochs
        self.every_minutes = every_minutes
        self._since: float | None = None
        self._epochs_since = 0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        super().on_train_start(trainer, pl_module)
        self._since = time.monotonic()
        self._epochs_since = 0

    @staticmethod
    def final(trainer: pl.Trainer) -> bool:
        """Whether the epoch ending now is the last of the fit."""
        max_epochs = trainer.max_epochs if trainer.max_epochs is not None and trainer.max_epochs >= 0 else None
        return bool(
            trainer.should_stop
            or (max_epochs is not None and trainer.current_epoch + 1 >= max_epochs)
            or (trainer.max_steps is not None and trainer.max_steps >= 0 and trainer.global_step >= trainer.max_steps)
        )

    def due(self, trainer: pl.Trainer) -> bool:
        """Whether the epoch ending now is saved (counts this epoch)."""
        self._epochs_since += 1
        if self.final(trainer):
            return True
        if self.every_minutes is not None:
            elapsed = time.monotonic() - (self._since if self._since is not None else time.monotonic())
            return bool(trainer.strategy.broadcast(elapsed >= 60.0 * self.every_minutes))
        return self._epochs_since >= self.cadence_epochs

    def _save_now(self, trainer: pl.Trainer) -> None:
        candidates = self._monitor_candidates(trainer)
        self._save_topk_checkpoint(trainer, candidates)
        self._save_last_checkpoint(trainer, candidates)
        self._since = time.monotonic()
        self._epochs_since = 0

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        if self._should_skip_saving_checkpoint(trainer) or not self._should_save_on_train_epoch_end(trainer):
            return
        if self.due(trainer):
            self._save_now(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        if self._should_skip_saving_checkpoint(trainer) or self._should_save_on_train_epoch_end(trainer):
            return
        if trainer.fit_loop.epoch_loop.done or trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            if self.due(trainer):
                self._save_now(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Save the state training ended in when no epoch end did (``max_steps`` mid-epoch)."""
        if trainer.state.fn == "fit" and not trainer.fast_dev_run and self._last_global_step_saved != trainer.global_step:
            self._save_now(trainer)
