"""Furniture: builders (:data:`~datamodules.synthetic.shapes.Builder`) of
tables, desks, chairs, stools, sofas, beds, shelves, benches, cabinets, lamps.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from datamodules.synthetic.shapes.common import leg_parts, pick_variant, rect_corners, uniform
from datamodules.synthetic.shapes.parts import (
    Part,
    beam,
    box,
    cylinder,
    ellipse_polygon,
    ellipsoid,
    frustum,
    moved_all,
    named_all,
    prism,
    prism_xy,
    rot_x,
    rounded_rect_polygon,
    segment,
    torus,
)


def table(rng: np.random.Generator) -> list[Part]:
    """Table: rectangular/round/oval top on four legs, a pedestal or trestles.

    Parts: top, leg (whatever holds the top up: legs, apron, lower shelf, pedestals, feet, trestles).
    """
    h, t = uniform(rng, 0.68, 0.8), uniform(rng, 0.025, 0.06)
    top_kind = pick_variant(rng, [0.5, 0.25, 0.25])
    if top_kind == 0:
        w, d = uniform(rng, 0.9, 1.9), uniform(rng, 0.55, 1.0)
        outline = rounded_rect_polygon(w, d, uniform(rng, 0.0, 0.12))
    else:
        w = uniform(rng, 0.8, 1.3) if top_kind == 1 else uniform(rng, 1.1, 1.8)
        d = w if top_kind == 1 else w * uniform(rng, 0.5, 0.75)
        outline = ellipse_polygon(w / 2, d / 2)
    parts = [prism(outline, t).moved((0.0, h - t / 2, 0.0)).named("top")]
    under = h - t
    base = pick_variant(rng, [0.5, 0.25, 0.25])
    if base == 0:  # legs (with an apron and/or a lower shelf)
        shrink = 1.0 if top_kind == 0 else 0.68
        hx, hz = w / 2 * shrink - uniform(rng, 0.03, 0.12), d / 2 * shrink - uniform(rng, 0.03, 0.1)
        parts += leg_parts(rect_corners(hx, hz), under, uniform(rng, 0.018, 0.04), uniform(rng, 0.0, 0.15), rng.random() < 0.5)
        if rng.random() < 0.5:
            ah = uniform(rng, 0.05, 0.1)
            parts += [box((2 * hx, ah, 0.02), (0.0, under - ah / 2, s * hz)) for s in (-1, 1)]
            parts += [box((0.02, ah, 2 * hz), (s * hx, under - ah / 2, 0.0)) for s in (-1, 1)]
        if rng.random() < 0.25:
            parts.append(box((2 * hx, 0.02, 2 * hz), (0.0, uniform(rng, 0.1, 0.25), 0.0)))
    elif base == 1:  # one or two pedestals with a disc or cross foot
        xs = [-w / 4, w / 4] if (top_kind != 1 and w > 1.3) else [0.0]
        col_r, foot_r = uniform(rng, 0.04, 0.1), min(w, d) * uniform(rng, 0.25, 0.4)
        cross = rng.random() < 0.5
        for x in xs:
            parts.append(cylinder(col_r, under, (x, 0.0, 0.0), caps=False))
            if cross:
                parts += [
                    beam((x - foot_r, 0.03, 0.0), (x + foot_r, 0.03, 0.0), 0.05),
                    beam((x, 0.03, -foot_r), (x, 0.03, foot_r), 0.05),
                ]
            else:
                parts.append(cylinder(foot_r, uniform(rng, 0.02, 0.05), (x, 0.0, 0.0)))
    else:  # trestle: two end panels, feet and a stretcher
        px, pd, pt = (
            w / 2 * (1.0 if top_kind == 0 else 0.7) - uniform(rng, 0.05, 0.15),
            d * uniform(rng, 0.4, 0.8),
            uniform(rng, 0.03, 0.07),
        )
        for s in (-1, 1):
            parts.append(box((pt, under, pd), (s * px, under / 2, 0.0)))
            parts.append(box((pt * 1.5, 0.05, d * 0.85), (s * px, 0.025, 0.0)))
        parts.append(box((2 * px, 0.06, 0.04), (0.0, uniform(rng, 0.15, 0.45), 0.0)))
    return [parts[0], *named_all(parts[1:], "leg")]


def desk(rng: np.random.Generator) -> list[Part]:
    """Desk: rectangular top with one or two drawer blocks (table with a structural detail)."""
    h, t = uniform(rng, 0.7, 0.78), uniform(rng, 0.025, 0.05)
    w, d = uniform(rng, 1.0, 1.8), uniform(rng, 0.55, 0.8)
    under = h - t
    parts = [box((w, t, d), (0.0, h - t / 2, 0.0))]
    side = 1.0 if rng.random() < 0.5 else -1.0
    sides = [side, -side] if rng.random() < 0.3 else [side]
    bw, bd, lift = w * uniform(rng, 0.25, 0.4), d * uniform(rng, 0.85, 1.0), uniform(rng, 0.0, 0.08)
    n_drawers = int(rng.integers(1, 5))
    for s in sides:
        bx = s * (w / 2 - bw / 2 - uniform(rng, 0.0, 0.04))
        parts.append(box((bw, under - lift, bd), (bx, lift + (under - lift) / 2, 0.0)))
        dh = (under - lift) / n_drawers
        for k in range(n_drawers):
            y = lift + (k + 0.5) * dh
            parts.append(box((bw * 0.9, dh * 0.85, 0.015), (bx, y, bd / 2 + 0.008)))
            parts.append(box((bw * 0.3, 0.015, 0.02), (bx, y + dh * 0.2, bd / 2 + 0.025)))
    if len(sides) == 1:
        if rng.random() < 0.5:
            ox = -side * (w / 2 - 0.05)
            parts += leg_parts(
                [(ox, -d / 2 + 0.05), (ox, d / 2 - 0.05)], under, uniform(rng, 0.018, 0.035), 0.0, rng.random() < 0.5
            )
        else:
            parts.append(box((0.03, under, d * 0.95), (-side * (w / 2 - 0.015), under / 2, 0.0)))
    if rng.random() < 0.5:  # modesty panel at the back
        mh = under * uniform(rng, 0.3, 0.55)
        parts.append(box((w * 0.9, mh, 0.02), (0.0, under - mh / 2, -d / 2 + 0.03)))
    if rng.random() < 0.2:  # hutch: a shelf above the top at the back
        hh, hd = uniform(rng, 0.3, 0.5), d * 0.35
        parts += [box((0.02, hh, hd), (s * (w / 2 - 0.01), h + hh / 2, -d / 2 + hd / 2)) for s in (-1, 1)]
        parts.append(box((w, 0.02, hd), (0.0, h + hh, -d / 2 + hd / 2)))
    return parts


def _chair_like(rng: np.random.Generator, arms: bool) -> list[Part]:
    """Seat with a back and optional armrests on legs, a swivel base or sled runners.

    Parts: seat, back, leg (legs and stretchers, the swivel base or the sled), arm (armchairs).
    """
    sh, sw, sd, st = uniform(rng, 0.42, 0.5), uniform(rng, 0.42, 0.56), uniform(rng, 0.4, 0.55), uniform(rng, 0.03, 0.08)
    seat_shape = prism(rounded_rect_polygon(sw, sd, uniform(rng, 0.0, 0.1)), st)
    seat = [seat_shape.moved((0.0, sh - st / 2, 0.0)).named("seat")]
    under = sh - st
    back = named_all(_chair_back(rng, sw, sh, sd), "back")
    parts: list[Part] = []  # the supports
    legs = pick_variant(rng, [0.55, 0.25, 0.2])
    if legs == 0:
        hx, hz = sw / 2 - uniform(rng, 0.02, 0.05), sd / 2 - uniform(rng, 0.02, 0.05)
        parts += leg_parts(rect_corners(hx, hz), under, uniform(rng, 0.015, 0.03), uniform(rng, 0.0, 0.12), rng.random() < 0.5)
        if rng.random() < 0.4:
            y = uniform(rng, 0.1, 0.2)
            parts += [box((0.02, 0.02, 2 * hz), (s * hx, y, 0.0)) for s in (-1, 1)]
    elif legs == 1:  # office swivel base: column and five spokes
        parts.append(cylinder(uniform(rng, 0.025, 0.04), under - 0.08, (0.0, 0.08, 0.0)))
        reach = uniform(rng, 0.24, 0.32)
        for k in range(5):
            a = 2 * math.pi * k / 5
            end = (reach * math.cos(a), 0.04, reach * math.sin(a))
            parts.append(beam((0.0, 0.08, 0.0), end, 0.035))
            parts.append(ellipsoid((0.025, 0.025, 0.025), (end[0], 0.025, end[2])))
    else:  # sled: floor runners and uprights
        hx = sw / 2 - 0.02
        for s in (-1, 1):
            parts.append(segment((s * hx, 0.01, -sd / 2), (s * hx, 0.01, sd / 2), 0.012))
            parts.append(segment((s * hx, 0.01, sd / 2 - 0.03), (s * hx, under, sd / 2 - 0.05), 0.012))
            parts.append(segment((s * hx, 0.01, -sd / 2 + 0.03), (s * hx, under, -sd / 2 + 0.05), 0.012))
    arm_parts = named_all(_armrests(rng, sw, sh, sd), "arm") if arms else []
    return seat + back + named_all(parts, "leg") + arm_parts


def _chair_back(rng: np.random.Generator, sw: float, sh: float, sd: float) -> list[Part]:
    """Backrest built upright at the seat's back edge, then tilted backwards."""
    bh, bt, kind = uniform(rng, 0.35, 0.6), uniform(rng, 0.02, 0.06), pick_variant(rng, [0.35, 0.25, 0.25, 0.15])
    pw, px = 0.03, sw / 2 - 0.015
    if kind == 0:  # solid panel
        parts = [box((sw * uniform(rng, 0.8, 1.0), bh, bt), (0.0, bh / 2, 0.0))]
    elif kind == 3:  # oval pad on a stem
        parts = [
            prism_xy(ellipse_polygon(sw / 2, bh * 0.35), bt).moved((0.0, bh * 0.62, 0.0)),
            box((0.05, bh * 0.4, 0.02), (0.0, bh * 0.2, -bt / 2)),
        ]
    else:  # two posts with vertical slats (1) or horizontal rails (2)
        parts = [box((pw, bh, pw), (s * px, bh / 2, 0.0)) for s in (-1, 1)]
        parts.append(box((sw, 0.05, pw), (0.0, bh - 0.025, 0.0)))
        n = int(rng.integers(2, 6))
        if kind == 1:
            parts += [box((0.025, bh * 0.8, 0.015), (x, bh * 0.4, 0.0)) for x in np.linspace(-px, px, n + 2)[1:-1]]
        else:
            parts += [box((sw, 0.03, 0.015), (0.0, y, 0.0)) for y in np.linspace(0.0, bh - 0.05, n + 1)[1:]]
    return moved_all(parts, (0.0, sh, -sd / 2 + bt / 2), rot_x(-uniform(rng, 0.0, 0.3)))


