"""Training-step throughput and where the time goes, on the current device.

Builds the model and the multi-crop recipe from a config exactly as ``pointdwc fit``
would, feeds random clouds (so data loading is excluded: see the loader benchmark for
that) and times each part of a step:

    crops        multi-crop views on the device (DataModule.on_after_batch_transfer)
    grouping     FPS + kNN of all crops (also contained in the forward times below)
    teacher_fwd  teacher on the global crops, no grad
    student_fwd  student on all crops + both losses
    student_bwd  backward
    optim        gradient clipping + AdamW step
    ema          teacher update

Every backbone is timed in turn (``--backbone``: PoinT-ViT, PointNet, DGCNN) with its
config (``--scale cpu``: ``configs/default.yaml``, ``pointnet.yaml``, ``dgcnn.yaml``;
``--scale gpu``: ``vit_small.yaml``, ``pointnet_gpu.yaml``, ``dgcnn_gpu.yaml``), or one
``--config`` as given. A summary table follows the per-backbone breakdowns.

Usage:
    python benchmarks/train_step.py                                  # the three CPU presets
    python benchmarks/train_step.py --backbone dgcnn --steps 3       # one of them
    python benchmarks/train_step.py --scale gpu --precision bf16     # the three paper-scale presets
    python benchmarks/train_step.py --config configs/vit_small.yaml --batch-size 128
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {
    "cpu": {"vit": "default.yaml", "pointnet": "pointnet.yaml", "dgcnn": "dgcnn.yaml"},
    "gpu": {"vit": "vit_small.yaml", "pointnet": "pointnet_gpu.yaml", "dgcnn": "dgcnn_gpu.yaml"},
}
"""The config of each backbone at each scale (in ``configs/``, stacked on ``default.yaml``)."""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    """Time each backbone's config (or ``--config``) and print the breakdowns and a summary."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", nargs="+", choices=list(CONFIGS["cpu"]), default=list(CONFIGS["cpu"]))
    parser.add_argument("--scale", choices=list(CONFIGS), default="cpu", help="which preset of each backbone")
    parser.add_argument("--config", default=None, help="time this one config instead of the backbones' presets")
    parser.add_argument("--batch-size", type=int, default=None, help="override data.batch_size")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", choices=["32", "bf16"], default="32")
    parser.add_argument("--raw-points", type=int, default=2048, help="points per raw cloud fed to the crops")
    args = parser.parse_args()
    configs = [args.config] if args.config else [str(ROOT / "configs" / CONFIGS[args.scale][b]) for b in args.backbone]
    summary = []
    for config in configs:
        summary.append(measure(config, args))
        print(flush=True)
    print("| config | backbone | params | batch | samples/s | ms/step | process CPU s/step |")
    print("|---|---|---|---|---|---|---|")
    for row in summary:
        print("| {config} | {backbone} | {params:.2f}M | {batch} | {samples_s:.1f} | {ms:.0f} | {cpu_s:.2f} |".format(**row))


