"""Streaming shards vs the in-memory path: loader samples/s and the memory of a ``fit``.

Also run as ``python benchmarks/loader.py --shards ...``. A ModelNet40-HDF5 fixture of
``--size`` train clouds (2048 points, ``tests/layouts.py``) is written to a temporary folder
and packed with ``pointdwc data pack``'s code (:func:`datamodules.streaming.pack.pack_shards`);
then, for each worker count of ``--workers`` (default 0 2 8):

    in-memory /s   samples/s of iterating the DataModule's train loader over the HDF5 set
                   (read whole into memory; workers copy rows)
    shards /s      the same over the shards (litdata StreamingDataLoader, reading chunks)
    ratio          shards / in-memory

Host side only (no crops, no device): the number a GPU's loader needs is the samples/s of the
step, e.g. >= 4,000/s; the smallest worker count whose shard rate reaches it is printed.

Memory (``--memory``, on by default): peak resident memory (``VmHWM``, Linux) of a child process
running a real ``fit`` (tiny PoinT-ViT, ``--fit-steps`` steps, 0 loader workers, so the figure
is one process) over the corpus and over the corpus duplicated 10 times, once through the
in-memory path and once through shards. Streaming should not grow with the corpus.

Timings on a shared or loaded machine are meaningless: the 1-minute load average is printed.
A tiny ``--size`` (a few batches per epoch) times mostly the start of each epoch (litdata's
loader starts its workers anew every epoch; the in-memory loader keeps them): dry runs only.

Usage:
    python benchmarks/shard_loader.py --size 64 --batches 4 --fit-steps 2    # dry run
    python benchmarks/shard_loader.py --size 20000 --batches 200              # the comparison
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from datamodules import ModelNet40H5, PointCloudDataModule  # noqa: E402
from datamodules.dataset import PointCloudSet, PointCloudSplit  # noqa: E402
from datamodules.streaming.pack import PackOptions, pack_shards  # noqa: E402
from tests import layouts  # noqa: E402

GPU_RATE = 4000
"""Samples/s a GPU's step consumes at paper scale (the target the worker count must reach)."""


class Repeated(PointCloudSet):
    """``base`` with every split repeated ``times`` times (held in memory: the in-memory path's cost)."""

    def __init__(self, base: PointCloudSet, times: int) -> None:
        self.base, self.times = base, times

    def load(self, split: str) -> PointCloudSplit:
        part = self.base.load(split)
        points = np.concatenate([np.asarray(part.points)] * self.times)
        return PointCloudSplit(points, np.tile(part.labels, self.times), part.class_names, f"{part.source} x{self.times}")

    def describe(self) -> str:
        return f"{self.base.describe()} x{self.times}"


