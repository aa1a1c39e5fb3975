"""Part segmentation on the embedded synthetic part set: pretrained vs from scratch, under the honest protocol.

Each arm is ``pointdwc partseg fit`` with ``configs/partseg/default.yaml`` (the CPU PoinT-ViT of
``configs/default.yaml`` on the synthetic part set; ``--config`` files and arguments after ``--``
on top) for every seed: the network fits on the train split, the val split selects the
checkpoint (best ``val/inst_miou``), and the test split is evaluated once after training, for
the selected and for the last checkpoint. ``pretrained`` starts from ``--pretrained`` (a
``pointdwc export`` file or a pretraining checkpoint; with several files, seed ``i`` uses file
``i``, pairing pretraining and fine-tuning seeds), ``scratch`` from the seed's random
initialisation. The tables give Inst. and Cls. mIoU (%) per seed and mean ± std over seeds, the
pretrained − scratch difference, and the wall time of each run (fit + both tests) with
``--threads`` torch threads.

Results are written to ``--out`` (JSON) after every run and reused on the next call, so an
interrupted benchmark continues where it stopped (``--fresh`` starts over); ``--merge`` reads
the files of runs made side by side.

    python benchmarks/partseg.py --pretrained runs/pretrained/vit-default-seed0.pt --seeds 0 1 --threads 1
    python benchmarks/partseg.py --pretrained a.pt b.pt --seeds 0 1 -- --trainer.max_epochs 1   # toy check
    python benchmarks/partseg.py --table-only --out runs/partseg-bench/results.json
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.protocol_runs import pretrained_for, timed_fit  # noqa: E402
from lightning_modules.evaluation.protocol import RunResult, mean_std, results_table  # noqa: E402
from lightning_modules.commands.partseg import SPEC  # noqa: E402

ARMS = ("pretrained", "scratch")


def run_arm(arm: str, seed: int, ckpt: str | None, config: list[str], extra: list[str], workdir: Path) -> dict[str, Any]:
    """One ``pointdwc partseg fit`` of the honest protocol; its result, protocol line and wall time."""
    from lightning_modules.commands.partseg import run_partseg

    args = [*[x for c in config for x in ("--config", c)], "--trainer.default_root_dir", str(workdir / arm), *extra]
    return timed_fit(run_partseg, args, seed, ckpt)


def arm_runs(results: dict[str, Any], arm: str) -> list[dict[str, Any]]:
    """The stored runs of ``arm``, by seed."""
    found = [(int(key.split("/")[1]), value) for key, value in results.items() if key.startswith(f"{arm}/")]
    return [value for _, value in sorted(found)]


def summary_table(results: dict[str, Any]) -> str:
    """One row per arm and checkpoint: Inst./Cls. mIoU mean ± std over seeds, wall time; then the difference."""
    lines = ["| arm | checkpoint | seeds | Inst. mIoU | Cls. mIoU | wall s per run |", "|---|---|---|---|---|---|"]
    means: dict[tuple[str, str], dict[str, float]] = {}
    for arm in ARMS:
        entries = arm_runs(results, arm)
        if not entries:
            continue
        runs = [RunResult.from_dict(e["result"]) for e in entries]
        wall = mean_std([e["wall_seconds"] for e in entries], 0)
        for which in ("selected", "last"):
            scores = [getattr(r, which) for r in runs if getattr(r, which) is not None]
            if not scores:
                continue
            inst = [s.metrics["test/inst_miou"] for s in scores]
            cls = [s.metrics["test/cls_miou"] for s in scores]
            means[(arm, which)] = {"inst": sum(inst) / len(inst), "cls": sum(cls) / len(cls)}
            label = "selected (best val Inst. mIoU)" if which == "selected" else "last epoch"
            lines.append(f"| {arm} | {label} | {[r.seed for r in runs]} | {mean_std(inst)} | {mean_std(cls)} | {wall} |")
    for which in ("selected", "last"):
        if ("pretrained", which) in means and ("scratch", which) in means:
            a, b = means[("pretrained", which)], means[("scratch", which)]
            lines.append(f"| pretrained − scratch | {which} | | {a['inst'] - b['inst']:+.2f} | {a['cls'] - b['cls']:+.2f} | |")
    return "\n".join(lines)


def report(results: dict[str, Any]) -> str:
    """Every arm's protocol line and per-seed table, then the summary."""
    parts = []
    for arm in ARMS:
        entries = arm_runs(results, arm)
        if not entries:
            continue
        seed = entries[0]["result"]["seed"]
        parts.append(f"\n**{arm}** (the protocol line of its seed-{seed} run: {entries[0]['protocol']})")
        parts.append(results_table([RunResult.from_dict(e["result"]) for e in entries], SPEC))
    parts.append("\n**summary** (test split; pointdwc's honest protocol, data as in the protocol lines above; mean ± std over seeds)")
    parts.append(summary_table(results))
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pretrained", nargs="+", default=[], help="pointdwc export file(s) or pretraining checkpoint(s)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    parser.add_argument("--config", action="append", default=[], help="extra config files on top of the default")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "partseg-bench" / "results.json")
    parser.add_argument("--merge", type=Path, nargs="*", default=[], help="other results files (side-by-side runs) to read")
    parser.add_argument("--fresh", action="store_true", help="ignore earlier results in --out")
    parser.add_argument("--table-only", action="store_true", help="print the tables of the stored results and stop")
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if "pretrained" in args.arms and not args.pretrained and not args.table_only:
        parser.error("the pretrained arm needs --pretrained FILE (or --arms scratch)")
    if len(args.pretrained) > 1 and len(args.pretrained) != len(args.seeds):
        parser.error(f"{len(args.pretrained)} --pretrained files for {len(args.seeds)} seeds: give one, or one per seed")

    results: dict[str, Any] = {}
    if args.out.is_file() and not args.fresh:
        results.update(json.loads(args.out.read_text())["runs"])
    for other in args.merge:
        results.update(json.loads(other.read_text())["runs"])
    if not args.table_only:
        torch.set_num_threads(args.threads)
        warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
        workdir = args.out.parent / "runs"
        for index, seed in enumerate(args.seeds):
            for arm in args.arms:
                key = f"{arm}/{seed}"
                if key in results:
                    continue
                ckpt = pretrained_for(index, args.pretrained) if arm == "pretrained" else None
                results[key] = run_arm(arm, seed, ckpt, args.config, extra, workdir)
                results[key]["threads"] = args.threads
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps({"runs": results, "extra_args": extra}, indent=1, default=str) + "\n")
                print(f"{key}: {results[key]['wall_seconds']:.0f} s", flush=True)
    print(report(results))


if __name__ == "__main__":
    main()
