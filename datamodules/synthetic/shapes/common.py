"""Small helpers the shape builders share: draws, legs, rectangle corners, open vessels."""

from __future__ import annotations

import numpy as np

from datamodules.synthetic.shapes.parts import (
    Part,
    beam,
    disc,
    revolution,
    segment,
)


def uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    """One uniform draw as a plain float."""
    return float(rng.uniform(lo, hi))


def pick_variant(rng: np.random.Generator, probs: list[float]) -> int:
    """Index of a design variant, drawn with the given probabilities."""
    p = np.asarray(probs, dtype=np.float64)
    return int(rng.choice(len(p), p=p / p.sum()))


def leg_parts(corners: list[tuple[float, float]], top: float, radius: float, splay: float, square: bool) -> list[Part]:
    """Legs from the floor to height ``top`` under xz ``corners``, feet pushed out by ``splay``."""
    parts = []
    for x, z in corners:
        foot, head = (x * (1 + splay), 0.0, z * (1 + splay)), (x, top, z)
        parts.append(beam(foot, head, 2 * radius) if square else segment(foot, head, radius))
    return parts


def rect_corners(half_x: float, half_z: float) -> list[tuple[float, float]]:
    """The four (x, z) corners of a centred rectangle."""
    return [(sx * half_x, sz * half_z) for sx in (-1, 1) for sz in (-1, 1)]


def open_vessel(radii: np.ndarray, heights: np.ndarray, wall: float) -> list[Part]:
    """Outer wall with a bottom, inner wall and rim: a container open at the top."""
    inner_r = np.maximum(radii - wall, 0.0)
    inner_h = np.maximum(heights, heights[0] + wall)
    return [
        revolution(radii, heights, cap_bottom=True),
        revolution(inner_r, inner_h, cap_bottom=True),
        disc(float(radii[-1]), (0.0, float(heights[-1]), 0.0), inner=float(inner_r[-1])),
    ]
