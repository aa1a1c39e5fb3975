"""What every supervised downstream task does alike: its optimiser and what its checkpoints record.

:class:`SupervisedTask` is the base of :class:`~lightning_modules.downstream.finetune.FineTuneClassifier`
and :class:`~lightning_modules.downstream.partseg.PartSegmentation`: AdamW (no decay on biases and
norms) with the per-step warm-up + cosine schedule, the backbone's initialisation (a
:class:`~lightning_modules.checkpoint_encoder.BackboneOrigin`, under :data:`INIT_KEY`) and
how validation worked saved beside the weights, and a checkpoint of another architecture refused
with one message naming the task.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, ClassVar

import pytorch_lightning as pl

from backbones.pretrained import checkpoint_state_dict, state_dict_mismatch
from lightning_modules.checkpoint_encoder import BackboneOrigin
from lightning_modules.pretrain.adamw import AdamWConfig, configure_adamw

INIT_KEY = "pointdwc_init"
"""Checkpoint entry recording what the backbone was initialised from (a :class:`BackboneOrigin`)."""

VALIDATION_KEY = "pointdwc_validation"
"""Checkpoint entry recording how validation worked (the data module's ``describe_validation()``)."""


class SupervisedTask(pl.LightningModule):
    """A backbone trained with labels; a subclass sets ``optim_config`` and ``origin`` in its ``__init__``."""

    MODEL: ClassVar[str] = "supervised"
    """The configured model, in the message refusing a checkpoint (``the configured MODEL model``)."""
    CHECKPOINT_HINT: ClassVar[str] = "is it a checkpoint of this task and backbone?"
    """What the message refusing a checkpoint asks last."""
    MISMATCH_ERROR: ClassVar[type[ValueError]] = ValueError
    """The error type refusing a checkpoint of another architecture."""

    optim_config: AdamWConfig
    origin: BackboneOrigin

    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW (no decay on biases and norms) with the per-step warm-up + cosine schedule."""
        return configure_adamw(self.named_parameters(), self.optim_config, self.trainer)

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record the initialisation (and how validation worked) beside the weights."""
        checkpoint[INIT_KEY] = asdict(self.origin)
        describe = getattr(self.trainer.datamodule, "describe_validation", None) if self._trainer is not None else None
        if describe is not None:
            checkpoint[VALIDATION_KEY] = describe()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Take the recorded initialisation; refuse weights of another architecture with one message."""
        state = checkpoint_state_dict(checkpoint)
        self.check_checkpoint(checkpoint)
        differ = state_dict_mismatch(self.state_dict(), state)
        if differ:
            missing, unexpected, shapes = differ.missing, differ.unexpected, differ.reshaped
            raise self.MISMATCH_ERROR(
                f"the checkpoint does not fit the configured {self.MODEL} model ({len(missing)} missing, "
                f"{len(unexpected)} unexpected, {len(shapes)} of another shape; e.g. {(missing + unexpected + shapes)[:3]}); "
                f"{self.CHECKPOINT_HINT}"
            )
        recorded = checkpoint.get(INIT_KEY)
        if isinstance(recorded, dict):
            self.origin = BackboneOrigin(**recorded)

    def check_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """A task's own check of a checkpoint, before its weights are compared (none here)."""
