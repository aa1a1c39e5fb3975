"""Fine-tuning a backbone for shape classification, from a pretraining checkpoint or from scratch.

backbone (initialised from ``pretrained``: the teacher of a pointdwc checkpoint by default, an
exported file, or nothing) → global feature → :class:`~lightning_modules.downstream.classifier_head.ClassifierHead`
(Point-MAE's) → cross-entropy (optional label smoothing). AdamW without decay on biases and
norms, warm-up + cosine per step (:mod:`lightning_modules.pretrain.adamw`); gradient clipping and
precision are the trainer's (``trainer.gradient_clip_val``), drop path the backbone's
(``model.backbone.init_args.drop_path``).

Pieces of a recipe for small labelled sets (``configs/finetune/default.yaml`` uses them;
``configs/finetune/point_mae_recipe.yaml`` is the field's recipe without them):

* LP-FT: ``head_init: probe`` fits a linear head on the frozen backbone's train features before
  the first step (:mod:`lightning_modules.downstream.probe_init`); the backbone can also stay
  frozen (no gradient, no update, eval mode) for the first ``freeze_backbone_epochs`` epochs or
  ``freeze_backbone_steps`` optimizer steps while the head trains.
* ``layer_decay < 1``: layer-wise learning-rate decay (:mod:`lightning_modules.downstream.layer_decay`).
* ``backbone_bn: frozen``: the backbone's BatchNorm layers keep their pretrained running
  statistics (eval mode) during fine-tuning; their scale and shift still train.

Metrics are torchmetrics': ``{train,val,test}/acc`` (overall accuracy) and ``{val,test}/macc``
(mean per-class accuracy), logged in percent once per epoch, their states synchronised across
DDP ranks before they are computed. ``votes > 1`` averages
the softmax over that many augmented passes at test time (:mod:`lightning_modules.evaluation.voting`);
the test split is still scored once.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics.classification import MulticlassAccuracy

from backbones.base import PointBackbone
from backbones.point_vit import PointViT
from backbones.pretrained import backbone_config
from datamodules.views.augment import AugmentConfig
from datamodules.classification import SCALE_AND_TRANSLATE
from lightning_modules.pretrain.adamw import AdamWConfig
from lightning_modules.checkpoint_encoder import BackboneOrigin, init_backbone_from
from lightning_modules.downstream.classifier_head import ClassifierHead, ClassifierHeadConfig
from lightning_modules.downstream.layer_decay import layer_decay_groups
from lightning_modules.downstream.probe_init import fit_linear_probe
from lightning_modules.pretrain.adamw import configure_adamw
from lightning_modules.downstream.supervised import SupervisedTask
from lightning_modules.evaluation.voting import vote_probabilities


class FineTuneClassifier(SupervisedTask):
    """Backbone + classification head, trained end to end with labels.

    Its optimiser and checkpoint entries are :class:`~lightning_modules.downstream.supervised.SupervisedTask`'s.

    Args:
        backbone: any :class:`~backbones.base.PointBackbone` (class path in YAML); a pretrained
            file must hold the same architecture.
        num_classes: classes of the head; None takes the data module's (``num_classes``).
        pretrained: a pointdwc pretraining checkpoint or a ``pointdwc export`` ``.pt``, folder or Hub id to
            initialise the backbone from (the CLI's ``--ckpt``); None: from scratch.
        pretrained_network: ``teacher`` (default for checkpoints) or ``student``.
        head: the classification head's widths and dropout.
        optim: AdamW and its warm-up + cosine schedule.
        label_smoothing: of the cross-entropy (0: none).
        freeze_backbone_epochs: epochs at the start during which only the head trains.
        freeze_backbone_steps: optimizer steps at the start during which only the head trains
            (either condition freezes).
        head_init: ``random`` or ``probe`` (a linear probe fitted on the frozen features of one
            pass over the training loader before the first step; needs ``head.hidden_dims: []``).
        probe_l2: the probe's L2 penalty on standardised features (sklearn's ``1/C``).
        layer_decay: learning-rate scale per backbone depth (1: none).
        backbone_bn: ``train`` (BatchNorm statistics updated) or ``frozen`` (kept from pretraining).
        votes: test-time augmented passes averaged (1: no voting).
        vote_augment: the augmentation of each voting pass (scale-and-translate).
        vote_seed: seed of the voting passes (the same test gives the same result).
    """

    MODEL = "fine-tuning"
    CHECKPOINT_HINT = "is it a fine-tuning checkpoint of this backbone?"

    def __init__(
        self,
        backbone: PointBackbone | None = None,
        num_classes: int | None = None,
        pretrained: str | None = None,
        pretrained_network: Literal["teacher", "student"] | None = None,
        head: ClassifierHeadConfig = ClassifierHeadConfig(),
        optim: AdamWConfig = AdamWConfig(),
        label_smoothing: float = 0.0,
        freeze_backbone_epochs: int = 0,
        freeze_backbone_steps: int = 0,
        head_init: Literal["random", "probe"] = "random",
        probe_l2: float = 1.0,
        layer_decay: float = 1.0,
        backbone_bn: Literal["train", "frozen"] = "train",
        votes: int = 1,
        vote_augment: AugmentConfig = SCALE_AND_TRANSLATE,
        vote_seed: int = 0,
    ) -> None:
        super().__init__()
        if votes < 1:
            raise ValueError(f"model.votes={votes}: must be at least 1 (1: no voting)")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"model.label_smoothing={label_smoothing}: must be in [0, 1)")
        if head_init == "probe" and tuple(head.hidden_dims):
            raise ValueError(f"model.head_init=probe fits a linear head: set model.head.hidden_dims to [] (got {list(head.hidden_dims)})")
        if not 0.0 < layer_decay <= 1.0:
            raise ValueError(f"model.layer_decay={layer_decay}: must be in (0, 1] (1: no decay)")
        if freeze_backbone_epochs < 0 or freeze_backbone_steps < 0:
            raise ValueError("model.freeze_backbone_epochs and model.freeze_backbone_steps must be at least 0")
        self.backbone = backbone if backbone is not None else PointViT()
        # what restores this module from a checkpoint; the initialisation is recorded apart (INIT_KEY),
        # since a fine-tuned checkpoint no longer needs the file it started from
        self.save_hyperparameters(
            {
                "backbone": backbone_config(self.backbone),
                "num_classes": num_classes,
                "head": asdict(head),
                "optim": asdict(optim),
                "label_smoothing": label_smoothing,
                "freeze_backbone_epochs": freeze_backbone_epochs,
                "freeze_backbone_steps": freeze_backbone_steps,
                "head_init": head_init,
                "probe_l2": probe_l2,
                "layer_decay": layer_decay,
                "backbone_bn": backbone_bn,
                "votes": votes,
                "vote_augment": asdict(vote_augment),
                "vote_seed": vote_seed,
            }
        )
        self.head_config = head
        self.optim_config = optim
        self.label_smoothing = label_smoothing
        self.freeze_backbone_epochs = freeze_backbone_epochs
        self.freeze_backbone_steps = freeze_backbone_steps
        self.head_init = head_init
        self.probe_l2 = probe_l2
        self.layer_decay = layer_decay
        self.backbone_bn = backbone_bn
        self.votes = votes
        self.vote_augment = vote_augment
        self.vote_seed = vote_seed
        self.origin: BackboneOrigin = init_backbone_from(self.backbone, pretrained, pretrained_network)
        self.head: ClassifierHead | None = None
        if num_classes is not None:
            self._build_head(num_classes)
        self._vote_generator: torch.Generator | None = None

    # ------------------------------------------------------------------ structure
    def _build_head(self, num_classes: int) -> None:
        self.head = ClassifierHead(self.backbone.out_dim, num_classes, self.head_config)
        self.hparams["num_classes"] = num_classes
        metric = {"num_classes": num_classes, "sync_on_compute": True}
        self.train_acc = MulticlassAccuracy(average="micro", **metric)
        self.val_acc = MulticlassAccuracy(average="micro", **metric)
        self.val_macc = MulticlassAccuracy(average="macro", **metric)
        self.test_acc = MulticlassAccuracy(average="micro", **metric)
        self.test_macc = MulticlassAccuracy(average="macro", **metric)

    @property
    def num_classes(self) -> int | None:
        return self.head.num_classes if self.head is not None else None

    def setup(self, stage: str) -> None:
        """Build the head for the data module's classes (or check a restored head fits them)."""
        data_classes = getattr(self.trainer.datamodule, "num_classes", None) if self._trainer is not None else None
        if self.head is None:
            if data_classes is None:
                raise ValueError("model.num_classes is not set and the data module does not tell its classes")
            self._build_head(int(data_classes))
        elif data_classes is not None and int(data_classes) != self.head.num_classes:
            raise ValueError(
                f"the model's head has {self.head.num_classes} classes but the data has {data_classes}: evaluate a "
                "checkpoint on the data it was fine-tuned on (its run folder's config.yaml: --config FILE)"
            )

    def forward(self, points: Tensor) -> Tensor:
        """Clouds (B, N, 3) -> class logits (B, classes)."""
        assert self.head is not None, "the head is built in setup() (or give model.num_classes)"
        if self.backbone_frozen:
            with torch.no_grad():
                feature = self.backbone(points).global_feature
        else:
            feature = self.backbone(points).global_feature
        return self.head(feature)

    # ------------------------------------------------------------------ LP-FT, BatchNorm, layer decay
    @property
    def backbone_frozen(self) -> bool:
        """Whether this is one of the first ``freeze_backbone_epochs`` epochs or ``freeze_backbone_steps`` steps."""
        if self._trainer is None or not self.trainer.training:
            return False
        return self.current_epoch < self.freeze_backbone_epochs or self.trainer.global_step < self.freeze_backbone_steps

    def train(self, mode: bool = True) -> FineTuneClassifier:
        """While the backbone is frozen it stays in eval mode (no drop path, BatchNorm statistics kept);
        with ``backbone_bn: frozen`` its BatchNorm layers always do."""
        super().train(mode)
        if mode and self.backbone_frozen:
            self.backbone.eval()
        elif mode and self.backbone_bn == "frozen":
            for module in self.backbone.modules():
                if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def on_train_epoch_start(self) -> None:
        self.train(True)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Modes follow the frozen phase when it ends within an epoch (``freeze_backbone_steps``)."""
        if self.freeze_backbone_steps and self.trainer.global_step == self.freeze_backbone_steps:
            self.train(True)

    def on_train_start(self) -> None:
        """``head_init: probe``: fit the linear head on frozen features first (not when resuming)."""
        if self.head_init == "probe" and self.trainer.global_step == 0:
            self.fit_head_probe()

    @torch.no_grad()
    def fit_head_probe(self) -> float:
        """One pass over the training loader (its subsets and augmentation) with the backbone in eval mode;
        the head's Linear becomes :func:`fit_linear_probe`'s fit. Returns the probe's training accuracy (%)."""
        assert self.head is not None
        datamodule = self.trainer.datamodule
        was_training = self.backbone.training
        self.backbone.eval()
        features, labels = [], []
        for batch in self.trainer.train_dataloader:
            points, label = (t.to(self.device) for t in batch)
            if datamodule is not None:
                points, label = datamodule.on_after_batch_transfer((points, label), 0)
            features.append(self.backbone(points).global_feature.float())
            labels.append(label)
        self.backbone.train(was_training)
        x, y = torch.cat(features), torch.cat(labels)
        weight, bias = fit_linear_probe(x, y, self.head.num_classes, self.probe_l2)
        linear = self.head.mlp[-1]
        linear.weight.copy_(weight.to(linear.weight))
        linear.bias.copy_(bias.to(linear.bias))
        accuracy = float((self.head(x).argmax(1) == y).float().mean() * 100.0)
        self.print(f"head_init=probe: linear head fitted on {len(y)} frozen training features (l2 {self.probe_l2}; "
                   f"train acc {accuracy:.1f}%)")
        return accuracy

    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW; with ``layer_decay < 1`` one group per backbone depth (and weight decay or not)."""
        if self.layer_decay == 1.0:
            return super().configure_optimizers()
        groups = layer_decay_groups(self.named_parameters(), self.backbone, self.layer_decay, self.optim_config.weight_decay)
        return configure_adamw(self.named_parameters(), self.optim_config, self.trainer, groups)

    # ------------------------------------------------------------------ steps
    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        points, labels = batch
        logits = self(points)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing)
        self.train_acc.update(logits.detach(), labels)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(labels))
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=len(labels))
        return loss

    def _log_percent(self, **metrics: MulticlassAccuracy) -> None:
        """Compute (synchronised over ranks), log in percent, reset."""
        for name, metric in metrics.items():
            if metric.update_count or self.trainer.world_size > 1:  # every rank joins the synchronisation
                # compute() synchronised the states: every rank logs the same value (sync_dist averages equals)
                self.log(name.replace("_", "/", 1), metric.compute() * 100.0, prog_bar=name == "val_acc", sync_dist=True)
            metric.reset()

    def on_train_epoch_end(self) -> None:
        self._log_percent(train_acc=self.train_acc)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        points, labels = batch
        logits = self(points)
        self.log("val/loss", F.cross_entropy(logits.float(), labels), sync_dist=True, batch_size=len(labels))
        self.val_acc.update(logits, labels)
        self.val_macc.update(logits, labels)

    def on_validation_epoch_end(self) -> None:
        self._log_percent(val_acc=self.val_acc, val_macc=self.val_macc)

    def on_test_start(self) -> None:
        self._vote_generator = torch.Generator(device=self.device).manual_seed(self.vote_seed + self.global_rank)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        points, labels = batch
        probs = vote_probabilities(self, points, self.votes, self.vote_augment, self._vote_generator)
        self.log("test/loss", F.nll_loss(probs.clamp_min(1e-12).log(), labels), sync_dist=True, batch_size=len(labels))
        self.test_acc.update(probs, labels)
        self.test_macc.update(probs, labels)

    def on_test_epoch_end(self) -> None:
        self._log_percent(test_acc=self.test_acc, test_macc=self.test_macc)

    def on_before_optimizer_step(self, optimizer: Any) -> None:
        """No update of the backbone while it is frozen."""
        if self.backbone_frozen:
            for p in self.backbone.parameters():
                p.grad = None
