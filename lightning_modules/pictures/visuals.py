"""Pictures for the W&B dashboard: what the network sees and where the teacher looks.

* the first training batch's global and local crops of a few clouds, as interactive 3D
  point clouds (``wandb.Object3D``) and as a static image;
* the paper's attention visualisation: probe clouds with every point coloured by the
  attention the teacher's [CLS] token pays to its patch in the last block, one panel
  per head (plus their mean), every ``every_n_epochs`` epochs and at the end.

Only active when a ``WandbLogger`` is attached; drawing happens on global rank 0 and
uses no random numbers, so logging pictures never changes a run.
"""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import WandbLogger

from backbones.grouping import knn
from lightning_modules.pictures.render import colormap, render_points, tile


def cls_attention_per_point(attention: torch.Tensor, centers: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """(B, H, T, T) attention, (B, M, 3) centres, (B, N, 3) points -> (B, H, N) attention of
    the [CLS] token to the patch whose centre is nearest each point."""
    cls_to_patch = attention[:, :, 0, 1:]  # (B, H, M)
    nearest = knn(points, centers, 1)[..., 0]  # (B, N)
    index = nearest[:, None, :].expand(-1, cls_to_patch.shape[1], -1)
    return torch.gather(cls_to_patch, 2, index)


class WandbVisuals(pl.Callback):
    """Log crop and attention pictures to W&B.

    Args:
        every_n_epochs: attention maps every this many epochs (and at the end of fit).
        num_clouds: clouds shown per picture.
        image_size: pixels per panel.
    """

    def __init__(self, every_n_epochs: int = 5, num_clouds: int = 4, image_size: int = 192) -> None:
        super().__init__()
        self.every_n_epochs = every_n_epochs
        self.num_clouds = num_clouds
        self.image_size = image_size
        self._crops_logged = False

    @staticmethod
    def _wandb(trainer: pl.Trainer) -> WandbLogger | None:
        if not trainer.is_global_zero:
            return None
        return next((lg for lg in trainer.loggers if isinstance(lg, WandbLogger)), None)

    # ------------------------------------------------------------------ crops
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int) -> None:  # noqa: D102
        logger = self._wandb(trainer)
        if logger is None or self._crops_logged:
            return
        self._crops_logged = True
        self.log_crops(logger, batch["global"], batch["local"], trainer.global_step)

    def log_crops(self, logger: WandbLogger, global_views: torch.Tensor, local_views: torch.Tensor, step: int) -> None:
        """One row per cloud: its global crops, then its local crops."""
        import wandb

        n = min(self.num_clouds, global_views.shape[1])
        rows, objects = [], {}
        for b in range(n):
            views = [v[b] for v in global_views] + [v[b] for v in local_views]
            rows.append(tile([render_points(v.float().cpu().numpy(), size=self.image_size) for v in views]))
            for kind, stack in (("global", global_views), ("local", local_views)):
                if len(stack):
                    pts = stack[0, b].float().cpu().numpy()
                    rgb = colormap(pts[:, 1]).astype(np.float64)
                    objects[f"crops/{kind}_cloud{b}"] = wandb.Object3D(np.concatenate([pts, rgb], axis=1))
        image = np.concatenate(rows, axis=0)
        caption = f"{global_views.shape[0]} global + {local_views.shape[0]} local crops per row"
        logger.experiment.log({"crops/views": wandb.Image(image, caption=caption), **objects}, step=step)

    # ------------------------------------------------------------------ attention
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        epoch = trainer.current_epoch + 1
        last = trainer.max_epochs is not None and epoch >= trainer.max_epochs
        if last or (self.every_n_epochs > 0 and epoch % self.every_n_epochs == 0):
            self.log_attention(trainer, pl_module)

    @torch.no_grad()
    def log_attention(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Teacher [CLS] attention of the last block on a few probe clouds, per head.

        Without a W&B logger (or on another rank) nothing is imported or computed.
        """
        logger = self._wandb(trainer)
        clouds = self._probe_clouds(trainer) if logger is not None else None
        if logger is None or clouds is None:
            return
        import wandb

        backbone = pl_module.teacher.backbone
        points = torch.from_numpy(np.ascontiguousarray(clouds)).to(pl_module.device)
        was_training = backbone.training
        backbone.eval()
        try:
            out = backbone(points, return_attention=True)
        finally:
            backbone.train(was_training)
        if out.attention is None or out.centers is None:
            return  # this backbone has no attention to show
        per_point = cls_attention_per_point(out.attention, out.centers, points).float().cpu().numpy()
        images = {}
        for b in range(per_point.shape[0]):
            maps = list(per_point[b]) + [per_point[b].mean(0)]
            panels = [render_points(clouds[b], colormap(m), size=self.image_size) for m in maps]
            images[f"attention/cloud{b}"] = wandb.Image(
                tile(panels), caption=f"[CLS] attention per head (last panel: mean), epoch {trainer.current_epoch}"
            )
        logger.experiment.log(images, step=trainer.global_step)

    def _probe_clouds(self, trainer: pl.Trainer) -> np.ndarray | None:
        from lightning_modules.evaluation.probe import LinearProbe

        probe = next((cb for cb in trainer.callbacks if isinstance(cb, LinearProbe)), None)
        if probe is None:
            return None
        split = probe._split("test")
        # one cloud of each of the first classes, so the pictures show different shapes
        picks = [int(np.flatnonzero(split.labels == c)[0]) for c in np.unique(split.labels)[: self.num_clouds]]
        return split.points[picks, : probe.num_points]
