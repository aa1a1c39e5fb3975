"""Cross-validated checkpoint selection for small labelled sets: k fold runs choose the step, a refit uses it.

With ``data.folds`` (:mod:`datamodules.splits.kfold`) a protocol ``fit`` of one seed is ``k + 1``
runs of the same configuration and seed:

1. **fold runs**: for each fold ``i``, a fresh copy of the model fits on the other folds and is
   validated on fold ``i`` every ``data.fold_every_n_steps`` optimizer steps
   (:class:`ValidationCurve`); nothing is saved or logged;
2. **the choice** (:func:`choose_step`): the step whose validation metric, averaged over the folds,
   is best (the earliest on ties);
3. **the refit**: the model as configured fits on the whole train split, the same schedule;
   :class:`SaveAtStep` saves its weights at the chosen step, the protocol's ``selected``
   checkpoint; ``last`` is the end of the schedule. The test split is evaluated once for each.

Every train shape thus validates once and the final network fits all of them, where a single
carved split (``data.val_fraction``) leaves a fifth of a small set unfitted and lets 30 shapes decide.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from datamodules.errors import DataError
from lightning_modules.dist import print_rank_zero

PASSED_TRAINER_ARGS = (
    "accelerator", "devices", "precision", "max_steps", "max_epochs", "min_steps", "gradient_clip_val",
    "gradient_clip_algorithm", "accumulate_grad_batches", "deterministic", "benchmark",
)
"""Trainer settings a fold run takes from the configured trainer (the rest is the fold run's own)."""


class ValidationCurve(Callback):
    """Records ``metric`` at every validation: optimizer step -> value."""

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.curve: dict[int, float] = {}

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        if trainer.sanity_checking or self.metric not in trainer.callback_metrics:
            return
        self.curve[int(trainer.global_step)] = float(trainer.callback_metrics[self.metric])


class SaveAtStep(Callback):
    """Saves a full checkpoint when the optimizer step count reaches ``step`` (the refit's ``selected``)."""

    def __init__(self, step: int, path: Path) -> None:
        self.step = step
        self.path = Path(path)
        self.saved = False

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:  # noqa: D102
        if not self.saved and trainer.global_step == self.step:
            trainer.save_checkpoint(self.path)
            self.saved = True


def choose_step(curves: list[dict[int, float]], mode: str = "max") -> tuple[int, float]:
    """The step whose mean over ``curves`` (one per fold) is best, the earliest on ties; and that mean.

    Only steps every fold validated at are candidates.
    """
    if not curves or any(not c for c in curves):
        raise ValueError("every fold run must have validated at least once")
    steps = sorted(set.intersection(*(set(c) for c in curves)))
    if not steps:
        raise ValueError(f"the fold runs validated at no common step: {[sorted(c) for c in curves]}")
    means = np.array([np.mean([c[s] for c in curves]) for s in steps])
    best = int(np.argmax(means) if mode == "max" else np.argmin(means))
    return steps[best], float(means[best])


@dataclass
class FoldSelection:
    """What the fold runs of one seed gave: the chosen step, its mean score, each fold's curve."""

    step: int
    score: float
    curves: list[dict[int, float]]
    seconds: float
    fold_sizes: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """For ``results.json`` (steps as strings: JSON keys)."""
        return {"chosen_step": self.step, "mean_val": self.score, "fold_seconds": self.seconds,
                "fold_sizes": self.fold_sizes, "curves": [{str(k): v for k, v in c.items()} for c in self.curves]}


def fold_trainer(trainer_config: dict[str, Any], every: int, callback: Callback, root: Path) -> pl.Trainer:
    """A quiet trainer for one fold run: the configured schedule and precision, validation every ``every`` steps."""
    kwargs = {k: trainer_config[k] for k in PASSED_TRAINER_ARGS if trainer_config.get(k) is not None}
    accumulate = int(kwargs.get("accumulate_grad_batches", 1) or 1)
    return pl.Trainer(
        **kwargs, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, val_check_interval=every * accumulate, check_val_every_n_epoch=None,
        callbacks=[callback], default_root_dir=str(root),
    )


def run_folds(
    model: pl.LightningModule, datamodule: Any, trainer_config: dict[str, Any], metric: str, mode: str, seed: int,
    root: Path,
) -> FoldSelection:
    """The fold runs of one seed (each on a fresh copy of ``model``) and the step they choose."""
    if int(trainer_config.get("max_steps") or -1) < 1:
        raise DataError("data.folds: cross-validated selection needs a schedule in steps (trainer.max_steps); "
                        "set data.folds 0 to select on one validation split")
    k = datamodule.num_folds
    every = datamodule.fold_every_n_steps
    curves: list[dict[int, float]] = []
    sizes = np.bincount(datamodule.fold_assignment(), minlength=k).tolist()
    start = time.perf_counter()
    for fold in range(k):
        pl.seed_everything(seed, verbose=False)
        curve = ValidationCurve(metric)
        began = time.perf_counter()
        trainer = fold_trainer(trainer_config, every, curve, root / f"fold{fold}")
        trainer.fit(copy.deepcopy(model), datamodule=datamodule.for_fold(fold))
        if not curve.curve:
            raise DataError(f"fold {fold}: no validation ran (trainer.max_steps below data.fold_every_n_steps={every}?)")
        best = max(curve.curve, key=lambda s: (curve.curve[s] if mode == "max" else -curve.curve[s], -s))
        print_rank_zero(f"fold {fold + 1}/{k} ({sizes[fold]} validation shapes): {metric} {curve.curve[best]:.1f} "
                        f"best at step {best}, {curve.curve[max(curve.curve)]:.1f} at the end "
                        f"({time.perf_counter() - began:.0f} s)")
        curves.append(curve.curve)
    step, score = choose_step(curves, mode)
    seconds = time.perf_counter() - start
    print_rank_zero(f"cross-validation chose step {step} (mean {metric} {score:.2f} over {k} folds, {seconds:.0f} s); "
                    f"refitting on the whole train split")
    pl.seed_everything(seed, verbose=False)
    return FoldSelection(step, score, curves, seconds, sizes)
