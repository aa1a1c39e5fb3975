"""ShapeNetPart's release layout: reading, packing once, resampling, reduced synset files, bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_modules.commands.data import main as data_main
from datamodules.detect import detect_datasets
from datamodules.errors import DataError
from datamodules.part_dataset import PartShapes, collate_parts
from datamodules.formats.shapenet_part import ShapeNetPart
from tests.layouts import SHAPENETPART_FIXTURE_PARTS, write_shapenet_part

PER_SPLIT = {"train": 3, "val": 1, "test": 2}


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("POINTDWC_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture()
def release(tmp_path, cache) -> Path:
    folder = tmp_path / "shapenetcore_partanno_segmentation_benchmark_v0_normal"
    return write_shapenet_part(folder, PER_SPLIT, np.random.default_rng(0))


def _rows(root: Path, name: str) -> np.ndarray:
    _, synset, token = name.split("/")
    return np.loadtxt(root / synset / f"{token}.txt")


def _snapshot(root: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*")}


def test_reads_every_original_point_normalised_with_global_part_ids(release) -> None:
    before = _snapshot(release)
    data = ShapeNetPart(str(release))
    table = data.table()
    assert table.num_categories == 16 and table.num_parts == 50
    assert table.categories[4] == "Chair" and table.part_ids[4] == (12, 13, 14, 15)
    names = json.loads((release / "train_test_split" / "shuffled_train_file_list.json").read_text())
    train = data.part_split("train")
    assert len(train) == 3 * len(SHAPENETPART_FIXTURE_PARTS) and train.names == names
    for i, name in enumerate(names):
        shape, rows = train.shape(i), _rows(release, name)
        centred = rows[:, :3] - rows[:, :3].mean(0)
        np.testing.assert_allclose(shape.points, centred / np.linalg.norm(centred, axis=1).max(), atol=1e-5)
        np.testing.assert_allclose(shape.normals, rows[:, 3:6], atol=1e-6)
        assert np.array_equal(shape.parts, rows[:, 6].astype(np.int64))
        assert table.synsets[shape.category] == name.split("/")[1]
    assert _snapshot(release) == before  # nothing written into the data folder


def test_packed_once_and_again_when_a_file_changes(release) -> None:
    path = ShapeNetPart(str(release)).prepare(progress=False)
    stamp = (path / "meta.json").stat().st_mtime_ns
    assert ShapeNetPart(str(release)).prepare(progress=False) == path
    assert (path / "meta.json").stat().st_mtime_ns == stamp
    name = ShapeNetPart(str(release)).part_split("test").names[0]
    _, synset, token = name.split("/")
    shape_file = release / synset / f"{token}.txt"
    shape_file.write_text(shape_file.read_text().replace("\n", "\n", 1))
    os.utime(shape_file, ns=(stamp + 10**9, stamp + 10**9))
    assert ShapeNetPart(str(release)).prepare(progress=False) != path


def test_a_reduced_synset_file_selects_its_categories_in_its_line_order(tmp_path, cache) -> None:
    listed = [("Chair", "03001627"), ("Airplane", "02691156")]
    root = write_shapenet_part(tmp_path / "reduced", PER_SPLIT, np.random.default_rng(1), listed=listed)
    data = ShapeNetPart(str(root))
    table = data.table()
    assert table.categories == ("Chair", "Airplane") and table.part_ids == ((12, 13, 14, 15), (0, 1, 2, 3))
    assert table.num_parts == 50  # ids stay global
    test = data.part_split("test")
    assert len(test) == 2 * PER_SPLIT["test"]  # the Bag shapes of the lists are skipped
    for i in range(len(test)):
        shape = test.shape(i)
        assert set(shape.parts.tolist()) == set(table.part_ids[shape.category])
        assert shape.name.split("/")[1] == table.synsets[shape.category]
    loaded = data.load("train")
    assert loaded.class_names == ["Chair", "Airplane"] and sorted(set(loaded.labels.tolist())) == [0, 1]


def test_resampling_fixed_random_and_every_point(release) -> None:
    data = ShapeNetPart(str(release))
    test = data.part_split("test")
    loaded = data.load("test")
    assert loaded.points.shape == (len(test), 2048, 3)
    assert np.array_equal(loaded.points[1], ShapeNetPart(str(release)).load("test").points[1])  # fixed draw
    assert np.array_equal(loaded.points[0:2, :5], loaded.points[np.array([0, 1])][:, :5])
    fixed = PartShapes([test], 2048, "fixed")
    for i in range(len(test)):
        sample, shape = fixed[i], test.shape(i)
        assert torch.equal(sample["points"], torch.from_numpy(loaded.points[i]))
        # every resampled point is an original point of the shape, with that point's label
        same = (sample["points"][:, None] == torch.from_numpy(shape.points)[None]).all(-1)
        assert same.any(1).all()
        assert torch.equal(sample["parts"], torch.from_numpy(shape.parts)[same.int().argmax(1)])
        assert sample["category"] == shape.category and sample["index"] == i
    random = PartShapes([test], 512, "random", seed=3)
    first = random[0]["points"]
    assert torch.equal(first, random[0]["points"])
    random.set_epoch(1)
    assert not torch.equal(first, random[0]["points"])
    every = PartShapes([test], None)
    batch = collate_parts([every[0], every[1]])
    counts = np.array([len(_rows(release, name)) for name in test.names])  # the release files' rows
    assert batch["points"].shape == (2, counts[:2].max(), 3) and batch["mask"].sum(1).tolist() == counts[:2].tolist()
    assert torch.equal(batch["parts"][0, : counts[0]], torch.from_numpy(test.shape(0).parts))


def test_train_and_val_together(release) -> None:
    data = ShapeNetPart(str(release))
    train, val = data.part_split("train"), data.part_split("val")
    both = PartShapes([train, val], 256, "random")
    assert len(both) == len(train) + len(val)
    assert both.shape(len(train)).name == val.names[0]


def _first_shape_file(root: Path, split: str = "train") -> Path:
    name = json.loads((root / "train_test_split" / f"shuffled_{split}_file_list.json").read_text())[0]
    _, synset, token = name.split("/")
    return root / synset / f"{token}.txt"


def _set_line(path: Path, number: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n")


def _error(root: Path) -> str:
    with pytest.raises(DataError) as err:
        ShapeNetPart(str(root)).prepare(progress=False)
    return str(err.value)


def test_a_row_without_seven_values_is_named_by_file_and_line(release) -> None:
    path = _first_shape_file(release)
    _set_line(path, 5, "0.1 0.2 0.3 0.0 0.0 1.0")
    assert _error(release) == f"{path}: line 5 has 6 values, expected 7 (x y z nx ny nz part)"


def test_nan_coordinates_are_named_by_file_and_line(release) -> None:
    path = _first_shape_file(release)
    _set_line(path, 7, "nan 0.2 0.3 0.0 0.0 1.0 " + path.read_text().splitlines()[6].split()[-1])
    assert _error(release) == f"{path}: line 7 has NaN or Inf values (x y z nx ny nz part)"


def test_a_part_id_of_another_category_is_named_by_file_and_line(release) -> None:
    path = _first_shape_file(release)
    synset = path.parent.name
    first, count = SHAPENETPART_FIXTURE_PARTS[synset]
    wrong = first + count  # the next category's first part
    _set_line(path, 3, f"0.1 0.2 0.3 0.0 0.0 1.0 {wrong}.000000")
    message = _error(release)
    assert message.startswith(f"{path}: line 3: part id {wrong} is not one of the parts of ")
    assert f"({first}-{first + count - 1})" in message


def test_missing_split_list_unknown_synset_and_missing_shape_file(release) -> None:
    listing = release / "train_test_split" / "shuffled_val_file_list.json"
    saved = listing.read_text()
    listing.unlink()
    assert _error(release) == f"{listing}: missing (the val split list of the ShapeNetPart layout)"
    listing.write_text(json.dumps([*json.loads(saved), "shape_data/12345678/abc"]))
    message = _error(release)
    assert message.startswith(f"{listing}: entry {len(json.loads(saved))} (shape_data/12345678/abc)")
    assert "unknown synset '12345678'" in message
    listing.write_text(saved)
    path = _first_shape_file(release, "test")
    path.unlink()
    name = f"shape_data/{path.parent.name}/{path.stem}"
    listed = release / "train_test_split" / "shuffled_test_file_list.json"
    assert _error(release) == f"{path}: missing, but {listed}: entry 0 lists {name}"


def test_an_unknown_synset_in_the_synset_file_is_named_by_line(tmp_path, cache) -> None:
    root = write_shapenet_part(
        tmp_path / "sp", PER_SPLIT, np.random.default_rng(2), listed=[("Chair", "03001627"), ("Sofa", "04256520")]
    )
    assert _error(root).startswith(f"{root / 'synsetoffset2category.txt'}: line 2: unknown synset '04256520' (Sofa)")


def test_data_check_detects_the_layout_and_reports_categories_points_and_parts(release, cache, capsys) -> None:
    assert [type(d).__name__ for d in detect_datasets(release)] == ["ShapeNetPart"]
    assert data_main(["check", str(release), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "ShapeNetPart(2048 points)" in out and "usable" in out and "NOT usable" not in out
    assert "16 categories: Airplane 0-3, Bag 4-5" in out and "50 part ids" in out
    for split, count in PER_SPLIT.items():
        assert f"{split}: {3 * count} shapes, original points per shape min/median/max" in out
    assert "part ids present 0-5, 12-15" in out
    assert not cache.exists()  # check writes nothing
    _set_line(_first_shape_file(release), 2, "1 2 3")
    _set_line(_first_shape_file(release, "test"), 4, "inf 2 3 0 0 1 0")
    assert data_main(["check", str(release), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "line 2 has 3 values" in out and "line 4 has NaN or Inf" in out and "NOT usable: 2 problem(s)" in out
