"""Wall time of each step of a Lightning fit and where it goes: loader wait, crops, the rest.

Step i lasts from the end of step i-1 to the end of step i, and splits into

    loader wait  the loader's next batch and its transfer to the device (the training
                 process waits on the workers, or reads the rows itself with 0 workers)
    crops        the DataModule's ``on_after_batch_transfer``: the multi-crop views, on the device
    compute      ``on_train_batch_start`` -> ``on_train_batch_end``: grouping, forwards,
                 losses, backward, optimizer, EMA, logging

On CUDA every boundary synchronises the device so that each part holds its own kernels
(the step already waits for its loss every step: pointdwc stops on a non-finite one).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch


def _sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


class StepTimer(pl.Callback):
    """Times every training step after ``warmup`` untimed ones (see the module docstring).

    Args:
        warmup: steps left out (worker start-up, allocator warm-up, compilation).
        datamodule: its ``on_after_batch_transfer`` is timed as the crops.
    """

    def __init__(self, warmup: int, datamodule: pl.LightningDataModule) -> None:
        self.warmup = warmup
        self.ends: list[float] = []
        self.starts: list[float] = []
        self.crops: list[float] = []
        hook: Callable[[Any, int], Any] = datamodule.on_after_batch_transfer

        def timed(batch: Any, dataloader_idx: int) -> Any:
            _sync()
            t0 = time.perf_counter()
            out = hook(batch, dataloader_idx)
            _sync()
            self.crops.append(time.perf_counter() - t0)
            return out

        datamodule.on_after_batch_transfer = timed  # type: ignore[method-assign]

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:  # noqa: D102
        _sync()
        self.starts.append(time.perf_counter())

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:  # noqa: D102
        _sync()
        self.ends.append(time.perf_counter())

    def timed_steps(self) -> int:
        """Steps timed: all after the warm-up (the first step has no previous end)."""
        return max(0, len(self.ends) - max(self.warmup, 1))

    def seconds(self) -> float:
        """Wall time of the timed steps."""
        first = max(self.warmup, 1) - 1
        if self.timed_steps() < 1:
            raise RuntimeError(f"StepTimer: {len(self.ends)} steps ran, none after the {self.warmup} warm-up steps")
        return self.ends[-1] - self.ends[first]

    def samples_per_second(self, batch_size: int) -> float:
        """Clouds per second over the timed steps (one process)."""
        return batch_size * self.timed_steps() / self.seconds()

    def split(self) -> dict[str, float]:
        """Shares of the timed steps' wall time: ``loader wait``, ``crops``, ``compute``."""
        first = max(self.warmup, 1)
        total = self.seconds()
        crops = sum(self.crops[first : len(self.ends)])
        compute = sum(e - s for s, e in zip(self.starts[first:], self.ends[first:]))
        gaps = sum(s - e for s, e in zip(self.starts[first:], self.ends[first - 1 :]))
        return {"loader wait": (gaps - crops) / total, "crops": crops / total, "compute": compute / total}


def peak_memory(device: torch.device) -> str:
    """Peak memory so far: the device allocator's on GPU, the process's maximum RSS on CPU."""
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB (allocated)"
    try:
        import resource

        return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB (process max RSS)"
    except ImportError:  # not on every platform
        return "n/a"
