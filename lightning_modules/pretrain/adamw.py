"""AdamW without weight decay on biases and norms, with a per-step warm-up + cosine learning rate.

Shared by the supervised downstream modules (fine-tuning; segmentation): ``configure_adamw``
returns what ``LightningModule.configure_optimizers`` returns. The learning rate follows
:class:`~lightning_modules.pretrain.schedules.CosineSchedule` per optimizer step: linear from
``warmup_start_lr`` to ``lr`` over ``warmup_epochs``, then cosine down to ``min_lr`` at the
last step (Point-MAE's schedule, stepped per optimizer step instead of per epoch). The
learning rate is absolute: it is not scaled by the batch size (the field's fine-tuning recipes
give it for their batch).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from lightning_modules.pretrain.schedules import CosineSchedule


@dataclass
class AdamWConfig:
    """AdamW and its learning-rate schedule (defaults: Point-MAE's fine-tuning)."""

    lr: float = 5e-4
    """Peak learning rate (absolute, whatever the batch size)."""
    min_lr: float = 1e-6
    warmup_epochs: float = 10
    warmup_steps: int | None = None
    """Warm-up length in optimizer steps; when set it replaces ``warmup_epochs`` (a schedule sized in steps)."""
    warmup_start_lr: float = 1e-6
    weight_decay: float = 0.05
    """On weights only; biases and norm parameters get none."""
    betas: tuple[float, float] = (0.9, 0.999)


def is_no_decay(name: str, param: nn.Parameter) -> bool:
    """Biases and 1-d parameters (norm scales, tokens of shape (D,)) get no weight decay."""
    return name.endswith(".bias") or param.ndim <= 1


def param_groups(named_parameters: Iterable[tuple[str, nn.Parameter]], weight_decay: float) -> list[dict[str, Any]]:
    """Two AdamW groups of the trainable parameters: ``decay`` (weights) and not (biases, norms).

    Each group carries ``"decay": bool`` so a weight-decay schedule can find the first one.
    """
    decay, no_decay = [], []
    for name, param in named_parameters:
        if param.requires_grad:
            (no_decay if is_no_decay(name, param) else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay, "decay": True},
        {"params": no_decay, "weight_decay": 0.0, "decay": False},
    ]


def adamw_kernel(device: torch.device) -> dict[str, bool]:
    """The AdamW implementation for parameters on ``device``: the fused kernel on CUDA and CPU
    (one op for all parameters, step counters kept as tensors: no host read per parameter),
    the multi-tensor (``foreach``) one elsewhere. On CPU the fused kernel rounds differently
    from the per-parameter loop: ``tests/test_optimizer_side.py`` bounds the difference."""
    return {"fused": True} if device.type in ("cuda", "cpu") else {"foreach": True}


def run_length(trainer: pl.Trainer) -> tuple[int, int]:
    """``(steps_per_epoch, total_steps)`` of optimizer steps of this fit (honours max_steps, accumulation)."""
    total = trainer.estimated_stepping_batches  # builds the train loader if needed
    batches = trainer.num_training_batches
    if not math.isfinite(batches) and math.isfinite(total) and trainer.train_dataloader is None:
        trainer.fit_loop.setup_data()  # a run sized by max_steps alone (max_epochs -1) has not built its loader
        batches = trainer.num_training_batches
    if not math.isfinite(batches) or not math.isfinite(total):
        raise ValueError("the schedule needs the run's length: use a sized training set and set trainer.max_epochs")
    steps_per_epoch = max(1, math.ceil(batches / trainer.accumulate_grad_batches))
    return steps_per_epoch, max(1, int(total))


def warmup_cosine(config: AdamWConfig, steps_per_epoch: int, total_steps: int) -> CosineSchedule:
    """The learning rate per optimizer step (warm-up capped at the run's length)."""
    if config.warmup_steps is not None and config.warmup_steps < 0:
        raise ValueError(f"model.optim.warmup_steps={config.warmup_steps}: must be at least 0")
    planned = config.warmup_steps if config.warmup_steps is not None else round(config.warmup_epochs * steps_per_epoch)
    warmup = min(total_steps, planned)
    return CosineSchedule(config.lr, config.min_lr, total_steps, warmup, config.warmup_start_lr)


def configure_adamw(
    named_parameters: Iterable[tuple[str, nn.Parameter]],
    config: AdamWConfig,
    trainer: pl.Trainer,
    groups: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """AdamW over :func:`param_groups` (or the given ``groups``) and a per-step LambdaLR following :func:`warmup_cosine`.

    A group with an ``lr_scale`` (layer-wise decay) follows the schedule times that scale.
    Returns the dict ``configure_optimizers`` returns (Lightning steps the schedule after each
    optimizer step and checkpoints its position).
    """
    if groups is None:
        groups = param_groups(named_parameters, config.weight_decay)
    for group in groups:
        group["lr"] = config.lr * group.get("lr_scale", 1.0)
    optimizer = torch.optim.AdamW(groups, lr=config.lr, betas=config.betas)
    schedule = warmup_cosine(config, *run_length(trainer))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: schedule(step) / config.lr)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}
