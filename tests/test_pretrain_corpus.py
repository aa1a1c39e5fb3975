"""The KiCad pretraining corpus builder on tiny VRML fixtures in KiCad's layout (no package needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import pretrain_corpus as pc
from benchmarks.cloud_dedup import Deduplicator, cloud_distance
from benchmarks.vrml import fan_triangles, parse_vrml, triangle_areas
from datamodules.errors import DataError

HEADER = "#VRML V2.0 utf8\n#kicad StepUp wrl exported\n"
MATERIAL = "Shape {\n appearance Appearance {material DEF PIN-01 Material {\n diffuseColor 0.8 0.8 0.8\n }\n }\n}\n"

CUBE_POINTS = [(x, y, z) for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)]
"""Corner i has x = bit 2, y = bit 1, z = bit 0 of i."""
CUBE_QUADS = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]


def shape(points: list[tuple[float, ...]], faces: list[tuple[int, ...]], scale: float = 1.0,
          shift: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> str:
    """One StepUp-style Shape (coordIndex before coord, comma-separated points)."""
    index = ",".join(",".join(map(str, f)) + ",-1" for f in faces)
    coords = ",".join(" ".join(f"{scale * p[k] + shift[k]:g}" for k in range(3)) for p in points)
    return (f"Shape {{ geometry IndexedFaceSet \n{{ creaseAngle 0.50 coordIndex [{index}]\n"
            f"coord Coordinate {{ point [{coords}]\n}}}}\nappearance Appearance{{material USE PIN-01 }}\n}}\n")


def write(root: Path, library: str, name: str, body: str) -> Path:
    """``<root>/<library>.3dshapes/<name>.wrl``."""
    path = root / f"{library}.3dshapes" / f"{name}.wrl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + MATERIAL + body)
    return path


def test_cube_parses_to_12_triangles_of_area_6(tmp_path: Path) -> None:
    vertices, faces = parse_vrml(write(tmp_path, "Lib", "cube", shape(CUBE_POINTS, CUBE_QUADS)))
    assert vertices.shape == (8, 3) and faces.shape == (12, 3)
    assert triangle_areas(vertices, faces).sum() == pytest.approx(6.0)
    assert np.allclose(triangle_areas(vertices, faces), 0.5)  # every quad is two right triangles of legs 1


def test_pentagon_fan() -> None:
    assert fan_triangles(np.array([0, 1, 2, 3, 4, -1])).tolist() == [[0, 1, 2], [0, 2, 3], [0, 3, 4]]
    # a triangle then an unterminated quad; a two-corner "polygon" gives nothing
    assert fan_triangles(np.array([5, 6, 7, -1, 8, 9, -1, 1, 2, 3, 4])).tolist() == [[5, 6, 7], [1, 2, 3], [1, 3, 4]]


def test_pentagon_area(tmp_path: Path) -> None:
    # a 2 x 1 rectangle with a roof of apex (1, 2): area 2 + 1
    pentagon = [(0, 0, 0), (2, 0, 0), (2, 1, 0), (1, 2, 0), (0, 1, 0)]
    vertices, faces = parse_vrml(write(tmp_path, "Lib", "pentagon", shape(pentagon, [(0, 1, 2, 3, 4)])))
    assert len(faces) == 3
    assert triangle_areas(vertices, faces).sum() == pytest.approx(3.0)


def test_two_shapes_are_offset(tmp_path: Path) -> None:
    body = shape(CUBE_POINTS, CUBE_QUADS) + shape(CUBE_POINTS, CUBE_QUADS, shift=(3.0, 0.0, 0.0))
    vertices, faces = parse_vrml(write(tmp_path, "Lib", "two", body))
    assert vertices.shape == (16, 3) and faces.shape == (24, 3)
    assert faces[:12].max() == 7 and faces[12:].min() == 8
    assert vertices[faces[12:]][..., 0].min() == pytest.approx(2.5)
    assert triangle_areas(vertices, faces).sum() == pytest.approx(12.0)


@pytest.mark.parametrize("body, reason", [
    (shape(CUBE_POINTS, [(0, 1, 9)]), "refers to vertex 9 of 8"),
    ("Transform { children [ " + shape(CUBE_POINTS, CUBE_QUADS) + " ] }", "Transform is not supported"),
    ("Shape { geometry IndexedFaceSet { coord USE o1 coordIndex [0,1,2,-1] } }", "DEF/USE"),
    ("Shape { geometry IndexedFaceSet { coordIndex [0,1,2,-1] coord Coordinate { point [0 0 x] } } }", "not a number"),
])
def test_unreadable_files_raise(tmp_path: Path, body: str, reason: str) -> None:
    with pytest.raises(DataError, match=reason):
        parse_vrml(write(tmp_path, "Lib", "bad", body))


def test_sampled_points_lie_on_the_cube(tmp_path: Path) -> None:
    write(tmp_path, "Lib", "cube", shape(CUBE_POINTS, CUBE_QUADS))
    item = pc.sample_model(tmp_path, "Lib.3dshapes/cube.wrl")
    assert item.reason is None and item.cloud is not None
    assert item.cloud.shape == (2048, 3) and item.cloud.dtype == np.float32
    largest = np.abs(item.cloud).max(axis=1)
    assert np.allclose(largest, 0.5, atol=1e-6)  # on a face: one coordinate is +-0.5
    assert (np.abs(item.cloud) <= 0.5 + 1e-6).all()  # and none outside
    axis = np.argmax(np.abs(item.cloud), axis=1)
    face = 2 * axis + (item.cloud[np.arange(2048), axis] > 0)  # which of the six faces
    assert np.bincount(face, minlength=6).min() > 2048 / 6 * 0.7  # six faces of equal area, drawn evenly


def test_kicad_z_up_becomes_y_up(tmp_path: Path) -> None:
    # A box standing on the board: x in [-0.5, 0.5], y in [0, 1], z (KiCad's up) in [0, 3].
    box = [(x, y, z) for x in (-0.5, 0.5) for y in (0.0, 1.0) for z in (0.0, 3.0)]
    write(tmp_path, "Lib", "tall", shape(box, CUBE_QUADS))
    cloud = pc.sample_model(tmp_path, "Lib.3dshapes/tall.wrl").cloud
    # (x, y, z) -> (x, z, -y): the height is the new y, the old y the new -z.
    assert np.allclose(cloud.min(axis=0), [-0.5, 0.0, -1.0], atol=1e-5)
    assert np.allclose(cloud.max(axis=0), [0.5, 3.0, 0.0], atol=1e-5)
    assert np.linalg.det(pc.Z_UP_TO_Y_UP) == pytest.approx(1.0)  # a rotation, not a mirror


def test_an_older_layout_is_refused_until_forced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    models = library(tmp_path)
    monkeypatch.setattr(pc, "write_synthetic", lambda folder, progress=True: _fake_synthetic(folder))
    folders = pc.build(tmp_path / "corpora", models_dir=models, progress=False, verbose=False)
    manifest_path = folders["kicad"] / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "layout_version": 1}))
    with pytest.raises(DataError, match=r"kicad: built with layout 1 of this script, not 2; --force rebuilds it"):
        pc.build(tmp_path / "corpora", models_dir=models, progress=False, verbose=False)
    pc.build(tmp_path / "corpora", force=True, models_dir=models, progress=False, verbose=False)
    assert json.loads(manifest_path.read_text())["layout_version"] == 2


def test_sampling_is_deterministic_and_seeded_by_path(tmp_path: Path) -> None:
    write(tmp_path, "Lib", "cube", shape(CUBE_POINTS, CUBE_QUADS))
    write(tmp_path, "Lib", "cube2", shape(CUBE_POINTS, CUBE_QUADS))
    first = pc.sample_model(tmp_path, "Lib.3dshapes/cube.wrl").cloud
    again = pc.sample_model(tmp_path, "Lib.3dshapes/cube.wrl").cloud
    other = pc.sample_model(tmp_path, "Lib.3dshapes/cube2.wrl").cloud
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_skipped_files_have_reasons(tmp_path: Path) -> None:
    write(tmp_path, "Lib", "broken", shape(CUBE_POINTS, [(0, 1, 9)]))
    write(tmp_path, "Lib", "empty", "")
    write(tmp_path, "Lib", "few", shape(CUBE_POINTS, CUBE_QUADS[:3]))  # 6 triangles
    write(tmp_path, "Lib", "flat", shape([(0, 0, 0), (1, 0, 0), (2, 0, 0), (3, 0, 0)], [(0, 1, 2, 3)] * 4))
    reasons = {name: pc.sample_model(tmp_path, f"Lib.3dshapes/{name}.wrl").reason
               for name in ("broken", "empty", "few", "flat")}
    assert "vertex 9 of 8" in reasons["broken"]
    assert reasons["empty"] == "empty: no faces"
    assert reasons["few"] == "6 triangles (fewer than 8)"
    assert reasons["flat"] == "degenerate: surface area 0.0"


def library(tmp_path: Path) -> Path:
    """One library: a cube, its byte copy, a scaled and shifted cube, a 1 x 1 x 4 box; another library's cube."""
    models = tmp_path / "models"
    cube = shape(CUBE_POINTS, CUBE_QUADS)
    write(models, "Lib", "a_cube", cube)
    write(models, "Lib", "b_copy", cube)
    write(models, "Lib", "c_scaled", shape(CUBE_POINTS, CUBE_QUADS, scale=3.0, shift=(10.0, -2.0, 1.0)))
    box = [(x, y, 4 * z) for x, y, z in CUBE_POINTS]
    write(models, "Lib", "d_box", shape(box, CUBE_QUADS))
    write(models, "Lib", "e_broken", shape(CUBE_POINTS, [(0, 1, 9)]))
    write(models, "Other", "cube", cube)
    return models


