"""DataModule that serves raw clouds and turns them into multi-crop views on the device.

Loader workers only copy rows of an in-memory or memory-mapped array; cropping, resampling and augmentation run
batched in ``on_after_batch_transfer`` on the training device, so neither 2 CPU cores
nor a GPU waits on per-sample Python work.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.distributed as dist
from pytorch_lightning.utilities.rank_zero import rank_zero_warn
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from datamodules.views.crops import MultiCrop, MultiCropConfig
from datamodules.dataset import PointCloudSet, PointCloudSplit
from datamodules.detect import resolve_dataset
from datamodules.errors import DataError
from datamodules.loader import ResumableDataLoader
from datamodules.splits.validation_split import stratified_split


def no_validation_split_message(field: str = "data.val_fraction") -> str:
    """The one line ``pointdwc validate`` answers for a run without held-out pretraining shapes."""
    return (
        f"{field} is 0: this run has no held-out pretraining shapes to validate on (the test split is "
        f"only for pointdwc test); pass --{field} F (0 < F < 1) to hold out a seeded, stratified share F "
        "of the train split (shapes are then held out of training only for new runs: a checkpoint trained "
        "with all of them has seen those shapes)"
    )


class CloudDataset(Dataset):
    """(clouds, labels) batches from a split held in memory or memory-mapped.

    Batches are read with one fancy index (``__getitems__``), in sorted order so a
    memory-mapped file is read front to back, instead of one Python call per sample.
    Pickling (for worker processes) sends the path of a memory-mapped file, not its data.
    """

    def __init__(self, split: PointCloudSplit, rows: np.ndarray | None = None) -> None:
        self.points = split.points
        self.labels = split.labels
        self.rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        """Only these rows of the split (a part carved out of it), read in place; None: all."""

    def __len__(self) -> int:
        return len(self.points) if self.rows is None else len(self.rows)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        if self.rows is not None:
            index = int(self.rows[index])
        return torch.from_numpy(np.array(self.points[index])), torch.tensor(self.labels[index])

    def __getitems__(self, indices: list[int]) -> tuple[Tensor, Tensor]:
        index = np.asarray(indices, dtype=np.int64)
        if self.rows is not None:
            index = self.rows[index]
        order = np.argsort(index, kind="stable")
        rows = np.empty((len(index), *self.points.shape[1:]), dtype=np.float32)
        rows[order] = self.points[index[order]]
        return torch.from_numpy(rows), torch.from_numpy(np.asarray(self.labels[index], dtype=np.int64))

    def set_epoch(self, epoch: int) -> None:
        """Forwarded to a split drawn afresh each epoch (a procedural stream); else nothing."""
        set_epoch = getattr(self.points, "set_epoch", None)
        if set_epoch is not None:
            set_epoch(epoch)
            self.labels = self.points.labels()

    @property
    def changes_per_epoch(self) -> bool:
        return hasattr(self.points, "set_epoch")

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if isinstance(self.points, np.memmap) and self.points.filename:
            state["points"] = ("memmap", self.points.filename)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if isinstance(state["points"], tuple) and state["points"][0] == "memmap":
            state["points"] = np.load(state["points"][1], mmap_mode="r")
        self.__dict__.update(state)


CHECKPOINT_CONFIG_KEY = "pointdwc_config"
"""The checkpoint entry holding the run's resolved config as YAML (``lightning_modules.checkpoint_encoder.CONFIG_KEY``)."""


def _checkpoint_data_config(checkpoint: dict[str, Any]) -> dict[str, Any] | None:
    """The ``data`` section of the config the CLI saved into a checkpoint (None without one)."""
    import yaml

    text = checkpoint.get(CHECKPOINT_CONFIG_KEY)
    if not isinstance(text, str):
        return None
    try:
        data = (yaml.safe_load(text) or {}).get("data")
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


VAL_SEED_OFFSET = 0x7A1
"""Added to ``data.seed`` for the validation crops' generator (apart from the training crops' draws)."""


