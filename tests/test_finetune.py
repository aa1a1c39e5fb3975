"""The fine-tuning module: head, initialisation from pretrained files, voting, metrics, optimiser, frozen epochs."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from backbones import PointNet, PointViT
from backbones.pretrained import PretrainedError
from datamodules.classification import SCALE_AND_TRANSLATE, ClassificationDataModule
from datamodules.dataset import PointCloudSet, PointCloudSplit
from lightning_modules.pretrain.adamw import AdamWConfig, configure_adamw, param_groups, warmup_cosine
from lightning_modules.downstream.classifier_head import ClassifierHead
from lightning_modules.commands.export import export
from lightning_modules.downstream.finetune import FineTuneClassifier
from lightning_modules.evaluation.voting import vote_probabilities
from tests.helpers import tiny_trainer


def tiny_vit(**kw) -> PointViT:
    """The architecture of the session's tiny pretraining checkpoint."""
    return PointViT(embed_dim=32, depth=1, num_heads=2, group_size=8, encoder_dims=(16, 32), **kw)


def _backbone_weights(ckpt: Path, network: str) -> dict[str, torch.Tensor]:
    prefix = f"{network}.backbone."
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def test_head_is_point_maes_and_the_module_gives_logits() -> None:
    head = ClassifierHead(64, 7)
    kinds = [type(m) for m in head.mlp]
    assert kinds == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Dropout] * 2 + [nn.Linear]
    assert [head.mlp[i].out_features for i in (0, 4, 8)] == [256, 256, 7] and head.mlp[0].in_features == 64
    assert head.mlp[3].p == head.mlp[7].p == 0.5
    assert head(torch.randn(5, 64)).shape == (5, 7)
    for backbone in (tiny_vit(), PointNet(dims=(8, 16, 32))):
        module = FineTuneClassifier(backbone, num_classes=4).eval()
        assert module.head.mlp[0].in_features == backbone.out_dim  # [CLS] ‖ max for the ViT (2 × 32)
        assert module(torch.randn(3, 128, 3)).shape == (3, 4)


def test_a_pretrained_backbone_loads_exactly_and_scratch_does_not(tiny_checkpoint, tmp_path) -> None:
    teacher, student = _backbone_weights(tiny_checkpoint, "teacher"), _backbone_weights(tiny_checkpoint, "student")
    exported = export(tiny_checkpoint, tmp_path / "encoder.pt")
    cases = [
        (dict(pretrained=str(tiny_checkpoint)), teacher, "checkpoint", "teacher"),
        (dict(pretrained=str(tiny_checkpoint), pretrained_network="student"), student, "checkpoint", "student"),
        (dict(pretrained=str(exported)), teacher, "exported", "teacher"),
    ]
    for kwargs, expected, kind, network in cases:
        module = FineTuneClassifier(tiny_vit(drop_path=0.1), num_classes=3, **kwargs)  # drop path is fine-tuning's own
        own = module.backbone.state_dict()
        assert own.keys() == expected.keys()
        assert all(torch.equal(own[k], expected[k]) for k in own), kwargs
        assert (module.origin.kind, module.origin.network) == (kind, network)
        assert str(module.origin.path) in module.origin.describe()
    torch.manual_seed(0)
    scratch = FineTuneClassifier(tiny_vit(), num_classes=3)
    differs = [k for k, v in scratch.backbone.state_dict().items() if not torch.equal(v, teacher[k])]
    assert len(differs) > len(teacher) // 2 and scratch.origin.kind == "scratch"
    assert scratch.origin.describe() == "random initialisation (from scratch)"