def test_duplicates_dropped_within_a_library(tmp_path: Path) -> None:
    models = library(tmp_path)
    manifest = pc.write_kicad(tmp_path / "out", models, workers=1, max_per_library=None, progress=False)
    assert sorted(manifest["files"]) == ["Lib/a_cube.npy", "Lib/d_box.npy", "Other/cube.npy"]
    copy = manifest["duplicates"]["Lib.3dshapes/b_copy.wrl"]
    assert copy == {"kept": "Lib.3dshapes/a_cube.wrl", "distance_over_noise": 0.0}  # same bytes
    assert manifest["duplicates"]["Lib.3dshapes/c_scaled.wrl"]["kept"] == "Lib.3dshapes/a_cube.wrl"
    assert list(manifest["skipped"]) == ["Lib.3dshapes/e_broken.wrl"]
    assert manifest["counts"] == {"files": 6, "skipped": 1, "duplicates": 2, "capped": 0, "kept": 3}
    assert manifest["per_library"]["Lib"] == {"files": 5, "skipped": 1, "duplicates": 2, "capped": 0, "kept": 2}
    assert np.load(tmp_path / "out" / "Lib" / "d_box.npy").shape == (2048, 3)


def test_cap_per_library(tmp_path: Path) -> None:
    models = library(tmp_path)
    manifest = pc.write_kicad(tmp_path / "out", models, workers=1, max_per_library=1, progress=False)
    assert manifest["per_library"]["Lib"]["capped"] == 1 and manifest["per_library"]["Lib"]["kept"] == 1
    assert len(list((tmp_path / "out" / "Lib").glob("*.npy"))) == 1


