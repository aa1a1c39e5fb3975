"""Fine-tuning a backbone for part segmentation, from a pretraining checkpoint or from scratch.

backbone (initialised from ``pretrained``: the teacher of a pointdwc checkpoint by default, an
exported file, or nothing) inside :class:`~lightning_modules.downstream.part_segmenter.PartSegmenter`
(Point-MAE's structure: three evenly spaced blocks, max ‖ mean global feature, category MLP,
inverse-distance propagation to every point, per-point head) → per-point cross-entropy over
every global part id (the field's loss). AdamW without decay on biases and norms, warm-up +
cosine per step (:mod:`lightning_modules.pretrain.adamw`); gradient clipping and precision are the
trainer's, drop path the backbone's (``model.backbone.init_args.drop_path``).

Metrics are :class:`~lightning_modules.downstream.part_iou.PartMIoU` (the field's definitions: argmax
restricted to the shape's category, an absent part counting 1.0), logged in percent once per
epoch: ``val/inst_miou``, ``val/cls_miou``, ``test/inst_miou``, ``test/cls_miou`` on the
resampled points (2048, as the field), ``test/miou/<category>`` per category, and, when the
test batches carry every original point, ``test/every_point/{inst,cls}_miou`` on all of them
(labels propagated from the network's input points).

The part table (categories and their global part ids) comes from the data module in
``setup`` and is kept in the hyper-parameters, so a checkpoint rebuilds the model alone and
a checkpoint evaluated on data with another table is refused with one message.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from backbones.base import PointBackbone
from backbones.point_vit import PointViT
from backbones.pretrained import backbone_config
from datamodules.errors import DataError
from datamodules.part_table import PartTable
from lightning_modules.pretrain.adamw import AdamWConfig
from lightning_modules.checkpoint_encoder import BackboneOrigin, init_backbone_from
from lightning_modules.downstream.supervised import SupervisedTask
from lightning_modules.downstream.part_iou import PartMIoU, restricted_argmax
from lightning_modules.downstream.part_segmenter import PartSegmenter

TABLE_KEY = "part_table"
"""Hyper-parameter holding the :class:`~datamodules.part_table.PartTable` (plain types)."""


@dataclass
class SegmenterConfig:
    """Widths of :class:`~lightning_modules.downstream.part_segmenter.PartSegmenter` (defaults: Point-MAE's)."""

    blocks: list[int] | None = None
    """ViT blocks whose tokens are used (None: three evenly spaced, the last included)."""
    category_dim: int = 64
    propagation_dims: tuple[int, ...] = (1536, 1024)
    head_dims: tuple[int, ...] = (512, 256)
    dropout: float = 0.5
    neighbours: int = 3
    """Positions each point interpolates from."""


class PartSegmentation(SupervisedTask):
    """Backbone + part-segmentation head, trained end to end with per-point labels.

    Args:
        backbone: any :class:`~backbones.base.PointBackbone` giving local features (PoinT-ViT,
            PointNet, DGCNN); a pretrained file must hold the same architecture.
        pretrained: a pointdwc pretraining checkpoint or a ``pointdwc export`` ``.pt``, folder or Hub id to
            initialise the backbone from (the CLI's ``--ckpt``); None: from scratch.
        pretrained_network: ``teacher`` (default for checkpoints) or ``student``.
        segmenter: the widths of the propagation and head.
        optim: AdamW and its warm-up + cosine schedule.
        label_smoothing: of the cross-entropy (0: none).
        part_table: the categories and global part ids (a ``PartTable.to_dict()``); None takes
            the data module's in ``setup``.
    """

    MODEL = "segmentation"
    CHECKPOINT_HINT = "is it a `pointdwc partseg` checkpoint of this backbone? (its run folder's config.yaml: --config FILE)"
    MISMATCH_ERROR = DataError

    def __init__(
        self,
        backbone: PointBackbone | None = None,
        pretrained: str | None = None,
        pretrained_network: Literal["teacher", "student"] | None = None,
        segmenter: SegmenterConfig = SegmenterConfig(),
        optim: AdamWConfig = AdamWConfig(),
        label_smoothing: float = 0.0,
        part_table: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"model.label_smoothing={label_smoothing}: must be in [0, 1)")
        backbone = backbone if backbone is not None else PointViT()
        self.save_hyperparameters(
            {
                "backbone": backbone_config(backbone),
                "segmenter": asdict(segmenter),
                "optim": asdict(optim),
                "label_smoothing": label_smoothing,
                TABLE_KEY: part_table,
            }
        )
        self.segmenter_config = segmenter
        self.optim_config = optim
        self.label_smoothing = label_smoothing
        self.origin: BackboneOrigin = init_backbone_from(backbone, pretrained, pretrained_network)
        self._backbone = [backbone]  # a list: registered only once the segmenter holds it (no duplicate weights)
        self.segmenter: PartSegmenter | None = None
        self.table: PartTable | None = None
        if part_table is not None:
            self._build(PartTable.from_dict(part_table))

    # ------------------------------------------------------------------ structure
    @property
    def backbone(self) -> PointBackbone:
        """The backbone (inside the segmenter once it is built)."""
        return self.segmenter.backbone if self.segmenter is not None else self._backbone[0]

    def _build(self, table: PartTable) -> None:
        config = self.segmenter_config
        self.segmenter = PartSegmenter(
            self._backbone[0], table.num_categories, table.num_parts, config.blocks, config.category_dim,
            config.propagation_dims, config.head_dims, config.dropout, config.neighbours,
        )
        self.table = table
        self.hparams[TABLE_KEY] = table.to_dict()
        mask = torch.as_tensor(table.part_mask())
        self.register_buffer("part_mask", mask, persistent=False)
        self.val_miou = PartMIoU(mask)
        self.test_miou = PartMIoU(mask)
        self.test_every_point_miou = PartMIoU(mask)

    def setup(self, stage: str) -> None:
        """Build the segmenter for the data module's part table (or check a restored one fits it)."""
        data_table = getattr(self.trainer.datamodule, "part_table", None) if self._trainer is not None else None
        if self.segmenter is None:
            if data_table is None:
                raise ValueError("model.part_table is not set and the data module does not tell its part table")
            self._build(data_table)
        elif data_table is not None and data_table.to_dict() != self.table.to_dict():
            raise DataError(_table_mismatch(self.table, data_table))

    def forward(self, points: Tensor, category: Tensor, query: Tensor | None = None) -> Tensor:
        """(B, N, 3) clouds, (B,) categories -> (B, Q, parts) logits at ``query`` (default: the points)."""
        assert self.segmenter is not None, "the segmenter is built in setup() (or give model.part_table)"
        return self.segmenter(points, category, query)

    # ------------------------------------------------------------------ steps
    def _loss(self, logits: Tensor, parts: Tensor) -> Tensor:
        return F.cross_entropy(
            logits.float().flatten(0, 1), parts.flatten(), label_smoothing=self.label_smoothing
        )

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        logits = self(batch["points"], batch["category"])
        loss = self._loss(logits, batch["parts"])
        n = len(batch["category"])
        accuracy = (logits.detach().argmax(-1) == batch["parts"]).float().mean() * 100.0
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        self.log("train/point_acc", accuracy, batch_size=n)
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=n)
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        logits = self(batch["points"], batch["category"])
        self.log("val/loss", self._loss(logits, batch["parts"]), sync_dist=True, batch_size=len(batch["category"]))
        self.val_miou.update(logits, batch["parts"], batch["category"])

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        points, category = batch["points"], batch["category"]
        logits = self(points, category)
        self.log("test/loss", self._loss(logits, batch["parts"]), sync_dist=True, batch_size=len(category))
        self.test_miou.update(logits, batch["parts"], category)
        out = {"pred": restricted_argmax(logits, category, self.part_mask)}
        if "all_points" in batch:
            every = self(points, category, batch["all_points"])
            self.test_every_point_miou.update(every, batch["all_parts"], category, batch["all_mask"])
        return out

    def _log_miou(self, prefix: str, metric: PartMIoU, per_category: bool = False) -> None:
        """Compute (synchronised over ranks), log in percent, reset."""
        if metric.update_count or self.trainer.world_size > 1:  # every rank joins the synchronisation
            scores = metric.compute()
            self.log(f"{prefix}/inst_miou", scores["inst_miou"].float() * 100.0, prog_bar=prefix == "val")
            self.log(f"{prefix}/cls_miou", scores["cls_miou"].float() * 100.0)
            if per_category and self.table is not None:
                for name, value in zip(self.table.categories, scores["category_miou"].tolist()):
                    if value == value:  # NaN: no shape of this category
                        self.log(f"{prefix}/miou/{name}", value * 100.0)
        metric.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_miou("val", self.val_miou)

    def on_test_epoch_end(self) -> None:
        self._log_miou("test", self.test_miou, per_category=True)
        if self.test_every_point_miou.update_count:
            self._log_miou("test/every_point", self.test_every_point_miou)

    def check_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse a checkpoint of another part table with one message."""
        recorded_table = (checkpoint.get("hyper_parameters") or {}).get(TABLE_KEY)
        if recorded_table is not None and self.table is not None and recorded_table != self.table.to_dict():
            raise DataError(_table_mismatch(PartTable.from_dict(recorded_table), self.table, "the checkpoint"))


def _names(table: PartTable) -> str:
    shown = ", ".join(table.categories[:4])
    return shown + (", …" if table.num_categories > 4 else "")


def _table_mismatch(model: PartTable, data: PartTable, what: str = "the model") -> str:
    """One message: the part tables of a model (or checkpoint) and of the data differ."""
    return (
        f"{what} segments {model.num_categories} categories ({_names(model)}) with {model.num_parts} part ids, but the "
        f"data has {data.num_categories} ({_names(data)}) with {data.num_parts}: evaluate a checkpoint on the data it "
        "was fine-tuned on (its run folder's config.yaml: --config FILE)"
    )
