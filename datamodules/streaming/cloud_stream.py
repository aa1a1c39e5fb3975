"""The streaming data set and loader ``fit`` iterates over packed shards (imports litdata: use after
:func:`~datamodules.streaming.requirement.require_litdata`).

litdata's :class:`~litdata.StreamingDataset` splits the chunks over every rank and loader worker
(each sample once per epoch over all of them; with ``drop_last`` the few left over a whole number
of batches per rank are skipped, different ones each epoch), shuffles chunks and the items within
them from ``(seed, epoch)``, and its :class:`~litdata.StreamingDataLoader` has the
``state_dict``/``load_state_dict`` an exact mid-epoch resume needs. Batches are ``(points (B, P, 3)
float32, labels (B,) int64)``, what :class:`~datamodules.pointcloud.PointCloudDataModule` hands to its
on-device crops. Clouds packed with different point counts are cut here to ``cut_to`` points: a
random subset drawn from ``(seed, epoch, source row)``, so a resumed epoch cuts the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from litdata import StreamingDataLoader, StreamingDataset
from torch import Tensor

from datamodules.errors import DataError


def cut_cloud(points: np.ndarray, num_points: int, seed: list[int]) -> np.ndarray:
    """``num_points`` of the (P, 3) ``points`` drawn without replacement from ``seed`` (all of them when P <= num_points)."""
    if len(points) <= num_points:
        return points
    keep = np.random.default_rng(seed).choice(len(points), num_points, replace=False)
    return points[keep]


class CloudStream(StreamingDataset):
    """The items of one packed split, each cloud cut to ``cut_to`` points when given."""

    def __init__(self, location: str, cut_to: int | None = None, **kwargs: Any) -> None:
        super().__init__(location, **kwargs)
        self.cut_to = cut_to

    def __getitem__(self, index: Any) -> Any:
        item = super().__getitem__(index)
        if self.cut_to is not None and isinstance(item, dict):
            item["points"] = cut_cloud(item["points"], self.cut_to, [self.seed, self.current_epoch, int(item["index"])])
        return item


def collate_clouds(items: list[dict[str, Any]]) -> tuple[Tensor, Tensor]:
    """Items of one point count -> ``(points (B, P, 3) float32, labels (B,) int64)``."""
    counts = {len(item["points"]) for item in items}
    if len(counts) > 1:
        raise DataError(f"clouds of {sorted(counts)} points in one batch; set data.num_points to cut them to one count")
    points = np.stack([np.asarray(item["points"], dtype=np.float32) for item in items])
    labels = np.asarray([int(item["label"]) for item in items], dtype=np.int64)
    return torch.from_numpy(points), torch.from_numpy(labels)


def streaming_loader(
    location: str,
    batch_size: int,
    num_workers: int,
    seed: int,
    cut_to: int | None,
    shuffle: bool = True,
    drop_last: bool = True,
) -> StreamingDataLoader:
    """A shuffled (seeded) loader over the split at ``location``, resumable mid-epoch."""
    dataset = CloudStream(location, cut_to=cut_to, shuffle=shuffle, drop_last=drop_last, seed=seed)
    return StreamingDataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=collate_clouds,
        drop_last=drop_last,
        pin_memory=torch.cuda.is_available(),
    )


def read_items(location: str) -> list[dict[str, Any]]:
    """Every item of the split at ``location`` in stored order (for in-memory use and summaries)."""
    dataset = StreamingDataset(location, shuffle=False)
    return [dataset[i] for i in range(len(dataset))]
