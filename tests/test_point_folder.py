"""A folder of own point files: each format read back as written, skipped files reported, the seeded split,
detection beside MeshFolder, and `pointdwc data check` on the issue's mixed folder."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from datamodules import MeshFolder, PointFolder
from datamodules.detect import detect_datasets
from datamodules.formats.point_files import read_points
from lightning_modules.commands.data import main as data_main
from tests.layouts import write_mesh_folder, write_pcd


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("POINTDWC_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _cloud(n: int = 300, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).normal(size=(n, 3)) * [1.0, 2.0, 0.5] + 3.0).astype(np.float32)


# ----------------------------------------------------------------------------- writers (no project code)
def write_ply_ascii(path: Path, cloud: np.ndarray) -> Path:
    """A hand-written ASCII point-cloud .ply with a colour per vertex."""
    rows = "".join(f"{x!r} {y!r} {z!r} 255 0 0\n" for x, y, z in cloud.astype(np.float64).tolist())
    header = (f"ply\nformat ascii 1.0\ncomment written by hand\nelement vertex {len(cloud)}\nproperty float x\n"
              "property float y\nproperty float z\nproperty uchar red\nproperty uchar green\nproperty uchar blue\n"
              "end_header\n")
    path.write_text(header + rows)
    return path


def write_ply_binary(path: Path, columns: dict[str, np.ndarray], byte_order: str) -> Path:
    """A binary .ply whose vertex properties have the given arrays' types (``<`` little, ``>`` big endian)."""
    names = {"f4": "float", "f8": "double", "i2": "short", "u1": "uchar", "i4": "int"}
    dtype = np.dtype([(k, byte_order + v.dtype.str[1:]) for k, v in columns.items()])
    table = np.empty(len(next(iter(columns.values()))), dtype=dtype)
    for key, values in columns.items():
        table[key] = values
    fmt = "binary_little_endian" if byte_order == "<" else "binary_big_endian"
    props = "".join(f"property {names[v.dtype.str[1:]]} {k}\n" for k, v in columns.items())
    header = f"ply\nformat {fmt} 1.0\nelement vertex {len(table)}\n{props}end_header\n"
    path.write_bytes(header.encode() + table.tobytes())
    return path


def write_las(path: Path, cloud: np.ndarray) -> Path:
    laspy = pytest.importorskip("laspy")
    header = laspy.LasHeader(point_format=3, version="1.2")
    header.scales = np.array([0.001, 0.001, 0.001])
    header.offsets = np.array([0.0, 0.0, 0.0])
    las = laspy.LasData(header)
    las.x, las.y, las.z = cloud[:, 0].astype(np.float64), cloud[:, 1].astype(np.float64), cloud[:, 2].astype(np.float64)
    las.write(str(path))
    return path


# ----------------------------------------------------------------------------- each format
def test_each_point_format_reads_back_the_array_written(tmp_path) -> None:
    cloud = _cloud()
    ints = np.random.default_rng(1).integers(-3000, 3000, size=(300, 3)).astype(np.int16)
    cases = {
        write_ply_ascii(tmp_path / "a.ply", cloud): (cloud, 0),
        write_ply_binary(tmp_path / "le.ply", {"x": cloud[:, 0].astype("f8"), "y": cloud[:, 1], "red": np.ones(300, "u1"),
                                               "z": cloud[:, 2]}, "<"): (cloud, 0),
        write_ply_binary(tmp_path / "be.ply", {"x": ints[:, 0], "y": ints[:, 1], "z": ints[:, 2]}, ">"): (ints, 0),
        write_pcd(tmp_path / "b.pcd", cloud, "binary"): (cloud, 0),
        write_pcd(tmp_path / "a.pcd", cloud, "ascii"): (cloud, 1e-6),
        tmp_path / "c.npy": (cloud, 0),
        tmp_path / "named.npz": (cloud, 0),
        tmp_path / "only.npz": (cloud, 0),
        tmp_path / "t.txt": (cloud, 1e-6),
        tmp_path / "t.csv": (cloud, 1e-6),
        tmp_path / "t.xyz": (cloud, 1e-6),
        tmp_path / "t.pts": (cloud, 1e-6),
    }
    np.save(tmp_path / "c.npy", np.concatenate([cloud, np.zeros((300, 3), np.float32)], 1))  # normals: ignored
    np.savez(tmp_path / "named.npz", normals=np.zeros((300, 3)), points=cloud)
    np.savez(tmp_path / "only.npz", cloud)
    np.savetxt(tmp_path / "t.txt", cloud, fmt="%.9g", header="x y z", comments="# ")
    np.savetxt(tmp_path / "t.csv", cloud, fmt="%.9g", delimiter=",", header="x,y,z", comments="")
    np.savetxt(tmp_path / "t.xyz", cloud, fmt="%.9g")
    (tmp_path / "t.pts").write_text("300\n" + "".join(f"{x:.9g} {y:.9g} {z:.9g}\n" for x, y, z in cloud))
    for path, (expected, rtol) in cases.items():
        got = read_points(path)
        assert got.shape == (300, 3), path
        np.testing.assert_allclose(got, expected.astype(np.float64), rtol=rtol, err_msg=str(path))


