"""Bad input to every command: one line naming the file or field, a non-zero status, no traceback, nothing written.

Each case runs ``pointdwc ARGV`` (:func:`lightning_modules.commands.entry.main`) in a temporary working
directory and compares every file under it (path, size, mtime) before and after, so a leftover run
folder or a replaced output fails the case. Every case fails before training starts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_modules.commands.entry import main

TESTS = Path(__file__).parent
TINY = str(TESTS / "tiny.yaml")
TINY_FINETUNE = str(TESTS / "tiny_finetune.yaml")
TINY_PARTSEG = str(TESTS / "tiny_partseg.yaml")


@dataclass(frozen=True)
class Inputs:
    """The files a case may name (all under the working directory, except the shared checkpoint)."""

    ckpt: str
    data: str
    missing: str
    text: str
    junk: str
    foreign: str
    nowhere: str
    wrong_layout: str
    existing_pt: str
    existing_h5: str
    existing_dir: str
    bad_backbone: str


def _inputs(tmp: Path, ckpt: Path, data: Path) -> Inputs:
    """Write the bad files of the matrix into ``tmp``."""
    (tmp / "notes.txt").write_text("this is not a checkpoint\n")
    (tmp / "junk.ckpt").write_bytes(np.random.default_rng(0).bytes(4096))
    torch.save({"weights": torch.zeros(3)}, tmp / "foreign.pt")
    (tmp / "wrong").mkdir()
    (tmp / "wrong" / "readme.md").write_text("no point clouds here\n")
    (tmp / "existing.pt").write_bytes(b"keep me")
    (tmp / "existing.h5").write_bytes(b"keep me too")
    (tmp / "pictures").mkdir()
    (tmp / "pictures" / "earlier.png").write_bytes(b"an earlier picture")
    (tmp / "bad_backbone.yaml").write_text("model:\n  backbone:\n    class_path: backbones.NoSuchBackbone\n")
    return Inputs(
        ckpt=str(ckpt), data=str(data), missing=str(tmp / "missing.ckpt"), text=str(tmp / "notes.txt"),
        junk=str(tmp / "junk.ckpt"), foreign=str(tmp / "foreign.pt"), nowhere=str(tmp / "nowhere"),
        wrong_layout=str(tmp / "wrong"), existing_pt=str(tmp / "existing.pt"), existing_h5=str(tmp / "existing.h5"),
        existing_dir=str(tmp / "pictures"), bad_backbone=str(tmp / "bad_backbone.yaml"),
    )


def _fit(i: Inputs, *args: str) -> list[str]:
    return ["--config", TINY, "--data.root", i.data, "--trainer.fast_dev_run", "true", *args]


def _finetune(i: Inputs, *args: str) -> list[str]:
    return ["--config", TINY_FINETUNE, "--data.root", i.data, "--trainer.fast_dev_run", "true", *args]


def _partseg(*args: str) -> list[str]:
    return ["--config", TINY_PARTSEG, "--trainer.fast_dev_run", "true", *args]


def _fewshot(i: Inputs, *args: str) -> list[str]:
    return ["fewshot", "--data.root", i.data, "--way", "3", "--shot", "2", "--query", "2", "--folds", "1",
            "--num_points", "256", *args]


Case = tuple[Callable[[Inputs], list[str]], list[str]]
"""The argv of a case, and the words its one error line must hold ("{name}" filled from :class:`Inputs`)."""

CASES: dict[str, Case] = {
    "fit-missing-ckpt": (lambda i: ["fit", *_fit(i, "--ckpt_path", i.missing)],
                         ["--ckpt_path={missing}", "checkpoint not found"]),
    "fit-random-bytes-ckpt": (lambda i: ["fit", *_fit(i, "--ckpt_path", i.junk)],
                              ["{junk}", "not a readable PyTorch checkpoint"]),
    "test-missing-ckpt": (lambda i: ["test", *_fit(i, "--ckpt_path", i.missing)],
                          ["--ckpt_path={missing}", "checkpoint not found"]),
    "test-text-ckpt": (lambda i: ["test", *_fit(i, "--ckpt_path", i.text)],
                       ["{text}", "not a readable PyTorch checkpoint"]),
    "test-foreign-torch-file": (lambda i: ["test", *_fit(i, "--ckpt_path", i.foreign)],
                                ["--ckpt_path={foreign}", "'state_dict' is missing"]),
    "validate-missing-ckpt": (lambda i: ["validate",
                                         *_fit(i, "--data.val_fraction", "0.25", "--ckpt_path", i.missing)],
                              ["--ckpt_path={missing}", "checkpoint not found"]),
    "validate-without-held-out-shapes": (lambda i: ["validate", *_fit(i, "--ckpt_path", i.junk)],
                                         ["data.val_fraction"]),
    "predict-is-not-a-command": (lambda i: ["predict", *_fit(i, "--ckpt_path", i.junk)],
                                 ["pointdwc predict is not a command", "pointdwc embed"]),
    "fit-missing-data-root": (lambda i: ["fit", "--config", TINY, "--data.root", i.nowhere],
                              ["{nowhere}"]),
    "fit-wrong-data-layout": (lambda i: ["fit", "--config", TINY, "--data.root", i.wrong_layout],
                              ["{wrong_layout}", "no known data set layout"]),
    "fit-negative-batch-size": (lambda i: ["fit", *_fit(i, "--data.batch_size", "-4")],
                                ["data.batch_size must be at least 1, got -4"]),
    "fit-wandb-online-without-key": (
        lambda i: ["fit", *_fit(i, "--trainer.logger.init_args.offline", "false")],
        ["trainer.logger.init_args.offline=false", "run `wandb login`, set WANDB_API_KEY, or log offline"]),
    "fit-unknown-backbone": (lambda i: ["fit", "--config", TINY, "--config", i.bad_backbone, "--data.root", i.data],
                             ["backbones.NoSuchBackbone"]),
    "fit-missing-config-file": (lambda i: ["fit", "--config", i.missing + ".yaml"], ["{missing}.yaml"]),
    "finetune-zero-batch-size": (lambda i: ["finetune", "fit", *_finetune(i, "--data.batch_size", "0")],
                                 ["data.batch_size must be at least 1, got 0"]),
    "embed-missing-ckpt": (lambda i: ["embed", i.data, "--ckpt_path", i.missing, "--out", "f.h5", "--quiet"],
                           ["{missing}", "checkpoint not found"]),
    "embed-text-ckpt": (lambda i: ["embed", i.data, "--ckpt_path", i.text, "--out", "f.h5", "--quiet"],
                        ["{text}", "not a readable PyTorch checkpoint"]),
    "embed-existing-out": (lambda i: ["embed", i.data, "--ckpt_path", i.ckpt, "--out", i.existing_h5, "--quiet"],
                           ["--out={existing_h5}", "already exists", "--overwrite"]),
    "embed-missing-data-root": (lambda i: ["embed", i.nowhere, "--ckpt_path", i.ckpt, "--out", "f.h5"],
                                ["{nowhere}", "folder does not exist"]),
    "embed-zero-batch-size": (lambda i: ["embed", i.data, "--ckpt_path", i.ckpt, "--out", "f.h5", "--batch_size", "0"],
                              ["--batch_size must be at least 1, got 0"]),
    "export-random-bytes-ckpt": (lambda i: ["export", "--ckpt_path", i.junk, "--out", "e.pt"],
                                 ["{junk}", "not a readable PyTorch checkpoint"]),
    "export-foreign-torch-file": (lambda i: ["export", "--ckpt_path", i.foreign, "--out", "e.pt"],
                                  ["{foreign}", "'state_dict' is missing"]),
    "export-existing-out": (lambda i: ["export", "--ckpt_path", i.ckpt, "--out", i.existing_pt],
                            ["--out={existing_pt}", "already exists", "--overwrite"]),
    "attention-missing-ckpt": (lambda i: ["attention", i.data, "--ckpt_path", i.missing, "--out", "pics"],
                               ["{missing}", "checkpoint not found"]),
    "attention-existing-out": (lambda i: ["attention", i.data, "--ckpt_path", i.ckpt, "--out", i.existing_dir],
                               ["--out={existing_dir}", "already exists", "--overwrite"]),
    "attention-zero-points": (lambda i: ["attention", i.data, "--ckpt_path", i.ckpt, "--out", "pics",
                                         "--num_points", "0"], ["--num_points must be at least 1, got 0"]),
    "finetune-missing-pretrained": (lambda i: ["finetune", "fit", *_finetune(i, "--ckpt", i.missing)],
                                    ["{missing}", "pretrained file not found"]),
    "finetune-foreign-pretrained": (lambda i: ["finetune", "fit", *_finetune(i, "--ckpt", i.foreign)],
                                    ["{foreign}", "neither a pointdwc pretraining checkpoint"]),
    "finetune-mismatched-architecture": (
        lambda i: ["finetune", "fit", *_finetune(i, "--ckpt", i.ckpt, "--model.backbone.init_args.embed_dim", "48")],
        ["{ckpt}", "embed_dim: 32 in the file vs 48 configured"]),
    "finetune-test-pretraining-ckpt": (lambda i: ["finetune", "test", *_finetune(i, "--ckpt_path", i.ckpt)],
                                       ["--ckpt_path={ckpt}", "no backbone.* weights", "not a fine-tuning"]),
    "finetune-missing-data-root": (lambda i: ["finetune", "fit", "--config", TINY_FINETUNE, "--data.root", i.nowhere],
                                   ["{nowhere}"]),
    "partseg-mismatched-architecture": (
        lambda i: ["partseg", "fit", *_partseg("--ckpt", i.ckpt, "--model.backbone.init_args.embed_dim", "48")],
        ["{ckpt}", "embed_dim: 32 in the file vs 48 configured"]),
    "partseg-test-text-ckpt": (lambda i: ["partseg", "test", *_partseg("--ckpt_path", i.text)],
                               ["{text}", "not a readable PyTorch checkpoint"]),
    "fewshot-random-bytes-ckpt": (lambda i: _fewshot(i, "--ckpt_path", i.junk),
                                  ["{junk}", "not a readable"]),
    "fewshot-missing-ckpt": (lambda i: _fewshot(i, "--ckpt_path", i.missing), ["{missing}", "not found"]),
    "fewshot-missing-data-root": (lambda i: ["fewshot", "--data.root", i.nowhere, "--ckpt_path", i.ckpt],
                                  ["{nowhere}"]),
    "data-check-missing-root": (lambda i: ["data", "check", i.nowhere, "--quiet"], ["{nowhere}"]),
    "data-check-wrong-layout": (lambda i: ["data", "check", i.wrong_layout, "--quiet"],
                                ["{wrong_layout}", "no known data set layout"]),
    "data-check-old-flag-missing-root": (lambda i: ["data", "check", i.nowhere, "--num-points", "8", "--quiet"],
                                         ["{nowhere}"]),
    "export-old-positional-existing-out": (lambda i: ["export", i.ckpt, i.existing_pt],
                                           ["--out={existing_pt}", "already exists", "--overwrite"]),
}


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` (relative path) with its size and mtime in ns."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run_pointdwc(argv: list[str]) -> int:
    """``pointdwc ARGV``'s exit status (a usage error's SystemExit counted like a return)."""
    try:
        return main(argv)
    except SystemExit as exit:
        return exit.code if isinstance(exit.code, int) else 1


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_line_and_writes_nothing(
    name: str, tiny_checkpoint: Path, tiny_modelnet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Non-zero status, one error line with the case's words, no traceback, every file under the cwd as it was."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("NETRC", raising=False)
    if name == "fit-wandb-online-without-key":
        monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.chdir(tmp_path)
    inputs = _inputs(tmp_path, tiny_checkpoint, tiny_modelnet)
    build, words = CASES[name]
    before = snapshot(tmp_path)
    kept = {p: Path(p).read_bytes() for p in (inputs.existing_pt, inputs.existing_h5)}
    capsys.readouterr()

    status = run_pointdwc(build(inputs))

    err = capsys.readouterr().err
    assert status != 0, err
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0] == err.strip().splitlines()[-1], err  # one line, the last
    for word in words:
        assert word.format(**vars(inputs)) in errors[0], err
    assert snapshot(tmp_path) == before
    assert {p: Path(p).read_bytes() for p in kept} == kept
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------------- --overwrite, old spellings, the checks alone
def test_overwrite_replaces_an_existing_output(
    tiny_checkpoint: Path, tiny_modelnet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With --overwrite, export, embed and attention replace what was there (and leave no temporary file)."""
    monkeypatch.chdir(tmp_path)
    exported, features, pictures = tmp_path / "e.pt", tmp_path / "f.h5", tmp_path / "pics"
    exported.write_bytes(b"old")
    features.write_bytes(b"old")
    pictures.mkdir()
    (pictures / "earlier.png").write_bytes(b"old")
    assert main(["export", "--ckpt_path", str(tiny_checkpoint), "--out", str(exported), "--overwrite"]) == 0
    assert torch.load(exported, weights_only=True)["format"] == "pointdwc-backbone"
    assert main(["embed", str(tiny_modelnet), "--ckpt_path", str(tiny_checkpoint), "--out", str(features),
                 "--num_points", "256", "--splits", "test", "--quiet", "--overwrite"]) == 0
    assert features.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"
    assert main(["attention", str(tiny_modelnet), "--ckpt_path", str(tiny_checkpoint), "--out", str(pictures),
                 "--num_points", "256", "--index", "0", "--views", "1", "--image_size", "32", "--overwrite"]) == 0
    assert len(list(pictures.glob("*.png"))) == 2
    assert not [p for p in tmp_path.rglob(".*tmp-*")]


