"""Data-loading throughput: samples/s each data set delivers to the training step.

Runs the real :class:`datamodules.PointCloudDataModule` (``prepare_data``, ``setup("fit")``,
``train_dataloader()``, ``on_after_batch_transfer``) without a Trainer and reports, per
data set:

    host       samples/s of iterating ``train_dataloader()`` alone (worker processes,
               memory-mapped or in-memory rows, collation, pinning when CUDA is present)
    to_step    samples/s of loader + ``.to(device, non_blocking=True)`` +
               ``on_after_batch_transfer`` (the multi-crop views), synchronised per batch
               on CUDA: what the training step receives
    prepare    seconds of the one-time work (``prepare_data`` + ``setup``: generating the
               synthetic set, packing a file-per-shape set into the cache, reading h5 files)
    first      seconds to the first batch (worker start-up), excluded from the rates
    pts        points per stored cloud (``data.num_points: null`` crops from all of them)
    payload    what a spawn/forkserver worker is sent for the training split: a
               memory-mapped split travels as its path (bytes), an in-memory one
               (h5 formats) as its whole array (MB); with the default fork start method
               workers inherit it without a copy

Target: >= 2000 samples/s per GPU for ``to_step`` with the default worker count, i.e. the
loader and the crops must never be what a paper-scale step (PoinT-ViT-S, batch 128)
waits on. On a CPU-only machine ``to_step`` is bound by the crops running on the CPU
(kNN sorts of every cloud, 10 crops per sample; slower still for 8192-point clouds), so it
is not representative of a GPU; ``host`` is the number that carries over. (On CPU only
8 ``to_step`` batches are timed by default, see ``--step-batches``; CPU timings also
suffer from any other job on the machine: the 1-minute load average is printed.)

By default, a fixture folder in each official layout (``tests/layouts.py`` writers, or
trimesh primitives for the mesh folder; realistic per-shape sizes, fewer shapes) is
written to a temporary directory and packed under a temporary ``$POINTDWC_CACHE``, so the
user's cache is untouched; fixture writing, packing and the first batch are not timed.
With ``--root`` the layout of a real data folder is detected and the usual cache is used
(a pack made here is reused by ``pointdwc fit``). Small sets are cycled over epochs (each
epoch reshuffled) until ``--batches`` batches have been timed; the train split must hold
at least one full batch (``drop_last``).

Usage:
    python benchmarks/loader.py                                  # every format, fixtures
    python benchmarks/loader.py --num-workers 4                  # as configs/vit_small.yaml
    python benchmarks/loader.py --dataset shapenet55 modelnet40_h5 --scale 0.5
    python benchmarks/loader.py --root ~/data/ShapeNet55 --batches 200
    python benchmarks/loader.py --config configs/default.yaml --batch-size 32
    python benchmarks/loader.py --shards --size 64 --batches 4    # shards vs in-memory (benchmarks/shard_loader.py)
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import inspect
import io
import math
import os
import pickle
import platform
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from datamodules import (
    CropSpec,
    MeshFolder,
    ModelNet40H5,
    ModelNetResampled,
    MultiCropConfig,
    PointCloudDataModule,
    PointCloudSet,
    ScanObjectNN,
    ShapeNet55,
    SyntheticShapes,
)
from datamodules.views.augment import AugmentConfig
from datamodules.pointcloud import CloudDataset
from tests import layouts

FORMATS = ("modelnet40_h5", "modelnet_resampled", "scanobjectnn", "shapenet55", "mesh_folder", "synthetic")
MESH_EXTENSIONS = (".obj", ".off", ".stl", ".ply", ".glb")


# ------------------------------------------------------------------ configuration
def crops_from_config(path: str) -> tuple[MultiCropConfig, int | None]:
    """``data.crops`` and ``data.num_points`` of a pointdwc config file."""
    data = (yaml.safe_load(Path(path).read_text()) or {}).get("data") or {}
    crops = data.get("crops") or {}
    kwargs: dict = {}
    for name in ("global_crops", "local_crops"):
        if name in crops:
            spec = dict(crops[name])
            spec["scale"] = tuple(spec["scale"])
            kwargs[name] = CropSpec(**spec)
    if "augment" in crops:
        aug = dict(crops["augment"])
        if "scale" in aug:
            aug["scale"] = tuple(aug["scale"])
        kwargs["augment"] = AugmentConfig(**aug)
    if "normalize" in crops:
        kwargs["normalize"] = bool(crops["normalize"])
    return MultiCropConfig(**kwargs), data.get("num_points")


# ------------------------------------------------------------------ fixtures
def _count(base: int, scale: float, minimum: int) -> int:
    return max(int(round(base * scale)), minimum)


def _write_meshes(root: Path, per_class: int, rng: np.random.Generator) -> None:
    """Trimesh primitives of random proportions, cycling through every supported extension."""
    import trimesh

    c = trimesh.creation

    def u(lo: float, hi: float) -> float:
        return float(rng.uniform(lo, hi))

    makers = {
        "box": lambda: c.box(extents=(u(0.5, 2), u(0.5, 2), u(0.5, 2))),
        "sphere": lambda: c.icosphere(subdivisions=3, radius=u(0.5, 1.5)),
        "cylinder": lambda: c.cylinder(radius=u(0.2, 1), height=u(0.5, 3), sections=48),
        "capsule": lambda: c.capsule(height=u(0.5, 2), radius=u(0.2, 0.8), count=[24, 24]),
        "cone": lambda: c.cone(radius=u(0.3, 1), height=u(0.5, 2), sections=48),
        "torus": lambda: c.torus(
            major_radius=u(0.8, 1.5), minor_radius=u(0.1, 0.4), major_sections=48, minor_sections=24
        ),
        "annulus": lambda: c.annulus(r_min=u(0.2, 0.5), r_max=u(0.6, 1.2), height=u(0.2, 1), sections=48),
        "uv_sphere": lambda: c.uv_sphere(radius=u(0.5, 1.5), count=[32, 32]),
    }
    for name, make in makers.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            make().export(str(folder / f"{name}_{i:04d}{MESH_EXTENSIONS[i % len(MESH_EXTENSIONS)]}"))


def write_fixture(name: str, root: Path, scale: float, batch_size: int, rng: np.random.Generator) -> PointCloudSet:
    """A fixture folder of ``name`` in its official layout, and the data set reading it.

    Shape counts are scaled by ``scale`` but every train split holds at least two batches.
    """
    need = 2 * batch_size
    if name == "modelnet40_h5":
        names = [f"class{i:02d}" for i in range(40)]
        n_train, n_test = _count(2048, scale, need), _count(128, scale, 1)
        splits = {s: layouts.blob_clouds(n, 2048, 40, rng) for s, n in (("train", n_train), ("test", n_test))}
        layouts.write_modelnet_h5(root, names, splits)
        return ModelNet40H5(str(root))
    if name == "modelnet_resampled":
        names = [f"class{i:02d}" for i in range(40)]
        per_class = {"train": _count(10, scale, math.ceil(need / 40)), "test": 1}
        layouts.write_modelnet_resampled(root, names, per_class, points=10000, rng=rng)
        return ModelNetResampled(str(root))  # 8192 points kept per shape, as released
    if name == "scanobjectnn":
        layouts.write_scanobjectnn(root, {"train": _count(1024, scale, need), "test": _count(128, scale, 1)}, rng)
        return ScanObjectNN(str(root), "pb_t50_rs")
    if name == "shapenet55":
        layouts.write_shapenet55(root, {"train": _count(1536, scale, need), "test": _count(128, scale, 1)}, rng)
        return ShapeNet55(str(root))
    if name == "mesh_folder":
        classes, test_fraction = 8, 0.2  # MeshFolder defaults: 20 % of each class in test
        per_class = max(_count(6, scale, 2), math.ceil(need / (classes * (1 - test_fraction))) + 1)
        _write_meshes(root, per_class, rng)
        return MeshFolder(str(root), num_points=2048)
    if name == "synthetic":
        return SyntheticShapes(num_train_per_class=_count(20, scale, math.ceil(need / 28)), num_test_per_class=2)
    raise ValueError(f"unknown data set {name!r}; choose from {FORMATS}")


@contextlib.contextmanager
def environment(name: str, value: str | None) -> Iterator[None]:
    """Set (or leave) an environment variable for the duration of the block."""
    old = os.environ.get(name)
    if value is not None:
        os.environ[name] = value
    try:
        yield
    finally:
        if value is not None:
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


# ------------------------------------------------------------------ measurement
@dataclass
class Row:
    name: str
    clouds: int = 0
    points: int = 0
    payload: str = ""
    fixture_s: float | None = None
    prepare_s: float = 0.0
    first_s: float = 0.0
    host: float = 0.0
    to_step: float = 0.0
    note: str = ""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def measure(
    row: Row,
    dataset: PointCloudSet,
    args: argparse.Namespace,
    crops: MultiCropConfig,
    num_points: int | None,
    quiet: bool,
) -> Row:
    """Fill ``row`` with the rates of ``dataset`` through the DataModule."""
    device = torch.device(args.device)
    data = PointCloudDataModule(
        dataset=dataset, batch_size=args.batch_size, num_workers=args.num_workers, num_points=num_points, crops=crops
    )
    out = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(out) if quiet else contextlib.nullcontext():
        data.prepare_data()  # generate / pack (progress bars hidden for fixtures)
        data.setup("fit")
    row.prepare_s = time.perf_counter() - t0
    split = data.splits["train"]
    row.clouds, row.points = len(split), split.points_per_cloud
    kind = "memmap" if isinstance(split.points, np.memmap) else "in-mem"
    row.payload = f"{kind} {_size(len(pickle.dumps(CloudDataset(split))))}"

    loader = data.train_dataloader()
    if args.mp_context and args.num_workers > 0:
        loader.multiprocessing_context = args.mp_context
    if len(loader) == 0:
        row.note = f"train split has {len(split)} clouds, fewer than one batch of {args.batch_size}"
        return row
    epoch = [0]
    loader.epoch_source = lambda: epoch[0]  # no trainer: reshuffle every epoch as training would

    def batches() -> Iterator:
        while True:
            yield from loader
            epoch[0] += 1

    def to_step(batch):
        points, labels = batch
        moved = (points.to(device, non_blocking=True), labels.to(device, non_blocking=True))
        views = data.on_after_batch_transfer(moved, 0)
        _sync(device)
        return views

    stream = batches()
    try:
        t0 = time.perf_counter()
        next(stream)  # worker start-up, first reads
        row.first_s = time.perf_counter() - t0

        n = 0
        t0 = time.perf_counter()
        for _ in range(args.batches):
            n += len(next(stream)[0])
        row.host = n / (time.perf_counter() - t0)

        views = to_step(next(stream))  # crop generator, CUDA kernels: untimed
        g, loc = crops.global_crops, crops.local_crops
        expected_g = (g.num_crops, args.batch_size, g.num_points, 3)
        if tuple(views["global"].shape) != expected_g or views["global"].device.type != device.type:
            got = f"{tuple(views['global'].shape)} on {views['global'].device}"
            raise RuntimeError(f"{row.name}: unexpected global crops {got}")
        if loc.num_crops and tuple(views["local"].shape) != (loc.num_crops, args.batch_size, loc.num_points, 3):
            raise RuntimeError(f"{row.name}: unexpected local crops {tuple(views['local'].shape)}")
        n = 0
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(args.step_batches):
            n += len(to_step(next(stream))["label"])
        row.to_step = n / (time.perf_counter() - t0)
        row.note = f"{epoch[0] + 1} epoch(s) of {len(loader)} batches"
    finally:
        stream.close()
        loader = data = None  # drop the last references: persistent workers end with the loader
        gc.collect()
    return row


# ------------------------------------------------------------------ report
def machine(args: argparse.Namespace) -> str:
    device = torch.device(args.device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads)"
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    load = f"  load avg before run: {args.load:.1f}" if args.load is not None else ""
    return (
        f"device: {name}  cpus: {usable} usable / {os.cpu_count()}  torch: {torch.__version__}  "
        f"python: {platform.python_version()}{load}"
    )


def print_table(rows: list[Row], args: argparse.Namespace, crops: MultiCropConfig, num_points: int | None) -> None:
    g, loc = crops.global_crops, crops.local_crops
    print()
    print(machine(args))
    start = args.mp_context or torch.multiprocessing.get_start_method(allow_none=True) or "default"
    workers = f"{args.num_workers} ({start})" if args.num_workers > 0 else "0 (in the main process)"
    print(
        f"num_workers: {workers}  batch: {args.batch_size}  config: {Path(args.config).name} "
        f"(crops {g.num_crops}x{g.num_points} + {loc.num_crops}x{loc.num_points}, num_points: {num_points})  "
        f"timed batches: host {args.batches}, to_step {args.step_batches}"
    )
    header = (
        f"{'dataset':<34} {'clouds':>7} {'pts':>6} {'payload':>16} {'fixture s':>9} {'prepare s':>9} "
        f"{'first s':>7} {'host /s':>9} {'to_step /s':>10}  note"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        fixture = f"{r.fixture_s:9.1f}" if r.fixture_s is not None else f"{'-':>9}"
        host = f"{r.host:9.0f}" if r.host else f"{'-':>9}"
        step = f"{r.to_step:10.0f}" if r.to_step else f"{'-':>10}"
        print(
            f"{r.name:<34} {r.clouds:>7} {r.points:>6} {r.payload:>16} {fixture} {r.prepare_s:9.1f} "
            f"{r.first_s:7.2f} {host} {step}  {r.note}"
        )
    if torch.device(args.device).type == "cpu":
        print(
            "cpu only: to_step is bound by the crops running on the CPU, "
            "not representative of a GPU (target >= 2000/s per GPU)"
        )


# ------------------------------------------------------------------ main
def main() -> None:
    if "--shards" in sys.argv[1:]:  # streaming shards vs in-memory: its own options (benchmarks/shard_loader.py)
        from benchmarks.shard_loader import main as shards_main

        return shards_main([a for a in sys.argv[1:] if a != "--shards"])
    default_workers = inspect.signature(PointCloudDataModule.__init__).parameters["num_workers"].default
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--dataset",
        nargs="+",
        choices=FORMATS,
        default=None,
        help="fixture formats to run (default: all, or none with --root)",
    )
    parser.add_argument("--root", action="append", default=[], help="a real data folder (layout detected); repeatable")
    parser.add_argument(
        "--config", default=str(ROOT / "configs" / "vit_small.yaml"), help="data.crops and data.num_points from here"
    )
    parser.add_argument("--num-points", type=int, default=None, help="override data.num_points")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--num-workers", type=int, default=default_workers, help=f"default: the DataModule's ({default_workers})"
    )
    parser.add_argument(
        "--mp-context",
        choices=["fork", "spawn", "forkserver"],
        default=None,
        help="worker start method (default: torch's)",
    )
    parser.add_argument("--batches", type=int, default=50, help="timed batches of host")
    parser.add_argument(
        "--step-batches", type=int, default=None, help="timed batches of to_step (default: --batches on CUDA, 8 on CPU)"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiplies the fixtures' shape counts (per-shape sizes stay)"
    )
    parser.add_argument("--seed", type=int, default=0, help="fixture contents")
    args = parser.parse_args()
    args.load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None  # other jobs skew CPU timings
    if args.step_batches is None:
        args.step_batches = args.batches if torch.device(args.device).type == "cuda" else min(args.batches, 8)
    if args.batches < 1 or args.step_batches < 1:
        parser.error("--batches and --step-batches must be >= 1")

    crops, num_points = crops_from_config(args.config)
    if args.num_points is not None:
        num_points = args.num_points
    formats = args.dataset if args.dataset is not None else ([] if args.root else list(FORMATS))
    rows: list[Row] = []

    for root in args.root:
        data = PointCloudDataModule(root=root)  # the DataModule's own layout detection
        name = data.dataset.describe()
        print(f"{name} at {root} ...", flush=True)
        rows.append(measure(Row(name), data.dataset, args, crops, num_points, quiet=False))

    if formats:
        rng = np.random.default_rng(args.seed)
        with (
            tempfile.TemporaryDirectory(prefix="pointdwc-loader-bench-") as tmp,
            environment("POINTDWC_CACHE", str(Path(tmp) / "cache")),
        ):
            for name in formats:
                print(f"{name}: writing fixture ...", flush=True)
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    dataset = write_fixture(name, Path(tmp) / name, args.scale, args.batch_size, rng)
                label = "scanobjectnn (pb_t50_rs)" if name == "scanobjectnn" else name
                row = Row(label, fixture_s=time.perf_counter() - t0)
                print(f"{name}: measuring ...", flush=True)
                rows.append(measure(row, dataset, args, crops, num_points, quiet=True))

    print_table(rows, args, crops, num_points)


if __name__ == "__main__":
    main()
