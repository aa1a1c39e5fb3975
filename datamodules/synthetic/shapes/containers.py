"""Containers: builders (:data:`~datamodules.synthetic.shapes.Builder`) of
cups, mugs, bowls, bottles, vases, jars, pots, kettles, glasses, bathtubs.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from datamodules.synthetic.shapes.common import open_vessel, pick_variant, rect_corners, uniform
from datamodules.synthetic.shapes.parts import (
    Part,
    box,
    cylinder,
    disc,
    ellipsoid,
    frustum,
    loft,
    moved_all,
    named_all,
    revolution,
    ring_at,
    rot_x,
    rot_y,
    rot_z,
    rotation_from_y,
    rounded_rect_polygon,
    segment,
    smooth_profile,
    torus,
)


def _cup_body(rng: np.random.Generator) -> tuple[list[Part], float, float]:
    """Shared body of mugs and cups; returns parts, its mid radius and height."""
    r = uniform(rng, 0.8, 1.2)
    h = r * uniform(rng, 1.3, 2.6)
    kind = pick_variant(rng, [0.35, 0.3, 0.15, 0.2])
    if kind == 0:  # straight
        radii, heights = np.array([r, r]), np.array([0.0, h])
    elif kind == 1:  # tapered towards the bottom
        radii, heights = np.array([r * uniform(rng, 0.65, 0.9), r]), np.array([0.0, h])
    elif kind == 2:  # barrel
        radii, heights = np.array([r * 0.9, r * 1.08, r * 0.95]), np.array([0.0, h / 2, h])
    else:  # flared (tea cup)
        h = r * uniform(rng, 0.9, 1.3)
        radii, heights = np.array([r * 0.55, r * 0.85, r]), np.array([0.0, h * 0.5, h])
    return open_vessel(radii, heights, r * uniform(rng, 0.05, 0.1)), float(np.interp(h / 2, heights, radii)), h


def mug(rng: np.random.Generator) -> list[Part]:
    """Mug: a cup body plus a C-shaped or squared handle.

    Parts: body, handle.
    """
    body, r, h = _cup_body(rng)
    parts = named_all(body, "body")
    tube = r * uniform(rng, 0.06, 0.12)
    if rng.random() < 0.7:
        a = uniform(rng, 0.55, 0.72) * math.pi
        big = h * uniform(rng, 0.22, 0.34)
        cx = r - big * math.cos(a) - tube
        handle = torus(big, tube, (-a, a)).moved((cx, h * uniform(rng, 0.45, 0.58), 0.0), rot_x(math.pi / 2))
        parts.append(handle.named("handle"))
    else:
        y0, y1, out = h * uniform(rng, 0.15, 0.3), h * uniform(rng, 0.7, 0.85), r * uniform(rng, 0.35, 0.6)
        pts = [(r - tube, y1, 0.0), (r + out, y1, 0.0), (r + out, y0, 0.0), (r - tube, y0, 0.0)]
        parts += [segment(p, q, tube).named("handle") for p, q in itertools.pairwise(pts)]
    return parts


def cup(rng: np.random.Generator) -> list[Part]:
    """Cup without handle (same body as a mug), sometimes on a saucer."""
    parts, r, _ = _cup_body(rng)
    if rng.random() < 0.3:
        parts = moved_all(parts, (0.0, 0.06, 0.0))
        parts.append(frustum(r * 1.0, r * uniform(rng, 1.5, 2.0), 0.06 * r + 0.06, caps=(True, False)))
    return parts


def bowl(rng: np.random.Generator) -> list[Part]:
    """Bowl: wide shallow rounded vessel, optional foot ring and flared rim."""
    rim = uniform(rng, 0.9, 1.1)
    depth = rim * uniform(rng, 0.3, 0.65)
    t0 = uniform(rng, 0.15, 0.6)
    t = np.linspace(t0, math.pi / 2, 10)
    p = uniform(rng, 0.7, 1.5)
    radii, heights = rim * np.sin(t) ** p, depth * (math.cos(t0) - np.cos(t))
    if rng.random() < 0.3:
        radii = np.append(radii, radii[-1] * uniform(rng, 1.05, 1.2))
        heights = np.append(heights, heights[-1] + depth * 0.1)
    foot = 0.0
    parts: list[Part] = []
    if rng.random() < 0.5:
        foot = depth * uniform(rng, 0.08, 0.2)
        parts.append(cylinder(radii[0] * uniform(rng, 0.8, 1.1), foot, caps=False))
    return parts + moved_all(open_vessel(radii, heights, rim * uniform(rng, 0.03, 0.07)), (0.0, foot, 0.0))


def bottle(rng: np.random.Generator) -> list[Part]:
    """Bottle: body, curved shoulder, long narrow neck with lip, often a cap."""
    r = 1.0
    hb, hs, rn, ln = r * uniform(rng, 1.8, 4.0), r * uniform(rng, 0.3, 1.4), r * uniform(rng, 0.2, 0.42), r * uniform(rng, 0.5, 2.0)
    t = np.linspace(0.0, 1.0, 8)
    shoulder_r = rn + (r - rn) * np.cos(t * math.pi / 2) ** uniform(rng, 0.6, 2.0)
    radii = np.concatenate([[r * 0.92, r], shoulder_r, [rn, rn * 1.15, rn * 1.15]])
    heights = np.concatenate([[0.0, 0.08], hb + hs * t, [hb + hs + ln, hb + hs + ln, hb + hs + ln + 0.12]])
    parts: list[Part] = []
    if rng.random() < 0.2:  # square body
        parts.append(box((2 * r, hb, 2 * r), (0.0, hb / 2, 0.0)))
        radii, heights = radii[2:], heights[2:]
    parts.append(revolution(radii, heights, cap_bottom=radii[0] > 0.9 * r))
    if rng.random() < 0.6:
        ch = r * uniform(rng, 0.2, 0.7)
        parts.append(cylinder(rn * 1.25, ch, (0.0, heights[-1] - 0.02, 0.0)))
    return parts


def vase(rng: np.random.Generator) -> list[Part]:
    """Vase: smooth bulging profile, open (often flared) mouth, optional handles."""
    h = uniform(rng, 1.0, 1.8)
    if rng.random() < 0.2:  # plain tube
        radii = np.array([uniform(rng, 0.18, 0.35), uniform(rng, 0.18, 0.4)])
        heights = np.array([0.0, h])
    else:
        knots_y = [0.0, h * uniform(rng, 0.2, 0.5), h * uniform(rng, 0.65, 0.85), h]
        knots_r = [uniform(rng, 0.15, 0.3), uniform(rng, 0.3, 0.5), uniform(rng, 0.08, 0.2), uniform(rng, 0.12, 0.32)]
        radii, heights = smooth_profile(knots_y, knots_r, 24)
    parts = open_vessel(radii, heights, 0.02)
    if rng.random() < 0.2:  # two small handles at the neck
        y = h * 0.75
        rr = float(np.interp(y, heights, radii))
        for s in (0.0, math.pi):
            handle = torus(h * 0.1, 0.02, (-2.0, 2.0)).moved((rr + h * 0.02, 0.0, 0.0), rot_x(math.pi / 2))
            parts.append(handle.moved((0.0, y, 0.0), rot_y(s)))
    return parts


def jar(rng: np.random.Generator) -> list[Part]:
    """Jar: wide body, short neck, closed by a flat or domed lid with a knob.

    Parts: body, lid (with its knob).
    """
    r, h = 1.0, uniform(rng, 0.9, 2.2)
    rm, neck = r * uniform(rng, 0.55, 0.85), uniform(rng, 0.08, 0.3)
    radii, heights = smooth_profile([0.0, h * uniform(rng, 0.25, 0.6), h, h + neck], [r * uniform(rng, 0.7, 0.95), r, rm, rm], 20)
    parts = [revolution(radii, heights, cap_bottom=True, cap_top=True).named("body")]
    top = h + neck
    if rng.random() < 0.5:  # flat lid
        lid_h = uniform(rng, 0.08, 0.2)
        parts.append(cylinder(rm * 1.08, lid_h, (0.0, top - lid_h * 0.5, 0.0)).named("lid"))
        top += lid_h * 0.5
    else:  # domed lid
        dome = rm * uniform(rng, 0.25, 0.6)
        parts.append(ellipsoid((rm * 1.05, dome, rm * 1.05), (0.0, top, 0.0), band=(0.0, 1.0)).named("lid"))
        top += dome
    if rng.random() < 0.7:
        parts.append(ellipsoid((0.12, 0.1, 0.12), (0.0, top + 0.06, 0.0)).named("lid"))
    return parts


def flower_pot(rng: np.random.Generator) -> list[Part]:
    """Flower pot: flaring pot with rim and soil, holding leaves, a bush, a cactus or grass."""
    rb, rt, h = uniform(rng, 0.5, 0.8), 1.0, uniform(rng, 0.8, 1.3)
    parts = open_vessel(np.array([rb, rt]), np.array([0.0, h]), 0.05)
    parts.append(cylinder(rt * 1.08, 0.15 * h, (0.0, h * 0.85, 0.0), caps=False))
    soil = h * 0.88
    parts.append(disc(rt * 0.93, (0.0, soil, 0.0)))
    kind = pick_variant(rng, [0.35, 0.25, 0.2, 0.2])
    if kind == 0:  # leafy stems
        for _ in range(int(rng.integers(4, 10))):
            a, tilt, length = uniform(rng, 0, 2 * math.pi), uniform(rng, 0.1, 0.9), h * uniform(rng, 0.6, 1.6)
            direction = np.array([math.sin(tilt) * math.cos(a), math.cos(tilt), math.sin(tilt) * math.sin(a)])
            start = np.array([0.2 * math.cos(a), soil, 0.2 * math.sin(a)])
            end = start + direction * length
            parts.append(segment(start, end, 0.025))
            leaf = ellipsoid((0.25, 0.03, 0.12)).moved(rotation=rot_y(-a) @ rot_z(tilt * 0.5))
            parts.append(leaf.moved(end))
    elif kind == 1:  # bush: a cluster of blobs
        for _ in range(int(rng.integers(3, 7))):
            c = (uniform(rng, -0.5, 0.5), soil + uniform(rng, 0.3, 1.0), uniform(rng, -0.5, 0.5))
            parts.append(ellipsoid(tuple(rng.uniform(0.3, 0.6, 3)), c))
    elif kind == 2:  # cactus with arms
        ch, cr = h * uniform(rng, 0.8, 1.8), uniform(rng, 0.2, 0.35)
        parts += [
            cylinder(cr, ch, (0.0, soil, 0.0), caps=False),
            ellipsoid((cr, cr, cr), (0.0, soil + ch, 0.0), band=(0.0, 1.0)),
        ]
        for s in (-1, 1)[: int(rng.integers(0, 3))]:
            y = soil + ch * uniform(rng, 0.3, 0.6)
            elbow = (s * (cr + 0.3), y, 0.0)
            parts += [segment((0.0, y, 0.0), elbow, cr * 0.6), segment(elbow, (elbow[0], y + ch * 0.4, 0.0), cr * 0.6)]
    else:  # grass: many thin blades
        for _ in range(int(rng.integers(8, 16))):
            a, tilt = uniform(rng, 0, 2 * math.pi), uniform(rng, 0.0, 0.5)
            start = np.array([uniform(rng, -0.4, 0.4), soil, uniform(rng, -0.4, 0.4)])
            end = start + h * uniform(rng, 0.6, 1.4) * np.array(
                [math.sin(tilt) * math.cos(a), math.cos(tilt), math.sin(tilt) * math.sin(a)]
            )
            parts.append(segment(start, end, 0.02))
    if rng.random() < 0.3:  # saucer
        parts = moved_all(parts, (0.0, 0.08, 0.0))
        parts.append(frustum(rb * 1.1, rb * 1.5, 0.1, caps=(True, False)))
    return parts


def kettle(rng: np.random.Generator) -> list[Part]:
    """Kettle / teapot: bulging body with lid and knob, a spout, a side or top handle.

    Parts: body, lid (with its knob), spout, handle.
    """
    r, h = 1.0, uniform(rng, 0.8, 1.6)
    rt = r * uniform(rng, 0.45, 0.75)
    radii, heights = smooth_profile([0.0, h * uniform(rng, 0.3, 0.55), h], [r * uniform(rng, 0.8, 0.95), r, rt], 16)
    parts = [revolution(radii, heights, cap_bottom=True).named("body")]
    dome = rt * uniform(rng, 0.2, 0.5)
    parts += named_all(
        [
            ellipsoid((rt * 1.02, dome, rt * 1.02), (0.0, h, 0.0), band=(0.0, 1.0)),
            ellipsoid((0.1, 0.08, 0.1), (0.0, h + dome + 0.05, 0.0)),
        ],
        "lid",
    )
    ys = h * uniform(rng, 0.2, 0.45)
    rs = float(np.interp(ys, heights, radii))
    a, length, sr = uniform(rng, 0.5, 1.0), r * uniform(rng, 0.5, 0.9), r * uniform(rng, 0.12, 0.22)
    spout_axis = rotation_from_y((-math.cos(a), math.sin(a), 0.0))
    spout = frustum(sr, sr * 0.45, length).moved((-rs * 0.85, ys, 0.0), spout_axis)
    parts.append(spout.named("spout"))
    tube = uniform(rng, 0.06, 0.1)
    if rng.random() < 0.6:  # side handle opposite the spout
        big, arc = h * uniform(rng, 0.25, 0.35), uniform(rng, 0.55, 0.7) * math.pi
        yh = h * uniform(rng, 0.45, 0.6)
        rh = float(np.interp(yh, heights, radii))
        handle = torus(big, tube, (-arc, arc)).moved((rh - big * math.cos(arc) - tube, yh, 0.0), rot_x(math.pi / 2))
        parts.append(handle.named("handle"))
    else:  # arched handle over the lid
        big = rt * uniform(rng, 0.75, 0.95)
        parts.append(torus(big, tube, (-math.pi, 0.0)).moved((0.0, h, 0.0), rot_x(math.pi / 2)).named("handle"))
    return parts


def wine_glass(rng: np.random.Generator) -> list[Part]:
    """Stemmed glass: foot, stem and an open bowl (wine, goblet, flute or martini).

    Parts: foot, stem, bowl.
    """
    kind = pick_variant(rng, [0.35, 0.25, 0.2, 0.2])
    foot_r, stem_r = uniform(rng, 0.3, 0.45), uniform(rng, 0.025, 0.045)
    stem_h = {0: (0.35, 0.6), 1: (0.12, 0.3), 2: (0.35, 0.6), 3: (0.35, 0.55)}[kind]
    sh = uniform(rng, *stem_h)
    if kind == 3:  # martini cone
        br, bh = uniform(rng, 0.4, 0.5), uniform(rng, 0.3, 0.4)
        radii, heights = np.array([stem_r, br]), np.array([0.0, bh])
    else:
        br = uniform(rng, 0.3, 0.4) if kind < 2 else uniform(rng, 0.15, 0.2)
        bh = uniform(rng, 0.5, 0.7) if kind < 2 else uniform(rng, 0.7, 0.9)
        mouth = {0: uniform(rng, 0.7, 0.9), 1: uniform(rng, 0.95, 1.0), 2: uniform(rng, 0.85, 1.0)}[kind]
        radii, heights = smooth_profile([0.0, bh * 0.12, bh * 0.55, bh], [stem_r, br * 0.65, br, br * mouth], 16)
    parts = [
        revolution([foot_r, stem_r * 1.5], [0.0, 0.03], cap_bottom=True).named("foot"),
        cylinder(stem_r, sh, (0.0, 0.03, 0.0), caps=False).named("stem"),
    ]
    return parts + named_all(moved_all(open_vessel(radii, heights, 0.015), (0.0, 0.03 + sh, 0.0)), "bowl")


def bathtub(rng: np.random.Generator) -> list[Part]:
    """Bathtub: long open rounded-rectangle tub, built-in or on claw feet, optional faucet."""
    length, w, h = uniform(rng, 1.4, 1.9), uniform(rng, 0.65, 0.85), uniform(rng, 0.45, 0.6)
    rad, wall = w * uniform(rng, 0.05, 0.45), uniform(rng, 0.04, 0.08)
    feet = rng.random() < 0.4
    y0 = uniform(rng, 0.08, 0.15) if feet else 0.0
    slope = uniform(rng, 0.75, 0.92) if feet else uniform(rng, 0.95, 1.0)
    outer_top, outer_bot = (
        rounded_rect_polygon(length, w, rad),
        rounded_rect_polygon(length * slope, w * slope, rad * slope),
    )
    inner_top = rounded_rect_polygon(length - 2 * wall, w - 2 * wall, max(rad - wall, 0.01))
    inner_bot = rounded_rect_polygon(length * 0.8, w * 0.65, max(rad - wall, 0.01) * 0.8)
    top = y0 + h
    parts = [
        loft([ring_at(outer_bot, y0), ring_at(outer_top, top)], cap_first=True),
        loft([ring_at(inner_bot, y0 + wall), ring_at(inner_top, top)], cap_first=True),
        loft([ring_at(outer_top, top), ring_at(inner_top, top)]),
    ]
    if feet:
        parts += [
            ellipsoid((0.05, y0 / 2 + 0.02, 0.05), (x, y0 / 2, z))
            for x, z in rect_corners(length * slope / 2 - 0.1, w * slope / 2 - 0.08)
        ]
    if rng.random() < 0.5:  # faucet at one end
        x = -length / 2 + wall + 0.05
        parts += [
            segment((x, top, 0.0), (x, top + 0.2, 0.0), 0.02),
            segment((x, top + 0.2, 0.0), (x + 0.15, top + 0.2, 0.0), 0.02),
        ]
    return parts