def test_las_reads_back_the_scaled_coordinates(tmp_path) -> None:
    cloud = _cloud()
    got = read_points(write_las(tmp_path / "a.las", cloud))
    np.testing.assert_allclose(got, cloud, rtol=0, atol=0.0005 + 1e-6)  # stored as integers of 1 mm


def test_laz_reads_back_when_a_backend_is_installed(tmp_path) -> None:
    laspy = pytest.importorskip("laspy")
    if not laspy.LazBackend.detect_available():
        pytest.skip("no LAZ backend installed (pip install 'laspy[lazrs]'): .laz is not tested here")
    cloud = _cloud()
    got = read_points(write_las(tmp_path / "a.laz", cloud))
    np.testing.assert_allclose(got, cloud, rtol=0, atol=0.0005 + 1e-6)


def test_the_set_stores_the_files_points_first_or_a_seeded_subset_of_the_normalised_file(tmp_path) -> None:
    root = tmp_path / "mine"
    (root / "a").mkdir(parents=True)
    clouds = {f"a/c{i}.npy": _cloud(500 + 10 * i, seed=i) for i in range(5)}
    for name, cloud in clouds.items():
        np.save(root / name, cloud)
    raw = PointFolder(str(root), num_points=400, normalize=False, subsample="first")
    for split in raw.splits:
        loaded = raw.load(split)
        for name, stored in zip(raw.item_names(split, len(loaded)), loaded.points, strict=True):
            np.testing.assert_array_equal(stored, clouds[name][:400])
    big, small = PointFolder(str(root), num_points=400), PointFolder(str(root), num_points=128)
    for split in big.splits:
        b, s = big.load(split).points, small.load(split).points
        np.testing.assert_array_equal(b[:, :128], s)  # the probe's first 128 of fit's 400 = the 128-point set
        for name, stored in zip(big.item_names(split, len(b)), b, strict=True):
            c = clouds[name].astype(np.float64)
            centred = c - c.mean(0)  # normalised over the whole file, written out
            full = (centred / np.linalg.norm(centred, axis=1).max()).astype(np.float32)
            rows = {r.tobytes() for r in full}
            assert all(r.tobytes() in rows for r in stored) and len({r.tobytes() for r in stored}) == 400
            assert not np.array_equal(stored, full[:400])  # a random subset, not the file's first points


def test_split_is_seeded_per_class_and_labels_come_from_class_folders(tmp_path) -> None:
    root = tmp_path / "mine"
    for cls, n in (("b", 5), ("a", 10)):
        (root / cls / "deeper").mkdir(parents=True)
        for i in range(n):
            np.save(root / cls / "deeper" / f"{i}.npy", _cloud(64, i))
    data = PointFolder(str(root), num_points=64, seed=3)
    assert data.class_names() == ["a", "b"]
    train, test = data.load("train"), data.load("test")
    assert np.bincount(test.labels).tolist() == [2, 1] and np.bincount(train.labels).tolist() == [8, 4]
    assert PointFolder(str(root), num_points=64, seed=3).items("test") == data.items("test")  # seeded
    assert any(PointFolder(str(root), num_points=64, seed=s).items("test") != data.items("test") for s in range(4, 8))
    np.save(root / "loose.npy", _cloud(64))  # a file outside the class folders: the set is unlabelled
    loose = PointFolder(str(root), num_points=64)
    assert loose.class_names() == [] and set(loose.load("train").labels.tolist()) == {-1}
    assert len(loose.load("train")) + len(loose.load("test")) == 16


def test_train_and_test_folders_are_the_split(tmp_path) -> None:
    root = tmp_path / "mine"
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("x", "y"):
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                np.save(root / split / cls / f"{i}.npy", _cloud(64, i))
    data = PointFolder(str(root), num_points=64)
    assert data.item_names("test", 4) == ["test/x/0.npy", "test/x/1.npy", "test/y/0.npy", "test/y/1.npy"]
    assert data.load("train").labels.tolist() == [0, 0, 0, 1, 1, 1]


