"""Reading users' own point files and meshes, one file at a time: what :class:`PointFolder` packs.

A folder (searched recursively) may hold

* point files: ``.npy`` (an (N, 3+) array), ``.npz`` (such an array under ``points``, ``xyz``,
  ``pos``, ``coords`` or ``data``, or its only array), ``.txt`` / ``.xyz`` / ``.pts`` / ``.csv``
  (rows of x y z [more columns], comma- or space-separated, ``#`` comments, an optional count
  line or header of column names), ``.pcd`` (PCL's format: ascii, binary or binary_compressed),
  point-cloud ``.ply`` (ascii or binary, :mod:`.ply`) and ``.las`` / ``.laz`` (laspy, the
  ``[las]`` extra; ``.laz`` also needs a LAZ backend such as lazrs);
* meshes: ``.obj``, ``.off``, ``.stl``, ``.glb`` and ``.ply`` with faces (trimesh).

:func:`scan_folder` lists them (and the files it cannot read, by extension) with what their
place says: a file's class is its first folder below the root, after an optional ``train/`` or
``test/`` level, which becomes its split (MeshFolder's layouts). :func:`read_points` returns a
point file's raw (N, 3) coordinates. Every defect is one :class:`~datamodules.errors.DataError`
naming the file, so a caller can skip and count it. Nothing is ever written into the folder.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datamodules.dataset import existing_root
from datamodules.errors import DataError
from datamodules.formats.mesh_folder import MESH_EXTENSIONS, SPLIT_NAMES
from datamodules.formats.ply import read_ply_header, read_ply_vertices

POINT_EXTENSIONS = (".npy", ".npz", ".txt", ".xyz", ".pts", ".csv", ".pcd", ".ply", ".las", ".laz")
"""Point-file types read (``.ply`` is a mesh when it has faces)."""

TEXT_EXTENSIONS = (".txt", ".xyz", ".pts", ".csv")

EXTENSIONS = tuple(sorted(set(POINT_EXTENSIONS) | set(MESH_EXTENSIONS)))
"""Every file type a point-file folder may hold (matched case-insensitively)."""

NPZ_KEYS = ("points", "xyz", "pos", "coords", "data")
"""Keys of an ``.npz`` archive tried in order for the cloud (else its only array)."""


@dataclass(frozen=True)
class PointFile:
    """One file of the folder and what its place in the folder says about it."""

    path: Path
    name: str
    """Path relative to the root, with ``/``."""
    split: str
    """``train`` or ``test`` from a split folder, else ``""``."""
    class_name: str | None
    """The first folder below the root (after the split level), if any."""

    @property
    def extension(self) -> str:
        return self.path.suffix.lower()


def scan_folder(root: str | os.PathLike) -> tuple[list[PointFile], list[PointFile]]:
    """Every non-hidden file under ``root``: (supported, of another type), each sorted by relative path."""
    base = existing_root(root)
    found: list[PointFile] = []
    other: list[PointFile] = []
    for folder, dirs, files in os.walk(base):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for file in files:
            if file.startswith("."):
                continue
            path = Path(folder) / file
            parts = path.relative_to(base).parts[:-1]
            split = next((p for p in parts[:2] if p in SPLIT_NAMES), "")
            dirs_left = [p for i, p in enumerate(parts) if not (i < 2 and p == split and split)]
            item = PointFile(path, path.relative_to(base).as_posix(), split, dirs_left[0] if dirs_left else None)
            (found if item.extension in EXTENSIONS else other).append(item)
    return sorted(found, key=lambda f: f.name), sorted(other, key=lambda f: f.name)


def is_mesh(path: Path) -> bool:
    """Whether ``path`` is read as a mesh: a mesh type, and for ``.ply`` a header declaring faces."""
    ext = path.suffix.lower()
    if ext != ".ply":
        return ext in MESH_EXTENSIONS
    return read_ply_header(path).has_faces


def read_points(path: Path) -> np.ndarray:
    """The raw (N, 3) float64 coordinates of a point file (extra columns dropped), validated."""
    ext = path.suffix.lower()
    if ext == ".npy":
        points = read_npy(path)
    elif ext == ".npz":
        points = read_npz(path)
    elif ext == ".pcd":
        points = read_pcd(path)
    elif ext == ".ply":
        points = read_ply_vertices(path)
    elif ext in (".las", ".laz"):
        points = read_las(path)
    elif ext in TEXT_EXTENSIONS:
        points = read_text(path)
    else:
        raise DataError(f"{path}: not a point file ({ext or 'no extension'}); expected one of {' '.join(POINT_EXTENSIONS)}")
    points = _require_xyz(points, path).astype(np.float64)
    if points.shape[0] == 0:
        raise DataError(f"{path}: empty cloud")
    if not np.isfinite(points).all():
        raise DataError(f"{path}: NaN or Inf coordinates")
    return points


def subsample_seed(name: str, seed: int) -> int:
    """The seed of a file's random subset: from ``seed`` and its path relative to the root."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "little")


