"""Pretraining corpora of real meshes: KiCad's 3D models, the synthetic train set, and the two mixed.

Source: Debian's ``kicad-packages3d`` (electronic parts: packages, connectors, switches,
capacitors, relays...), VRML 2.0 files ``/usr/share/kicad/3dmodels/<Library>.3dshapes/*.wrl``
(the ``.step`` twins are ignored). Never used for evaluation: the real-mesh transfer set is
FlightGear's (:mod:`benchmarks.real_meshes`). Three folders of ``.npy`` clouds, each a
:class:`datamodules.PointFolder` (class folders give labels, unused by pretraining)::

    <root>/kicad/<Library>/<model>.npy      2048 points sampled on each usable, distinct model
    <root>/synthetic/<class>/<i>.npy        the embedded synthetic train set (the default fit's data)
    <root>/mixed/{kicad,synthetic}/...      both, hard-linked (copied across file systems)
    <root>/<corpus>/manifest.json           source, version, counts, skipped files, duplicates

Each KiCad cloud is float32 (2048, 3), area-weighted uniform on the surface, in the model's
own units (PointFolder centres and scales it), seeded by the file's relative path, and turned
from KiCad's z-up frame (the board is the xy plane, parts stand along +z) into the project's
y-up one, ``(x, y, z) -> (x, z, -y)`` (:data:`Z_UP_TO_Y_UP`): the synthetic set, the real-mesh
evaluation sets and the crops' rotation about the up axis are all y-up. Layout 1 kept z up, so
its parts were rotated about a horizontal axis in pretraining. Files
:func:`benchmarks.vrml.parse_vrml` cannot read, empty or zero-area meshes and meshes of
fewer than 8 triangles are skipped with the reason. Near-duplicates (KiCad's parametric
variants) are dropped within each library, in sorted order: a model is kept unless its
cloud, centred and scaled into the unit sphere, is as close to a model kept before it as a
second sample of the same surface would be (:mod:`benchmarks.cloud_dedup`).

With kicad-packages3d 6.0.10-1: 6,227 files, 3 skipped (scene graph nodes),
2,749 near-duplicates dropped (94 of them byte copies), 3,475 clouds kept in 90 libraries;
the largest library keeps 224 (Capacitor_THT, 6 % of the corpus), the median 19. No single
library dominates, so ``--max-per-library`` is off by default; the eight pin header and socket
libraries together keep 1,007 (29 %), which ``--max-per-library 100`` would cut to 761
(2,998 clouds in all).

``<root>`` defaults to ``$POINTDWC_CACHE/pretrain_corpora``. Each corpus appears atomically
and a second run leaves it alone (``--force`` rebuilds all three).

Usage:
    python benchmarks/pretrain_corpus.py --workers 2       # build once, print the table and commands
    pointdwc fit --data.root ~/.cache/pointdwc/pretrain_corpora/kicad   # 20 % of each library held out
    pointdwc fit --data.dataset datamodules.PointFolder \
        --data.dataset.root ~/.cache/pointdwc/pretrain_corpora/kicad --data.dataset.test_fraction 0.001
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import track

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from benchmarks.cloud_dedup import DUPLICATE_RATIO, EXTENT_TOLERANCE, Deduplicator, sampling_noise
from benchmarks.debian import exit_status, package_version
from benchmarks.vrml import parse_vrml, sample_surface, triangle_areas
from datamodules.cache import atomic_directory, default_cache_dir
from datamodules.errors import DataError
from datamodules.formats.point_files import subsample_seed

PACKAGE = "kicad-packages3d"
MODELS_DIR = Path("/usr/share/kicad/3dmodels")
LIBRARY_SUFFIX = ".3dshapes"
MANIFEST = "manifest.json"
LAYOUT_VERSION = 2
"""Bump when the parser, the sampling, the dedup or the layout changes: written into each manifest.
2: KiCad clouds turned y-up (1 kept KiCad's z up)."""
Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
"""Rotation (det +1) taking KiCad's z-up coordinates to y-up: row i gives new axis i, ``(x, y, z) -> (x, z, -y)``."""
NUM_POINTS = 2048
SEED = 0
MIN_FACES = 8
"""Fewer triangles than this is not a shape."""
COUNTS = ("files", "skipped", "duplicates", "capped", "kept")
"""What happened to the KiCad files, per library and in total: every file is one of the last four."""


@dataclass
class Sampled:
    """What one ``.wrl`` file gave: a cloud, or the reason it was skipped."""

    rel: str
    """Path relative to the models folder: ``<Library>.3dshapes/<model>.wrl``."""
    cloud: np.ndarray | None = None
    triangles: int = 0
    sha256: str = ""
    noise: float = 0.0
    """Distance between the unit-sphere cloud and a second, differently seeded one of the same surface."""
    reason: str | None = None

    @property
    def library(self) -> str:
        """The KiCad library: the folder name without ``.3dshapes``."""
        return self.rel.split("/")[0].removesuffix(LIBRARY_SUFFIX)

    @property
    def out_rel(self) -> str:
        """``<Library>/<model>.npy``."""
        return f"{self.library}/{Path(self.rel).stem}.npy"


def list_models(models_dir: Path) -> list[str]:
    """Sorted relative paths of every ``<Library>.3dshapes/*.wrl`` file."""
    paths = models_dir.glob(f"*{LIBRARY_SUFFIX}/*.wrl")
    return sorted(p.relative_to(models_dir).as_posix() for p in paths if p.is_file())


def mesh_problem(vertices: np.ndarray, faces: np.ndarray) -> str | None:
    """Why a parsed mesh cannot be sampled as a shape (None if it can)."""
    if len(faces) == 0:
        return "empty: no faces"
    if len(faces) < MIN_FACES:
        return f"{len(faces)} triangles (fewer than {MIN_FACES})"
    if not np.isfinite(vertices).all():
        return "NaN or Inf vertex coordinates"
    area = float(triangle_areas(vertices, faces).sum())
    if not np.isfinite(area) or area <= 0:
        return f"degenerate: surface area {area}"
    return None


def sample_model(models_dir: Path, rel: str, num_points: int = NUM_POINTS, seed: int = SEED) -> Sampled:
    """Parse and sample one file: its float32 cloud seeded by ``rel``, or why it is skipped."""
    path = models_dir / rel
    try:
        vertices, faces = parse_vrml(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except DataError as err:
        return Sampled(rel, reason=str(err).removeprefix(f"{path}: "))
    except OSError as err:
        return Sampled(rel, reason=f"unreadable ({err.strerror or err})")
    problem = mesh_problem(vertices, faces)
    if problem is not None:
        return Sampled(rel, triangles=len(faces), sha256=digest, reason=problem)
    cloud = sample_surface(vertices, faces, num_points, np.random.default_rng(subsample_seed(rel, seed)))
    second = sample_surface(vertices, faces, num_points, np.random.default_rng(subsample_seed(rel, seed + 1)))
    upright = cloud @ Z_UP_TO_Y_UP.T  # after sampling: the draws (and so the dedup) are those of layout 1
    return Sampled(rel, upright.astype(np.float32), len(faces), digest, sampling_noise(cloud, second))


def _sample_star(args: tuple[Path, str]) -> Sampled:
    """:func:`sample_model` of one (models folder, relative path) job, for ``Pool.imap``."""
    return sample_model(*args)


def sample_all(models_dir: Path, rels: list[str], workers: int = 1, progress: bool = True) -> Iterator[Sampled]:
    """:func:`sample_model` of every file, in order, over ``workers`` processes."""
    jobs = [(models_dir, rel) for rel in rels]
    if workers <= 1:
        yield from track(map(_sample_star, jobs), total=len(jobs), description="kicad", disable=not progress)
        return
    with Pool(workers) as pool:
        results = pool.imap(_sample_star, jobs, chunksize=8)
        yield from track(results, total=len(jobs), description="kicad", disable=not progress)


def cap_library(names: list[str], cap: int | None, library: str) -> list[str]:
    """At most ``cap`` of a library's sorted names, a seeded choice (all of them when ``cap`` is None)."""
    if cap is None or len(names) <= cap:
        return names
    chosen = np.random.default_rng([SEED, zlib.crc32(library.encode())]).choice(len(names), cap, replace=False)
    return [names[i] for i in sorted(chosen.tolist())]


def write_kicad(folder: Path, models_dir: Path, workers: int, max_per_library: int | None,
                ratio: float = DUPLICATE_RATIO, progress: bool = True) -> dict[str, Any]:
    """Sample, check, deduplicate and (optionally) cap every model into ``folder``; return the manifest."""
    rels = list_models(models_dir)
    dedup = Deduplicator(ratio)
    skipped: dict[str, str] = {}
    duplicates: dict[str, dict[str, Any]] = {}
    distinct: dict[str, list[Sampled]] = {}
    for item in sample_all(models_dir, rels, workers, progress):
        if item.reason is not None:
            skipped[item.rel] = item.reason
            continue
        first = dedup.match(item.library, item.rel, item.sha256, item.cloud, item.noise)
        if first is not None:
            duplicates[item.rel] = {"kept": first[0], "distance_over_noise": round(first[1], 4)}
            continue
        distinct.setdefault(item.library, []).append(item)
    files: dict[str, dict[str, Any]] = {}
    per_library: dict[str, dict[str, int]] = {}
    for library, items in sorted(distinct.items()):
        chosen = set(cap_library([i.rel for i in items], max_per_library, library))
        (folder / library).mkdir(parents=True, exist_ok=True)
        for item in items:
            if item.rel in chosen:
                np.save(folder / item.out_rel, item.cloud)
                files[item.out_rel] = {"source": item.rel, "triangles": item.triangles, "sha256": item.sha256}
    for rel in rels:
        lib = Sampled(rel).library
        counts = per_library.setdefault(lib, dict.fromkeys(COUNTS, 0))
        counts["files"] += 1
        counts["skipped"] += rel in skipped
        counts["duplicates"] += rel in duplicates
    for out_rel in files:
        per_library[out_rel.split("/")[0]]["kept"] += 1
    for counts in per_library.values():
        counts["capped"] = counts["files"] - counts["skipped"] - counts["duplicates"] - counts["kept"]
    totals = {key: sum(c[key] for c in per_library.values()) for key in COUNTS}
    return {
        "corpus": "kicad", "package": PACKAGE, "package_version": package_version(PACKAGE), "models_dir": str(models_dir),
        "layout_version": LAYOUT_VERSION, "num_points": NUM_POINTS, "seed": SEED, "min_faces": MIN_FACES,
        "duplicate_ratio": ratio, "extent_tolerance": EXTENT_TOLERANCE, "max_per_library": max_per_library,
        "counts": totals, "per_library": per_library, "skipped": skipped, "duplicates": duplicates, "files": files,
    }


def write_synthetic(folder: Path, progress: bool = True) -> dict[str, Any]:
    """The embedded synthetic set's train split (``SyntheticShapes()``, the default fit's data) as ``.npy`` files."""
    from datamodules.synthetic.shape_set import SyntheticShapes

    dataset = SyntheticShapes()
    dataset.prepare(progress=progress)
    split = dataset.load("train")
    per_class: dict[str, int] = {}
    for i in track(range(len(split)), description="synthetic", disable=not progress):
        name = split.class_names[int(split.labels[i])]
        (folder / name).mkdir(exist_ok=True)
        np.save(folder / name / f"{i:05d}.npy", np.ascontiguousarray(split.points[i], dtype=np.float32))
        per_class[name] = per_class.get(name, 0) + 1
    return {"corpus": "synthetic", "source": dataset.describe(), "split": "train", "layout_version": LAYOUT_VERSION,
            "num_points": split.points_per_cloud, "counts": {"kept": len(split)}, "per_class": per_class}


def write_mixed(folder: Path, parts: dict[str, Path]) -> dict[str, Any]:
    """Hard links (copies where linking fails) of every ``.npy`` of ``parts`` under ``folder/<part>/``."""
    counts: dict[str, int] = {}
    how = "hard links"
    for name, source in parts.items():
        counts[name] = 0
        for path in sorted(source.rglob("*.npy")):
            target = folder / name / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(path, target)
            except OSError:
                shutil.copy2(path, target)
                how = "copies"
            counts[name] += 1
    return {"corpus": "mixed", "parts": {k: str(v) for k, v in parts.items()}, "files_are": how,
            "layout_version": LAYOUT_VERSION, "counts": {"kept": sum(counts.values()), **counts}}


# ---------------------------------------------------------------- build
def default_root() -> Path:
    """``$POINTDWC_CACHE/pretrain_corpora``."""
    return default_cache_dir() / "pretrain_corpora"


def read_manifest(folder: Path, corpus: str) -> dict[str, Any] | None:
    """The manifest of ``folder`` if this script built it as ``corpus``, else None."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("corpus") == corpus else None


def build_corpus(folder: Path, corpus: str, write: Any, force: bool = False, verbose: bool = True) -> tuple[Path, bool]:
    """Build one corpus atomically with ``write(tmp) -> manifest`` unless it is there; (folder, built now)."""
    if folder.exists():
        if read_manifest(folder, corpus) is None and (not folder.is_dir() or any(folder.iterdir())):
            raise DataError(f"{folder}: exists and has no {MANIFEST} of the {corpus} corpus; not replacing it")
        manifest = read_manifest(folder, corpus)
        if manifest is not None and not force:
            if manifest.get("layout_version") != LAYOUT_VERSION:
                raise DataError(f"{folder}: built with layout {manifest.get('layout_version')} of this script, "
                                f"not {LAYOUT_VERSION}; --force rebuilds it")
            if verbose:
                print(f"{folder}: already built (--force rebuilds it)")
            return folder, False
    with atomic_directory(folder, replace=folder.exists()) as tmp:
        manifest = write(tmp)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return folder, True


def build(root: Path | None = None, force: bool = False, workers: int = 1, max_per_library: int | None = None,
          models_dir: Path = MODELS_DIR, progress: bool = True, verbose: bool = True) -> dict[str, Path]:
    """Build the three corpora (each once) under ``root``; return corpus -> folder.

    Args:
        root: default :func:`default_root`.
        force: rebuild (and atomically replace) corpora this script built before.
        workers: processes parsing and sampling the ``.wrl`` files.
        max_per_library: keep at most this many distinct models per KiCad library (seeded choice).
        models_dir: the ``<Library>.3dshapes`` folders.
    """
    root = Path(root).expanduser().absolute() if root is not None else default_root()
    if not models_dir.is_dir() or not list_models(models_dir):
        raise DataError(f"{models_dir}: no <Library>{LIBRARY_SUFFIX}/*.wrl models; install the Debian package "
                        f"{PACKAGE} (as root): apt-get install -y {PACKAGE}")
    start = time.perf_counter()
    kicad, built = build_corpus(root / "kicad", "kicad", lambda tmp: write_kicad(
        tmp, models_dir, workers, max_per_library, progress=progress), force, verbose)
    if verbose and built:
        print(f"built {kicad} in {time.perf_counter() - start:.1f} s")
    synthetic, _ = build_corpus(root / "synthetic", "synthetic", lambda tmp: write_synthetic(tmp, progress),
                                force, verbose)
    mixed, _ = build_corpus(root / "mixed", "mixed", lambda tmp: write_mixed(
        tmp, {"kicad": kicad, "synthetic": synthetic}), force, verbose)
    if verbose:
        print(f"done in {time.perf_counter() - start:.1f} s")
        print_summary({"kicad": kicad, "synthetic": synthetic, "mixed": mixed})
    return {"kicad": kicad, "synthetic": synthetic, "mixed": mixed}


def fit_commands(folder: Path) -> list[str]:
    """Commands pretraining on ``folder``: the detected layout, and with (nearly) every file in training.

    ``--data.root`` reads the folder as a :class:`datamodules.PointFolder` with its defaults, which
    hold a seeded 20 % of each class folder out as the test split. Its ``test_fraction`` must lie
    strictly between 0 and 1 and a class of two or more files always gives one, so 0.001 is the
    closest to "all": one file per class folder (a few per folder in ``mixed``) stays out.
    """
    return [f"pointdwc fit --data.root {folder}",
            f"pointdwc fit --data.dataset datamodules.PointFolder --data.dataset.root {folder} "
            "--data.dataset.test_fraction 0.001"]


def print_summary(folders: dict[str, Path], top: int = 10) -> None:
    """The counts of each corpus, the KiCad skip reasons and largest libraries, and the fit commands."""
    manifests = {name: read_manifest(folder, name) or {} for name, folder in folders.items()}
    kicad = manifests.get("kicad", {})
    counts = kicad.get("counts", {})
    if counts:
        print("kicad: " + ", ".join(f"{key} {counts[key]}" for key in COUNTS))
        reasons: dict[str, int] = {}
        for why in kicad.get("skipped", {}).values():
            key = why.split(":")[0] if why.startswith(("scene graph", "empty", "degenerate")) else why
            reasons[key] = reasons.get(key, 0) + 1
        for why, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
            print(f"  skipped {n:>4}  {why}")
        libraries = sorted(kicad.get("per_library", {}).items(), key=lambda kv: -kv[1]["kept"])
        print(f"  {'library':<36} {'files':>5} {'dup':>5} {'kept':>5}")
        for library, c in libraries[:top]:
            print(f"  {library:<36} {c['files']:>5} {c['duplicates']:>5} {c['kept']:>5}")
    print(f"{'corpus':<10} {'folders':>7} {'clouds':>7}  folder")
    for name, folder in folders.items():
        kept = manifests[name].get("counts", {}).get("kept", 0)
        classes = sum(1 for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else 0
        print(f"{name:<10} {classes:>7} {kept:>7}  {folder}")
    for name, folder in folders.items():
        short, full = fit_commands(folder)
        print(f"# pretrain on {name} (80 % of each class folder; then all but ~1 per folder):\n{short}\n{full}")


def main(argv: list[str] | None = None) -> int:
    """Command line: build the corpora (or report the ones there), print the table and the fit commands."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help=f"root folder (default {default_root()})")
    parser.add_argument("--force", action="store_true", help="rebuild the corpora even if they are there")
    parser.add_argument("--workers", type=int, default=1, help="processes parsing the .wrl files")
    parser.add_argument("--max-per-library", type=int, default=None, help="distinct KiCad models kept per library")
    parser.add_argument("--models-dir", type=Path, default=MODELS_DIR, help="the <Library>.3dshapes folders")
    args = parser.parse_args(argv)
    if args.max_per_library is not None and args.max_per_library < 1:
        parser.error("--max-per-library must be at least 1")
    return exit_status(lambda: build(args.out, args.force, args.workers, args.max_per_library, args.models_dir))


if __name__ == "__main__":
    sys.exit(main())
