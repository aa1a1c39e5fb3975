"""Random clouds held in memory, served as a data set: the input of the step benchmarks.

The same clouds as the reference step (``../shared/bench/refstep.py``) makes for itself:
``numpy.random.default_rng(seed)``, uniform in [-1, 1]^3, float32, at least ``num_clouds``
of them and enough for every timed batch to be a fresh one.
"""

from __future__ import annotations

import numpy as np

from datamodules.dataset import PointCloudSet, PointCloudSplit


def random_clouds(count: int, points: int, seed: int = 0) -> np.ndarray:
    """(count, points, 3) float32 uniform in [-1, 1]^3 (the reference's ``make_clouds``)."""
    rng = np.random.default_rng(seed)
    return (rng.random((count, points, 3), dtype=np.float32) * 2 - 1).astype(np.float32)


def clouds_needed(batch_size: int, warmup: int, steps: int, minimum: int = 2800) -> int:
    """The reference's count: ``max(minimum, batch_size · (warmup + steps + 8))``."""
    return max(minimum, batch_size * (warmup + steps + 8))


class RandomClouds(PointCloudSet):
    """``train`` and ``test`` splits of the same in-memory random clouds (labels all 0)."""

    def __init__(self, clouds: np.ndarray) -> None:
        self.clouds = clouds

    def load(self, split: str) -> PointCloudSplit:
        self._check_split_name(split)
        labels = np.zeros(len(self.clouds), dtype=np.int64)
        return PointCloudSplit(self.clouds, labels, ["random"], f"RandomClouds({len(self.clouds)} clouds)")

    def describe(self) -> str:
        return f"RandomClouds({self.clouds.shape[0]}x{self.clouds.shape[1]})"
