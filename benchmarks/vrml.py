"""A reader for the VRML 2.0 meshes of KiCad's 3D model library, and area-weighted surface sampling.

KiCad's ``.wrl`` files (written by kicad StepUp) are flat lists of ``Shape`` nodes; each
shape either only defines a material (``DEF PIN-01 Material {...}``) or holds one
``geometry IndexedFaceSet`` with its own ``coord Coordinate { point [x y z, ...] }`` and
``coordIndex [i, j, k, -1, ...]`` (in either order), reusing the materials by ``USE``. That
subset is what :func:`parse_vrml` reads: the faces of every ``IndexedFaceSet`` in the file,
polygons fan-triangulated, number blocks converted by numpy in one go (files reach 8 MB).

Anything else that places or shares geometry is refused with a :class:`DataError` naming it
(a scene graph node such as ``Transform``, ``Group`` or ``Switch``; coordinates shared by
``DEF``/``USE``), rather than read wrongly: in Debian's kicad-packages3d 6.0.10 that is 3 of
the 6,227 files. Materials, normals, colours, ``creaseAngle``, ``ccw`` and ``solid`` do not
change the surface and are ignored; comments (``#`` to the end of a line) are dropped first,
which is safe because the files hold no strings.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from datamodules.errors import DataError

HEADER = "#VRML V2.0"
"""How a VRML 2.0 file starts."""

_COMMENT = re.compile(r"#[^\n]*")
_UNSUPPORTED = re.compile(r"\b(Transform|Group|Switch|Inline|Billboard|Collision|LOD|Anchor|EXTERNPROTO|PROTO)\b")
_FACE_SET = re.compile(r"\bIndexedFaceSet\s*\{")
_BRACE = re.compile(r"[{}]")
_COORD_INDEX = re.compile(r"\bcoordIndex\s*\[([^\]]*)\]")
_COORD = re.compile(r"\bcoord\s+(\w+)")
_POINTS = re.compile(r"\bcoord\s+Coordinate\s*\{\s*point\s*\[([^\]]*)\]")


def _numbers(block: str, dtype: type, what: str) -> np.ndarray:
    """The numbers of a ``[...]`` block (separated by commas and/or white space) as a 1-D array."""
    try:
        return np.array(block.replace(",", " ").split(), dtype=dtype)
    except ValueError:
        raise DataError(f"{what} holds something that is not a number") from None


def _body(text: str, open_brace: int) -> str:
    """The text between the ``{`` at ``open_brace`` and its matching ``}``."""
    depth = 0
    for match in _BRACE.finditer(text, open_brace):
        depth += 1 if match.group() == "{" else -1
        if depth == 0:
            return text[open_brace + 1 : match.start()]
    raise DataError("an IndexedFaceSet is not closed (file truncated?)")


def fan_triangles(index: np.ndarray) -> np.ndarray:
    """Triangles (F, 3) of a ``coordIndex`` list: polygons ended by -1 (the last one may not be), each as a fan.

    A polygon ``p0 p1 ... pn`` gives ``(p0, p1, p2), (p0, p2, p3), ..., (p0, pn-1, pn)``; polygons
    with fewer than three corners give nothing.
    """
    index = np.asarray(index, dtype=np.int64)
    ends = np.flatnonzero(index < 0)
    starts = np.concatenate(([0], ends + 1))  # start of every polygon, one past the last -1 included
    polygon = np.cumsum(index < 0) - (index < 0)  # which polygon each entry belongs to (-1 to its own)
    corner = np.arange(len(index)) - starts[polygon]  # position within the polygon
    third = np.flatnonzero((index >= 0) & (corner >= 2))  # every corner from the third on closes a triangle
    return np.stack([index[starts[polygon[third]]], index[third - 1], index[third]], axis=1).reshape(-1, 3)


def _face_set(body: str) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) and triangles (F, 3) of one IndexedFaceSet's body."""
    kind = _COORD.search(body)
    if kind is None:
        raise DataError("an IndexedFaceSet has no coord")
    if kind.group(1) != "Coordinate":
        raise DataError(f"coordinates shared by DEF/USE (coord {kind.group(1)} ...) are not supported")
    points, index = _POINTS.search(body), _COORD_INDEX.search(body)
    if points is None or index is None:
        raise DataError("an IndexedFaceSet has no point list or no coordIndex")
    values = _numbers(points.group(1), np.float64, "a point list")
    if len(values) % 3:
        raise DataError(f"a point list holds {len(values)} numbers, not a multiple of 3")
    vertices = values.reshape(-1, 3)
    triangles = fan_triangles(_numbers(index.group(1), np.int64, "a coordIndex"))
    if triangles.size and (triangles.min() < 0 or triangles.max() >= len(vertices)):
        raise DataError(f"a coordIndex refers to vertex {triangles.max()} of {len(vertices)}")
    return vertices, triangles


def parse_vrml(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) float64 and triangles (F, 3) int64 of every IndexedFaceSet in a KiCad ``.wrl`` file.

    Raises a DataError naming the file for what it cannot read: no VRML 2.0 header, a scene
    graph node, shared coordinates, a malformed number block or an index out of range.
    """
    try:
        text = path.read_bytes().decode("latin-1")
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from None
    if not text.startswith(HEADER):
        raise DataError(f"{path}: not a VRML 2.0 file (starts with {text[:20]!r})")
    text = _COMMENT.sub("", text)
    node = _UNSUPPORTED.search(text)
    if node is not None:
        raise DataError(f"{path}: scene graph node {node.group(1)} is not supported (only flat Shape lists)")
    vertices: list[np.ndarray] = []
    faces: list[np.ndarray] = []
    offset = 0
    try:
        for match in _FACE_SET.finditer(text):
            local, triangles = _face_set(_body(text, match.end() - 1))
            vertices.append(local)
            faces.append(triangles + offset)
            offset += len(local)
    except DataError as err:
        raise DataError(f"{path}: {err}") from None
    if not faces:
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    return np.concatenate(vertices), np.concatenate(faces)


def triangle_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """The area of every triangle (F,)."""
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    return 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)


def sample_surface(vertices: np.ndarray, faces: np.ndarray, num_points: int, rng: np.random.Generator) -> np.ndarray:
    """``num_points`` points (float64) uniform on the surface: triangles drawn by area, then uniform within each."""
    areas = triangle_areas(vertices, faces)
    chosen = rng.choice(len(faces), size=num_points, p=areas / areas.sum())
    a, b, c = (vertices[faces[chosen, k]] for k in range(3))
    r1 = np.sqrt(rng.random((num_points, 1)))
    r2 = rng.random((num_points, 1))
    return (1.0 - r1) * a + r1 * (1.0 - r2) * b + r1 * r2 * c
