"""No value read on the host in a training step of project code (item "no host sync in the step").

A dispatch mode counts ``aten._local_scalar_dense`` (what ``.item()``, ``float()``, ``bool()`` of a
tensor call) and ``aten.is_nonzero`` from ``on_train_batch_start`` to ``on_train_batch_end`` of one
step: the training step, backward, clipping / freezing, the optimizer step, the EMA and the centre.
Each read is charged to the innermost caller outside the ``torch`` package: a project file (not a
test) or another library's. The optimizer is torch's fused AdamW on CPU as on CUDA, whose step
counters stay tensors: no read is left to anyone, torch and Lightning included (the multi-tensor
kernel read each parameter's ``step`` counter on the host, two reads per parameter and step).
"""

from __future__ import annotations

import os
import traceback
from collections import Counter

import pytest
import pytorch_lightning as pl
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from tests.helpers import tiny_data, tiny_module, tiny_trainer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
TESTS = os.path.join(REPO, "tests") + os.sep
TORCH = os.path.dirname(os.path.abspath(torch.__file__)) + os.sep
HOST_READS = {torch.ops.aten._local_scalar_dense.default, torch.ops.aten.is_nonzero.default}


def _charge(stack: list[traceback.FrameSummary]) -> str:
    """``project``, ``torch.optim`` or ``other``: who made a host read, from its Python stack."""
    outside = [f for f in stack if not os.path.abspath(f.filename).startswith(TORCH) and not f.filename.startswith(TESTS)]
    caller = os.path.abspath(outside[-1].filename) if outside else ""
    if caller.startswith(REPO) and "site-packages" not in caller:  # a checkout's own .venv is not project code
        return "project"
    optim = os.path.join(TORCH, "optim") + os.sep
    return "torch.optim" if any(os.path.abspath(f.filename).startswith(optim) for f in stack) else f"other: {caller}"


class HostReads(TorchDispatchMode):
    """Counts host reads of tensor values by who made them (:func:`_charge`)."""

    def __init__(self) -> None:
        super().__init__()
        self.by: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in HOST_READS:
            self.by[_charge(traceback.extract_stack())] += 1
        return func(*args, **(kwargs or {}))


class CountStep(pl.Callback):
    """Counts the host reads of the step whose ``global_step`` is ``step``."""

    def __init__(self, step: int) -> None:
        self.step, self.mode, self.counts = step, None, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            self.mode = HostReads()
            self.mode.__enter__()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.mode is not None:
            self.mode.__exit__(None, None, None)
            self.counts, self.mode = self.mode.by, None


@pytest.mark.parametrize("log_every_n_steps, project_reads", [(50, 0), (3, 1)])
def test_a_training_step_reads_nothing_on_the_host_between_checks(
    tiny_modelnet, tmp_path, log_every_n_steps: int, project_reads: int
) -> None:
    """Step 2 of a 6-step epoch: 0 host reads of project code; at a logging step (2 + 1 divisible
    by 3) exactly one, the non-finite flag (which also shows the counter sees project reads)."""
    count = CountStep(2)
    model = tiny_module(freeze_last_layer_steps=10)  # clip, freeze and EMA all run in the counted step
    tiny_trainer(tmp_path, max_steps=4, callbacks=[count], log_every_n_steps=log_every_n_steps).fit(
        model, tiny_data(tiny_modelnet)
    )
    assert count.counts is not None
    assert count.counts["project"] == project_reads, dict(count.counts)
    assert sum(count.counts.values()) == project_reads, dict(count.counts)  # nobody else reads either
