"""Part labels threaded through the synthetic shape generator: clouds unchanged, labels consistent."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from datamodules.synthetic.shapes import CLASS_NAMES
from datamodules.synthetic.shapes.part_classes import PART_CLASSES, global_part_ids
from datamodules.synthetic.generate import generate_shape, generate_shape_with_parts

REFERENCE = Path(__file__).parent / "data" / "synthetic_reference.json"


def test_clouds_equal_those_of_the_generator_before_part_labels() -> None:
    """The labelled builders draw the same numbers: every class's cloud is the one recorded before."""
    reference = json.loads(REFERENCE.read_text())["classes"]
    assert list(reference) == list(CLASS_NAMES)
    for c, name in enumerate(CLASS_NAMES):
        cloud = generate_shape(c, np.random.default_rng([2024, c]), 256).astype(np.float64)
        ref = reference[name]
        # float tolerance only for other CPUs' libm; a changed random stream moves these by ~0.1-10
        np.testing.assert_allclose(cloud[:2], ref["first"], atol=1e-6, err_msg=name)
        np.testing.assert_allclose(cloud[-1], ref["last"], atol=1e-6, err_msg=name)
        np.testing.assert_allclose(cloud.sum(0), ref["sum"], atol=1e-4, err_msg=name)
        np.testing.assert_allclose((cloud**2).sum(0), ref["sum_sq"], rtol=1e-6, err_msg=name)


def test_generate_shape_is_the_cloud_of_generate_shape_with_parts() -> None:
    for c in range(len(CLASS_NAMES)):
        cloud, owner, parts = generate_shape_with_parts(c, np.random.default_rng([5, c]), 300)
        assert np.array_equal(cloud, generate_shape(c, np.random.default_rng([5, c]), 300))
        assert owner.shape == (300,) and owner.dtype == np.int64
        assert 0 <= owner.min() and owner.max() < len(parts)


def test_global_part_ids_are_consecutive_per_class() -> None:
    table = global_part_ids()
    ids = [i for parts in table.values() for i in parts.values()]
    assert ids == list(range(len(ids))) and len(table) == 16
    assert set(table) <= set(CLASS_NAMES)
    assert table["airplane"] == {"fuselage": 0, "wing": 1, "tail": 2, "engine": 3}


@pytest.mark.parametrize("name,part_names", PART_CLASSES)
def test_every_point_of_a_part_class_has_one_of_its_parts_and_each_part_is_usually_there(name, part_names) -> None:
    c = CLASS_NAMES.index(name)
    present = np.zeros(len(part_names))
    shapes = 12
    for i in range(shapes):
        _, owner, parts = generate_shape_with_parts(c, np.random.default_rng([11, c, i]), 1024)
        labels = [p.label for p in parts]
        assert set(labels) <= set(part_names), f"{name}: unnamed or unknown parts {set(labels) - set(part_names)}"
        per_point = np.array([part_names.index(label) for label in labels])[owner]
        present += np.bincount(per_point, minlength=len(part_names)) > 0
    assert (present / shapes > 0.5).all(), dict(zip(part_names, present / shapes))
