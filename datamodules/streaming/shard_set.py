"""A packed shard folder (or an object-store URL) as a data set: streamed by ``fit``, read whole elsewhere.

``fit`` streams the train split (:meth:`ShardSet.train_loader`, never loading it); the probe,
``pointdwc test``, ``embed`` and ``data check`` read a split whole with :meth:`ShardSet.load`
(clouds with different point counts are cut to ``num_points``, or to the fewest, by a random
subset seeded with the source row). A URL (``s3://bucket/shards``) is handed to litdata as it
is; its metadata file is not read (litdata fetches only the shards), so it serves pretraining.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from datamodules.dataset import CheckReport, PointCloudSet, PointCloudSplit, SplitSummary
from datamodules.errors import DataError
from datamodules.streaming.layout import SPLITS, ShardMeta, is_shard_root, is_url, split_location
from datamodules.streaming.requirement import require_litdata
from datamodules.streaming.shard_check import shard_problems, split_problems


class ShardSet(PointCloudSet):
    """Shards written by ``pointdwc data pack`` (``--data.root OUT`` detects them).

    Args:
        root: the packed folder, or a URL litdata reads (``s3://…``, ``gs://…``).
        num_points: points per cloud when a split is read whole from shards of varying counts
            (None: the fewest of the split).
        seed: seed of those subsets.
    """

    streams = True
    """The DataModule streams the train split instead of loading it (:meth:`train_loader`)."""

    def __init__(self, root: str, num_points: int | None = None, seed: int = 0) -> None:
        self.remote = is_url(root)
        self.root = str(root).rstrip("/") if self.remote else str(Path(root).expanduser().absolute())
        self.num_points = num_points
        self.seed = seed
        self._items: dict[str, list[dict[str, Any]]] = {}

    @classmethod
    def detect(cls, root: Path) -> list[PointCloudSet]:
        return [cls(str(root))] if is_shard_root(root) else []

    def describe(self) -> str:
        return f"ShardSet({self.root})"

    def meta(self) -> ShardMeta | None:
        """The metadata of a local pack (None for a URL); DataError if it is missing or broken."""
        return None if self.remote else ShardMeta.read(Path(self.root))

    def _require_whole(self, split: str) -> ShardMeta | None:
        self._check_split_name(split)
        if self.remote:
            return None
        meta = self.meta()
        assert meta is not None
        if split not in meta.splits or not meta.splits[split].complete:
            raise DataError(f"{self.root}: the {split} split was not packed completely; run pointdwc data pack again")
        problems = split_problems(Path(self.root) / split, split, meta.splits[split].count)
        if problems:
            raise DataError(problems[0])
        return meta

    def require_stream_points(self, num_points: int | None, field: str) -> None:
        """Fail at the boundary, naming ``field``, when the packed point counts cannot serve ``num_points``."""
        meta = self._require_whole("train")
        if meta is None:
            return
        counts = meta.splits["train"]
        if num_points is None and counts.min_points != counts.max_points:
            raise DataError(
                f"{field} is not set but the clouds of {self.root} have {counts.min_points}-{counts.max_points} "
                f"points; set {field} (at most {counts.min_points}) to cut them to one count"
            )
        if num_points is not None and num_points > counts.min_points:
            raise DataError(
                f"{field}={num_points} but some clouds of {self.root} have only {counts.min_points} points; "
                f"lower {field} to at most {counts.min_points}"
            )

    def train_loader(self, batch_size: int, num_workers: int, seed: int, num_points: int | None) -> Any:
        """The shuffled, resumable streaming loader over the train split (litdata)."""
        require_litdata("streaming shards (--data.root of a packed folder)")
        from datamodules.streaming.cloud_stream import streaming_loader

        meta = self.meta()
        fixed = meta is not None and meta.splits["train"].min_points == meta.splits["train"].max_points
        # clouds of one count reach the device whole (the crops' generator subsamples them, as in memory)
        cut_to = None if fixed else num_points
        return streaming_loader(split_location(self.root, "train"), batch_size, num_workers, seed, cut_to)

    def _read(self, split: str) -> list[dict[str, Any]]:
        if split not in self._items:
            self._require_whole(split)
            require_litdata("reading packed shards")
            from datamodules.streaming.cloud_stream import read_items

            items = read_items(split_location(self.root, split))
            self._items[split] = sorted(items, key=lambda item: int(item["index"]))
        return self._items[split]

    def load(self, split: str) -> PointCloudSplit:
        from datamodules.streaming.cloud_stream import cut_cloud

        items = self._read(split)
        if not items:
            raise DataError(f"{split_location(self.root, split)}: the {split} split holds no clouds")
        fewest = min(len(item["points"]) for item in items)
        count = self.num_points or fewest
        if fewest < count:
            raise DataError(f"num_points={count} but some {split} clouds of {self.root} have only {fewest} points")
        points = np.stack(
            [cut_cloud(np.asarray(i["points"], np.float32), count, [self.seed, int(i["index"])]) for i in items]
        )
        labels = np.asarray([int(item["label"]) for item in items], dtype=np.int64)
        meta = self.meta()
        names = meta.class_names if meta is not None else [f"class_{k}" for k in range(int(labels.max()) + 1)]
        if labels.min() < 0 or labels.max() >= len(names):
            raise DataError(f"{split_location(self.root, split)}: labels outside [0, {len(names)}) of the class names")
        return PointCloudSplit(points, labels, list(names), source=split_location(self.root, split))

    def item_names(self, split: str, count: int) -> list[str]:
        return [str(item["name"]) for item in self._read(split)][:count]

    def check(self, progress: bool = True) -> CheckReport:
        if self.remote:
            return CheckReport([f"{self.root}: data check reads local shard folders only"], [])
        problems = shard_problems(Path(self.root))
        if problems:
            return CheckReport(problems, [])
        meta = self.meta()
        assert meta is not None
        summaries = []
        for split in SPLITS:
            items = self._read(split)
            radii = np.asarray([float(np.sqrt((np.asarray(i["points"]) ** 2).sum(-1)).max()) for i in items])
            labels = np.asarray([int(i["label"]) for i in items], dtype=np.int64)
            summaries.append(
                SplitSummary.from_radii(split, radii, labels, len(meta.class_names), meta.splits[split].min_points)
            )
        counts = {s: (m.min_points, m.max_points) for s, m in meta.splits.items()}
        notes = [f"packed from {meta.source}; points per cloud (fewest, most): {counts}"]
        return CheckReport([], summaries, notes)
