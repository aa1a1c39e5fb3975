"""A small labelled transfer set of real, artist-made meshes, for linear probes in development.

Source: Debian's ``flightgear-data-models`` (FlightGear's scenery models: ships, buoys,
vehicles, houses, farms, office towers...), AC3D ``.ac`` files under
``/usr/share/games/flightgear/Models``. The models are mapped into shape classes by the
explicit table :data:`CLASSES` (with the near-duplicate variants and broken models left out
by :data:`EXCLUDED`), parsed with :func:`parse_ac3d`, deduplicated, and written as ``.obj``
in the :class:`datamodules.MeshFolder` layout with a fixed, seeded, stratified split::

    <root>/train/<class>/<name>.obj
    <root>/test/<class>/<name>.obj
    <root>/manifest.json               sources, hashes, skipped and dropped models

Classes with fewer than ``--min-per-class`` distinct models (default 12) are dropped:
with the package of Debian bookworm that leaves 9 classes and 188 shapes, aircraft (9),
jetway (11) and pier (7) out. Coordinates stay as in the files: metres, y up (as AC3D and
the ModelNet40 h5 files); MeshFolder centres and scales each sampled cloud.

``<root>`` defaults to ``$POINTDWC_CACHE/real_meshes/flightgear``. The set is derived data
under the cache, never committed; it appears atomically and a second run leaves it alone
(``--force`` rebuilds it). The package itself is not installed by this script.

Usage:
    python benchmarks/real_meshes.py                       # build once, print the table
    python benchmarks/real_meshes.py --force --min-per-class 7   # also aircraft, jetway, pier

From Python::

    from benchmarks.real_meshes import build
    root = build()
    data = MeshFolder(root=str(root), num_points=1024)
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import itertools
import json
import re
import sys
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from benchmarks.debian import exit_status, package_version
from datamodules.cache import atomic_directory, default_cache_dir
from datamodules.errors import DataError

PACKAGE = "flightgear-data-models"
MODELS_DIR = Path("/usr/share/games/flightgear/Models")
INSTALL_COMMAND = f"apt-get install -y {PACKAGE}"
TESTED_VERSION = "1:2020.3.16+dfsg-1"
"""The package version (Debian bookworm) the table was made from."""
SET_NAME = "flightgear"
MANIFEST = "manifest.json"
SEED = 0
TEST_FRACTION = 0.3
MIN_TEST = 3
"""Test shapes per class, at least."""
MIN_PER_CLASS = 12
"""Default ``--min-per-class``: classes with fewer distinct models are dropped."""
MIN_FACES = 8
"""Fewer triangles than this is a marker or a sprite, not a shape."""
SKIP_OBJECTS = re.compile(r"wake|shadow|sillage|bow.?wave|\bflash\b", re.IGNORECASE)
"""AC3D objects (by name or texture) that are water or light effects, not the model's surface."""
DUPLICATE_TOLERANCE = 1e-4
"""Models whose vertex sets match within this share of their size (after uniform scaling) are one model."""
LAYOUT_VERSION = 1
"""Bump when the table, the parser or the output changes: written into the manifest."""

