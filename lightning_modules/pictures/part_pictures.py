"""W&B pictures of part segmentation: true and predicted parts of a few test shapes, side by side.

Each row is one test shape of the first test batch: its true parts, then the predicted parts
(the restricted argmax), coloured by part within the category (the same colour for the same
part in both panels), drawn by the project's renderer (:mod:`lightning_modules.pictures.render`), with
the shape's IoU in the caption; the two clouds also go to W&B as interactive ``Object3D``.
Only active with a ``WandbLogger``, on global rank 0; drawing uses no random numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import WandbLogger

from lightning_modules.downstream.part_iou import shape_ious
from lightning_modules.pictures.render import render_points, tile

PALETTE = np.array(
    [
        [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
        [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207],
    ],
    dtype=np.uint8,
)
"""Distinct colours (tab10) for the parts of one category, in part-id order."""


def part_colours(parts: np.ndarray, category_parts: np.ndarray) -> np.ndarray:
    """(N,) global part ids, the category's ids -> (N, 3) uint8: the k-th part of the category gets colour k."""
    rank = np.searchsorted(np.sort(category_parts), parts)
    return PALETTE[rank % len(PALETTE)]


class PartPictures(pl.Callback):
    """Log true vs predicted parts of the first ``num_shapes`` test shapes to W&B.

    Args:
        num_shapes: shapes shown (rows of the picture).
        image_size: pixels per panel.
    """

    def __init__(self, num_shapes: int = 4, image_size: int = 192) -> None:
        super().__init__()
        self.num_shapes = num_shapes
        self.image_size = image_size

    def on_test_batch_end(  # noqa: D102
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if batch_idx != 0 or not isinstance(outputs, dict) or "pred" not in outputs or not trainer.is_global_zero:
            return
        logger = next((lg for lg in trainer.loggers if isinstance(lg, WandbLogger)), None)
        if logger is None:
            return
        which = trainer.ckpt_path or "the last weights"
        self.log_parts(logger, batch, outputs["pred"], pl_module.part_mask, pl_module.table.categories, which,
                       trainer.global_step)

    @torch.no_grad()
    def log_parts(self, logger: WandbLogger, batch: dict[str, torch.Tensor], pred: torch.Tensor, part_mask: torch.Tensor,
                  categories: tuple[str, ...], which: str, step: int) -> None:
        """One row per shape: true parts, predicted parts."""
        import wandb

        n = min(self.num_shapes, len(pred))
        ious = shape_ious(pred[:n], batch["parts"][:n], batch["category"][:n], part_mask).tolist()
        rows, objects, names = [], {}, []
        for b in range(n):
            points = batch["points"][b].float().cpu().numpy()
            category = int(batch["category"][b])
            ids = np.flatnonzero(part_mask[category].cpu().numpy())
            true = part_colours(batch["parts"][b].cpu().numpy(), ids)
            guess = part_colours(pred[b].cpu().numpy(), ids)
            rows.append(tile([render_points(points, c, size=self.image_size) for c in (true, guess)]))
            for kind, colours in (("true", true), ("predicted", guess)):
                cloud = np.concatenate([points, colours.astype(np.float64)], axis=1)
                objects[f"parts/shape{b}_{kind}"] = wandb.Object3D(cloud)
            names.append(f"{b}: {categories[category]} IoU {100 * ious[b]:.1f}")
        caption = f"true (left) and predicted (right) parts, test split, {which}; " + "; ".join(names)
        logger.experiment.log({"parts/test": wandb.Image(np.concatenate(rows, axis=0), caption=caption), **objects},
                              step=step)