def _armrests(rng: np.random.Generator, sw: float, sh: float, sd: float) -> list[Part]:
    """Two armrests: bars on posts, or solid side panels."""
    ah, aw, kind = sh + uniform(rng, 0.17, 0.28), uniform(rng, 0.04, 0.08), pick_variant(rng, [0.5, 0.25, 0.25])
    front = sd / 2 * uniform(rng, 0.6, 1.0)
    parts: list[Part] = []
    for s in (-1, 1):
        x = s * (sw / 2 + aw / 2 - 0.01)
        if kind == 1:  # solid panel from the seat to the armrest
            parts.append(box((aw, ah - sh + 0.08, sd), (x, (ah + sh - 0.08) / 2, 0.0)))
            continue
        parts.append(box((aw, 0.03, front + sd / 2), (x, ah, (front - sd / 2) / 2)))
        parts.append(segment((x, sh - 0.02, front - 0.03), (x, ah, front - 0.03), 0.015))
        if kind == 2:  # second post at the back
            parts.append(segment((x, sh - 0.02, -sd / 2 + 0.05), (x, ah, -sd / 2 + 0.05), 0.015))
    return parts


def chair(rng: np.random.Generator) -> list[Part]:
    """Chair without armrests."""
    return _chair_like(rng, arms=False)


