"""EMA teacher update and per-step schedules."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lightning_modules.pretrain.ema import ema_update, init_teacher
from lightning_modules.pretrain.schedules import CosineSchedule, LinearWarmup


def test_ema_update_formula_and_teacher_init() -> None:
    torch.manual_seed(0)
    student, teacher = nn.Linear(4, 3), nn.Linear(4, 3)
    pairs = [(student, teacher)]
    init_teacher(pairs)
    assert all(not p.requires_grad for p in teacher.parameters())
    torch.testing.assert_close(teacher.weight, student.weight)
    before = teacher.weight.detach().clone()
    with torch.no_grad():
        student.weight.add_(1.0)
    ema_update(pairs, 0.9)
    torch.testing.assert_close(teacher.weight, 0.9 * before + 0.1 * student.weight.detach())
    ema_update(pairs, 1.0)  # momentum 1: frozen
    torch.testing.assert_close(teacher.weight, 0.9 * before + 0.1 * student.weight.detach())


def test_cosine_schedule_endpoints_and_warmup() -> None:
    s = CosineSchedule(base=1.0, final=0.1, total_steps=100, warmup_steps=10, warmup_start=0.0)
    assert s(0) == 0.0
    assert s(5) == pytest.approx(0.5)
    assert s(10) == pytest.approx(1.0)
    assert s(55) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 0.5)))
    assert s(100) == pytest.approx(0.1)
    assert s(1000) == pytest.approx(0.1)
    values = [s(i) for i in range(10, 101)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_momentum_schedule_goes_from_0996_to_1() -> None:
    m = CosineSchedule(0.996, 1.0, total_steps=50)
    assert m(0) == pytest.approx(0.996)
    assert m(50) == pytest.approx(1.0)


def test_teacher_temperature_warmup() -> None:
    t = LinearWarmup(0.04, 0.07, warmup_steps=30)
    assert t(0) == pytest.approx(0.04)
    assert t(15) == pytest.approx(0.055)
    assert t(30) == pytest.approx(0.07) and t(500) == pytest.approx(0.07)


def test_schedule_state_round_trip() -> None:
    s = CosineSchedule(1.0, 0.0, 10, 2)
    t = CosineSchedule(0.0, 0.0, 1)
    t.load_state_dict(s.state_dict())
    assert [t(i) for i in range(12)] == [s(i) for i in range(12)]


def test_ema_averages_parameters_only_and_leaves_teacher_buffers_alone() -> None:
    torch.manual_seed(0)
    student, teacher = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)), nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    init_teacher([(student, teacher)])
    student.train()(torch.randn(16, 4) * 5 + 2)  # moves the student's running statistics
    mean_before, var_before = teacher[1].running_mean.clone(), teacher[1].running_var.clone()
    ema_update([(student, teacher)], 0.5)
    assert torch.equal(teacher[1].running_mean, mean_before) and torch.equal(teacher[1].running_var, var_before)
    assert not torch.equal(teacher[1].running_mean, student[1].running_mean)
