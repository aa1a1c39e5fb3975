"""Collapse signals of self-distillation.

Two ways a DINO-style teacher collapses: every sample maps to the same prototypes (the
entropy of the batch-mean distribution falls towards 0), or every output becomes uniform
(the per-sample entropy rises towards log K). Centering fights the first, sharpening the
second; this monitor watches smoothed entropies and names the failure. An extreme
entropy alone is no proof (a young teacher is near-uniform by design), so the probe
callback reports the verdict only when the probe accuracy has also fallen to chance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor


@dataclass
class CollapseMonitor:
    """Smoothed teacher entropies and the collapse verdict.

    Args:
        num_prototypes: K, the head's output dimension.
        smoothing: EMA factor of the entropies (per step).
        batch_entropy_floor: flag when the batch-mean entropy is below this fraction of log K.
        entropy_ceiling: flag when the per-sample entropy is above this fraction of log K.
    """

    num_prototypes: int
    smoothing: float = 0.9
    batch_entropy_floor: float = 0.05
    entropy_ceiling: float = 0.98
    entropy: float | Tensor | None = None
    batch_entropy: float | Tensor | None = None

    def update(self, entropy: float | Tensor, batch_entropy: float | Tensor) -> None:
        """Fold one step's entropies into the running averages (tensors stay on their device)."""
        if self.entropy is None or self.batch_entropy is None:
            self.entropy, self.batch_entropy = entropy, batch_entropy
            return
        m = self.smoothing
        self.entropy = m * self.entropy + (1 - m) * entropy
        self.batch_entropy = m * self.batch_entropy + (1 - m) * batch_entropy

    def verdict(self) -> str | None:
        """A sentence describing the collapse, or None while training looks healthy."""
        if self.entropy is None or self.batch_entropy is None:
            return None
        entropy, batch_entropy = float(self.entropy), float(self.batch_entropy)
        log_k = math.log(self.num_prototypes)
        if batch_entropy < self.batch_entropy_floor * log_k:
            return (
                f"collapse suspected: the teacher maps every sample to the same prototypes "
                f"(batch entropy {batch_entropy:.3f} of log K = {log_k:.2f}); "
                "raise distill.center_momentum's effect (lower it) or the teacher temperature"
            )
        if entropy > self.entropy_ceiling * log_k:
            return (
                f"collapse suspected: teacher outputs are uniform (entropy {entropy:.3f} "
                f"of log K = {log_k:.2f}); lower distill.teacher_temp"
            )
        return None