def armchair(rng: np.random.Generator) -> list[Part]:
    """Chair with armrests (a chair with a structural detail)."""
    return _chair_like(rng, arms=True)


def stool(rng: np.random.Generator) -> list[Part]:
    """Stool: a round or square seat on legs or a column, no back; low or bar height.

    Parts: seat, leg (whatever holds the seat up: legs and foot ring, column and foot, or the drum of a pouf).
    """
    sh, st = (uniform(rng, 0.4, 0.5) if rng.random() < 0.5 else uniform(rng, 0.6, 0.8)), uniform(rng, 0.03, 0.07)
    r = uniform(rng, 0.15, 0.23)
    if rng.random() < 0.6:
        parts = [cylinder(r, st, (0.0, sh - st, 0.0))]
    else:
        parts = [box((2 * r, st, 2 * r), (0.0, sh - st / 2, 0.0))]
    under, kind = sh - st, pick_variant(rng, [0.6, 0.3, 0.1])
    if kind == 0:
        n = 3 if rng.random() < 0.4 else 4
        ang = [2 * math.pi * k / n + math.pi / 4 for k in range(n)]
        lr = r * 0.75
        splay = uniform(rng, 0.05, 0.35)
        parts += leg_parts(
            [(lr * math.cos(a), lr * math.sin(a)) for a in ang], under, uniform(rng, 0.015, 0.03), splay, rng.random() < 0.4
        )
        if rng.random() < 0.5:  # foot rest ring touching the splayed legs
            y = under * uniform(rng, 0.3, 0.45)
            parts.append(torus(lr * (1.0 + splay * (1 - y / under)), 0.012).moved((0.0, y, 0.0)))
    elif kind == 1:
        parts.append(cylinder(uniform(rng, 0.025, 0.05), under, caps=False))
        parts.append(cylinder(r * uniform(rng, 0.8, 1.2), 0.03))
        if rng.random() < 0.5:
            parts.append(torus(r * 0.8, 0.012).moved((0.0, under * uniform(rng, 0.3, 0.5), 0.0)))
    else:  # pouf / drum
        parts.append(cylinder(r, under, caps=False))
    return [parts[0].named("seat"), *named_all(parts[1:], "leg")]


