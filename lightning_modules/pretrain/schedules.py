"""Per-step schedules (learning rate, weight decay, EMA momentum, teacher temperature).

Small objects with a ``state_dict`` so a checkpoint records exactly what a run used and
a resumed run can check it continues the same schedule.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass
class CosineSchedule:
    """Linear warm-up from ``warmup_start`` to ``base``, then cosine from ``base`` to ``final``.

    Step ``total_steps`` (and beyond) returns ``final``; DINO's ``cosine_scheduler``.
    """

    base: float
    final: float
    total_steps: int
    warmup_steps: int = 0
    warmup_start: float = 0.0

    def __call__(self, step: int) -> float:
        """Value at optimizer step ``step`` (0-based)."""
        if step < self.warmup_steps:
            return self.warmup_start + (self.base - self.warmup_start) * step / self.warmup_steps
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.final + 0.5 * (self.base - self.final) * (1 + math.cos(math.pi * progress))

    def state_dict(self) -> dict[str, float | int]:
        """Everything that defines the schedule."""
        return asdict(self)

    def load_state_dict(self, state: dict[str, float | int]) -> None:
        """Restore a saved schedule."""
        for key, value in state.items():
            setattr(self, key, value)


@dataclass
class LinearWarmup:
    """Linear from ``start`` to ``end`` over ``warmup_steps``, then constant (teacher temp)."""

    start: float
    end: float
    warmup_steps: int

    def __call__(self, step: int) -> float:
        """Value at step ``step``."""
        if step >= self.warmup_steps:
            return self.end
        return self.start + (self.end - self.start) * step / self.warmup_steps

    def state_dict(self) -> dict[str, float | int]:
        """Everything that defines the schedule."""
        return asdict(self)

    def load_state_dict(self, state: dict[str, float | int]) -> None:
        """Restore a saved schedule."""
        for key, value in state.items():
            setattr(self, key, value)