def test_a_file_of_another_backbone_or_not_pointdwcs_is_one_clear_error(tiny_checkpoint, tmp_path) -> None:
    with pytest.raises(PretrainedError) as err:
        FineTuneClassifier(PointViT(embed_dim=64, depth=1, num_heads=2, group_size=8, encoder_dims=(16, 32)),
                           pretrained=str(tiny_checkpoint))
    assert str(err.value).startswith(str(tiny_checkpoint)) and "embed_dim: 32 in the file vs 64 configured" in str(err.value)
    with pytest.raises(PretrainedError, match="holds a backbones.point_vit.PointViT backbone but model.backbone is a backbones.pointnet.PointNet"):
        FineTuneClassifier(PointNet(dims=(8, 16)), pretrained=str(tiny_checkpoint))
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(PretrainedError, match=f"{foreign}: neither a pointdwc pretraining checkpoint"):
        FineTuneClassifier(tiny_vit(), pretrained=str(foreign))
    finetuned = tmp_path / "finetuned.ckpt"
    torch.save({"state_dict": {"backbone.w": torch.zeros(1), "head.w": torch.zeros(1)}}, finetuned)
    with pytest.raises(PretrainedError, match="it is a fine-tuning checkpoint: evaluate it with `pointdwc finetune test"):
        FineTuneClassifier(tiny_vit(), pretrained=str(finetuned))
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(PretrainedError, match=f"{text}: not a readable pointdwc checkpoint or exported backbone"):
        FineTuneClassifier(tiny_vit(), pretrained=str(text))
    with pytest.raises(PretrainedError, match="pretrained file not found"):
        FineTuneClassifier(tiny_vit(), pretrained=str(tmp_path / "missing.ckpt"))
    student_file = export(tiny_checkpoint, tmp_path / "student.pt", network="student")
    with pytest.raises(PretrainedError, match="field 'network' is 'student'"):
        FineTuneClassifier(tiny_vit(), pretrained=str(student_file), pretrained_network="teacher")


def test_voting_averages_the_probabilities_of_augmented_passes() -> None:
    points = torch.randn(2, 32, 3, generator=torch.Generator().manual_seed(2))
    log3 = float(np.log(3.0))
    # softmax by hand: logits (0, 0) -> (1/2, 1/2), (log 3, 0) -> (3/4, 1/4)
    pass_logits = [torch.tensor([[0.0, 0.0], [log3, 0.0]]), torch.tensor([[log3, 0.0], [log3, 0.0]])]
    seen: list[torch.Tensor] = []

    def forward(x: torch.Tensor) -> torch.Tensor:
        seen.append(x)
        return pass_logits[len(seen) - 1]

    voted = vote_probabilities(forward, points, 2, SCALE_AND_TRANSLATE, torch.Generator().manual_seed(5))
    # the mean of the probabilities, not the softmax of the mean logits (which would be 0.634 for the first cloud)
    torch.testing.assert_close(voted, torch.tensor([[0.625, 0.375], [0.75, 0.25]]))
    assert len(seen) == 2 and not torch.allclose(seen[0], seen[1])  # each pass is another augmentation
    for x in seen:  # Point-MAE's scale and translate: per cloud and axis, x = s·p + t, s in [2/3, 3/2], |t| <= 0.2
        centred = points - points.mean(1, keepdim=True)
        scale = ((x - x.mean(1, keepdim=True)) * centred).sum(1) / centred.square().sum(1)  # least squares, (B, 3)
        shift = x.mean(1) - scale * points.mean(1)
        torch.testing.assert_close(x, scale[:, None] * points + shift[:, None])
        assert ((scale >= 2 / 3 - 1e-5) & (scale <= 1.5 + 1e-5)).all() and (shift.abs() <= 0.2 + 1e-5).all()
        assert not torch.allclose(scale[:, 0], scale[:, 1])  # anisotropic
    first = seen[:]
    seen.clear()
    vote_probabilities(forward, points, 2, SCALE_AND_TRANSLATE, torch.Generator().manual_seed(5))
    assert all(torch.equal(a, b) for a, b in zip(first, seen))  # the generator makes the passes reproducible
    seen.clear()
    plain = vote_probabilities(forward, points, 1, SCALE_AND_TRANSLATE)
    torch.testing.assert_close(plain, torch.tensor([[0.5, 0.5], [0.75, 0.25]]))
    assert len(seen) == 1 and torch.equal(seen[0], points)  # one plain pass