def sofa(rng: np.random.Generator) -> list[Part]:
    """Sofa: long upholstered base with cushions, back, arms; optional chaise."""
    w, d, foot = uniform(rng, 1.4, 2.4), uniform(rng, 0.75, 1.0), (uniform(rng, 0.03, 0.12) if rng.random() < 0.6 else 0.0)
    base_h, bt, top = uniform(rng, 0.18, 0.3), uniform(rng, 0.12, 0.25), uniform(rng, 0.7, 0.95)
    arm_kind, aw = pick_variant(rng, [0.5, 0.35, 0.15]), uniform(rng, 0.08, 0.25)
    inner_w = w - (2 * aw if arm_kind < 2 else 0.0)
    seat_y = foot + base_h
    parts = [box((w, base_h, d), (0.0, foot + base_h / 2, 0.0))]
    n = int(rng.integers(1, 4))
    cw, ch = inner_w / n, uniform(rng, 0.1, 0.18)
    for k in range(n):
        x = -inner_w / 2 + (k + 0.5) * cw
        parts.append(box((cw * 0.97, ch, d - bt), (x, seat_y + ch / 2, bt / 2)))
    if rng.random() < 0.5:
        parts.append(box((inner_w, top - seat_y, bt), (0.0, (top + seat_y) / 2, -d / 2 + bt / 2)))
    else:  # separate back cushions, leaning back
        for k in range(n):
            x = -inner_w / 2 + (k + 0.5) * cw
            cush = box((cw * 0.95, top - seat_y, bt), (0.0, (top - seat_y) / 2, 0.0))
            parts.append(cush.moved((x, seat_y, -d / 2 + bt / 2), rot_x(-0.15)))
    if arm_kind < 2:
        ah = uniform(rng, 0.5, 0.7)
        for s in (-1, 1):
            x = s * (w / 2 - aw / 2)
            parts.append(box((aw, ah - foot, d), (x, foot + (ah - foot) / 2, 0.0)))
            if arm_kind == 1:  # rolled arm
                parts.append(segment((x, ah, -d / 2), (x, ah, d / 2), aw * 0.6))
    if rng.random() < 0.2:  # chaise longue on one side
        s, ext = (1 if rng.random() < 0.5 else -1), d * uniform(rng, 0.6, 0.9)
        x, cwid = s * (inner_w / 2 - cw / 2), max(cw, 0.6)
        parts.append(box((cwid, base_h + ch, ext), (x, foot + (base_h + ch) / 2, d / 2 + ext / 2)))
    if foot > 0:
        parts += leg_parts(rect_corners(w / 2 - 0.06, d / 2 - 0.06), foot, 0.025, 0.0, rng.random() < 0.5)
    return parts


