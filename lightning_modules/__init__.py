"""The method and everything built on it, one sub-package per concern.

* :mod:`lightning_modules.pretrain` — Distillation with Contrast itself: the LightningModule, the
  network (backbone + heads), the two losses, the momentum teacher, the schedules.
* :mod:`lightning_modules.evaluation` — how features are judged: the linear probe, the honest
  protocol of supervised tasks (validation-selected checkpoints, the test split read once), voting.
* :mod:`lightning_modules.downstream` — supervised tasks on a pretrained backbone: classification
  fine-tuning, few-shot, part segmentation.
* :mod:`lightning_modules.pictures` — W&B pictures (crops, attention, parts) and the renderer.
* :mod:`lightning_modules.commands` — every ``pointdwc`` sub-command, its run folder and W&B runs.

Imports run one way: ``commands`` -> ``pictures`` -> ``downstream`` -> ``evaluation`` -> ``pretrain``,
each of them down into :mod:`datamodules` and :mod:`backbones` and to the two modules at this level
(:mod:`~lightning_modules.dist`, :mod:`~lightning_modules.checkpoint_encoder`); nothing here is
imported by ``datamodules`` or ``backbones``. Attributes are imported lazily, so ``import
lightning_modules`` costs nothing until a class is used.
"""

from __future__ import annotations

from datamodules.moved import alias_moved_modules, lazy_attributes

_EXPORTS = {"DistillationWithContrast": "lightning_modules.pretrain.dwc", "LinearProbe": "lightning_modules.evaluation.probe"}

__all__ = sorted(_EXPORTS)

MOVED = {
    "lightning_modules.dwc": "lightning_modules.pretrain.dwc",
    "lightning_modules.network": "lightning_modules.pretrain.network",
    "lightning_modules.heads": "lightning_modules.pretrain.heads",
    "lightning_modules.losses": "lightning_modules.pretrain.losses",
    "lightning_modules.ema": "lightning_modules.pretrain.ema",
    "lightning_modules.schedules": "lightning_modules.pretrain.schedules",
    "lightning_modules.collapse": "lightning_modules.pretrain.collapse",
    "lightning_modules.sync_batchnorm": "lightning_modules.pretrain.sync_batchnorm",
    "lightning_modules.adamw": "lightning_modules.pretrain.adamw",
    "lightning_modules.rng": "lightning_modules.pretrain.rng",
    "lightning_modules.probe": "lightning_modules.evaluation.probe",
    "lightning_modules.feature_cache": "lightning_modules.evaluation.feature_cache",
    "lightning_modules.evaluation_protocol": "lightning_modules.evaluation.protocol",
    "lightning_modules.voting": "lightning_modules.evaluation.voting",
    "lightning_modules.finetune": "lightning_modules.downstream.finetune",
    "lightning_modules.classifier_head": "lightning_modules.downstream.classifier_head",
    "lightning_modules.partseg": "lightning_modules.downstream.partseg",
    "lightning_modules.part_segmenter": "lightning_modules.downstream.part_segmenter",
    "lightning_modules.part_iou": "lightning_modules.downstream.part_iou",
    "lightning_modules.fewshot_frozen": "lightning_modules.downstream.fewshot_frozen",
    "lightning_modules.fewshot_finetune": "lightning_modules.commands.fewshot_finetune",
    "lightning_modules.backbone_source": "lightning_modules.checkpoint_encoder",
    "lightning_modules.cli": "lightning_modules.commands.cli",
    "lightning_modules.embed_command": "lightning_modules.commands.embed",
    "lightning_modules.export_command": "lightning_modules.commands.export",
    "lightning_modules.attention_command": "lightning_modules.commands.attention",
    "lightning_modules.finetune_command": "lightning_modules.commands.finetune",
    "lightning_modules.partseg_command": "lightning_modules.commands.partseg",
    "lightning_modules.fewshot_command": "lightning_modules.commands.fewshot",
    "lightning_modules.protocol_cli": "lightning_modules.commands.protocol_cli",
    "lightning_modules.run_folder": "lightning_modules.commands.run_folder",
    "lightning_modules.wandb_runs": "lightning_modules.commands.wandb_runs",
    "lightning_modules.visuals": "lightning_modules.pictures.visuals",
    "lightning_modules.render": "lightning_modules.pictures.render",
    "lightning_modules.part_pictures": "lightning_modules.pictures.part_pictures",
}
"""Module paths before the sub-packages (old -> new), importable until the next release."""

alias_moved_modules(MOVED)

__getattr__ = lazy_attributes(__name__, _EXPORTS)
