"""MeshFolder: every mesh type and layout loads, sampling is fair and cached, bad data is named."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

from datamodules.dataset import PointCloudSplit
from datamodules.errors import DataError
from datamodules.formats.mesh_folder import MESH_EXTENSIONS, MeshFolder

P = 256  # points per cloud: small keeps the file fast


def write(path: Path, mesh: trimesh.Trimesh | trimesh.Scene) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    mesh.export(str(path))
    return path


def shape(kind: str, i: int = 0) -> trimesh.Trimesh:
    """Small distinct meshes: ``i`` stretches them so files differ."""
    if kind == "box":
        return trimesh.creation.box(extents=(1.0 + 0.1 * i, 2.0, 3.0))
    if kind == "sphere":
        return trimesh.creation.icosphere(subdivisions=1, radius=1.0 + 0.1 * i)
    return trimesh.creation.cylinder(radius=0.5, height=2.0 + 0.1 * i, sections=12)


def flat_folder(root: Path, counts: dict[str, int], ext: str = ".obj") -> Path:
    """``<root>/<class>/<class>_NN<ext>``, the class's shape kind taken from its name."""
    for name, count in counts.items():
        for i in range(count):
            write(root / name / f"{name}_{i:02d}{ext}", shape(name, i))
    return root


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("POINTDWC_CACHE", str(path))
    return path


def rel(items: list[tuple[Path, int]], root: Path) -> list[tuple[str, int]]:
    return [(p.relative_to(root).as_posix(), label) for p, label in items]


# ---------------------------------------------------------------------- reading


@pytest.mark.parametrize("ext", MESH_EXTENSIONS)
def test_each_extension_loads_points_on_the_surface(tmp_path: Path, ext: str) -> None:
    path = write(tmp_path / "box" / f"a{ext}", trimesh.creation.box(extents=(1.0, 2.0, 3.0)))
    points = MeshFolder(str(tmp_path), num_points=P).read_item(path)
    assert points.shape == (P, 3) and points.dtype == np.float32
    half = np.array([0.5, 1.0, 1.5])
    assert (np.abs(points) <= half + 1e-5).all()
    on_a_face = np.isclose(np.abs(points), half, atol=1e-5).any(axis=1)
    assert on_a_face.all()  # every point lies on the box's surface, none inside


def test_glb_scene_meshes_are_concatenated_with_their_transforms(tmp_path: Path) -> None:
    scene = trimesh.Scene()
    scene.add_geometry(trimesh.creation.box(extents=(1, 1, 1)), node_name="a", geom_name="a")
    scene.add_geometry(
        trimesh.creation.box(extents=(1, 1, 1)),
        node_name="b",
        geom_name="b",
        transform=trimesh.transformations.translation_matrix([10.0, 0.0, 0.0]),
    )
    path = write(tmp_path / "pair" / "scene.glb", scene)
    points = MeshFolder(str(tmp_path), num_points=P).read_item(path)
    far = points[:, 0] > 5
    assert 0.3 < far.mean() < 0.7  # both parts sampled, the second one moved by its node transform


def test_sampling_is_area_weighted(tmp_path: Path) -> None:
    small = trimesh.creation.box(extents=(1, 1, 1))  # area 6
    large = trimesh.creation.box(extents=(2, 2, 2))  # area 24
    large.apply_translation([10.0, 0.0, 0.0])
    path = write(tmp_path / "two" / "parts.ply", trimesh.util.concatenate([small, large]))
    points = MeshFolder(str(tmp_path), num_points=4096).read_item(path)
    on_large = (points[:, 0] > 5).mean()
    assert abs(on_large - 24 / 30) < 0.03  # per-face or per-part sampling would give 0.5


def test_sampling_is_reproducible_and_seeded_by_the_relative_path(tmp_path: Path) -> None:
    a = write(tmp_path / "one" / "box" / "a.stl", shape("box"))
    b = write(tmp_path / "one" / "box" / "b.stl", shape("box"))
    first = MeshFolder(str(tmp_path / "one"), num_points=P).read_item(a)
    np.testing.assert_array_equal(first, MeshFolder(str(tmp_path / "one"), num_points=P).read_item(a))
    assert not np.array_equal(first, MeshFolder(str(tmp_path / "one"), num_points=P).read_item(b))
    moved = write(tmp_path / "two" / "box" / "a.stl", shape("box"))  # same relative path, other root
    np.testing.assert_array_equal(first, MeshFolder(str(tmp_path / "two"), num_points=P).read_item(moved))
    assert not np.array_equal(first, MeshFolder(str(tmp_path / "one"), num_points=P, seed=1).read_item(a))


