"""Part-segmentation samples for a loader: shapes resampled to a fixed size, or with every original point.

:class:`PartShapes` serves one or more packed splits (train + val together for the
field's protocol, train alone with val for selection in the honest one) as dictionaries of
tensors:

- ``points`` (P, 3) float32, ``parts`` (P,) int64 global part ids, ``category`` () int64,
  ``index`` () int64 (position in the data set), and ``normals`` (P, 3) if asked for;
- ``num_points=2048`` resamples each shape, as the field trains and tests: ``"random"``
  draws anew every epoch (:meth:`set_epoch`; reproducible, identical in every worker),
  ``"fixed"`` the same points every time (:func:`~datamodules.formats.part_split.fixed_rng`: the
  clouds :class:`~datamodules.formats.shapenet_part.ShapeNetPart`'s ``load`` serves);
- ``num_points=None`` gives every original point (a varying count): batch those with
  :func:`collate_parts`, which pads and adds a ``mask``;
- ``every_point=True`` adds every original point to a resampled sample (``all_points``,
  ``all_parts``): the network sees the 2048 points, and its labels are propagated to and
  scored on all of them (``all_mask`` after :func:`collate_parts`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from datamodules.formats.part_split import PartShape, PartSplit, epoch_rng, fixed_rng

Resample = Literal["random", "fixed"]


class PartShapes(Dataset):
    """Shapes of one or more :class:`PartSplit` s, concatenated in the order given.

    Args:
        splits: the packed splits (e.g. ``[train, val]``).
        num_points: points per sample, or ``None`` for every original point.
        resample: ``"random"`` (a new draw every epoch, training) or ``"fixed"`` (evaluation).
        seed: of the draws.
        replace: resample with replacement (the field's loaders) or distinct points where possible.
        normals: also return each point's normal.
        every_point: also return every original point and its part (``all_points``, ``all_parts``).
    """

    def __init__(
        self,
        splits: Sequence[PartSplit],
        num_points: int | None = 2048,
        resample: Resample = "fixed",
        seed: int = 0,
        replace: bool = True,
        normals: bool = False,
        every_point: bool = False,
    ) -> None:
        if resample not in ("random", "fixed"):
            raise ValueError(f"resample must be 'random' or 'fixed', got {resample!r}")
        if not splits:
            raise ValueError("PartShapes needs at least one split")
        self.splits = list(splits)
        self.num_points = num_points
        self.resample = resample
        self.seed = seed
        self.replace = replace
        self.normals = normals
        self.every_point = every_point and num_points is not None
        self.epoch = 0
        self._starts = np.cumsum([0, *(len(s) for s in self.splits)])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def set_epoch(self, epoch: int) -> None:
        """Draw the ``"random"`` resampling of ``epoch`` from now on."""
        self.epoch = int(epoch)

    def locate(self, index: int) -> tuple[PartSplit, int]:
        """The split holding sample ``index`` and the shape's position in it."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} outside [0, {len(self)})")
        k = int(np.searchsorted(self._starts, index, side="right")) - 1
        return self.splits[k], index - int(self._starts[k])

    def shape(self, index: int) -> PartShape:
        """Sample ``index`` as a :class:`PartShape` (resampled or with every point)."""
        split, i = self.locate(index)
        if self.num_points is None:
            return split.shape(i)
        rng = fixed_rng(self.seed, split.split, i) if self.resample == "fixed" else epoch_rng(
            self.seed, self.epoch, split.split, i
        )
        return split.resampled(i, self.num_points, rng, self.replace)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        shape = self.shape(int(index))
        sample = {
            "points": torch.from_numpy(np.ascontiguousarray(shape.points, dtype=np.float32)),
            "parts": torch.from_numpy(np.asarray(shape.parts, dtype=np.int64)),
            "category": torch.tensor(shape.category, dtype=torch.int64),
            "index": torch.tensor(int(index), dtype=torch.int64),
        }
        if self.normals:
            sample["normals"] = torch.from_numpy(np.ascontiguousarray(shape.normals, dtype=np.float32))
        if self.every_point:
            split, i = self.locate(int(index))
            whole = split.shape(i)
            sample["all_points"] = torch.from_numpy(np.ascontiguousarray(whole.points, dtype=np.float32))
            sample["all_parts"] = torch.from_numpy(np.asarray(whole.parts, dtype=np.int64))
        return sample


def _lengths_mask(samples: list[dict[str, Tensor]], key: str) -> Tensor:
    """(B, longest) bool: the real rows of field ``key`` in each sample."""
    lengths = torch.tensor([len(s[key]) for s in samples])
    return torch.arange(int(lengths.max()))[None] < lengths[:, None]


def collate_parts(samples: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Stack samples, padding each per-point field to its longest; ``mask`` (B, N) marks real points.

    Padding repeats each shape's first point (label included), so a padded cloud has no
    point where it had none; metrics and losses must use ``mask`` (``all_mask`` for the
    ``all_*`` fields of every original point).
    """
    batch: dict[str, Tensor] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if values[0].ndim == 0:
            batch[key] = torch.stack(values)
            continue
        longest = max(len(v) for v in values)
        padded = []
        for v in values:
            pad = longest - len(v)
            padded.append(torch.cat([v, v[:1].expand(pad, *v.shape[1:])]) if pad else v)
        batch[key] = torch.stack(padded)
    batch["mask"] = _lengths_mask(samples, "points")
    if "all_points" in samples[0]:
        batch["all_mask"] = _lengths_mask(samples, "all_points")
    return batch
