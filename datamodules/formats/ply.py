"""The vertices of a ``.ply`` file (ascii, binary little- or big-endian), read without trimesh.

A ``.ply`` holds a point cloud (a ``vertex`` element only) or a mesh (also a ``face`` element
with faces). :func:`read_ply_header` parses the header; :func:`read_ply_vertices` returns the
``x``, ``y``, ``z`` properties of every vertex, whatever their numeric type (``float``,
``double``, ``uchar``, ``int16``, ...). Elements stored before ``vertex`` are skipped when they
have a fixed size (no list properties). Every defect is one :class:`~datamodules.errors.DataError`
naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from datamodules.errors import DataError

PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
"""PLY's scalar type names and their numpy codes (byte order added per file)."""

ENDIAN = {"ascii": "<", "binary_little_endian": "<", "binary_big_endian": ">"}


@dataclass
class PlyElement:
    """One ``element`` of the header: its name, count and (property, type or ``list``) pairs."""

    name: str
    count: int
    properties: list[tuple[str, str]] = field(default_factory=list)

    @property
    def has_lists(self) -> bool:
        return any(kind == "list" for _, kind in self.properties)


@dataclass
class PlyHeader:
    """The parsed header: storage format, elements in file order, and where the body starts."""

    format: str
    elements: list[PlyElement]
    body_offset: int

    def element(self, name: str) -> PlyElement | None:
        return next((e for e in self.elements if e.name == name), None)

    @property
    def has_faces(self) -> bool:
        """Whether the file is a mesh: a ``face`` element with at least one face."""
        face = self.element("face")
        return face is not None and face.count > 0


def read_ply_header(path: Path, raw: bytes | None = None) -> PlyHeader:
    """Parse the header of ``path`` (or of its bytes ``raw``)."""
    try:
        if raw is None:
            with open(path, "rb") as f:
                raw = f.read(1 << 16)
    except OSError as err:
        raise DataError(f"{path}: unreadable ({err})") from None
    if not raw.startswith(b"ply"):
        raise DataError(f"{path}: not a .ply file (it does not start with 'ply')" if raw else f"{path}: empty file")
    end = raw.find(b"end_header")
    if end < 0:
        raise DataError(f"{path}: .ply header has no end_header (truncated, or a header over 64 KiB)")
    newline = raw.find(b"\n", end)
    if newline < 0:
        raise DataError(f"{path}: .ply ends right after its header")
    fmt = ""
    elements: list[PlyElement] = []
    try:
        for line in raw[:end].decode("ascii").splitlines()[1:]:
            words = line.split()
            if not words or words[0] in ("comment", "obj_info"):
                continue
            if words[0] == "format":
                fmt = words[1]
            elif words[0] == "element":
                elements.append(PlyElement(words[1], int(words[2])))
            elif words[0] == "property":
                if words[1] == "list":
                    elements[-1].properties.append((words[4], "list"))
                else:
                    elements[-1].properties.append((words[2], PLY_TYPES[words[1]]))
            else:
                raise ValueError(f"unknown header line {line!r}")
    except (ValueError, IndexError, KeyError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a valid .ply header ({type(err).__name__}: {err})") from None
    if fmt not in ENDIAN:
        raise DataError(f"{path}: .ply format {fmt or '(none)'!r}; expected one of {sorted(ENDIAN)}")
    return PlyHeader(fmt, elements, newline + 1)


def read_ply_vertices(path: Path) -> np.ndarray:
    """The (N, 3) float64 x, y, z of every vertex of ``path``."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: unreadable ({err})") from None
    header = read_ply_header(path, raw)
    vertex = header.element("vertex")
    if vertex is None:
        raise DataError(f"{path}: .ply has no vertex element")
    names = [name for name, _ in vertex.properties]
    missing = [axis for axis in "xyz" if axis not in names]
    if missing:
        raise DataError(f"{path}: .ply vertices have no property {missing[0]!r} (they have {' '.join(names)})")
    if vertex.has_lists:
        raise DataError(f"{path}: .ply vertices have list properties, which are not supported")
    before = header.elements[: header.elements.index(vertex)]
    try:
        if header.format == "ascii":
            table = _ascii_vertices(raw[header.body_offset :], before, vertex)
            columns = [table[:, names.index(axis)] for axis in "xyz"]
        else:
            columns = _binary_vertices(raw, header, before, vertex)
    except (ValueError, IndexError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: .ply data does not match its header ({type(err).__name__}: {err})") from None
    return np.stack(columns, axis=1).astype(np.float64)


def _ascii_vertices(body: bytes, before: list[PlyElement], vertex: PlyElement) -> np.ndarray:
    """One line per element instance: skip the elements before ``vertex``, parse its lines."""
    lines = body.decode("ascii").splitlines()
    skip = sum(e.count for e in before)
    rows = [line for line in lines[skip : skip + vertex.count]]
    if len(rows) < vertex.count:
        raise ValueError(f"{len(rows)} vertex lines, header says {vertex.count}")
    table = np.array([row.split() for row in rows], dtype=np.float64)
    if table.ndim != 2 or table.shape[1] != len(vertex.properties):
        raise ValueError(f"vertex lines have {table.shape[-1] if table.ndim == 2 else 'varying'} values, "
                         f"header declares {len(vertex.properties)} properties")
    return table


def _binary_vertices(raw: bytes, header: PlyHeader, before: list[PlyElement], vertex: PlyElement) -> list[np.ndarray]:
    """The vertex table as a structured array read in place, after skipping fixed-size elements."""
    order = ENDIAN[header.format]
    offset = header.body_offset
    for element in before:
        if element.has_lists:
            raise ValueError(f"element {element.name!r} before the vertices has list properties")
        offset += element.count * np.dtype([(n, order + t) for n, t in element.properties]).itemsize
    record = np.dtype([(name, order + kind) for name, kind in vertex.properties])
    if offset + vertex.count * record.itemsize > len(raw):
        raise ValueError(f"{len(raw) - offset} bytes of vertex data, header needs {vertex.count * record.itemsize}")
    table = np.frombuffer(raw, dtype=record, count=vertex.count, offset=offset)
    return [table[axis] for axis in "xyz"]
