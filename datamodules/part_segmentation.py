"""Part-segmentation shapes for fine-tuning, with the split discipline of the honest protocol.

The release's own splits decide everything (ShapeNetPart ships a validation split, and the
synthetic part set is written with one):

* ``validate_on: val`` (pointdwc's protocol, the default): the network fits on **train**, the
  checkpoint is selected on **val**, and **test** is read only by ``test`` (the protocol runs it
  once per reported checkpoint, after training);
* ``validate_on: test`` (the field's protocol: PointNet++, Point-MAE, Point-M2AE, point2vec): the
  network fits on **train + val** and is validated on **test** every epoch, the best test epoch
  being the reported one. It exists only for comparison with published figures; every
  printout of it says so.

Every shape is resampled to ``num_points`` (2048, as the field) with replacement: a new draw
each epoch for training (:class:`~datamodules.part_dataset.PartShapes` ``random``), the same
draw every time for validation and test (``fixed``, seeded by ``eval_seed`` only, so every
run and seed is scored on the same points). Training batches are augmented on the device
(PointNet++'s part-segmentation augmentation by default: one scale U[0.8, 1.25] for all axes,
a shift U[-0.1, 0.1] per axis). ``every_point`` also scores the test split on every original
point of each shape, its labels propagated from the network's 2048-point input. Under DDP
each validation and test shape is evaluated on exactly one rank.
"""

from __future__ import annotations

import os
from typing import Literal

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, DistributedSampler

from datamodules.views.augment import AugmentConfig, augment
from datamodules.classification import ShardSampler, check_supervised_settings, trainer_world
from datamodules.errors import DataError
from datamodules.loader import ResumableDataLoader
from datamodules.part_dataset import PartShapes, collate_parts
from datamodules.formats.part_split import PartSplit
from datamodules.part_table import PartTable
from datamodules.formats.shapenet_part import ShapeNetPart

SCALE_AND_SHIFT = AugmentConfig(
    scale=(0.8, 1.25), rotate_up=False, translate=0.1, jitter_sigma=0.0, isotropic_scale=True
)
"""PointNet++'s ``random_scale_point_cloud`` + ``shift_point_cloud`` (Point-MAE's and Point-M2AE's part segmentation)."""

ValidateOn = Literal["val", "test"]


