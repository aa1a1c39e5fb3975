"""`pointdwc export` to .pt, a folder, .onnx and .pt2: each reproduces the checkpoint's PoinT-ViT teacher,
and the folder, the ONNX metadata and the .pt2 extra files say what the encoder is and how it was judged."""

from __future__ import annotations

import json
from pathlib import Path

import onnxruntime
import pytest
import torch

from datamodules import ModelNet40H5
from lightning_modules.commands.entry import pointdwc_version
from lightning_modules.commands.export import main as export_main
from lightning_modules.evaluation.probe import LinearProbe
from tests.conftest import _write_tiny_modelnet
from tests.helpers import assert_every_format_reproduces, export_every_format, fit_seeded, teacher_of, tiny_data


@pytest.fixture(scope="module")
def probed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LinearProbe, Path]:
    """A tiny PoinT-ViT checkpoint saved by Lightning after two steps and a probe, its probe, and the data folder."""
    folder = tmp_path_factory.mktemp("probed")
    root = _write_tiny_modelnet(folder)
    probe = LinearProbe(root=str(root), every_n_epochs=1, num_points=256)
    _, trainer = fit_seeded(folder, tiny_data(root), callbacks=[probe], limit_train_batches=2)
    path = folder / "probed.ckpt"
    trainer.save_checkpoint(path)
    return path, probe, root


@pytest.fixture(scope="module")
def exported(probed, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The probed checkpoint exported once in every format, 512 points per cloud (the tiny recipe's clouds)."""
    return export_every_format(probed[0], tmp_path_factory.mktemp("exported"), num_points=512)


def test_every_format_reproduces_the_teacher_on_real_clouds(probed, exported) -> None:
    ckpt, _, root = probed
    clouds = ModelNet40H5(str(root)).load("test").points[:4, :512]  # (4, 512, 3): stored clouds, unit sphere
    measured = assert_every_format_reproduces(exported, teacher_of(ckpt), clouds)
    print(f"PointViT max relative difference: {measured}")


def test_the_folder_and_the_graphs_say_what_the_encoder_is(probed, exported, tmp_path) -> None:
    ckpt, probe, _ = probed
    teacher = teacher_of(ckpt)
    assert sorted(p.name for p in exported[""].iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((exported[""] / "config.json").read_text())
    assert config["class_path"] == "backbones.point_vit.PointViT" and config["format"] == "pointdwc-backbone"
    assert config["init_args"] == teacher.init_args() and config["out_dim"] == 64 == teacher.out_dim
    assert config["num_points"] == 512 and "radius 1" in config["normalisation"]
    assert config["pointdwc_version"] == pointdwc_version() and config["network"] == "teacher"
    assert config["global_step"] == 2 and config["probes"][0]["metrics"] == probe.last.metrics()
    assert config["probes"][0]["num_points"] == 256 and config["probes"][0]["protocol"] == probe.protocol()
    card = (exported[""] / "README.md").read_text()
    assert f"| svm_acc | {probe.last.svm_acc:.2f} % | 2 |" in card
    assert f"| knn_acc | {probe.last.knn_acc:.2f} % | 2 |" in card
    assert probe.protocol() in card  # the figures with the protocol that produced them
    assert "(batch, 512, 3)" in card and "farthest point sampling" in card and "inside the graph" in card

    session = onnxruntime.InferenceSession(str(exported[".onnx"]), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta()
    assert meta.custom_metadata_map["num_points"] == "512" and meta.description == card
    assert json.loads(meta.custom_metadata_map["init_args"]) == teacher.init_args()
    extra = {"config.json": "", "README.md": ""}
    torch.export.load(exported[".pt2"], extra_files=extra)
    assert json.loads(extra["config.json"]) == {k: v for k, v in config.items() if k not in ("format", "version")}
    assert extra["README.md"] == card

    # without --num_points: the points per cloud of the probe stored in the checkpoint
    assert export_main(["--ckpt_path", str(ckpt), "--out", str(tmp_path / "enc")]) == 0
    assert json.loads((tmp_path / "enc" / "config.json").read_text())["num_points"] == 256 == probe.num_points
    assert "(batch, 256, 3)" in (tmp_path / "enc" / "README.md").read_text()
    # a folder exported again (to another format, or re-carded) keeps the probe figures it holds
    assert export_main(["--ckpt_path", str(exported[""]), "--out", str(tmp_path / "again")]) == 0
    assert f"| svm_acc | {probe.last.svm_acc:.2f} % | 2 |" in (tmp_path / "again" / "README.md").read_text()


def test_an_existing_output_is_kept_unless_overwrite(probed, tmp_path, capsys) -> None:
    ckpt, _, _ = probed
    for name in ("enc", "e.onnx"):
        out = tmp_path / name
        (out.mkdir() if not out.suffix else out.write_text("mine"))
        assert export_main(["--ckpt_path", str(ckpt), "--out", str(out)]) == 1
        assert f"--out={out}: already exists" in capsys.readouterr().err
    assert list((tmp_path / "enc").iterdir()) == [] and (tmp_path / "e.onnx").read_text() == "mine"
    assert export_main(["--ckpt_path", str(ckpt), "--out", str(tmp_path / "enc"), "--overwrite"]) == 0
    assert (tmp_path / "enc" / "model.safetensors").is_file()
