"""The validation split carved from the train split: disjoint, stratified, stable under its seed."""

from __future__ import annotations

import numpy as np
import pytest

from datamodules.errors import DataError
from datamodules.splits.validation_split import stratified_split


def test_the_split_is_disjoint_stratified_and_seeded() -> None:
    labels = np.random.default_rng(0).permutation(np.repeat(np.arange(4), [30, 10, 5, 1]))
    fit, val = stratified_split(labels, 0.1, seed=7)
    assert len(np.intersect1d(fit, val)) == 0 and np.array_equal(np.sort(np.concatenate([fit, val])), np.arange(46))
    # round(0.1 * count) per class, at least one of a class with two or more, none of a class of one
    assert np.bincount(labels[val], minlength=4).tolist() == [3, 1, 1, 0]
    assert np.bincount(labels[fit], minlength=4).tolist() == [27, 9, 4, 1]
    again_fit, again_val = stratified_split(labels, 0.1, seed=7)
    assert np.array_equal(val, again_val) and np.array_equal(fit, again_fit)
    other = stratified_split(labels, 0.1, seed=8)[1]
    assert not np.array_equal(val, other)


def test_no_validation_split_and_bad_fractions() -> None:
    fit, val = stratified_split(np.arange(10) % 2, 0.0)
    assert len(val) == 0 and np.array_equal(fit, np.arange(10))
    for bad in (1.0, -0.1):
        with pytest.raises(DataError, match=r"data.val_fraction=.*must be in \[0, 1\)"):
            stratified_split(np.arange(10) % 2, bad)
