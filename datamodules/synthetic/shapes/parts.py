"""Area-weighted surface samplers for parametric parts, plus the shape-level
deformations and cut-outs used by the synthetic data set (pure numpy).

Every primitive returns a :class:`Part`: its surface area (so that a shape made
of several parts can share its points out by area) and a sampler of points on
its surface in the part's own frame, together with a rigid transform into the
shape's frame. Conventions: y (index 1) is up, objects stand on the xz-plane.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np

Sampler = Callable[[int, np.random.Generator], np.ndarray]
"""(n, rng) -> (n, 3) float64 points on a surface, in the part's own frame."""

ArrayLike3 = Sequence[float] | np.ndarray


# --------------------------------------------------------------------- rotations
def rot_x(angle: float) -> np.ndarray:
    """Rotation matrix about the x axis (right-handed)."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_y(angle: float) -> np.ndarray:
    """Rotation matrix about the (up) y axis (right-handed)."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_z(angle: float) -> np.ndarray:
    """Rotation matrix about the z axis (right-handed)."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rotation_from_y(direction: ArrayLike3) -> np.ndarray:
    """Rotation taking the +y axis onto ``direction`` (Rodrigues' formula)."""
    d = np.asarray(direction, dtype=np.float64)
    d = d / np.linalg.norm(d)
    c = d[1]
    if c < -1.0 + 1e-9:  # antiparallel: half turn about x
        return np.diag([1.0, -1.0, -1.0])
    v = np.array([d[2], 0.0, -d[0]])  # cross((0, 1, 0), d)
    vx = np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])
    return np.eye(3) + vx + vx @ vx / (1.0 + c)


# ------------------------------------------------------------------------- parts
@dataclass(frozen=True, eq=False)
class Part:
    """A surface patch: its area and a sampler, placed by a rigid transform.

    ``label`` is the semantic part it belongs to (``"seat"``, ``"wing"``, ...; empty when
    the class has no part labels). It never touches the random stream: labelling the parts
    of a builder leaves the clouds it produces unchanged.
    """

    area: float
    sampler: Sampler
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    offset: np.ndarray = field(default_factory=lambda: np.zeros(3))
    label: str = ""

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` points on the part's surface in the shape's frame."""
        return self.sampler(n, rng) @ self.rotation.T + self.offset

    def moved(self, offset: ArrayLike3 = (0.0, 0.0, 0.0), rotation: np.ndarray | None = None) -> Part:
        """The part rotated about the origin by ``rotation``, then shifted by ``offset``."""
        rot = np.eye(3) if rotation is None else np.asarray(rotation, dtype=np.float64)
        return Part(
            self.area,
            self.sampler,
            rot @ self.rotation,
            rot @ self.offset + np.asarray(offset, dtype=np.float64),
            self.label,
        )

    def named(self, label: str) -> Part:
        """The same part labelled ``label``."""
        return Part(self.area, self.sampler, self.rotation, self.offset, label)


def named_all(parts: Sequence[Part], label: str) -> list[Part]:
    """Label a group of parts (e.g. every leg ``"leg"``)."""
    return [p.named(label) for p in parts]


def moved_all(
    parts: Sequence[Part], offset: ArrayLike3 = (0.0, 0.0, 0.0), rotation: np.ndarray | None = None
) -> list[Part]:
    """Apply the same rigid transform to a group of parts."""
    return [p.moved(offset, rotation) for p in parts]


def mirrored(parts: Sequence[Part], axis: int) -> list[Part]:
    """The parts reflected across coordinate ``axis`` (e.g. the other wing)."""
    flip = np.eye(3)
    flip[axis, axis] = -1.0
    return [Part(p.area, p.sampler, flip @ p.rotation, flip @ p.offset, p.label) for p in parts]


def sample_surface_indexed(parts: Sequence[Part], n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points spread over the parts in proportion to their areas, and the index of each point's part."""
    areas = np.array([max(p.area, 0.0) for p in parts], dtype=np.float64)
    counts = rng.multinomial(n, areas / areas.sum())
    chunks = [p.sample(int(c), rng) for p, c in zip(parts, counts, strict=True) if c > 0]
    owner = np.repeat(np.arange(len(parts)), counts)
    return np.concatenate(chunks, axis=0), owner


def sample_surface(parts: Sequence[Part], n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` points spread over the parts in proportion to their areas."""
    return sample_surface_indexed(parts, n, rng)[0]


# -------------------------------------------------------------------- samplers
def _sample_box(size: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform points on the six faces of an axis-aligned box centred at 0."""
    sx, sy, sz = size
    face_areas = np.array([sy * sz, sx * sz, sx * sy])
    axis = rng.choice(3, size=n, p=face_areas / face_areas.sum())
    pts = (rng.random((n, 3)) - 0.5) * size
    sign = np.where(rng.random(n) < 0.5, -0.5, 0.5)
    pts[np.arange(n), axis] = sign * size[axis]
    return pts