def bed(rng: np.random.Generator) -> list[Part]:
    """Bed: frame and mattress, a headboard, optional footboard, legs and pillows."""
    w, length, leg = uniform(rng, 0.9, 1.9), uniform(rng, 1.9, 2.2), (uniform(rng, 0.05, 0.25) if rng.random() < 0.6 else 0.0)
    fh, mh = uniform(rng, 0.1, 0.3), uniform(rng, 0.15, 0.3)
    parts = [
        box((w, fh, length), (0.0, leg + fh / 2, 0.0)),
        box((w * 0.97, mh, length * 0.97), (0.0, leg + fh + mh / 2, 0.01)),
    ]
    top = leg + fh + mh
    hb_top, hb_kind, ht = top + uniform(rng, 0.3, 0.8), pick_variant(rng, [0.35, 0.25, 0.2, 0.2]), uniform(rng, 0.04, 0.12)
    zb = -length / 2 - ht / 2
    if hb_kind == 0:
        parts.append(box((w, hb_top, ht), (0.0, hb_top / 2, zb)))
    elif hb_kind == 1:  # posts and slats
        parts += [box((0.06, hb_top, 0.06), (s * (w / 2 - 0.03), hb_top / 2, zb)) for s in (-1, 1)]
        parts.append(box((w, 0.06, 0.05), (0.0, hb_top - 0.03, zb)))
        ys = top - 0.05
        parts += [
            box((0.04, hb_top - ys, 0.03), (x, (hb_top + ys) / 2, zb))
            for x in np.linspace(-w / 2, w / 2, int(rng.integers(4, 9)))[1:-1]
        ]
    elif hb_kind == 2:  # arched panel
        arc = np.linspace(0.0, math.pi, 16)
        poly = np.concatenate(
            [
                [[w / 2, 0.0]],
                np.stack([w / 2 * np.cos(arc), top + (hb_top - top) * (0.6 + 0.4 * np.sin(arc))], 1),
                [[-w / 2, 0.0]],
            ]
        )
        parts.append(prism_xy(poly, ht, z=zb, center_2d=(0.0, top * 0.8)))
    else:  # thick upholstered board above the mattress
        parts.append(box((w * 1.05, hb_top - leg, ht * 2), (0.0, leg + (hb_top - leg) / 2, zb - ht / 2)))
    if rng.random() < 0.5:
        fb = top + uniform(rng, -0.1, 0.3)
        parts.append(box((w, fb, 0.05), (0.0, fb / 2, length / 2 + 0.025)))
    if leg > 0:
        parts += leg_parts(rect_corners(w / 2 - 0.05, length / 2 - 0.05), leg, 0.03, 0.0, rng.random() < 0.5)
    if rng.random() < 0.7:
        n = 1 if (w < 1.2 or rng.random() < 0.3) else 2
        for x in [0.0] if n == 1 else [-w / 4, w / 4]:
            parts.append(ellipsoid((w / (2 * n) * 0.8, 0.07, 0.2), (x, top + 0.05, -length / 2 + 0.3)))
    return parts


def bookshelf(rng: np.random.Generator) -> list[Part]:
    """Bookshelf: frame (panels or posts), several boards, optional back and books."""
    h, w, d, t = uniform(rng, 0.9, 2.0), uniform(rng, 0.5, 1.4), uniform(rng, 0.25, 0.4), uniform(rng, 0.015, 0.035)
    plinth = uniform(rng, 0.0, 0.1)
    open_frame = rng.random() < 0.2
    if open_frame:
        parts = [box((0.03, h, 0.03), (x, h / 2, z)) for x, z in rect_corners(w / 2 - 0.015, d / 2 - 0.015)]
    else:
        parts = [box((t, h, d), (s * (w / 2 - t / 2), h / 2, 0.0)) for s in (-1, 1)]
        if rng.random() < 0.7:
            parts.append(box((w, h, 0.01), (0.0, h / 2, -d / 2 + 0.005)))
    n = int(rng.integers(3, 7))
    ys = np.linspace(plinth, h - t, n + 1)
    ys[1:-1] += rng.uniform(-0.25, 0.25, n - 1) * (ys[1] - ys[0])
    parts += [box((w, t, d), (0.0, y + t / 2, 0.0)) for y in ys]
    if not open_frame and w > 0.8 and rng.random() < 0.4:
        parts.append(box((t, h - plinth, d), (uniform(rng, -0.2, 0.2) * w, plinth + (h - plinth) / 2, 0.0)))
    if rng.random() < 0.4:  # rows of books on some boards
        for y0, y1 in itertools.pairwise(ys):
            if rng.random() < 0.5:
                continue
            x = -w / 2 + t
            while x < w / 2 - 0.1:
                bw, bh = uniform(rng, 0.02, 0.06), (y1 - y0) * uniform(rng, 0.55, 0.85)
                parts.append(box((bw, bh, d * 0.75), (x + bw / 2, y0 + t + bh / 2, 0.0)))
                x += bw + uniform(rng, 0.0, 0.03)
    return parts


