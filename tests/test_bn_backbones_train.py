"""PointNet and DGCNN drive the method unchanged: the teacher's own BatchNorm, exact resume,
``fit`` + ``test`` + probe through the CLI, and a 2-process DDP fit with synced BatchNorm."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from lightning_modules.commands.cli import run_cli
from tests.helpers import (
    assert_mid_epoch_resume_is_exact,
    tiny_data,
    tiny_dgcnn,
    tiny_module,
    tiny_pointnet,
    tiny_trainer,
)
from tests.test_cli import TINY, run_console

BACKBONE_ARGS = {
    "pointnet": ["--model.backbone", "backbones.PointNet", "--model.backbone.dims", "[8, 16, 32]"],
    "dgcnn": ["--model.backbone", "backbones.DGCNN", "--model.backbone.k", "4",
              "--model.backbone.edge_dims", "[8, 8, 16]", "--model.backbone.emb_dims", "16"],
}


def _norms(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def test_teacher_backbone_batchnorm_uses_batch_statistics_in_training_and_its_own_in_eval(
    tiny_modelnet, tmp_path
) -> None:
    """PointNet: while training the teacher's backbone BatchNorm normalises each batch with that
    batch's statistics, so clouds scaled and shifted as a whole give the same features; in eval
    it uses the teacher's own running statistics (not the student's: the EMA leaves buffers alone)."""
    model = tiny_module(tiny_pointnet())
    modes = []

    class RecordModes(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            teacher = pl_module.teacher.backbone
            modes.append((all(m.training for m in _norms(teacher)), teacher.training))

    trainer = tiny_trainer(tmp_path, max_steps=2, callbacks=[RecordModes()])
    trainer.fit(model, tiny_data(tiny_modelnet))
    assert modes == [(True, False)] * 2
    teacher, student = model.teacher.backbone, model.student.backbone
    for t, s in zip(_norms(teacher), _norms(student)):
        assert int(t.num_batches_tracked) == 2  # one update per teacher forward
        assert not torch.equal(t.running_mean, s.running_mean)  # its own statistics, not copies

    points = torch.rand(6, 64, 3)
    moved = 3.0 * points + 0.5  # other batch statistics, same shapes
    model.train()
    with torch.no_grad():
        # equal up to BatchNorm's eps, which weighs differently at 9x the variance
        torch.testing.assert_close(teacher(points).global_feature, teacher(moved).global_feature, atol=3e-3, rtol=1e-3)
    model.eval()
    assert not any(m.training for m in _norms(teacher))
    with torch.no_grad():
        assert not torch.allclose(teacher(points).global_feature, teacher(moved).global_feature, atol=1e-2)


def test_resume_from_the_middle_of_an_epoch_is_exact_with_a_batchnorm_backbone(tiny_modelnet, tmp_path) -> None:
    """DGCNN (BatchNorm on edges and points, dynamic graph): stopped at step 4 and resumed, bit-identical.
    Also checks that the resumed steps' teacher uses batch statistics (the rest of a resumed epoch
    gets no ``on_train_epoch_start``)."""
    assert_mid_epoch_resume_is_exact(
        tmp_path, lambda: tiny_data(tiny_modelnet), stop_step=4, total_steps=12,
        make_model=lambda: tiny_module(tiny_dgcnn()),
    )


@pytest.mark.parametrize("backbone", list(BACKBONE_ARGS))
def test_fit_test_and_probe_through_the_cli(backbone, tiny_modelnet, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    common = ["--config", TINY, *BACKBONE_ARGS[backbone], "--data.root", str(tiny_modelnet),
              "--probe.root", str(tiny_modelnet), "--trainer.logger", "false"]
    cli = run_cli(["fit", *common])
    assert type(cli.model.student.backbone).__name__ == {"pointnet": "PointNet", "dgcnn": "DGCNN"}[backbone]
    assert cli.trainer.current_epoch == 2 and "probe/svm_acc" in capsys.readouterr().out
    fitted = float(cli.trainer.callback_metrics["probe/svm_acc"])
    (run,) = (tmp_path / "runs").iterdir()  # this run's own folder
    ckpt = run / "checkpoints" / "last.ckpt"
    tested = run_cli(["test", *common, "--ckpt_path", str(ckpt)]).trainer.callback_metrics
    assert {"probe/svm_acc", "probe/knn_acc", "test/loss"} <= set(tested)
    assert float(tested["probe/svm_acc"]) == pytest.approx(fitted)  # the teacher's running statistics were saved


def test_ddp_fit_with_a_batchnorm_backbone_and_synced_batchnorm(tiny_modelnet, tmp_path: Path) -> None:
    args = ["fit", "--config", TINY, *BACKBONE_ARGS["pointnet"], "--model.sync_batchnorm", "true",
            "--data.root", str(tiny_modelnet), "--probe.root", str(tiny_modelnet), "--trainer.logger", "false",
            "--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"]
    proc = run_console(args, tmp_path)
    assert proc.stdout.count("probe/svm_acc") == 1, proc.stdout[-2000:]
    (run,) = (tmp_path / "runs").iterdir()  # both processes wrote into one run folder
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    # 24 clouds, batch 4 per rank on 2 ranks: 3 steps per epoch, 2 epochs -> 6 teacher forwards
    assert int(state["teacher.backbone.mlp.0.norm.num_batches_tracked"]) == 6
    assert not torch.equal(state["teacher.backbone.mlp.0.norm.running_mean"], state["student.backbone.mlp.0.norm.running_mean"])


@pytest.mark.parametrize(
    "config, kind, init",
    [
        ("pointnet.yaml", "PointNet", {"out_dim": 1024}),
        ("dgcnn.yaml", "DGCNN", {"k": 8, "out_dim": 512}),
        ("pointnet_gpu.yaml", "PointNet", {"out_dim": 1024}),
        ("dgcnn_gpu.yaml", "DGCNN", {"k": 20, "out_dim": 2048}),
    ],
)
def test_backbone_configs_build_the_configured_model(config, kind, init, tmp_path, monkeypatch) -> None:
    from configs import CONFIG_DIR
    from lightning_modules.pretrain.sync_batchnorm import GlobalBatchNorm

    monkeypatch.chdir(tmp_path)
    cli = run_cli(["--config", str(CONFIG_DIR / config), "--trainer.accelerator", "cpu", "--trainer.precision",
                   "32-true", "--trainer.logger", "false"], run=False)
    backbone = cli.model.student.backbone
    assert type(backbone).__name__ == kind
    assert {k: getattr(backbone, k) for k in init} == init
    synced = any(isinstance(m, GlobalBatchNorm) for m in cli.model.teacher.modules())
    assert synced == config.endswith("_gpu.yaml")  # the multi-GPU presets sync BatchNorm


def test_exported_batchnorm_backbone_carries_the_teachers_own_statistics(tiny_modelnet, tmp_path) -> None:
    """``pointdwc export`` of a PointNet teacher: its BatchNorm running statistics travel with it,
    and the exported encoder (eval mode) gives the probe's features exactly."""
    from backbones import load_pretrained
    from lightning_modules.commands.export import main as export_main

    model = tiny_module(tiny_pointnet())
    trainer = tiny_trainer(tmp_path, max_steps=2)
    trainer.fit(model, tiny_data(tiny_modelnet))
    trainer.save_checkpoint(tmp_path / "bn.ckpt")
    assert export_main([str(tmp_path / "bn.ckpt"), str(tmp_path / "encoder.pt")]) == 0
    encoder = load_pretrained(tmp_path / "encoder.pt")
    assert type(encoder).__name__ == "PointNet" and not any(m.training for m in _norms(encoder))
    model.eval()
    points = torch.rand(3, 64, 3)
    with torch.no_grad():
        assert torch.equal(encoder(points).global_feature, model.teacher.backbone(points).global_feature)
    for a, b in zip(_norms(encoder), _norms(model.teacher.backbone)):
        assert torch.equal(a.running_mean, b.running_mean) and torch.equal(a.running_var, b.running_var)
