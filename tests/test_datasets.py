"""ModelNet resampled, ScanObjectNN and ShapeNet55 in their official layouts: load, pack, fail clearly."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from datamodules import DataError, ModelNet40H5, ModelNetResampled, ScanObjectNN, ShapeNet55, SyntheticShapes
from datamodules.detect import dataset_from_root, detect_datasets, resolve_dataset
from tests.layouts import rewrite_h5, write_modelnet_resampled, write_scanobjectnn, write_shapenet55

CLASSES = ["airplane", "night_stand", "chair"]


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("POINTDWC_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture()
def resampled(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    return write_modelnet_resampled(
        tmp_path / "modelnet40_normal_resampled",
        CLASSES,
        {"train": 3, "test": 2},
        300,
        rng,
        modelnet10=["night_stand", "chair"],
    )


@pytest.fixture()
def scanobjectnn(tmp_path) -> Path:
    return write_scanobjectnn(tmp_path / "h5_files", {"train": 30, "test": 15}, np.random.default_rng(1), points=256)


@pytest.fixture()
def shapenet(tmp_path) -> Path:
    return write_shapenet55(tmp_path / "ShapeNet55-34", {"train": 12, "test": 4}, np.random.default_rng(2))


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with its size and modification time."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


# ------------------------------------------------------------------ loading
def test_modelnet_resampled_40_and_10(resampled, cache) -> None:
    before = snapshot(resampled)
    m40 = ModelNetResampled(str(resampled), num_points=256)
    train = m40.load("train")
    assert train.points.shape == (9, 256, 3) and train.points.dtype == np.float32
    assert isinstance(train.points, np.memmap)  # packed once, then memory-mapped
    assert train.class_names == CLASSES and sorted(train.labels.tolist()) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    np.testing.assert_allclose(np.linalg.norm(train.points, axis=-1).max(axis=1), 1.0, rtol=1e-5)
    # first num_points rows of the file, xyz only, then normalised to the unit sphere
    raw = np.loadtxt(resampled / "night_stand" / "night_stand_0001.txt", delimiter=",")[:256, :3]
    row = int(np.flatnonzero(train.labels == 1)[0])
    centred = raw - raw.mean(0)
    np.testing.assert_allclose(train.points[row], centred / np.linalg.norm(centred, axis=1).max(), atol=1e-5)
    m10 = ModelNetResampled(str(resampled), num_classes=10, num_points=256).load("test")
    assert m10.class_names == ["night_stand", "chair"] and len(m10) == 4
    assert snapshot(resampled) == before  # the user's folder is never written
    assert any(cache.rglob("train_points.npy"))


def test_pack_is_reused_and_refreshed_when_a_file_changes(resampled, cache, monkeypatch) -> None:
    first = ModelNetResampled(str(resampled), num_points=256).load("train")
    calls = []
    original = ModelNetResampled.read_item
    monkeypatch.setattr(ModelNetResampled, "read_item", lambda self, p: calls.append(p) or original(self, p))
    again = ModelNetResampled(str(resampled), num_points=256).load("train")
    assert calls == [] and np.array_equal(np.asarray(first.points), np.asarray(again.points))
    target = resampled / "chair" / "chair_0001.txt"
    target.write_text(target.read_text().replace("0.", "0.5", 50))
    ModelNetResampled(str(resampled), num_points=256).load("train")
    assert len(calls) == 15  # the fingerprint (sizes, mtimes) changed: packed again


def test_scanobjectnn_variants(scanobjectnn) -> None:
    for variant in ("obj_bg", "obj_only", "pb_t50_rs"):
        train = ScanObjectNN(str(scanobjectnn), variant).load("train")
        assert train.points.shape == (30, 256, 3) and len(train.class_names) == 15
        assert train.class_names[0] == "bag" and train.class_names[-1] == "toilet"
    assert (
        len(ScanObjectNN(str(scanobjectnn / "main_split"), "pb_t50_rs").load("test")) == 15
    )  # the variant folder itself
    assert [s.variant for s in detect_datasets(scanobjectnn)] == ["pb_t50_rs", "obj_bg", "obj_only"]


def test_shapenet55_layout(shapenet, cache) -> None:
    before = snapshot(shapenet)
    data = ShapeNet55(str(shapenet))
    train = data.load("train")
    assert train.points.shape == (12, 8192, 3) and isinstance(train.points, np.memmap)
    assert train.class_names == sorted(["02691156", "03001627", "04379243", "02958343"])
    first = (shapenet / "ShapeNet-55" / "train.txt").read_text().split()[0]
    assert train.class_names[train.labels[0]] == first.split("-")[0]
    raw = np.load(shapenet / "shapenet_pc" / first)
    centred = raw - raw.mean(0)
    np.testing.assert_allclose(train.points[0], centred / np.linalg.norm(centred, axis=1).max(), atol=1e-5)
    assert len(data.load("test")) == 4
    assert snapshot(shapenet) == before


def test_detection_and_root_resolution(tiny_modelnet, resampled, scanobjectnn, shapenet, tmp_path) -> None:
    assert isinstance(dataset_from_root(tiny_modelnet, "data.root"), ModelNet40H5)
    assert [s.num_classes for s in detect_datasets(resampled)] == [40, 10]
    assert isinstance(dataset_from_root(scanobjectnn, "x"), ScanObjectNN)
    assert isinstance(dataset_from_root(shapenet, "x"), ShapeNet55)
    assert isinstance(resolve_dataset(None, None, "data.dataset", "data.root"), SyntheticShapes)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"probe.root=.*empty: no known data set layout"):
        dataset_from_root(tmp_path / "empty", "probe.root")
    with pytest.raises(DataError, match="give either data.dataset or data.root, not both"):
        resolve_dataset(ModelNet40H5(str(tiny_modelnet)), str(tiny_modelnet), "data.dataset", "data.root")


# ------------------------------------------------------------------ bad input
TRAIN_H5 = "main_split/training_objectdataset_augmentedrot_scale75.h5"


@pytest.mark.parametrize(
    "breakage,message",
    [
        (
            lambda r: (r / TRAIN_H5).unlink(),
            r"training_objectdataset_augmentedrot_scale75.h5: missing \(the train file of ScanObjectNN pb_t50_rs\)",
        ),
        (
            lambda r: (r / TRAIN_H5).write_bytes((r / TRAIN_H5).read_bytes()[:3000]),
            r"augmentedrot_scale75.h5: not a readable HDF5 file, truncated or corrupt",
        ),
        (lambda r: rewrite_h5(r / TRAIN_H5, label=None), r"augmentedrot_scale75.h5: missing dataset 'label'"),
        (lambda r: rewrite_h5(r / TRAIN_H5, data=None), r"augmentedrot_scale75.h5: missing dataset 'data'"),
        (
            lambda r: rewrite_h5(r / TRAIN_H5, data=np.zeros((30, 256, 4), "f4")),
            r"augmentedrot_scale75.h5: field 'data' must have shape \(n, points, 3\)",
        ),
        (
            lambda r: rewrite_h5(r / TRAIN_H5, data=np.full((30, 256, 3), np.inf, "f4")),
            r"augmentedrot_scale75.h5: field 'data' has NaN or Inf",
        ),
        (
            lambda r: rewrite_h5(r / TRAIN_H5, label=np.full(30, 15)),
            r"augmentedrot_scale75.h5: field 'label' has values in \[15, 15\], outside the 15 classes",
        ),
    ],
)
def test_scanobjectnn_bad_input(scanobjectnn, breakage, message) -> None:
    breakage(scanobjectnn)
    with pytest.raises(DataError, match=message):
        ScanObjectNN(str(scanobjectnn), "pb_t50_rs").load("train")


def _first_npy(root: Path) -> Path:
    return root / "shapenet_pc" / (root / "ShapeNet-55" / "train.txt").read_text().split()[0]


@pytest.mark.parametrize(
    "breakage,message",
    [
        (lambda r: (r / "ShapeNet-55" / "train.txt").unlink(), r"ShapeNet-55/train.txt: missing"),
        (lambda r: _first_npy(r).unlink(), r"shapenet_pc/0\d+-[0-9a-f]+\.npy: listed but not found"),
        (
            lambda r: _first_npy(r).write_bytes(_first_npy(r).read_bytes()[:1000]),
            r"\.npy: not a readable \.npy array, truncated or corrupt",
        ),
        (
            lambda r: np.save(_first_npy(r), np.zeros((8192, 3, 1), "f4")),
            r"\.npy: array must have shape \(points, 3\), got \(8192, 3, 1\)",
        ),
        (lambda r: np.save(_first_npy(r), np.zeros((8192, 6), "f4")), r"\.npy: array must have shape \(points, 3\)"),
        (lambda r: np.save(_first_npy(r), np.full((8192, 3), np.nan, "f4")), r"\.npy: array has NaN or Inf"),
        (lambda r: np.save(_first_npy(r), np.zeros((0, 3), "f4")), r"\.npy: array is an empty cloud"),
        (
            lambda r: np.save(_first_npy(r), np.zeros((100, 3), "f4")),
            r"\.npy: array has 100 points, fewer than the 8192 requested",
        ),
        (
            lambda r: (r / "ShapeNet-55" / "train.txt").write_text("not-a-shape.txt\n"),
            r"train.txt: line 1 is 'not-a-shape.txt'",
        ),
    ],
)
def test_shapenet55_bad_input(shapenet, cache, breakage, message) -> None:
    breakage(shapenet)
    with pytest.raises(DataError, match=message):
        ShapeNet55(str(shapenet)).load("train")
    assert not any(cache.rglob("meta.json"))  # nothing half-packed is left behind as usable


def _first_txt(root: Path) -> Path:
    return root / "airplane" / "airplane_0001.txt"


@pytest.mark.parametrize(
    "breakage,message",
    [
        (lambda r: (r / "modelnet40_train.txt").unlink(), r"modelnet40_train.txt: missing"),
        (lambda r: (r / "modelnet40_shape_names.txt").unlink(), r"modelnet40_shape_names.txt: missing"),
        (lambda r: _first_txt(r).unlink(), r"airplane/airplane_0001.txt: listed but not found"),
        (
            lambda r: _first_txt(r).write_text("1,2,3,4,5,6\n1,2,nan,4,5,6\n" * 200),
            r"airplane_0001.txt: x,y,z has NaN or Inf",
        ),
        (lambda r: _first_txt(r).write_text("1,2,3,4,5,6\n1,2\n"), r"airplane_0001.txt: not comma-separated numbers"),
        (lambda r: _first_txt(r).write_text("1,2,3,4\n" * 300), r"airplane_0001.txt: rows must hold x,y,z,nx,ny,nz"),
        (lambda r: _first_txt(r).write_text(""), r"airplane_0001.txt: empty cloud"),
        (
            lambda r: _first_txt(r).write_text("1,2,3,4,5,6\n" * 10),
            r"airplane_0001.txt: x,y,z has 10 points, fewer than the 256 requested",
        ),
        (
            lambda r: (r / "modelnet40_train.txt").write_text("sofa_0001\n"),
            r"modelnet40_train.txt: line 1 names class 'sofa', which is not among the 3 classes",
        ),
    ],
)
def test_modelnet_resampled_bad_input(resampled, cache, breakage, message) -> None:
    breakage(resampled)
    with pytest.raises(DataError, match=message):
        ModelNetResampled(str(resampled), num_points=256).load("train")


def test_missing_roots_name_the_folder(tmp_path, cache) -> None:
    for dataset in (
        ShapeNet55(str(tmp_path / "nope")),
        ModelNetResampled(str(tmp_path / "nope")),
        ScanObjectNN(str(tmp_path / "nope")),
    ):
        with pytest.raises(DataError, match=r"nope: data root does not exist"):
            dataset.load("train")


def test_check_lists_every_problem_without_writing(shapenet, cache) -> None:
    names = (shapenet / "ShapeNet-55" / "train.txt").read_text().split()
    for name in names[:3]:
        os.remove(shapenet / "shapenet_pc" / name)
    report = ShapeNet55(str(shapenet)).check(progress=False)
    assert len(report.problems) == 3 and all("listed but not found" in p for p in report.problems)
    assert [s.split for s in report.summaries] == ["train", "test"] and report.summaries[0].count == 9
    assert not cache.exists()


def test_memory_mapped_split_reaches_loader_workers_by_path(shapenet, cache) -> None:
    import pickle

    import torch

    from datamodules.pointcloud import CloudDataset
    from tests.helpers import tiny_data

    split = ShapeNet55(str(shapenet)).load("train")
    assert len(pickle.dumps(CloudDataset(split))) < 10_000  # the file's path, not 12×8192×3 floats
    batches = {}
    for workers in (0, 2):
        dm = tiny_data(dataset=ShapeNet55(str(shapenet)), batch_size=4)
        dm.num_workers = workers
        dm.setup("fit")
        batches[workers] = list(dm.train_dataloader())
    assert len(batches[0]) == 3
    for (a, la), (b, lb) in zip(batches[0], batches[2], strict=True):
        torch.testing.assert_close(a, b)
        assert torch.equal(la, lb)
    first_points = {tuple(cloud[0].tolist()) for batch, _ in batches[0] for cloud in batch}
    assert len(first_points) == 12  # a shuffled epoch covers every shape once
