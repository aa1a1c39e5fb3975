"""Procedural synthetic 3D shape data set, cached in the ModelNet40 h5 layout.

No real data set can be downloaded on the project's machines, so this is the
embedded default for pretraining and for the linear-probe evaluation. Shapes
are assembled from parametric parts (see :mod:`datamodules.synthetic.shapes`) with
several design variants per class and continuous per-instance proportions,
then deformed, cut (partial surfaces), resampled, jittered, rotated about the
up axis (y) and normalised to the unit sphere. Many classes share their gross
shape and differ in a structural detail (mug/cup/kettle, chair/armchair/stool,
table/desk/bench, bookshelf/cabinet, bottle/vase/jar, car/truck, monitor/laptop,
airplane/helicopter), so a randomly initialised network cannot separate them
by silhouette alone, while a network that learned parts can.

Sample ``i`` of a split is drawn from its own generator
``np.random.default_rng([seed, split_index, i])``: the data does not depend on
generation order or parallelism.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import tempfile
import uuid

import h5py
import numpy as np
from rich.progress import track

from datamodules.cache import default_cache_dir
from datamodules.dataset import PointCloudSet, PointCloudSplit
from datamodules.synthetic.generate import balanced_labels, generate_shape
from datamodules.synthetic.shapes import CLASS_NAMES

VERSION = 1
"""Bump whenever the generated data changes: it is part of the cache key."""

SPLITS = ("train", "test")
META_FILE = "pointdwc_synthetic.json"
SHARD_SIZE = 2048


# -------------------------------------------------------------------- generation
def _split_labels(split: str, num_per_class: int, seed: int) -> np.ndarray:
    """Balanced labels in a seed-determined shuffled order."""
    return balanced_labels(num_per_class, [seed, SPLITS.index(split)])


def generate_split(
    split: str, num_per_class: int, num_points: int = 2048, seed: int = 0, progress: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Generate a whole split: data (n, num_points, 3) float32 and labels (n,) int64."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    labels = _split_labels(split, num_per_class, seed)
    data = np.empty((len(labels), num_points, 3), dtype=np.float32)
    split_index = SPLITS.index(split)
    steps = track(range(len(labels)), description=f"synthetic {split}", disable=not progress)
    for i in steps:
        data[i] = generate_shape(int(labels[i]), np.random.default_rng([seed, split_index, i]), num_points)
    return data, labels


# ----------------------------------------------------------------------- caching
def dataset_dirname(num_train_per_class: int, num_test_per_class: int, num_points: int, seed: int) -> str:
    """Cache sub-directory name encoding the generation parameters."""
    return f"synthetic-v{VERSION}-s{seed}-tr{num_train_per_class}-te{num_test_per_class}-p{num_points}"


def _meta(num_train_per_class: int, num_test_per_class: int, num_points: int, seed: int) -> dict:
    """The generation parameters recorded next to the shards."""
    n = len(CLASS_NAMES)
    return {
        "version": VERSION,
        "seed": seed,
        "classes": list(CLASS_NAMES),
        "num_points": num_points,
        "num_train_per_class": num_train_per_class,
        "num_test_per_class": num_test_per_class,
        "num_train": n * num_train_per_class,
        "num_test": n * num_test_per_class,
    }


def _read_meta(root: pathlib.Path) -> dict | None:
    """The recorded parameters of a cache directory, or None."""
    try:
        return json.loads((root / META_FILE).read_text())
    except (OSError, ValueError):
        return None


def _is_complete(root: pathlib.Path, meta: dict) -> bool:
    """Whether ``root`` holds a finished cache generated with ``meta``."""
    if _read_meta(root) != meta or not (root / "shape_names.txt").is_file():
        return False
    for split in SPLITS:
        index = root / f"{split}_files.txt"
        if not index.is_file():
            return False
        shards = [line.strip() for line in index.read_text().splitlines() if line.strip()]
        if not shards or not all((root / pathlib.PurePosixPath(s).name).is_file() for s in shards):
            return False
    return True


def _write_split(directory: pathlib.Path, dirname: str, split: str, data: np.ndarray, labels: np.ndarray) -> None:
    """Shards of at most SHARD_SIZE samples plus the ``<split>_files.txt`` index."""
    lines = []
    for k, start in enumerate(range(0, len(labels), SHARD_SIZE)):
        name = f"ply_data_{split}{k}.h5"
        with h5py.File(directory / name, "w") as f:
            f.create_dataset("data", data=data[start : start + SHARD_SIZE].astype(np.float32))
            f.create_dataset("label", data=labels[start : start + SHARD_SIZE, None].astype(np.uint8))
        lines.append(f"data/{dirname}/{name}")
    (directory / f"{split}_files.txt").write_text("\n".join(lines) + "\n")


def ensure_synthetic_dataset(
    root: str | os.PathLike | None = None,
    num_train_per_class: int = 100,
    num_test_per_class: int = 40,
    num_points: int = 2048,
    seed: int = 0,
    progress: bool = True,
) -> pathlib.Path:
    """Generate the data set into ``root`` in the ModelNet40 h5 layout unless it is already there.

    ``root`` defaults to ``default_cache_dir() / dataset_dirname(...)``. The
    files are written to a temporary sibling directory that is renamed to
    ``root`` at the end, so an interrupted run never leaves a partial cache.
    Returns ``root``.
    """
    meta = _meta(num_train_per_class, num_test_per_class, num_points, seed)
    if root is None:
        root = default_cache_dir() / dataset_dirname(num_train_per_class, num_test_per_class, num_points, seed)
    root = pathlib.Path(root).expanduser().absolute()
    if _is_complete(root, meta):
        return root
    if root.exists() and any(root.iterdir()) and _read_meta(root) is None:
        raise FileExistsError(f"{root} is not empty and is not a pointdwc synthetic data set; refusing to overwrite it")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is an ordinary directory
        (tmp / "shape_names.txt").write_text("\n".join(CLASS_NAMES) + "\n")
        for split, per_class in zip(SPLITS, (num_train_per_class, num_test_per_class), strict=True):
            data, labels = generate_split(split, per_class, num_points, seed, progress)
            _write_split(tmp, root.name, split, data, labels)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")  # written last: marks completion
        if _is_complete(root, meta):  # a concurrent run finished first: keep its copy
            return root
        if root.exists():  # stale cache (other parameters or incomplete): move it away first
            stale = root.with_name(f".{root.name}.stale-{uuid.uuid4().hex[:8]}")
            os.replace(root, stale)
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.replace(tmp, root)
        except OSError:
            if not _is_complete(root, meta):  # a concurrent run did not finish it either
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


class SyntheticShapes(PointCloudSet):
    """The embedded procedural shape set (28 classes), generated once into the cache.

    Args:
        num_train_per_class: training shapes per class.
        num_test_per_class: test shapes per class.
        num_points: points per cloud.
        seed: generation seed (a different seed gives a different set).
        fresh_train_each_epoch: the train split is an endless stream: every epoch a new
            draw of ``num_train_per_class`` shapes per class, generated while loading
            (:class:`~datamodules.synthetic.stream.ProceduralClouds`) instead of the cached
            fixed set. The test split stays the cached one.
    """

    def __init__(
        self,
        num_train_per_class: int = 100,
        num_test_per_class: int = 40,
        num_points: int = 2048,
        seed: int = 0,
        fresh_train_each_epoch: bool = False,
    ) -> None:
        self.num_train_per_class = num_train_per_class
        self.num_test_per_class = num_test_per_class
        self.num_points = num_points
        self.seed = seed
        self.fresh_train_each_epoch = fresh_train_each_epoch

    def prepare(self, progress: bool = True) -> pathlib.Path:
        """Generate the set into the cache unless it is there; return its folder."""
        return ensure_synthetic_dataset(
            None, self.num_train_per_class, self.num_test_per_class, self.num_points, self.seed, progress
        )

    def load(self, split: str) -> PointCloudSplit:
        from datamodules.formats.modelnet_h5 import read_modelnet_h5

        self._check_split_name(split)
        if split == "train" and self.fresh_train_each_epoch:
            from datamodules.synthetic.stream import ProceduralClouds

            clouds = ProceduralClouds(self.num_train_per_class, self.num_points, self.seed)
            return PointCloudSplit(clouds, clouds.labels(), list(CLASS_NAMES), self.describe())
        loaded = read_modelnet_h5(self.prepare(progress=False), split)
        loaded.source = self.describe()
        return loaded

    def describe(self) -> str:
        fresh = ", fresh train draw each epoch" if self.fresh_train_each_epoch else ""
        return f"SyntheticShapes(seed={self.seed}, {self.num_points} points{fresh})"
