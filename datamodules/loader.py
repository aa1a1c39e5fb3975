"""A DataLoader that can resume in the middle of an epoch.

Lightning resumes a mid-epoch checkpoint exactly only if the loader is stateful. Here the
shuffle order is a pure function of (seed, epoch): the sampler's own epoch under DDP
(``DistributedSampler.set_epoch``), otherwise the trainer's epoch through
``epoch_source``; the loader remembers how many batches of that epoch it has delivered
and, when Lightning restarts the same epoch from a checkpoint, skips them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from torch.utils.data import DataLoader


class ResumableDataLoader(DataLoader):
    """``DataLoader`` with ``state_dict``/``load_state_dict`` (same constructor)."""

    epoch_source: Callable[[], int] | None = None
    seed: int = 0

    def _epoch(self) -> int:
        sampler_epoch = getattr(self.sampler, "epoch", None)
        if sampler_epoch is not None:
            return int(sampler_epoch)
        return self.epoch_source() if self.epoch_source is not None else 0

    def __iter__(self) -> Iterator[Any]:
        epoch = self._epoch()
        set_epoch = getattr(self.dataset, "set_epoch", None)
        if set_epoch is not None:  # a data set drawn afresh each epoch
            set_epoch(epoch)
        if self.generator is not None:
            self.generator.manual_seed(self.seed * 100_003 + epoch)
        pending = getattr(self, "_pending", None)
        self._pending = None
        skip = pending["batches"] if pending is not None and pending["epoch"] == epoch else 0
        self._state = {"epoch": epoch, "batches": skip}
        iterator = super().__iter__()
        for _ in range(skip):
            next(iterator)
        for batch in iterator:
            self._state["batches"] += 1
            yield batch
        self._state = {"epoch": epoch + 1, "batches": 0}

    def state_dict(self) -> dict[str, int]:
        """Epoch and batches delivered in it."""
        return dict(getattr(self, "_state", {"epoch": 0, "batches": 0}))

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Skip the delivered batches if the next iteration replays the same epoch."""
        self._pending = {"epoch": int(state["epoch"]), "batches": int(state["batches"])}

