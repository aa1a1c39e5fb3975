"""A pack killed in the middle of a split (the whole process group, SIGKILL) and run again
continues from litdata's checkpoints and ends equal to its source."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from datamodules.dataset import PointCloudSet, PointCloudSplit
from datamodules.streaming.pack import PackOptions, pack_shards
from datamodules.streaming.shard_set import ShardSet

REPO = Path(__file__).parents[1]
COUNT = 40


class LoggedRows:
    """Cloud i is 16 copies of (i, i, i); every read is appended to ``log`` (pid, row) after ``delay`` seconds."""

    def __init__(self, log: str, delay: float) -> None:
        self.log, self.delay = log, delay

    def __len__(self) -> int:
        return COUNT

    def __getitem__(self, row: int) -> np.ndarray:
        if not 0 <= row < COUNT:
            raise IndexError(row)
        time.sleep(self.delay)
        with open(self.log, "a") as f:
            f.write(f"{os.getpid()} {row}\n")
        return np.full((16, 3), row, np.float32)


class Slow(PointCloudSet):
    """40 clouds per split, read slowly enough to be killed in the middle of the train split."""

    def __init__(self, log: str, delay: float) -> None:
        self.log, self.delay = log, delay

    def describe(self) -> str:
        return "Slow"

    def load(self, split: str) -> PointCloudSplit:
        rows = LoggedRows(f"{self.log}.{split}", self.delay)
        return PointCloudSplit(rows, np.arange(COUNT) % 4, list("abcd"), source=split)  # type: ignore[arg-type]


def _pack(out: Path, log: Path, delay: float) -> None:
    pack_shards(Slow(str(log), delay), out, PackOptions(progress=False, chunk_bytes="1KB", workers=2))


def test_a_pack_killed_mid_split_resumes_and_equals_its_source(tmp_path: Path) -> None:
    out, log = tmp_path / "out", tmp_path / "rows"
    code = f"from pathlib import Path; from tests.test_shards_pack_kill import _pack; _pack(Path({str(out)!r}), Path({str(log)!r}), 0.15)"
    child = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, start_new_session=True)
    try:
        deadline = time.time() + 60
        while not len(list((out / "train").glob("chunk-*.bin"))) >= 2 and time.time() < deadline:
            time.sleep(0.1)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    assert not (out / "train" / "index.json").exists()  # killed in the middle of the train split
    killed_reads = len(Path(f"{log}.train").read_text().splitlines())
    assert 0 < killed_reads < COUNT

    _pack(out, log, 0.0)
    reads = [line.split() for line in Path(f"{log}.train").read_text().splitlines()[killed_reads:]]
    by_workers = [int(row) for pid, row in reads if int(pid) != os.getpid()]  # not this process's own count of points
    assert 0 < len(by_workers) < COUNT  # the rerun's workers did not read the whole split again
    loaded = ShardSet(str(out)).load("train")
    np.testing.assert_array_equal(loaded.points, np.repeat(np.arange(COUNT, dtype=np.float32), 16 * 3).reshape(COUNT, 16, 3))
    np.testing.assert_array_equal(loaded.labels, np.arange(COUNT) % 4)