def _sample_revolution(
    radii: np.ndarray, heights: np.ndarray, caps: tuple[bool, bool], n: int, rng: np.random.Generator
) -> np.ndarray:
    """Uniform points on a surface of revolution about y given by a polyline profile."""
    weights = _revolution_areas(radii, heights, caps)
    comp = rng.choice(weights.size, size=n, p=weights / weights.sum())
    nseg = radii.size - 1
    seg = np.minimum(comp, nseg - 1)
    r0, r1, y0, y1 = radii[seg], radii[seg + 1], heights[seg], heights[seg + 1]
    u = rng.random(n)
    dr = r1 - r0
    # inverse CDF of the frustum's density, proportional to its radius along the slant
    safe = np.where(np.abs(dr) > 1e-9, dr, 1.0)
    t = np.where(np.abs(dr) > 1e-9, (np.sqrt(r0**2 + u * (r1**2 - r0**2)) - r0) / safe, u)
    r = r0 + dr * t
    y = y0 + (y1 - y0) * t
    # cap points: uniform on a disc at the profile's first / last point
    is_cap = comp >= nseg
    if is_cap.any():
        bottom = comp == nseg
        cap_r = np.where(bottom, radii[0], radii[-1])
        cap_y = np.where(bottom, heights[0], heights[-1])
        r = np.where(is_cap, cap_r * np.sqrt(u), r)
        y = np.where(is_cap, cap_y, y)
    theta = rng.random(n) * (2.0 * math.pi)
    return np.stack([r * np.cos(theta), y, r * np.sin(theta)], axis=1)


def _revolution_areas(radii: np.ndarray, heights: np.ndarray, caps: tuple[bool, bool]) -> np.ndarray:
    """Lateral area of each frustum segment, then of the bottom and top caps."""
    slant = np.hypot(np.diff(radii), np.diff(heights))
    lateral = math.pi * (radii[:-1] + radii[1:]) * slant
    cap_areas = [math.pi * radii[0] ** 2 if caps[0] else 0.0, math.pi * radii[-1] ** 2 if caps[1] else 0.0]
    return np.concatenate([lateral, cap_areas])


