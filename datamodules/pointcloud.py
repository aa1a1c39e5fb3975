"""DataModule that serves raw clouds and turns them into multi-crop views on the device.

Loader workers only index an in-memory array; cropping, resampling and augmentation run
batched in ``on_after_batch_transfer`` on the training device, so neither 2 CPU cores
nor a GPU waits on per-sample Python work.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from datamodules.crops import MultiCrop, MultiCropConfig
from datamodules.loader import ResumableDataLoader
from datamodules.modelnet_h5 import PointCloudSplit, read_modelnet_h5
from lightning_modules.dist import gather_objects, rank


@dataclass
class SyntheticConfig:
    """The embedded procedural data set, used when no ``root`` is given."""

    num_train_per_class: int = 100
    num_test_per_class: int = 40
    num_points: int = 2048
    seed: int = 0


class CloudDataset(Dataset):
    """(cloud, label) pairs from an in-memory split."""

    def __init__(self, split: PointCloudSplit) -> None:
        self.points = torch.from_numpy(split.points)
        self.labels = torch.from_numpy(split.labels)

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.points[index], self.labels[index]


def resolve_root(root: str | os.PathLike | None, synthetic: SyntheticConfig, progress: bool = True) -> Path:
    """``root`` itself, or the cached synthetic data set (generated on first use)."""
    if root is not None:
        return Path(root).expanduser()
    from datamodules.synthetic import ensure_synthetic_dataset

    return ensure_synthetic_dataset(
        None,
        num_train_per_class=synthetic.num_train_per_class,
        num_test_per_class=synthetic.num_test_per_class,
        num_points=synthetic.num_points,
        seed=synthetic.seed,
        progress=progress,
    )


class PointCloudDataModule(pl.LightningDataModule):
    """Pretraining data: clouds of a ModelNet40-HDF5-layout folder, or the synthetic set.

    Args:
        root: folder in the ModelNet40 HDF5 layout; ``None`` uses the embedded synthetic set.
        batch_size: clouds per device and step.
        num_workers: loader worker processes (indexing only; 0 is fine on small machines).
        num_points: random subset of each raw cloud taken before cropping (``None``: all).
        crops: the multi-crop recipe.
        synthetic: parameters of the synthetic set (used when ``root`` is None).
        seed: seed of the crop generator; rank r draws from ``seed + r``, so ranks see
            different crops and a run is reproducible.
    """

    def __init__(
        self,
        root: str | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
        num_points: int | None = None,
        crops: MultiCropConfig = MultiCropConfig(),
        synthetic: SyntheticConfig = SyntheticConfig(),
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.root = root
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.num_points = num_points
        self.multicrop = MultiCrop(crops)
        self.synthetic = synthetic
        self.seed = seed
        self._generator: torch.Generator | None = None
        self._generator_state: Tensor | None = None
        self._train_loader: ResumableDataLoader | None = None
        self._loader_state: dict[str, int] | None = None
        self.splits: dict[str, PointCloudSplit] = {}

    def prepare_data(self) -> None:
        """Generate the synthetic set once (rank 0) if it is the source."""
        resolve_root(self.root, self.synthetic)

    def setup(self, stage: str) -> None:
        """Load the split(s) the stage needs."""
        root = resolve_root(self.root, self.synthetic, progress=False)
        wanted = ["train"] if stage == "fit" else ["test"] if stage in ("test", "validate") else []
        for split in wanted:
            if split not in self.splits:
                self.splits[split] = read_modelnet_h5(root, split)
        if self.num_points is not None:
            for split in self.splits.values():
                if split.points.shape[1] < self.num_points:
                    raise ValueError(
                        f"data.num_points={self.num_points} but the clouds in {root} have only "
                        f"{split.points.shape[1]} points"
                    )

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        loader = ResumableDataLoader(
            CloudDataset(self.splits[split]),
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            generator=torch.Generator() if shuffle else None,  # reseeded from (seed, epoch) per epoch
        )
        loader.seed = self.seed
        loader.epoch_source = lambda: self.trainer.current_epoch if self.trainer is not None else 0
        return loader

    def train_dataloader(self) -> DataLoader:
        """Shuffled training clouds; resumes mid-epoch from a checkpoint's loader position."""
        loader = self._loader("train", shuffle=True)
        if self._loader_state is not None:
            loader.load_state_dict(self._loader_state)
            self._loader_state = None
        self._train_loader = loader
        return loader

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

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
        gen = self.generator(points.device)
        if self.num_points is not None and self.num_points < points.shape[1]:
            keep = torch.rand(points.shape[:2], device=points.device, generator=gen).argsort(1)[:, : self.num_points]
            points = torch.gather(points, 1, keep.unsqueeze(-1).expand(-1, -1, 3))
        views = self.multicrop(points.float(), gen)
        return {"global": views["global"].to(points.dtype), "local": views["local"].to(points.dtype), "label": labels}

    def state_dict(self) -> dict[str, Any]:
        """Every rank's crop-generator state and the position in the epoch, for exact resume.

        The loader position is kept here as well as by Lightning's loop state because the
        DataModule is restored before the loaders are built, whereas the loop state is
        applied only if the loaders are built after it (``estimated_stepping_batches``
        builds them earlier).
        """
        state = self._generator.get_state() if self._generator is not None else self._generator_state
        loader = self._train_loader.state_dict() if self._train_loader is not None else None
        return {"generators": gather_objects(state), "train_loader": loader}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Take this rank's generator state and the loader position back."""
        position = state_dict.get("train_loader")
        if position is not None and self._train_loader is not None:
            self._train_loader.load_state_dict(position)
        else:
            self._loader_state = position
        states = state_dict.get("generators") or []
        own = states[rank()] if rank() < len(states) else None
        if own is not None:
            self._generator_state = own
            self._generator = None
