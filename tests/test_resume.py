"""``fit --ckpt_path`` is never silent: honoured changes are applied and printed, a changed
network or recipe is refused, and the resumed run writes into a folder of its own."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl

from configs import CONFIG_DIR
from lightning_modules.commands import entry
from lightning_modules.commands.cli import run_cli

TINY = str(Path(__file__).parent / "tiny.yaml")


def _fit(root: Path, *extra: str):
    """A tiny fit through the CLI: one epoch of 2 steps, no W&B."""
    args = ["fit", "--config", TINY, "--data.root", str(root), "--probe.root", str(root), "--trainer.logger", "false",
            "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", *extra]
    return run_cli(args)


class RecordLr(pl.Callback):
    """The learning rate of each param group when the optimizer steps, per step."""

    seen: dict[int, list[float]] = {}

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        RecordLr.seen[trainer.global_step] = [group["lr"] for group in optimizer.param_groups]


def _bytes(folder: Path) -> dict[Path, bytes]:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_new_lr_reaches_the_resumed_optimizer_and_is_printed(tiny_modelnet, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    first = _fit(tiny_modelnet)  # lr 4e-3 (configs/default.yaml), 2 steps
    ckpt = first.run_folder.path / "checkpoints" / "last.ckpt"
    capsys.readouterr()
    RecordLr.seen = {}
    _fit(tiny_modelnet, "--ckpt_path", str(ckpt), "--trainer.max_epochs", "3", "--model.optim.lr", "1e-3",
         "--model.optim.min_lr", "2e-7", "--trainer.callbacks+=tests.test_resume.RecordLr")
    out = capsys.readouterr().out
    assert "model.optim.lr: 0.004 -> 0.001" in out
    assert "model.optim.min_lr: 1e-06 -> 2e-07" in out
    assert "model.max_epochs: 1 -> 3" in out and "trainer.max_epochs: 1 -> 3" in out
    # DINO's schedule written out: peak = lr * batch 4 / 256; warm-up 1 epoch = 2 steps of 6; then cosine
    peak, min_lr, warmup, total = 1e-3 * 4 / 256, 2e-7, 2, 6
    first_resumed = min(RecordLr.seen)
    assert first_resumed == 2
    expected = min_lr + 0.5 * (peak - min_lr) * (1 + math.cos(math.pi * (first_resumed - warmup) / (total - warmup)))
    for lr in RecordLr.seen[first_resumed]:
        assert lr == pytest.approx(expected, rel=1e-12)
    later = 4
    expected = min_lr + 0.5 * (peak - min_lr) * (1 + math.cos(math.pi * (later - warmup) / (total - warmup)))
    assert RecordLr.seen[later][0] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "extra, lines",
    [
        (["--model.optim.lr", "1e-5", "--model.head.out_dim", "32"], ["model.head.out_dim: 64 -> 32"]),
        (["--config", str(CONFIG_DIR / "pointnet.yaml")],
         ["model.backbone.class_path: 'backbones.point_vit.PointViT' -> 'backbones.PointNet'"]),
        (["--model.backbone.init_args.depth", "2", "--data.crops.local_crops.num_crops", "4"],
         ["model.backbone.init_args.depth: 1 -> 2", "data.crops.local_crops.num_crops: 2 -> 4"]),
    ],
    ids=["head-out-dim", "another-backbone", "depth-and-crops"],
)
def test_a_changed_network_or_recipe_is_refused_and_nothing_written(
    extra, lines, tiny_modelnet, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    first = _fit(tiny_modelnet)
    parent = first.run_folder.path
    before = _bytes(tmp_path)
    ckpt = parent / "checkpoints" / "last.ckpt"
    capsys.readouterr()
    argv = ["pointdwc", "fit", "--config", TINY, "--data.root", str(tiny_modelnet), "--trainer.logger", "false",
            "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--probe.root", str(tiny_modelnet),
            "--ckpt_path", str(ckpt), *extra]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exc:
        entry.console_script()
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("pointdwc: error: cannot resume") and "Traceback" not in err
    for line in lines:
        assert line in err
    assert "model.optim.lr" not in err  # honoured, so not among the refused
    assert _bytes(tmp_path) == before  # no new run folder, the parent untouched