def bench(rng: np.random.Generator) -> list[Part]:
    """Bench: long slatted (sometimes solid) seat on legs, end panels or A-frames; optional back."""
    sh, w, d, st = uniform(rng, 0.4, 0.48), uniform(rng, 1.0, 2.0), uniform(rng, 0.3, 0.5), uniform(rng, 0.03, 0.06)
    under = sh - st
    if rng.random() < 0.2:
        parts = [box((w, st, d), (0.0, sh - st / 2, 0.0))]
    else:
        n = int(rng.integers(3, 7))
        sw = d / n * uniform(rng, 0.6, 0.85)
        parts = [box((w, st, sw), (0.0, sh - st / 2, z)) for z in np.linspace(-d / 2 + sw / 2, d / 2 - sw / 2, n)]
    xs = [-w / 2 + 0.1, w / 2 - 0.1] + ([0.0] if w > 1.6 else [])
    support, radius, square = pick_variant(rng, [0.5, 0.3, 0.2]), uniform(rng, 0.015, 0.035), rng.random() < 0.5
    for x in xs:
        if support == 0:
            parts += leg_parts([(x, -d / 2 + 0.04), (x, d / 2 - 0.04)], under, radius, 0.0, square)
        elif support == 1:  # end panel
            parts.append(box((0.04, under, d * 0.9), (x, under / 2, 0.0)))
        else:  # A-frame
            parts += [beam((x, 0.0, s * d / 2), (x, under, -s * d / 5), 0.04) for s in (-1, 1)]
    parts.append(box((w - 0.2, 0.04, 0.04), (0.0, under * uniform(rng, 0.3, 0.9), 0.0)))
    if rng.random() < 0.5:  # slatted back rising from the back edge
        bh = uniform(rng, 0.3, 0.45)
        back = [box((0.04, bh, 0.04), (x, bh / 2, 0.0)) for x in xs]
        back += [
            box((w, 0.05, 0.02), (0.0, y, 0.0)) for y in np.linspace(bh * 0.3, bh - 0.025, int(rng.integers(2, 5)))
        ]
        parts += moved_all(back, (0.0, sh, -d / 2), rot_x(-uniform(rng, 0.05, 0.3)))
        if rng.random() < 0.5:  # armrests
            for x in (-w / 2 + 0.05, w / 2 - 0.05):
                parts.append(box((0.04, 0.03, d), (x, sh + 0.2, 0.0)))
                parts.append(segment((x, sh, d / 2 - 0.03), (x, sh + 0.2, d / 2 - 0.03), 0.015))
    return parts


