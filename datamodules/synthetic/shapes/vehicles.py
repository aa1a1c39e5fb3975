"""Vehicles: builders (:data:`~datamodules.synthetic.shapes.Builder`) of
airplanes, cars, helicopters, trucks.
"""

from __future__ import annotations

import math

import numpy as np

from datamodules.synthetic.shapes.common import pick_variant, uniform
from datamodules.synthetic.shapes.parts import (
    Part,
    box,
    ellipsoid,
    frustum,
    mirrored,
    named_all,
    prism,
    prism_xy,
    revolution,
    rot_x,
    rot_y,
    rot_z,
    rotation_from_y,
    segment,
)


def airplane(rng: np.random.Generator) -> list[Part]:
    """Airplane along x (nose +x): fuselage, wings, tail; airliner, fighter or prop.

    Parts: fuselage, wing, tail (fins and stabilisers), engine (jet engines or the propeller).
    """
    kind = pick_variant(rng, [0.5, 0.25, 0.25])
    rf = uniform(rng, 0.035, 0.07) * (0.8 if kind == 1 else 1.0)
    lt, ln = uniform(rng, 0.2, 0.32), uniform(rng, 0.06, 0.16) * (2.0 if kind == 1 else 1.0)
    phi = np.linspace(0.0, math.pi / 2, 7)
    radii = np.concatenate([[rf * uniform(rng, 0.1, 0.3), rf], rf * np.cos(phi)])
    heights = np.concatenate([[0.0, lt], 1.0 - ln + ln * np.sin(phi)])
    parts = [revolution(radii, heights).moved((-0.5, 0.0, 0.0), rot_z(-math.pi / 2)).named("fuselage")]
    wy = rf * uniform(rng, -0.6, 0.6) if kind != 2 else rf * 0.8
    wt = uniform(rng, 0.01, 0.025)
    if kind == 1:  # delta wing, twin canted fins
        cr, span = uniform(rng, 0.4, 0.55), uniform(rng, 0.22, 0.35)
        x0 = uniform(rng, 0.05, 0.2)
        wing = np.array([[x0, 0.0], [x0 - cr + uniform(rng, 0.02, 0.08), span], [x0 - cr, span], [x0 - cr, 0.0]])
        fin_h, fins = uniform(rng, 0.1, 0.16), [(-0.06, 0.35), (0.06, -0.35)]
    else:
        cr, span = uniform(rng, 0.14, 0.28), uniform(rng, 0.35, 0.55)
        sweep = span * math.tan(uniform(rng, 0.3, 0.6) if kind == 0 else uniform(rng, 0.0, 0.1))
        ct, x0 = cr * uniform(rng, 0.25, 0.6 if kind == 0 else 1.0), uniform(rng, 0.0, 0.15)
        wing = np.array([[x0, 0.0], [x0 - sweep, span], [x0 - sweep - ct, span], [x0 - cr, 0.0]])
        fin_h, fins = uniform(rng, 0.1, 0.2), [(0.0, 0.0)]
    dihedral = uniform(rng, 0.0, 0.1)
    right = prism(wing, wt).moved((0.0, wy, 0.0), rot_x(-dihedral)).named("wing")
    parts += [right, *mirrored([right], 2)]
    # vertical fin(s) near the tail
    fc = uniform(rng, 0.1, 0.18)
    fin = np.array(
        [[-0.5 + fc + 0.03, 0.0], [-0.5 + 0.05 + 0.6 * fc * 0.3, fin_h], [-0.5 + 0.03, fin_h], [-0.5 + 0.02, 0.0]]
    )
    for z, cant in fins:
        fin_part = prism_xy(fin, 0.012, center_2d=(-0.5 + fc / 2, fin_h / 3)).moved((0.0, rf * 0.5, z), rot_x(cant))
        parts.append(fin_part.named("tail"))
    if kind != 1:  # horizontal stabiliser, low or T-tail
        sc, ss = cr * uniform(rng, 0.35, 0.6), span * uniform(rng, 0.3, 0.45)
        stab = np.array([[-0.5 + sc + 0.02, 0.0], [-0.5 + 0.02 + 0.3 * sc, ss], [-0.5 + 0.01, ss], [-0.5 + 0.02, 0.0]])
        sy = rf * 0.5 + fin_h if rng.random() < 0.25 else rf * 0.3
        tail = prism(stab, 0.01).moved((0.0, sy, 0.0)).named("tail")
        parts += [tail, *mirrored([tail], 2)]
    if kind == 0 and rng.random() < 0.8:  # engines under the wings
        for frac in [0.35] if rng.random() < 0.7 else [0.3, 0.6]:
            z = span * frac
            xle = x0 + (wing[1, 0] - x0) * frac
            er = rf * uniform(rng, 0.35, 0.6)
            for s in (-1, 1):
                engine = segment((xle - 0.1, wy - er - 0.01, s * z), (xle + 0.05, wy - er - 0.01, s * z), er)
                parts.append(engine.named("engine"))
    if kind == 2:  # propeller disc at the nose
        parts.append(segment((0.5, 0.0, 0.0), (0.51, 0.0, 0.0), rf * uniform(rng, 1.5, 2.5)).named("engine"))
    return parts


