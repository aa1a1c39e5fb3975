"""Near-duplicate detection for sampled surface clouds: distance measured against sampling noise.

Two clouds sampled on the same surface are never equal, and at 2048 points the distance between
two samples of one surface (its *noise*, 0.013-0.032 in the unit sphere for KiCad's models) is as
large as the difference between parametric variants, so no fixed distance separates copies from
distinct shapes. :class:`Deduplicator` therefore compares the distance between two models' clouds
with the larger of their noises (each the distance between the model's cloud and a second,
differently seeded cloud of it): below :data:`DUPLICATE_RATIO`, the two are one model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from datamodules.dataset import normalize_unit_sphere

DUPLICATE_RATIO = 1.2
"""Two models are one when their unit-sphere clouds are closer than this times their sampling noise.

Measured: two independent samples of one surface (a cube and three KiCad models, 15 draws
each) give ratios of 0.77-1.13, so 1.2 catches copies, rescaled copies and remeshed copies.
Among the first 60 models of five libraries the pairs below 1.2 are variants that 2048 points
cannot tell apart: DFN-8 / DFN-10 3x3mm, CP_Axial of several sizes, 1x12 / 1x13 SMD pin
headers, R_Array 2x0402 / 2x0603; 18 to 41 of each 59 would be dropped."""
EXTENT_TOLERANCE = 0.05
"""Only clouds whose unit-sphere bounding boxes differ by less than this along every axis are compared."""


def cloud_distance(a: np.ndarray, b: np.ndarray, tree_a: cKDTree | None = None, tree_b: cKDTree | None = None) -> float:
    """Symmetric mean nearest-neighbour distance between two clouds (the mean of both directions)."""
    tree_a = tree_a if tree_a is not None else cKDTree(a)
    tree_b = tree_b if tree_b is not None else cKDTree(b)
    return 0.5 * float(tree_b.query(a)[0].mean() + tree_a.query(b)[0].mean())


def sampling_noise(cloud: np.ndarray, second: np.ndarray) -> float:
    """The distance between two samples of one surface, both centred and scaled into the unit sphere."""
    return cloud_distance(normalize_unit_sphere(cloud), normalize_unit_sphere(second))


@dataclass
class _Kept:
    name: str
    digest: str
    noise: float
    unit: np.ndarray
    extents: np.ndarray
    tree: cKDTree


@dataclass
class Deduplicator:
    """Keeps the first of each set of near-identical clouds, within each group (a library) separately."""

    ratio: float = DUPLICATE_RATIO
    kept: dict[str, list[_Kept]] = field(default_factory=dict)
    """Group -> the models kept so far, in the order they came."""

    def match(self, group: str, name: str, digest: str, cloud: np.ndarray, noise: float) -> tuple[str, float] | None:
        """The kept model of ``group`` that this one duplicates, with their distance over the noise (0 for
        the same file contents ``digest``); None when there is none, and then this model is kept."""
        unit = normalize_unit_sphere(np.asarray(cloud, dtype=np.float64))
        extents = np.ptp(unit, axis=0)
        tree = cKDTree(unit)
        kept = self.kept.setdefault(group, [])
        for other in kept:
            if other.digest == digest:
                return other.name, 0.0
            if np.abs(extents - other.extents).max() >= EXTENT_TOLERANCE:
                continue
            ratio = cloud_distance(unit, other.unit, tree, other.tree) / max(noise, other.noise, 1e-12)
            if ratio < self.ratio:
                return other.name, ratio
        kept.append(_Kept(name, digest, noise, unit, extents, tree))
        return None
