"""One synthetic shape: a class's parametric parts, sampled, deformed, cut, jittered and rotated.

The generator behind every synthetic set (:mod:`datamodules.synthetic.shape_set`, the cached
ModelNet40-layout set; :mod:`datamodules.synthetic.stream`, a train split drawn afresh every
epoch; :mod:`datamodules.synthetic.part_set`, the part-labelled set). Pure numpy: a shape
depends only on its class and the generator it is given.
"""

from __future__ import annotations

import math

import numpy as np

from datamodules.dataset import normalize_unit_sphere
from datamodules.synthetic.shapes import CLASS_NAMES, CLASSES
from datamodules.synthetic.shapes.common import uniform
from datamodules.synthetic.shapes.parts import (
    Part,
    kept_after_random_regions,
    random_deformation,
    rot_y,
    sample_surface_indexed,
)

NOISE_SIGMA = (0.005, 0.01)
MAX_CUT_REGIONS = 2
MAX_CUT_FRACTION = 0.15


def generate_shape_with_parts(
    class_index: int, rng: np.random.Generator, num_points: int = 2048
) -> tuple[np.ndarray, np.ndarray, list[Part]]:
    """One cloud as :func:`generate_shape` makes it, with the part every point was sampled on.

    Returns the (num_points, 3) float32 cloud, each point's index into the builder's part
    list (num_points,) int64, and that list (whose ``label`` names each part's semantic
    part). The random stream is the same as :func:`generate_shape`'s, so the clouds are too.
    """
    if not 0 <= class_index < len(CLASSES):
        raise ValueError(f"class_index must be in [0, {len(CLASSES)}), got {class_index}")
    parts = CLASSES[class_index][1](rng)
    keep = 1.0 - MAX_CUT_REGIONS * MAX_CUT_FRACTION
    pts, owner = sample_surface_indexed(parts, math.ceil(num_points / keep) + 16, rng)
    pts = random_deformation(normalize_unit_sphere(pts), rng)
    kept = kept_after_random_regions(pts, rng, MAX_CUT_REGIONS, MAX_CUT_FRACTION)
    pts, owner = pts[kept], owner[kept]
    chosen = rng.choice(len(pts), num_points, replace=len(pts) < num_points)
    pts, owner = pts[chosen], owner[chosen]
    pts = normalize_unit_sphere(pts)
    pts = pts + rng.normal(0.0, uniform(rng, *NOISE_SIGMA), size=pts.shape)
    pts = pts @ rot_y(uniform(rng, 0.0, 2 * math.pi)).T
    return normalize_unit_sphere(pts).astype(np.float32), owner.astype(np.int64), parts


def generate_shape(class_index: int, rng: np.random.Generator, num_points: int = 2048) -> np.ndarray:
    """One (num_points, 3) float32 cloud of class ``class_index``, y up, in the unit sphere.

    Surface sampling (oversampled), smooth deformation, 0-2 cut-out regions,
    resampling without replacement, Gaussian jitter, rotation about y, then
    centring and scaling to max norm 1.
    """
    return generate_shape_with_parts(class_index, rng, num_points)[0]


def balanced_labels(num_per_class: int, key: list[int]) -> np.ndarray:
    """``num_per_class`` labels of each class, shuffled by ``default_rng(key + [2**31])``."""
    labels = np.repeat(np.arange(len(CLASS_NAMES), dtype=np.int64), num_per_class)
    return np.random.default_rng([*key, 2**31]).permutation(labels)
