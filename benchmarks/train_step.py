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

Usage:
    python benchmarks/train_step.py                                  # CPU default preset
    python benchmarks/train_step.py --config configs/vit_small.yaml --batch-size 128
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    """Time ``--steps`` steps after ``--warmup`` untimed ones and print the breakdown."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"))
    parser.add_argument("--batch-size", type=int, default=None, help="override data.batch_size")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", choices=["32", "bf16"], default="32")
    parser.add_argument("--raw-points", type=int, default=2048, help="points per raw cloud fed to the crops")
    args = parser.parse_args()

    from backbones.grouping import group_patches
    from lightning_modules.cli import run_cli
    from lightning_modules.ema import ema_update

    accelerator = "gpu" if args.device.startswith("cuda") else "cpu"
    overrides = ["--config", args.config, "--trainer.logger", "false", "--trainer.accelerator", accelerator]
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
    vit = model.student.backbone
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

    for step in range(args.warmup + args.steps):
        timing = step >= args.warmup
        pts = raw
        if data.num_points is not None and data.num_points < raw.shape[1]:
            pts = raw[:, : data.num_points]
        views = timed("crops", lambda pts=pts: data.multicrop(pts, gen))
        if hasattr(vit, "num_patches"):
            for kind in ("global", "local"):
                v = views[kind].flatten(0, 1)
                if len(v):
                    timed("grouping", lambda v=v: group_patches(v, vit.num_patches(v.shape[1]), min(vit.group_size, v.shape[1])))
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

    step_time = sum(v for k, v in times.items() if k != "grouping") / args.steps
    n_params = sum(p.numel() for p in model.student.backbone.parameters()) / 1e6
    crops = data.multicrop.config
    print(f"device: {_device_name(device)}  precision: {args.precision}  threads: {torch.get_num_threads()}")
    print(
        f"config: {Path(args.config).name}  backbone params: {n_params:.1f}M  batch: {batch}  "
        f"crops: {crops.global_crops.num_crops}x{crops.global_crops.num_points} + "
        f"{crops.local_crops.num_crops}x{crops.local_crops.num_points}"
    )
    print(f"throughput: {batch / step_time:.1f} samples/s  ({step_time * 1000:.0f} ms/step)")
    for name in ("crops", "grouping", "teacher_fwd", "student_fwd", "student_bwd", "optim", "ema"):
        ms = times[name] / args.steps * 1000
        note = "  (inside the forward times)" if name == "grouping" else ""
        print(f"  {name:<12} {ms:9.1f} ms  {100 * times[name] / args.steps / step_time:5.1f} %{note}")


@torch.no_grad()
def _no_grad(net, views):
    return net(views)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


if __name__ == "__main__":
    main()
