"""The LightningModule: parameter groups, last-layer freezing, EMA on real steps only."""

from __future__ import annotations

import copy
import warnings

import pytest
import pytorch_lightning as pl
import torch

from lightning_modules.pretrain import dwc
from lightning_modules.pretrain.dwc import DistillationWithContrast
from lightning_modules.pretrain.heads import HeadConfig
from tests.helpers import assert_mid_epoch_resume_is_exact, tiny_data, tiny_module, tiny_trainer


def test_parameter_groups_exclude_biases_and_norms_from_decay(tiny_modelnet, tmp_path) -> None:
    model = tiny_module()
    trainer = tiny_trainer(tmp_path, max_steps=1)
    trainer.fit(model, tiny_data(tiny_modelnet))
    opt = trainer.optimizers[0]
    decay, no_decay = opt.param_groups
    assert decay["decay"] and not no_decay["decay"]
    names = {id(p): n for n, p in model.student.named_parameters()}
    for p in no_decay["params"]:
        assert names[id(p)].endswith(".bias") or p.ndim == 1
    for p in decay["params"]:
        assert p.ndim > 1
    gain = model.student.head.last_layer.parametrizations.weight.original0
    assert all(p is not gain for g in opt.param_groups for p in g["params"])  # weight-norm gain fixed
    assert torch.all(gain == 1)
    assert no_decay["weight_decay"] == 0.0


