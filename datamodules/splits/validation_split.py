"""A validation split carved from the train split: seeded, stratified, disjoint.

The honest protocol chooses checkpoints and hyper-parameters on shapes of the train split
that the network does not fit on, so the test split is touched only once, at the end.
Each class gives ``round(fraction · count)`` of its shapes to validation, at least
``min_per_class`` (default 1; every class is then validated, by more than a coin toss on small
sets), but the minimum never takes more than half of a class (``count // 2``, at least one) and
never all of it (every class keeps a shape to fit):
``max(1, min(count - 1, max(min_per_class, round(fraction · count)), max(round(fraction · count), count // 2)))``. Which shapes go is a pure function of ``(labels, fraction, seed)``.
"""

from __future__ import annotations

import numpy as np

from datamodules.errors import DataError


def stratified_split(
    labels: np.ndarray, fraction: float, seed: int = 0, field: str = "data.val_fraction", min_per_class: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(fit, val)`` of a stratified ``fraction`` carved out of ``labels``.

    Args:
        labels: (n,) integer class of each train shape.
        fraction: share of each class held out, in [0, 1); 0 gives an empty validation split.
        seed: the draw (the same seed always gives the same split).
        field: the option named in errors.
        min_per_class: validation shapes of each class, at least (capped as the module says).

    Returns:
        Sorted, disjoint int64 index arrays that together cover ``range(n)``.
    """
    labels = np.asarray(labels)
    if not 0.0 <= fraction < 1.0:
        raise DataError(f"{field}={fraction}: the validation fraction must be in [0, 1)")
    if min_per_class < 1:
        raise DataError(f"data.val_min_per_class={min_per_class}: must be at least 1")
    everything = np.arange(len(labels), dtype=np.int64)
    if fraction == 0.0 or len(labels) == 0:
        return everything, np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng([seed, 0x5E1EC7])
    val = []
    for cls in np.unique(labels):
        members = everything[labels == cls]
        if len(members) < 2:
            continue  # a single shape is needed for fitting
        share = round(fraction * len(members))
        count = max(1, min(len(members) - 1, max(min_per_class, share), max(share, len(members) // 2)))
        val.append(rng.permutation(members)[:count])
    val_idx = np.sort(np.concatenate(val)) if val else np.zeros(0, dtype=np.int64)
    fit_idx = np.setdiff1d(everything, val_idx, assume_unique=True)
    return fit_idx, val_idx
