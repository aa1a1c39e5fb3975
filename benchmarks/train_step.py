"""Training-step throughput and where the time goes, on the current device.

Builds the model and the multi-crop recipe from a config exactly as ``pointdwc fit``
would and times each part of the step ``training_step`` runs:

    loader       (``--loader`` only) the next batch from the DataModule's training loader
                 (``data.num_workers`` workers) over random clouds, moved to the device:
                 the loader wait
    crops        multi-crop views on the device (DataModule.on_after_batch_transfer)
    grouping     FPS + kNN: once for the global crops (shared by teacher and student), once
                 for the local crops; ``fps`` is its farthest point sampling (in grouping)
    teacher_fwd  teacher on the global crops, no grad
    student_fwd  student on all crops + both losses
    student_bwd  backward
    optim        gradient clipping + AdamW step
    ema          teacher update

Without ``--loader`` the clouds are one random batch made on the device (no data loading;
``benchmarks/loader.py`` times the loaders alone). ``--flops`` counts the FLOPs of one step's
forwards and backward (:mod:`benchmarks.flops`) and prints the achieved TFLOP/s and, on a
GPU it knows (H100/H200: 989 dense bf16 TFLOP/s) or with ``--peak-tflops``, the model FLOP
utilisation. ``--profile`` prints torch.profiler's table of the timed steps (CPU, and CUDA
on a GPU), the way the work the step did twice was found. ``--ops`` runs one more
steady-state step (crops, grouping, forwards, backward, optimizer, EMA; untimed) under a
``TorchDispatchMode`` and prints its host-side figures (:mod:`benchmarks.op_count`): ATen ops
dispatched, host reads (``aten._local_scalar_dense`` + ``aten.is_nonzero``) and, on CUDA, the
kernel launches the profiler records over a second such step.

Every backbone is timed in turn (``--backbone``: PoinT-ViT, PointNet, DGCNN) with its
config (``--scale cpu``: ``configs/default.yaml``, ``pointnet.yaml``, ``dgcnn.yaml``;
``--scale gpu``: ``vit_small.yaml``, ``pointnet_gpu.yaml``, ``dgcnn_gpu.yaml``), or one
``--config`` as given. A summary table follows the per-backbone breakdowns.

Usage:
    python benchmarks/train_step.py                                  # the three CPU presets
    python benchmarks/train_step.py --backbone dgcnn --steps 3       # one of them
    python benchmarks/train_step.py --scale gpu --precision bf16     # the three paper-scale presets
    python benchmarks/train_step.py --config configs/vit_small.yaml --batch-size 128
    python benchmarks/train_step.py --config configs/vit_small.yaml --precision bf16 --loader --flops   # GPU report
    python benchmarks/train_step.py --backbone vit --steps 2 --profile                                # CPU profile
    python benchmarks/train_step.py --backbone vit --compile                                          # torch.compile
    python benchmarks/train_step.py --config configs/vit_small.yaml --batch-size 8 --steps 1 --ops    # ops/step, host reads
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))
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
    parser.add_argument("--loader", action="store_true", help="batches from the DataModule's loader (loader wait)")
    parser.add_argument("--workers", type=int, default=None, help="loader workers with --loader (default: the config's)")
    parser.add_argument("--flops", action="store_true",
                        help="count the step's FLOPs (on a warm-up step: needs --warmup >= 1); TFLOP/s and MFU")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the device's peak for MFU (default: 989 on H100/H200, the dense bf16 peak)")
    parser.add_argument("--profile", action="store_true", help="print torch.profiler's table of the timed steps")
    parser.add_argument("--compile", action="store_true", help="--model.compile true (compile time in the warm-up)")
    parser.add_argument("--ops", action="store_true",
                        help="count one extra steady-state step's ATen ops and host reads (and CUDA kernel launches)")
    args = parser.parse_args()
    configs = [args.config] if args.config else [str(ROOT / "configs" / CONFIGS[args.scale][b]) for b in args.backbone]
    summary = []
    for config in configs:
        summary.append(measure(config, args))
        print(flush=True)
    print("| config | backbone | params | batch | samples/s | ms/step | process CPU s/step | GFLOP/step |")
    print("|---|---|---|---|---|---|---|---|")
    for row in summary:
        print("| {config} | {backbone} | {params:.2f}M | {batch} | {samples_s:.1f} | {ms:.0f} | {cpu_s:.2f} | {gflops} |".format(**row))


def measure(config: str, args: argparse.Namespace) -> dict:
    """Time ``--steps`` steps of ``config`` after ``--warmup`` untimed ones; print the breakdown."""
    from backbones import grouping
    from benchmarks.flops import count_flops, default_peak_tflops, mfu
    from benchmarks.op_count import OpCounter, count_kernel_launches
    from benchmarks.random_clouds import RandomClouds, clouds_needed, random_clouds
    from benchmarks.step_timer import peak_memory
    from lightning_modules.commands.cli import run_cli
    from lightning_modules.pretrain.ema import ema_update

    accelerator = "gpu" if args.device.startswith("cuda") else "cpu"
    overrides = ["--config", config, "--trainer.logger", "false", "--trainer.accelerator", accelerator]
    if args.batch_size:
        overrides += ["--data.batch_size", str(args.batch_size)]
    if args.compile:
        overrides += ["--model.compile", "true"]
    if args.workers is not None:
        overrides += ["--data.num_workers", str(args.workers)]
    cli = run_cli(overrides, run=False)
    model, data = cli.model, cli.datamodule
    device = torch.device(args.device)
    model.to(device).train()
    batch = data.batch_size
    opt = model.build_optimizer()  # the module's own: groups and kernel (fused on CUDA and CPU)
    gen = torch.Generator(device=device).manual_seed(0)
    raw = torch.rand(batch, args.raw_points, 3, device=device) * 2 - 1
    if args.loader:
        data.dataset = RandomClouds(random_clouds(clouds_needed(batch, args.warmup, args.steps), args.raw_points))
        data.setup("fit")
        batches = _endless(data.train_dataloader())
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")

    times: dict[str, float] = defaultdict(float)
    timing = False

    counter = None  # the OpCounter of the --ops step, told each phase

    def timed(name: str, fn):
        if counter is not None:
            counter.phase = name
        _sync(device)
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        if timing:
            times[name] += time.perf_counter() - t0
        return out

    def fps_only(views: torch.Tensor) -> None:  # the FPS inside the grouping, timed on its own
        flat = views.flatten(0, 1)
        grouping.farthest_point_sample(flat, model.student.backbone.num_patches(flat.shape[1]))

    def forward_backward(views: dict, patches, local_patches) -> torch.Tensor:
        with autocast:
            teacher_out = timed("teacher_fwd", lambda: _no_grad(model.teacher, views["global"], patches))

            def student_and_losses():
                s = model._student_views(views["global"], views["local"], patches, local_patches)
                ld = model.distill_loss(s.logits, teacher_out.logits, model.distill_config.teacher_temp)
                lc = model.contrastive_loss(s.embedding, teacher_out.embedding)
                return model.total_loss(ld, lc)

            loss = timed("student_fwd", student_and_losses)
        timed("student_bwd", loss.backward)
        return loss

    flops = None
    cpu_start = 0.0
    profiler = _profiler(device) if args.profile else None
    warmup_start = time.perf_counter()
    warmup_seconds = 0.0
    def one_step(fps: bool = True) -> None:
        """One training step (``fps``: also time the FPS on its own, work outside the step)."""
        nonlocal flops
        if args.loader:
            points = timed("loader", lambda: next(batches)[0].to(device, non_blocking=True))
            views = timed("crops", lambda points=points: data.on_after_batch_transfer((points, None), 0))
        else:
            pts = raw
            if data.num_points is not None and data.num_points < raw.shape[1]:
                pts = raw[:, : data.num_points]
            views = timed("crops", lambda pts=pts: data.multicrop(pts, gen))
        patches = timed("grouping", lambda views=views: model.student.group(views["global"]))
        local_patches = timed("grouping", lambda views=views: model.student.group(views["local"]))
        if fps and hasattr(model.student.backbone, "num_patches"):
            for kind in ("global", "local"):
                timed("fps", lambda v=views[kind]: fps_only(v))
        if args.flops and flops is None and not timing:  # counted on a warm-up step, not timed
            flops = count_flops(lambda views=views: forward_backward(views, patches, local_patches))
        else:
            forward_backward(views, patches, local_patches)

        def optim_step():
            model.on_before_optimizer_step(opt)
            opt.step()
            opt.zero_grad(set_to_none=True)

        timed("optim", optim_step)
        timed("ema", lambda: ema_update(model.momentum_pairs, 0.996))

    for step in range(args.warmup + args.steps):
        timing = step >= args.warmup
        if step == args.warmup:
            warmup_seconds = time.perf_counter() - warmup_start
            cpu_start = time.process_time()
            if profiler is not None:
                profiler.__enter__()
        one_step()
    if profiler is not None:
        profiler.__exit__(None, None, None)
    host = None
    if args.ops:  # one more steady-state step, untimed, under the op counter (and the profiler on CUDA)
        timing = False
        with OpCounter() as counter:
            one_step(fps=False)
        host, counter = counter, None
        launches = count_kernel_launches(lambda: one_step(fps=False)) if device.type == "cuda" else None

    cpu_per_step = (time.process_time() - cpu_start) / args.steps
    step_time = sum(v for k, v in times.items() if k != "fps") / args.steps
    n_params = sum(p.numel() for p in model.student.backbone.parameters()) / 1e6
    crops = data.multicrop.config
    backbone = model.student.backbone
    print(f"device: {_device_name(device)}  precision: {args.precision}  threads: {torch.get_num_threads()}  "
          f"compile: {bool(args.compile)}  data: " + (f"loader ({data.num_workers} workers)" if args.loader else "one random batch on the device"))
    print(
        f"config: {Path(config).name}  backbone: {type(backbone).__name__}  params: {n_params:.2f}M  batch: {batch}  "
        f"crops: {crops.global_crops.num_crops}x{crops.global_crops.num_points} + "
        f"{crops.local_crops.num_crops}x{crops.local_crops.num_points}"
    )
    print(f"throughput: {batch / step_time:.1f} samples/s  ({step_time * 1000:.0f} ms/step); "
          f"{args.warmup} warm-up steps took {warmup_seconds:.1f} s" + (" (compilation included)" if args.compile else ""))
    # CPU seconds of this process per step (all threads): on a shared machine a steadier
    # measure of the work than wall time, which other processes stretch
    print(f"process CPU time: {cpu_per_step:.2f} s/step")
    names = (["loader"] if args.loader else []) + ["crops", "grouping", "fps", "teacher_fwd", "student_fwd", "student_bwd", "optim", "ema"]
    for name in names:
        ms = times[name] / args.steps * 1000
        note = "  (inside grouping)" if name == "fps" else ""
        print(f"  {name:<12} {ms:9.1f} ms  {100 * times[name] / args.steps / step_time:5.1f} %{note}")
    print(f"  peak memory  {peak_memory(device)}")
    if host is not None:
        line = (f"  host         {host.total} ATen ops/step ({host.views} views, {host.compute} that compute), "
                f"{host.host_reads} host reads/step")
        line += f", {launches} CUDA kernel launches/step" if launches is not None else " (kernel launches: CUDA only)"
        print(line)
        print("  ops by part  " + ", ".join(f"{name} {n}" for name, n in host.by_phase.items()))
        print("  reads by part " + (", ".join(f"{name} {n}" for name, n in host.reads_by_phase.items()) or "none"))
        print("  top ops      " + ", ".join(f"{name} {n}" for name, n in host.top(8)))
    gflops = "-"
    if flops is not None:
        peak = args.peak_tflops or default_peak_tflops(device)
        achieved = flops / step_time / 1e12
        gflops = f"{flops / 1e9:.3g}"
        line = f"  FLOPs        {flops / 1e9:.3g} GFLOP/step (counted, forwards + backward), {achieved:.3f} TFLOP/s"
        if peak:
            line += f", MFU {100 * mfu(flops, step_time, peak):.1f} % of {peak:g} TFLOP/s"
        print(line)
    if profiler is not None:
        sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
        print(profiler.key_averages().table(sort_by=sort, row_limit=25))
    return {
        "config": Path(config).name, "backbone": type(backbone).__name__, "params": n_params, "batch": batch,
        "samples_s": batch / step_time, "ms": step_time * 1000, "cpu_s": cpu_per_step, "gflops": gflops,
    }


def _endless(loader):
    """Batches of the loader, epoch after epoch (the clouds suffice for one: see ``clouds_needed``)."""
    while True:
        yield from loader


def _profiler(device: torch.device):
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    return profile(activities=activities)


@torch.no_grad()
def _no_grad(net, views, patches=None):
    return net(views, patches)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


if __name__ == "__main__":
    main()
