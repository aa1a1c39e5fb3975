"""``fit --data.root OUT`` streams packed shards: the batches the pretraining module gets are the
in-memory path's, a 2-rank DDP epoch sees every sample once, and a mid-epoch resume is exact."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from datamodules import CropSpec, ModelNet40H5, MultiCropConfig, PointCloudDataModule
from datamodules.dataset import PointCloudSet, PointCloudSplit
from datamodules.streaming.pack import PackOptions, pack_shards
from datamodules.streaming.shard_set import ShardSet
from tests.helpers import assert_mid_epoch_resume_is_exact, fit_seeded, tiny_data
from tests.conftest import _write_tiny_modelnet

QUIET = PackOptions(progress=False, chunk_bytes="64KB")


@pytest.fixture(scope="module")
def modelnet_shards(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("stream")
    source = _write_tiny_modelnet(folder)
    pack_shards(ModelNet40H5(str(source)), folder / "shards", QUIET)
    return source, folder / "shards"


def test_data_root_of_shards_streams_with_litdata_and_crops_as_before(modelnet_shards) -> None:
    source, out = modelnet_shards
    data = tiny_data(out)
    assert isinstance(data.dataset, ShardSet)
    data.setup("fit")
    assert "train" not in data.splits  # streamed, never loaded
    loader = data.train_dataloader()
    assert type(loader).__name__ == "StreamingDataLoader" and len(loader) == 6  # 24 clouds, batches of 4
    points, labels = next(iter(loader))
    assert points.shape == (4, 1024, 3) and points.dtype == torch.float32 and labels.dtype == torch.int64
    views = data.on_after_batch_transfer((points, labels), 0)
    assert views["global"].shape == (2, 4, 128, 3) and views["local"].shape == (2, 4, 32, 3)
    assert torch.equal(views["label"], labels)
    data.setup("test")  # the test split is read whole, equal to the source
    np.testing.assert_array_equal(data.splits["test"].points, ModelNet40H5(str(source)).load("test").points)


def test_the_loader_state_in_the_datamodule_resumes_the_same_order(modelnet_shards) -> None:
    _, out = modelnet_shards

    def batches(data: PointCloudDataModule, n: int | None = None) -> list[np.ndarray]:
        taken = []
        for points, _ in data.train_dataloader():
            taken.append(points.numpy().copy())
            if n is not None and len(taken) == n:
                break
        return taken

    straight = batches(tiny_data(out))
    interrupted = tiny_data(out)
    head = batches(interrupted, 2)
    state = interrupted.state_dict()
    resumed = tiny_data(out)
    resumed.load_state_dict(state)
    tail = batches(resumed)
    assert len(tail) == 4
    for a, b in zip(straight, head + tail):
        np.testing.assert_array_equal(a, b)


class Numbered(PointCloudSet):
    """16 clouds of 64 points whose label is their row: the labels a batch carries name its samples."""

    def load(self, split: str) -> PointCloudSplit:
        points = np.random.default_rng(5).normal(size=(16, 64, 3)).astype(np.float32)
        return PointCloudSplit(points, np.arange(16), [f"s{i}" for i in range(16)], source=split)


SMALL_CROPS = MultiCropConfig(global_crops=CropSpec(2, 32, (0.5, 1.0)), local_crops=CropSpec(2, 16, (0.2, 0.5)))


def test_mid_epoch_resume_over_shards_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    """16 clouds, batch 4: 4 steps an epoch; stopped after step 6 (the middle of the second epoch)."""
    pack_shards(Numbered(), tmp_path / "shards", QUIET)

    def make_data() -> PointCloudDataModule:
        return PointCloudDataModule(root=str(tmp_path / "shards"), batch_size=4, num_points=48, crops=SMALL_CROPS)

    assert_mid_epoch_resume_is_exact(tmp_path, make_data, stop_step=6, total_steps=8)


class RecordLabels(pl.Callback):
    """Write the labels (sample ids) of every batch a rank trains on to ``folder/rank<r>.json``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.seen: list[int] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.seen += batch["label"].tolist()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        (self.folder / f"rank{trainer.global_rank}.json").write_text(json.dumps(self.seen))


def test_a_two_rank_ddp_epoch_sees_every_sample_once(tmp_path: Path) -> None:
    pack_shards(Numbered(), tmp_path / "shards", QUIET)
    data = PointCloudDataModule(root=str(tmp_path / "shards"), batch_size=2, crops=SMALL_CROPS, seed=1)
    fit_seeded(tmp_path, data, [RecordLabels(tmp_path)], strategy="ddp_fork", accelerator="cpu", devices=2)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 8  # 16 samples, 2 ranks: 4 steps of 2 each
    assert sorted(ranks[0] + ranks[1]) == list(range(16))


def test_the_probe_reads_shards_as_it_reads_their_source(modelnet_shards) -> None:
    from lightning_modules.evaluation.probe import LinearProbe

    source, out = modelnet_shards
    on_shards, on_source = LinearProbe(root=str(out), num_points=512), LinearProbe(root=str(source), num_points=512)
    assert isinstance(on_shards.data, ShardSet)
    for split in ("train", "test"):
        a, b = on_shards._split(split), on_source._split(split)
        np.testing.assert_array_equal(a.points, b.points)
        np.testing.assert_array_equal(a.labels, b.labels)
        assert a.class_names == b.class_names == ["sphere", "ellipsoid", "cigar"]


def test_an_object_store_url_is_taken_for_shards_and_handed_to_litdata_as_is() -> None:
    """Only the spelling: nothing here reaches a bucket (streaming from one is not tested)."""
    from datamodules.streaming.layout import split_location

    data = PointCloudDataModule(root="s3://bucket/corpus/shards/", batch_size=2)
    assert isinstance(data.dataset, ShardSet) and data.dataset.remote and data.streams
    assert data.dataset.root == "s3://bucket/corpus/shards"
    assert split_location(data.dataset.root, "train") == "s3://bucket/corpus/shards/train"
    assert split_location("/data/shards", "test") == "/data/shards/test"
