"""A reader for 0 A.D.'s binary PMD meshes (``*.dae.cached.pmd``), positions and triangles only.

Layout (little-endian), as 0 A.D.'s ``ModelDef.cpp`` writes it and as every mesh of
``0ad-data`` 0.0.26 has it (all 4,010 are version 4; each file's data size matches its length
and its prop points end exactly at the end of the file)::

    char[4]  magic "PSMD"
    u32      version (1..4)
    u32      data size: the bytes after this field
    u32      numVertices
    u32      numTexCoords              (version >= 4; one UV set before)
    vertex   [numVertices]:  f32 position[3], f32 normal[3], f32 uv[2 * numTexCoords],
                             u8 blend bones[4], f32 blend weights[4]
    u32      numFaces
    u16      [numFaces][3] vertex indices
    u32      numBones, then [numBones] f32 translation[3], f32 rotation[4]
    u32      numPropPoints (version >= 2), then per prop point:
             u32 name length, name, f32 translation[3], f32 rotation[4], u8 bone

Bones and prop points are walked (so a truncated file is caught) but not returned. Version 3
stored prop points relative to the bind pose; that does not change the layout. Anything
malformed raises a :class:`~datamodules.errors.DataError` naming the file (or zip member).
"""

from __future__ import annotations

import struct

import numpy as np

from datamodules.errors import DataError

MAGIC = b"PSMD"
VERSIONS = (1, 2, 3, 4)
"""The PMD versions this reader knows (0 A.D. writes 4; older ones load in the engine too)."""
_HEADER = struct.Struct("<4sII")
_BLEND_BYTES = 4 + 4 * 4
"""Per vertex after the UVs: four u8 bone indices and four f32 weights."""
_BONE_BYTES = 7 * 4
"""A bone's rest pose: f32 translation[3] and rotation quaternion[4]."""


class _Cursor:
    """Reads fixed-size fields off a buffer, naming the file when it runs out."""

    def __init__(self, data: bytes, name: str) -> None:
        self.data = data
        self.name = name
        self.offset = 0

    def take(self, size: int, what: str) -> memoryview:
        """The next ``size`` bytes; DataError if the file ends first."""
        end = self.offset + size
        if size < 0 or end > len(self.data):
            raise DataError(
                f"{self.name}: not a valid PMD file: truncated in {what} "
                f"(needs {size} bytes at offset {self.offset}, file has {len(self.data)})"
            )
        view = memoryview(self.data)[self.offset : end]
        self.offset = end
        return view

    def u32(self, what: str) -> int:
        """The next little-endian unsigned 32-bit integer."""
        return int(struct.unpack("<I", self.take(4, what))[0])


def read_pmd(data: bytes, name: str = "<pmd>") -> tuple[np.ndarray, np.ndarray]:
    """Vertex positions (V, 3) float64 and triangles (F, 3) int64 of a PMD file's bytes.

    Args:
        data: the whole file.
        name: the file or zip member, for error messages.

    Raises:
        DataError: bad magic, unknown version, a data size that disagrees with the length,
            truncation, or a face index outside the vertices.
    """
    if len(data) < _HEADER.size:
        raise DataError(f"{name}: not a valid PMD file: {len(data)} bytes, shorter than the {_HEADER.size}-byte header")
    magic, version, size = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise DataError(f"{name}: not a valid PMD file: magic {magic!r}, expected {MAGIC!r}")
    if version not in VERSIONS:
        raise DataError(f"{name}: unknown PMD version {version} (known: {', '.join(map(str, VERSIONS))})")
    if size != len(data) - _HEADER.size:
        raise DataError(
            f"{name}: not a valid PMD file: header says {size} data bytes, file has {len(data) - _HEADER.size}"
        )
    cursor = _Cursor(data, name)
    cursor.offset = _HEADER.size
    num_vertices = cursor.u32("the vertex count")
    num_uv_sets = cursor.u32("the UV set count") if version >= 4 else 1
    stride = 4 * (3 + 3 + 2 * num_uv_sets) + _BLEND_BYTES
    block = np.frombuffer(cursor.take(num_vertices * stride, "the vertices"), dtype=np.uint8)
    positions = block.reshape(num_vertices, stride)[:, :12].copy().view("<f4").reshape(num_vertices, 3)
    num_faces = cursor.u32("the face count")
    faces = np.frombuffer(cursor.take(num_faces * 6, "the faces"), dtype="<u2").reshape(num_faces, 3)
    if num_faces and int(faces.max()) >= num_vertices:
        raise DataError(
            f"{name}: not a valid PMD file: face index {int(faces.max())} outside the {num_vertices} vertices"
        )
    num_bones = cursor.u32("the bone count")
    cursor.take(num_bones * _BONE_BYTES, "the bones")
    if version >= 2:
        for _ in range(cursor.u32("the prop point count")):
            cursor.take(cursor.u32("a prop point name length"), "a prop point name")
            cursor.take(_BONE_BYTES + 1, "a prop point")
    return positions.astype(np.float64), faces.astype(np.int64)
