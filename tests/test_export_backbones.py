"""`pointdwc export` of PointNet and DGCNN checkpoints: every format reproduces the teacher, BatchNorm statistics
and DGCNN's dynamic kNN graph included, on 1024-point clouds; the card says what the graph holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from datamodules import ModelNet40H5
from tests.conftest import _write_tiny_modelnet
from tests.helpers import (
    assert_every_format_reproduces,
    export_every_format,
    fit_seeded,
    teacher_of,
    tiny_data,
    tiny_dgcnn,
    tiny_module,
    tiny_pointnet,
)

BACKBONES = {"PointNet": lambda: tiny_module(tiny_pointnet()), "DGCNN": lambda: tiny_module(tiny_dgcnn())}


@pytest.fixture(scope="module")
def modelnet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_tiny_modelnet(tmp_path_factory.mktemp("modelnet"))


@pytest.mark.parametrize("name", list(BACKBONES))
def test_every_format_reproduces_the_teacher(name, modelnet, tmp_path) -> None:
    make = BACKBONES[name]
    _, trainer = fit_seeded(tmp_path, tiny_data(modelnet), make_model=make, limit_train_batches=2)
    ckpt = tmp_path / f"{name}.ckpt"
    trainer.save_checkpoint(ckpt)
    teacher = teacher_of(ckpt, make)
    assert any(float(b.abs().sum()) > 0 for k, b in teacher.state_dict().items() if k.endswith("running_mean"))
    paths = export_every_format(ckpt, tmp_path / "out", num_points=1024)
    clouds = ModelNet40H5(str(modelnet)).load("test").points[:4]  # (4, 1024, 3)
    measured = assert_every_format_reproduces(paths, teacher, clouds)
    print(f"{name} max relative difference: {measured}")
    card = (paths[""] / "README.md").read_text()
    expected = "dynamic kNN graph" if name == "DGCNN" else "no grouping"
    assert expected in card and "No probe figures are stored in the checkpoint" in card
