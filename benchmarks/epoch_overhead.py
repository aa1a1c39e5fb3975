"""Where a real ``pointdwc fit`` spends its wall time outside the training steps.

Runs ``pointdwc fit`` in this process (any config, any extra arguments) with one more callback,
:class:`EpochClock`, and splits each epoch's wall time (from its start to the next epoch's
start, or to the end of the fit) into

    steps        first batch requested -> last step finished (loader waits, crops, forwards,
                 backward, optimizer, EMA, logging: what the step timers measure)
    epoch end    last step finished -> next epoch's start: epoch-end hooks (probe, pictures,
                 checkpoint writes, validation) and the loader's restart
    checkpoint   of which the time inside ``trainer.save_checkpoint`` (every write: epoch
                 files and, without links, last.ckpt copies)

and prints them per epoch and in total, the overhead (everything but steps) as a share of the
wall time. The checkpoint cadence (``CheckpointCadence``) and persistent workers are what keep
it small; ``--every-epoch`` restores the old cadence (a checkpoint every epoch, ``last.ckpt`` a
second full copy) for comparison.

Usage:
    python benchmarks/epoch_overhead.py                                   # CPU default, 3 epochs
    python benchmarks/epoch_overhead.py --epochs 4 -- --config configs/vit_small.yaml   # a --config resets what it sets: give
                                                                          # --probe.every_n_epochs 0 after it
    python benchmarks/epoch_overhead.py --every-epoch                     # the old cadence
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))


def _sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


class EpochClock(pl.Callback):
    """Per epoch: start, end of its last step, and seconds spent writing checkpoints."""

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.last_step_end: list[float] = []
        self.checkpoint_s: list[float] = []
        self.end: float | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:  # noqa: D102
        save = trainer.save_checkpoint

        def timed_save(*args: Any, **kwargs: Any) -> None:
            t0 = time.perf_counter()
            save(*args, **kwargs)
            if self.checkpoint_s:
                self.checkpoint_s[-1] += time.perf_counter() - t0

        trainer.save_checkpoint = timed_save  # type: ignore[method-assign]

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        _sync()
        self.starts.append(time.perf_counter())
        self.last_step_end.append(self.starts[-1])
        self.checkpoint_s.append(0.0)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: D102
        _sync()
        self.last_step_end[-1] = time.perf_counter()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        _sync()
        self.end = time.perf_counter()

    def rows(self) -> list[tuple[int, float, float, float]]:
        """(epoch, wall s, steps s, checkpoint s) of every finished epoch."""
        bounds = [*self.starts[1:], self.end if self.end is not None else self.last_step_end[-1]]
        return [(i, bounds[i] - self.starts[i], self.last_step_end[i] - self.starts[i], self.checkpoint_s[i])
                for i in range(len(self.starts))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--every-epoch", action="store_true",
                        help="the old cadence: a checkpoint every epoch and last.ckpt a second full copy")
    parser.add_argument("fit_args", nargs="*", help="more `pointdwc fit` arguments (after --)")
    args = parser.parse_args()

    from lightning_modules.commands import cli

    clock = EpochClock()
    with tempfile.TemporaryDirectory() as runs:
        fit = ["fit", "--trainer.max_epochs", str(args.epochs), "--trainer.logger", "false",
               "--trainer.default_root_dir", runs, "--probe.every_n_epochs", "0", *args.fit_args]

        def before_fit(self: Any) -> None:
            self.trainer.callbacks.append(clock)
            if args.every_epoch:  # Lightning's default: every epoch, last.ckpt a second full file
                saver = self.trainer.checkpoint_callback
                saver.every_minutes, saver.cadence_epochs, saver.save_last = None, 1, True

        cli.PointDWCCLI.before_fit = before_fit  # type: ignore[attr-defined]
        cli.run_cli(fit)

    rows = clock.rows()
    print(f"\n{'epoch':>5} {'wall s':>8} {'steps s':>8} {'epoch end s':>11} {'checkpoint s':>12} {'overhead':>8}")
    for epoch, wall, steps, ckpt in rows:
        print(f"{epoch:>5} {wall:>8.2f} {steps:>8.2f} {wall - steps:>11.2f} {ckpt:>12.2f} {(wall - steps) / wall:>8.1%}")
    wall, steps, ckpt = (sum(r[i] for r in rows) for i in (1, 2, 3))
    print(f"{'all':>5} {wall:>8.2f} {steps:>8.2f} {wall - steps:>11.2f} {ckpt:>12.2f} {(wall - steps) / wall:>8.1%}")
    print(f"overhead (outside the steps): {(wall - steps) / wall:.1%} of {wall:.1f} s wall; "
          f"checkpoint writes {ckpt / wall:.1%}")


if __name__ == "__main__":
    main()
