"""Where an exported encoder is read from: a folder or a Hugging Face Hub id (offline, from the library's cache
layout) for `load_pretrained` and every command's pretrained source; bad folders, unexportable backbones, a missing
extra and the Hub upload, each checked to be one line."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import h5py
import huggingface_hub
import huggingface_hub.constants
import numpy as np
import pytest
import torch
import yaml

from backbones import PointBackbone, PointViT, load_pretrained
from backbones.base import BackboneOutput
from backbones.pretrained import PretrainedError
from lightning_modules.checkpoint_encoder import (
    build_from_source,
    init_backbone_from,
    load_checkpoint_encoder,
    read_source,
)
from lightning_modules.commands.embed import main as embed_main
from lightning_modules.commands.export import main as export_main
from lightning_modules.commands.export_graph import export_onnx, export_program
from tests.helpers import teacher_of

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def folder(tiny_checkpoint, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("exported") / "tiny-dwc"
    assert export_main(["--ckpt_path", str(tiny_checkpoint), "--out", str(out)]) == 0
    return out


def _hub_cache(cache: Path, repo_id: str, files: Path) -> None:
    """``files``' contents as huggingface_hub caches a downloaded snapshot: blobs by hash, refs/main, symlinks."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    for file in files.iterdir():
        blob = repo / "blobs" / hashlib.sha256(file.read_bytes()).hexdigest()
        blob.write_bytes(file.read_bytes())
        (snapshot / file.name).symlink_to(Path("../../blobs") / blob.name)


@pytest.fixture()
def offline_hub(folder, tmp_path, monkeypatch) -> str:
    """HF_HUB_CACHE holding ``someone/tiny-dwc`` and HF_HUB_OFFLINE=1; the id."""
    cache = tmp_path / "hf-cache"
    _hub_cache(cache, "someone/tiny-dwc", folder)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads both variables once, at import (already done): give it what it would have read
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return "someone/tiny-dwc"


def _one_line(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text and text, text
    return text


def test_a_hub_id_is_read_offline_from_the_cache(tiny_checkpoint, folder, offline_hub) -> None:
    points = torch.randn(3, 256, 3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = teacher_of(tiny_checkpoint)(points).global_feature
        assert torch.equal(load_pretrained(offline_hub)(points).global_feature, expected)
        assert torch.equal(load_pretrained(folder)(points).global_feature, expected)
    source = read_source(offline_hub)  # finetune, partseg, fewshot
    assert source.origin.kind == "exported" and source.origin.path == offline_hub
    assert source.origin.sha256 == hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    encoder = load_checkpoint_encoder(offline_hub)  # embed, attention
    assert encoder.class_path == "backbones.point_vit.PointViT" and encoder.global_step == 2
    with pytest.raises(PretrainedError) as err:
        load_pretrained("someone/absent")  # not cached: no request is made
    assert "someone/absent: no such file or folder" in _one_line(err.value) and "HF_HUB_OFFLINE" in str(err.value)


def test_every_command_takes_a_folder(tiny_checkpoint, tiny_modelnet, folder, tmp_path) -> None:
    fresh = PointViT(**load_pretrained(folder).init_args())
    origin = init_backbone_from(fresh, str(folder))
    assert origin.kind == "exported" and "exported backbone" in origin.describe()
    for key, value in teacher_of(tiny_checkpoint).state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key
    common = [str(tiny_modelnet), "--num_points", "256", "--quiet"]
    assert embed_main(["--ckpt_path", str(tiny_checkpoint), "--out", str(tmp_path / "a.h5"), *common]) == 0
    assert embed_main(["--ckpt_path", str(folder), "--out", str(tmp_path / "b.h5"), *common]) == 0
    with h5py.File(tmp_path / "a.h5") as a, h5py.File(tmp_path / "b.h5") as b:
        np.testing.assert_array_equal(a["features"][...], b["features"][...])
        assert b.attrs["checkpoint"] == str(folder) and b.attrs["global_step"] == 2
    with pytest.raises(PretrainedError, match="holds the teacher's backbone, not the student's"):
        read_source(folder, "student")
    # export itself reads any source: a folder converted to a .pt file is the same backbone
    assert export_main(["--ckpt_path", str(folder), "--out", str(tmp_path / "again.pt")]) == 0
    points = torch.randn(2, 256, 3)
    with torch.no_grad():
        assert torch.equal(load_pretrained(tmp_path / "again.pt")(points).global_feature,
                           load_pretrained(folder)(points).global_feature)


def test_the_card_reports_the_recorded_data_recipe_and_points(tiny_checkpoint, tmp_path) -> None:
    state = torch.load(tiny_checkpoint, weights_only=True)
    state["pointdwc_config"] = yaml.safe_dump({
        "trainer": {"max_epochs": 7},
        "model": {"backbone": state["hyper_parameters"]["backbone"], "optim": {"lr": 0.004}},
        "data": {"dataset": {"class_path": "datamodules.ShapeNet55", "init_args": {"root": "/data/sn55"}},
                 "num_points": 1024, "batch_size": 32},
        "probe": {"num_points": 256},
    })
    torch.save(state, tmp_path / "recorded.ckpt")
    assert export_main(["--ckpt_path", str(tmp_path / "recorded.ckpt"), "--out", str(tmp_path / "enc")]) == 0
    card = (tmp_path / "enc" / "README.md").read_text()
    assert "`datamodules.ShapeNet55` at `/data/sn55`, 1024 points per cloud, batch 32" in card
    assert "- `optim`: `{lr: 0.004}`" in card and "- `trainer.max_epochs`: 7" in card
    assert "(batch, 256, 3)" in card  # the probe's points per cloud, the ones the figures were measured on
    assert json.loads((tmp_path / "enc" / "config.json").read_text())["num_points"] == 256


def _break(folder: Path, tmp_path: Path, change) -> Path:
    broken = tmp_path / "broken"
    broken.mkdir()
    for file in folder.iterdir():
        (broken / file.name).write_bytes(file.read_bytes())
    change(broken)
    return broken


def _drop_a_tensor(broken: Path) -> None:
    from safetensors.torch import load_file, save_file

    weights = load_file(broken / "model.safetensors")
    weights.pop("cls_token")
    save_file(weights, broken / "model.safetensors")


def _rename_class(broken: Path) -> None:
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "class_path": "backbones.NoSuchNet"}))