def car(rng: np.random.Generator) -> list[Part]:
    """Car along x (front +x): lower body, cabin (sedan/hatch/SUV/pickup/sports), wheels.

    Parts: body (lower body, pickup bed, spoiler), cabin, wheel.
    """
    kind = pick_variant(rng, [0.3, 0.2, 0.2, 0.15, 0.15])
    w, rw = uniform(rng, 0.38, 0.5), uniform(rng, 0.075, 0.11)
    g = rw * (uniform(rng, 0.4, 0.6) if kind == 4 else uniform(rng, 0.6, 0.95))
    hb = uniform(rng, 0.2, 0.28) if kind == 2 else uniform(rng, 0.12, 0.2)
    hc = {0: (0.1, 0.16), 1: (0.1, 0.16), 2: (0.14, 0.2), 3: (0.12, 0.17), 4: (0.07, 0.11)}[kind]
    hc_ = uniform(rng, *hc)
    fb, hood, tr = uniform(rng, 0.02, 0.06), uniform(rng, 0.03, 0.1), uniform(rng, 0.02, 0.08)
    lower = np.array(
        [[-0.5, g], [0.5 - fb, g], [0.5, g + hb * 0.5], [0.5 - hood, g + hb], [-0.5 + tr, g + hb], [-0.5, g + hb * 0.6]]
    )
    parts = [prism_xy(lower, w).named("body")]
    base0, roof0, roof1, base1 = {
        0: (-0.3, -0.2, 0.05, 0.2),
        1: (-0.48, -0.45, 0.05, 0.2),
        2: (-0.48, -0.47, 0.1, 0.25),
        3: (-0.1, -0.05, 0.1, 0.2),
        4: (-0.3, -0.2, -0.02, 0.15),
    }[kind]
    j = rng.uniform(-0.04, 0.04, 4)
    cabin = np.array([[base0 + j[0], 0.0], [base1 + j[3], 0.0], [roof1 + j[2], hc_], [roof0 + j[1], hc_]])
    parts.append(prism_xy(cabin, w * uniform(rng, 0.8, 0.92)).moved((0.0, g + hb, 0.0)).named("cabin"))
    if kind == 3:  # pickup bed walls
        bx0, bx1 = -0.5, base0 + j[0] - 0.02
        bh = uniform(rng, 0.04, 0.08)
        walls = [box((bx1 - bx0, bh, 0.02), ((bx0 + bx1) / 2, g + hb + bh / 2, s * (w / 2 - 0.01))) for s in (-1, 1)]
        parts += named_all([*walls, box((0.02, bh, w), (bx0 + 0.01, g + hb + bh / 2, 0.0))], "body")
    ww, ax = uniform(rng, 0.05, 0.09), uniform(rng, 0.28, 0.36)
    for x in (-ax, ax):
        for s in (-1, 1):
            z0 = s * (w / 2 - ww * 0.8)
            parts.append(segment((x, rw, z0), (x, rw, z0 + s * ww), rw).named("wheel"))
    if kind in (0, 4) and rng.random() < 0.3:  # rear spoiler
        parts.append(box((0.06, 0.01, w * 0.9), (-0.47, g + hb + 0.05, 0.0)).named("body"))
        parts += named_all([box((0.01, 0.05, 0.01), (-0.47, g + hb + 0.025, s * w * 0.3)) for s in (-1, 1)], "body")
    return parts