def cabinet(rng: np.random.Generator) -> list[Part]:
    """Cabinet: closed box with doors and/or drawers (a bookshelf closed at the front)."""
    h, w, d = uniform(rng, 0.5, 1.8), uniform(rng, 0.4, 1.2), uniform(rng, 0.35, 0.6)
    lift = uniform(rng, 0.1, 0.2) if rng.random() < 0.3 else uniform(rng, 0.0, 0.08)
    body_h, front = h - lift, d / 2
    parts = [box((w, body_h, d), (0.0, lift + body_h / 2, 0.0))]
    if lift > 0.09:
        parts += leg_parts(
            rect_corners(w / 2 - 0.04, d / 2 - 0.04), lift, uniform(rng, 0.015, 0.03), uniform(rng, 0.0, 0.15), rng.random() < 0.5
        )
    elif lift > 0.0:
        parts.append(box((w * 0.95, lift, d * 0.9), (0.0, lift / 2, 0.0)))
    if rng.random() < 0.5:  # overhanging top slab
        parts.append(box((w + 0.04, 0.03, d + 0.03), (0.0, h + 0.015, 0.015)))
    kind = pick_variant(rng, [0.4, 0.3, 0.3])  # doors, drawers, drawers over doors
    n_draw = 0 if kind == 0 else int(rng.integers(2, 6)) if kind == 1 else int(rng.integers(1, 3))
    draw_h = body_h if kind == 1 else body_h * uniform(rng, 0.2, 0.35) if kind == 2 else 0.0
    for k in range(n_draw):
        y = lift + body_h - (k + 0.5) * draw_h / n_draw
        parts.append(box((w * 0.92, draw_h / n_draw * 0.88, 0.015), (0.0, y, front + 0.0075)))
        parts.append(box((w * 0.25, 0.015, 0.02), (0.0, y, front + 0.025)))
    if kind != 1:
        door_h = body_h - draw_h
        n_doors = 1 if w < 0.6 else 2
        dw, side = w / n_doors, (1.0 if rng.random() < 0.5 else -1.0)
        for k in range(n_doors):
            x = -w / 2 + (k + 0.5) * dw
            parts.append(box((dw * 0.94, door_h * 0.94, 0.015), (x, lift + door_h / 2, front + 0.0075)))
            hx = x + dw * 0.38 * ((1.0 if k == 0 else -1.0) if n_doors == 2 else side)
            parts.append(box((0.015, min(0.15, door_h * 0.3), 0.02), (hx, lift + door_h * 0.6, front + 0.025)))
    return parts


def lamp(rng: np.random.Generator) -> list[Part]:
    """Lamp: base (disc, block or tripod), straight or bent pole, shade variants.

    Parts: base (disc, block or tripod feet), pole (straight or bent), shade (with the bulb).
    """
    floor = rng.random() < 0.5
    h = uniform(rng, 1.2, 1.7) if floor else uniform(rng, 0.35, 0.6)
    scale = 1.6 if floor else 1.0
    base_kind = pick_variant(rng, [0.5, 0.3, 0.2])
    pole_r = uniform(rng, 0.008, 0.02) * scale
    start = 0.0
    if base_kind == 0:
        bh = uniform(rng, 0.02, 0.05)
        parts = [cylinder(uniform(rng, 0.08, 0.15) * scale, bh)]
        start = bh
    elif base_kind == 1:
        bh, bs = uniform(rng, 0.03, 0.08), uniform(rng, 0.14, 0.25) * scale
        parts = [box((bs, bh, bs), (0.0, bh / 2, 0.0))]
        start = bh
    else:
        start = h * uniform(rng, 0.15, 0.3)
        feet = [(0.15 * scale * math.cos(a), 0.15 * scale * math.sin(a)) for a in (0.3, 2.4, 4.5)]
        parts = [segment((x, 0.0, z), (0.0, start, 0.0), pole_r) for x, z in feet]
    parts = named_all(parts, "base")
    top = np.array([0.0, h, 0.0])
    if rng.random() < 0.35:  # bent arm
        elbow = np.array([0.0, h * uniform(rng, 0.55, 0.8), 0.0])
        top = np.array([uniform(rng, 0.15, 0.35) * scale, h, 0.0])
        parts += named_all([segment((0.0, start, 0.0), elbow, pole_r), segment(elbow, top, pole_r)], "pole")
    else:
        parts.append(segment((0.0, start, 0.0), top, pole_r).named("pole"))
    rb = uniform(rng, 0.08, 0.15) * scale
    sh = rb * uniform(rng, 0.8, 1.6)
    kind = pick_variant(rng, [0.4, 0.2, 0.25, 0.15])
    if kind == 0:  # frustum
        shade = frustum(rb, rb * uniform(rng, 0.45, 0.85), sh)
    elif kind == 1:  # drum
        shade = frustum(rb, rb, sh)
    elif kind == 2:  # dome, open at the bottom
        shade = ellipsoid((rb, sh * 0.7, rb), (0.0, 0.0, 0.0), band=(0.0, 1.0))
    else:  # cone
        shade = frustum(rb, rb * 0.1, sh)
    parts.append(shade.moved(top - np.array([0.0, sh * uniform(rng, 0.4, 0.8), 0.0])).named("shade"))
    if rng.random() < 0.5:
        parts.append(ellipsoid((0.03, 0.04, 0.03), top).named("shade"))
    return parts
