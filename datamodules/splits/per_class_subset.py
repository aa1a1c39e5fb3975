"""At most N shapes of each class: a seeded subset that bounds what an evaluation costs.

The linear probe embeds and cross-validates every shape of its splits; on a large probe set
(or a laptop smoke run) ``probe.max_per_class`` bounds that. Which shapes are kept is a pure
function of ``(labels, max_per_class, seed)``; classes with fewer shapes keep them all.
"""

from __future__ import annotations

import numpy as np

from datamodules.errors import DataError


def per_class_subset(labels: np.ndarray, max_per_class: int, seed: int = 0,
                     field: str = "probe.max_per_class") -> np.ndarray:
    """Sorted indices of at most ``max_per_class`` shapes of each class of ``labels``."""
    if max_per_class < 1:
        raise DataError(f"{field}={max_per_class}: keep at least one shape of each class (or leave it unset)")
    labels = np.asarray(labels)
    everything = np.arange(len(labels), dtype=np.int64)
    rng = np.random.default_rng([seed, 0xC1A55])
    kept = [rng.permutation(everything[labels == cls])[:max_per_class] for cls in np.unique(labels)]
    return np.sort(np.concatenate(kept)) if kept else everything