# ------------------------------------------------------------------------ readers
def read_npy(path: Path) -> np.ndarray:
    """The (N, 3+) array of a ``.npy`` file (no pickles)."""
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{path}: not a readable .npy array, truncated or corrupt? ({err})") from None


def read_npz(path: Path) -> np.ndarray:
    """The cloud of an ``.npz`` archive: the first of :data:`NPZ_KEYS` present, else its only array."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.keys())
            key = next((k for k in NPZ_KEYS if k in keys), keys[0] if len(keys) == 1 else None)
            if key is None:
                raise DataError(f"{path}: .npz holds {keys or 'no arrays'}; name the cloud one of {', '.join(NPZ_KEYS)}")
            return archive[key]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"{path}: not a readable .npz archive, truncated or corrupt? ({err})") from None


def read_las(path: Path) -> np.ndarray:
    """The scaled x, y, z of a ``.las`` / ``.laz`` file (laspy; ``.laz`` needs a LAZ backend)."""
    try:
        import laspy
    except ImportError:
        raise DataError(f"{path}: reading .las/.laz needs laspy: pip install 'pointdwc[las]'") from None
    try:
        las = laspy.read(path)
    except laspy.errors.LaspyException as err:
        hint = " (.laz needs a LAZ backend: pip install 'laspy[lazrs]')" if "backend" in str(err).lower() else ""
        raise DataError(f"{path}: not a readable {path.suffix.lower()} file ({err}){hint}") from None
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{path}: not a readable {path.suffix.lower()} file ({type(err).__name__}: {err})") from None
    return np.stack([np.asarray(las.x), np.asarray(las.y), np.asarray(las.z)], axis=1).astype(np.float64)


def read_text(path: Path) -> np.ndarray:
    """Rows of numbers, comma- or whitespace-separated; ``#`` comments and a leading count line skipped."""
    try:
        text = path.read_text(errors="strict")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: unreadable text ({err})") from None
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        raise DataError(f"{path}: no points (empty file)")
    if len(lines) > 1 and len(re.split(r"[,\s]+", lines[0])) == 1 and len(re.split(r"[,\s]+", lines[1])) > 1:
        lines = lines[1:]  # a count line (.pts)
    if len(lines) > 1 and re.search(r"[a-df-zA-DF-Z]", lines[0]):
        lines = lines[1:]  # a header of column names (x,y,z); "e" may be an exponent
    delimiter = "," if "," in lines[0] else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.loadtxt(lines, delimiter=delimiter, dtype=np.float64, ndmin=2)
    except ValueError as err:
        raise DataError(f"{path}: rows must be numbers x y z [...] ({err})") from None


_PCD_TYPES = {("F", 4): "<f4", ("F", 8): "<f8", ("I", 1): "i1", ("I", 2): "<i2", ("I", 4): "<i4", ("I", 8): "<i8",
              ("U", 1): "u1", ("U", 2): "<u2", ("U", 4): "<u4", ("U", 8): "<u8"}


