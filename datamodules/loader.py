"""A DataLoader that can resume in the middle of an epoch.

Lightning resumes a mid-epoch checkpoint exactly only if the loader is stateful. Here the
shuffle order is a pure function of (seed, epoch): the sampler's own epoch under DDP
(``DistributedSampler.set_epoch``), otherwise the trainer's epoch through
``epoch_source``; the loader remembers how many batches of that epoch it has delivered
and, when Lightning restarts the same epoch from a checkpoint, skips them.

Under DDP Lightning builds a new loader of the same class with a ``DistributedSampler``
from the arguments the first was constructed with: ``seed``, ``epoch_source`` and the
``position`` to resume from are therefore constructor arguments, so the loader Lightning
actually iterates has them too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from torch.utils.data import DataLoader


class ResumableDataLoader(DataLoader):
    """``DataLoader`` with ``state_dict``/``load_state_dict``.

    Args:
        *args, **kwargs: ``DataLoader``'s.
        seed: the shuffle order of epoch ``e`` is seeded with ``seed * 100_003 + e``
            (without a ``DistributedSampler``, which has its own seed).
        epoch_source: the current epoch when the sampler does not tell it.
        position: a :meth:`state_dict` to resume from (as :meth:`load_state_dict`).
    """

    def __init__(
        self,
        *args: Any,
        seed: int = 0,
        epoch_source: Callable[[], int] | None = None,
        position: dict[str, int] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.seed = seed
        self.epoch_source = epoch_source
        self._pending: dict[str, int] | None = None
        if position is not None:
            self.load_state_dict(position)

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

