"""The procedural synthetic data set: layout, normalisation, determinism, caching."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from datamodules.synthetic import shape_set as synthetic
from datamodules.synthetic.generate import generate_shape
from datamodules.synthetic.shape_set import CLASS_NAMES, default_cache_dir, ensure_synthetic_dataset, generate_split

TRAIN, TEST, POINTS = 3, 2, 256


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated data set shared by the read-only tests."""
    return ensure_synthetic_dataset(
        tmp_path_factory.mktemp("synth") / "synthetic", TRAIN, TEST, POINTS, seed=0, progress=False
    )


def _read(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    with h5py.File(root / f"ply_data_{split}0.h5", "r") as f:
        return f["data"][...], f["label"][...]


def test_layout_matches_modelnet40_h5(cache: Path) -> None:
    names = {p.name for p in cache.iterdir()}
    assert names == {
        "shape_names.txt",
        "train_files.txt",
        "test_files.txt",
        "ply_data_train0.h5",
        "ply_data_test0.h5",
        "pointdwc_synthetic.json",
    }
    for split, per_class in (("train", TRAIN), ("test", TEST)):
        listing = (cache / f"{split}_files.txt").read_text().splitlines()
        assert listing == [f"data/{cache.name}/ply_data_{split}0.h5"]
        with h5py.File(cache / f"ply_data_{split}0.h5", "r") as f:
            assert {"data", "label"} <= set(f.keys())
            n = len(CLASS_NAMES) * per_class
            assert f["data"].dtype == np.float32 and f["data"].shape == (n, POINTS, 3)
            assert f["label"].dtype == np.uint8 and f["label"].shape == (n, 1)
    meta = json.loads((cache / "pointdwc_synthetic.json").read_text())
    assert meta["seed"] == 0 and meta["num_points"] == POINTS and meta["classes"] == list(CLASS_NAMES)
    assert meta["num_train_per_class"] == TRAIN and meta["num_test_per_class"] == TEST
    assert "version" in meta


def test_labels_are_balanced_and_match_shape_names(cache: Path) -> None:
    names = (cache / "shape_names.txt").read_text().splitlines()
    assert names == list(CLASS_NAMES) and len(names) >= 12 and len(set(names)) == len(names)
    for split, per_class in (("train", TRAIN), ("test", TEST)):
        _, label = _read(cache, split)
        assert np.array_equal(np.bincount(label[:, 0], minlength=len(names)), np.full(len(names), per_class))


def test_clouds_are_finite_centred_unit_sphere(cache: Path) -> None:
    data, _ = _read(cache, "train")
    assert np.isfinite(data).all()
    np.testing.assert_allclose(data.mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(data, axis=2).max(axis=1), 1.0, atol=1e-5)


def test_generate_shape_shape_and_dtype() -> None:
    for c in range(len(CLASS_NAMES)):
        cloud = generate_shape(c, np.random.default_rng([1, c]), 100)
        assert cloud.shape == (100, 3) and cloud.dtype == np.float32
        assert np.isfinite(cloud).all()
    with pytest.raises(ValueError):
        generate_shape(len(CLASS_NAMES), np.random.default_rng(0))


def test_determinism_and_order_independence() -> None:
    a_data, a_label = generate_split("test", 1, 64, seed=3, progress=False)
    b_data, b_label = generate_split("test", 1, 64, seed=3, progress=False)
    assert a_data.dtype == np.float32 and a_label.dtype == np.int64
    assert np.array_equal(a_data, b_data) and np.array_equal(a_label, b_label)
    # sample i only depends on (seed, split, i)
    i = 5
    alone = generate_shape(int(a_label[i]), np.random.default_rng([3, synthetic.SPLITS.index("test"), i]), 64)
    assert np.array_equal(alone, a_data[i])
    c_data, _ = generate_split("test", 1, 64, seed=4, progress=False)
    assert not np.array_equal(a_data, c_data)
    d_data, _ = generate_split("train", 1, 64, seed=3, progress=False)
    assert not np.array_equal(a_data, d_data)


def test_instances_of_a_class_differ(cache: Path) -> None:
    data, label = _read(cache, "train")
    for c in range(len(CLASS_NAMES)):
        first, second = data[label[:, 0] == c][:2]
        # compare rotation-invariant profiles, so a mere rotation would not count as variety
        r1, r2 = np.sort(np.linalg.norm(first, axis=1)), np.sort(np.linalg.norm(second, axis=1))
        assert np.abs(r1 - r2).mean() > 1e-3, CLASS_NAMES[c]


def test_y_is_up() -> None:
    """Guitars stand upright: their y extent dominates after rotation about y."""
    c = CLASS_NAMES.index("guitar")
    ratios = []
    for i in range(5):
        cloud = generate_shape(c, np.random.default_rng([9, i]), 256)
        ext = np.ptp(cloud, axis=0)
        ratios.append(ext[1] / max(ext[0], ext[2]))
    assert np.mean(ratios) > 1.5


def test_second_call_does_not_regenerate(cache: Path) -> None:
    shards = sorted(cache.glob("*.h5"))
    before = [p.stat().st_mtime_ns for p in shards]
    again = ensure_synthetic_dataset(cache, TRAIN, TEST, POINTS, seed=0, progress=False)
    assert again == cache
    assert [p.stat().st_mtime_ns for p in shards] == before


def test_default_root_is_named_from_parameters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POINTDWC_CACHE", str(tmp_path / "cache"))
    assert default_cache_dir() == tmp_path / "cache"
    root = ensure_synthetic_dataset(None, 1, 1, 32, seed=5, progress=False)
    assert root == tmp_path / "cache" / f"synthetic-v{synthetic.VERSION}-s5-tr1-te1-p32"
    assert (root / "shape_names.txt").is_file()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [root.name]  # no temporary leftovers


def test_other_parameters_replace_the_cache(tmp_path: Path) -> None:
    root = ensure_synthetic_dataset(tmp_path / "synthetic", 1, 1, 32, seed=0, progress=False)
    ensure_synthetic_dataset(root, 1, 1, 48, seed=1, progress=False)
    meta = json.loads((root / "pointdwc_synthetic.json").read_text())
    assert meta["num_points"] == 48 and meta["seed"] == 1
    assert _read(root, "train")[0].shape[1] == 48
    assert [p.name for p in tmp_path.iterdir()] == ["synthetic"]


def test_refuses_to_overwrite_a_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        ensure_synthetic_dataset(tmp_path, 1, 1, 32, progress=False)
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_shards_hold_at_most_shard_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(synthetic, "SHARD_SIZE", 20)
    root = ensure_synthetic_dataset(tmp_path / "s", 1, 1, 16, progress=False)
    listing = (root / "train_files.txt").read_text().splitlines()
    n = len(CLASS_NAMES)
    assert len(listing) == -(-n // 20)
    sizes = []
    for line in listing:
        with h5py.File(root / Path(line).name, "r") as f:
            sizes.append(len(f["label"]))
    assert max(sizes) <= 20 and sum(sizes) == n


def test_readable_by_the_modelnet_reader(cache: Path) -> None:
    from datamodules.formats.modelnet_h5 import read_modelnet_h5

    split = read_modelnet_h5(cache, "test")
    assert split.class_names == list(CLASS_NAMES)
    assert split.points.shape == (len(CLASS_NAMES) * TEST, POINTS, 3)


def test_primitive_samplers_lie_on_their_surfaces() -> None:
    from datamodules.synthetic.shapes import parts as sp

    rng = np.random.default_rng(0)
    pts = sp.box((2.0, 1.0, 0.5)).sample(2000, rng)
    half = np.array([1.0, 0.5, 0.25])
    assert np.isclose(np.abs(pts) / half, 1.0).any(axis=1).all() and (np.abs(pts) <= half + 1e-12).all()
    pts = sp.ellipsoid((1.0, 1.0, 1.0), (0.0, 2.0, 0.0)).sample(500, rng)
    np.testing.assert_allclose(np.linalg.norm(pts - [0.0, 2.0, 0.0], axis=1), 1.0)
    pts = sp.torus(1.0, 0.2).sample(500, rng)
    ring = np.hypot(pts[:, 0], pts[:, 2]) - 1.0
    np.testing.assert_allclose(np.hypot(ring, pts[:, 1]), 0.2, atol=1e-9)
    pts = sp.segment((0.0, 0.0, 0.0), (1.0, 1.0, 0.0), 0.1, caps=False).sample(500, rng)
    axis = np.array([1.0, 1.0, 0.0]) / np.sqrt(2.0)
    radial = pts - (pts @ axis)[:, None] * axis
    np.testing.assert_allclose(np.linalg.norm(radial, axis=1), 0.1, atol=1e-9)


def test_primitive_sampling_is_area_weighted() -> None:
    from datamodules.synthetic.shapes import parts as sp

    cyl = sp.cylinder(1.0, 2.0)
    assert np.isclose(cyl.area, 2 * np.pi * 1.0 * 2.0 + 2 * np.pi)
    pts = cyl.sample(20000, np.random.default_rng(1))
    caps = np.isclose(pts[:, 1], 0.0) | np.isclose(pts[:, 1], 2.0)
    assert abs(caps.mean() - 2 * np.pi / cyl.area) < 0.02
    cone = sp.frustum(1.0, 0.0, 1.0)  # density grows with the radius: 3/4 of the points in the lower half
    assert abs((cone.sample(20000, np.random.default_rng(2))[:, 1] < 0.5).mean() - 0.75) < 0.02
    big, small = sp.box((1.0, 1.0, 1.0)), sp.box((0.5, 0.5, 0.5), (3.0, 0.0, 0.0))
    pts = sp.sample_surface([big, small], 10000, np.random.default_rng(3))
    assert abs((pts[:, 0] > 2.0).mean() - 0.2) < 0.02  # areas 6 : 1.5