# ---------------------------------------------------------------------- layouts


def test_flat_layout_splits_each_class_deterministically(tmp_path: Path) -> None:
    root = flat_folder(tmp_path / "meshes", {"sphere": 5, "box": 1, "cylinder": 10})
    data = MeshFolder(str(root))
    assert data.class_names() == ["box", "cylinder", "sphere"]
    train, test = data.items("train"), data.items("test")
    assert rel(train, root) == rel(MeshFolder(str(root)).items("train"), root)  # stable across instances
    assert rel(test, root) == rel(data.items("test"), root)  # and across calls
    for label, name, count, n_test in [(0, "box", 1, 0), (1, "cylinder", 10, 2), (2, "sphere", 5, 1)]:
        tr = [p for p, lab in train if lab == label]
        te = [p for p, lab in test if lab == label]
        assert len(te) == n_test and len(tr) == count - n_test
        assert {p.parent.name for p in tr + te} == {name}
        assert len(set(tr) | set(te)) == count
    other = MeshFolder(str(root), seed=3)
    assert sorted(rel(other.items("train") + other.items("test"), root)) == sorted(rel(train + test, root))


def test_flat_layout_keeps_one_train_and_one_test_mesh_per_class(tmp_path: Path) -> None:
    root = flat_folder(tmp_path / "meshes", {"box": 2, "sphere": 3})
    for fraction in (0.01, 0.99):
        data = MeshFolder(str(root), test_fraction=fraction)
        for split in ("train", "test"):
            assert sorted({lab for _, lab in data.items(split)}) == [0, 1]


def test_class_first_split_layout_like_the_modelnet_off_release(tmp_path: Path) -> None:
    root = tmp_path / "ModelNet40"
    for name in ("sphere", "box"):
        for split, count in (("train", 3), ("test", 2)):
            for i in range(count):
                write(root / name / split / f"{name}_{split}_{i}.off", shape(name, i))
    data = MeshFolder(str(root))
    assert data.class_names() == ["box", "sphere"]
    assert rel(data.items("test"), root) == [
        ("box/test/box_test_0.off", 0), ("box/test/box_test_1.off", 0),
        ("sphere/test/sphere_test_0.off", 1), ("sphere/test/sphere_test_1.off", 1),
    ]  # fmt: skip
    assert all(p.parent.name == "train" for p, _ in data.items("train")) and len(data.items("train")) == 6


def test_split_first_layout(tmp_path: Path, cache: Path) -> None:
    root = tmp_path / "meshes"
    for split, count in (("train", 3), ("test", 1)):
        for name, ext in (("cylinder", ".glb"), ("box", ".stl")):
            for i in range(count):
                write(root / split / name / f"{i}{ext}", shape(name, i))
    data = MeshFolder(str(root), num_points=P)
    assert data.class_names() == ["box", "cylinder"]
    assert rel(data.items("test"), root) == [("test/box/0.stl", 0), ("test/cylinder/0.glb", 1)]
    train = data.load("train")
    assert train.points.shape == (6, P, 3) and train.labels.tolist() == [0, 0, 0, 1, 1, 1]


def test_hidden_and_other_files_are_ignored(tmp_path: Path) -> None:
    root = flat_folder(tmp_path / "meshes", {"box": 2})
    (root / ".git").mkdir()
    write(root / ".git" / "x.obj", shape("box"))
    write(root / "box" / "._a.obj", shape("box"))  # macOS resource-fork debris
    (root / "box" / "a.mtl").write_text("newmtl x\n")
    (root / "README.txt").write_text("my meshes\n")
    write(root / "box" / "UPPER.OBJ", shape("box", 5))
    data = MeshFolder(str(root))
    assert data.class_names() == ["box"]
    names = sorted(p.name for p, _ in data.items("train") + data.items("test"))
    assert names == ["UPPER.OBJ", "box_00.obj", "box_01.obj"]


