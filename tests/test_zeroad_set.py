"""The 0 A.D. real-mesh set: the PMD reader on hand-packed files, and the builder on a tiny fake public.zip."""

from __future__ import annotations

import hashlib
import json
import math
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from benchmarks import real_meshes_0ad as zeroad
from benchmarks.pmd import read_pmd
from datamodules.errors import DataError

TETRA_VERTICES = [(0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, 2.0, 0.0), (0.0, 0.0, 3.0)]
TETRA_FACES = [(0, 1, 2), (0, 1, 3), (0, 2, 3), (1, 2, 3)]


def pack_pmd(
    vertices: list[tuple[float, float, float]],
    faces: list[tuple[int, int, int]],
    version: int = 4,
    uv_sets: int = 1,
    bones: int = 0,
    prop_points: tuple[str, ...] = (),
    magic: bytes = b"PSMD",
    size_delta: int = 0,
    claimed_vertices: int | None = None,
) -> bytes:
    """A PMD file written field by field, independently of the reader (``size_delta`` falsifies the size)."""
    body = struct.pack("<I", len(vertices) if claimed_vertices is None else claimed_vertices)
    if version >= 4:
        body += struct.pack("<I", uv_sets)
    for i, (x, y, z) in enumerate(vertices):
        body += struct.pack("<3f", x, y, z)  # position
        body += struct.pack("<3f", 0.0, 1.0, 0.0)  # normal
        body += struct.pack(f"<{2 * uv_sets}f", *([0.25 * i] * (2 * uv_sets)))  # UVs
        body += struct.pack("<4B", 0xFF, 0xFF, 0xFF, 0xFF)  # blend bones: none
        body += struct.pack("<4f", 0.0, 0.0, 0.0, 0.0)  # blend weights
    body += struct.pack("<I", len(faces))
    for face in faces:
        body += struct.pack("<3H", *face)
    body += struct.pack("<I", bones) + struct.pack("<7f", 0, 0, 0, 0, 0, 0, 1) * bones
    if version >= 2:
        body += struct.pack("<I", len(prop_points))
        for name in prop_points:
            body += struct.pack("<I", len(name)) + name.encode() + struct.pack("<7f", 0, 0, 0, 0, 0, 0, 1) + b"\xff"
    return magic + struct.pack("<II", version, len(body) + size_delta) + body


# ------------------------------------------------------------------------------- reader
@pytest.mark.parametrize(
    ("version", "uv_sets", "bones", "props"),
    [(4, 1, 0, ()), (4, 2, 2, ("loaded-projectile",)), (3, 1, 1, ("head", "shield")), (2, 1, 0, ("a",)), (1, 1, 0, ())],
)
def test_read_pmd_returns_the_packed_tetrahedron(
    version: int, uv_sets: int, bones: int, props: tuple[str, ...]
) -> None:
    data = pack_pmd(TETRA_VERTICES, TETRA_FACES, version, uv_sets, bones, props)
    vertices, faces = read_pmd(data, "tetra.pmd")
    assert vertices.dtype == np.float64 and vertices.shape == (4, 3)
    assert faces.dtype == np.int64 and faces.shape == (4, 3)
    assert vertices.tolist() == [list(v) for v in TETRA_VERTICES]
    assert faces.tolist() == [list(f) for f in TETRA_FACES]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (pack_pmd(TETRA_VERTICES, TETRA_FACES, magic=b"PSMX"), "magic b'PSMX'"),
        (pack_pmd(TETRA_VERTICES, TETRA_FACES, version=5), "unknown PMD version 5"),
        (pack_pmd(TETRA_VERTICES, TETRA_FACES, size_delta=4), "header says"),
        (pack_pmd(TETRA_VERTICES, TETRA_FACES)[:-3], "header says"),
        (pack_pmd(TETRA_VERTICES, TETRA_FACES, claimed_vertices=40), "truncated in the vertices"),
        (pack_pmd(TETRA_VERTICES, [(0, 1, 2), (1, 2, 4)]), "face index 4 outside the 4 vertices"),
        (b"PSMD\x04\x00", "shorter than the 12-byte header"),
    ],
    ids=["magic", "version", "size", "cut", "truncated", "index", "short"],
)
def test_read_pmd_rejects_malformed_files_naming_them(data: bytes, message: str) -> None:
    with pytest.raises(DataError, match="art/meshes/x.dae.cached.pmd") as err:
        read_pmd(data, "art/meshes/x.dae.cached.pmd")
    assert message in str(err.value)


