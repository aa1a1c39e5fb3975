"""The multi-tensor optimizer side against DINO's per-parameter formulas written out
(facebookresearch/dino ``utils.clip_gradients``, ``cancel_gradients_last_layer``, the EMA of ``main_dino.py``)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lightning_modules.pretrain.adamw import adamw_kernel
from lightning_modules.pretrain.dwc import clip_gradients_
from lightning_modules.pretrain.ema import ema_update, init_teacher, momentum_params
from tests.helpers import tiny_module


def _grads(seed: int) -> list[torch.Tensor]:
    """Gradients of several shapes, norms from well under to well over the clip."""
    g = torch.Generator().manual_seed(seed)
    shapes, scales = [(5, 7), (7,), (3, 3, 2), (1,), (64, 32)], [0.01, 0.5, 3.0, 10.0, 100.0]
    return [torch.randn(s, generator=g) * k for s, k in zip(shapes, scales)]


def dino_clip_gradients(grads: list[torch.Tensor], clip: float) -> None:
    """DINO's ``clip_gradients``, a Python loop over the parameters."""
    for g in grads:
        param_norm = g.norm(2)
        clip_coef = clip / (param_norm + 1e-6)
        if clip_coef < 1:
            g.mul_(clip_coef)


@pytest.mark.parametrize("clip", [0.3, 3.0, 1000.0])
def test_multi_tensor_clip_equals_dinos_per_parameter_loop(clip: float) -> None:
    ours, ref = _grads(0), _grads(0)
    clip_gradients_(ours, clip)
    dino_clip_gradients(ref, clip)
    for a, b in zip(ours, ref):
        # measured max |diff| 0 (same reciprocal-times-clip arithmetic): bit for bit
        assert torch.equal(a, b)
    assert all(g.norm() <= clip * (1 + 1e-5) for g in ours)


def test_ema_equals_the_per_tensor_formula_with_lists_built_once() -> None:
    torch.manual_seed(0)
    student = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 3))
    teacher = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 3))
    pairs = [(student, teacher)]
    init_teacher(pairs)
    params = momentum_params(pairs)  # built once, reused every step
    for step, m in enumerate((0.996, 0.9, 0.5)):
        with torch.no_grad():
            for p in student.parameters():
                p.add_(torch.randn_like(p))
        before = {n: p.detach().clone() for n, p in teacher.named_parameters()}
        ema_update(params, m)
        s = dict(student.named_parameters())
        for n, p in teacher.named_parameters():
            # m·t + (1 − m)·s per tensor; measured max |diff| 6.0e-8 (one float32 ulp: add_(alpha) multiplies-adds in one rounding)
            torch.testing.assert_close(p, m * before[n] + (1 - m) * s[n].detach(), rtol=0, atol=2e-7)


def test_ema_lists_follow_a_module_moved_after_they_were_built() -> None:
    student, teacher = nn.Linear(3, 2), nn.Linear(3, 2)
    init_teacher([(student, teacher)])
    params = momentum_params([(student, teacher)])
    student.double(), teacher.double()  # replaces param.data in place: the lists still see it
    with torch.no_grad():
        student.weight.fill_(1.0)
    before = teacher.weight.detach().clone()
    ema_update(params, 0.5)
    assert teacher.weight.dtype == torch.float64
    torch.testing.assert_close(teacher.weight, 0.5 * before + 0.5)


def test_adamw_kernel_is_fused_on_cuda_and_cpu_and_multi_tensor_elsewhere() -> None:
    assert adamw_kernel(torch.device("cuda", 0)) == {"fused": True}
    assert adamw_kernel(torch.device("cpu")) == {"fused": True}
    assert adamw_kernel(torch.device("mps")) == {"foreach": True}


def test_fused_adamw_on_cpu_follows_the_per_parameter_loop_within_rounding() -> None:
    """The fused kernel the module uses on CPU: the per-parameter loop's update up to rounding.

    Same groups, per-step lr and weight decay as the pretraining schedules; after 20 steps the
    largest difference measured was 7.5e-9 absolute (parameters of size ~1); the bound below is
    1e-7, under float32's epsilon. The multi-tensor kernel equals the loop bit for bit.
    """

    def run(**kernel) -> list[torch.Tensor]:
        torch.manual_seed(0)
        ps = [nn.Parameter(torch.randn(s)) for s in [(5, 7), (7,), (3, 3, 2)]]
        opt = torch.optim.AdamW(
            [{"params": ps[:2], "weight_decay": 0.04}, {"params": ps[2:], "weight_decay": 0.0}], lr=1e-3, **kernel
        )
        for i in range(20):
            for j, p in enumerate(ps):
                p.grad = torch.sin(p.detach() * (i + 1) + j)
            opt.param_groups[0]["lr"], opt.param_groups[0]["weight_decay"] = 1e-3 * (i + 1) / 20, 0.04 + 0.01 * i
            opt.step()
        return ps

    loop = run(foreach=False)
    for a, b in zip(run(foreach=True), loop):
        assert torch.equal(a, b)
    diffs = [float((a - b).detach().abs().max()) for a, b in zip(run(fused=True), loop)]
    assert max(diffs) <= 1e-7, diffs
    assert max(diffs) > 0  # the fused kernel does round differently: the bound is what is tested


def _fill_grads(model) -> None:
    for i, p in enumerate(model.student.parameters()):
        if p.requires_grad:
            p.grad = torch.full_like(p, 0.01 * (i + 1) if i % 2 else 1e-5)  # some over any clip, some under


@pytest.mark.parametrize("step, frozen", [(0, True), (2, True), (3, False), (10, False)])
def test_freeze_drops_exactly_the_last_layer_grads_inside_the_window(step: int, frozen: bool, monkeypatch) -> None:
    model = tiny_module(freeze_last_layer_steps=3, clip_grad=0.0)
    monkeypatch.setattr(type(model), "global_step", property(lambda self: step))
    _fill_grads(model)
    expected = {n: p.grad.clone() for n, p in model.student.named_parameters() if p.grad is not None}
    model.on_before_optimizer_step(None)
    last = {id(p) for p in model.student.head.last_layer.parameters()}
    assert last and any(p.requires_grad for p in model.student.head.last_layer.parameters())
    for n, p in model.student.named_parameters():
        if n not in expected:
            continue
        if id(p) in last and frozen:
            assert p.grad is None, n  # DINO's cancel_gradients_last_layer: no update at all
        else:
            assert torch.equal(p.grad, expected[n]), n


def test_module_clip_equals_dinos_loop_over_the_students_grads(monkeypatch) -> None:
    model = tiny_module(clip_grad=0.05)
    monkeypatch.setattr(type(model), "global_step", property(lambda self: 0))
    _fill_grads(model)
    ref = [p.grad.clone() for p in model.student.parameters() if p.grad is not None]
    assert any(g.norm() > 0.05 for g in ref) and any(g.norm() < 0.05 for g in ref)  # both branches
    dino_clip_gradients(ref, 0.05)
    model.on_before_optimizer_step(None)
    ours = [p.grad for p in model.student.parameters() if p.grad is not None]
    assert len(ours) == len(ref)
    for a, b in zip(ours, ref):
        assert torch.equal(a, b)
