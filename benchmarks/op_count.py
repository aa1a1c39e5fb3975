"""Host-side figures of a piece of work: ATen ops dispatched, host reads, CUDA kernel launches.

On a GPU a training step of small kernels is bound by the host: every ATen op costs a
dispatch (and usually a kernel launch), and every host read (``aten._local_scalar_dense``:
``.item()``, ``float(t)``; ``aten.is_nonzero``: ``if t:``) waits for the device to drain.
:class:`OpCounter` counts both with a ``TorchDispatchMode``, on any device;
:func:`count_kernel_launches` counts the CUDA kernel launches with the profiler.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

HOST_READ_OPS = ("aten._local_scalar_dense", "aten.is_nonzero")
"""The ops that copy a device value to the host (``.item()``, ``bool(t)``; torch 2.x dispatches
``bool(t)`` as ``aten._local_scalar_dense`` too, the second name is counted in case it does not)."""


class OpCounter(TorchDispatchMode):
    """Counts every ATen op dispatched while active, by overload packet name (``aten.add``).

    Ops the autograd engine runs for a ``backward()`` started inside the mode are counted
    too (the mode is part of the thread-local state the engine carries over).
    """

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()
        self.by_phase: Counter[str] = Counter()
        """Ops per phase of the work: whatever :attr:`phase` was when each op ran."""
        self.reads_by_phase: Counter[str] = Counter()
        """Host reads per phase."""
        self.phase = "other"
        self.views = 0
        """Ops that only alias their input (``func.is_view``: view, t, expand, detach, …): no data is
        read or written, so no kernel runs on any device."""

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        name = str(func.overloadpacket)
        self.counts[name] += 1
        self.by_phase[self.phase] += 1
        self.views += bool(func.is_view)
        if name in HOST_READ_OPS:
            self.reads_by_phase[self.phase] += 1
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int:
        """All ops counted."""
        return sum(self.counts.values())

    @property
    def compute(self) -> int:
        """Ops that are not views: the ones that can launch a kernel (an upper bound on an eager GPU step's launches)."""
        return self.total - self.views

    @property
    def host_reads(self) -> int:
        """``aten._local_scalar_dense`` + ``aten.is_nonzero`` calls."""
        return sum(self.counts[name] for name in HOST_READ_OPS)

    def top(self, n: int = 10) -> list[tuple[str, int]]:
        """The ``n`` most frequent ops and their counts."""
        return self.counts.most_common(n)


def count_ops(fn: Callable[[], Any]) -> OpCounter:
    """Run ``fn`` once under an :class:`OpCounter` and return the counter."""
    with OpCounter() as counter:
        fn()
    return counter


def count_kernel_launches(fn: Callable[[], Any]) -> int:
    """CUDA kernel launches (``cudaLaunchKernel`` and kin, as the profiler records them) of ``fn``.

    Needs a CUDA device; synchronises before and after so the launches are all ``fn``'s.
    """
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return sum(evt.count for evt in prof.key_averages() if "LaunchKernel" in evt.key)