def measure(config: str, args: argparse.Namespace) -> dict:
    """Time ``--steps`` steps of ``config`` after ``--warmup`` untimed ones; print the breakdown."""
    from backbones.grouping import group_patches
    from lightning_modules.cli import run_cli
    from lightning_modules.ema import ema_update

    accelerator = "gpu" if args.device.startswith("cuda") else "cpu"
    overrides = ["--config", config, "--trainer.logger", "false", "--trainer.accelerator", accelerator]
    if args.batch_size:
        overrides += ["--data.batch_size", str(args.batch_size)]
    cli = run_cli(overrides, run=False)
    model, data = cli.model, cli.datamodule
    device = torch.device(args.device)
    model.to(device)
    batch = data.batch_size
    opt = torch.optim.AdamW([p for p in model.student.parameters() if p.requires_grad], lr=1e-4)
    gen = torch.Generator(device=device).manual_seed(0)
    raw = torch.rand(batch, args.raw_points, 3, device=device) * 2 - 1
    backbone = model.student.backbone
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")

    times: dict[str, float] = defaultdict(float)

    def timed(name: str, fn):
        _sync(device)
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        if timing:
            times[name] += time.perf_counter() - t0
        return out

    cpu_start = 0.0
    for step in range(args.warmup + args.steps):
        timing = step >= args.warmup
        if step == args.warmup:
            cpu_start = time.process_time()
        pts = raw
        if data.num_points is not None and data.num_points < raw.shape[1]:
            pts = raw[:, : data.num_points]
        views = timed("crops", lambda pts=pts: data.multicrop(pts, gen))
        if hasattr(backbone, "num_patches"):
            for kind in ("global", "local"):
                v = views[kind].flatten(0, 1)
                if len(v):
                    timed("grouping", lambda v=v: group_patches(v, backbone.num_patches(v.shape[1]), min(backbone.group_size, v.shape[1])))
        with autocast:
            teacher_out = timed("teacher_fwd", lambda views=views: _no_grad(model.teacher, views["global"]))

            def student_and_losses(views=views, teacher_out=teacher_out):
                s = model._student_views(views["global"], views["local"])
                ld = model.distill_loss(s.logits, teacher_out.logits, model.distill_config.teacher_temp)
                lc = model.contrastive_loss(s.embedding, teacher_out.embedding)
                return ld + model.contrast_config.weight * lc

            loss = timed("student_fwd", student_and_losses)
        timed("student_bwd", loss.backward)

        def optim_step():
            model.on_before_optimizer_step(opt)
            opt.step()
            opt.zero_grad(set_to_none=True)

        timed("optim", optim_step)
        timed("ema", lambda: ema_update(model.momentum_pairs, 0.996))

    cpu_per_step = (time.process_time() - cpu_start) / args.steps
    step_time = sum(v for k, v in times.items() if k != "grouping") / args.steps
    n_params = sum(p.numel() for p in model.student.backbone.parameters()) / 1e6
    crops = data.multicrop.config
    print(f"device: {_device_name(device)}  precision: {args.precision}  threads: {torch.get_num_threads()}")
    print(
        f"config: {Path(config).name}  backbone: {type(backbone).__name__}  params: {n_params:.2f}M  batch: {batch}  "
        f"crops: {crops.global_crops.num_crops}x{crops.global_crops.num_points} + "
        f"{crops.local_crops.num_crops}x{crops.local_crops.num_points}"
    )
    print(f"throughput: {batch / step_time:.1f} samples/s  ({step_time * 1000:.0f} ms/step)")
    # CPU seconds of this process per step (all threads): on a shared machine a steadier
    # measure of the work than wall time, which other processes stretch
    print(f"process CPU time: {cpu_per_step:.2f} s/step")
    for name in ("crops", "grouping", "teacher_fwd", "student_fwd", "student_bwd", "optim", "ema"):
        ms = times[name] / args.steps * 1000
        note = "  (inside the forward times)" if name == "grouping" else ""
        print(f"  {name:<12} {ms:9.1f} ms  {100 * times[name] / args.steps / step_time:5.1f} %{note}")
    peak = _peak_memory(device)
    if peak:
        print(f"  peak memory  {peak}")
    return {
        "config": Path(config).name, "backbone": type(backbone).__name__, "params": n_params, "batch": batch,
        "samples_s": batch / step_time, "ms": step_time * 1000, "cpu_s": cpu_per_step,
    }


@torch.no_grad()
def _no_grad(net, views):
    return net(views)


def _peak_memory(device: torch.device) -> str:
    """Peak memory of the run so far: the device's allocator on GPU, the process's RSS on CPU."""
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB (allocated)"
    try:
        import resource

        return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB (process max RSS, all configs so far)"
    except ImportError:  # not on every platform
        return ""


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


if __name__ == "__main__":
    main()