def write_corpus(folder: Path, size: int, seed: int) -> ModelNet40H5:
    """A ModelNet40-HDF5 fixture with ``size`` train and ``size // 8`` test clouds of 2048 points."""
    rng = np.random.default_rng(seed)
    names = [f"class{i:02d}" for i in range(40)]
    splits = {s: layouts.blob_clouds(n, 2048, 40, rng) for s, n in (("train", size), ("test", max(size // 8, 1)))}
    return ModelNet40H5(str(layouts.write_modelnet_h5(folder / "modelnet40_ply_hdf5_2048", names, splits)))


def host_rate(data: PointCloudDataModule, batches: int) -> float:
    """Samples/s of the train loader after its first batch, cycling epochs as needed."""
    data.setup("fit")
    loader = data.train_dataloader()

    def stream():
        while True:
            yield from loader

    it = stream()
    next(it)  # worker start-up and first reads: untimed
    n, t0 = 0, time.perf_counter()
    for _ in range(batches):
        n += len(next(it)[0])
    rate = n / (time.perf_counter() - t0)
    it.close()
    data._train_loader = loader = None  # end persistent workers before the next loader forks its own
    gc.collect()
    return rate


def fit_peak_rss(root: str, steps: int, batch_size: int) -> float:
    """Peak resident MB of a child process running ``steps`` steps of a tiny fit on ``--data.root root``."""
    code = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
import pytorch_lightning as pl
from datamodules import PointCloudDataModule
from tests.helpers import tiny_module, tiny_data
data = tiny_data({root!r}, batch_size={batch_size})
pl.Trainer(accelerator="cpu", max_steps={steps}, logger=False, enable_checkpointing=False,
           enable_progress_bar=False, enable_model_summary=False).fit(tiny_module(), data)
# VmHWM: the peak of this process's own memory since exec (ru_maxrss would also count the pages of
# the parent it was forked from, which Linux carries across exec)
print("PEAK_KB", [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")][0])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("PEAK_KB")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"fit on {root} failed:\n{out.stderr[-2000:]}")
    return int(lines[-1].split()[1]) / 1024


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=4096, help="train clouds of the corpus (2048 points each)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2, 8], help="loader worker counts")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=100, help="timed batches per rate")
    parser.add_argument("--fit-steps", type=int, default=20, help="steps of each memory fit")
    parser.add_argument("--no-memory", dest="memory", action="store_false", help="skip the memory fits")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.size < args.batch_size:
        parser.error(f"--size {args.size} holds no full batch of --batch-size {args.batch_size}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    with tempfile.TemporaryDirectory(prefix="pointdwc-shard-bench-") as tmp:
        os.environ["POINTDWC_CACHE"] = str(Path(tmp) / "cache")
        corpus = write_corpus(Path(tmp), args.size, args.seed)
        t0 = time.perf_counter()
        pack_shards(corpus, Path(tmp) / "shards", PackOptions(workers=2, progress=False))
        pack_s = time.perf_counter() - t0
        if args.memory:  # packed before any loader starts workers (the pack forks this process)
            ten = Repeated(corpus, 10)
            pack_shards(ten, Path(tmp) / "shards10", PackOptions(workers=2, progress=False))
            ten_root = Path(tmp) / "h5x10"  # the in-memory path of the 10x corpus: one HDF5 file of it all
            part = {s: ten.load(s) for s in ("train", "test")}
            layouts.write_modelnet_h5(
                ten_root, part["train"].class_names, {s: (p.points, p.labels) for s, p in part.items()}
            )
            del part
        print(f"corpus: {args.size} train clouds x 2048 points (ModelNet40 HDF5 fixture); packed in {pack_s:.1f} s "
              f"(2 pack workers); batch {args.batch_size}; {args.batches} timed batches; load avg {load:.1f}")
        print(f"{'workers':>7} {'in-memory /s':>13} {'shards /s':>10} {'ratio':>6}")
        results = {}
        for workers in args.workers:
            memory = host_rate(PointCloudDataModule(dataset=corpus, batch_size=args.batch_size, num_workers=workers),
                               args.batches)
            shards = host_rate(PointCloudDataModule(root=str(Path(tmp) / "shards"), batch_size=args.batch_size,
                                                    num_workers=workers), args.batches)
            results[workers] = (memory, shards)
            print(f"{workers:>7} {memory:>13.0f} {shards:>10.0f} {shards / memory:>6.2f}", flush=True)
        enough = [w for w, (_, s) in sorted(results.items()) if s >= GPU_RATE]
        print(f"fewest shard-loader workers reaching {GPU_RATE} samples/s here: "
              f"{enough[0] if enough else f'none of {args.workers}'}")
        if args.memory:
            print(f"peak resident MB of a {args.fit_steps}-step fit (0 loader workers, tiny PoinT-ViT, batch 4):")
            print(f"{'corpus':>10} {'in-memory MB':>13} {'shards MB':>10}")
            for label, h5, shards in (("x1", corpus.root, Path(tmp) / "shards"), ("x10", ten_root, Path(tmp) / "shards10")):
                mem = fit_peak_rss(str(h5), args.fit_steps, 4)
                sh = fit_peak_rss(str(shards), args.fit_steps, 4)
                print(f"{label:>10} {mem:>13.0f} {sh:>10.0f}", flush=True)
        print(json.dumps({"size": args.size, "rates": {str(k): v for k, v in results.items()}}))


if __name__ == "__main__":
    main()