CLASSES: dict[str, tuple[str, ...]] = {
    # Watercraft with a long hull: cargo ships, tankers, ferries, trawlers, barges,
    # warships, carriers, landing craft and sailing yachts (mast and sails).
    "ship": (
        "Maritime/Civilian/*.ac",
        "Maritime/Military/*.ac",
        "Maritime/Military/CG-57/*.ac",
        "Maritime/Military/CG-57-high-detail/*.ac",
        "Geometry/saratoga.ac",
        "Geometry/Nimitz/nimitz.ac",
        "Geometry/sailboat1/sailboat.ac",
    ),
    # Floating sea marks: navigation and data buoys (round floats with a top mark or
    # mast) and the channel beacons (tall poles).
    "buoy": (
        "Maritime/Misc/*Buoy*.ac",
        "Maritime/Misc/OSIL_DATA_BUOY.ac",
        "Maritime/Misc/SAIC_DART_ETD.ac",
        "Maritime/Misc/*_bank_beacon.ac",
    ),
    # Wheeled land vehicles: rail cars and locomotives, a bus, vans, a humvee, airport
    # tugs, a forklift, a fire truck and deck tractors.
    "ground_vehicle": (
        "Transport/*.ac",
        "Airport/Pushback/*.ac",
        "Airport/Vehicle/*.ac",
        "Airport/supacat_winch.ac",
        "Military/*.ac",
        "Residential/HelgoVan.ac",
        "Geometry/Nimitz/Models/mule-11.ac",
        "Geometry/Nimitz/Models/deck-crane.ac",
        "Geometry/Clemenceau/tracteur.ac",
    ),
    # One small building with a pitched roof: houses, farmhouses, bungalows, barns,
    # sheds, stables and a village shop.
    "small_building": (
        "Agriculture/farmhouse*.ac",
        "Agriculture/foursquare.ac",
        "Agriculture/*shed.ac",
        "Agriculture/*stable.ac",
        "Agriculture/*barn*.ac",
        "Buildings/*stable.ac",
        "Buildings/red-barn.ac",
        "Buildings/*shop.ac",
        "Residential/Detached-1.ac",
        "Residential/MontHse*.ac",
        "Residential/MontserratHse*.ac",
        "Residential/SD*.ac",
        "Residential/Terrace*.ac",
        "Residential/generic-traditional-asian-house-*.ac",
        "Residential/german*.ac",
    ),
    # Several separate buildings in one model: farmsteads (house, barns, silos) and
    # housing estates (rows of houses or blocks).
    "building_group": (
        "Agriculture/*-farm.ac",
        "Residential/Zone*-ba.ac",
        "Residential/zone_maisons*-ba.ac",
        "Residential/banlieue-ba.ac",
    ),
    # Tall buildings: skyscrapers and office or residential towers.
    "highrise": (
        "Commercial/generic_skyscraper_*.ac",
        "Commercial/tower-*.ac",
        "Commercial/generic_building_135x65x35m.ac",
        "Residential/Highrise*.ac",
        "Residential/Tour-ba.ac",
        "Residential/lasnamae_korghoone.ac",
    ),
    # Mid-rise residential blocks and slabs, flat or low roofs.
    "apartment_block": (
        "Residential/Ailepalais-ba.ac",
        "Residential/Moduleville*-ba.ac",
        "Residential/ad*-ba.ac",
        "Residential/immeuble*-ba.ac",
        "Residential/grdimmeuble-ba.ac",
        "Residential/*-apartment.ac",
        "Residential/hochhaus_asemwald.ac",
        "Residential/tower-hexa.ac",
        "Buildings/*-apartment.ac",
    ),
    # Low, wide commercial buildings with flat roofs: offices, supermarkets, a cinema,
    # a hotel, a school, a petrol station.
    "commercial_lowrise": (
        "Commercial/Office*.ac",
        "Commercial/Retail*.ac",
        "Commercial/PizzaHut*.ac",
        "Commercial/Cinema*.ac",
        "Commercial/hotel-generic-01.ac",
        "Commercial/office-ba.ac",
        "Commercial/tecalemit*-ba.ac",
        "Commercial/*glass-office-building.ac",
        "Commercial/small-modern-office.ac",
        "Commercial/Brasilia-generic.ac",
        "Commercial/Petrolstation*.ac",
        "Buildings/bank-building.ac",
        "Buildings/brick-school.ac",
        "Buildings/small-office.ac",
        "Buildings/small-modern-office.ac",
        "Buildings/medium-glass-office-building.ac",
    ),
    # Industrial halls and factories: large footprints, saw-tooth or gabled roofs.
    "industrial_hall": (
        "Industrial/*.ac",
        "Buildings/factory.ac",
    ),
    # Airport passenger boarding bridges: a tunnel on legs from a rotunda.
    "jetway": ("Airport/Jetway/*.ac",),
    # Aircraft: jets, a tanker, helicopters, a glider (too few for the default minimum).
    "aircraft": (
        "Aircraft/F-15-lowpoly.ac",
        "Aircraft/H-60.ac",
        "Aircraft/dauphin.ac",
        "Geometry/A4-F/*.ac",
        "Geometry/KA6-D/*.ac",
        "Geometry/KC-130/KC-130.ac",
        "Geometry/KC135/*.ac",
        "Geometry/glider.ac",
        "Geometry/tuxcopter.ac",
    ),
    # Piers and jetties: long boxes on the water (too few for the default minimum).
    "pier": ("Maritime/Misc/*pier*.ac",),
}
"""Class -> glob patterns (``fnmatch``, relative to :data:`MODELS_DIR`) of its AC3D files.

Not mapped: Weather/ (clouds: textured billboard quads), Astro/ (globe tiles), Effects/,
Autopush/ and the lights (sprites), parts of the carriers assembled by XML (decks,
cranes, lights, crew), stores and munitions (7 models), single structures (silos,
towers, oil tanks, an oil rig) and Maritime/Ice, Volcanoes (one model each).
"""

