"""The embedded part-segmentation set: ShapeNetPart's layout, read by the ShapeNetPart reader, labels consistent."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lightning_modules.commands.data import main as data_main
from datamodules.formats.shapenet_part import ShapeNetPart
from datamodules.synthetic.shapes.part_classes import PART_CLASSES, global_part_ids
from datamodules.synthetic.part_set import SyntheticParts, generate_part_shape, synthetic_synset

COUNTS = {"num_train_per_class": 2, "num_val_per_class": 1, "num_test_per_class": 1}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> SyntheticParts:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POINTDWC_CACHE", str(tmp_path_factory.mktemp("cache")))
        data = SyntheticParts(**COUNTS, min_points=200, max_points=300, seed=4)
        data.prepare(progress=False)
        yield data


def test_the_folder_is_in_shapenetparts_release_layout(generated) -> None:
    root = generated.root
    synsets = [synthetic_synset(name) for name, _ in PART_CLASSES]
    lines = (root / "synsetoffset2category.txt").read_text().splitlines()
    assert lines == [f"{name}\t{synset}" for (name, _), synset in zip(PART_CLASSES, synsets)]
    assert sorted(p.name for p in (root / "train_test_split").iterdir()) == [
        f"shuffled_{split}_file_list.json" for split in ("test", "train", "val")
    ]
    assert {p.name for p in root.iterdir() if p.is_dir()} == {"train_test_split", *synsets}
    for split, per_class in (("train", 2), ("val", 1), ("test", 1)):
        entries = json.loads((root / "train_test_split" / f"shuffled_{split}_file_list.json").read_text())
        assert len(entries) == 16 * per_class
        for entry in entries:
            prefix, synset, token = entry.split("/")
            rows = np.loadtxt(root / synset / f"{token}.txt")
            assert prefix == "shape_data" and rows.shape[1] == 7 and 200 <= len(rows) <= 300
            assert (rows[:, 3:6] == 0).all()  # the synthetic set has no normals


def test_every_point_has_a_part_of_its_class_and_every_part_occurs(generated) -> None:
    """(How often each part occurs is tested on more shapes in test_part_labels.py.)"""
    table = generated.packed_table()
    ids = global_part_ids()
    assert table.categories == tuple(name for name, _ in PART_CLASSES) and table.num_parts == 47
    assert table.part_ids == tuple(tuple(ids[name].values()) for name in table.categories)
    seen: set[int] = set()
    for split in ("train", "val", "test"):
        part_split = generated.part_split(split)
        for i in range(len(part_split)):
            shape = part_split.shape(i)
            assert np.isin(shape.parts, table.part_ids[shape.category]).all()
            seen |= set(shape.parts.tolist())
    assert seen == set(range(47))


def test_the_files_hold_the_generators_clouds_and_labels(generated) -> None:
    entries = json.loads((generated.root / "train_test_split" / "shuffled_val_file_list.json").read_text())
    for i, entry in enumerate(entries[:4]):
        _, synset, token = entry.split("/")
        name = token.split("-")[0]
        assert synset == synthetic_synset(name)
        rng = np.random.default_rng([4, 11, i])  # seed, val split key, index
        count = int(rng.integers(200, 301))
        cloud, parts = generate_part_shape(name, rng, count)
        rows = np.loadtxt(generated.root / synset / f"{token}.txt")
        np.testing.assert_allclose(rows[:, :3], cloud, atol=5e-7)
        assert np.array_equal(rows[:, 6].astype(np.int64), parts)


def test_the_shapenetpart_reader_reads_it_the_same_and_data_check_accepts_it(generated, capsys) -> None:
    plain = ShapeNetPart(str(generated.root))
    a, b = plain.part_split("test"), generated.part_split("test")
    assert a.names == b.names and np.array_equal(a.points, b.points) and np.array_equal(a.parts, b.parts)
    assert data_main(["check", str(generated.root), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "16 categories: airplane 0-3, armchair 4-7" in out and "47 part ids" in out and "usable" in out


def test_generated_once(generated, monkeypatch) -> None:
    monkeypatch.setenv("POINTDWC_CACHE", str(Path(generated.root).parent))
    stamp = (generated.root / "pointdwc_synthetic_parts.json").stat().st_mtime_ns
    again = SyntheticParts(**COUNTS, min_points=200, max_points=300, seed=4)
    assert again.root == generated.root
    again.prepare(progress=False)
    assert (generated.root / "pointdwc_synthetic_parts.json").stat().st_mtime_ns == stamp
