"""`pointdwc embed`: every input kind, the network's eval-mode global features, bad files skipped (--strict: fatal)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from backbones import PointViT
from datamodules import MeshFolder, ModelNet40H5, ScanObjectNN
from lightning_modules.checkpoint_encoder import file_sha256, load_checkpoint_encoder
from lightning_modules.commands.embed import main as embed_main
from tests.layouts import write_mesh_folder, write_pcd, write_scanobjectnn


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    """A point-file folder is packed into the cache, as fit packs it: keep it in the test's folder."""
    monkeypatch.setenv("POINTDWC_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _subset(name: str, count: int, keep: int, seed: int = 0) -> np.ndarray:
    """The rows PointFolder keeps of a file: a prefix of a permutation seeded by sha256(seed:relative path)."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8]
    return np.random.default_rng(int.from_bytes(digest, "little")).permutation(count)[:keep]


def _teacher(ckpt: Path) -> PointViT:
    return load_checkpoint_encoder(ckpt).backbone  # type: ignore[return-value]


def _forward(backbone, clouds: np.ndarray, batch: int) -> np.ndarray:
    """What embed promises: the backbone's global feature in eval mode, by its own forward (in batches of ``batch``)."""
    backbone.eval()
    with torch.no_grad():
        parts = [backbone(torch.from_numpy(np.ascontiguousarray(clouds[i : i + batch]))).global_feature
                 for i in range(0, len(clouds), batch)]
    return torch.cat(parts).numpy()


def _unit_sphere(cloud: np.ndarray) -> np.ndarray:
    """Centred on the centroid, the farthest point at radius 1."""
    centred = cloud - cloud.mean(0)
    return centred / np.linalg.norm(centred, axis=1).max()


def _read(path: Path) -> dict:
    with h5py.File(path, "r") as f:
        data = {k: f[k][...] for k in f}
        data["attrs"] = dict(f.attrs)
    for key in ("names", "split", "skipped_names", "skipped_reasons"):
        data[key] = [s.decode() for s in data[key]]
    return data


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def _embed(ckpt: Path, out: Path, *args: str) -> dict:
    assert embed_main(["--ckpt_path", str(ckpt), "--out", str(out), "--quiet", *args]) == 0
    return _read(out)


def test_a_detected_data_set_gives_the_teachers_global_features(tiny_checkpoint, tiny_modelnet, tmp_path) -> None:
    before = _snapshot(tiny_modelnet)
    got = _embed(tiny_checkpoint, tmp_path / "f.h5", str(tiny_modelnet), "--num_points", "256", "--batch_size", "8")
    teacher = _teacher(tiny_checkpoint)
    train, test = ModelNet40H5(str(tiny_modelnet)).load("train"), ModelNet40H5(str(tiny_modelnet)).load("test")
    expected = np.concatenate([_forward(teacher, train.points[:, :256], 8), _forward(teacher, test.points[:, :256], 8)])
    np.testing.assert_array_equal(got["features"], expected)  # the first 256 stored points of each cloud
    np.testing.assert_array_equal(got["labels"], np.concatenate([train.labels, test.labels]))
    assert got["split"] == ["train"] * 24 + ["test"] * 12
    assert got["names"][:2] == ["ply_data_train0.h5[0]", "ply_data_train0.h5[1]"]
    assert got["names"][-1] == "ply_data_test0.h5[11]"
    attrs = got["attrs"]
    assert attrs["checkpoint_sha256"] == file_sha256(tiny_checkpoint) and attrs["network"] == "teacher"
    assert json.loads(attrs["class_names"]) == ["sphere", "ellipsoid", "cigar"]
    assert "embed_dim: 32" in attrs["config"] and attrs["num_points"] == 256 and attrs["skipped"] == 0
    assert _snapshot(tiny_modelnet) == before  # nothing written into the data folder


def test_a_data_set_by_class_path_and_the_student(tiny_checkpoint, tmp_path) -> None:
    root = write_scanobjectnn(tmp_path / "h5_files", {"train": 6, "test": 4}, np.random.default_rng(1), points=512)
    got = _embed(tiny_checkpoint, tmp_path / "s.h5", "--dataset", "datamodules.ScanObjectNN", "--dataset.root",
                 str(root), "--dataset.variant", "obj_only", "--splits", "test", "--num_points", "256",
                 "--network", "student")
    split = ScanObjectNN(str(root), "obj_only").load("test")
    student = load_checkpoint_encoder(tiny_checkpoint, "student").backbone
    np.testing.assert_array_equal(got["features"], _forward(student, split.points[:, :256], 128))
    assert got["names"][0] == "main_split_nobg/test_objectdataset.h5[0]" and set(got["split"]) == {"test"}
    assert got["attrs"]["network"] == "student"


def _point_folder(root: Path, rng: np.random.Generator, points: int) -> dict[str, np.ndarray]:
    """One file of every point format, in two class folders; returns the cloud of each file."""
    import trimesh

    clouds = {}
    for name in ("chair/a.npy", "chair/b.txt", "chair/c.xyz", "chair/d.pts", "lamp/e.csv", "lamp/f.ply",
                 "lamp/g_ascii.pcd", "lamp/h_binary.pcd", "lamp/i_compressed.pcd"):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        cloud = (rng.normal(size=(points, 3)) * [1.0, 2.0, 0.5] + 3.0).astype(np.float32)
        clouds[name] = cloud
        if path.suffix == ".npy":
            np.save(path, np.concatenate([cloud, np.ones((points, 3), np.float32)], 1))  # normals are ignored
        elif path.suffix in (".txt", ".csv"):  # a commented header, and a bare one
            np.savetxt(path, cloud, fmt="%.9g", delimiter=",", header="x,y,z", comments="# " if ".txt" in name else "")
        elif path.suffix == ".xyz":
            np.savetxt(path, cloud, fmt="%.9g")
        elif path.suffix == ".pts":
            path.write_text(f"{points}\n" + "\n".join(" ".join(f"{v:.9g}" for v in row) for row in cloud) + "\n")
        elif path.suffix == ".ply":
            trimesh.PointCloud(cloud).export(str(path))
        else:
            write_pcd(path, cloud, path.stem.split("_")[1].replace("compressed", "binary_compressed"))
    return clouds


def test_a_folder_of_point_files_of_every_format(tiny_checkpoint, tmp_path) -> None:
    root = tmp_path / "mine"
    clouds = _point_folder(root, np.random.default_rng(2), 256)
    before = _snapshot(root)
    got = _embed(tiny_checkpoint, tmp_path / "p.h5", str(root), "--num_points", "256", "--batch_size", "4")
    assert sorted(got["names"]) == sorted(clouds) and got["attrs"]["skipped"] == 0
    assert json.loads(got["attrs"]["class_names"]) == ["chair", "lamp"]
    assert got["labels"].tolist() == [int(n.startswith("lamp")) for n in got["names"]]
    assert set(got["split"]) == {"train", "test"}  # no split folders: the seeded split fit uses
    # each file centred and scaled into the unit sphere, then a seeded permutation of its points
    expected = np.stack([_unit_sphere(clouds[n].astype(np.float64))[_subset(n, 256, 256)].astype(np.float32)
                         for n in got["names"]])
    np.testing.assert_allclose(got["features"], _forward(_teacher(tiny_checkpoint), expected, 4),
                               rtol=0, atol=1e-5)  # text formats round to 9 digits
    first = got["names"].index("chair/a.npy")
    np.testing.assert_array_equal(got["features"][first], _forward(_teacher(tiny_checkpoint), expected, 4)[first])
    assert _snapshot(root) == before


def test_a_mesh_folder_gives_the_teachers_global_features(tiny_checkpoint, tmp_path) -> None:
    root = write_mesh_folder(tmp_path / "meshes", per_class=2)
    got = _embed(tiny_checkpoint, tmp_path / "m.h5", str(root), "--num_points", "256", "--batch_size", "1")
    assert len(got["names"]) == 6 and json.loads(got["attrs"]["class_names"]) == ["box", "cylinder", "sphere"]
    by_name = dict(zip(got["names"], got["features"], strict=True))
    mesh_set = MeshFolder(str(root))
    teacher = _teacher(tiny_checkpoint)
    for split in ("train", "test"):
        loaded = mesh_set.load(split)
        feats = _forward(teacher, loaded.points[:, :256], 1)
        for name, feat in zip(mesh_set.item_names(split, len(loaded)), feats, strict=True):
            np.testing.assert_array_equal(by_name[name], feat)


def _bad_folder(root: Path, rng: np.random.Generator) -> list[str]:
    """Four good clouds and one of each defect; returns the bad files' names, sorted."""
    root.mkdir(parents=True)
    for i in range(4):
        np.save(root / f"good{i}.npy", rng.normal(size=(300, 3)).astype(np.float32))
    (root / "a_corrupt.npy").write_bytes(b"\x93NUMPY garbage")
    np.save(root / "b_flat.npy", rng.normal(size=(300, 2)))
    nan = rng.normal(size=(300, 3))
    nan[5, 1] = np.nan
    np.save(root / "c_nan.npy", nan)
    np.save(root / "d_small.npy", rng.normal(size=(50, 3)))
    (root / "e_empty.txt").write_text("")
    (root / "notes.md").write_text("not a point file: ignored")
    return ["a_corrupt.npy", "b_flat.npy", "c_nan.npy", "d_small.npy", "e_empty.txt"]


def test_bad_files_are_counted_and_skipped_or_fatal_with_strict(tiny_checkpoint, tmp_path, capsys) -> None:
    root = tmp_path / "mixed"
    bad = _bad_folder(root, np.random.default_rng(3))
    got = _embed(tiny_checkpoint, tmp_path / "b.h5", str(root), "--num_points", "256")
    assert sorted(got["names"]) == [f"good{i}.npy" for i in range(4)] and "labels" not in got
    assert got["attrs"]["skipped"] == 5 and got["skipped_names"] == bad
    reasons = dict(zip(got["skipped_names"], got["skipped_reasons"], strict=True))
    assert "not a readable .npy" in reasons["a_corrupt.npy"] and "shape (N, 3)" in reasons["b_flat.npy"]
    assert "NaN" in reasons["c_nan.npy"] and "fewer than the 256" in reasons["d_small.npy"]
    err = capsys.readouterr().err
    assert "skipped 5 of 9 files" in err and str(root / "c_nan.npy") in err
    out = tmp_path / "strict.h5"
    assert embed_main(["--ckpt_path", str(tiny_checkpoint), "--out", str(out), str(root), "--strict", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert f"{root / 'a_corrupt.npy'}: not a readable .npy array" in err and "--strict" in err
    assert not out.exists()


def test_wrong_invocations_are_one_clear_error(tiny_checkpoint, tiny_modelnet, tmp_path, capsys) -> None:
    before = _snapshot(tiny_modelnet)
    assert embed_main(["--ckpt_path", str(tiny_checkpoint), "--out", str(tiny_modelnet / "f.h5"), str(tiny_modelnet)]) == 1
    assert "never writes into a data folder" in capsys.readouterr().err
    assert embed_main(["--ckpt_path", str(tmp_path / "none.ckpt"), "--out", str(tmp_path / "f.h5"), str(tiny_modelnet)]) == 1
    assert "checkpoint not found" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert embed_main(["--ckpt_path", str(tiny_checkpoint), "--out", str(tmp_path / "f.h5"), str(empty)]) == 1
    assert "no point files or meshes" in capsys.readouterr().err
    assert _snapshot(tiny_modelnet) == before


@pytest.mark.parametrize("kind", ["ascii", "binary", "binary_compressed"])
def test_pcd_files_read_back(tmp_path, kind) -> None:
    from datamodules.formats.point_files import read_pcd

    cloud = np.random.default_rng(4).normal(size=(40, 3)).astype(np.float32)
    np.testing.assert_allclose(read_pcd(write_pcd(tmp_path / "c.pcd", cloud, kind)), cloud, rtol=1e-6)


def test_lzf_back_references() -> None:
    from datamodules.formats.point_files import lzf_decompress

    # "abc" as a literal, then a back reference of length 6 at distance 3 (overlapping the output)
    assert lzf_decompress(bytes([2]) + b"abc" + bytes([0x80, 2]), 9) == b"abcabcabc"
