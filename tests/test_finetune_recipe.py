"""The small-set fine-tuning recipe: LP-FT schedule, probe initialisation, layer-wise decay, BatchNorm, selection."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from backbones import DGCNN, PointNet, PointViT
from datamodules.classification import ClassificationDataModule
from datamodules.errors import DataError
from datamodules.splits.validation_split import stratified_split
from lightning_modules.downstream.classifier_head import ClassifierHeadConfig
from lightning_modules.downstream.finetune import FineTuneClassifier
from lightning_modules.downstream.layer_decay import layer_decay_groups
from lightning_modules.downstream.probe_init import fit_linear_probe
from lightning_modules.pretrain.adamw import AdamWConfig, configure_adamw, warmup_cosine
from tests.helpers import tiny_trainer

LINEAR = ClassifierHeadConfig(hidden_dims=(), dropout=0.0)


def tiny_vit(**kw) -> PointViT:
    return PointViT(embed_dim=32, depth=2, num_heads=2, group_size=8, encoder_dims=(16, 32), **kw)


# ---------------------------------------------------------------- layer-wise decay
def test_layer_decay_lr_of_every_parameter_of_a_tiny_vit_by_hand() -> None:
    module = FineTuneClassifier(tiny_vit(), num_classes=3, head=LINEAR, layer_decay=0.5)
    groups = layer_decay_groups(module.named_parameters(), module.backbone, 0.5, 0.05)
    lr_of = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    wd_of = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    # depth 2 -> L = 3: embeddings 0.5^3, block 0 0.5^2, block 1 0.5^1, final norm and head 1
    expected = {"patch_embed": 0.125, "pos_embed": 0.125, "cls_token": 0.125, "cls_pos": 0.125,
                "blocks.0": 0.25, "blocks.1": 0.5, "norm": 1.0}
    for name, param in module.named_parameters():
        if name.startswith("head."):
            want = 1.0
        else:
            short = name[len("backbone."):]
            want = next(v for k, v in expected.items() if short == k or short.startswith(k + "."))
        assert lr_of[id(param)] == want, name
        assert wd_of[id(param)] == (0.0 if name.endswith(".bias") or param.ndim <= 1 else 0.05), name
    assert len(lr_of) == sum(1 for _ in module.parameters())  # every parameter in exactly one group
    assert groups[0]["lr_scale"] == 1.0  # the head's group first (the logged learning rate)
    # the optimiser's learning rates follow the schedule times each group's scale
    config = AdamWConfig(lr=1e-3, min_lr=1e-5, warmup_epochs=0, warmup_steps=2, warmup_start_lr=1e-6)
    trainer = SimpleNamespace(estimated_stepping_batches=10, num_training_batches=5, accumulate_grad_batches=1)
    configured = configure_adamw(module.named_parameters(), config, trainer, groups)  # type: ignore[arg-type]
    optimizer, scheduler = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    schedule = warmup_cosine(config, 5, 10)
    assert schedule(2) == pytest.approx(1e-3)  # warm-up of 2 steps, not epochs
    for step in range(4):
        for group in optimizer.param_groups:
            assert group["lr"] == pytest.approx(schedule(step) * group["lr_scale"])
        optimizer.step()
        scheduler.step()


def test_layer_decay_depths_of_pointnet_and_dgcnn() -> None:
    net = PointNet(dims=(8, 16, 32), input_transform=False)
    groups = layer_decay_groups(net.named_parameters(prefix="backbone"), net, 0.5, 0.0)
    scale = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    # three shared-MLP layers: depths 0, 1, 2 of L = 3 -> 0.125, 0.25, 0.5
    for i, want in enumerate((0.125, 0.25, 0.5)):
        assert {scale[id(p)] for p in net.mlp[i].parameters()} == {want}
    dgcnn = DGCNN(k=4, edge_dims=(8, 8), emb_dims=16)
    groups = layer_decay_groups(dgcnn.named_parameters(prefix="backbone"), dgcnn, 0.5, 0.0)
    scale = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    assert {scale[id(p)] for p in dgcnn.edge_convs[0].parameters()} == {0.125}
    assert {scale[id(p)] for p in dgcnn.edge_convs[1].parameters()} == {0.25}
    assert {scale[id(p)] for p in dgcnn.embed.parameters()} == {0.5}
    with pytest.raises(ValueError, match="layer_decay"):
        FineTuneClassifier(tiny_vit(), num_classes=3, layer_decay=1.5)


# ---------------------------------------------------------------- the probe
def test_probe_is_sklearns_logistic_regression() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5)) * np.array([1.0, 10.0, 0.1, 3.0, 1.0]) + 4.0
    y = np.argmax((x - 4.0) / np.array([1.0, 10.0, 0.1, 3.0, 1.0]) @ rng.normal(size=(5, 3)) + rng.normal(size=(60, 3)), 1)
    assert set(y.tolist()) == {0, 1, 2}
    weight, bias = fit_linear_probe(torch.tensor(x), torch.tensor(y), 3, l2=2.0)
    scaler = StandardScaler().fit(x)
    reference = LogisticRegression(C=0.5, tol=1e-10, max_iter=10_000).fit(scaler.transform(x), y)
    ours = x @ weight.double().numpy().T + bias.double().numpy()
    theirs = reference.decision_function(scaler.transform(x))
    # logits agree up to a per-sample constant (softmax is shift-invariant): compare centred logits
    centred = lambda a: a - a.mean(1, keepdims=True)  # noqa: E731
    assert np.abs(centred(ours) - centred(theirs)).max() < 2e-3
    with pytest.raises(ValueError, match="probe_l2"):
        fit_linear_probe(torch.tensor(x), torch.tensor(y), 3, l2=0.0)


# ---------------------------------------------------------------- LP-FT schedule, BatchNorm
def test_lp_ft_steps_and_probe_init_and_frozen_batchnorm(tiny_modelnet, tmp_path) -> None:
    events: list = []
    heads: list[torch.Tensor] = []

    class Watch(pl.Callback):
        def on_train_start(self, trainer, pl_module) -> None:  # callbacks run before the module's hook
            heads.append(pl_module.head.mlp[-1].weight.detach().clone())

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            if batch_idx == 0:
                heads.append(pl_module.head.mlp[-1].weight.detach().clone())

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            events.append((trainer.global_step, pl_module.backbone.blocks[0].training,
                           {k: v.clone() for k, v in pl_module.state_dict().items()}))

    pl.seed_everything(0)
    module = FineTuneClassifier(tiny_vit(drop_path=0.1), head=LINEAR, head_init="probe", freeze_backbone_steps=2,
                                optim=AdamWConfig(warmup_epochs=0))
    data = ClassificationDataModule(root=str(tiny_modelnet), batch_size=4, num_points=64, val_fraction=0.0)
    start: dict = {}

    class Start(pl.Callback):
        def on_train_start(self, trainer, pl_module) -> None:
            start.update({k: v.clone() for k, v in pl_module.state_dict().items()})

    tiny_trainer(tmp_path, max_steps=4, callbacks=[Start(), Watch()], limit_train_batches=4).fit(module, data)
    steps = events
    random_head, probe_head = heads
    assert not torch.equal(random_head, probe_head)  # the probe fitted the head before the first step
    # updates 1, 2 (global_step after the update): backbone frozen and in eval mode; updates 3, 4 train it
    assert [(s, blocks) for s, blocks, _ in steps] == [(1, False), (2, False), (3, True), (4, True)]
    states = [start] + [state for *_, state in steps]
    bb = [k for k in start if k.startswith("backbone.")]
    for before, after, frozen in zip(states[:-1], states[1:], (True, True, False, False)):
        moved = {k for k in bb if not torch.equal(before[k], after[k])}
        assert (not moved) if frozen else len(moved) == len(bb)  # nothing, then every backbone parameter
        assert not torch.equal(before["head.mlp.0.weight"], after["head.mlp.0.weight"])  # the head trains throughout


def test_frozen_batchnorm_keeps_the_pretrained_statistics() -> None:
    torch.manual_seed(0)
    module = FineTuneClassifier(PointNet(dims=(8, 16, 32)), num_classes=3, head=LINEAR, backbone_bn="frozen")
    plain = FineTuneClassifier(PointNet(dims=(8, 16, 32)), num_classes=3, head=LINEAR)
    for net, kept in ((module, True), (plain, False)):
        net.train()
        norms = [m for m in net.backbone.modules() if isinstance(m, nn.BatchNorm1d)]
        assert norms and all(m.training != kept for m in norms)
        before = [m.running_mean.clone() for m in norms]
        net(torch.randn(4, 64, 3) * 3 + 1)
        assert all(torch.equal(b, m.running_mean) == kept for b, m in zip(before, norms))
        assert net.head.training and any(m.training for m in net.backbone.modules() if not isinstance(m, nn.BatchNorm1d))


def test_probe_needs_a_linear_head() -> None:
    with pytest.raises(ValueError, match="hidden_dims"):
        FineTuneClassifier(tiny_vit(), num_classes=3, head_init="probe")


# ---------------------------------------------------------------- the selection rule
def test_validation_minimum_per_class_by_hand() -> None:
    labels = np.array([0] * 20 + [1] * 9 + [2] * 5 + [3] * 2 + [4] * 1)
    _, val = stratified_split(labels, 0.1, seed=0, min_per_class=3)
    counts = np.bincount(labels[val], minlength=5)
    # 20: max(3, 2) = 3; 9: max(3, 1) = 3; 5: min(max(3, 0), max(0, 5 // 2)) = 2; 2: 1; 1: none
    assert counts.tolist() == [3, 3, 2, 1, 0]
    _, val = stratified_split(labels, 0.25, seed=0, min_per_class=3)
    assert np.bincount(labels[val], minlength=5).tolist() == [5, 3, 2, 1, 0]  # round(0.25·20) = 5 wins
    _, default = stratified_split(labels, 0.1, seed=0)
    assert np.bincount(labels[default], minlength=5).tolist() == [2, 1, 1, 1, 0]  # min 1: the old rule
    with pytest.raises(DataError, match="val_min_per_class"):
        stratified_split(labels, 0.1, min_per_class=0)


def test_the_validation_choice_is_printed(tiny_modelnet) -> None:
    data = ClassificationDataModule(root=str(tiny_modelnet), val_fraction=0.1, val_min_per_class=3)
    data.setup("fit")
    text = data.describe_validation()
    assert "at least 3 per class" in text and "9 shapes, 3 to 3 per class" in text  # 3 classes of 8 train shapes