EXCLUDED: dict[str, str] = {
    "Maritime/Misc/NOAA_Yellow_Tsunami_Buoy.ac": "repainted, remeshed NOAA_Tsunami_Buoy",
    "Maritime/Misc/Buoy-Cylindrical-Yellow.ac": "Buoy-Conical-Yellow with another top mark",
    "Maritime/Misc/right_bank_beacon.ac": "left_bank_beacon with another top mark",
    "Transport/ICE3firstcar.ac": "a stray 25 m sphere floats 380 m above the car",
    "Transport/ICE3middlecar2.ac": "variant of ICE3middlecar",
    "Transport/lner-teak-first-class-coach.ac": "variant of lner-teak-brake-coach",
    "Airport/Pushback/Goldhofert-warning-light.ac": "a lamp, not a vehicle",
    "Agriculture/farmhouse2-white.ac": "variant of farmhouse2",
    "Agriculture/red-smal-shed.ac": "brick-shed turned around",
    "Residential/Terrace[45789]-1.ac": "Terrace3-1, 6-1 and 12-1 stand for the 3 to 17 houses in a row",
    "Residential/Terrace17-1.ac": "Terrace3-1, 6-1 and 12-1 stand for the 3 to 17 houses in a row",
    "Residential/Modulevillerectangl2-ba.ac": "variant of Modulevillerectangl-ba",
    "Commercial/generic_skyscraper_0[2-79].ac": "the same box as generic_skyscraper_01, or a rescaled one",
    "Commercial/Petrolstation2.ac": "Petrolstation1 turned by 90 degrees",
    "Airport/Jetway/DockingGate-ba.ac": "same model as AutoGate-ba",
    "Airport/Jetway/glass.ac": "generic.ac with glazing",
    "Airport/Jetway/jetway-30r-ba.ac": "mirror image of jetway-30l-ba",
    "Airport/Jetway/jetway-[7a]*-ba.ac": "jetway-ba with another door height",
    "Airport/Jetway/jetway-movable-3.ac": "jetway-movable-2 with a third tunnel",
}
"""Files a CLASSES pattern matches but the set leaves out (glob -> why), applied first."""


@dataclass
class Source:
    """One selected AC3D file (or, for ``benchmarks/real_meshes_0ad.py``, one mesh of 0 A.D.'s zip)."""

    label: str
    rel: str
    """Path relative to :data:`MODELS_DIR` (posix); for 0 A.D., the mesh name under ``art/meshes/``."""

    @property
    def name(self) -> str:
        """The output file stem: the relative path without suffix, folders joined by ``-``."""
        return self.rel.removesuffix(".ac").replace("/", "-")


# ---------------------------------------------------------------- AC3D
_MAX_DEPTH = 256
"""Deepest OBJECT nesting accepted (real files nest a handful of levels)."""


