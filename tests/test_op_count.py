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
    assert not c.reads_by_phase  # no .item() anywhere
    torch.testing.assert_close(w.grad, torch.full((3,), 2.0))


def test_multicrop_ops_do_not_grow_with_the_number_of_crops() -> None:
    """All crops of a resolution are one batch: 2 or 6 local crops dispatch the same ops."""
    from datamodules.views.crops import CropSpec, MultiCrop, MultiCropConfig

    pts = torch.rand(3, 200, 3)

    def ops(local: int) -> int:
        mc = MultiCrop(MultiCropConfig(global_crops=CropSpec(2, 64, (0.5, 1.0)), local_crops=CropSpec(local, 16, (0.1, 0.4))))
        return count_ops(lambda: mc(pts, torch.Generator().manual_seed(0))).total

    assert ops(2) == ops(6)


def test_fps_costs_six_ops_an_iteration_and_no_host_read() -> None:
    from backbones.grouping import farthest_point_sample

    pts = torch.rand(4, 100, 3)
    short, long = (count_ops(lambda s=s: farthest_point_sample(pts, s)) for s in (9, 17))
    assert long.total - short.total == 6 * 8
    assert long.host_reads == 0


def test_views_are_counted_apart_from_ops_that_compute() -> None:
    x = torch.arange(6.0)

    def work() -> None:
        y = x.view(2, 3).t()  # aten.view, aten.t: views
        z = y.unsqueeze(0).expand(4, 3, 2)  # aten.unsqueeze, aten.expand: views
        (z * 2).sum()  # aten.mul, aten.sum: compute

    c = count_ops(work)
    assert (c.total, c.views, c.compute) == (6, 4, 2)
