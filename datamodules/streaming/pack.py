"""``pointdwc data pack``: write any :class:`~datamodules.dataset.PointCloudSet` into litdata shards.

Each split is written by ``litdata.optimize`` (worker processes, a progress bar) into
``OUT/<split>`` with one item per cloud (:mod:`.layout`): the source row, the points (every cloud
as read, or its first ``num_points``), the label and the item name. The source is read through
the data-set interface only (``prepare``, ``load``, ``item_names``), so every layout ``data
check`` detects, the synthetic set and any set added later pack alike.

Resumable: the metadata file is written first and a split is marked complete only when its
shards are whole; running the same pack again keeps the complete splits and redoes the rest
(litdata's checkpoints let an interrupted split continue where its workers stopped). An
existing output is never replaced unless ``overwrite``.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from datamodules.dataset import PointCloudSet, PointCloudSplit
from datamodules.errors import DataError
from datamodules.streaming.layout import INDEX_FILE, META_FILE, SPLITS, ShardMeta, SplitMeta
from datamodules.streaming.requirement import require_litdata


@dataclass
class PackOptions:
    """How to pack.

    Attributes:
        num_points: points stored per cloud (its first ones, the data sets' convention); None:
            every cloud with all the points it has (clouds may then differ in count).
        workers: litdata worker processes.
        chunk_bytes: target size of one chunk file (litdata's ``chunk_bytes``, e.g. ``"64MB"``).
        overwrite: replace an existing pack in OUT.
        progress: litdata's progress bar.
    """

    num_points: int | None = None
    workers: int = 1
    chunk_bytes: str = "64MB"
    overwrite: bool = False
    progress: bool = True


class PackItem:
    """What a litdata worker runs for one source row (the split is loaded once per worker)."""

    def __init__(self, dataset: PointCloudSet, split: str, names: list[str], num_points: int | None) -> None:
        self.dataset = dataset
        self.split = split
        self.names = names
        self.num_points = num_points
        self._loaded: PointCloudSplit | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_loaded": None}  # each worker loads (memory-maps) the split itself

    def __call__(self, row: int) -> dict[str, Any]:
        if self._loaded is None:
            self._loaded = self.dataset.load(self.split)
        points = np.asarray(self._loaded.points[row], dtype=np.float32)
        if self.num_points is not None:
            points = points[: self.num_points]
        return {
            "index": int(row),
            "points": np.ascontiguousarray(points),
            "label": int(self._loaded.labels[row]),
            "name": self.names[row],
        }


def point_counts(split: PointCloudSplit) -> tuple[int, int]:
    """The fewest and most points of a cloud in ``split`` (clouds stacked in an array or listed one by one)."""
    if isinstance(split.points, np.ndarray) and split.points.ndim == 3:
        return split.points_per_cloud, split.points_per_cloud
    counts = [len(cloud) for cloud in split.points]
    return min(counts), max(counts)


def _start_method() -> str:
    """``fork`` where it exists (workers start in a second, and the parent has run no torch threads); else ``spawn``."""
    return "fork" if sys.platform.startswith("linux") else "spawn"


def _prepare_output(out: Path, source: str, options: PackOptions) -> ShardMeta | None:
    """The metadata of an interrupted pack of the same source to resume (None: start afresh); refuse other output."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return None
    if not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder")
    if options.overwrite:
        for split in SPLITS:
            shutil.rmtree(out / split, ignore_errors=True)
        (out / META_FILE).unlink(missing_ok=True)
        return None
    if not (out / META_FILE).is_file():
        raise DataError(f"{out}: exists and is not a pack written by pointdwc; choose another OUT or pass --overwrite")
    meta = ShardMeta.read(out)
    if meta.complete:
        raise DataError(f"{out}: already holds the packed shards of {meta.source}; pass --overwrite to replace them")
    if meta.source != source or meta.num_points != options.num_points:
        raise DataError(
            f"{out}: holds an interrupted pack of {meta.source} with num_points={meta.num_points}, not of "
            f"{source} with num_points={options.num_points}; pass --overwrite to start again"
        )
    return meta


def _finished_count(split_dir: Path) -> int | None:
    """The item count of a split whose ``index.json`` litdata wrote (None: not finished)."""
    index = split_dir / INDEX_FILE
    if not index.is_file():
        return None
    try:
        chunks = json.loads(index.read_text())["chunks"]
        whole = all((split_dir / c["filename"]).stat().st_size == c["chunk_bytes"] for c in chunks)
        return sum(int(c["chunk_size"]) for c in chunks) if whole else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _pack_split(dataset: PointCloudSet, split: str, loaded: PointCloudSplit, out: Path, options: PackOptions) -> None:
    """Write one split into ``out/split`` (continuing an interrupted write of it)."""
    split_dir = out / split
    if split_dir.exists() and _finished_count(split_dir) is not None:
        # litdata finished but the pack stopped before recording it: keep it if whole, else redo
        if _finished_count(split_dir) == len(loaded):
            return
        shutil.rmtree(split_dir)
    litdata = require_litdata("pointdwc data pack")
    names = dataset.item_names(split, len(loaded))
    litdata.optimize(
        fn=PackItem(dataset, split, names, options.num_points),
        inputs=list(range(len(loaded))),
        output_dir=str(split_dir),
        chunk_bytes=options.chunk_bytes,
        num_workers=max(1, options.workers),
        reorder_files=False,
        keep_data_ordered=True,
        use_checkpoint=True,
        start_method=_start_method(),
        verbose=options.progress,
    )
    count = _finished_count(split_dir)
    if count != len(loaded):
        raise DataError(f"{split_dir}: litdata wrote {count} of the {len(loaded)} clouds of {split}; run the pack again")


def pack_shards(dataset: PointCloudSet, out: str | Path, options: PackOptions) -> ShardMeta:
    """Pack both splits of ``dataset`` into ``out``; returns the metadata written beside them."""
    out = Path(out).expanduser().absolute()
    if options.num_points is not None and options.num_points < 1:
        raise DataError(f"--num_points={options.num_points}: must be at least 1")
    source = dataset.describe()
    meta = _prepare_output(out, source, options)
    dataset.prepare(progress=options.progress)
    loaded = {split: dataset.load(split) for split in SPLITS}
    for split, part in loaded.items():
        if len(part) == 0:
            raise DataError(f"{part.source or source}: the {split} split has no clouds to pack")
        if options.num_points is not None:
            fewest = point_counts(part)[0]
            if fewest < options.num_points:
                raise DataError(
                    f"--num_points={options.num_points} but a {split} cloud of {part.source} has only {fewest} points"
                )
    if meta is None:
        meta = ShardMeta(source, list(loaded["train"].class_names), options.num_points)
        out.mkdir(parents=True, exist_ok=True)
        meta.write(out)
    for split, part in loaded.items():
        if split in meta.splits and meta.splits[split].complete:
            continue
        _pack_split(dataset, split, part, out, options)
        fewest, most = point_counts(part)
        if options.num_points is not None:
            fewest = most = options.num_points
        meta.splits[split] = SplitMeta(len(part), fewest, most, complete=True)
        meta.write(out)
    return meta
