"""pointdwc's training step against the field's, side by side: samples/s and their ratio.

The reference is ``../shared/bench/refstep.py`` (beside this repository; ``--reference``
for another path): Distillation with Contrast written the way the field's public code does
it (per-sample numpy crops in DataLoader workers, Point-MAE's Group/Encoder/Transformer,
DINO's multi-crop wrapper). It is run as it is, by its own ``main()``, in its own process;
only its network is sized to the config (its built-in sizes are the first CPU default's),
see :func:`reference_sizes`, and with ``--precision bf16`` its forward passes and losses run
under ``torch.autocast``, as DINO's training loop does with mixed precision.

pointdwc's side is the real training loop: a Lightning ``Trainer`` fitting the config's
model on the config's DataModule (its loader with ``data.num_workers`` workers, the
on-device multi-crop, the step, the EMA), with no logger, checkpoint, probe or progress
bar. Both sides read the same random clouds (uniform in [-1, 1]^3, 2,048 points, the
reference's own), at the config's sizes (batch, crops, points, network).

Runs alternate, A B A B ... (``--runs`` of each, 3 by default, each in a fresh process),
on the current device. Printed: what each side ran (device, threads, precision, loader
workers), every run's samples/s, the medians, the ratio of the medians and the spread of
the per-pair ratios; for pointdwc also the split of its step (loader wait, crops, the
rest) and its peak memory.

Usage:
    python benchmarks/compare_reference.py                                   # configs/default.yaml, CPU
    python benchmarks/compare_reference.py --runs 5 --steps 30
    python benchmarks/compare_reference.py --config configs/vit_small.yaml --precision bf16 --ref-workers 8   # GPU
    python benchmarks/compare_reference.py --config configs/vit_small.yaml --precision bf16 --compile --warmup 10
Last line: ``ratio X``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

REFERENCE = ROOT.parent / "shared" / "bench" / "refstep.py"
"""The reference step, beside the repository (``../shared/bench/refstep.py``)."""

RESULT_PREFIX = "samples/s "
"""Both sides print their throughput last, on a line starting with this."""


# ------------------------------------------------------------------ sizes
def config_overrides(configs: list[str], accelerator: str) -> list[str]:
    """LightningCLI arguments that build ``configs`` (stacked on the default) without a logger."""
    args: list[str] = []
    for config in configs:
        args += ["--config", config]
    return args + ["--trainer.logger", "false", "--trainer.accelerator", accelerator]


def reference_sizes(model, data) -> dict:
    """The sizes of a pointdwc model and DataModule, as the reference's arguments and network.

    Raises:
        ValueError: the backbone is not a PoinT-ViT (the reference is Point-MAE's transformer).
    """
    from backbones.point_vit import PointViT

    backbone = model.student.backbone
    if not isinstance(backbone, PointViT):
        raise ValueError(
            f"compare_reference: the reference is a Point-MAE transformer; the config's backbone is "
            f"{type(backbone).__module__}.{type(backbone).__qualname__}, not backbones.PointViT"
        )
    if backbone.mlp_ratio != 4.0:
        raise ValueError(f"compare_reference: the reference's blocks have mlp_ratio 4, the config's {backbone.mlp_ratio}")
    head = model.head_config
    crops = data.multicrop.config
    if crops.global_crops.num_crops != 2:
        raise ValueError("compare_reference: the reference makes exactly 2 global crops (data.crops.global_crops.num_crops)")
    return {
        "backbone": {
            "trans_dim": backbone.embed_dim, "depth": backbone.depth, "num_heads": backbone.num_heads,
            "group_size": backbone.group_size, "points_per_group": backbone.points_per_patch,
            "encoder_hidden": list(backbone.encoder_dims), "qkv_bias": backbone.qkv_bias,
        },
        "head": {
            "in_dim": backbone.out_dim, "out_dim": head.out_dim, "hidden_dim": head.hidden_dim,
            "bottleneck_dim": head.bottleneck_dim, "contrast_dim": head.contrast_dim, "nlayers": head.num_layers,
        },
        "data": {
            "batch_size": data.batch_size, "num_points": data.num_points,
            "global_points": crops.global_crops.num_points, "global_scale": list(crops.global_crops.scale),
            "local_crops": crops.local_crops.num_crops, "local_points": crops.local_crops.num_points,
            "local_scale": list(crops.local_crops.scale),
        },
    }


def reference_arguments(sizes: dict, steps: int, warmup: int, workers: int, device: str, raw_points: int) -> list[str]:
    """refstep.py's command-line arguments for these sizes."""
    d = sizes["data"]
    return [
        "--steps", str(steps), "--warmup", str(warmup), "--batch-size", str(d["batch_size"]),
        "--num-workers", str(workers), "--device", device, "--raw-points", str(raw_points),
        "--num-points", str(d["num_points"] or raw_points),
        "--global-points", str(d["global_points"]), "--global-scale", *map(str, d["global_scale"]),
        "--local-crops", str(d["local_crops"]), "--local-points", str(d["local_points"]),
        "--local-scale", *map(str, d["local_scale"]),
    ]


# ------------------------------------------------------------------ the reference's process
def run_reference(path: Path, sizes: dict, precision: str, device: str, ref_args: list[str]) -> None:
    """Run refstep.py's ``main()`` with its network sized to ``sizes`` (and autocast for bf16)."""
    import importlib.util

    import torch

    spec = importlib.util.spec_from_file_location("refstep", path)
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    backbone, head = sizes["backbone"], dict(sizes["head"])
    in_dim = head.pop("in_dim")

    class SizedBackbone(ref.PointTransformer):
        def __init__(self, **kwargs) -> None:
            super().__init__(**{**kwargs, **backbone, "encoder_hidden": tuple(backbone["encoder_hidden"])})

    class SizedHead(ref.DINOHead):
        def __init__(self, _in_dim: int, **kwargs) -> None:
            super().__init__(in_dim, **{**kwargs, **head})

    class SizedLoss(ref.DINOLoss):
        def __init__(self, _out_dim: int, *args, **kwargs) -> None:
            super().__init__(head["out_dim"], *args, **kwargs)

    ref.PointTransformer, ref.DINOHead, ref.DINOLoss = SizedBackbone, SizedHead, SizedLoss
    if precision == "bf16":
        device_type = torch.device(device).type

        def autocast(fn):
            def wrapped(*args, **kwargs):
                with torch.autocast(device_type, dtype=torch.bfloat16):
                    return fn(*args, **kwargs)

            return wrapped

        ref.MultiCropWrapper.forward = autocast(ref.MultiCropWrapper.forward)
        ref.DINOLoss.forward = autocast(ref.DINOLoss.forward)
        ref.info_nce_loss = autocast(ref.info_nce_loss)
    print(f"reference network: PointTransformer {backbone}, DINOHead {sizes['head']}", flush=True)
    sys.argv = [str(path), *ref_args]
    ref.main()


# ------------------------------------------------------------------ pointdwc's process
def run_pointdwc(configs: list[str], steps: int, warmup: int, device: str, precision: str, workers: int | None,
                 raw_points: int, compile_networks: bool = False) -> None:
    """Fit the config's model for ``warmup + steps`` steps on random clouds; print samples/s and the split."""
    import pytorch_lightning as pl
    import torch

    from benchmarks.random_clouds import RandomClouds, clouds_needed, random_clouds
    from benchmarks.step_timer import StepTimer, peak_memory
    from lightning_modules.commands.cli import run_cli

    accelerator = "gpu" if device.startswith("cuda") else "cpu"
    overrides = config_overrides(configs, accelerator)
    if workers is not None:
        overrides += ["--data.num_workers", str(workers)]
    if compile_networks:
        overrides += ["--model.compile", "true"]
    cli = run_cli(overrides, run=False)
    model, data = cli.model, cli.datamodule
    data.dataset = RandomClouds(random_clouds(clouds_needed(data.batch_size, warmup, steps), raw_points))
    timer = StepTimer(warmup, data)
    trainer = pl.Trainer(
        accelerator=accelerator, devices=1, precision="bf16-mixed" if precision == "bf16" else "32-true",
        max_steps=warmup + steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[timer], num_sanity_val_steps=0,
    )
    trainer.fit(model, data)
    split = timer.split()
    compiled = model.hparams.get("compile") or False
    print(f"pointdwc: device {_device_name(torch.device(device))}, threads {torch.get_num_threads()}, "
          f"precision {precision}, loader workers {data.num_workers}, compile {compiled}, batch {data.batch_size}")
    print("pointdwc step: " + ", ".join(f"{name} {100 * share:.1f} %" for name, share in split.items())
          + f"; peak memory {peak_memory(torch.device(device))}")
    print(f"{RESULT_PREFIX}{timer.samples_per_second(data.batch_size):.1f}", flush=True)


def _device_name(device) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "cpu"


# ------------------------------------------------------------------ the comparison
@dataclass
class Summary:
    """Medians, ratio of the medians and the spread of the per-pair ratios."""

    pointdwc: float
    reference: float
    ratio: float
    pair_ratios: list[float]

    @classmethod
    def of(cls, pointdwc: list[float], reference: list[float]) -> Summary:
        pairs = [a / b for a, b in zip(pointdwc, reference)]
        a, b = statistics.median(pointdwc), statistics.median(reference)
        return cls(a, b, a / b, pairs)


def parse_result(output: str) -> float:
    """The samples/s on the last ``samples/s X`` line of a side's output."""
    lines = [line for line in output.splitlines() if line.startswith(RESULT_PREFIX)]
    if not lines:
        raise RuntimeError(f"no '{RESULT_PREFIX.strip()}' line in the output:\n{output[-3000:]}")
    return float(lines[-1][len(RESULT_PREFIX):])


def _child(side: str, args: argparse.Namespace, extra: list[str]) -> tuple[float, str]:
    """Run one side in a fresh process; its samples/s and its output."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", side, *extra]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env, check=False)
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise RuntimeError(f"the {side} run failed (exit {proc.returncode}):\n{output[-3000:]}")
    return parse_result(proc.stdout), proc.stdout


def compare(args: argparse.Namespace) -> Summary:
    """Interleaved runs of both sides; prints every run and the summary."""
    import torch

    from lightning_modules.commands.cli import run_cli

    device = args.device
    cli = run_cli(config_overrides(args.config, "cpu"), run=False)  # sizes only: built on the CPU
    sizes = reference_sizes(cli.model, cli.datamodule)
    workers = args.workers if args.workers is not None else cli.datamodule.num_workers
    common = ["--config-json", json.dumps(args.config), "--steps", str(args.steps), "--warmup", str(args.warmup),
              "--device", device, "--precision", args.precision, "--raw-points", str(args.raw_points)]
    pointdwc_args = common + ["--workers", str(workers)] + (["--compile"] if args.compile else [])
    reference_args = common + ["--reference", str(args.reference), "--sizes", json.dumps(sizes),
                               "--ref-workers", str(args.ref_workers)]
    print(f"device: {device} ({_device_name(torch.device(device))}), threads {torch.get_num_threads()}, "
          f"precision {args.precision}; configs: {', '.join(args.config) or 'configs/default.yaml'}")
    print(f"sizes: {json.dumps(sizes)}")
    print(f"pointdwc: Lightning fit loop, {workers} loader workers, on-device crops; "
          f"reference: {args.reference} ({args.ref_workers} loader workers, per-sample numpy crops), "
          f"{args.warmup} warm-up + {args.steps} timed steps each, {args.runs} runs each, interleaved")
    if args.runs < 3:
        print(f"note: {args.runs} run(s) of each side; a measurement takes at least 3")
    ours, theirs = [], []
    for i in range(args.runs):
        for side, extra in (("pointdwc", pointdwc_args), ("reference", reference_args)):
            t0 = time.perf_counter()
            value, output = _child(side, args, extra)
            (ours if side == "pointdwc" else theirs).append(value)
            described = [line for line in output.splitlines() if line.startswith(("pointdwc", "device:", "reference"))]
            if i == 0:
                for line in described:
                    print(f"  [{side}] {line}")
            elif side == "pointdwc":
                print(f"  [{side}] {next((x for x in described if x.startswith('pointdwc step')), '')}")
            print(f"run {i + 1} {side:<9} {value:9.1f} samples/s  ({time.perf_counter() - t0:.0f} s with start-up)",
                  flush=True)
    summary = Summary.of(ours, theirs)
    print(f"pointdwc  samples/s per run: {', '.join(f'{v:.1f}' for v in ours)}; median {summary.pointdwc:.1f}")
    print(f"reference samples/s per run: {', '.join(f'{v:.1f}' for v in theirs)}; median {summary.reference:.1f}")
    pairs = summary.pair_ratios
    print(f"per-pair ratios: {', '.join(f'{r:.2f}' for r in pairs)} (median {statistics.median(pairs):.2f}, "
          f"min {min(pairs):.2f}, max {max(pairs):.2f})")
    print(f"ratio {summary.ratio:.2f}")
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", action="append", default=[],
                        help="pointdwc config(s) stacked on configs/default.yaml (repeatable)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each side, interleaved")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (worker start, compile)")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when there is one)")
    parser.add_argument("--precision", choices=["32", "bf16"], default=None,
                        help="both sides (default: bf16 on a GPU when the config trains in bf16-mixed, else 32)")
    parser.add_argument("--workers", type=int, default=None, help="pointdwc's loader workers (default: the config's)")
    parser.add_argument("--ref-workers", type=int, default=2, help="the reference's loader workers (its default: 2)")
    parser.add_argument("--raw-points", type=int, default=2048, help="points per stored random cloud")
    parser.add_argument("--reference", type=Path, default=REFERENCE, help="path of refstep.py")
    parser.add_argument("--compile", action="store_true",
                        help="pointdwc with --model.compile true (compilation in the warm-up steps)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds allowed per run")
    # one side, in its own process (used by the comparison itself)
    parser.add_argument("--child", choices=["pointdwc", "reference"], help=argparse.SUPPRESS)
    parser.add_argument("--config-json", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--sizes", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    import torch

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.child == "pointdwc":
        run_pointdwc(json.loads(args.config_json), args.steps, args.warmup, args.device, args.precision, args.workers,
                     args.raw_points, args.compile)
        return
    if args.child == "reference":
        ref_args = reference_arguments(json.loads(args.sizes), args.steps, args.warmup, args.ref_workers, args.device,
                                       args.raw_points)
        run_reference(args.reference, json.loads(args.sizes), args.precision, args.device, ref_args)
        return
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    if not args.reference.is_file():
        parser.error(f"--reference {args.reference}: no such file (the reference step lives in ../shared/bench/)")
    if args.precision is None:
        args.precision = "bf16" if args.device.startswith("cuda") and _trains_in_bf16(args.config) else "32"
    compare(args)


def _trains_in_bf16(configs: list[str]) -> bool:
    """Whether the last config that sets ``trainer.precision`` sets a bf16 one."""
    import yaml

    precision = "32-true"
    for config in configs:
        precision = ((yaml.safe_load(Path(config).read_text()) or {}).get("trainer") or {}).get("precision", precision)
    return "bf16" in str(precision)


if __name__ == "__main__":
    main()