# ---------------------------------------------------------------------- packing and loading


def test_load_returns_memory_mapped_unit_sphere_clouds(tmp_path: Path, cache: Path) -> None:
    root = flat_folder(tmp_path / "meshes", {"box": 4, "sphere": 4}, ext=".ply")
    data = MeshFolder(str(root), num_points=P)
    train = data.load("train")
    assert isinstance(train, PointCloudSplit)
    assert train.points.shape == (6, P, 3) and train.points.dtype == np.float32
    assert isinstance(train.points, np.memmap)
    assert train.labels.dtype == np.int64 and train.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert train.class_names == ["box", "sphere"]
    norms = np.linalg.norm(train.points, axis=-1)
    np.testing.assert_allclose(norms.max(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(train.points).mean(axis=1), 0.0, atol=1e-5)
    assert "MeshFolder(256 points)" in train.source and str(root) in train.source
    assert data.prepare(progress=False).is_relative_to(cache)
    assert len(data.load("test")) == 2


def test_pack_is_cached_and_the_user_folder_is_untouched(tmp_path: Path, cache: Path, monkeypatch) -> None:
    root = flat_folder(tmp_path / "meshes", {"box": 3, "cylinder": 3}, ext=".off")
    before = snapshot(root)
    first = np.array(MeshFolder(str(root), num_points=P).load("train").points)

    def fail(self, path):
        raise AssertionError(f"re-read {path}")

    monkeypatch.setattr(MeshFolder, "read_item", fail)
    again = MeshFolder(str(root), num_points=P).load("train")
    np.testing.assert_array_equal(first, again.points)
    assert snapshot(root) == before
    with pytest.raises(AssertionError, match="re-read"):  # other options: another pack
        MeshFolder(str(root), num_points=P, seed=1).load("train")


def test_options_key_the_cache(tmp_path: Path, cache: Path) -> None:
    root = flat_folder(tmp_path / "meshes", {"box": 3})
    data = MeshFolder(str(root), num_points=P, test_fraction=0.5, seed=7)
    assert data.options() == {"num_points": P, "normalize": True, "test_fraction": 0.5, "seed": 7}
    paths = {MeshFolder(str(root), num_points=P, **kw).cache_path() for kw in ({}, {"seed": 1}, {"test_fraction": 0.5})}
    assert len(paths) == 3 and not cache.exists()


def test_bad_meshes_are_skipped_with_a_warning_and_counted(tmp_path: Path, cache: Path) -> None:
    root = tmp_path / "meshes"
    for name in ("box", "sphere"):
        for split in ("train", "test"):
            for i in range(2):
                write(root / name / split / f"{i}.obj", shape(name, i))
    (root / "box" / "train" / "garbage.obj").write_bytes(b"\x00\x01\xffnot a mesh" * 20)
    glb = write(root / "box" / "train" / "whole.glb", shape("box")).read_bytes()
    (root / "box" / "train" / "truncated.glb").write_bytes(glb[: len(glb) // 2])
    (root / "box" / "train" / "whole.glb").unlink()
    point = trimesh.Trimesh(vertices=np.ones((3, 3)), faces=[[0, 1, 2]], process=False)
    write(root / "sphere" / "train" / "degenerate.off", point)  # all vertices coincident: zero area
    data = MeshFolder(str(root), num_points=P)
    with pytest.warns(UserWarning, match=r"skipped 3 of 7 train shapes as unreadable") as record:
        train = data.load("train")
    message = " ".join(str(w.message) for w in record)
    for name in ("garbage.obj", "truncated.glb", "degenerate.off"):
        assert str(root / ("sphere" if name.startswith("d") else "box") / "train" / name) in message
    assert "zero or non-finite surface area" in message and "not a readable mesh" in message
    assert train.points.shape == (4, P, 3) and train.labels.tolist() == [0, 0, 1, 1]
    meta = json.loads((data.prepare(progress=False) / "meta.json").read_text())
    skipped = ["box/train/garbage.obj", "box/train/truncated.glb", "sphere/train/degenerate.off"]
    reasons = meta["train"].pop("skipped_reasons")
    assert meta["train"] == {"count": 4, "skipped": 3, "skipped_files": skipped}
    assert [reason.split(": ")[0] for reason in reasons] == [str(root / name) for name in skipped]
    assert meta["test"] == {"count": 4, "skipped": 0, "skipped_files": [], "skipped_reasons": []}
    assert data.skipped("train") == list(zip(skipped, reasons, strict=True))
    # the packed clouds are named by the files that were kept
    assert data.item_names("train", 4) == ["box/train/0.obj", "box/train/1.obj", "sphere/train/0.obj", "sphere/train/1.obj"]


@pytest.mark.parametrize(
    "content,why",
    [
        (b"", "no faces"),
        (b"v 0 0 0\nv 1 0 0\nv 0 1 0\n", "no faces"),  # a point cloud
        (b"v 0 0 0\nv 1 0 0\nv nan 1 0\nf 1 2 3\n", "no faces"),  # trimesh drops the NaN face
        (b"v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n", "zero or non-finite surface area"),  # collinear
    ],
)
def test_each_defect_is_one_skippable_error_naming_the_file(tmp_path: Path, content: bytes, why: str) -> None:
    from datamodules.formats.packed import SkippableItem

    path = tmp_path / "box" / "bad.obj"
    path.parent.mkdir()
    path.write_bytes(content)
    with pytest.raises(SkippableItem, match=re.escape(str(path)) + ".*" + why):
        MeshFolder(str(tmp_path), num_points=P).read_item(path)


# ---------------------------------------------------------------------- fatal problems


def test_a_class_whose_meshes_are_all_bad_names_its_folder(tmp_path: Path, cache: Path) -> None:
    root = flat_folder(tmp_path / "meshes", {"box": 3})
    for i in range(3):
        (root / "broken" / f"{i}.stl").parent.mkdir(exist_ok=True)
        (root / "broken" / f"{i}.stl").write_bytes(b"\x00" * 10)
    data = MeshFolder(str(root), num_points=P)
    with pytest.raises(DataError, match=re.escape(f"{root / 'broken'}: class 'broken' has no readable shape")):
        with pytest.warns(UserWarning, match="split has no readable shape of \\['broken'\\]"):
            data.load("train")
    assert not list(cache.rglob("meta.json"))  # nothing half-packed left behind
    with pytest.warns(UserWarning, match="skipped"):
        found = data.problems(progress=False)  # once: the class has no readable shape in any split
    assert found == [f"{root / 'broken'}: class 'broken' has no readable shape"]
    assert not list(cache.rglob("meta.json"))


def test_all_meshes_bad_fails_naming_the_root(tmp_path: Path, cache: Path) -> None:
    root = tmp_path / "meshes"
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        (root / name / "x.obj").write_bytes(b"\x00garbage")
        (root / name / "y.obj").write_bytes(b"\x00garbage")
    with pytest.raises(DataError, match=re.escape(str(root)) + r": none of the 2 train shapes is readable.*x.obj"):
        MeshFolder(str(root), num_points=P).load("train")


def test_an_empty_class_folder_is_an_error_naming_it(tmp_path: Path, cache: Path) -> None:
    root = flat_folder(tmp_path / "meshes", {"box": 3})
    (root / "chair").mkdir()
    (root / "table").mkdir()
    (root / "table" / "notes.txt").write_text("todo\n")
    expected = re.escape(f"{root / 'chair'}: no .obj/.off/.stl/.ply/.glb files")
    with pytest.raises(DataError, match=expected):
        MeshFolder(str(root)).class_names()
    with pytest.raises(DataError, match=expected):
        MeshFolder(str(root)).load("train")
    found = MeshFolder(str(root)).problems(progress=False)  # every empty folder at once
    assert found == [f"{root / name}: no .obj/.off/.stl/.ply/.glb files" for name in ("chair", "table")]
    assert not cache.exists()


def test_an_empty_split_folder_is_an_error_naming_it(tmp_path: Path) -> None:
    root = tmp_path / "meshes"
    write(root / "box" / "train" / "a.obj", shape("box"))
    (root / "box" / "test").mkdir()
    with pytest.raises(DataError, match=re.escape(f"{root / 'box' / 'test'}: no .obj/")):
        MeshFolder(str(root)).items("train")


def test_missing_root(tmp_path: Path, cache: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(DataError, match=re.escape(f"{missing}: data root does not exist")):
        MeshFolder(str(missing)).load("train")
    found = MeshFolder(str(missing)).problems(progress=False)
    assert found == [f"{missing}: data root does not exist or is not a directory"]


@pytest.mark.parametrize("loose", [False, True])
def test_a_root_without_class_folders_says_what_it_expects(tmp_path: Path, loose: bool) -> None:
    root = tmp_path / "meshes"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "readme.txt").write_text("hi\n")
    if loose:
        write(root / "a.obj", shape("box"))
    expected = re.escape(f"{root}: no class folders holding .obj/.off/.stl/.ply/.glb files")
    with pytest.raises(DataError, match=expected) as err:
        MeshFolder(str(root)).class_names()
    assert ("one subfolder per class" in str(err.value)) == loose


def test_ambiguous_layouts_are_errors(tmp_path: Path) -> None:
    root = flat_folder(tmp_path / "a", {"box": 2})
    write(root / "box" / "train" / "x.obj", shape("box"))
    with pytest.raises(DataError, match=re.escape(f"{root / 'box'}: holds both mesh files and train/")):
        MeshFolder(str(root)).class_names()
    root = tmp_path / "b"
    write(root / "train" / "box" / "x.obj", shape("box"))
    write(root / "test" / "box" / "x.obj", shape("box"))
    write(root / "sphere" / "x.obj", shape("sphere"))
    with pytest.raises(DataError, match=re.escape(f"{root}: holds train/ or test/ and also ['sphere']")):
        MeshFolder(str(root)).class_names()


def test_an_empty_test_split_is_an_error(tmp_path: Path) -> None:
    root = flat_folder(tmp_path / "meshes", {"box": 1, "sphere": 1})
    with pytest.raises(DataError, match=re.escape(f"{root}: the test split has no meshes")):
        MeshFolder(str(root)).items("test")


def test_unknown_split_and_bad_options(tmp_path: Path) -> None:
    root = flat_folder(tmp_path / "meshes", {"box": 2})
    with pytest.raises(DataError, match=r"MeshFolder\(2048 points\): unknown split 'val'"):
        MeshFolder(str(root)).items("val")
    with pytest.raises(DataError, match="test_fraction must be between 0 and 1"):
        MeshFolder(str(root), test_fraction=1.0)
    with pytest.raises(DataError, match="num_points must be at least 1"):
        MeshFolder(str(root), num_points=0)


def test_missing_trimesh_says_how_to_install_it(tmp_path: Path, monkeypatch) -> None:
    path = write(tmp_path / "box" / "a.obj", shape("box"))
    monkeypatch.setitem(sys.modules, "trimesh", None)  # import trimesh -> ImportError
    with pytest.raises(DataError, match="pip install trimesh"):
        MeshFolder(str(tmp_path)).read_item(path)


def test_problems_of_a_good_folder_is_empty_and_writes_nothing(tmp_path: Path, cache: Path) -> None:
    root = flat_folder(tmp_path / "meshes", {"box": 2, "sphere": 2}, ext=".glb")
    before = snapshot(root)
    assert MeshFolder(str(root), num_points=P).problems(progress=False) == []
    assert not cache.exists() and snapshot(root) == before


# ---------------------------------------------------------------------- detection


def test_detect_finds_every_layout_and_nothing_else(tmp_path: Path) -> None:
    flat = flat_folder(tmp_path / "flat", {"box": 1})
    write(tmp_path / "cls" / "box" / "train" / "a.stl", shape("box"))
    write(tmp_path / "top" / "train" / "box" / "a.ply", shape("box"))
    for name in ("flat", "cls", "top"):
        found = MeshFolder.detect(tmp_path / name)
        assert len(found) == 1 and isinstance(found[0], MeshFolder) and found[0].root == tmp_path / name
    assert found[0].describe() == "MeshFolder(2048 points)" and flat.is_dir()
    (tmp_path / "none" / "docs").mkdir(parents=True)
    (tmp_path / "none" / "docs" / "a.txt").write_text("x")
    write(tmp_path / "none" / "loose.obj", shape("box"))  # no class folder
    write(tmp_path / "none" / "docs" / "deep" / "deeper" / "a.obj", shape("box"))  # too deep
    assert MeshFolder.detect(tmp_path / "none") == []
    assert MeshFolder.detect(tmp_path / "missing") == []
