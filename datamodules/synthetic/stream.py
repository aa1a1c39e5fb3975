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

from datamodules.synthetic.shapes import CLASS_NAMES
from datamodules.synthetic.generate import balanced_labels, generate_shape

STREAM = 7
"""Generator key that separates the stream from the cached splits (0 train, 1 test)."""


class ProceduralClouds:
    """``num_per_class`` × 28 procedural clouds per epoch, generated on access.

    Args:
        num_per_class: shapes per class and epoch (the epoch's length is 28 × this).
        num_points: points per cloud.
        seed: stream seed.
    """

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

    def labels(self) -> np.ndarray:
        """(n,) int64 balanced labels of the current epoch, shuffled per epoch."""
        return balanced_labels(self.num_per_class, [self.seed, STREAM, self.epoch])

    def __getitem__(self, index: int | np.ndarray) -> np.ndarray:
        """Cloud ``index`` (an int) or clouds ``index`` (a 1-d integer array) of the current epoch."""
        single = isinstance(index, (int, np.integer))
        rows = np.atleast_1d(np.asarray(index))
        if rows.dtype.kind not in "iu" or rows.ndim != 1:
            raise TypeError(
                "a fresh-draw synthetic split is read by integer indices only (it is a pretraining "
                "stream; a probe needs the fixed set: fresh_train_each_epoch false)"
            )
        if len(rows) and not (0 <= rows.min() and rows.max() < len(self)):
            raise IndexError(f"indices outside [0, {len(self)})")
        labels = self.labels()
        out = np.empty((len(rows), self.num_points, 3), dtype=np.float32)
        for row, i in enumerate(rows):
            rng = np.random.default_rng([self.seed, STREAM, self.epoch, int(i)])
            out[row] = generate_shape(int(labels[i]), rng, self.num_points)
        return out[0] if single else out
