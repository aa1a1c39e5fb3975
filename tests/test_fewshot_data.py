"""Few-shot folds: the released pickles (read exactly, bad ones refused), drawn folds, `data check`."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from lightning_modules.commands.data import main as data_main
from datamodules.detect import detect_datasets
from datamodules.errors import DataError
from datamodules.fewshot_generator import GeneratedFewShot, sample_fold
from datamodules.formats.modelnet_fewshot import ModelNetFewShot
from tests.layouts import write_modelnet_fewshot


@pytest.fixture()
def released(tmp_path: Path) -> Path:
    """Two settings, 3 folds each, 64 points of 6 columns, 8 classes."""
    return write_modelnet_fewshot(tmp_path / "ModelNetFewshot", [(5, 10), (3, 4)], folds=3)


def _raw(path: Path) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f)


def test_a_released_fold_is_read_exactly(released) -> None:
    data = ModelNetFewShot(str(released), way=5, shot=10, fold=2)
    train, test = data.load("train"), data.load("test")
    raw = _raw(released / "5way_10shot" / "2.pkl")
    assert train.points.shape == (50, 64, 3) and test.points.shape == (100, 64, 3)
    assert np.bincount(train.labels).tolist() == [10] * 5 and np.bincount(test.labels).tolist() == [20] * 5
    for split, loaded in (("train", train), ("test", test)):
        for i, (points, label, key) in enumerate(raw[split]):
            xyz = points[:, :3] - points[:, :3].mean(0)
            xyz = xyz / np.linalg.norm(xyz, axis=1).max()  # Point-BERT's pc_normalize
            np.testing.assert_allclose(loaded.points[i], xyz, atol=1e-6)
            assert loaded.labels[i] == label
            assert data.fold_data().original_labels[label] == int(key)
    assert np.linalg.norm(train.points, axis=-1).max() == pytest.approx(1.0, abs=1e-5)
    # the other folds of the setting and the 3-way setting are there too
    assert data.folds() == [0, 1, 2]
    assert ModelNetFewShot(str(released / "3way_4shot"), way=3, shot=4).load("train").points.shape == (12, 64, 3)


def test_data_check_learns_the_fewshot_layout(released, capsys) -> None:
    assert [d.describe() for d in detect_datasets(released)] == [
        "ModelNetFewShot(3way_4shot, fold 0)", "ModelNetFewShot(5way_10shot, fold 0)"]
    assert data_main(["check", str(released), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "3 folds (0, 1, 2): 5 ways, 10 shots, 20 test shapes per class, 64 points per cloud, 6 columns" in out
    assert "3 folds (0, 1, 2): 3 ways, 4 shots" in out and out.count("usable") == 2
    # one broken fold makes the setting unusable, naming the file
    bad = released / "5way_10shot" / "1.pkl"
    raw = _raw(bad)
    raw["train"] = raw["train"][:-1]
    bad.write_bytes(pickle.dumps(raw))
    assert data_main(["check", str(released), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert f"error: {bad}: field 'train' has [" in out and "expected 10 each (10-shot)" in out
    assert "NOT usable: 1 problem(s)" in out


def _rewrite(path: Path, change) -> Path:
    raw = _raw(path)
    change(raw)
    path.write_bytes(pickle.dumps(raw))
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda raw: raw.pop("test"), "field 'test' is missing or not a list"),
        (lambda raw: raw["train"].__setitem__(3, raw["train"][3][:2]), "entry 'train'[3] must be a (points, label, original_label)"),
        (lambda raw: raw["test"].__setitem__(0, (raw["test"][0][0][:, :4], 0, 1)), "entry 'test'[0][0] (points) must be a numpy array of shape (points, 6)"),
        (lambda raw: raw["train"].__setitem__(0, (raw["train"][0][0], 7, raw["train"][0][2])), "field 'train' has labels [0, 1, 2, 3, 4, 7]"),
        (lambda raw: raw["train"].__setitem__(0, (np.full((64, 6), np.nan, "f4"), *raw["train"][0][1:])), "has NaN or Inf"),
        (lambda raw: raw.__setitem__("test", [e for e in raw["test"] if e[1] != 2][:-3] + [e for e in raw["test"] if e[1] == 2][:5]),
         "field 'test' has 5 shapes of label 2, fewer than --query=20"),
    ],
)
def test_a_malformed_fold_file_is_one_message_naming_file_and_field(released, change, message) -> None:
    path = _rewrite(released / "5way_10shot" / "0.pkl", change)
    with pytest.raises(DataError) as err:
        ModelNetFewShot(str(released), 5, 10, 0).load("train")
    assert str(err.value).startswith(str(path)) and message in str(err.value)


class _Boom:
    def __reduce__(self):
        return (Path.touch, (Path("/tmp/pointdwc-pickle-was-executed"),))


def test_a_pickle_with_code_is_refused_not_run(released) -> None:
    marker = Path("/tmp/pointdwc-pickle-was-executed")
    marker.unlink(missing_ok=True)
    path = released / "5way_10shot" / "0.pkl"
    path.write_bytes(pickle.dumps({"train": [_Boom()], "test": []}))
    with pytest.raises(DataError, match="not a few-shot fold pickle: it references pathlib.Path.touch"):
        ModelNetFewShot(str(released), 5, 10, 0).load("train")
    assert not marker.exists()
    (released / "5way_10shot" / "1.pkl").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="1.pkl: not a readable pickle"):
        ModelNetFewShot(str(released), 5, 10, 1).load("test")


def test_a_missing_setting_or_fold_names_what_is_there(released) -> None:
    with pytest.raises(DataError, match=r"no 10way_20shot/ folder .* settings found: 3way_4shot, 5way_10shot"):
        ModelNetFewShot(str(released), 10, 20).load("train")
    with pytest.raises(DataError, match=r"fold 7 not found; .* holds folds \[0, 1, 2\]"):
        ModelNetFewShot(str(released), 5, 10, 7).load("train")


def _labels(counts: list[int]) -> np.ndarray:
    return np.repeat(np.arange(len(counts)), counts)


def test_drawn_folds_are_deterministic_class_consistent_and_disjoint() -> None:
    train_labels, test_labels = _labels([15] * 12), _labels([25] * 12)
    a = sample_fold(train_labels, test_labels, way=5, shot=10, query=20, seed=3, fold=4)
    b = sample_fold(train_labels, test_labels, way=5, shot=10, query=20, seed=3, fold=4)
    assert np.array_equal(a.classes, b.classes) and np.array_equal(a.train, b.train) and np.array_equal(a.test, b.test)
    assert len(set(a.classes.tolist())) == 5  # W distinct classes
    assert len(set(a.train.tolist())) == 50 and len(set(a.test.tolist())) == 100  # no shape twice
    for i, cls in enumerate(a.classes):  # fold class i: its S train and query test shapes, all of source class cls
        assert (train_labels[a.train[i * 10 : (i + 1) * 10]] == cls).all()
        assert (test_labels[a.test[i * 20 : (i + 1) * 20]] == cls).all()
    others = [sample_fold(train_labels, test_labels, 5, 10, 20, seed=3, fold=k) for k in range(4)]
    assert len({tuple(o.classes.tolist()) for o in others + [a]}) > 1  # folds differ
    c = sample_fold(train_labels, test_labels, 5, 10, 20, seed=4, fold=4)
    assert not (np.array_equal(a.classes, c.classes) and np.array_equal(a.train, c.train))


def test_drawn_fold_points_are_the_source_rows(tiny_modelnet) -> None:
    from datamodules.formats.modelnet_h5 import ModelNet40H5

    source = ModelNet40H5(str(tiny_modelnet))
    fold = GeneratedFewShot(source, way=2, shot=3, query=2, fold=1, seed=0)
    data = fold.fold_data()
    train, test = source.load("train"), source.load("test")
    index = fold.index()
    np.testing.assert_array_equal(data.train.points, train.points[index.train])
    np.testing.assert_array_equal(data.test.points, test.points[index.test])
    assert data.train.class_names == [train.class_names[c] for c in index.classes]
    assert np.array_equal(index.classes[data.train.labels], train.labels[index.train])  # labels 0..W-1 remapped
    again = fold.other_fold(1).fold_data()
    np.testing.assert_array_equal(again.train.points, data.train.points)


def test_impossible_draws_name_the_option() -> None:
    train_labels, test_labels = _labels([15, 15, 15, 15]), _labels([25, 25, 4, 25])
    with pytest.raises(DataError, match="--way=5 is larger than the 4 classes of src"):
        sample_fold(train_labels, test_labels, way=5, shot=10, source="src")
    with pytest.raises(DataError, match=r"--way=4: only 3 of the 4 classes .*fewer than --query=20 test shapes: c2 4"):
        sample_fold(train_labels, test_labels, way=4, shot=10, class_names=["c0", "c1", "c2", "c3"])
    with pytest.raises(DataError, match="fewer than --shot=20 train shapes"):
        sample_fold(train_labels, test_labels, way=2, shot=20, query=4)
