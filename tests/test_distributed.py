"""Two gloo processes on CPU give what one process gives on the concatenated batch."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from lightning_modules.dist import gather_with_grad
from lightning_modules.pretrain.losses import DistillationLoss, multi_view_info_nce
from lightning_modules.evaluation.probe import _gather_rows

WORLD = 2
B, E, K = 5, 8, 16


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _inputs() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "rows": torch.randn(WORLD * B, E, generator=g),
        "weights": torch.randn(WORLD * B, E, generator=g),
        "teacher": torch.randn(2, WORLD * B, K, generator=g),
        "student_emb": F.normalize(torch.randn(4, WORLD * B, E, generator=g), dim=-1),  # 2 global + 2 local views
        "teacher_emb": F.normalize(torch.randn(2, WORLD * B, E, generator=g), dim=-1),
        "center": torch.randn(1, K, generator=g),
        "features": torch.randn(7, 3, generator=g),  # 7 samples: not divisible by 2 ranks
        "probe_train": torch.randn(41, 6, generator=g),  # odd sizes: a padding sampler would duplicate
        "probe_test": torch.randn(17, 6, generator=g),
    }


def _gathered_loss(gathered: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """A loss of the global batch that weighs every row differently (its gradient shows which row is which)."""
    return (gathered.square() * weights).sum()


def _probe_accuracy(train_x: np.ndarray, test_x: np.ndarray) -> tuple[float, float]:
    """SVM and kNN accuracy of the synthetic probe features (labels from the first coordinate)."""
    from lightning_modules.evaluation.knn import weighted_knn
    from lightning_modules.evaluation.linear_svm import linear_svm

    train_y, test_y = (train_x[:, 0] > 0).astype(int), (test_x[:, 0] > 0).astype(int)
    svm = linear_svm(train_x, train_y, test_x, test_y, 0.1)
    return svm.acc, weighted_knn(train_x, train_y, test_x, test_y, 5, 0.07).acc


def _worker(rank: int, port: int, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        x = _inputs()
        rows = slice(rank * B, (rank + 1) * B)
        # the gather that keeps gradients (sync batchnorm's statistics): every rank computes the
        # loss of the global batch, whose gradient reaches each rank's own rows
        own = x["rows"][rows].clone().requires_grad_()
        loss = _gathered_loss(gather_with_grad(own), x["weights"])
        loss.backward()
        # the multi-view contrastive term: one gather of the (no-grad) teacher keys per step
        gathers = []
        real_all_gather = dist.all_gather
        dist.all_gather = lambda *a, **k: (gathers.append(1), real_all_gather(*a, **k))[1]
        student_emb = x["student_emb"][:, rows].clone().requires_grad_()
        multi = multi_view_info_nce(student_emb, x["teacher_emb"][:, rows], 0.2)
        dist.all_gather = real_all_gather
        multi.backward()
        multi_mean = multi.detach().clone()
        dist.all_reduce(multi_mean)
        # the centre from each rank's share of the teacher outputs
        dino = DistillationLoss(K, center_momentum=0.9)
        dino.center.copy_(x["center"])
        dino.update_center(x["teacher"][:, rows])
        # the probe's gather: rank r embeds samples r, r+2, ... (no padding)
        mine = np.arange(rank, len(x["features"]), WORLD)
        feats, idx = _gather_rows(x["features"].numpy()[mine], mine)
        probe_feats = []
        for key in ("probe_train", "probe_test"):
            rows_r = np.arange(rank, len(x[key]), WORLD)
            probe_feats.append(_gather_rows(x[key].numpy()[rows_r], rows_r)[0])
        accuracy = _probe_accuracy(*probe_feats)
        loss_mean = loss.detach().clone()
        dist.all_reduce(loss_mean)
        torch.save(
            {
                "loss": loss_mean / WORLD,
                "multi_view_loss": multi_mean / WORLD,
                "multi_view_grad": student_emb.grad,
                "multi_view_gathers": len(gathers),
                "gathered_grad": own.grad,
                "center": dino.center,
                "features": torch.from_numpy(feats),
                "index": torch.from_numpy(idx),
                "accuracy": accuracy,
            },
            Path(out_dir) / f"rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(_free_port(), str(out)), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{r}.pt") for r in range(WORLD)]


def test_gather_with_grad_gives_each_rank_the_gradient_of_its_rows(ddp_results) -> None:
    x = _inputs()
    rows = x["rows"].clone().requires_grad_()
    loss = _gathered_loss(rows, x["weights"])
    loss.backward()
    torch.testing.assert_close(ddp_results[0]["loss"], loss.detach())
    torch.testing.assert_close(rows.grad, 2 * x["rows"] * x["weights"])  # the loss is what it says
    for r, res in enumerate(ddp_results):
        share = slice(r * B, (r + 1) * B)
        # DDP averages gradients over ranks, so a rank's gradient is WORLD × its share
        torch.testing.assert_close(res["gathered_grad"] / WORLD, rows.grad[share])


def test_multi_view_contrast_gathers_once_and_equals_single_process(ddp_results) -> None:
    x = _inputs()
    student_emb = x["student_emb"].clone().requires_grad_()
    loss = multi_view_info_nce(student_emb, x["teacher_emb"], 0.2)
    loss.backward()
    for r, res in enumerate(ddp_results):
        assert res["multi_view_gathers"] == 1  # not one per (teacher view, student view) pair
        torch.testing.assert_close(res["multi_view_loss"], loss.detach())
        rows = slice(r * B, (r + 1) * B)
        torch.testing.assert_close(res["multi_view_grad"] / WORLD, student_emb.grad[:, rows])


def test_center_after_a_step_equals_single_process(ddp_results) -> None:
    x = _inputs()
    dino = DistillationLoss(K, center_momentum=0.9)
    dino.center.copy_(x["center"])
    dino.update_center(x["teacher"])
    for res in ddp_results:
        torch.testing.assert_close(res["center"], dino.center)


def test_probe_gathers_every_sample_exactly_once(ddp_results) -> None:
    x = _inputs()
    for res in ddp_results:
        assert res["index"].tolist() == list(range(7))
        torch.testing.assert_close(res["features"], x["features"])


def test_probe_accuracy_equals_single_process(ddp_results) -> None:
    x = _inputs()
    single = _probe_accuracy(x["probe_train"].numpy(), x["probe_test"].numpy())
    for res in ddp_results:
        assert res["accuracy"] == single


def test_ranks_draw_different_crops_reproducibly(tiny_modelnet, tmp_path) -> None:
    from tests.helpers import tiny_data

    class FakeTrainer:  # what the DataModule reads of Lightning's Trainer while training
        validating = False
        sanity_checking = False

        def __init__(self, rank: int) -> None:
            self.global_rank = rank

    points = torch.rand(2, 512, 3)
    views = {}
    for rank in (0, 1, 0):
        dm = tiny_data(tiny_modelnet)
        dm.trainer = FakeTrainer(rank)  # type: ignore[assignment]
        views.setdefault(rank, []).append(dm.on_after_batch_transfer((points, torch.zeros(2)), 0)["global"])
    assert not torch.equal(views[0][0], views[1][0])
    torch.testing.assert_close(views[0][0], views[0][1])
