"""A plain folder of point files and meshes, read one file at a time (``pointdwc embed``).

Users' own data rarely follows a data set's layout: a folder (searched recursively) of

* point files: ``.npy`` (an (N, 3+) array), ``.txt`` / ``.xyz`` / ``.pts`` / ``.csv`` (rows of
  x y z [more columns], comma- or space-separated, ``#`` comments, an optional count line
  or header of column names),
  ``.pcd`` (PCL's format: ascii, binary or binary_compressed) and point-cloud ``.ply``;
* meshes: ``.obj``, ``.off``, ``.stl``, ``.glb`` and ``.ply`` with faces, surface-sampled
  exactly as :class:`~datamodules.formats.mesh_folder.MeshFolder` does (same seed from the path
  relative to the root, same count, same normalisation), so a mesh folder gives the
  clouds the probe sees.

A file's class is its first folder below the root (after an optional ``train/`` or
``test/`` level, which becomes its split, as in MeshFolder's layouts); labels exist only
when every file has a class folder. Each cloud is centred and scaled into the unit sphere
(``normalize``) and then cut to ``num_points`` points: a point file's by a random subset
seeded with its relative path (``subsample="random"``, files are often ordered, e.g. by
scan line) or its first points (``"first"``, the data sets' convention); a mesh's by its
first sampled points (they are drawn independently). Every defect is one
:class:`~datamodules.errors.DataError` naming the file, so a caller can skip and count it.
Nothing is ever written into the folder.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from datamodules.dataset import existing_root, normalize_unit_sphere
from datamodules.errors import DataError
from datamodules.formats.mesh_folder import MESH_EXTENSIONS, SPLIT_NAMES, MeshFolder, _import_trimesh, _quiet

POINT_EXTENSIONS = (".npy", ".txt", ".xyz", ".pts", ".csv", ".pcd", ".ply")
"""Point-file types read (``.ply`` is a mesh when it has faces)."""

TEXT_EXTENSIONS = (".txt", ".xyz", ".pts", ".csv")

EXTENSIONS = tuple(sorted(set(POINT_EXTENSIONS) | set(MESH_EXTENSIONS)))
"""Every file type a point-file folder may hold (matched case-insensitively)."""

MESH_POINTS = 2048
"""Points sampled on a mesh before normalising (MeshFolder's default), so both give the same clouds."""


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


def list_point_files(root: str | os.PathLike) -> list[PointFile]:
    """Every supported, non-hidden file under ``root``, sorted by relative path."""
    base = existing_root(root)
    found = []
    for folder, dirs, files in os.walk(base):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for file in files:
            if file.startswith(".") or os.path.splitext(file)[1].lower() not in EXTENSIONS:
                continue
            path = Path(folder) / file
            parts = path.relative_to(base).parts[:-1]
            split = next((p for p in parts[:2] if p in SPLIT_NAMES), "")
            dirs_left = [p for i, p in enumerate(parts) if not (i < 2 and p == split and split)]
            found.append(PointFile(path, path.relative_to(base).as_posix(), split, dirs_left[0] if dirs_left else None))
    return sorted(found, key=lambda f: f.name)


def _seed(name: str, seed: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "little")


# ------------------------------------------------------------------------ readers
def read_npy(path: Path) -> np.ndarray:
    """The (N, 3+) array of a ``.npy`` file (no pickles)."""
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{path}: not a readable .npy array, truncated or corrupt? ({err})") from None


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


class PointFileFolder:
    """Reads the clouds of a folder of point files and meshes, one file at a time.

    Args:
        root: the folder (searched recursively).
        num_points: points per returned cloud.
        normalize: centre each cloud and scale it into the unit sphere.
        subsample: how a point file with more points is cut: ``random`` (seeded by its
            path) or ``first``.
        seed: seeds the subsets and the mesh sampling (MeshFolder's ``seed``).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        num_points: int = 1024,
        normalize: bool = True,
        subsample: Literal["random", "first"] = "random",
        seed: int = 0,
    ) -> None:
        if num_points < 1:
            raise DataError(f"num_points must be at least 1, got {num_points}")
        if subsample not in ("random", "first"):
            raise DataError(f"subsample must be 'random' or 'first', got {subsample!r}")
        self.root = existing_root(root)
        self.num_points = num_points
        self.normalize = normalize
        self.subsample = subsample
        self.seed = seed
        self.files = list_point_files(self.root)
        if not self.files:
            raise DataError(f"{self.root}: no point files or meshes ({' '.join(EXTENSIONS)}) in this folder")
        classes = [f.class_name for f in self.files]
        self.class_names: list[str] | None = sorted(set(classes)) if all(classes) else None  # type: ignore[arg-type]
        self._meshes = MeshFolder(str(self.root), num_points=max(MESH_POINTS, num_points), seed=seed)

    def __len__(self) -> int:
        return len(self.files)

    def label(self, index: int) -> int:
        """The class index of file ``index`` (-1 when the folder has no class folders)."""
        if self.class_names is None:
            return -1
        return self.class_names.index(self.files[index].class_name)  # type: ignore[arg-type]

    def describe(self) -> str:
        return f"point files at {self.root}"

    def read(self, index: int) -> np.ndarray:
        """The (num_points, 3) float32 cloud of file ``index``; DataError naming the file if it is bad."""
        item = self.files[index]
        try:
            return self._read(item)
        except DataError:
            raise
        except Exception as err:  # a parser's unexpected failure is still one bad file
            raise DataError(f"{item.path}: unreadable ({type(err).__name__}: {err})") from None

    def _read(self, item: PointFile) -> np.ndarray:
        path, ext = item.path, item.path.suffix.lower()
        if ext in MESH_EXTENSIONS and (ext != ".ply" or self._ply_has_faces(path)):
            cloud = self._meshes.read_item(path)  # MeshFolder's sampling: same clouds as its pack
            cloud = normalize_unit_sphere(cloud).astype(np.float32) if self.normalize else cloud
            return np.ascontiguousarray(cloud[: self.num_points], dtype=np.float32)
        if ext == ".npy":
            points = read_npy(path)
        elif ext == ".pcd":
            points = read_pcd(path)
        elif ext == ".ply":
            points = self._ply_vertices(path)
        else:
            points = read_text(path)
        points = _require_xyz(points, path).astype(np.float64)
        if points.shape[0] == 0:
            raise DataError(f"{path}: empty cloud")
        if not np.isfinite(points).all():
            raise DataError(f"{path}: NaN or Inf coordinates")
        if points.shape[0] < self.num_points:
            raise DataError(f"{path}: {points.shape[0]} points, fewer than the {self.num_points} requested "
                            "(lower --num_points)")
        if self.normalize:
            points = normalize_unit_sphere(points)
        if points.shape[0] > self.num_points:
            if self.subsample == "first":
                points = points[: self.num_points]
            else:
                rng = np.random.default_rng(_seed(item.name, self.seed))
                points = points[np.sort(rng.choice(points.shape[0], self.num_points, replace=False))]
        return np.ascontiguousarray(points, dtype=np.float32)

    @staticmethod
    def _ply_has_faces(path: Path) -> bool:
        """Whether a ``.ply`` header declares faces (a mesh) rather than vertices only (a cloud)."""
        try:
            with open(path, "rb") as f:
                head = f.read(1 << 16)
        except OSError as err:
            raise DataError(f"{path}: unreadable ({err})") from None
        header = head.split(b"end_header", 1)[0]
        match = re.search(rb"element\s+face\s+(\d+)", header)
        return bool(match and int(match.group(1)) > 0)

    @staticmethod
    def _ply_vertices(path: Path) -> np.ndarray:
        trimesh = _import_trimesh()
        with _quiet():
            try:
                loaded = trimesh.load(str(path))
            except Exception as err:
                raise DataError(f"{path}: not a readable .ply ({type(err).__name__}: {err})") from None
        vertices = getattr(loaded, "vertices", None)
        if vertices is None:
            raise DataError(f"{path}: .ply holds no vertices")
        return np.asarray(vertices, dtype=np.float64)
