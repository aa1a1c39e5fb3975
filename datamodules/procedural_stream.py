"""A training split of procedural shapes that is drawn afresh every epoch.

A fixed synthetic training set (2,800 shapes) is seen ten times in the CPU default run; an
endless stream shows the network a new draw of the same 28 classes each epoch instead, so
the pretraining can not memorise instances. :class:`ProceduralClouds` is an array-like the
DataModule's :class:`~datamodules.pointcloud.CloudDataset` reads like a memory-mapped
split: ``clouds[indices]`` returns ``(len(indices), num_points, 3)`` float32. Sample ``i``
of epoch ``e`` comes from its own generator ``default_rng([seed, STREAM, e, i])``, so a
batch depends only on (seed, epoch, index): reproducible, identical on every rank and in
every loader worker, and exact on resume. The training loader calls :meth:`set_epoch`
before each epoch (``DistributedSampler``'s convention).
"""

from __future__ import annotations

import numpy as np

from datamodules.shapes import CLASS_NAMES

STREAM = 7
"""Generator key that separates the stream from the cached splits (0 train, 1 test)."""


class ProceduralClouds:
    """``num_per_class`` × 28 procedural clouds per epoch, generated on access.

    Args:
        num_per_class: shapes per class and epoch (the epoch's length is 28 × this).
        num_points: points per cloud.
        seed: stream seed.
    """

    dtype = np.dtype(np.float32)
    ndim = 3

    def __init__(self, num_per_class: int, num_points: int, seed: int) -> None:
        self.num_per_class = num_per_class
        self.num_points = num_points
        self.seed = seed
        self.epoch = 0

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.num_per_class * len(CLASS_NAMES), self.num_points, 3)

    def __len__(self) -> int:
        return self.shape[0]

    def set_epoch(self, epoch: int) -> None:
        """Draw the clouds of ``epoch`` from now on."""
        self.epoch = int(epoch)

    def labels(self, epoch: int | None = None) -> np.ndarray:
        """(n,) int64 balanced labels of ``epoch`` (default: the current one), shuffled per epoch."""
        epoch = self.epoch if epoch is None else epoch
        labels = np.repeat(np.arange(len(CLASS_NAMES), dtype=np.int64), self.num_per_class)
        return np.random.default_rng([self.seed, STREAM, epoch, 2**31]).permutation(labels)

    def cloud(self, index: int, label: int) -> np.ndarray:
        """Sample ``index`` of the current epoch (class ``label``)."""
        from datamodules.synthetic import generate_shape

        rng = np.random.default_rng([self.seed, STREAM, self.epoch, int(index)])
        return generate_shape(int(label), rng, self.num_points)

    def __getitem__(self, index: int | np.ndarray) -> np.ndarray:
        if isinstance(index, (int, np.integer)):
            if not -len(self) <= index < len(self):
                raise IndexError(f"index {index} out of range for {len(self)} clouds")
            index = int(index) % len(self)
            return self.cloud(index, int(self.labels()[index]))
        index = np.asarray(index)
        if index.dtype.kind not in "iu" or index.ndim != 1:
            raise TypeError("ProceduralClouds takes an integer or a 1-d integer array of indices")
        labels = self.labels()
        out = np.empty((len(index), self.num_points, 3), dtype=np.float32)
        for row, i in enumerate(index):
            out[row] = self.cloud(int(i), int(labels[i]))
        return out

    def __array__(self, dtype: np.dtype | None = None, copy: bool | None = None) -> np.ndarray:
        """The whole current epoch (slow: generates every cloud)."""
        out = self[np.arange(len(self))]
        return out if dtype is None else out.astype(dtype)