# ------------------------------------------------------------------------------- table
def test_the_table_maps_real_names_as_intended() -> None:
    names = [
        "structural/brit_house_01",
        "structural/kart_house_a_foundation",  # in no class
        "structural/kart_wall_long_b_foundation",
        "structural/pers_ice_house_01",
        "structural/athen_temple_struct",
        "structural/hele_temple_a_base",
        "structural/ptol_ship_bireme",
        "structural/ptol_ship_bireme_sail",
        "structural/han_ship_tower",
        "structural/kart_wall_tower",
        "props/shield/props/boss_a_1",
        "props/helmet/head_philip",
        "props/helmet/hele_corinthian_a",
        "gaia/oak_holly_1",
        "gaia/oak_holly_1_dead",
        "gaia/tree_dead_a_1",
        "gaia/palm_dead_1",
        "gaia/mushrooms/tall_agaric_01",
        "skeletal/horse",
    ]
    sources, excluded = zeroad.select(names)
    assert {s.rel: s.label for s in sources} == {
        "structural/brit_house_01": "house",
        "structural/athen_temple_struct": "temple",
        "structural/ptol_ship_bireme": "ship",
        "structural/kart_wall_tower": "tower",
        "props/helmet/hele_corinthian_a": "helmet",
        "gaia/oak_holly_1": "broadleaf",
        "gaia/tree_dead_a_1": "dead_tree",
        "gaia/mushrooms/tall_agaric_01": "mushroom",
    }
    assert sorted(excluded) == sorted(
        [
            "structural/kart_wall_long_b_foundation",
            "structural/pers_ice_house_01",
            "structural/hele_temple_a_base",
            "structural/ptol_ship_bireme_sail",
            "structural/han_ship_tower",
            "props/shield/props/boss_a_1",
            "props/helmet/head_philip",
            "gaia/oak_holly_1_dead",
            "gaia/palm_dead_1",
        ]
    )


def test_a_name_in_two_classes_is_an_error() -> None:
    with pytest.raises(DataError, match="matched by both .a. and .b. in the class table"):
        zeroad.select(["props/thing"], {"a": ("props/*",), "b": ("*/thing",)}, {})


# ------------------------------------------------------------------------------- builder
def prism(sides: int, height: float) -> tuple[list[tuple[float, float, float]], list[tuple[int, int, int]]]:
    """A closed ``sides``-gon prism of radius 1: 2 * sides + 2 vertices, 4 * sides triangles."""
    ring = [(math.cos(2 * math.pi * k / sides), math.sin(2 * math.pi * k / sides)) for k in range(sides)]
    vertices = [(x, 0.0, z) for x, z in ring] + [(x, height, z) for x, z in ring] + [(0, 0, 0), (0, height, 0)]
    faces = []
    for k in range(sides):
        n = (k + 1) % sides
        faces += [(k, n, sides + n), (k, sides + n, sides + k)]  # side quad
        faces += [(2 * sides, n, k), (2 * sides + 1, sides + k, sides + n)]  # bottom and top fans
    return vertices, faces


def cone(sides: int, height: float) -> tuple[list[tuple[float, float, float]], list[tuple[int, int, int]]]:
    """A closed ``sides``-gon cone of radius 1: sides + 2 vertices, 2 * sides triangles."""
    ring = [(math.cos(2 * math.pi * k / sides), 0.0, math.sin(2 * math.pi * k / sides)) for k in range(sides)]
    vertices = ring + [(0.0, height, 0.0), (0.0, 0.0, 0.0)]
    faces = []
    for k in range(sides):
        n = (k + 1) % sides
        faces += [(k, n, sides), (sides + 1, n, k)]
    return vertices, faces


TABLE = {
    "prism": ("props/prism_*",),
    "cone": ("gaia/cones/*",),
    "plank": ("structural/plank_*",),
}
EXCLUDED = {"props/prism_*_roof": "a part"}


def fake_zip(folder: Path) -> tuple[Path, dict[str, bytes]]:
    """A public.zip with 6 distinct prisms, an exact and a near duplicate of one, 5 cones, 2 planks, and misfits."""
    members: dict[str, bytes] = {}
    for k, height in enumerate((0.5, 1.0, 2.0, 4.0, 8.0, 16.0)):
        members[f"props/prism_{k}"] = pack_pmd(*prism(12, height))
    members["props/prism_copy"] = members["props/prism_2"]
    jittered, faces = prism(12, 2.0)
    rng = np.random.default_rng(0)
    members["props/prism_near"] = pack_pmd([tuple(v + rng.uniform(-2e-3, 2e-3, 3)) for v in np.array(jittered)], faces)
    members["props/prism_a_roof"] = pack_pmd(*prism(12, 3.0))
    for k, height in enumerate((0.5, 1.0, 2.0, 4.0, 8.0)):
        members[f"gaia/cones/cone_{k}"] = pack_pmd(*cone(12, height))
    members["structural/plank_0"] = pack_pmd(*prism(12, 0.1))
    members["structural/plank_1"] = pack_pmd(*prism(12, 0.2))
    members["gaia/cones/cone_tetra"] = pack_pmd(TETRA_VERTICES, TETRA_FACES)  # 4 triangles: degenerate
    members["gaia/cones/cone_broken"] = b"PSMX" + pack_pmd(*cone(12, 3.0))[4:]
    members["skeletal/horse"] = pack_pmd(*cone(12, 3.0))  # in no class
    path = folder / "public.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("art/textures/skins/horse.png", b"not a mesh")
        for name, data in members.items():
            archive.writestr(f"art/meshes/{name}.dae.cached.pmd", data)
    return path, members


