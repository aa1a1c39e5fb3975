"""`pointdwc export` and `backbones.load_pretrained`: the checkpoint's encoder as a plain PyTorch module."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from backbones import load_pretrained
from backbones.pretrained import PretrainedError
from lightning_modules.commands.export import main as export_main
from tests.helpers import tiny_module

TINY = str(Path(__file__).parent / "tiny.yaml")


def _networks(ckpt: Path):
    """The checkpoint's DistillationWithContrast (teacher and student), loaded the plain way."""
    module = tiny_module()
    module.load_state_dict(torch.load(ckpt, weights_only=True)["state_dict"])
    return module.eval()


def test_exported_backbone_reproduces_the_checkpoint_features_exactly(tiny_checkpoint, tmp_path, capsys) -> None:
    out = tmp_path / "encoder.pt"
    assert export_main([str(tiny_checkpoint), str(out)]) == 0
    assert "load_pretrained" in capsys.readouterr().out
    payload = torch.load(out, weights_only=True)  # plain types and tensors only
    assert payload["class_path"].endswith("PointViT") and payload["network"] == "teacher"
    assert payload["init_args"]["embed_dim"] == 32 and payload["out_dim"] == 64
    encoder = load_pretrained(out)
    assert not encoder.training
    module = _networks(tiny_checkpoint)
    points = torch.randn(3, 256, 3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(encoder(points).global_feature, module.teacher.backbone(points).global_feature)
        assert export_main([str(tiny_checkpoint), str(tmp_path / "student.pt"), "--network", "student"]) == 0
        student = load_pretrained(tmp_path / "student.pt")
        assert torch.equal(student(points).global_feature, module.student.backbone(points).global_feature)
        assert not torch.equal(student(points).global_feature, encoder(points).global_feature)


def _without_recorded_backbone(ckpt: Path, out: Path) -> Path:
    """The checkpoint as one made before the backbone's init args were recorded."""
    state = torch.load(ckpt, weights_only=True)
    state["hyper_parameters"]["backbone"] = state["hyper_parameters"]["backbone"]["class_path"]  # as it used to be
    state.pop("pointdwc_config", None)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, out)
    return out


def test_a_checkpoint_without_its_backbone_needs_the_config(tiny_checkpoint, tmp_path, capsys) -> None:
    old = _without_recorded_backbone(tiny_checkpoint, tmp_path / "old.ckpt")
    assert export_main([str(old), str(tmp_path / "a.pt")]) == 1
    err = capsys.readouterr().err
    assert str(old) in err and "backbone.init_args" in err and "--config" in err
    assert not (tmp_path / "a.pt").exists()
    # the config it was trained with (tiny.yaml over configs/default.yaml, as fit merges them)
    assert export_main([str(old), str(tmp_path / "a.pt"), "--config", TINY]) == 0
    # or the config.yaml of its run folder
    run = tmp_path / "runs" / "old-run"
    beside = _without_recorded_backbone(tiny_checkpoint, run / "checkpoints" / "last.ckpt")
    shutil.copy(TINY, run / "config.yaml")
    assert export_main([str(beside), str(tmp_path / "b.pt")]) == 0
    points = torch.randn(2, 128, 3)
    with torch.no_grad():
        a, b = (load_pretrained(tmp_path / n)(points).global_feature for n in ("a.pt", "b.pt"))
    assert torch.equal(a, b)
    # a config of another architecture is refused naming the checkpoint
    wide = tmp_path / "wide.yaml"
    wide.write_text("model:\n  backbone:\n    class_path: backbones.PointViT\n    init_args: {embed_dim: 48}\n")
    assert export_main([str(old), str(tmp_path / "c.pt"), "--config", TINY, "--config", str(wide)]) == 1
    assert "do not fit" in capsys.readouterr().err


def test_bad_files_are_one_clear_error(tiny_checkpoint, tmp_path, capsys) -> None:
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    assert export_main([str(junk), str(tmp_path / "x.pt")]) == 1
    assert f"{junk}: not a readable PyTorch checkpoint" in capsys.readouterr().err
    with pytest.raises(PretrainedError, match="pointdwc export CKPT OUT.pt"):
        load_pretrained(tiny_checkpoint)  # a training checkpoint, not an exported backbone
    with pytest.raises(PretrainedError, match="no such file"):
        load_pretrained(tmp_path / "missing.pt")
    assert export_main([str(tiny_checkpoint), str(tiny_checkpoint)]) == 1  # never overwrites the checkpoint
    assert "overwrite the checkpoint" in capsys.readouterr().err
