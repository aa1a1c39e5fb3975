"""``pointdwc embed`` throughput on a folder of ``.npy`` files, on the current device.

Writes ``--count`` clouds of ``--points`` points as ``.npy`` files into a temporary folder
(the page cache is warm afterwards, as for a folder read twice), takes a checkpoint
(``--ckpt_path``, or the configured architecture at its seed's initialisation: the speed
does not depend on the weights) and runs the command's code path, then prints

    read     clouds/s reading, validating, normalising and subsampling the files alone
    forward  clouds/s of the backbone alone on the same clouds
    embed    clouds/s of the whole command path (pack the folder into the cache with
             ``--num-workers`` processes, then forward), what a user sees on a first embed

Usage:
    python benchmarks/embed.py                                   # CPU default preset, 1,000 files
    python benchmarks/embed.py --config configs/vit_small.yaml --device cuda --num-workers 4
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from datamodules.formats.point_folder import PointFolder  # noqa: E402
from lightning_modules.checkpoint_encoder import load_checkpoint_encoder  # noqa: E402
from lightning_modules.commands.embed import choose_device, embed_dataset  # noqa: E402
from lightning_modules.evaluation.probe import extract_features  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def initial_checkpoint(config: str | None, path: Path) -> Path:
    """A checkpoint of the configured model at its initialisation (weights only; no training)."""
    from lightning_modules.commands.cli import run_cli

    cli = run_cli([*(["--config", config] if config else []), "--trainer.logger", "false"], run=False)
    model = cli.model
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams), "global_step": 0}, path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt-path", default=None, help="checkpoint to embed with (default: initialised model)")
    parser.add_argument("--config", default=None, help="config on top of configs/default.yaml (no --ckpt-path)")
    parser.add_argument("--count", type=int, default=1000, help="number of .npy files")
    parser.add_argument("--points", type=int, default=2048, help="points per file")
    parser.add_argument("--num-points", type=int, default=1024, help="points fed to the backbone")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    device = choose_device(args.device)
    with tempfile.TemporaryDirectory(prefix="pointdwc-embed-bench-") as tmp:
        folder = Path(tmp) / "clouds"
        folder.mkdir()
        rng = np.random.default_rng(0)
        for i in range(args.count):
            np.save(folder / f"cloud_{i:05d}.npy", rng.normal(size=(args.points, 3)).astype(np.float32))
        ckpt = Path(args.ckpt_path) if args.ckpt_path else initial_checkpoint(args.config, Path(tmp) / "init.ckpt")
        encoder = load_checkpoint_encoder(ckpt)
        backbone = encoder.backbone.to(device)
        files = PointFolder(str(folder), args.num_points)
        paths = [path for split in files.splits for path, _ in files.items(split)]

        start = time.perf_counter()
        clouds = np.stack([files.read_item(path) for path in paths])
        read_s = time.perf_counter() - start

        extract_features(backbone, clouds[: args.batch_size], args.batch_size, device)  # warm-up
        _sync(device)
        start = time.perf_counter()
        extract_features(backbone, clouds, args.batch_size, device)
        _sync(device)
        forward_s = time.perf_counter() - start

        os.environ["POINTDWC_CACHE"] = str(Path(tmp) / "cache")  # a cold cache: the first embed packs
        files.read_workers = args.num_workers
        start = time.perf_counter()
        files.prepare(progress=False)
        embedding = embed_dataset(backbone, files, None, args.num_points, args.batch_size, device, quiet=True)
        _sync(device)
        embed_s = time.perf_counter() - start

    n = len(embedding.names)
    print(f"device {device}, torch threads {torch.get_num_threads()}, {args.count} .npy files of {args.points} points, "
          f"{args.num_points} points fed, batch {args.batch_size}, {args.num_workers} workers")
    print(f"backbone {encoder.class_path} {encoder.init_args}")
    print(f"read     {args.count / read_s:8.1f} clouds/s")
    print(f"forward  {args.count / forward_s:8.1f} clouds/s")
    print(f"embed    {n / embed_s:8.1f} clouds/s  ({n} clouds in {embed_s:.1f} s)")


if __name__ == "__main__":
    main()
