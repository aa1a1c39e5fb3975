"""Collapse monitor: healthy, one-prototype and uniform teachers."""

from __future__ import annotations

import math

from lightning_modules.pretrain.collapse import CollapseMonitor


def test_healthy_teacher_is_not_flagged() -> None:
    mon = CollapseMonitor(4096)
    for _ in range(50):
        mon.update(entropy=2.0, batch_entropy=6.0)
    assert mon.verdict() is None


def test_all_samples_on_the_same_prototypes_is_flagged() -> None:
    mon = CollapseMonitor(4096)
    for _ in range(100):
        mon.update(entropy=0.01, batch_entropy=0.01)
    assert "same prototypes" in mon.verdict()


def test_uniform_teacher_is_flagged() -> None:
    mon = CollapseMonitor(64)
    for _ in range(100):
        mon.update(entropy=math.log(64) - 1e-3, batch_entropy=math.log(64))
    assert "uniform" in mon.verdict()


def test_smoothing_needs_sustained_collapse() -> None:
    mon = CollapseMonitor(4096)
    for _ in range(30):
        mon.update(entropy=2.0, batch_entropy=6.0)
    mon.update(entropy=0.0, batch_entropy=0.0)  # one bad step
    assert mon.verdict() is None
