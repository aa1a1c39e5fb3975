"""Few-shot classification by fine-tuning on each fold (Point-MAE's protocol, scored honestly).

Each fold is a small data set (:class:`~datamodules.splits.fewshot_fold.FoldSet`); the fine-tuning
module, data module and trainer are built from ``configs/finetune/fewshot.yaml`` (over the
fine-tuning default, under any ``--config``) exactly as ``pointdwc finetune`` builds them, the
fold replaces the data set, and the run is fitted and then tested once
(:func:`~lightning_modules.evaluation.protocol.evaluate_after_fit`). A fold's score is its
**last** epoch, or with ``select: val`` the checkpoint chosen on a validation split carved from
the fold's train shapes; never the best test epoch (Point-MAE reports that). A config that
validates on the test split is refused.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

from datamodules.errors import DataError
from datamodules.splits.fewshot_fold import FoldSet
from configs import shipped_config
from lightning_modules.evaluation.protocol import CheckpointScores, RunResult, evaluate_after_fit
from lightning_modules.commands.finetune import SPEC, FineTuneCLI, run_finetune

FEWSHOT_CONFIG = shipped_config("finetune/fewshot.yaml")
"""The per-fold fine-tuning recipe (CPU-sized), loaded over ``configs/finetune/default.yaml``."""

Select = Literal["last", "val"]


def fold_score(result: RunResult, select: Select) -> CheckpointScores:
    """The checkpoint a fold is scored with: the last one, or the validation-selected one."""
    if select == "last":
        return result.last
    if result.selected is None:
        raise DataError("select=val: no checkpoint was selected (the fold had no validation split or no ModelCheckpoint "
                        "monitoring val/acc)")
    return result.selected


def build_fold_run(
    fold: FoldSet, ckpt: str | None, network: str | None, configs: list[str], overrides: list[str], seed: int,
    select: Select, val_fraction: float, workdir: Path,
) -> FineTuneCLI:
    """The fine-tuning objects for one fold (not yet fitted)."""
    args = ["--config", str(FEWSHOT_CONFIG)]
    for config in configs:
        args += ["--config", config]
    args += ["--seed_everything", str(seed), "--trainer.default_root_dir", str(workdir),
             "--data.val_fraction", str(val_fraction if select == "val" else 0.0), *overrides]
    if ckpt is not None:
        args += ["--ckpt", ckpt]
    if network is not None:
        args += ["--network", network]
    cli = run_finetune(args, run=False)
    if cli.datamodule.validate_on == "test":
        raise DataError("data.validate_on=test: few-shot folds are never validated on their test shapes; score the last "
                        "epoch (--select last) or a validation split of the fold's train shapes (--select val)")
    cli.datamodule.dataset = fold
    return cli


def finetune_fold(
    fold: FoldSet, ckpt: str | None, network: str | None, configs: list[str], overrides: list[str], seed: int,
    select: Select, val_fraction: float, workdir: Path,
) -> tuple[RunResult, FineTuneCLI]:
    """Fine-tune on the fold's train shapes and test its test shapes once (last and, if any, selected checkpoint)."""
    cli = build_fold_run(fold, ckpt, network, configs, overrides, seed, select, val_fraction, workdir)
    start = time.perf_counter()
    cli.trainer.fit(cli.model, cli.datamodule)
    result = evaluate_after_fit(cli.trainer, cli.model, cli.datamodule, SPEC, fold.fold)
    result.fit_seconds = time.perf_counter() - start
    result.run_folder = str(workdir)
    return result, cli