@pytest.mark.parametrize("change, file, message", [
    (lambda b: (b / "config.json").unlink(), "", "no config.json: not a folder of `pointdwc export`"),
    (_rename_class, "config.json", "class_path 'backbones.NoSuchNet' is not an importable torch.nn.Module class"),
    (_drop_a_tensor, "model.safetensors", "the weights do not fit PointViT: 1 missing (e.g. ['cls_token'])"),
    (lambda b: (b / "model.safetensors").write_bytes(b"junk"), "model.safetensors", "not a readable safetensors file"),
])
def test_a_bad_folder_is_one_line(folder, tmp_path, change, file, message) -> None:
    broken = _break(folder, tmp_path, change)
    with pytest.raises(PretrainedError) as err:
        load_pretrained(broken)
    assert f"{broken / file if file else broken}: {message}" in _one_line(err.value)
    with pytest.raises(PretrainedError) as err:
        build_from_source(broken)  # every command's path (fewshot builds, finetune / partseg load into their own)
    assert str(broken) in _one_line(err.value) and message in str(err.value)


class RunningMax(PointBackbone):
    """A backbone with a running maximum over the points (``cummax``: no ONNX operator)."""

    out_dim = 3

    def forward(self, points, return_attention=False):
        return BackboneOutput(global_feature=torch.cummax(points, dim=1).values.mean(dim=1))


class ShapeDependent(PointBackbone):
    """A backbone whose control flow depends on the data (torch.export cannot trace it)."""

    out_dim = 3

    def forward(self, points, return_attention=False):
        feature = points.mean(dim=1)
        return BackboneOutput(global_feature=feature * 2 if bool(points.abs().max() > 1) else feature)


def test_a_backbone_that_cannot_be_exported_is_one_line(tmp_path) -> None:
    with pytest.raises(PretrainedError) as err:
        export_onnx(RunningMax(), tmp_path / "r.onnx", 64, {})
    assert "r.onnx: RunningMax cannot be exported to ONNX (opset 17)" in _one_line(err.value)
    assert "cummax" in str(err.value) and not (tmp_path / "r.onnx").exists()
    with pytest.raises(PretrainedError) as err:
        export_program(ShapeDependent(), tmp_path / "s.pt2", 64, {})
    assert "s.pt2: ShapeDependent cannot be exported to torch.export" in _one_line(err.value)
    assert list(tmp_path.iterdir()) == []  # no temporary file left either


def test_bad_invocations_are_one_line(tiny_checkpoint, folder, tmp_path, monkeypatch, capsys) -> None:
    ckpt = str(tiny_checkpoint)
    assert export_main(["--ckpt_path", ckpt, "--out", str(tmp_path / "e.h5")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--out={tmp_path / 'e.h5'}: unknown suffix '.h5': use .pt, .onnx, .pt2" in err
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    assert export_main(["--ckpt_path", ckpt, "--out", str(tmp_path / "e.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs onnxruntime, which is not installed: pip install 'pointdwc[deploy]'" in err
    assert not (tmp_path / "e.onnx").exists()
    assert export_main(["--ckpt_path", ckpt, "--out", str(tmp_path / "e.pt"), "--push-to-hub", "me/enc"]) == 1
    assert "--push-to-hub=me/enc: needs a folder --out" in capsys.readouterr().err
    with pytest.raises(PretrainedError, match="an exported graph, not a backbone to rebuild; run it with onnxruntime"):
        (tmp_path / "g.onnx").write_bytes(b"")
        load_pretrained(tmp_path / "g.onnx")


def test_push_to_hub_uploads_the_folder(tiny_checkpoint, tmp_path, monkeypatch, capsys) -> None:
    calls = []

    class FakeApi:
        def create_repo(self, repo_id, **kwargs):
            calls.append(("create_repo", repo_id, kwargs))

        def upload_folder(self, **kwargs):
            calls.append(("upload_folder", kwargs["repo_id"], kwargs))
            return type("Commit", (), {"commit_url": f"https://hub.test/{kwargs['repo_id']}/commit/1"})()

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    out = tmp_path / "enc"
    assert export_main(["--ckpt_path", str(tiny_checkpoint), "--out", str(out), "--push-to-hub", "me/enc"]) == 0
    assert [c[:2] for c in calls] == [("create_repo", "me/enc"), ("upload_folder", "me/enc")]
    assert calls[1][2]["folder_path"] == str(out) and (out / "model.safetensors").is_file()
    assert f"uploaded {out} to https://hub.test/me/enc/commit/1" in capsys.readouterr().out