class _Lines:
    """A cursor over a file's lines that names the file and line on a parse error."""

    def __init__(self, path: Path, lines: list[str]) -> None:
        self.path = path
        self.lines = lines
        self.i = 0

    def next(self, what: str) -> list[str]:
        """The next non-blank line split into tokens; DataError at the end of the file."""
        while self.i < len(self.lines):
            tokens = self.lines[self.i].split()
            self.i += 1
            if tokens:
                return tokens
        raise self.error(f"file ends where {what} was expected")

    def peek(self) -> list[str] | None:
        """The next non-blank line's tokens without consuming it, None at the end."""
        while self.i < len(self.lines) and not self.lines[self.i].split():
            self.i += 1
        return self.lines[self.i].split() if self.i < len(self.lines) else None

    def skip_chars(self, count: int) -> None:
        """Skip a ``data`` block of ``count`` characters (it may span lines)."""
        left = count
        while left > 0 and self.i < len(self.lines):
            left -= len(self.lines[self.i]) + 1
            self.i += 1

    def floats(self, tokens: list[str], count: int, what: str) -> list[float]:
        """The first ``count`` tokens as floats."""
        try:
            values = [float(t) for t in tokens[:count]]
        except ValueError:
            values = []
        if len(values) != count:
            raise self.error(f"{what} needs {count} numbers, got {' '.join(tokens)!r}")
        return values

    def count(self, tokens: list[str], what: str) -> int:
        """The non-negative integer after a keyword (``numvert 12``)."""
        try:
            value = int(tokens[1])
        except (IndexError, ValueError):
            raise self.error(f"{what} needs an integer, got {' '.join(tokens)!r}") from None
        if value < 0:
            raise self.error(f"{what} is negative ({value})")
        return value

    def error(self, message: str) -> DataError:
        return DataError(f"{self.path}:{self.i}: not a valid AC3D file: {message}")


