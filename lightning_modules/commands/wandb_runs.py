"""Ending a trainer's W&B runs when its command ends.

W&B keeps one run per process (``wandb.run``), and Lightning's ``WandbLogger`` *reuses* a run
that is still open instead of starting its own. A command that left its run open would make
the next command of the same process (the next seed of a protocol, a notebook's next
``run_cli``, the next test) write its metrics and pictures into the earlier run.
"""

from __future__ import annotations

from typing import Any


def finish_wandb_runs(trainer: Any) -> None:
    """End the W&B run of every ``WandbLogger`` of ``trainer`` (its files written; a later logger starts a new run)."""
    from pytorch_lightning.loggers import WandbLogger

    if trainer is None:
        return
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger) and getattr(logger, "_experiment", None) is not None:
            logger.experiment.finish()
