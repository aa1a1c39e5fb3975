"""Tiny software renderer for point clouds: numpy only, no plotting library needed.

Used for the pictures logged to W&B (crops, attention maps). Orthographic view from a
given azimuth/elevation around the up axis (y), painter's order, square splats.
"""

from __future__ import annotations

import math

import numpy as np

# Anchor colours of the viridis colormap; values in between are interpolated.
_VIRIDIS = np.array(
    [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=np.float64
)


def colormap(values: np.ndarray) -> np.ndarray:
    """Map values (any range) to viridis RGB uint8, min -> purple, max -> yellow."""
    v = np.asarray(values, dtype=np.float64)
    span = v.max() - v.min() if v.size else 0.0
    t = (v - v.min()) / span if span > 0 else np.zeros_like(v)
    pos = t * (len(_VIRIDIS) - 1)
    lo = np.clip(np.floor(pos).astype(int), 0, len(_VIRIDIS) - 2)
    frac = (pos - lo)[..., None]
    return ((1 - frac) * _VIRIDIS[lo] + frac * _VIRIDIS[lo + 1]).astype(np.uint8)


def render_points(
    points: np.ndarray,
    colors: np.ndarray | None = None,
    size: int = 256,
    azimuth: float = 30.0,
    elevation: float = 20.0,
    splat: int = 2,
) -> np.ndarray:
    """(N, 3) points (y up), optional (N, 3) uint8 colours -> (size, size, 3) uint8 image."""
    pts = np.asarray(points, dtype=np.float64)
    if colors is None:
        colors = colormap(pts[:, 1])
    a, e = math.radians(azimuth), math.radians(elevation)
    rot_y = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    rot_x = np.array([[1, 0, 0], [0, math.cos(e), -math.sin(e)], [0, math.sin(e), math.cos(e)]])
    view = pts @ rot_y.T @ rot_x.T
    radius = max(np.abs(view[:, :2]).max(), 1e-8)
    margin = splat + 2
    px = ((view[:, 0] / radius + 1) / 2 * (size - 2 * margin) + margin).astype(int)
    py = ((1 - (view[:, 1] / radius + 1) / 2) * (size - 2 * margin) + margin).astype(int)
    image = np.full((size, size, 3), 255, dtype=np.uint8)
    for i in np.argsort(view[:, 2]):  # far to near: nearer points paint over farther ones
        image[py[i] - splat // 2 : py[i] + splat - splat // 2, px[i] - splat // 2 : px[i] + splat - splat // 2] = colors[i]
    return image


def tile(images: list[np.ndarray], gap: int = 4) -> np.ndarray:
    """Images of equal size side by side, separated by white gaps."""
    h = images[0].shape[0]
    spacer = np.full((h, gap, 3), 255, dtype=np.uint8)
    parts: list[np.ndarray] = []
    for i, img in enumerate(images):
        parts += [spacer, img] if i else [img]
    return np.concatenate(parts, axis=1)