class PartSegmentationDataModule(pl.LightningDataModule):
    """Train / validation / test loaders of part-labelled shapes (see the module docstring).

    Args:
        dataset: a set in ShapeNetPart's layout by class path (``datamodules.ShapeNetPart``,
            ``datamodules.SyntheticParts``).
        root: shortcut: a ``shapenetcore_partanno_segmentation_benchmark_v0_normal`` folder.
            Neither given: the embedded synthetic part set.
        batch_size: shapes per device and step.
        num_workers: loader worker processes.
        num_points: points per shape fed to the network (each shape resampled with replacement).
        validate_on: ``val`` (honest) or ``test`` (the field's protocol: fit on train + val,
            validate on the test split).
        every_point: also score the test split on every original point (propagated labels).
        augment: training augmentation (default: scale-and-shift, :data:`SCALE_AND_SHIFT`).
        seed: seed of the training draws and augmentation; None: the run's ``seed_everything``.
            Rank r uses ``seed + r``.
        eval_seed: seed of the fixed validation and test draws (the same for every run).
    """

    def __init__(
        self,
        dataset: ShapeNetPart | None = None,
        root: str | None = None,
        batch_size: int = 16,
        num_workers: int = 0,
        num_points: int = 2048,
        validate_on: ValidateOn = "val",
        every_point: bool = False,
        augment: AugmentConfig = SCALE_AND_SHIFT,
        seed: int | None = None,
        eval_seed: int = 0,
    ) -> None:
        super().__init__()
        check_supervised_settings(validate_on, batch_size)
        if num_points < 1:
            raise DataError(f"data.num_points={num_points}: must be at least 1")
        if dataset is not None and root is not None:
            raise DataError(f"give either data.dataset or data.root, not both (data.root={root})")
        if dataset is not None and not isinstance(dataset, ShapeNetPart):
            raise DataError(
                f"data.dataset is a {type(dataset).__name__}: part segmentation needs a set in ShapeNetPart's layout "
                "(datamodules.ShapeNetPart or datamodules.SyntheticParts)"
            )
        if dataset is None and root is None:
            from datamodules.synthetic.part_set import SyntheticParts

            dataset = SyntheticParts()
        self.dataset: ShapeNetPart = dataset if dataset is not None else ShapeNetPart(str(root))
        self.dataset.num_points = num_points  # its own resampling (as a classification set) names the same count
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.num_points = num_points
        self.validate_on = validate_on
        self.every_point = every_point
        self.augment = augment
        self.seed = seed
        self.eval_seed = eval_seed
        self.splits: dict[str, list[PartSplit]] = {}
        self._generator: torch.Generator | None = None

    # ------------------------------------------------------------------ the data
    @property
    def train_split_names(self) -> tuple[str, ...]:
        """The release splits the network fits on."""
        return ("train", "val") if self.validate_on == "test" else ("train",)

    @property
    def part_table(self) -> PartTable:
        """Categories and their global part ids (as packed)."""
        return self.dataset.packed_table()

    def _read(self, split: str) -> PartSplit:
        shapes = self.dataset.part_split(split)
        if len(shapes) == 0:
            raise DataError(f"{self.dataset.describe()} at {self.dataset.root}: the {split} split has no shapes")
        return shapes

    def prepare_data(self) -> None:
        """One-time work of the data set (generation, packing) on rank 0."""
        self.dataset.prepare(progress=True)

    def setup(self, stage: str) -> None:
        """``fit``: the training splits and the validation split; ``validate``: the latter; ``test``: the test split."""
        if stage == "fit" and "train" not in self.splits:
            self.splits["train"] = [self._read(split) for split in self.train_split_names]
        if stage in ("fit", "validate") and "val" not in self.splits:
            self.splits["val"] = [self._read("test" if self.validate_on == "test" else "val")]
        if stage == "test":
            self.splits["test"] = [self._read("test")]  # read afresh for every evaluation, so each one is counted

    # ------------------------------------------------------------------ loaders
    def _seed(self) -> int:
        """The training seed: ``seed``, or the run's ``seed_everything`` (Lightning's ``PL_GLOBAL_SEED``)."""
        return self.seed if self.seed is not None else int(os.environ.get("PL_GLOBAL_SEED", 0))

    def train_dataloader(self) -> DataLoader:
        """Shuffled shapes, freshly resampled every epoch; a last batch of one shape is dropped (BatchNorm)."""
        shapes = PartShapes(self.splits["train"], self.num_points, "random", self._seed())
        rank, world = trainer_world(self)
        sampler = DistributedSampler(range(len(shapes)), world, rank, shuffle=True, seed=self._seed()) if world > 1 else None
        per_rank = len(sampler) if sampler is not None else len(shapes)
        loader = ResumableDataLoader(
            shapes, batch_size=self.batch_size, shuffle=sampler is None, sampler=sampler,
            num_workers=self.num_workers, collate_fn=collate_parts,
            drop_last=per_rank % self.batch_size == 1 and per_rank > 1, pin_memory=torch.cuda.is_available(),
            generator=torch.Generator() if sampler is None else None,  # reseeded from (seed, epoch) per epoch
        )
        loader.seed = self._seed()
        loader.epoch_source = lambda: self.trainer.current_epoch if self.trainer is not None else 0
        return loader

    def _eval_loader(self, split: str, every_point: bool = False) -> DataLoader:
        shapes = PartShapes(self.splits[split], self.num_points, "fixed", self.eval_seed, every_point=every_point)
        rank, world = trainer_world(self)
        return DataLoader(
            shapes, batch_size=self.batch_size, sampler=ShardSampler(len(shapes), rank, world),
            num_workers=self.num_workers, collate_fn=collate_parts, pin_memory=torch.cuda.is_available(),
        )

    def val_dataloader(self) -> DataLoader:
        """The release's val split (or, under the field's protocol, the test split)."""
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        """The test split at ``num_points`` (and, with ``every_point``, every original point too)."""
        return self._eval_loader("test", self.every_point)

    # ------------------------------------------------------------------ on the device
    def generator(self, device: torch.device) -> torch.Generator:
        """Augmentation generator on ``device``, seeded per rank."""
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device).manual_seed(self._seed() + trainer_world(self)[0])
        return self._generator

    def on_after_batch_transfer(self, batch: dict[str, Tensor], dataloader_idx: int) -> dict[str, Tensor]:
        """Training batches: the augmentation (the part labels do not move)."""
        if self.trainer is None or not self.trainer.training:
            return batch
        points = batch["points"]
        batch["points"] = augment(points.float(), self.augment, self.generator(points.device)).to(points.dtype)
        return batch

    # ------------------------------------------------------------------ labels for printouts
    def describe_validation(self) -> str:
        """How checkpoints can be selected with this data (for the protocol line)."""
        if self.validate_on == "test":
            return (
                "validated on the TEST split (the field's protocol: the network fits on train + val and the selected "
                "checkpoint is the best test epoch)"
            )
        return "the release's val split (the network fits on the train split only)"