def helicopter(rng: np.random.Generator) -> list[Part]:
    """Helicopter along x: cabin pod, tail boom with fin and rotor, main rotor blades, skids.

    Parts: cabin, tail (boom, fin, tail rotor), rotor (mast and blades), landing_gear (skids or wheels).
    """
    rx, ry, rz = uniform(rng, 0.18, 0.26), uniform(rng, 0.1, 0.15), uniform(rng, 0.08, 0.13)
    cx, cy = uniform(rng, 0.15, 0.3), ry + uniform(rng, 0.06, 0.12)
    parts = [ellipsoid((rx, ry, rz), (cx, cy, 0.0)).named("cabin")]
    by = cy + ry * uniform(rng, 0.1, 0.5)
    boom = frustum(uniform(rng, 0.03, 0.05), uniform(rng, 0.015, 0.025), cx - rx * 0.5 + 0.5).moved(
        (cx - rx * 0.5, by, 0.0), rotation_from_y((-1.0, 0.0, 0.0))
    )
    parts.append(boom.named("tail"))
    fh = uniform(rng, 0.08, 0.16)
    fin = np.array([[-0.5 + 0.1, 0.0], [-0.5 + 0.03, fh], [-0.5, fh], [-0.5, 0.0]])
    parts.append(prism_xy(fin, 0.01, center_2d=(-0.47, fh / 3)).moved((0.0, by, 0.0)).named("tail"))
    tail_rotor = segment((-0.49, by + fh * 0.6, 0.01), (-0.49, by + fh * 0.6, 0.02), uniform(rng, 0.04, 0.08))
    parts.append(tail_rotor.named("tail"))
    mast_top = np.array([cx, cy + ry + 0.06, 0.0])
    parts.append(segment((cx, cy + ry * 0.8, 0.0), mast_top, 0.015).named("rotor"))
    blade_len, n_blades, phase = uniform(rng, 0.4, 0.6), int(rng.integers(2, 6)), uniform(rng, 0, 2 * math.pi)
    for k in range(n_blades):
        blade = box((blade_len, 0.008, 0.035), (blade_len / 2, 0.0, 0.0))
        parts.append(blade.moved(mast_top, rot_y(phase + 2 * math.pi * k / n_blades)).named("rotor"))
    if rng.random() < 0.75:  # skids and struts
        for s in (-1, 1):
            z = s * rz * uniform(rng, 1.0, 1.4)
            parts.append(segment((cx - rx * 1.1, 0.02, z), (cx + rx * 1.1, 0.02, z), 0.012).named("landing_gear"))
            parts += [
                segment((x, 0.02, z), (x, cy - ry * 0.7, s * rz * 0.5), 0.01).named("landing_gear")
                for x in (cx - rx * 0.5, cx + rx * 0.5)
            ]
    else:  # wheels
        for x, z in ((cx + rx * 0.6, 0.0), (cx - rx * 0.4, -rz), (cx - rx * 0.4, rz)):
            parts += named_all(
                [
                    segment((x, 0.03, z - 0.01), (x, 0.03, z + 0.01), 0.03),
                    segment((x, 0.03, z), (x, cy - ry * 0.8, z * 0.5), 0.008),
                ],
                "landing_gear",
            )
    return parts


def truck(rng: np.random.Generator) -> list[Part]:
    """Truck along x (front +x): cab, cargo (box, tank, flatbed or dump body), 6+ wheels.

    Parts: cab, cargo (body, tank, bed, walls and load), chassis (the frame), wheel.
    """
    w, rw = uniform(rng, 0.3, 0.4), uniform(rng, 0.055, 0.08)
    g = rw * uniform(rng, 1.0, 1.4)
    cab_l, cab_h = uniform(rng, 0.18, 0.28), uniform(rng, 0.22, 0.35)
    parts = [box((0.95, 0.04, w * 0.7), (0.0, g, 0.0)).named("chassis")]
    cab = np.array(
        [[0.5 - cab_l, 0.0], [0.5, 0.0], [0.5, cab_h * 0.55], [0.5 - uniform(rng, 0.0, 0.06), cab_h], [0.5 - cab_l, cab_h]]
    )
    parts.append(prism_xy(cab, w).moved((0.0, g, 0.0)).named("cab"))
    x0, x1 = -0.5, 0.5 - cab_l - uniform(rng, 0.01, 0.04)
    xc, lc = (x0 + x1) / 2, x1 - x0
    kind = pick_variant(rng, [0.4, 0.2, 0.2, 0.2])
    if kind == 0:  # box van body
        bh = uniform(rng, 0.25, 0.42)
        parts.append(box((lc, bh, w * 1.02), (xc, g + 0.02 + bh / 2, 0.0)).named("cargo"))
    elif kind == 1:  # tank
        tr = w * uniform(rng, 0.42, 0.5)
        parts.append(segment((x0, g + 0.02 + tr, 0.0), (x1, g + 0.02 + tr, 0.0), tr).named("cargo"))
    else:  # flatbed (with some load) or open dump body
        parts.append(box((lc, 0.03, w), (xc, g + 0.035, 0.0)).named("cargo"))
        wall_h = uniform(rng, 0.08, 0.18) if kind == 3 else 0.0
        if kind == 3:
            walls = [box((lc, wall_h, 0.02), (xc, g + 0.05 + wall_h / 2, s * (w / 2 - 0.01))) for s in (-1, 1)]
            walls += [box((0.02, wall_h, w), (x, g + 0.05 + wall_h / 2, 0.0)) for x in (x0 + 0.01, x1 - 0.01)]
            parts += named_all(walls, "cargo")
        else:
            for _ in range(int(rng.integers(0, 4))):
                s = rng.uniform(0.06, 0.15, 3)
                load = box(s, (uniform(rng, x0 + 0.1, x1 - 0.1), g + 0.05 + s[1] / 2, uniform(rng, -w / 4, w / 4)))
                parts.append(load.named("cargo"))
    axles = [0.5 - cab_l / 2, -0.5 + uniform(rng, 0.12, 0.2)]
    if rng.random() < 0.6:
        axles.append(axles[1] + 2.3 * rw)
    ww = uniform(rng, 0.04, 0.07)
    for x in axles:
        for s in (-1, 1):
            z0 = s * (w / 2 - ww * 0.9)
            parts.append(segment((x, rw, z0), (x, rw, z0 + s * ww), rw).named("wheel"))
    return parts
