"""A validation split carved from the train split: seeded, stratified, disjoint.

The honest protocol chooses checkpoints and hyper-parameters on shapes of the train split
that the network does not fit on, so the test split is touched only once, at the end.
Each class gives ``round(fraction · count)`` of its shapes to validation, at least one
when it has two or more (every class is then validated) and never all of them (every class
is still fitted). Which shapes go is a pure function of ``(labels, fraction, seed)``.
"""

from __future__ import annotations

import numpy as np

from datamodules.errors import DataError


def stratified_split(
    labels: np.ndarray, fraction: float, seed: int = 0, field: str = "data.val_fraction"
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(fit, val)`` of a stratified ``fraction`` carved out of ``labels``.

    Args:
        labels: (n,) integer class of each train shape.
        fraction: share of each class held out, in [0, 1); 0 gives an empty validation split.
        seed: the draw (the same seed always gives the same split).
        field: the option named in errors.

    Returns:
        Sorted, disjoint int64 index arrays that together cover ``range(n)``.
    """
    labels = np.asarray(labels)
    if not 0.0 <= fraction < 1.0:
        raise DataError(f"{field}={fraction}: the validation fraction must be in [0, 1)")
    everything = np.arange(len(labels), dtype=np.int64)
    if fraction == 0.0 or len(labels) == 0:
        return everything, np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng([seed, 0x5E1EC7])
    val = []
    for cls in np.unique(labels):
        members = everything[labels == cls]
        if len(members) < 2:
            continue  # a single shape is needed for fitting
        count = min(len(members) - 1, max(1, round(fraction * len(members))))
        val.append(rng.permutation(members)[:count])
    val_idx = np.sort(np.concatenate(val)) if val else np.zeros(0, dtype=np.int64)
    fit_idx = np.setdiff1d(everything, val_idx, assume_unique=True)
    return fit_idx, val_idx
