"""The paper-protocol config (ViT-S on ShapeNet55, probes on ModelNet40 and ScanObjectNN) runs on fixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from configs import CONFIG_DIR
from lightning_modules.commands.cli import run_cli
from tests.layouts import blob_clouds, write_modelnet_h5, write_scanobjectnn, write_shapenet55


def test_paper_protocol_fast_dev_run(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)  # the config's roots are Point-BERT's relative data/ folder
    monkeypatch.setenv("POINTDWC_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    write_shapenet55(Path("data/ShapeNet55-34"), {"train": 8, "test": 2}, rng)
    names = [f"class{i}" for i in range(40)]
    write_modelnet_h5(
        Path("data/modelnet40_ply_hdf5_2048"),
        names,
        {"train": blob_clouds(12, 2048, 4, rng), "test": blob_clouds(8, 2048, 4, rng)},
    )
    write_scanobjectnn(Path("data/ScanObjectNN/h5_files"), {"train": 12, "test": 8}, rng)
    cli = run_cli(
        ["fit", "--config", str(CONFIG_DIR / "vit_small.yaml"), "--config", str(CONFIG_DIR / "paper" / "shapenet55.yaml"),
         "--trainer.fast_dev_run", "1", "--trainer.accelerator", "cpu", "--trainer.precision", "32-true",
         "--data.batch_size", "4", "--data.num_workers", "0"]
    )  # fmt: skip
    assert (
        cli.model.student.backbone.embed_dim == 384 and len(cli.model.student.backbone.blocks) == 12
    )  # ViT-S as configured
    assert type(cli.datamodule.dataset).__name__ == "ShapeNet55"
    assert cli.trainer.global_step == 1
    out = capsys.readouterr().out
    assert "probe/modelnet40/svm_acc" in out and "probe/scanobjectnn/svm_acc" in out
    # every printed figure says which protocol produced it: here the field's fixed C
    assert "protocol probe/modelnet40/*: frozen teacher, 1024 points, ModelNet40H5" in out
    assert "fixed C=0.012 (no validation)" in out
