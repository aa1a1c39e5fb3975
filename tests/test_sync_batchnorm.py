"""BatchNorm over the global batch (``model.sync_batchnorm``) for student and teacher.

Two gloo processes on CPU, each with half the batch, give the training step of one process
on the whole batch (losses, gradients, the teacher's and the student's BatchNorm statistics)
with a BatchNorm backbone and head; without the option they do not.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from backbones import PointNet
from lightning_modules.pretrain.dwc import DistillationWithContrast
from lightning_modules.pretrain.ema import set_teacher_mode
from lightning_modules.pretrain.heads import HeadConfig
from lightning_modules.pretrain.sync_batchnorm import GlobalBatchNorm, convert_to_global_batchnorm

WORLD, B = 2, 4


def _module(sync: bool) -> DistillationWithContrast:
    torch.manual_seed(0)
    return DistillationWithContrast(
        backbone=PointNet(dims=(8, 16, 32)),
        head=HeadConfig(out_dim=32, hidden_dim=32, bottleneck_dim=16, contrast_dim=8, use_bn=True),
        batch_size=B,
        sync_batchnorm=sync,
    )


def _views() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    global_views = torch.randn(2, WORLD * B, 24, 3, generator=g) * torch.tensor([1.0, 2.0, 0.5])
    local_views = torch.randn(2, WORLD * B, 12, 3, generator=g) + 0.3
    # different statistics on each rank's half, so per-rank BatchNorm is visibly not global
    global_views[:, B:] = 2.0 * global_views[:, B:] + 1.0
    return global_views, local_views


def _step(model: DistillationWithContrast, global_views: torch.Tensor, local_views: torch.Tensor) -> dict:
    """One training step's loss and student gradients; the BatchNorm statistics it leaves."""
    model.train()
    with torch.no_grad():
        teacher_out = model.teacher(global_views)
    student_out = model._student_views(global_views, local_views)
    loss = model.total_loss(
        model.distill_loss(student_out.logits, teacher_out.logits, 0.04),
        model.contrastive_loss(student_out.embedding, teacher_out.embedding),
    )
    loss.backward()
    buffers = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    grads = {k: p.grad.clone() for k, p in model.student.named_parameters() if p.grad is not None}
    return {"loss": loss.detach(), "grads": grads, "buffers": buffers}


def _worker(rank: int, port: int, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        global_views, local_views = _views()
        rows = slice(rank * B, (rank + 1) * B)
        results = {}
        for sync in (True, False):
            res = _step(_module(sync), global_views[:, rows], local_views[:, rows])
            # what DDP does with them: the mean loss and the mean gradient over ranks
            for t in [res["loss"], *res["grads"].values()]:
                dist.all_reduce(t)
                t /= WORLD
            results[sync] = res
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ddp_steps(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("syncbn")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_worker, args=(port, str(out)), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{r}.pt") for r in range(WORLD)]


def test_synced_ddp_step_equals_one_process_on_the_global_batch(ddp_steps) -> None:
    single = _step(_module(False), *_views())
    assert any("teacher.backbone" in k for k in single["buffers"]) and any("teacher.head" in k for k in single["buffers"])
    for res in ddp_steps:
        synced = res[True]
        torch.testing.assert_close(synced["loss"], single["loss"], atol=1e-5, rtol=1e-5)
        for name, grad in single["grads"].items():  # float32 rounding, relative to each tensor's scale
            atol = 1e-5 * max(1.0, grad.abs().max().item())
            torch.testing.assert_close(synced["grads"][name], grad, atol=atol, rtol=1e-4, msg=name)
        for name, buf in single["buffers"].items():  # student *and* teacher statistics are global ones
            torch.testing.assert_close(synced["buffers"][name], buf, atol=1e-5, rtol=1e-5, msg=name)


def test_without_sync_each_rank_normalises_its_own_share(ddp_steps) -> None:
    single = _step(_module(False), *_views())
    per_rank = ddp_steps[0][False]
    name = "teacher.backbone.mlp.0.norm.running_mean"
    assert not torch.allclose(per_rank["buffers"][name], single["buffers"][name], atol=1e-3)
    assert not torch.allclose(ddp_steps[0][False]["buffers"][name], ddp_steps[1][False]["buffers"][name], atol=1e-3)
    assert not torch.allclose(per_rank["loss"], single["loss"], atol=1e-4)


def test_in_one_process_global_batchnorm_is_batchnorm_and_conversion_keeps_everything() -> None:
    plain, synced = _module(False), _module(True)
    assert plain.state_dict().keys() == synced.state_dict().keys()  # checkpoints interchangeable
    norms = [m for m in synced.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert norms and all(isinstance(m, GlobalBatchNorm) for m in norms)
    assert any(isinstance(m, GlobalBatchNorm) for m in synced.teacher.modules())
    a, b = _step(plain, *_views()), _step(synced, *_views())
    assert torch.equal(a["loss"], b["loss"])
    assert all(torch.equal(a["buffers"][k], b["buffers"][k]) for k in a["buffers"])
    # the converted layer takes over the old one's tensors and mode
    bn = nn.BatchNorm1d(4).eval()
    wrapper = convert_to_global_batchnorm(nn.Sequential(bn))
    assert wrapper[0].weight is bn.weight and wrapper[0].running_var is bn.running_var and not wrapper[0].training


def test_lightnings_sync_batchnorm_flag_converts_the_teacher_too() -> None:
    """``--trainer.sync_batchnorm`` converts the whole LightningModule, teacher included (torch's
    SyncBatchNorm, GPU only); the teacher's BatchNorm then still follows :func:`set_teacher_mode`."""
    from pytorch_lightning.plugins import TorchSyncBatchNorm

    model = TorchSyncBatchNorm().apply(_module(False))
    teacher_norms = [m for m in model.teacher.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert teacher_norms and all(isinstance(m, nn.SyncBatchNorm) for m in teacher_norms)
    set_teacher_mode(model.teacher, training=True)
    assert all(m.training for m in teacher_norms) and not model.teacher.backbone.training
