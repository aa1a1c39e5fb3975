"""The ModelNet40-HDF5 reader: the official layout loads, every broken file fails clearly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from datamodules.errors import DataError
from datamodules.formats.modelnet_h5 import read_modelnet_h5
from tests.helpers import tiny_data, tiny_trainer
from tests.layouts import rewrite_h5


def test_reads_official_layout_by_shard_base_name(tiny_modelnet) -> None:
    split = read_modelnet_h5(tiny_modelnet, "train")
    assert split.points.shape == (24, 1024, 3) and split.points.dtype == np.float32
    assert split.labels.dtype == np.int64 and set(split.labels) == {0, 1, 2}
    assert split.class_names == ["sphere", "ellipsoid", "cigar"]
    assert "data/modelnet40_ply_hdf5_2048/" in (tiny_modelnet / "train_files.txt").read_text()


@pytest.mark.parametrize(
    "breakage,message",
    [
        (lambda r: (r / "shape_names.txt").unlink(), r"shape_names.txt: missing"),
        (lambda r: (r / "train_files.txt").unlink(), r"train_files.txt: missing split file"),
        (lambda r: (r / "ply_data_train0.h5").unlink(), r"ply_data_train0.h5: listed in train_files.txt"),
        (lambda r: (r / "ply_data_train0.h5").write_bytes(b"\x89HDF\r\n" + b"0" * 50), r"ply_data_train0.h5: not a readable HDF5"),
        (lambda r: rewrite_h5(r / "ply_data_train0.h5", label=None), r"ply_data_train0.h5: missing dataset 'label'"),
        (lambda r: rewrite_h5(r / "ply_data_train0.h5", data=None), r"ply_data_train0.h5: missing dataset 'data'"),
        (lambda r: rewrite_h5(r / "ply_data_train0.h5", data=np.zeros((24, 1024, 6), "f4")), r"field 'data' must have shape \(n, points, 3\)"),
        (lambda r: rewrite_h5(r / "ply_data_train0.h5", data=np.zeros((24, 1024), "f4")), r"field 'data' must have shape"),
        (lambda r: rewrite_h5(r / "ply_data_train0.h5", data=np.full((24, 1024, 3), np.nan, "f4")), r"field 'data' has NaN or Inf"),
        (lambda r: rewrite_h5(r / "ply_data_train0.h5", data=np.zeros((24, 0, 3), "f4")), r"field 'data' is empty"),
        (lambda r: rewrite_h5(r / "ply_data_train0.h5", label=np.full((24, 1), 7, "u1")), r"field 'label' has values in \[7, 7\], outside the 3 classes"),
        (lambda r: rewrite_h5(r / "ply_data_train0.h5", label=np.zeros((5, 1), "u1")), r"field 'label' must have shape \(24, 1\)"),
    ],
)
def test_bad_input_gives_one_clear_error_naming_the_file(tiny_modelnet, breakage, message) -> None:
    breakage(tiny_modelnet)
    with pytest.raises(DataError, match=message):
        read_modelnet_h5(tiny_modelnet, "train")


def test_missing_root(tmp_path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_modelnet_h5(tmp_path / "nope", "train")


def test_datamodule_serves_multicrop_views(tiny_modelnet, tmp_path) -> None:
    dm = tiny_data(tiny_modelnet)
    trainer = tiny_trainer(tmp_path)
    dm.trainer = trainer
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    views = dm.on_after_batch_transfer(batch, 0)
    assert views["global"].shape == (2, 4, 128, 3)
    assert views["local"].shape == (2, 4, 32, 3)
    assert views["label"].shape == (4,)
    state = dm.state_dict()
    again = dm.on_after_batch_transfer(batch, 0)
    dm.load_state_dict(state)
    dm._generator = None
    restored = dm.on_after_batch_transfer(batch, 0)
    torch.testing.assert_close(again["global"], restored["global"])


def test_datamodule_rejects_more_points_than_stored(tiny_modelnet, tmp_path) -> None:
    dm = tiny_data(tiny_modelnet)
    dm.num_points = 4096
    with pytest.raises(ValueError, match=r"data.num_points=4096 but the clouds of ModelNet40H5 at .*modelnet40_ply_hdf5_2048 have only 1024 points"):
        dm.setup("fit")
