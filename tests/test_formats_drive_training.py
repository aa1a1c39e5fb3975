"""Every data set layout drives pretraining (labels ignored) and the linear probe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from datamodules import (
    MeshFolder,
    ModelNet40H5,
    ModelNetResampled,
    PointCloudSet,
    ScanObjectNN,
    ShapeNet55,
    ShapeNetPart,
)
from lightning_modules.evaluation.probe import LinearProbe
from tests.helpers import probe_reference, tiny_data, tiny_module, tiny_trainer
from tests.layouts import (
    blob_clouds,
    write_mesh_folder,
    write_modelnet_h5,
    write_modelnet_resampled,
    write_scanobjectnn,
    write_shapenet55,
    write_shapenet_part,
)


def build(fmt: str, root: Path) -> PointCloudSet:
    rng = np.random.default_rng(0)
    if fmt == "modelnet40_h5":
        write_modelnet_h5(
            root, ["a", "b", "c"], {"train": blob_clouds(12, 512, 3, rng), "test": blob_clouds(6, 512, 3, rng)}
        )
        return ModelNet40H5(str(root))
    if fmt == "modelnet_resampled":
        write_modelnet_resampled(root, ["a", "b", "c"], {"train": 4, "test": 2}, 600, rng)
        return ModelNetResampled(str(root), num_points=512)
    if fmt == "scanobjectnn":
        write_scanobjectnn(root, {"train": 16, "test": 8}, rng, points=512)
        return ScanObjectNN(str(root), "obj_only")
    if fmt == "shapenet55":
        write_shapenet55(root, {"train": 12, "test": 4}, rng, points=8192)
        return ShapeNet55(str(root), num_points=8192)
    if fmt == "shapenetpart":
        write_shapenet_part(root, {"train": 4, "val": 1, "test": 2}, rng)
        return ShapeNetPart(str(root), num_points=512)
    write_mesh_folder(root, per_class=4)
    return MeshFolder(str(root), num_points=512)


@pytest.mark.parametrize(
    "fmt", ["modelnet40_h5", "modelnet_resampled", "scanobjectnn", "shapenet55", "shapenetpart", "mesh_folder"]
)
def test_fit_and_probe_on_each_format(fmt, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("POINTDWC_CACHE", str(tmp_path / "cache"))
    dataset = build(fmt, tmp_path / fmt)
    dm = tiny_data(dataset=dataset, batch_size=4)
    probe = LinearProbe(data=dataset, name=fmt, every_n_epochs=1, num_points=256, batch_size=8)
    module = tiny_module()
    trainer = tiny_trainer(tmp_path, max_epochs=1, limit_train_batches=2, callbacks=[probe])
    trainer.fit(module, datamodule=dm)
    assert trainer.global_step == 2
    assert probe.last is not None and probe.last.step == 2
    # the probe embedded this format's clouds with the trained teacher: its accuracies, recomputed from features
    # computed here, exactly
    svm_acc, knn_acc, feats = probe_reference(module.teacher.backbone, probe)
    assert (probe.last.svm_acc, probe.last.knn_acc) == (svm_acc, knn_acc)
    for split in ("train", "test"):  # the features the probe kept for this step are those
        kept = probe._cache.get(module.teacher.backbone, 2, split, lambda: pytest.fail("the probe kept no features"))
        np.testing.assert_array_equal(kept, feats[split])
    assert float(trainer.callback_metrics[f"probe/{fmt}/svm_acc"]) == pytest.approx(probe.last.svm_acc)
    train = probe._split("train")
    assert len(train.class_names) == {"scanobjectnn": 15, "shapenet55": 4, "shapenetpart": 16}.get(fmt, 3)
