"""`pointdwc fit` and `pointdwc test` end to end on a tiny config (W&B offline)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lightning_modules.commands.cli import run_cli
from lightning_modules.evaluation.probe import LinearProbe
from tests.helpers import probe_reference

TINY = str(Path(__file__).parent / "tiny.yaml")


def test_fit_then_test_through_the_cli(tiny_modelnet, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    root = str(tiny_modelnet)
    cli = run_cli(["fit", "--config", TINY, "--data.root", root, "--probe.root", root])
    out = capsys.readouterr()
    text = out.out + out.err
    (run,) = (tmp_path / "runs").iterdir()  # this run's own folder
    ckpt = run / "checkpoints" / "last.ckpt"
    assert ckpt.is_file() and (run / "config.yaml").is_file()
    assert f"checkpoint: {ckpt}" in out.out and f"pointdwc test --ckpt_path {ckpt}" in out.out
    assert "probe/svm_acc" in text and "probe/knn_acc" in text
    assert "C by stratified 5-fold CV on the train split, test split predicted once" in text  # the protocol
    assert cli.trainer.current_epoch == 2
    metrics = cli.trainer.callback_metrics
    # the logged probe: the classifiers on the final teacher's own features, computed here
    (probe,) = [cb for cb in cli.trainer.callbacks if isinstance(cb, LinearProbe)]
    svm_acc, knn_acc, _ = probe_reference(cli.model.teacher.backbone, probe)
    assert (float(metrics["probe/svm_acc"]), float(metrics["probe/knn_acc"])) == pytest.approx((svm_acc, knn_acc))
    # the linked values reached the model
    assert cli.model.batch_size == 4 and cli.model.max_epochs == 2
    # W&B ran offline and its run holds the metrics, the resolved config and the pictures
    import wandb

    assert wandb.run is None  # the command ended its W&B run: the next command of this process starts its own
    (run_dir,) = (run / "wandb").glob("offline-run-*")
    keys = (b"train/loss_contrast", b"train/teacher_entropy", b"probe/svm_acc", b"embed_dim", b"crops/views")
    records = _wandb_records(run_dir, keys)
    for key in keys:
        assert key in records, key
    media = [str(p.relative_to(run_dir)) for p in (run_dir / "files" / "media").rglob("*") if p.is_file()]
    assert any("crops" in m and m.endswith(".png") for m in media), media
    assert any("attention" in m and m.endswith(".png") for m in media), media
    assert any("object3D" in m for m in media), media

    test_cli = run_cli(["test", "--config", TINY, "--data.root", root, "--probe.root", root, "--ckpt_path", str(ckpt)])
    tested = test_cli.trainer.callback_metrics
    assert wandb.run is None
    assert {"probe/svm_acc", "probe/knn_acc", "test/loss"} <= set(tested)
    # the probe of the restored teacher equals the probe at the end of fit
    assert float(tested["probe/svm_acc"]) == pytest.approx(float(metrics["probe/svm_acc"]))


def _wandb_records(run_dir: Path, keys: tuple[bytes, ...], timeout: float = 60.0) -> bytes:
    """The run's ``.wandb`` records once they hold ``keys`` (or whatever is there at the timeout).

    wandb's service process writes the file; under a loaded machine (the suite runs with
    ``-n 2``) ``wandb.finish()`` can return before its last records reach the disk.
    """
    deadline = time.monotonic() + timeout
    while True:
        records = next(run_dir.glob("*.wandb")).read_bytes()
        if all(k in records for k in keys) or time.monotonic() > deadline:
            return records
        time.sleep(0.5)


def run_console(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run the installed ``pointdwc`` script (or the module) in a fresh process."""
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(Path(__file__).parents[1])}
    exe = Path(sys.executable).parent / "pointdwc"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "lightning_modules.commands.entry"]
    proc = subprocess.run(cmd + args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_console_script_test_prints_probe_results_table(tiny_modelnet, tmp_path) -> None:
    args = ["test", "--config", TINY, "--data.root", str(tiny_modelnet), "--probe.root", str(tiny_modelnet),
            "--trainer.logger", "false"]
    proc = run_console(args, tmp_path)
    printed = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if line.startswith(("probe/", "test/")))
    # rounded as fit prints them: accuracies with 2 decimals, C with 3 significant digits, losses with 4
    for name in ("probe/svm_acc", "probe/svm_macc", "probe/knn_acc", "probe/knn_macc"):
        assert re.fullmatch(r"\d{1,3}\.\d\d", printed[name]), (name, printed[name])
    assert len(printed["test/loss"].replace(".", "").lstrip("0")) <= 4 and float(printed["test/loss"]) > 0
    assert float(printed["probe/svm_c"]) > 0 and len(printed["probe/svm_c"].replace(".", "").lstrip("0")) <= 3
    assert "Test metric" not in proc.stdout  # not Lightning's table of unrounded floats
    assert "litlogger" not in proc.stdout + proc.stderr


def test_fit_runs_under_ddp_with_two_cpu_processes(tiny_modelnet, tmp_path) -> None:
    args = ["fit", "--config", TINY, "--data.root", str(tiny_modelnet), "--probe.root", str(tiny_modelnet),
            "--trainer.logger", "false", "--trainer.strategy", "ddp", "--trainer.devices", "2",
            "--trainer.accelerator", "cpu"]
    proc = run_console(args, tmp_path)
    # fitted and printed once (rank 0), checkpoint written
    assert proc.stdout.count("probe/svm_acc") == 1, proc.stdout[-2000:]
    (run,) = (tmp_path / "runs").iterdir()  # both processes wrote into one run folder
    assert (run / "checkpoints" / "last.ckpt").is_file()


def test_unknown_option_is_a_clear_cli_error(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        run_cli(["fit", "--config", TINY, "--probe.no_such_option", "3"])
    assert exc.value.code != 0
    assert "no_such_option" in capsys.readouterr().err


def test_help_lists_every_subcommand(monkeypatch, capsys) -> None:
    from lightning_modules.commands import entry

    for argv in (["pointdwc"], ["pointdwc", "--help"]):
        monkeypatch.setattr(sys, "argv", argv)
        with pytest.raises(SystemExit) as exc:
            entry.console_script()
        assert exc.value.code == 0
        listed = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]
        assert listed == ["fit", "validate", "test", "data", "embed", "export", "attention", "finetune",
                          "fewshot", "partseg"]
    for command in ("data", "embed", "export", "attention", "finetune", "fewshot", "partseg"):  # each answers its own --help
        monkeypatch.setattr(sys, "argv", ["pointdwc", command, "--help"])
        with pytest.raises(SystemExit) as exc:
            entry.console_script()
        assert exc.value.code == 0 and f"pointdwc {command}" in capsys.readouterr().out