def test_build_is_atomic_and_not_repeated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    models = library(tmp_path)
    synthetic = lambda folder, progress=True: _fake_synthetic(folder)  # noqa: E731
    monkeypatch.setattr(pc, "write_synthetic", synthetic)
    folders = pc.build(tmp_path / "corpora", models_dir=models, progress=False, verbose=False)
    assert sorted(p.name for p in (tmp_path / "corpora").iterdir()) == ["kicad", "mixed", "synthetic"]  # no temporaries
    mixed = folders["mixed"]
    linked = (mixed / "kicad" / "Lib" / "a_cube.npy").stat()
    assert linked.st_ino == (folders["kicad"] / "Lib" / "a_cube.npy").stat().st_ino and linked.st_nlink == 2
    assert (mixed / "synthetic" / "cup" / "00000.npy").is_file()
    manifest = json.loads((mixed / "manifest.json").read_text())
    assert manifest["counts"] == {"kept": 4, "kicad": 3, "synthetic": 1}
    stamp = (folders["kicad"] / "manifest.json").stat().st_mtime_ns
    (folders["kicad"] / "Lib" / "a_cube.npy").unlink()  # a rebuild would bring it back
    pc.build(tmp_path / "corpora", models_dir=models, progress=False, verbose=False)
    assert (folders["kicad"] / "manifest.json").stat().st_mtime_ns == stamp
    assert not (folders["kicad"] / "Lib" / "a_cube.npy").exists()
    pc.build(tmp_path / "corpora", force=True, models_dir=models, progress=False, verbose=False)
    assert (folders["kicad"] / "Lib" / "a_cube.npy").is_file()