def lzf_decompress(data: bytes, expected: int) -> bytes:
    """Decompress LZF (as PCL's ``binary_compressed`` uses), checking the output size."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        ctrl = data[i]
        i += 1
        if ctrl < 32:  # literal run of ctrl + 1 bytes
            out += data[i : i + ctrl + 1]
            i += ctrl + 1
            continue
        length = ctrl >> 5
        if length == 7:
            length += data[i]
            i += 1
        ref = len(out) - ((ctrl & 0x1F) << 8) - data[i] - 1
        i += 1
        length += 2
        if ref < 0:
            raise ValueError("back reference before the start of the data")
        if ref + length <= len(out):
            out += out[ref : ref + length]
        else:  # overlapping copy: byte by byte
            for k in range(length):
                out.append(out[ref + k])
    if len(out) != expected:
        raise ValueError(f"decompressed to {len(out)} bytes, header says {expected}")
    return bytes(out)


def read_pcd(path: Path) -> np.ndarray:
    """x, y, z of a PCL ``.pcd`` file (DATA ascii, binary or binary_compressed)."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: unreadable ({err})") from None
    header: dict[str, list[str]] = {}
    offset = 0
    try:
        while "DATA" not in header:
            end = raw.index(b"\n", offset)
            line = raw[offset:end].decode("ascii").strip()
            offset = end + 1
            if line and not line.startswith("#"):
                key, *values = line.split()
                header[key.upper()] = values
        fields = header["FIELDS"]
        sizes = [int(s) for s in header["SIZE"]]
        types = [t.upper() for t in header["TYPE"]]
        counts = [int(c) for c in header.get("COUNT", ["1"] * len(fields))]
        points = int(header["POINTS"][0]) if "POINTS" in header else int(header["WIDTH"][0]) * int(header["HEIGHT"][0])
        kind = header["DATA"][0].lower()
        if not len(fields) == len(sizes) == len(types) == len(counts):
            raise ValueError("FIELDS, SIZE, TYPE and COUNT differ in length")
        dtypes = [np.dtype(_PCD_TYPES[(t, s)]) for t, s in zip(types, sizes, strict=True)]
    except (ValueError, KeyError, IndexError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a valid .pcd header ({type(err).__name__}: {err})") from None
    missing = [axis for axis in "xyz" if axis not in fields]
    if missing:
        raise DataError(f"{path}: .pcd has no field {missing[0]!r} (FIELDS {' '.join(fields)})")
    columns = {}
    try:
        if kind == "ascii":
            rows = np.loadtxt(raw[offset:].decode("ascii").splitlines(), dtype=np.float64, ndmin=2)
            starts = np.cumsum([0, *counts])
            columns = {name: rows[:points, starts[i]] for i, name in enumerate(fields)}
        elif kind == "binary":
            record = np.dtype([(f"f{i}", dt, (c,)) for i, (dt, c) in enumerate(zip(dtypes, counts, strict=True))])
            table = np.frombuffer(raw, dtype=record, count=points, offset=offset)
            columns = {name: table[f"f{i}"][:, 0] for i, name in enumerate(fields)}
        elif kind == "binary_compressed":
            compressed, size = np.frombuffer(raw, dtype="<u4", count=2, offset=offset)
            body = lzf_decompress(raw[offset + 8 : offset + 8 + int(compressed)], int(size))
            start = 0
            for name, dt, c in zip(fields, dtypes, counts, strict=True):  # one field after the other
                block = np.frombuffer(body, dtype=dt, count=points * c, offset=start).reshape(points, c)
                columns[name] = block[:, 0]
                start += points * c * dt.itemsize
        else:
            raise ValueError(f"unknown DATA {kind!r}")
    except (ValueError, IndexError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: .pcd data does not match its header ({type(err).__name__}: {err})") from None
    return np.stack([columns["x"], columns["y"], columns["z"]], axis=1).astype(np.float64)


def _require_xyz(array: np.ndarray, path: Path) -> np.ndarray:
    """The x, y, z columns of an (N, 3+) numeric array, or a DataError naming the shape."""
    if array.ndim != 2 or array.shape[1] < 3:
        raise DataError(f"{path}: points must have shape (N, 3) (extra columns are ignored), got {array.shape}")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise DataError(f"{path}: points must be numbers, got {array.dtype}")
    return array[:, :3]


