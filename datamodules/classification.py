"""Labelled clouds for supervised downstream training, with the split discipline of the honest protocol.

``fit`` reads only the **train** split: a stratified, seeded validation split is carved from it
(:func:`~datamodules.splits.validation_split.stratified_split`, 10 % by default) and the network fits
on the rest. The **test** split is loaded only by ``test`` (the protocol runs it once per
reported checkpoint, after training). ``validate_on: test`` is the field's protocol (validate
on the test split and keep the best test epoch): it exists for comparison with published
figures and every printout of it says so.

Training clouds are a fresh random subset of ``num_points`` points each time, augmented on the
device (Point-MAE's scale-and-translate by default: per-axis scale U[2/3, 3/2], shift
U[-0.2, 0.2]; or a rotation about the up axis); validation and test clouds are the first
``num_points`` points, unaugmented. Under DDP each validation and test shape is evaluated on
exactly one rank (no padding), so the metrics count every shape once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Sampler

from datamodules.views.augment import AugmentConfig, augment
from datamodules.dataset import PointCloudSet, PointCloudSplit
from datamodules.detect import resolve_dataset
from datamodules.errors import DataError
from datamodules.pointcloud import CloudDataset, collate_batch
from datamodules.splits.kfold import AUTO_MAX_SHAPES, resolve_folds, stratified_folds
from datamodules.splits.validation_split import stratified_split

SCALE_AND_TRANSLATE = AugmentConfig(scale=(2 / 3, 3 / 2), rotate_up=False, translate=0.2, jitter_sigma=0.0)
"""Point-MAE's ``PointcloudScaleAndTranslate``: per-axis scale U[2/3, 3/2], shift U[-0.2, 0.2]."""

ROTATE_UP = AugmentConfig(scale=(1.0, 1.0), rotate_up=True, translate=0.0, jitter_sigma=0.0)
"""A random rotation about the up axis only (for sets whose shapes are rotated about it)."""

ValidateOn = Literal["val", "test"]


class ShardSampler(Sampler[int]):
    """Rows ``rank, rank + world, …``: every row on exactly one rank, no padding (evaluation under DDP)."""

    def __init__(self, length: int, rank: int, world: int) -> None:
        self.rows = list(range(rank, length, world))

    def __iter__(self) -> Iterator[int]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)