def test_failed_build_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    models = library(tmp_path)

    def fail(folder: Path, progress: bool = True) -> dict:
        (folder / "cup").mkdir()
        raise RuntimeError("interrupted")

    monkeypatch.setattr(pc, "write_synthetic", fail)
    with pytest.raises(RuntimeError):
        pc.build(tmp_path / "corpora", models_dir=models, progress=False, verbose=False)
    assert sorted(p.name for p in (tmp_path / "corpora").iterdir()) == ["kicad"]


def test_refuses_a_foreign_folder(tmp_path: Path) -> None:
    models = library(tmp_path)
    (tmp_path / "corpora" / "kicad").mkdir(parents=True)
    (tmp_path / "corpora" / "kicad" / "mine.txt").write_text("not ours")
    with pytest.raises(DataError, match="not replacing it"):
        pc.build(tmp_path / "corpora", models_dir=models, progress=False, verbose=False)


def _fake_synthetic(folder: Path) -> dict:
    """A one-cloud stand-in for the synthetic export (the real one generates 2,800 shapes)."""
    (folder / "cup").mkdir()
    np.save(folder / "cup" / "00000.npy", np.zeros((2048, 3), dtype=np.float32))
    return {"corpus": "synthetic", "counts": {"kept": 1}, "layout_version": pc.LAYOUT_VERSION}


def test_cloud_distance_by_hand() -> None:
    # one point each, 5 apart (3-4-5): both directions give 5
    assert cloud_distance(np.zeros((1, 3)), np.array([[3.0, 4.0, 0.0]])) == pytest.approx(5.0)
    # a -> b: 0 and 1 (mean 0.5); b -> a: 0 (mean 0); symmetric mean 0.25
    a = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    assert cloud_distance(a, a[:1]) == pytest.approx(0.25)


def test_deduplicator_groups_and_digests() -> None:
    rng = np.random.default_rng(0)
    cloud = rng.normal(size=(256, 3))
    dedup = Deduplicator()
    assert dedup.match("A", "first", "d1", cloud, noise=0.1) is None
    assert dedup.match("B", "other library", "d1", cloud, noise=0.1) is None  # libraries are separate
    assert dedup.match("A", "same bytes", "d1", cloud + 5.0, noise=0.1) == ("first", 0.0)
    shifted = dedup.match("A", "scaled copy", "d2", 2.0 * cloud + 1.0, noise=0.1)
    assert shifted is not None and shifted[0] == "first" and shifted[1] < 1e-6  # the same unit-sphere cloud
    flat = cloud * np.array([1.0, 1.0, 0.01])  # another bounding box: never compared, kept
    assert dedup.match("A", "flat", "d3", flat, noise=10.0) is None


def test_point_folder_reads_the_corpus(tmp_path: Path) -> None:
    from datamodules import PointFolder

    pc.write_kicad(tmp_path / "out", library(tmp_path), workers=1, max_per_library=None, progress=False)
    (tmp_path / "out" / "manifest.json").write_text("{}")  # beside the clouds, as build writes it
    data = PointFolder(str(tmp_path / "out"), test_fraction=0.001)
    assert data.class_names() == ["Lib", "Other"]
    items = data.items("train") + data.items("test")
    names = sorted(p.relative_to(tmp_path / "out").as_posix() for p, _ in items)
    assert names == ["Lib/a_cube.npy", "Lib/d_box.npy", "Other/cube.npy"]
    assert len(data.items("test")) == 1  # Lib's two files: one held out even at 0.001; Other's single file trains
    cloud = data.read_item(tmp_path / "out" / "Other" / "cube.npy")  # centred, farthest point at radius 1
    assert cloud.shape == (2048, 3) and np.linalg.norm(cloud, axis=1).max() == pytest.approx(1.0, abs=1e-6)


def test_workers_give_the_same_corpus(tmp_path: Path) -> None:
    models = library(tmp_path)
    one = pc.write_kicad(tmp_path / "one", models, workers=1, max_per_library=None, progress=False)
    two = pc.write_kicad(tmp_path / "two", models, workers=2, max_per_library=None, progress=False)
    assert one["files"] == two["files"] and one["duplicates"] == two["duplicates"]
    for rel in one["files"]:
        assert np.array_equal(np.load(tmp_path / "one" / rel), np.load(tmp_path / "two" / rel))
