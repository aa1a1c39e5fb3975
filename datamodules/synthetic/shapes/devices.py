"""Devices: builders (:data:`~datamodules.synthetic.shapes.Builder`) of
monitors, guitars, laptops.
"""

from __future__ import annotations

import math

import numpy as np

from datamodules.synthetic.shapes.common import pick_variant, uniform
from datamodules.synthetic.shapes.parts import (
    Part,
    beam,
    box,
    cylinder,
    moved_all,
    named_all,
    prism_xy,
    rot_x,
    segment,
)


def monitor(rng: np.random.Generator) -> list[Part]:
    """Monitor: thin (or CRT) screen on a neck and base, tilted slightly.

    Parts: screen (with its back or CRT tube), stand (neck and base or feet).
    """
    w = 1.0
    crt = rng.random() < 0.15
    aspect = 4 / 3 if crt else float(rng.choice([16 / 9, 16 / 10, 4 / 3, 21 / 9]))
    hs, t = w / aspect, uniform(rng, 0.015, 0.05)
    neck_h = uniform(rng, 0.05, 0.12) if crt else uniform(rng, 0.12, 0.3)
    y0 = neck_h + hs / 2
    screen = [box((w, hs, t))]
    if crt:
        depth = w * uniform(rng, 0.5, 0.8)
        screen.append(box((w * 0.8, hs * 0.8, depth), (0.0, -0.03, -t / 2 - depth / 2)))
    elif rng.random() < 0.5:
        screen.append(box((w * 0.5, hs * 0.5, t * 1.5), (0.0, 0.0, -t * 1.2)))
    parts = named_all(moved_all(screen, (0.0, y0, 0.0), rot_x(-uniform(rng, -0.05, 0.2))), "screen")
    back = -t / 2 - 0.03 if not crt else -0.2
    stand = [box((0.06, y0 - 0.01, 0.03), (0.0, y0 / 2, back))]
    kind = pick_variant(rng, [0.45, 0.35, 0.2])
    if kind == 0:
        stand.append(box((w * uniform(rng, 0.3, 0.5), 0.02, uniform(rng, 0.15, 0.25)), (0.0, 0.01, back)))
    elif kind == 1:
        stand.append(cylinder(uniform(rng, 0.1, 0.16), 0.02, (0.0, 0.0, back)))
    else:  # V-shaped feet
        for s in (-1, 1):
            stand.append(beam((0.0, 0.01, back), (s * uniform(rng, 0.15, 0.3), 0.01, back + uniform(rng, 0.1, 0.2)), 0.03))
    return parts + named_all(stand, "stand")


def guitar(rng: np.random.Generator) -> list[Part]:
    """Upright guitar: figure-eight body (acoustic or solid), neck, headstock, pegs.

    Parts: body (with the bridge), neck, head (headstock and pegs).
    """
    acoustic = rng.random() < 0.55
    r1 = 1.0
    r2, gap = r1 * uniform(rng, 0.65, 0.85), uniform(rng, 0.6, 0.8)
    d = (r1 + r2) * gap
    side = uniform(rng, -0.25, 0.25) * r2 if not acoustic else 0.0
    centres = np.array([[0.0, r1], [side, r1 + d]])
    rads = np.array([r1, r2])
    star = np.array([side * 0.5, r1 + (d - r2 + r1) / 2])  # inside both circles
    ang = np.linspace(0.0, 2 * math.pi, 64, endpoint=False)
    dirs = np.stack([np.cos(ang), np.sin(ang)], 1)
    rel = centres[None] - star  # (1, 2, 2)
    proj = np.einsum("ak,ck->ac", dirs, rel[0])
    reach = proj + np.sqrt(np.maximum(proj**2 - np.sum(rel[0] ** 2, 1) + rads**2, 0.0))
    outline = star + dirs * reach.max(axis=1, keepdims=True)
    thick = uniform(rng, 0.35, 0.5) if acoustic else uniform(rng, 0.15, 0.25)
    parts = [prism_xy(outline, thick, center_2d=star).named("body")]
    top_y = r1 + d + r2 * 0.95
    neck_len, neck_w = uniform(rng, 2.2, 2.8), uniform(rng, 0.2, 0.28)
    parts.append(box((neck_w, neck_len, 0.12), (side * 0.5, top_y + neck_len / 2, thick / 2 - 0.06)).named("neck"))
    head_len = uniform(rng, 0.7, 1.0)
    head = box((neck_w * 1.5, head_len, 0.08), (0.0, head_len / 2, 0.0))
    tilt = rot_x(-uniform(rng, 0.0, 0.25))
    hbase = np.array([side * 0.5, top_y + neck_len, thick / 2 - 0.06])
    parts.append(head.moved(hbase, tilt).named("head"))
    if acoustic:
        for k in range(3):
            for s in (-1, 1):
                p = tilt @ np.array([s * neck_w * 0.75, head_len * (0.25 + 0.25 * k), 0.0]) + hbase
                parts.append(segment(p, p + np.array([s * 0.15, 0.0, 0.0]), 0.03).named("head"))
    parts.append(box((0.5, 0.1, 0.05), (0.0, r1 * 0.7, thick / 2 + 0.025)).named("body"))
    return parts


def laptop(rng: np.random.Generator) -> list[Part]:
    """Laptop: thin base with keyboard and touchpad, screen hinged open at the back.

    Parts: base (with keyboard and touchpad), screen (lid and display).
    """
    w, d, t = 1.0, uniform(rng, 0.6, 0.75), uniform(rng, 0.015, 0.035)
    parts = named_all(
        [
            box((w, t, d), (0.0, t / 2, 0.0)),
            box((w * 0.85, 0.006, d * 0.45), (0.0, t + 0.003, -d * 0.12)),
            box((w * 0.3, 0.004, d * 0.22), (0.0, t + 0.002, d * 0.3)),
        ],
        "base",
    )
    sh = d * uniform(rng, 0.85, 1.0)
    screen = [
        box((w, sh, t * 0.6), (0.0, sh / 2, 0.0)),
        box((w * 0.9, sh * 0.85, 0.004), (0.0, sh / 2, t * 0.3 + 0.002)),
    ]
    angle = uniform(rng, math.radians(95), math.radians(140))
    return parts + named_all(moved_all(screen, (0.0, t, -d / 2 + t * 0.3), rot_x(-(angle - math.pi / 2))), "screen")