def test_old_spellings_work_with_one_notice(
    tiny_checkpoint: Path, tiny_modelnet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--num-points (data), --ckpt (fewshot) and export's positional CKPT OUT still work, with one line on stderr."""
    monkeypatch.chdir(tmp_path)
    assert main(["data", "check", str(tiny_modelnet), "--num-points", "512", "--quiet"]) == 0
    assert "pointdwc data: --num-points is deprecated, use --num_points" in capsys.readouterr().err
    assert main(["export", str(tiny_checkpoint), str(tmp_path / "e.pt")]) == 0
    err = capsys.readouterr().err
    assert "pointdwc export: positional CKPT OUT is deprecated, use --ckpt_path CKPT --out OUT" in err
    assert main(["fewshot", "--ckpt", str(tmp_path / "missing.ckpt")]) == 1
    err = capsys.readouterr().err
    assert "pointdwc fewshot: --ckpt is deprecated, use --ckpt_path" in err
    assert "missing.ckpt: pretrained file not found" in err


def test_wandb_key_is_found_without_importing_wandb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An online WandbLogger passes with WANDB_API_KEY or a netrc entry, and offline / WANDB_MODE=offline always."""
    from jsonargparse import Namespace

    from datamodules.errors import DataError
    from lightning_modules.commands.inputs import check_wandb_login

    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("WANDB_API_KEY", "WANDB_MODE", "NETRC", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    online = Namespace(class_path="pytorch_lightning.loggers.WandbLogger", init_args=Namespace(offline=False))
    offline = Namespace(class_path="pytorch_lightning.loggers.WandbLogger", init_args=Namespace(offline=True))
    with pytest.raises(DataError, match="run `wandb login`, set WANDB_API_KEY, or log offline"):
        check_wandb_login(online)
    check_wandb_login([offline, False])
    monkeypatch.setenv("WANDB_MODE", "offline")
    check_wandb_login(online)
    monkeypatch.delenv("WANDB_MODE")
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password secret\n")
    check_wandb_login(online)
    (tmp_path / ".netrc").unlink()
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    check_wandb_login(online)


def test_a_run_folder_is_removed_only_when_it_holds_nothing_but_run_json(tmp_path: Path) -> None:
    """run.json (and empty folders) only: removed; anything else written: kept."""
    from lightning_modules.commands.inputs import discard_unused_run_folder

    empty, used = tmp_path / "a", tmp_path / "b"
    (empty / "checkpoints").mkdir(parents=True)
    (empty / "run.json").write_text("{}")
    (used / "checkpoints").mkdir(parents=True)
    (used / "run.json").write_text("{}")
    (used / "checkpoints" / "last.ckpt").write_bytes(b"x")
    assert discard_unused_run_folder(empty) and not empty.exists()
    assert not discard_unused_run_folder(used) and (used / "checkpoints" / "last.ckpt").is_file()


def test_a_parse_error_is_one_line() -> None:
    """jsonargparse's Union report is condensed to the key and the first real reason."""
    from lightning_modules.commands.cli import condense_parse_error

    message = ('Parser key "model.backbone":\n  Does not validate against any of the Union subtypes\n'
               "  Subtypes: [a, b]\n"
               "  Errors:\n    - Problem with given class_path 'backbones.Nope':\n        module 'backbones' has no "
               "attribute 'Nope'\n    - Expected a <class 'NoneType'>\n  Given value type: <class 'dict'>\n")
    assert condense_parse_error(message) == (
        "Parser key \"model.backbone\": Problem with given class_path 'backbones.Nope': module 'backbones' has no "
        "attribute 'Nope'"
    )
    assert condense_parse_error('Parser key "data.batch_size":\n  Expected a <class \'int\'>. Got value: x') == (
        'Parser key "data.batch_size": Expected a <class \'int\'>. Got value: x'
    )