def parse_ac3d(path: Path, skip: re.Pattern[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) float64 and triangles (F, 3) int64 of every object in an AC3D file.

    Each OBJECT's ``rot`` (3x3, row-major, acting on column vectors) and ``loc`` place
    its vertices and its kids relative to its parent, so a vertex ends up at
    ``R_1 (R_2 (... (R_k v + t_k) ...) + t_2) + t_1`` down the chain of objects.
    Polygon surfaces (SURF type 0) are triangulated as fans; line and closed-line
    surfaces (types 1 and 2) and any other type are skipped, as are triangles that
    repeat a vertex. An OBJECT whose name or texture matches ``skip`` contributes no
    surfaces (its kids still do). A file that ends where more kid OBJECTs were announced
    keeps what it holds, as FlightGear's own loader does; anything else malformed raises
    a DataError naming the file and line.
    """
    try:
        text = path.read_bytes().decode("latin-1")
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from None
    cursor = _Lines(path, text.splitlines())
    header = cursor.next("the AC3D header")
    if not header[0].startswith("AC3D"):
        raise cursor.error(f"starts with {header[0]!r}, not an AC3Db/AC3Dc header")
    vertices: list[np.ndarray] = []
    faces: list[np.ndarray] = []
    offset = 0
    # Parents' (world rotation, world translation, kid OBJECTs still to read); the file
    # level expects one OBJECT (the world).
    stack: list[tuple[np.ndarray, np.ndarray, int]] = [(np.eye(3), np.zeros(3), 1)]
    while True:
        while stack and stack[-1][2] == 0:
            stack.pop()
        if not stack:
            break
        tokens = cursor.peek()
        if tokens is None:
            if len(stack) == 1 and stack[0][2] == 1:
                raise cursor.error("no OBJECT")
            break  # fewer kids than announced
        if tokens[0] == "MATERIAL":
            cursor.next("MATERIAL")
            continue
        if tokens[0] != "OBJECT":
            raise cursor.error(f"expected OBJECT, got {' '.join(tokens)!r}")
        cursor.next("OBJECT")
        parent_rot, parent_loc, left = stack[-1]
        stack[-1] = (parent_rot, parent_loc, left - 1)
        rot, loc, kids, local, tris, labels = _read_object(cursor)
        world_rot = parent_rot @ rot
        world_loc = parent_rot @ loc + parent_loc
        if len(tris) and not (skip is not None and any(skip.search(label) for label in labels)):
            vertices.append(local @ world_rot.T + world_loc)
            faces.append(tris + offset)
            offset += len(local)
        if kids:
            if len(stack) > _MAX_DEPTH:
                raise cursor.error(f"OBJECTs nested deeper than {_MAX_DEPTH} levels")
            stack.append((world_rot, world_loc, kids))
    if not faces:
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    return np.concatenate(vertices), np.concatenate(faces)


def _read_object(cursor: _Lines) -> tuple[np.ndarray, np.ndarray, int, np.ndarray, np.ndarray, list[str]]:
    """One OBJECT's body up to its ``kids`` line: rot, loc, kid count, vertices, triangles, name/texture."""
    rot, loc = np.eye(3), np.zeros(3)
    local = np.zeros((0, 3))
    tris: list[list[int]] = []
    labels: list[str] = []
    while True:
        tokens = cursor.next("'kids' closing an OBJECT")
        key = tokens[0]
        if key == "kids":
            kids = cursor.count(tokens, "kids")
            break
        if key == "rot":
            rot = np.array(cursor.floats(tokens[1:], 9, "rot")).reshape(3, 3)
        elif key == "loc":
            loc = np.array(cursor.floats(tokens[1:], 3, "loc"))
        elif key == "data":
            cursor.skip_chars(cursor.count(tokens, "data"))
        elif key in ("name", "texture"):
            labels.append(" ".join(tokens[1:]).strip('"'))
        elif key == "numvert":
            num = cursor.count(tokens, "numvert")
            rows = [cursor.floats(cursor.next("a vertex"), 3, "a vertex") for _ in range(num)]
            local = np.array(rows, dtype=np.float64).reshape(num, 3)
        elif key == "numsurf":
            for _ in range(cursor.count(tokens, "numsurf")):
                tris.extend(_read_surface(cursor, len(local)))
        elif key in ("OBJECT", "SURF", "refs", "mat"):
            raise cursor.error(f"{key} before the 'kids' line of the enclosing OBJECT")
        # texrep, texoff, crease, subdiv, url, hidden, locked, folded: nothing to keep
    return rot, loc, kids, local, np.array(tris, dtype=np.int64).reshape(-1, 3), labels


def _read_surface(cursor: _Lines, num_vertices: int) -> list[list[int]]:
    """One SURF block: its fan triangles if it is a polygon, else nothing."""
    tokens = cursor.next("SURF")
    if tokens[0] != "SURF" or len(tokens) < 2:
        raise cursor.error(f"expected SURF <flags>, got {' '.join(tokens)!r}")
    try:
        kind = int(tokens[1], 16) & 0x0F
    except ValueError:
        raise cursor.error(f"SURF flags {tokens[1]!r} are not a hex number") from None
    while True:
        tokens = cursor.next("refs")
        if tokens[0] == "refs":
            break
        if tokens[0] in ("SURF", "OBJECT", "kids", "numsurf", "numvert"):
            raise cursor.error(f"SURF without refs (found {tokens[0]})")
        # mat (and anything newer): not needed
    refs = []
    for _ in range(cursor.count(tokens, "refs")):
        line = cursor.next("a surface vertex reference")
        try:
            index = int(line[0])
        except ValueError:
            raise cursor.error(f"vertex reference {line[0]!r} is not an integer") from None
        if not 0 <= index < num_vertices:
            raise cursor.error(f"vertex reference {index} outside the object's {num_vertices} vertices")
        refs.append(index)
    if kind != 0 or len(refs) < 3:
        return []
    first = refs[0]
    return [[first, b, c] for b, c in itertools.pairwise(refs[1:]) if first != b and b != c and first != c]


# ---------------------------------------------------------------- selection and checks
def select(models_dir: Path = MODELS_DIR) -> tuple[list[Source], dict[str, str]]:
    """The table applied to the package: sources sorted by class and path, and excluded files (rel -> why)."""
    found = sorted(p.relative_to(models_dir).as_posix() for p in models_dir.rglob("*.ac") if p.is_file())
    sources: list[Source] = []
    excluded: dict[str, str] = {}
    owner: dict[str, str] = {}
    for label, patterns in CLASSES.items():
        for rel in found:
            if not any(fnmatch.fnmatchcase(rel, pattern) for pattern in patterns):
                continue
            if rel in owner:
                raise DataError(f"{models_dir / rel}: matched by both {owner[rel]!r} and {label!r} in CLASSES")
            owner[rel] = label
            reason = next((why for pattern, why in EXCLUDED.items() if fnmatch.fnmatchcase(rel, pattern)), None)
            if reason is not None:
                excluded[rel] = reason
            else:
                sources.append(Source(label, rel))
    return sorted(sources, key=lambda s: (s.label, s.rel)), excluded


def mesh_problem(vertices: np.ndarray, faces: np.ndarray) -> str | None:
    """Why a parsed mesh is unusable as a shape (None if it is fine)."""
    if len(faces) < MIN_FACES:
        return f"{len(faces)} triangles (fewer than {MIN_FACES})"
    if not np.isfinite(vertices).all():
        return "NaN or Inf vertex coordinates"
    corners = vertices[faces]
    area = 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1).sum()
    if not np.isfinite(area) or area <= 0:
        return f"surface area {area}"
    extent = np.ptp(vertices, axis=0)
    if extent.min() <= 1e-6 * extent.max():
        return "flat (no thickness along one axis)"
    return None