def build_fake(tmp_path: Path, root: Path, force: bool = False) -> Path:
    """The builder on the fake archive and table, 4 models per class at least."""
    return zeroad.build(
        root, force=force, min_per_class=4, verbose=False, zip_path=tmp_path / "public.zip", classes=TABLE,
        excluded=EXCLUDED,
    )


def test_build_on_a_fake_archive(tmp_path: Path) -> None:
    _, members = fake_zip(tmp_path)
    root = build_fake(tmp_path, tmp_path / "set")
    counts = {
        (split, label): sorted(p.stem for p in (root / split / label).glob("*.obj"))
        for split in ("train", "test")
        for label in ("prism", "cone")
    }
    # 6 prisms: max(3, round(1.8)) = 3 test; 5 cones: max(3, round(1.5)) = 3 test
    assert [len(counts[s, "prism"]) for s in ("train", "test")] == [3, 3]
    assert [len(counts[s, "cone"]) for s in ("train", "test")] == [2, 3]
    assert sorted(counts["train", "prism"] + counts["test", "prism"]) == [f"props-prism_{k}" for k in range(6)]
    assert sorted(counts["train", "cone"] + counts["test", "cone"]) == [f"gaia-cones-cone_{k}" for k in range(5)]
    assert not (root / "train" / "plank").exists() and not (root / "test" / "plank").exists()

    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["package"] == "0ad-data" and manifest["layout_version"] == zeroad.LAYOUT_VERSION
    assert manifest["min_per_class"] == 4 and manifest["test_fraction"] == 0.3
    assert manifest["dropped_classes"] == {"plank": 2}
    assert manifest["duplicates"] == {"props/prism_copy": "props/prism_2", "props/prism_near": "props/prism_2"}
    assert manifest["excluded"] == {"props/prism_a_roof": "a part"}
    assert sorted(manifest["skipped"]) == ["gaia/cones/cone_broken", "gaia/cones/cone_tetra"]
    assert "4 triangles (fewer than 24)" in manifest["skipped"]["gaia/cones/cone_tetra"]
    assert "magic b'PSMX'" in manifest["skipped"]["gaia/cones/cone_broken"]
    assert manifest["classes"]["cone"]["test"] == counts["test", "cone"]
    entry = manifest["files"]["train/prism/" + counts["train", "prism"][0] + ".obj"]
    assert entry["sha256"] == hashlib.sha256(members[entry["source"]]).hexdigest() and entry["triangles"] == 48

    obj = (root / "test" / "cone" / (counts["test", "cone"][0] + ".obj")).read_text().splitlines()
    assert obj[0].startswith("# 0ad-data: gaia/cones/cone_")
    assert sum(line.startswith("v ") for line in obj) == 14 and sum(line.startswith("f ") for line in obj) == 24


def test_a_second_run_leaves_the_set_and_force_rebuilds_it(tmp_path: Path) -> None:
    fake_zip(tmp_path)
    root = build_fake(tmp_path, tmp_path / "set")
    first = json.loads((root / "manifest.json").read_text())
    (root / "marker").write_text("still here")
    assert build_fake(tmp_path, tmp_path / "set") == root
    assert (root / "marker").exists()
    assert build_fake(tmp_path, tmp_path / "set", force=True) == root
    assert not (root / "marker").exists()
    assert json.loads((root / "manifest.json").read_text())["classes"] == first["classes"]  # the same split


def test_a_foreign_folder_is_not_replaced(tmp_path: Path) -> None:
    fake_zip(tmp_path)
    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "mine.txt").write_text("user data")
    with pytest.raises(DataError, match="has no manifest.json of 0ad-data"):
        build_fake(tmp_path, tmp_path / "set", force=True)
    assert (tmp_path / "set" / "mine.txt").read_text() == "user data"


def test_a_missing_archive_names_the_package(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(DataError) as err:
        build_fake(tmp_path, tmp_path / "set")
    assert "0ad-data" in str(err.value) and "apt-get install -y 0ad-data" in str(err.value)
    assert not (tmp_path / "set").exists()
    assert zeroad.main(["--out", str(tmp_path / "set"), "--zip", str(tmp_path / "none.zip")]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "apt-get install -y 0ad-data" in lines[0]


def test_zeroad_is_a_set_of_the_benchmarks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks import finetune_recipe

    monkeypatch.setattr(zeroad, "build", lambda: tmp_path / "zeroad")
    root = str(tmp_path / "zeroad")
    expected = {"class_path": "datamodules.MeshFolder", "init_args": {"root": root, "num_points": 2048}}
    flag, value = finetune_recipe.dataset_args("zeroad")
    assert flag == "--data.dataset" and json.loads(value) == expected
    assert finetune_recipe.dataset_args("synthetic") == []