def test_last_layer_is_frozen_for_the_first_steps_only(tiny_modelnet, tmp_path) -> None:
    model = tiny_module(freeze_last_layer_steps=2)
    last = lambda m: m.student.head.last_layer.parametrizations.weight.original1.detach().clone()
    changed_after: list[int] = []  # global steps after which the last layer had moved

    class Watch(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            self.before = last(pl_module)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if not torch.equal(last(pl_module), self.before):
                changed_after.append(trainer.global_step)

    mlp0 = model.student.head.mlp[0].weight.detach().clone()
    tiny_trainer(tmp_path, max_steps=5, callbacks=[Watch()]).fit(model, tiny_data(tiny_modelnet))
    assert changed_after == [3, 4, 5]  # optimizer steps 0 and 1 leave it alone
    assert not torch.equal(model.student.head.mlp[0].weight, mlp0)


def test_teacher_is_ema_of_student_after_a_step(tiny_modelnet, tmp_path) -> None:
    model = tiny_module()
    teacher0 = copy.deepcopy(model.teacher.state_dict())
    trainer = tiny_trainer(tmp_path, max_steps=1)
    trainer.fit(model, tiny_data(tiny_modelnet))
    m = model.schedules.momentum(0)
    assert m == pytest.approx(0.996)
    for name, p in model.teacher.named_parameters():
        expected = m * teacher0[name] + (1 - m) * dict(model.student.named_parameters())[name].detach()
        torch.testing.assert_close(p, expected)
        assert p.grad is None and not p.requires_grad
    assert not model.teacher.training


def test_ema_runs_only_on_real_optimizer_steps(tiny_modelnet, tmp_path, monkeypatch) -> None:
    calls = []
    real = dwc.ema_update
    monkeypatch.setattr(dwc, "ema_update", lambda pairs, m: (calls.append(m), real(pairs, m)))
    model = tiny_module()
    trainer = tiny_trainer(tmp_path, max_epochs=1, accumulate_grad_batches=2, limit_train_batches=4)
    trainer.fit(model, tiny_data(tiny_modelnet))
    assert trainer.global_step == 2
    assert len(calls) == 2
    assert calls[0] == pytest.approx(model.schedules.momentum(0))
    assert calls[1] == pytest.approx(model.schedules.momentum(1))


def test_learning_rate_follows_schedule_and_scales_with_batch(tiny_modelnet, tmp_path) -> None:
    model = tiny_module(lr=1e-3, min_lr=1e-5)
    trainer = tiny_trainer(tmp_path, max_epochs=3)
    trainer.fit(model, tiny_data(tiny_modelnet))
    s = model.schedules
    assert s.lr.base == pytest.approx(1e-3 * 4 / 256)
    assert s.lr.total_steps == trainer.global_step == 3 * s.steps_per_epoch
    assert s.lr.warmup_steps == s.steps_per_epoch
    last_step = trainer.global_step - 1
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(s.lr(last_step))
    assert trainer.optimizers[0].param_groups[0]["weight_decay"] == pytest.approx(s.weight_decay(last_step))
    assert trainer.optimizers[0].param_groups[1]["weight_decay"] == 0.0


def test_training_step_logs_losses_and_signals(tiny_modelnet, tmp_path) -> None:
    model = tiny_module()
    trainer = tiny_trainer(tmp_path, max_steps=2)
    trainer.fit(model, tiny_data(tiny_modelnet))
    logged = trainer.callback_metrics
    for key in ("train/loss", "train/loss_distill", "train/loss_contrast", "train/teacher_entropy",
                "train/teacher_batch_entropy", "train/teacher_temp", "train/lr", "train/momentum",
                "train/kl_student_teacher"):
        assert key in logged and torch.isfinite(logged[key])
    assert logged["train/loss"] == pytest.approx(
        float(logged["train/loss_distill"] + logged["train/loss_contrast"]), rel=1e-5
    )
    assert 0 <= logged["train/teacher_entropy"] <= torch.log(torch.tensor(64.0)) + 1e-4
    assert logged["train/kl_student_teacher"] >= -1e-4  # a KL divergence
    assert not torch.equal(model.distill_loss.center, torch.zeros_like(model.distill_loss.center))


def test_checkpoint_of_another_architecture_fails_clearly(tiny_modelnet, tmp_path) -> None:
    from backbones import PointViT
    from lightning_modules.pretrain.dwc import DistillationWithContrast
    from lightning_modules.pretrain.heads import HeadConfig

    trainer = tiny_trainer(tmp_path, max_steps=1)
    trainer.fit(tiny_module(), tiny_data(tiny_modelnet))
    ckpt = tmp_path / "tiny.ckpt"
    trainer.save_checkpoint(ckpt)
    wider = DistillationWithContrast(
        backbone=PointViT(embed_dim=48, depth=1, num_heads=2, group_size=8, encoder_dims=(16, 32)),
        head=HeadConfig(out_dim=64, hidden_dim=64, bottleneck_dim=32, contrast_dim=16),
        batch_size=4,
    )
    with pytest.raises(ValueError, match=r"does not match the configured model \(\d+ shape mismatches"):
        tiny_trainer(tmp_path).test(wider, tiny_data(tiny_modelnet), ckpt_path=str(ckpt))


def test_non_finite_loss_stops_with_a_checkpoint_of_the_last_good_state(tiny_modelnet, tmp_path) -> None:
    model = tiny_module()
    real = model.distill_loss.forward

    def poisoned(student, teacher, temp):
        out = real(student, teacher, temp)
        return out * float("nan") if model.global_step == 2 else out

    model.distill_loss.forward = poisoned
    trainer = tiny_trainer(tmp_path, max_epochs=2, log_every_n_steps=1)  # the flag is read every step
    with pytest.raises(FloatingPointError, match=r"non-finite loss at step 2 .* saved to .*last-finite-step2.ckpt"):
        trainer.fit(model, tiny_data(tiny_modelnet))
    ckpt = torch.load(tmp_path / "last-finite-step2.ckpt", weights_only=True)
    assert ckpt["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())


def test_non_finite_loss_between_checks_is_named_at_the_next_check(tiny_modelnet, tmp_path) -> None:
    """The flag lives on the device and is read at the logging interval / epoch end: a NaN at step 2
    of a 6-step epoch (log_every_n_steps 50) stops the run at the epoch's last step, naming step 2."""
    model = tiny_module()
    real = model.distill_loss.forward
    model.distill_loss.forward = lambda s, t, temp: real(s, t, temp) * (float("nan") if model.global_step == 2 else 1.0)
    trainer = tiny_trainer(tmp_path, max_epochs=2)
    with pytest.raises(
        FloatingPointError,
        match=r"non-finite loss at step 2 \(distill=nan.*found at the check of step 5 .* steps 2 to 4 already updated"
        r".*non-finite-since-step2-at-step5.ckpt",
    ):
        trainer.fit(model, tiny_data(tiny_modelnet))
    assert trainer.global_step == 5  # steps 0-4 stepped; step 5 stopped before its update
    assert torch.load(tmp_path / "non-finite-since-step2-at-step5.ckpt", weights_only=True)["global_step"] == 5


def test_resume_continues_exactly_like_an_uninterrupted_run(tiny_modelnet, tmp_path) -> None:
    """Stop after epoch 1 of 3, resume from the checkpoint: bit-identical to straight through."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint

    class StopAfterFirstEpoch(pl.Callback):
        def on_train_epoch_end(self, trainer, pl_module) -> None:
            trainer.should_stop = True

    def run(root, callbacks, ckpt_path=None):
        pl.seed_everything(0)
        model, data = tiny_module(), tiny_data(tiny_modelnet)
        trainer = tiny_trainer(root, max_epochs=3, callbacks=callbacks, enable_checkpointing=True)
        trainer.fit(model, data, ckpt_path=ckpt_path)
        return model, trainer

    straight, t_straight = run(tmp_path / "a", [])
    ckpt_dir = tmp_path / "b"
    run(ckpt_dir, [StopAfterFirstEpoch(), ModelCheckpoint(dirpath=ckpt_dir, save_last=True)])
    resumed, t_resumed = run(tmp_path / "c", [], ckpt_path=str(ckpt_dir / "last.ckpt"))

    assert t_resumed.global_step == t_straight.global_step
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name  # student, teacher and DINO centre
    opt_a, opt_b = t_straight.optimizers[0].state_dict(), t_resumed.optimizers[0].state_dict()
    for key, state in opt_a["state"].items():
        for field, value in state.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(opt_b["state"][key][field])), (key, field)
    assert straight.schedules.state_dict() == resumed.schedules.state_dict()


def test_resume_from_the_middle_of_an_epoch_is_exact(tiny_modelnet, tmp_path) -> None:
    """Stop after step 4 of epoch 1 (6 steps per epoch), resume: bit-identical after 2 epochs."""
    assert_mid_epoch_resume_is_exact(tmp_path, lambda: tiny_data(tiny_modelnet), stop_step=4, total_steps=12)


def reference_contrast(student_emb: torch.Tensor, teacher_emb: torch.Tensor, anchor_views: int, temperature: float):
    """The contrastive term written out: mean naive InfoNCE over (teacher view g, student view v < anchor_views, v ≠ g)."""
    from tests.test_losses import naive_info_nce

    pairs = [(g, v) for g in range(teacher_emb.shape[0]) for v in range(anchor_views) if v != g]
    return sum(naive_info_nce(student_emb[v], teacher_emb[g], temperature) for g, v in pairs) / len(pairs)


def test_the_training_step_loss_is_the_weighted_sum_and_zero_switches_a_term_off(tiny_modelnet, monkeypatch) -> None:
    """w·L_distill + λ·L_contrast, each term checked against its reference on the step's own network outputs;
    a zero weight leaves that term's own layer without gradient."""
    from lightning_modules.pretrain.losses import ContrastConfig, DistillConfig
    from lightning_modules.pretrain.losses import multi_view_info_nce as real_contrast
    from tests.test_losses import reference_dino_loss

    views = next(iter(_crops(tiny_modelnet)))
    for w, lam in ((1.0, 1.0), (0.0, 1.0), (1.0, 0.0), (0.5, 2.0)):
        torch.manual_seed(0)
        model = dwc.DistillationWithContrast(
            backbone=tiny_module().student.backbone, head=tiny_module().head_config,
            distill=DistillConfig(weight=w, teacher_temp=0.05), contrast=ContrastConfig(weight=lam, temperature=0.3),
            batch_size=4,
        )
        with torch.no_grad():
            model.distill_loss.center.normal_()  # a centre that matters
        seen, logged = {}, {}
        def distill_inputs(module, args, out) -> None:
            seen.update(logits=[a.detach() for a in args[:2]], temp=args[2], center=module.center.clone())

        def contrast(student_emb, teacher_emb, temperature):
            seen["emb"] = (student_emb.detach(), teacher_emb.detach())
            return real_contrast(student_emb, teacher_emb, temperature)

        model.distill_loss.register_forward_hook(distill_inputs)
        monkeypatch.setattr(dwc, "multi_view_info_nce", contrast)
        monkeypatch.setattr(model, "log", lambda name, value, **kw: logged.__setitem__(name, value))
        loss = model.training_step(views, 0)

        student_logits, teacher_logits = seen["logits"]
        v, g = student_logits.shape[0], teacher_logits.shape[0]
        assert seen["temp"] == 0.05 and v == g + views["local"].shape[0]
        ref_distill = reference_dino_loss(student_logits.flatten(0, 1), teacher_logits.flatten(0, 1), seen["center"],
                                          0.1, 0.05, v)
        student_emb, teacher_emb = seen["emb"]
        assert student_emb.shape[0] == v  # every student view is an anchor (student_views: all)
        ref_contrast = reference_contrast(student_emb, teacher_emb, v, 0.3)
        torch.testing.assert_close(logged["train/loss_distill"], ref_distill)
        torch.testing.assert_close(logged["train/loss_contrast"], ref_contrast)
        torch.testing.assert_close(loss, w * ref_distill + lam * ref_contrast)
        loss.backward()
        last = model.student.head.last_layer.parametrizations.weight.original1.grad
        proj = model.student.head.contrast.weight.grad
        assert (last.abs().sum() == 0) == (w == 0)
        assert (proj.abs().sum() == 0) == (lam == 0)


def test_contrast_on_global_views_leaves_the_local_crops_to_distillation(tiny_modelnet) -> None:
    """``contrast.student_views: global``: the InfoNCE of the global student views only, so the
    local crops' embeddings get no contrastive gradient; ``all`` uses them as anchors too."""
    from lightning_modules.pretrain.losses import ContrastConfig

    views = next(iter(_crops(tiny_modelnet)))
    base = tiny_module()
    for mode in ("global", "all"):
        model = dwc.DistillationWithContrast(
            backbone=base.student.backbone, head=base.head_config, contrast=ContrastConfig(student_views=mode), batch_size=4,
        )
        teacher = model.teacher(views["global"])
        student = model._student_views(views["global"], views["local"]).embedding.detach().requires_grad_(True)
        loss = model.contrastive_loss(student, teacher.embedding)
        g = views["global"].shape[0]
        anchors = g if mode == "global" else student.shape[0]
        torch.testing.assert_close(loss, reference_contrast(student.detach(), teacher.embedding.detach(), anchors, 0.2))
        loss.backward()
        assert (student.grad[g:].abs().sum() == 0) == (mode == "global")
        assert student.grad[:g].abs().sum() > 0
    with pytest.raises(ValueError, match="model.contrast.student_views"):
        dwc.DistillationWithContrast(contrast=ContrastConfig(student_views="local"))


def test_loss_weights_are_validated() -> None:
    from lightning_modules.pretrain.losses import ContrastConfig, DistillConfig

    with pytest.raises(ValueError, match="both 0"):
        dwc.DistillationWithContrast(distill=DistillConfig(weight=0.0), contrast=ContrastConfig(weight=0.0))
    with pytest.raises(ValueError, match="model.distill.weight"):
        dwc.DistillationWithContrast(distill=DistillConfig(weight=-1.0))


def _crops(root):
    data = tiny_data(root)
    data.setup("fit")
    points, labels = next(iter(data.train_dataloader()))
    yield data.on_after_batch_transfer((points, labels), 0)


def test_steps_per_epoch_comes_from_the_loader_under_max_steps(tiny_modelnet, tmp_path) -> None:
    """24 clouds / batch 4 = 6 steps per epoch whatever the run's length is given by."""
    model = tiny_module()  # warm-up 1 epoch
    trainer = tiny_trainer(tmp_path, max_epochs=-1, max_steps=15)
    trainer.fit(model, tiny_data(tiny_modelnet))
    s = model.schedules
    assert s.steps_per_epoch == 6 and s.lr.total_steps == 15 == trainer.global_step
    assert s.lr.warmup_steps == 6
    model = tiny_module(warmup_epochs=10)  # warm-ups never exceed the run
    trainer = tiny_trainer(tmp_path, max_epochs=3, max_steps=4)
    trainer.fit(model, tiny_data(tiny_modelnet))
    assert model.schedules.steps_per_epoch == 6 and model.schedules.lr.total_steps == 4
    assert model.schedules.lr.warmup_steps == 4


def test_resume_with_other_settings_warns_naming_the_changed_schedules(tiny_modelnet, tmp_path) -> None:
    def fit(batch_size: int, max_epochs: int, ckpt_path=None) -> list[str]:
        model = tiny_module()
        model.batch_size = batch_size
        trainer = tiny_trainer(tmp_path, max_epochs=max_epochs)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trainer.fit(model, tiny_data(tiny_modelnet, batch_size=batch_size), ckpt_path=ckpt_path)
        if ckpt_path is None:
            trainer.save_checkpoint(tmp_path / "one.ckpt")
        return [str(w.message) for w in caught if "resuming with schedules" in str(w.message)]

    assert fit(4, 1) == []
    assert fit(4, 1, tmp_path / "one.ckpt") == []  # same settings: silent
    (message,) = fit(8, 2, tmp_path / "one.ckpt")
    assert "lr.base: 7.8125e-06 -> 1.5625e-05" in message  # 5e-4 · 4/256 -> 5e-4 · 8/256
    assert "lr.total_steps: 6 -> 6" not in message and "steps_per_epoch: 6 -> 3" in message


def test_teacher_batchnorm_uses_batch_statistics_in_training_and_its_own_running_ones_in_eval(
    tiny_modelnet, tmp_path
) -> None:
    """Two batches of different statistics: while training, the teacher's BatchNorm normalises
    each with its own statistics (DINO's teacher), whatever the student's running statistics;
    in eval mode it uses the teacher's running statistics, gathered from the teacher's batches."""
    torch.manual_seed(0)  # the affine-shift check below is tight: no dependence on the tests run before
    model = DistillationWithContrast(
        backbone=tiny_module().student.backbone,
        head=HeadConfig(out_dim=64, hidden_dim=64, bottleneck_dim=32, contrast_dim=16, use_bn=True),
        batch_size=4,
    )
    modes = []

    class RecordModes(pl.Callback):  # the teacher's modes as the training steps see them
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            bn = pl_module.teacher.head.mlp[1]
            modes.append((bn.training, pl_module.teacher.backbone.training, pl_module.teacher.head.training))

    trainer = tiny_trainer(tmp_path, max_steps=2, callbacks=[RecordModes()])
    trainer.fit(model, tiny_data(tiny_modelnet))
    assert trainer.global_step == 2
    bn = model.teacher.head.mlp[1]
    assert isinstance(bn, torch.nn.BatchNorm1d)
    assert modes == [(True, False, False)] * 2  # BatchNorm on batch statistics; no drop path
    model.train()  # the same mode outside a fit
    assert bn.training and not model.teacher.backbone.training
    # the teacher's running statistics are its own, not a copy of the student's
    assert not torch.equal(bn.running_mean, model.student.head.mlp[1].running_mean)
    feats = torch.randn(8, model.teacher.backbone.out_dim)
    shifted = 10.0 * feats + 3.0
    with torch.no_grad():
        hidden = model.teacher.head.mlp[:2]
        a, b = hidden(feats), hidden(shifted)
    torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-3)  # batch statistics: an affine shift cancels
    model.eval()
    assert not bn.training
    with torch.no_grad():
        a, b = hidden(feats), hidden(shifted)
    assert not torch.allclose(a, b, atol=1e-2)  # running statistics: it does not


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\(\)`")
def test_teacher_and_student_share_one_grouping_of_the_global_crops(tiny_modelnet, monkeypatch) -> None:
    """A step groups the global crops once (not once per network) and the outputs are the
    ones each network gets grouping the crops itself, bit for bit."""
    from backbones import point_vit

    model = tiny_module()
    views = model_views(tiny_modelnet)
    calls = []
    real_group = point_vit.group_patches
    monkeypatch.setattr(point_vit, "group_patches", lambda pts, m, k: (calls.append(pts.shape), real_group(pts, m, k))[1])
    model.training_step(views, 0)
    g, b, n = views["global"].shape[:3]
    loc, n_loc = views["local"].shape[0], views["local"].shape[2]
    assert calls == [(g * b, n, 3), (loc * b, n_loc, 3)]  # global crops once, local crops once

    patches = model.student.group(views["global"])
    with torch.no_grad():
        for net in (model.student, model.teacher):
            shared, own = net(views["global"], patches), net(views["global"])
            assert torch.equal(shared.logits, own.logits) and torch.equal(shared.embedding, own.embedding)


def model_views(root) -> dict[str, torch.Tensor]:
    """One batch of the tiny data's multi-crop views."""
    data = tiny_data(root)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    return data.on_after_batch_transfer(batch, 0)
