"""``pointdwc data pack``: shards equal to their source (points, labels, class and item names),
fixed or varying point counts, never over existing output unless asked, resumed when interrupted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from datamodules import ModelNet40H5, SyntheticShapes
from datamodules.dataset import PointCloudSet, PointCloudSplit
from datamodules.errors import DataError
from datamodules.streaming.layout import META_FILE
from datamodules.streaming.pack import PackOptions, pack_shards
from datamodules.streaming.shard_set import ShardSet
from lightning_modules.commands.data import main as data_main
from tests.layouts import blob_clouds, write_modelnet_h5

QUIET = PackOptions(progress=False, chunk_bytes="8KB")  # several chunks per split


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[SyntheticShapes, Path]:
    source = SyntheticShapes(num_train_per_class=1, num_test_per_class=1, num_points=64)
    out = tmp_path_factory.mktemp("shards") / "synthetic"
    pack_shards(source, out, PackOptions(workers=2, progress=False, chunk_bytes="8KB"))
    return source, out


def test_synthetic_shards_read_back_equal_to_the_source(synthetic) -> None:
    source, out = synthetic
    assert len(list((out / "train").glob("chunk-*.bin"))) > 1  # 2 workers, several chunks each
    shards = ShardSet(str(out))
    for split in ("train", "test"):
        want, got = source.load(split), shards.load(split)
        np.testing.assert_array_equal(got.points, want.points)
        np.testing.assert_array_equal(got.labels, want.labels)
        assert got.class_names == want.class_names
        assert shards.item_names(split, len(want)) == source.item_names(split, len(want))


def test_the_stream_serves_every_source_cloud_once_per_epoch(synthetic) -> None:
    source, out = synthetic
    want = source.load("train")
    rows = {want.points[i].tobytes(): i for i in range(len(want))}
    loader = ShardSet(str(out)).train_loader(batch_size=4, num_workers=0, seed=3, num_points=None)
    for _ in range(2):
        seen = []
        for points, labels in loader:
            assert points.dtype == np.float32 or str(points.dtype) == "torch.float32"
            for cloud, label in zip(points.numpy(), labels.numpy()):
                row = rows[cloud.tobytes()]
                assert label == want.labels[row]
                seen.append(row)
        assert sorted(seen) == list(range(len(want)))  # 28 clouds, batches of 4: none dropped
    orders = [[rows[c.tobytes()] for p, _ in loader for c in p.numpy()] for _ in range(2)]
    assert orders[0] != orders[1] and orders[0] != sorted(orders[0])  # shuffled afresh each epoch


def test_a_release_layout_packs_through_the_command_with_its_names(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    root = write_modelnet_h5(
        tmp_path / "modelnet40_ply_hdf5_2048", ["a", "b", "c"],
        {"train": blob_clouds(9, 40, 3, rng), "test": blob_clouds(6, 40, 3, rng)},
    )
    assert data_main(["pack", str(root), str(tmp_path / "out"), "--num_points", "30", "--quiet"]) == 0
    source, shards = ModelNet40H5(str(root)), ShardSet(str(tmp_path / "out"))
    for split in ("train", "test"):
        want, got = source.load(split), shards.load(split)
        np.testing.assert_array_equal(got.points, want.points[:, :30])  # each cloud's first 30 points
        np.testing.assert_array_equal(got.labels, want.labels)
        assert got.class_names == ["a", "b", "c"]
        assert shards.item_names(split, len(want)) == source.item_names(split, len(want))
        assert shards.item_names(split, 1)[0].startswith("ply_data_")


class VaryingCounts(PointCloudSet):
    """Clouds of 20 + 7·i points: a source whose clouds differ in count."""

    def load(self, split: str) -> PointCloudSplit:
        rng = np.random.default_rng(len(split))
        clouds = [rng.normal(size=(20 + 7 * i, 3)).astype(np.float32) for i in range(6)]
        return PointCloudSplit(clouds, np.arange(6) % 2, ["odd", "even"], source=f"varying/{split}")  # type: ignore[arg-type]


def test_varying_point_counts_are_kept_and_cut_to_the_asked_count(tmp_path: Path) -> None:
    source = VaryingCounts()
    meta = pack_shards(source, tmp_path / "out", QUIET)
    assert (meta.splits["train"].min_points, meta.splits["train"].max_points) == (20, 55)
    shards = ShardSet(str(tmp_path / "out"))
    with pytest.raises(DataError, match="data.num_points is not set .* 20-55 points"):
        shards.require_stream_points(None, "data.num_points")
    with pytest.raises(DataError, match="data.num_points=21 .* only 20 points"):
        shards.require_stream_points(21, "data.num_points")
    want = source.load("train")
    loader = shards.train_loader(batch_size=3, num_workers=0, seed=0, num_points=16)
    first = [p.numpy() for p, _ in loader]
    assert all(p.shape == (3, 16, 3) for p in first)
    for cloud in np.concatenate(first):  # 16 distinct points of one source cloud
        owners = [i for i, c in enumerate(want.points) if all((c == q).all(1).any() for q in cloud)]
        assert len(owners) == 1 and len(np.unique(cloud, axis=0)) == 16
    whole = shards.load("train")  # read whole: every cloud cut to the fewest (20)
    assert whole.points.shape == (6, 20, 3)
    for cloud, full in zip(whole.points, want.points):
        assert all((full == q).all(1).any() for q in cloud)


def test_existing_output_is_refused_unless_overwrite(synthetic, tmp_path: Path) -> None:
    source, out = synthetic
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    with pytest.raises(DataError, match="already holds the packed shards .* --overwrite"):
        pack_shards(source, out, QUIET)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    assert data_main(["pack", "synthetic", str(foreign), "--quiet"]) == 1
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]


def test_an_interrupted_pack_resumes_keeping_the_finished_split(synthetic, tmp_path: Path) -> None:
    source, _ = synthetic
    out = tmp_path / "out"
    pack_shards(source, out, QUIET)
    # as a pack stopped while writing test: the metadata says so, test's index was never written
    meta = json.loads((out / META_FILE).read_text())
    meta["splits"].pop("test")
    (out / META_FILE).write_text(json.dumps(meta))
    (out / "test" / "index.json").unlink()
    (next((out / "test").glob("chunk-*.bin"))).write_bytes(b"half")
    train_files = {p: p.stat().st_mtime_ns for p in (out / "train").iterdir()}
    with pytest.raises(DataError, match="interrupted pack of SyntheticShapes.*num_points=None.*not of.*num_points=32"):
        pack_shards(source, out, PackOptions(num_points=32, progress=False))
    pack_shards(source, out, QUIET)
    assert {p: p.stat().st_mtime_ns for p in (out / "train").iterdir()} == train_files  # kept, not rewritten
    np.testing.assert_array_equal(ShardSet(str(out)).load("test").points, source.load("test").points)
    pack_shards(source, out, PackOptions(num_points=32, progress=False, overwrite=True))
    assert ShardSet(str(out)).load("train").points.shape == (28, 32, 3)
