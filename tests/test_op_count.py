"""The host-side figures of benchmarks/train_step.py --ops: ATen ops and host reads counted."""

import torch

from benchmarks.op_count import OpCounter, count_ops


def test_counts_each_op_and_each_host_read() -> None:
    x = torch.arange(6.0)

    def work() -> None:
        y = x + 1  # aten.add
        z = y.mul(2)  # aten.mul
        z.sum().item()  # aten.sum, aten._local_scalar_dense
        if (z > 3).any():  # aten.gt, aten.any, then a host read (is_nonzero reaches the dispatcher as
            pass  # aten._local_scalar_dense in this torch; counted whichever name it carries)

    c = count_ops(work)
    assert c.counts["aten.add"] == 1 and c.counts["aten.mul"] == 1
    assert c.counts["aten._local_scalar_dense"] + c.counts["aten.is_nonzero"] == 2
    assert c.host_reads == 2
    assert c.total == sum(c.counts.values()) >= 7


def test_backward_ops_are_counted_by_phase() -> None:
    w = torch.ones(3, requires_grad=True)
    with OpCounter() as c:
        c.phase = "forward"
        loss = (w * 2).sum()
        c.phase = "backward"
        loss.backward()
    assert c.by_phase["forward"] == 2  # mul, sum
    assert c.by_phase["backward"] >= 1  # the engine's ops, in the mode too
    assert sum(c.by_phase.values()) == c.total
    torch.testing.assert_close(w.grad, torch.full((3,), 2.0))