class _ValidationLoader(DataLoader):
    """A DataLoader that calls ``on_iter`` at the start of every pass (to reseed the crops)."""

    def __init__(self, *args: Any, on_iter: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_iter = on_iter

    def __iter__(self) -> Any:
        self.on_iter()
        return super().__iter__()


def collate_batch(batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """``CloudDataset.__getitems__`` already returns a batch."""
    return batch


class PointCloudDataModule(pl.LightningDataModule):
    """Pretraining data: clouds of any :class:`PointCloudSet` (labels ignored), as multi-crop views.

    Args:
        dataset: the data set, by class path (``datamodules.ShapeNet55``, ``datamodules.ModelNet40H5``,
            ``datamodules.ModelNetResampled``, ``datamodules.ScanObjectNN``, ``datamodules.MeshFolder``,
            ``datamodules.SyntheticShapes``).
        root: shortcut: a data folder whose layout is detected (instead of ``dataset``); packed
            shards (``pointdwc data pack``, a folder or an ``s3://`` URL) are streamed with litdata.
            Neither given: the embedded synthetic set.
        batch_size: clouds per device and step.
        num_workers: loader worker processes (they only copy rows of an in-memory or
            memory-mapped array; 0 is enough on small machines).
        num_points: random subset of each raw cloud taken before cropping (``None``: all).
        crops: the multi-crop recipe.
        seed: seed of the crop generator; rank r draws from ``seed + r``, so ranks see
            different crops and a run is reproducible. Also the draw of the validation split.
        val_fraction: share of each class of the train split held out of training (seeded by
            ``seed``, stratified by label: :func:`~datamodules.splits.validation_split.stratified_split`)
            for the validation loop: ``val/loss*`` every ``trainer.check_val_every_n_epoch`` in
            ``fit`` and ``pointdwc validate``. Its views are cropped like training's but from a
            generator reseeded at every pass, so validation losses are deterministic. 0 (the
            default): every train shape is fitted and there is no validation loop.
    """

    def __init__(
        self,
        dataset: PointCloudSet | None = None,
        root: str | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
        num_points: int | None = None,
        crops: MultiCropConfig = MultiCropConfig(),
        seed: int = 0,
        val_fraction: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= val_fraction < 1.0:
            raise DataError(f"data.val_fraction={val_fraction}: the validation fraction must be in [0, 1)")
        self.val_fraction = float(val_fraction)
        self.rows: dict[str, np.ndarray] = {}
        """The rows of the train split each loader serves when a validation part is carved out."""
        self._val_generator: torch.Generator | None = None
        self._val_generator_fresh = True
        self.dataset = resolve_dataset(dataset, root, "data.dataset", "data.root")
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.num_points = num_points
        self.multicrop = MultiCrop(crops)
        self.seed = seed
        self._generator: torch.Generator | None = None
        self._generator_state: Tensor | None = None
        self._train_loader: ResumableDataLoader | None = None
        self._loader_state: dict[str, int] | None = None
        self.splits: dict[str, PointCloudSplit] = {}

    def prepare_data(self) -> None:
        """One-time work (generate the synthetic set, pack a file-per-shape set) on rank 0."""
        self.dataset.prepare(progress=True)

    def setup(self, stage: str) -> None:
        """Load the split(s) the stage needs."""
        wanted = ["train"] if stage in ("fit", "validate") else ["test"] if stage == "test" else []
        if stage == "validate" and not self.val_fraction > 0:
            raise DataError(no_validation_split_message())
        if self.streams and "train" in wanted:
            if self.val_fraction > 0:
                raise DataError(
                    f"data.val_fraction={self.val_fraction}: no shape can be held out of streamed shards; "
                    "set data.val_fraction: 0"
                )
            self.dataset.require_stream_points(self.num_points, "data.num_points")  # type: ignore[attr-defined]
            wanted = []  # streamed by train_dataloader, never loaded
        for split in wanted:
            if split not in self.splits:
                loaded = self.dataset.load(split)
                loaded.require_points(self.num_points, "data.num_points")
                self.splits[split] = loaded
        if "train" in wanted and self.val_fraction > 0 and "val" not in self.rows:
            self._carve_validation()
        if stage == "fit" and "val" not in self.rows and self.trainer is not None:
            # nothing held out: no validation loop (as before there was one), without Lightning
            # asking for a loader and warning that it is empty; the trainer's value is back after fit
            self._limit_val_batches = self.trainer.limit_val_batches
            self.trainer.limit_val_batches = 0

    def teardown(self, stage: str) -> None:
        """Give the trainer its ``limit_val_batches`` back (:meth:`setup` of a fit without held-out shapes)."""
        saved = getattr(self, "_limit_val_batches", None)
        if stage == "fit" and saved is not None and self.trainer is not None:
            self.trainer.limit_val_batches = saved
            self._limit_val_batches = None

    def _carve_validation(self) -> None:
        """Hold a seeded, stratified ``val_fraction`` of the train split out of training."""
        split = self.splits["train"]
        if hasattr(split.points, "set_epoch"):
            raise DataError(
                f"data.val_fraction={self.val_fraction}: {split.source} draws its train shapes afresh every "
                "epoch, so no shape can be held out; set data.val_fraction: 0 or use a fixed set"
            )
        fit_idx, val_idx = stratified_split(split.labels, self.val_fraction, self.seed)
        if len(val_idx) == 0:
            raise DataError(
                f"data.val_fraction={self.val_fraction} holds out no shape of {split.source} "
                "(every class has a single shape)"
            )
        self.rows = {"train": fit_idx, "val": val_idx}

    def _loader(self, split: str, shuffle: bool, position: dict[str, int] | None = None) -> DataLoader:
        dataset = CloudDataset(self.splits[split], self.rows.get(split))
        loader = ResumableDataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=shuffle,
            num_workers=self.num_workers,
            collate_fn=collate_batch,
            pin_memory=torch.cuda.is_available(),
            # workers of a per-epoch stream are made anew each epoch, to receive its epoch
            persistent_workers=self.num_workers > 0 and not dataset.changes_per_epoch,
            generator=torch.Generator() if shuffle else None,  # reseeded from (seed, epoch) per epoch
            # constructor arguments, so the loader Lightning rebuilds with a DistributedSampler keeps them
            seed=self.seed,
            epoch_source=self._current_epoch,
            position=position,
        )
        return loader

    @property
    def streams(self) -> bool:
        """Whether the train split is streamed from shards (:class:`~datamodules.streaming.shard_set.ShardSet`)."""
        return bool(getattr(self.dataset, "streams", False))

    def _current_epoch(self) -> int:
        return self.trainer.current_epoch if self.trainer is not None else 0

    def train_dataloader(self) -> DataLoader:
        """Shuffled training clouds; resumes mid-epoch from a checkpoint's loader position."""
        if self.streams:  # litdata: its own sharding over ranks, seeded shuffle and resumable state
            loader = self.dataset.train_loader(  # type: ignore[attr-defined]
                self.batch_size, self.num_workers, self.seed, self.num_points
            )
            if self._loader_state is not None:
                loader.load_state_dict(self._loader_state)
        else:
            loader = self._loader("train", shuffle=True, position=self._loader_state)
        self._loader_state = None
        self._train_loader = loader
        return loader

    def _iterated_train_loader(self) -> Any:
        """The training loader Lightning iterates: under DDP not the one :meth:`train_dataloader`
        returned but a copy with a ``DistributedSampler``."""
        trainer = self.trainer
        iterated = None
        if trainer is not None:
            try:
                iterated = trainer.train_dataloader
            except (AttributeError, RuntimeError):
                iterated = None
        if self.streams:  # litdata's loader: Lightning iterates the one train_dataloader returned
            return iterated if iterated is not None else self._train_loader
        return iterated if isinstance(iterated, ResumableDataLoader) else self._train_loader

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def val_dataloader(self) -> DataLoader | list:
        """The held-out train shapes, in order (none, so no validation loop, with ``val_fraction`` 0)."""
        if "val" not in self.rows:
            return []
        dataset = CloudDataset(self.splits["train"], self.rows["val"])
        return _ValidationLoader(
            dataset,
            on_iter=self._reset_val_generator,
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=collate_batch,
            pin_memory=torch.cuda.is_available(),
        )

    def _reset_val_generator(self) -> None:
        self._val_generator_fresh = True

    def val_generator(self, device: torch.device) -> torch.Generator:
        """The validation crops' generator: reseeded (``seed`` + rank) at every pass over the loader."""
        if self._val_generator_fresh or self._val_generator is None or self._val_generator.device != device:
            rank = self.trainer.global_rank if self.trainer is not None else 0
            self._val_generator = torch.Generator(device=device)
            self._val_generator.manual_seed(VAL_SEED_OFFSET + self.seed + rank)
            self._val_generator_fresh = False
        return self._val_generator

    def _validating(self) -> bool:
        trainer = self.trainer
        return trainer is not None and bool(trainer.validating or trainer.sanity_checking)

    def generator(self, device: torch.device) -> torch.Generator:
        """The crop generator on ``device``, seeded per rank (restored from a checkpoint)."""
        if self._generator is None or self._generator.device != device:
            rank = self.trainer.global_rank if self.trainer is not None else 0
            self._generator = torch.Generator(device=device)
            self._generator.manual_seed(self.seed + rank)
            if self._generator_state is not None:
                self._generator.set_state(self._generator_state)
                self._generator_state = None
        return self._generator

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> dict[str, Tensor]:
        """Raw clouds (B, N, 3) on the device -> global and local crops."""
        points, labels = batch
        gen = self.val_generator(points.device) if self._validating() else self.generator(points.device)
        if self.num_points is not None and self.num_points < points.shape[1]:
            keep = torch.rand(points.shape[:2], device=points.device, generator=gen).argsort(1)[:, : self.num_points]
            points = torch.gather(points, 1, keep.unsqueeze(-1).expand(-1, -1, 3))
        views = self.multicrop(points.float(), gen)
        return {"global": views["global"].to(points.dtype), "local": views["local"].to(points.dtype), "label": labels}

    def warn_if_trained_on_validation(self, checkpoint: dict[str, Any]) -> None:
        """Warn (``validate``) when the checkpoint's run did not hold out these shapes: another
        ``val_fraction`` or ``seed`` in the config the CLI saved into it (nothing said without one)."""
        trained = _checkpoint_data_config(checkpoint)
        if trained is None or not self.val_fraction > 0:
            return
        fraction, seed = float(trained.get("val_fraction") or 0.0), int(trained.get("seed") or 0)
        if fraction != self.val_fraction or seed != self.seed:
            rank_zero_warn(
                f"the checkpoint's run held out data.val_fraction={fraction:g} with data.seed={seed}, not "
                f"{self.val_fraction:g} with seed {self.seed}: it was trained on some or all of the shapes "
                "validated here, so val/loss* is not a held-out figure (validate with the run's own "
                "config.yaml; shapes are held out only by a run started with --data.val_fraction F)"
            )

    def state_dict(self) -> dict[str, Any]:
        """Every rank's crop-generator state and the position in the epoch, for exact resume.

        The loader position is kept here as well as by Lightning's loop state because the
        DataModule is restored before the loaders are built, whereas the loop state is
        applied only if the loaders are built after it (``estimated_stepping_batches``
        builds them earlier).
        """
        state = self._generator.get_state() if self._generator is not None else self._generator_state
        iterated = self._iterated_train_loader()
        loader = iterated.state_dict() if iterated is not None else self._loader_state
        if dist.is_available() and dist.is_initialized():  # every rank's state, in rank order
            world = dist.get_world_size()
            states: list[Any] = [None] * world
            dist.all_gather_object(states, state)
            loaders: list[Any] = [None] * world
            dist.all_gather_object(loaders, loader)
        else:
            states, loaders = [state], [loader]
        return {"generators": states, "train_loader": loaders[0], "train_loaders": loaders}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Take this rank's generator state and loader position back."""
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        positions = state_dict.get("train_loaders") or []  # absent from checkpoints of older versions
        position = positions[rank] if rank < len(positions) else state_dict.get("train_loader")
        iterated = self._iterated_train_loader()
        if position is not None and iterated is not None:
            iterated.load_state_dict(position)
        else:
            self._loader_state = position
        states = state_dict.get("generators") or []
        own = states[rank] if rank < len(states) else None
        if own is not None:
            self._generator_state = own
            self._generator = None