class InMemorySet(PointCloudSet):
    """A data set from arrays (test helper)."""

    def __init__(self, splits: dict[str, tuple[np.ndarray, np.ndarray]], classes: int) -> None:
        self.splits_ = splits
        self.classes = classes

    def load(self, split: str) -> PointCloudSplit:
        points, labels = self.splits_[split]
        return PointCloudSplit(points, labels, [f"c{i}" for i in range(self.classes)], f"memory[{split}]")


class Oracle(FineTuneClassifier):
    """Predicts the class written in each cloud's first coordinate."""

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return F.one_hot(points[:, 0, 0].round().long(), self.num_classes).float() * 10


def test_test_metrics_equal_hand_computed_accuracies(tmp_path) -> None:
    truth = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 1, 1, 0, 2])
    clouds = np.repeat(predicted[:, None, None], 8, axis=1).repeat(3, axis=2).astype(np.float32)
    data = ClassificationDataModule(InMemorySet({"train": (clouds, truth), "test": (clouds, truth)}, 3),
                                    batch_size=4, num_points=8)
    (metrics,) = tiny_trainer(tmp_path).test(Oracle(tiny_vit(), num_classes=3), data, verbose=False)
    assert metrics["test/acc"] == pytest.approx(100 * 4 / 6, abs=1e-4)  # 4 of 6 right
    assert metrics["test/macc"] == pytest.approx(100 * (2 / 3 + 1 / 2 + 1) / 3, abs=1e-4)  # per-class recall, averaged


def test_no_weight_decay_on_biases_and_norms_and_the_warmup_cosine_schedule() -> None:
    module = FineTuneClassifier(tiny_vit(), num_classes=3)
    decay, no_decay = param_groups(module.named_parameters(), 0.05)
    names = {id(p): n for n, p in module.named_parameters()}
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decay["params"])
    no_decay_names = {names[id(p)] for p in no_decay["params"]}
    assert {n for n in names.values() if n.endswith(".bias")} <= no_decay_names
    assert {"backbone.norm.weight", "head.mlp.1.weight"} <= no_decay_names  # LayerNorm, BatchNorm scales
    config = AdamWConfig(lr=1e-3, min_lr=1e-5, warmup_epochs=2, warmup_start_lr=1e-6)
    schedule = warmup_cosine(config, steps_per_epoch=5, total_steps=20)
    assert (schedule(0), schedule(10), schedule(20)) == pytest.approx((1e-6, 1e-3, 1e-5))
    assert schedule(15) == pytest.approx((1e-3 + 1e-5) / 2)
    trainer = SimpleNamespace(estimated_stepping_batches=20, num_training_batches=5, accumulate_grad_batches=1)
    configured = configure_adamw(module.named_parameters(), config, trainer)  # type: ignore[arg-type]
    optimizer, scheduler = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    seen = []
    for _ in range(21):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([schedule(s) for s in range(21)])
    assert configured["lr_scheduler"]["interval"] == "step"


def test_frozen_backbone_epochs_train_only_the_head(tiny_modelnet, tmp_path) -> None:
    snapshots, modes = [], []

    class Watch(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            modes.append((trainer.current_epoch, pl_module.backbone.training))

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            snapshots.append({k: v.clone() for k, v in pl_module.state_dict().items()})

    pl.seed_everything(0)
    module = FineTuneClassifier(tiny_vit(drop_path=0.1), freeze_backbone_epochs=1, optim=AdamWConfig(warmup_epochs=0))
    start = {k: v.clone() for k, v in module.backbone.state_dict().items()}
    data = ClassificationDataModule(root=str(tiny_modelnet), batch_size=4, num_points=64)
    tiny_trainer(tmp_path, max_epochs=2, callbacks=[Watch()], limit_train_batches=2).fit(module, data)
    first, second = snapshots

    def backbone(state: dict) -> dict:
        return {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}

    assert all(torch.equal(backbone(first)[k], v) for k, v in start.items())  # epoch 0: the backbone did not move
    assert not torch.equal(first["head.mlp.0.weight"], second["head.mlp.0.weight"])
    assert any(not torch.equal(backbone(second)[k], v) for k, v in start.items())  # epoch 1: it trains
    assert {m for e, m in modes if e == 0} == {False} and {m for e, m in modes if e == 1} == {True}