def _sample_ellipsoid(radii: np.ndarray, band: tuple[float, float], n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform points on an ellipsoid (restricted to a band of unit-sphere heights)."""
    a, b, c = radii
    w_max = max(b * c, a * c, a * b)
    out: list[np.ndarray] = []
    have = 0
    while have < n:
        m = 2 * (n - have) + 32
        d = rng.normal(size=(m, 3))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        d = d[(d[:, 1] >= band[0]) & (d[:, 1] <= band[1])]
        # the ellipsoid's area element relative to the sphere's, for rejection
        w = np.sqrt((b * c * d[:, 0]) ** 2 + (a * c * d[:, 1]) ** 2 + (a * b * d[:, 2]) ** 2)
        d = d[rng.random(len(d)) * w_max < w]
        out.append(d * radii)
        have += len(d)
    return np.concatenate(out)[:n]


def _sample_torus(major: float, minor: float, arc: tuple[float, float], n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform points on (an arc of) a torus around the y axis, ring in the xz-plane."""
    out: list[np.ndarray] = []
    have = 0
    while have < n:
        m = 2 * (n - have) + 32
        v = rng.random(m) * (2.0 * math.pi)
        keep = rng.random(m) * (major + minor) < major + minor * np.cos(v)
        v = v[keep]
        u = arc[0] + rng.random(v.size) * (arc[1] - arc[0])
        rho = major + minor * np.cos(v)
        out.append(np.stack([rho * np.cos(u), minor * np.sin(v), rho * np.sin(u)], axis=1))
        have += v.size
    return np.concatenate(out)[:n]


def _sample_triangles(tris: np.ndarray, areas: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform points on a triangle soup (T, 3, 3)."""
    idx = rng.choice(len(tris), size=n, p=areas / areas.sum())
    u, v = rng.random(n), rng.random(n)
    flip = u + v > 1.0
    u, v = np.where(flip, 1.0 - u, u), np.where(flip, 1.0 - v, v)
    a, b, c = tris[idx, 0], tris[idx, 1], tris[idx, 2]
    return a + u[:, None] * (b - a) + v[:, None] * (c - a)


# ------------------------------------------------------------------ primitives
def box(size: ArrayLike3, center: ArrayLike3 = (0.0, 0.0, 0.0)) -> Part:
    """Axis-aligned box surface of the given (x, y, z) size."""
    s = np.abs(np.asarray(size, dtype=np.float64))
    area = 2.0 * (s[0] * s[1] + s[0] * s[2] + s[1] * s[2])
    return Part(float(area), partial(_sample_box, s)).moved(center)


def revolution(
    radii: Sequence[float] | np.ndarray,
    heights: Sequence[float] | np.ndarray,
    cap_bottom: bool = False,
    cap_top: bool = False,
    base: ArrayLike3 = (0.0, 0.0, 0.0),
) -> Part:
    """Surface of revolution about y from a (radius, height) polyline profile."""
    r = np.maximum(np.asarray(radii, dtype=np.float64), 0.0)
    h = np.asarray(heights, dtype=np.float64)
    caps = (cap_bottom, cap_top)
    area = float(_revolution_areas(r, h, caps).sum())
    return Part(area, partial(_sample_revolution, r, h, caps)).moved(base)


def cylinder(radius: float, height: float, base: ArrayLike3 = (0.0, 0.0, 0.0), caps: bool = True) -> Part:
    """Vertical cylinder standing on ``base``, optionally with both caps."""
    return revolution([radius, radius], [0.0, height], caps, caps, base)


def frustum(
    r_bottom: float,
    r_top: float,
    height: float,
    base: ArrayLike3 = (0.0, 0.0, 0.0),
    caps: tuple[bool, bool] = (False, False),
) -> Part:
    """Vertical truncated cone (a cone when one radius is 0)."""
    return revolution([r_bottom, r_top], [0.0, height], caps[0], caps[1], base)


def disc(radius: float, center: ArrayLike3 = (0.0, 0.0, 0.0), inner: float = 0.0) -> Part:
    """Horizontal disc (or annulus) with normal along y."""
    return revolution([inner, radius], [0.0, 0.0]).moved(center)


def ellipsoid(radii: ArrayLike3, center: ArrayLike3 = (0.0, 0.0, 0.0), band: tuple[float, float] = (-1.0, 1.0)) -> Part:
    """Ellipsoid (or the band of it whose unit-sphere height lies in ``band``)."""
    r = np.abs(np.asarray(radii, dtype=np.float64))
    p = 1.6075  # Knud Thomsen's approximation of the ellipsoid's area
    full = 4.0 * math.pi * (((r[0] * r[1]) ** p + (r[0] * r[2]) ** p + (r[1] * r[2]) ** p) / 3.0) ** (1.0 / p)
    area = full * (band[1] - band[0]) / 2.0  # exact for spheres (Archimedes)
    return Part(float(area), partial(_sample_ellipsoid, r, band)).moved(center)


def torus(major: float, minor: float, arc: tuple[float, float] = (0.0, 2.0 * math.pi)) -> Part:
    """Torus (or an arc of it) around the y axis, e.g. handles and foot rings."""
    area = (arc[1] - arc[0]) * 2.0 * math.pi * minor * major
    return Part(float(area), partial(_sample_torus, major, minor, arc))


def triangles(tris: np.ndarray) -> Part:
    """Triangle soup (T, 3, 3) sampled by area."""
    t = np.asarray(tris, dtype=np.float64)
    areas = 0.5 * np.linalg.norm(np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]), axis=1)
    return Part(float(areas.sum()), partial(_sample_triangles, t, areas))


def prism(polygon: np.ndarray, thickness: float, center_2d: ArrayLike3 | None = None) -> Part:
    """Polygon in the xz-plane (k, 2) extruded along y over [-t/2, t/2].

    Caps are fanned from ``center_2d`` (default: the vertex mean), so the
    polygon must be star-shaped about that point.
    """
    poly = np.asarray(polygon, dtype=np.float64)
    c = poly.mean(axis=0) if center_2d is None else np.asarray(center_2d, dtype=np.float64)
    nxt = np.roll(poly, -1, axis=0)
    half = thickness / 2.0

    def lift(xz: np.ndarray, y: float) -> np.ndarray:
        xz = np.broadcast_to(xz, poly.shape)
        return np.stack([xz[:, 0], np.full(len(poly), y), xz[:, 1]], axis=1)

    tris = []
    for y in (-half, half):
        tris.append(np.stack([lift(c, y), lift(poly, y), lift(nxt, y)], axis=1))
    lo_a, lo_b, hi_a, hi_b = lift(poly, -half), lift(nxt, -half), lift(poly, half), lift(nxt, half)
    tris.append(np.stack([lo_a, lo_b, hi_b], axis=1))
    tris.append(np.stack([lo_a, hi_b, hi_a], axis=1))
    return triangles(np.concatenate(tris))


def loft(rings: Sequence[np.ndarray], cap_first: bool = False, cap_last: bool = False) -> Part:
    """Surface through closed 3D loops (each (k, 3), same k), capped by fans at the ends.

    Used for shells that are neither boxes nor surfaces of revolution, e.g.
    the walls of a rounded-rectangle tub or a flaring pot.
    """
    loops = [np.asarray(r, dtype=np.float64) for r in rings]
    tris = []
    for a, b in itertools.pairwise(loops):
        a2, b2 = np.roll(a, -1, axis=0), np.roll(b, -1, axis=0)
        tris += [np.stack([a, a2, b2], axis=1), np.stack([a, b2, b], axis=1)]
    for use, loop in ((cap_first, loops[0]), (cap_last, loops[-1])):
        if use:
            c = np.broadcast_to(loop.mean(axis=0), loop.shape)
            tris.append(np.stack([c, loop, np.roll(loop, -1, axis=0)], axis=1))
    return triangles(np.concatenate(tris))


def ring_at(polygon_xz: np.ndarray, y: float) -> np.ndarray:
    """A horizontal loop (k, 3) at height ``y`` from an xz polygon."""
    poly = np.asarray(polygon_xz, dtype=np.float64)
    return np.stack([poly[:, 0], np.full(len(poly), y), poly[:, 1]], axis=1)


def prism_xy(polygon_xy: np.ndarray, depth: float, z: float = 0.0, center_2d: ArrayLike3 | None = None) -> Part:
    """Polygon in the xy-plane (side profile) extruded along z over [z - d/2, z + d/2]."""
    return prism(polygon_xy, depth, center_2d).moved((0.0, 0.0, z), rot_x(-math.pi / 2.0))


def segment(p0: ArrayLike3, p1: ArrayLike3, radius: float, caps: bool = True) -> Part:
    """Round rod (cylinder) from ``p0`` to ``p1``."""
    a, b = np.asarray(p0, dtype=np.float64), np.asarray(p1, dtype=np.float64)
    length = float(np.linalg.norm(b - a))
    return cylinder(radius, length, caps=caps).moved(a, rotation_from_y(b - a))


def beam(p0: ArrayLike3, p1: ArrayLike3, width: float, depth: float | None = None) -> Part:
    """Square-section rod from ``p0`` to ``p1`` (width x depth cross-section)."""
    a, b = np.asarray(p0, dtype=np.float64), np.asarray(p1, dtype=np.float64)
    length = float(np.linalg.norm(b - a))
    size = (width, length, width if depth is None else depth)
    return box(size).moved((a + b) / 2.0, rotation_from_y(b - a))


def ellipse_polygon(half_x: float, half_z: float, k: int = 40) -> np.ndarray:
    """(k, 2) vertices of an ellipse centred at the origin."""
    t = np.linspace(0.0, 2.0 * math.pi, k, endpoint=False)
    return np.stack([half_x * np.cos(t), half_z * np.sin(t)], axis=1)


def rounded_rect_polygon(width: float, depth: float, radius: float, k: int = 6) -> np.ndarray:
    """Vertices of a rectangle with rounded corners (``k`` vertices per corner)."""
    radius = float(np.clip(radius, 0.0, 0.5 * min(width, depth)))
    hx, hz = width / 2.0 - radius, depth / 2.0 - radius
    pts = []
    for i, (cx, cz) in enumerate([(hx, hz), (-hx, hz), (-hx, -hz), (hx, -hz)]):
        t = np.linspace(0.0, math.pi / 2.0, k) + i * math.pi / 2.0
        pts.append(np.stack([cx + radius * np.cos(t), cz + radius * np.sin(t)], axis=1))
    return np.concatenate(pts)


def smooth_profile(knots_y: Sequence[float], knots_r: Sequence[float], k: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """A smooth (cosine-eased) profile through (height, radius) knots, as k points."""
    ky, kr = np.asarray(knots_y, dtype=np.float64), np.asarray(knots_r, dtype=np.float64)
    y = np.linspace(ky[0], ky[-1], k)
    seg = np.clip(np.searchsorted(ky, y, side="right") - 1, 0, len(ky) - 2)
    t = (y - ky[seg]) / (ky[seg + 1] - ky[seg])
    ease = 0.5 - 0.5 * np.cos(math.pi * t)
    return kr[seg] + (kr[seg + 1] - kr[seg]) * ease, y


# ---------------------------------------------------------- shape-level effects
def random_deformation(points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Smooth non-rigid deformation of a unit-sized shape (y up).

    Anisotropic scale always, then taper, twist, bend and a low-frequency
    sinusoidal warp, each with some probability: instances of a class then
    differ by more than their part proportions, without losing their class.
    """
    p = points * np.exp(rng.normal(0.0, 0.25, size=3))
    y = p[:, 1]
    yn = (y - y.min()) / max(float(np.ptp(y)), 1e-9) - 0.5  # in [-0.5, 0.5]
    if rng.random() < 0.5:  # taper: widen or narrow towards the top
        p[:, [0, 2]] *= (1.0 + rng.uniform(-0.5, 0.5) * yn)[:, None]
    if rng.random() < 0.4:  # twist about the up axis
        ang = rng.uniform(-0.5, 0.5) * yn
        c, s = np.cos(ang), np.sin(ang)
        x, z = p[:, 0].copy(), p[:, 2].copy()
        p[:, 0], p[:, 2] = c * x + s * z, -s * x + c * z
    if rng.random() < 0.4:  # bend the up axis towards a random horizontal direction
        phi = rng.uniform(0.0, 2.0 * math.pi)
        shift = rng.uniform(-0.35, 0.35) * (yn + 0.5) ** 2
        p[:, 0] += shift * math.cos(phi)
        p[:, 2] += shift * math.sin(phi)
    if rng.random() < 0.7:  # random smooth warp: a few low-frequency plane waves
        for _ in range(3):
            k = rng.normal(size=3)
            k *= rng.uniform(1.5, 4.0) / np.linalg.norm(k)
            amp = rng.normal(0.0, 0.04, size=3)
            p += np.sin(p @ k + rng.uniform(0.0, 2.0 * math.pi))[:, None] * amp
    return p


def remove_random_regions(
    points: np.ndarray, rng: np.random.Generator, max_regions: int = 2, max_fraction: float = 0.15
) -> np.ndarray:
    """Cut out 0..max_regions regions (a ball around a surface point, or the
    part beyond a random plane), each removing at most ``max_fraction`` of the
    points, so at least 1 - max_regions * max_fraction of the surface is kept."""
    return points[kept_after_random_regions(points, rng, max_regions, max_fraction)]


def kept_after_random_regions(
    points: np.ndarray, rng: np.random.Generator, max_regions: int = 2, max_fraction: float = 0.15
) -> np.ndarray:
    """Indices (in order) of the points :func:`remove_random_regions` keeps, drawing the same numbers."""
    kept = np.arange(len(points))
    for _ in range(int(rng.integers(0, max_regions + 1))):
        n_cut = int(rng.uniform(0.03, max_fraction) * len(points))
        if rng.random() < 0.5:  # ball: the n_cut nearest points to a random surface point
            anchor = points[rng.integers(len(points))]
            score = -np.sum((points - anchor) ** 2, axis=1)
        else:  # half-space: the n_cut points farthest along a random direction
            d = rng.normal(size=3)
            score = points @ (d / np.linalg.norm(d))
        drop = np.argpartition(-score, n_cut)[:n_cut] if n_cut > 0 else np.empty(0, dtype=np.int64)
        keep = np.ones(len(points), dtype=bool)
        keep[drop] = False
        points = points[keep]
        kept = kept[keep]
    return kept