def compact(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Only the vertices the triangles use, faces renumbered."""
    used, inverse = np.unique(faces, return_inverse=True)
    return vertices[used], inverse.reshape(faces.shape).astype(np.int64)


def unit_vertices(vertices: np.ndarray) -> np.ndarray:
    """The distinct vertices translated to a zero minimum and scaled uniformly to a largest extent of 1."""
    shifted = vertices - vertices.min(axis=0)
    return np.unique(shifted / max(float(shifted.max()), 1e-12), axis=0)


def same_geometry(a: np.ndarray, b: np.ndarray, tol: float = DUPLICATE_TOLERANCE) -> bool:
    """Whether two :func:`unit_vertices` sets match, every vertex within ``tol`` of one in the other."""
    if abs(len(a) - len(b)) > 0.01 * max(len(a), len(b)) + 1:
        return False
    if not np.allclose(a.max(axis=0), b.max(axis=0), atol=10 * tol):
        return False
    return bool(cKDTree(b).query(a)[0].max() <= tol and cKDTree(a).query(b)[0].max() <= tol)


def split_names(label: str, names: list[str]) -> tuple[list[str], list[str]]:
    """A class's sorted names split into (train, test): ``TEST_FRACTION`` of them, at least ``MIN_TEST``, in test."""
    n = len(names)
    n_test = max(MIN_TEST, round(n * TEST_FRACTION))
    order = np.random.default_rng([SEED, zlib.crc32(label.encode())]).permutation(n)
    test = set(order[:n_test].tolist())
    ordered = sorted(names)
    return [x for i, x in enumerate(ordered) if i not in test], [x for i, x in enumerate(ordered) if i in test]


def write_obj(path: Path, vertices: np.ndarray, faces: np.ndarray, comment: str) -> None:
    """A Wavefront OBJ with ``v`` and 1-based triangle ``f`` lines."""
    lines = [f"# {comment}"]
    lines += [f"v {x:.6g} {y:.6g} {z:.6g}" for x, y, z in vertices.tolist()]
    lines += [f"f {a} {b} {c}" for a, b, c in (faces + 1).tolist()]
    path.write_text("\n".join(lines) + "\n")


# ---------------------------------------------------------------- build
@dataclass
class Converted:
    """What reading the selected files gave: distinct meshes per class and what was left out."""

    meshes: dict[str, list[tuple[Source, np.ndarray, np.ndarray, str]]] = field(default_factory=dict)
    """Class -> (source, vertices, triangles, file sha256), in source order."""
    skipped: dict[str, str] = field(default_factory=dict)
    """Unreadable or degenerate file -> why."""
    duplicates: dict[str, str] = field(default_factory=dict)
    """Duplicate file -> the file kept in its place."""


def convert(sources: list[Source], models_dir: Path = MODELS_DIR) -> Converted:
    """Parse, check and deduplicate (same file, or same vertex set up to uniform scale) the sources."""
    out = Converted()
    seen_files: dict[str, str] = {}
    seen_shapes: list[tuple[np.ndarray, str]] = []
    for source in sources:
        path = models_dir / source.rel
        try:
            vertices, faces = parse_ac3d(path, SKIP_OBJECTS)
        except DataError as err:
            out.skipped[source.rel] = str(err)
            continue
        problem = mesh_problem(vertices, faces)
        if problem is not None:
            out.skipped[source.rel] = f"{path}: {problem}"
            continue
        vertices, faces = compact(vertices, faces)
        file_hash = hashlib.sha256(path.read_bytes()).hexdigest()
        unit = unit_vertices(vertices)
        first = seen_files.get(file_hash) or next((rel for u, rel in seen_shapes if same_geometry(unit, u)), None)
        if first is not None:
            out.duplicates[source.rel] = first
            continue
        seen_files[file_hash] = source.rel
        seen_shapes.append((unit, source.rel))
        out.meshes.setdefault(source.label, []).append((source, vertices, faces, file_hash))
    return out


def write_set(
    folder: Path,
    converted: Converted,
    excluded: dict[str, str],
    min_per_class: int,
    labels: Iterable[str] | None = None,
    package: str = PACKAGE,
    layout_version: int = LAYOUT_VERSION,
) -> dict[str, Any]:
    """Write ``train/`` and ``test/`` of the classes with enough models into ``folder``; return the manifest.

    ``labels`` (default the keys of :data:`CLASSES`) are the table's classes, ``package`` the Debian
    package the sources come from (named in each file and the manifest) and
    ``layout_version`` the version of the table and output written into the manifest.
    """
    sizes = {label: len(converted.meshes.get(label, [])) for label in (CLASSES if labels is None else labels)}
    dropped = {label: n for label, n in sizes.items() if n < min_per_class}
    classes: dict[str, dict[str, list[str]]] = {}
    files: dict[str, dict[str, Any]] = {}
    for label in sorted(converted.meshes):
        if label in dropped:
            continue
        by_name = {item[0].name: item for item in converted.meshes[label]}
        train, test = split_names(label, list(by_name))
        classes[label] = {"train": train, "test": test}
        for split, names in (("train", train), ("test", test)):
            (folder / split / label).mkdir(parents=True, exist_ok=True)
            for name in names:
                source, vertices, faces, file_hash = by_name[name]
                rel = f"{split}/{label}/{name}.obj"
                write_obj(folder / rel, vertices, faces, f"{package}: {source.rel}")
                files[rel] = {"source": source.rel, "sha256": file_hash, "triangles": len(faces)}
    manifest = {
        "package": package,
        "package_version": package_version(package),
        "layout_version": layout_version,
        "seed": SEED,
        "test_fraction": TEST_FRACTION,
        "min_per_class": min_per_class,
        "classes": classes,
        "files": files,
        "dropped_classes": dropped,
        "excluded": excluded,
        "skipped": converted.skipped,
        "duplicates": converted.duplicates,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def default_root() -> Path:
    """``$POINTDWC_CACHE/real_meshes/flightgear``."""
    return default_cache_dir() / "real_meshes" / SET_NAME


def read_manifest(root: Path, package: str = PACKAGE) -> dict[str, Any] | None:
    """The manifest of a root built from ``package`` (default :data:`PACKAGE`), None if there is none (or it is not)."""
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("package") == package else None


def already_built(root: Path, package: str, wanted: dict[str, Any], force: bool, verbose: bool) -> bool:
    """Whether ``root`` holds a set built from ``package`` to keep (not ``force``); printed with the
    settings in ``wanted`` it was built with otherwise. A folder that is not such a set, and not
    empty, raises :class:`DataError`: it is never replaced."""
    if not root.exists():
        return False
    manifest = read_manifest(root, package)
    if manifest is None and (not root.is_dir() or any(root.iterdir())):
        raise DataError(f"{root}: exists and has no {MANIFEST} of {package}; not replacing it, choose another --out")
    if manifest is None or force:
        return False
    if verbose:
        print(f"{root}: already built (--force rebuilds it)")
        for key, value in wanted.items():
            if manifest.get(key) != value:
                print(f"note: built with {key}={manifest.get(key)}, not {value}: --force rebuilds it")
        print_summary(root)
    return True


def report_build(root: Path, converted: Converted, manifest: dict[str, Any], package: str, tested_version: str,
                 duplicate_of: str, start: float) -> None:
    """Print what a build left out (skipped files, duplicates: ``duplicate X: <duplicate_of> Y``,
    dropped classes), a version other than the tested one, the time since ``start`` and the table."""
    for rel, why in sorted(converted.skipped.items()):
        print(f"skipped {rel}: {why}")
    for rel, first in sorted(converted.duplicates.items()):
        print(f"duplicate {rel}: {duplicate_of} {first}")
    for label, n in sorted(manifest["dropped_classes"].items()):
        print(f"dropped class {label}: {n} distinct models < --min-per-class {manifest['min_per_class']}")
    if manifest["package_version"] not in (None, tested_version):
        print(f"note: {package} {manifest['package_version']} installed; the table was made for {tested_version}")
    print(f"built {root} in {time.perf_counter() - start:.1f} s")
    print_summary(root)


def build(
    out: Path | None = None, force: bool = False, min_per_class: int = MIN_PER_CLASS, verbose: bool = True
) -> Path:
    """Build the set (once) and return its root, the folder holding ``train/`` and ``test/``.

    Args:
        out: the root; default :func:`default_root`.
        force: rebuild (and atomically replace) a root this script built before.
        min_per_class: classes with fewer distinct, usable models are dropped.
        verbose: print what was left out and the summary table.
    """
    if min_per_class < MIN_TEST + 1:
        raise DataError(f"min_per_class must be at least {MIN_TEST + 1} ({MIN_TEST} test shapes and one to train)")
    root = Path(out).expanduser().absolute() if out is not None else default_root()
    if already_built(root, PACKAGE, {"layout_version": LAYOUT_VERSION, "min_per_class": min_per_class}, force, verbose):
        return root
    if not MODELS_DIR.is_dir() or not any(MODELS_DIR.rglob("*.ac")):
        raise DataError(
            f"{MODELS_DIR}: no AC3D models; install the Debian package {PACKAGE} (as root): {INSTALL_COMMAND}"
        )
    start = time.perf_counter()
    sources, excluded = select()
    converted = convert(sources)
    # Replace only what was there when we looked (ours with force, or an empty folder): a
    # root that a concurrent run finishes meanwhile is kept, as a reader may have it open.
    with atomic_directory(root, replace=root.exists()) as tmp:
        manifest = write_set(tmp, converted, excluded, min_per_class)
    if verbose:
        print(f"{len(sources) + len(excluded)} files mapped to classes, {len(excluded)} excluded by the table")
        report_build(root, converted, manifest, PACKAGE, TESTED_VERSION, "same geometry as", start)
    return root


def count_split(root: Path) -> dict[str, dict[str, int]]:
    """Class -> split -> number of ``.obj`` files under ``root``."""
    counts: dict[str, dict[str, int]] = {}
    for split in ("train", "test"):
        folder = root / split
        for class_dir in sorted(folder.iterdir()) if folder.is_dir() else []:
            if class_dir.is_dir():
                counts.setdefault(class_dir.name, {"train": 0, "test": 0})[split] = len(list(class_dir.glob("*.obj")))
    return counts


def print_summary(root: Path) -> None:
    """The table: class, #train, #test, and the totals."""
    counts = count_split(root)
    width = max([len("class"), *map(len, counts)])
    print(f"{'class':<{width}}  {'train':>5}  {'test':>5}")
    for label, c in sorted(counts.items()):
        print(f"{label:<{width}}  {c['train']:>5}  {c['test']:>5}")
    total_train = sum(c["train"] for c in counts.values())
    total_test = sum(c["test"] for c in counts.values())
    print(f"{'total':<{width}}  {total_train:>5}  {total_test:>5}   ({len(counts)} classes)")


def set_parser(doc: str | None, root: Path, min_per_class: int) -> argparse.ArgumentParser:
    """The command line of a labelled-set builder: ``--out`` (default ``root``), ``--force``, ``--min-per-class``."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help=f"root folder (default {root})")
    parser.add_argument("--force", action="store_true", help="rebuild even if the root is there")
    parser.add_argument(
        "--min-per-class", type=int, default=min_per_class, help="drop classes with fewer distinct models"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command line: build the set (or report the one there) and print the table."""
    args = set_parser(__doc__, default_root(), MIN_PER_CLASS).parse_args(argv)
    return exit_status(lambda: build(args.out, force=args.force, min_per_class=args.min_per_class))


if __name__ == "__main__":
    sys.exit(main())