class ClassificationDataModule(pl.LightningDataModule):
    """Train / validation / test loaders of labelled clouds (see the module docstring).

    Args:
        dataset: the data set by class path (any :class:`PointCloudSet`: ``datamodules.ModelNet40H5``,
            ``datamodules.ScanObjectNN``, ``datamodules.ModelNetFewShot``, ...).
        root: shortcut: a data folder whose layout is detected. Neither given: the synthetic set.
        batch_size: clouds per device and step.
        num_workers: loader worker processes.
        num_points: points per cloud fed to the network.
        val_fraction: share of each class of the train split held out for validation (0: none;
            the last epoch is then the only checkpoint reported).
        val_min_per_class: validation shapes per class, at least (never more than half a class;
            :func:`~datamodules.splits.validation_split.stratified_split`).
        split_seed: the draw of the validation split (and of the folds).
        folds: cross-validated selection (:mod:`datamodules.splits.kfold`): ``k >= 2`` stratified folds
            of the train split, each validating one run that fits on the others; the protocol then
            picks the optimizer step of the best mean validation accuracy and refits on the whole
            train split (:mod:`lightning_modules.commands.fold_selection`). ``0``: the single
            ``val_fraction`` split. ``auto``: 4 folds for a train split under 1,000 shapes, else 0.
        fold_every_n_steps: under ``folds``, validation (and the candidate checkpoints) every this many
            optimizer steps, the same steps in every fold run and in the refit.
        validate_on: ``val`` (the carved split; honest) or ``test`` (the field's protocol:
            the network fits on the whole train split and is validated on the test split).
        augment: training augmentation (default: scale-and-translate).
        seed: seed of the point subsets and augmentation; rank r uses ``seed + r``.
    """

    def __init__(
        self,
        dataset: PointCloudSet | None = None,
        root: str | None = None,
        batch_size: int = 32,
        num_workers: int = 0,
        num_points: int = 1024,
        val_fraction: float = 0.1,
        val_min_per_class: int = 1,
        split_seed: int = 0,
        validate_on: ValidateOn = "val",
        augment: AugmentConfig = SCALE_AND_TRANSLATE,
        seed: int = 0,
        folds: int | Literal["auto"] = 0,
        fold_every_n_steps: int = 25,
    ) -> None:
        super().__init__()
        check_supervised_settings(validate_on, batch_size)
        self.dataset = resolve_dataset(dataset, root, "data.dataset", "data.root")
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.num_points = num_points
        self.val_fraction = val_fraction
        self.val_min_per_class = val_min_per_class
        self.split_seed = split_seed
        self.validate_on = validate_on
        self.augment = augment
        self.seed = seed
        self.folds = folds
        self.fold_every_n_steps = fold_every_n_steps
        self.fold: int | None = None
        """Under ``folds``: the fold this run validates on (set by the protocol), or None for the refit on everything."""
        resolve_folds(folds, 0)  # a bad value fails here, before any data is read
        if fold_every_n_steps < 1:
            raise DataError(f"data.fold_every_n_steps={fold_every_n_steps}: must be at least 1")
        self.splits: dict[str, PointCloudSplit] = {}
        self._generator: torch.Generator | None = None
        stratified_split(np.zeros(0), val_fraction, split_seed, min_per_class=val_min_per_class)  # a bad fraction fails here, before any data is read

    # ------------------------------------------------------------------ splits
    def _load(self, split: str) -> PointCloudSplit:
        loaded = self.dataset.load(split)
        if hasattr(loaded.points, "set_epoch"):
            raise DataError(f"{loaded.source}: the {split} split is drawn afresh every epoch; fine-tuning needs a fixed one")
        if not loaded.class_names:
            raise DataError(f"{loaded.source}: no class folders, so no labels to fine-tune on; give a labelled set "
                            "(one folder per class)")
        loaded.require_points(self.num_points, "data.num_points")
        return loaded

    def _train_split(self) -> PointCloudSplit:
        if "all_train" not in self.splits:
            self.splits["all_train"] = self._load("train")
        return self.splits["all_train"]

    @property
    def class_names(self) -> list[str]:
        """The classes (read from the train split)."""
        return self._train_split().class_names

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_folds(self) -> int:
        """Folds of cross-validated selection (``data.folds`` resolved on the train split's size); 0: none."""
        if self.validate_on != "val" or self.folds == 0:
            return 0
        return resolve_folds(self.folds, len(self._train_split()))

    def fold_assignment(self) -> np.ndarray:
        """The fold of each train shape (:func:`~datamodules.splits.kfold.stratified_folds`)."""
        return stratified_folds(self._train_split().labels, self.num_folds, self.split_seed)

    def for_fold(self, fold: int) -> ClassificationDataModule:
        """A copy of this data module for the run that validates on ``fold`` (this one is the refit's)."""
        if not 0 <= fold < self.num_folds:
            raise DataError(f"fold {fold}: the train split has {self.num_folds} folds")
        copy = ClassificationDataModule.__new__(ClassificationDataModule)
        copy.__dict__.update(self.__dict__)
        copy.splits = {"all_train": self.splits["all_train"]} if "all_train" in self.splits else {}
        copy._generator = None
        copy.fold = fold
        return copy

    @property
    def carves_validation(self) -> bool:
        """Whether a validation split is carved from the train split (a fold's, under cross-validation)."""
        if self.num_folds:
            return self.fold is not None
        return self.validate_on == "val" and self.val_fraction > 0

    @property
    def has_validation(self) -> bool:
        """Whether there is a validation loader at all (a carved split, or the field's test split)."""
        return self.carves_validation or self.validate_on == "test"

    def prepare_data(self) -> None:
        """One-time work of the data set (generation, packing) on rank 0."""
        self.dataset.prepare(progress=True)

    def setup(self, stage: str) -> None:
        """``fit``: train (and the carved validation split); ``test``: the test split; nothing else."""
        if stage in ("fit", "validate") and "train" not in self.splits:
            whole = self._train_split()
            if self.num_folds and self.fold is not None:
                in_fold = self.fold_assignment() == self.fold
                self.splits["train"] = _rows(whole, np.flatnonzero(~in_fold), f"fit part (all but fold {self.fold})")
                self.splits["val"] = _rows(whole, np.flatnonzero(in_fold), f"fold {self.fold} of {self.num_folds}")
            elif self.carves_validation:
                fit_idx, val_idx = stratified_split(
                    whole.labels, self.val_fraction, self.split_seed, min_per_class=self.val_min_per_class
                )
                self.splits["train"] = _rows(whole, fit_idx, "fit part")
                self.splits["val"] = _rows(whole, val_idx, f"validation part ({self.val_fraction:.0%})")
            else:
                self.splits["train"] = whole
        if stage in ("fit", "validate") and self.validate_on == "test" and "val" not in self.splits:
            self.splits["val"] = self._load("test")  # the field's protocol: validation IS the test split
        if stage == "test":
            self.splits["test"] = self._load("test")  # read afresh for every evaluation, so each one is counted

    # ------------------------------------------------------------------ loaders
    def train_dataloader(self) -> DataLoader:
        """Shuffled training clouds (DistributedSampler under DDP); a last batch of one is dropped (BatchNorm)."""
        split = self.splits["train"]
        rank, world = trainer_world(self)
        if world > 1:
            sampler: Sampler[int] = DistributedSampler(range(len(split)), world, rank, shuffle=True, seed=self.seed)
        else:
            sampler = RandomSampler(range(len(split)), generator=torch.Generator().manual_seed(self.seed))
        per_rank = len(sampler)
        return DataLoader(
            CloudDataset(split), batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers,
            collate_fn=collate_batch, drop_last=per_rank % self.batch_size == 1 and per_rank > 1,
            pin_memory=torch.cuda.is_available(), persistent_workers=self.num_workers > 0,
        )

    def _eval_loader(self, split: str) -> DataLoader:
        data = self.splits[split]
        first = PointCloudSplit(data.points[:, : self.num_points], data.labels, data.class_names, data.source)
        rank, world = trainer_world(self)
        return DataLoader(
            CloudDataset(first), batch_size=self.batch_size, sampler=ShardSampler(len(first), rank, world),
            num_workers=self.num_workers, collate_fn=collate_batch, pin_memory=torch.cuda.is_available(),
        )

    def val_dataloader(self) -> DataLoader | list:
        """The carved validation split (or, under the field's protocol, the test split); none without one."""
        return self._eval_loader("val") if "val" in self.splits else []

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    # ------------------------------------------------------------------ on the device
    def generator(self, device: torch.device) -> torch.Generator:
        """Point-subset and augmentation generator on ``device``, seeded per rank."""
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device).manual_seed(self.seed + trainer_world(self)[0])
        return self._generator

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> tuple[Tensor, Tensor]:
        """Training batches: a random ``num_points`` subset of each cloud, then the augmentation."""
        points, labels = batch
        if self.trainer is None or not self.trainer.training:
            return points, labels
        gen = self.generator(points.device)
        if self.num_points < points.shape[1]:
            keep = torch.rand(points.shape[:2], device=points.device, generator=gen).argsort(1)[:, : self.num_points]
            points = torch.gather(points, 1, keep.unsqueeze(-1).expand(-1, -1, 3))
        return augment(points.float(), self.augment, gen).to(points.dtype), labels

    # ------------------------------------------------------------------ labels for printouts
    def describe_validation(self) -> str:
        """How checkpoints can be selected with this data (for the protocol line)."""
        if self.validate_on == "test":
            return "validated on the TEST split (the field's protocol: the selected checkpoint is the best test epoch)"
        if self.num_folds:
            return self.describe_folds()
        if not self.carves_validation:
            return "no validation split (the whole train split is fitted; only the last epoch is reported)"
        counts = ""
        if "val" in self.splits:
            per_class = np.bincount(self.splits["val"].labels, minlength=self.num_classes)
            counts = f"{len(self.splits['val'])} shapes, {per_class.min()} to {per_class.max()} per class; "
        minimum = f" (at least {self.val_min_per_class} per class)" if self.val_min_per_class > 1 else ""
        return (
            f"a stratified {self.val_fraction:.0%} validation split{minimum} carved from the train split "
            f"({counts}split seed {self.split_seed}; the network fits on the rest)"
        )

    def describe_folds(self) -> str:
        """Cross-validated selection, with the folds' sizes and why it was chosen (for the protocol line)."""
        sizes = np.bincount(self.fold_assignment(), minlength=self.num_folds)
        why = (f"data.folds auto: the train split has {len(self._train_split())} shapes, fewer than "
               f"{AUTO_MAX_SHAPES:,}" if self.folds == "auto" else f"data.folds {self.folds}")
        return (
            f"stratified {self.num_folds}-fold cross-validation on the train split ({why}; folds of "
            f"{sizes.min()} to {sizes.max()} shapes, split seed {self.split_seed}): one run per fold validated "
            f"every {self.fold_every_n_steps} steps, the step of the best mean over the folds chosen, then the "
            f"network refit on the whole train split and its weights at that step kept"
        )


def check_supervised_settings(validate_on: str, batch_size: int) -> None:
    """One DataError for a ``data.validate_on`` other than ``val``/``test`` or a ``data.batch_size`` below 1."""
    if validate_on not in ("val", "test"):
        raise DataError(f"data.validate_on must be 'val' or 'test', got {validate_on!r}")
    if batch_size < 1:
        raise DataError(f"data.batch_size={batch_size}: must be at least 1")


def trainer_world(datamodule: pl.LightningDataModule) -> tuple[int, int]:
    """``(rank, world size)`` of the trainer a DataModule is attached to; ``(0, 1)`` without one."""
    trainer = datamodule.trainer
    return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)


def _rows(split: PointCloudSplit, rows: np.ndarray, what: str) -> PointCloudSplit:
    """The ``rows`` of a split (read front to back from a memory-mapped file)."""
    points = np.asarray(split.points[np.sort(rows)], dtype=np.float32)
    return PointCloudSplit(points, split.labels[np.sort(rows)], split.class_names, f"{split.source}, {what}")
