"""bf16 mixed precision on CPU: the network runs in bf16, distances, losses and centre stay fp32."""

from __future__ import annotations

import torch

from backbones.grouping import group_patches
from tests.helpers import tiny_data, tiny_module, tiny_trainer


def test_losses_and_center_stay_fp32_under_bf16_autocast() -> None:
    model = tiny_module()
    views = {"global": torch.rand(2, 3, 128, 3), "local": torch.rand(2, 3, 32, 3)}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        teacher = model.teacher(views["global"])
        student = model._student_views(views["global"], views["local"])
        assert student.embedding.dtype == torch.bfloat16  # the network really ran in bf16
        assert student.logits.dtype == teacher.logits.dtype == torch.float32  # the DINO head's last layer did not
        ld = model.distill_loss(student.logits, teacher.logits, 0.04)
        lc = model.contrastive_loss(student.embedding, teacher.embedding)
        model.distill_loss.update_center(teacher.logits)
    assert ld.dtype == lc.dtype == torch.float32
    assert model.distill_loss.center.dtype == torch.float32
    assert torch.isfinite(ld) and torch.isfinite(lc)


def test_grouping_is_exact_for_bf16_points() -> None:
    pts = torch.rand(2, 256, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        neigh_amp, centers_amp = group_patches(pts, 16, 8)
    neigh, centers = group_patches(pts, 16, 8)
    assert neigh_amp.dtype == torch.float32
    torch.testing.assert_close(neigh_amp, neigh, rtol=0, atol=0)
    torch.testing.assert_close(centers_amp, centers, rtol=0, atol=0)


def test_fit_with_bf16_mixed_precision(tiny_modelnet, tmp_path) -> None:
    model = tiny_module()
    trainer = tiny_trainer(tmp_path, max_steps=3, precision="bf16-mixed")
    trainer.fit(model, tiny_data(tiny_modelnet))
    assert trainer.global_step == 3
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32


def test_the_dino_logits_are_the_fp32_last_layer_of_the_bf16_bottleneck() -> None:
    head = tiny_module().student.head.eval()
    x = torch.randn(5, head.mlp[0].in_features)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z = head.mlp(x)
        logits = head(x).logits
    assert z.dtype == torch.bfloat16
    # the reference: weight norm written out (g · v / ‖v‖ per output row), all in fp32
    v = head.last_layer.parametrizations.weight.original1.float()
    g = head.last_layer.parametrizations.weight.original0.float()
    weight = g * v / v.norm(dim=1, keepdim=True)
    bottleneck = z.float() / z.float().norm(dim=1, keepdim=True).clamp_min(1e-6)
    torch.testing.assert_close(logits, bottleneck @ weight.T, rtol=1e-5, atol=1e-6)
    rounded = (bottleneck @ weight.T).bfloat16().float()  # what a bf16 last layer would at best give
    assert not torch.equal(logits, rounded)
