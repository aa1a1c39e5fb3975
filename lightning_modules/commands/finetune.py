"""``pointdwc finetune fit|validate|test``: classification fine-tuning under the honest protocol.

A LightningCLI of its own (:class:`~lightning_modules.commands.protocol_cli.ProtocolCLI`) on
:class:`~lightning_modules.downstream.finetune.FineTuneClassifier` and
:class:`~datamodules.classification.ClassificationDataModule`, with ``configs/finetune/default.yaml``
loaded first (CPU-sized, the embedded synthetic set)::

    pointdwc finetune fit --ckpt runs/<run>/checkpoints/last.ckpt        # from the pretrained teacher
    pointdwc finetune fit                                                # the same from scratch
    pointdwc finetune fit --seeds 0 1 2 --data.root /data/modelnet40_ply_hdf5_2048
    pointdwc finetune test --config runs/finetune/<run>/config.yaml --ckpt_path runs/finetune/<run>/checkpoints/best.ckpt
    pointdwc finetune fit --config configs/finetune/field_protocol.yaml  # the field's protocol, labelled as such
"""

from __future__ import annotations

from datamodules.classification import ClassificationDataModule
from configs import shipped_config
from lightning_modules.evaluation.protocol import ProtocolSpec
from lightning_modules.downstream.finetune import FineTuneClassifier
from lightning_modules.commands.protocol_cli import ProtocolCLI, ProtocolCommand

DEFAULT_CONFIG = shipped_config("finetune/default.yaml")
"""Loaded before any ``--config``: the CPU default on the synthetic set."""

SPEC = ProtocolSpec(select_metric="val/acc", mode="max", report=("test/acc", "test/macc"), task="classification")
"""The checkpoint with the best validation accuracy is selected; accuracy and mean per-class accuracy are reported."""

DESCRIPTION = (
    "Fine-tune a backbone for classification: a validation split carved from the train split selects "
    "the checkpoint, the test split is evaluated once after training (selected and last checkpoint); --seeds "
    "repeats and prints mean ± std."
)
"""The help under ``pointdwc finetune --help``."""


class FineTuneCLI(ProtocolCLI):
    """``pointdwc finetune``: :class:`ProtocolCLI` of the classification fine-tuning."""

    command = "pointdwc finetune"


COMMAND = ProtocolCommand(FineTuneCLI, FineTuneClassifier, ClassificationDataModule, DEFAULT_CONFIG, SPEC, DESCRIPTION)
"""``pointdwc finetune``."""

run_finetune = COMMAND.run
"""``pointdwc finetune`` on ``args`` (with ``run=False``: only build the objects of a config)."""

main = COMMAND.main
"""Entry of ``pointdwc finetune``; returns the exit status."""