# ----------------------------------------------------------------------------- meshes and detection
def test_a_pure_mesh_folder_stays_a_mesh_folder_and_the_point_set_gives_its_clouds(tmp_path) -> None:
    root = write_mesh_folder(tmp_path / "meshes", per_class=3)
    (found,) = detect_datasets(root)
    assert type(found) is MeshFolder
    meshes, points = MeshFolder(str(root)), PointFolder(str(root))
    for split in ("train", "test"):
        m, p = meshes.load(split), points.load(split)
        np.testing.assert_array_equal(p.points, m.points)
        np.testing.assert_array_equal(p.labels, m.labels)
        assert points.item_names(split, len(p)) == meshes.item_names(split, len(m))


def test_point_files_anywhere_make_a_point_folder(tmp_path) -> None:
    root = write_mesh_folder(tmp_path / "meshes", per_class=2)
    write_ply_ascii(root / "box" / "scan.ply", _cloud(64))  # a point .ply among meshes
    assert type(detect_datasets(root)[0]) is PointFolder
    loose = tmp_path / "loose"
    loose.mkdir()
    for i, mesh in enumerate(sorted((tmp_path / "meshes").rglob("*.obj"))):
        (loose / f"{i}.obj").write_bytes(mesh.read_bytes())  # meshes without class folders
    assert type(detect_datasets(loose)[0]) is PointFolder


# ----------------------------------------------------------------------------- data check
def _issue_folder(root: Path) -> Path:
    """The issue's folder: ASCII point .ply, .npy, .txt, .pcd and .obj in three class folders, 30 files."""
    import trimesh

    for c, cls in enumerate(("chair", "lamp", "table")):
        (root / cls).mkdir(parents=True)
        for i in range(2):
            cloud = _cloud(2100, 10 * c + i)
            write_ply_ascii(root / cls / f"scan{i}.ply", cloud)
            np.save(root / cls / f"array{i}.npy", cloud)
            np.savetxt(root / cls / f"rows{i}.txt", cloud)
            write_pcd(root / cls / f"pcl{i}.pcd", cloud)
            trimesh.creation.box(extents=(1.0 + i, 1.0, 0.5 + c)).export(str(root / cls / f"mesh{i}.obj"))
    return root


def test_check_counts_every_file_of_the_issues_folder(tmp_path, cache, capsys) -> None:
    root = _issue_folder(tmp_path / "mydata")
    assert data_main(["check", str(root), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "PointFolder(2048 points)" in out and "usable" in out and "NOT usable" not in out
    assert "30 files: .npy 6 (6 usable), .obj 6 (6 usable), .pcd 6 (6 usable), .ply 6 (6 usable), " \
           ".txt 6 (6 usable)" in out
    assert "train      24 shapes  3/3 classes (8-8 per class)" in out and "test        6 shapes" in out
    assert "skipped" not in out and not cache.exists()


def test_check_names_each_skipped_file_and_why(tmp_path, capsys) -> None:
    root = _issue_folder(tmp_path / "mydata")
    (root / "lamp" / "corrupt.npy").write_bytes(b"\x93NUMPY garbage")
    (root / "lamp" / "empty.txt").write_text("")
    (root / "lamp" / "notes.md").write_text("not a cloud")
    (root / "chair" / "few.npy").write_bytes(b"")
    np.save(root / "chair" / "few.npy", _cloud(100))
    assert data_main(["check", str(root), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "skipped 4 file(s):" in out
    assert f"{root / 'lamp' / 'corrupt.npy'}: not a readable .npy array" in out
    assert f"{root / 'lamp' / 'empty.txt'}: no points (empty file)" in out
    assert f"{root / 'lamp' / 'notes.md'}: not a point file or mesh" in out
    assert f"{root / 'chair' / 'few.npy'}: 100 points, fewer than the 2048 stored per cloud" in out
    assert ".npy 8 (6 usable)" in out and ".txt 7 (6 usable)" in out


def test_check_caps_the_list_and_fails_in_one_line_when_nothing_is_usable(tmp_path, capsys) -> None:
    root = tmp_path / "bad"
    root.mkdir()
    for i in range(13):
        (root / f"{i:02d}.npy").write_bytes(b"junk")
    assert data_main(["check", str(root), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert out.count("not a readable .npy array") == 10 + 1  # ten listed, and the first in the error line
    assert "... and 3 more" in out
    errors = [line for line in out.splitlines() if line.strip().startswith("error:")]
    assert len(errors) == 1 and "none of the 13 files is usable; 13 unreadable" in errors[0]
    assert "NOT usable: 1 problem(s)" in out


def test_the_seed_of_a_files_subset_is_its_relative_path(tmp_path) -> None:
    """Moving the folder keeps every cloud: the subset is seeded by sha256(seed:relative path)."""
    for where in ("one", "two"):
        (tmp_path / where / "a").mkdir(parents=True)
        np.save(tmp_path / where / "a" / "c.npy", _cloud(500))
        np.save(tmp_path / where / "a" / "d.npy", _cloud(500, 1))
    one = PointFolder(str(tmp_path / "one"), num_points=100).load("train").points
    two = PointFolder(str(tmp_path / "two"), num_points=100).load("train").points
    np.testing.assert_array_equal(one, two)
    seed = int.from_bytes(hashlib.sha256(b"0:a/c.npy").digest()[:8], "little")
    rows = np.random.default_rng(seed).permutation(500)[:100]
    c = _cloud(500).astype(np.float64)
    centred = c - c.mean(0)
    expected = (centred / np.linalg.norm(centred, axis=1).max())[rows].astype(np.float32)
    data = PointFolder(str(tmp_path / "one"), num_points=100)
    names = data.item_names("train", 1) + data.item_names("test", 1)
    both = np.concatenate([data.load("train").points, data.load("test").points])
    np.testing.assert_array_equal(both[names.index("a/c.npy")], expected)


def test_a_binary_ply_with_faces_is_a_mesh_sampled_as_mesh_folder_samples_it(tmp_path) -> None:
    import trimesh

    box = trimesh.creation.box(extents=(1.0, 2.0, 0.5))
    faces = np.empty(len(box.faces), dtype=[("n", "u1"), ("v", ">i4", (3,))])
    faces["n"], faces["v"] = 3, box.faces
    header = (f"ply\nformat binary_big_endian 1.0\nelement vertex {len(box.vertices)}\nproperty double x\n"
              f"property double y\nproperty double z\nelement face {len(box.faces)}\n"
              "property list uchar int vertex_indices\nend_header\n")
    (tmp_path / "box").mkdir()
    path = tmp_path / "box" / "mesh.ply"
    path.write_bytes(header.encode() + box.vertices.astype(">f8").tobytes() + faces.tobytes())
    np.testing.assert_array_equal(read_points(path), box.vertices)  # its vertices, read as written
    sampled = MeshFolder(str(tmp_path)).read_item(path)
    centred = sampled - sampled.mean(0)
    expected = centred / np.sqrt((centred**2).sum(1)).max()
    np.testing.assert_allclose(PointFolder(str(tmp_path)).read_item(path), expected, rtol=0, atol=1e-6)


def test_las_without_laspy_is_one_line_naming_the_extra(tmp_path, monkeypatch) -> None:
    import sys

    from datamodules.errors import DataError

    monkeypatch.setitem(sys.modules, "laspy", None)  # `import laspy` raises ImportError
    (tmp_path / "a.las").write_bytes(b"LASF")
    with pytest.raises(DataError, match=r"a\.las: reading \.las/\.laz needs laspy: pip install 'pointdwc\[las\]'$"):
        read_points(tmp_path / "a.las")


def test_fine_tuning_refuses_a_folder_without_labels(tmp_path) -> None:
    from datamodules import ClassificationDataModule
    from datamodules.errors import DataError

    (tmp_path / "flat").mkdir()
    for i in range(3):
        np.save(tmp_path / "flat" / f"{i}.npy", _cloud(2048, i))
    with pytest.raises(DataError, match="no class folders, so no labels to fine-tune on"):
        ClassificationDataModule(root=str(tmp_path / "flat")).class_names


def test_check_fails_when_a_class_has_no_usable_file(tmp_path, capsys) -> None:
    root = _issue_folder(tmp_path / "mydata")
    (root / "empty_class").mkdir()
    (root / "empty_class" / "broken.pcd").write_text("not a pcd")
    assert data_main(["check", str(root), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert f"error: {root / 'empty_class'}: class 'empty_class' has no usable file" in out
    assert f"{root / 'empty_class' / 'broken.pcd'}: not a valid .pcd header" in out


def test_packing_in_worker_processes_gives_the_same_pack(tmp_path, monkeypatch) -> None:
    root = tmp_path / "mine"
    (root / "a").mkdir(parents=True)
    for i in range(6):
        np.save(root / "a" / f"{i}.npy", _cloud(300, i))
    (root / "a" / "bad.npy").write_bytes(b"junk")
    serial = PointFolder(str(root), num_points=256)
    serial_train = np.array(serial.load("train").points)
    monkeypatch.setenv("POINTDWC_CACHE", str(tmp_path / "other_cache"))
    parallel = PointFolder(str(root), num_points=256)
    parallel.read_workers = 2
    np.testing.assert_array_equal(np.asarray(parallel.load("train").points), serial_train)
    assert parallel.skipped("train") + parallel.skipped("test") == serial.skipped("train") + serial.skipped("test")
    assert len(parallel.skipped("train") + parallel.skipped("test")) == 1
