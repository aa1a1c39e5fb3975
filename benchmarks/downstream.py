"""Downstream classification under the honest protocol: fine-tuning and few-shot, pretrained vs from scratch.

Tasks (``--tasks``, default all):

* ``finetune_synthetic`` / ``finetune_real``: ``pointdwc finetune fit`` (``configs/finetune/default.yaml``)
  from the ``--pretrained`` file(s) and from scratch, one run per seed; each run's checkpoint is
  selected on a validation split carved from the train split and the test split is evaluated
  once for the selected and the last checkpoint. With several ``--pretrained`` files, seed ``i``
  fine-tunes file ``i`` (pretraining and fine-tuning seeds paired); with one, every seed uses it.
* ``fewshot_frozen_synthetic`` / ``fewshot_finetune_synthetic``: ``pointdwc fewshot`` 5-way 10-shot and
  10-way 20-shot on ``--folds`` (10) folds drawn from the synthetic set (20 test shapes per class),
  frozen features (linear SVM + kNN) or fine-tuning per fold (scored at the last epoch); the
  pretrained network (the first ``--pretrained`` file) and the random-init baseline.
* ``fewshot_frozen_real`` / ``fewshot_finetune_real``: the same on the real-mesh set
  (``benchmarks/real_meshes.py``), as far as its class counts allow: 5-way 10-shot with 4 test
  shapes per class (its smallest test classes have 4); 10-way is impossible with 9 classes.

Every table names the protocol that produced it and the wall time of each run on this machine
(``--threads`` torch threads). Results are written to ``--out`` (JSON) after every run and reused
on the next call, so an interrupted benchmark continues, and parts run side by side merge with
``--merge``. Arguments after ``--`` go to every fine-tuning run (e.g. ``-- --trainer.max_epochs 1``
for a toy check); ``--fewshot-set KEY=VALUE`` to every per-fold fine-tuning.

    python benchmarks/downstream.py --threads 1 --tasks finetune_synthetic --seeds 0 1 \\
        --pretrained runs/pretrained/vit-default-seed0.pt runs/pretrained/vit-default-seed1.pt
    python benchmarks/downstream.py --threads 1 --tasks fewshot_frozen_synthetic fewshot_frozen_real
    python benchmarks/downstream.py --table-only --merge a.json b.json
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.protocol_runs import pretrained_for, timed_fit  # noqa: E402
from lightning_modules.evaluation.protocol import (  # noqa: E402
    RunResult,
    mean_std,
    results_table,
)
from lightning_modules.commands.finetune import SPEC  # noqa: E402

TASKS = (
    "finetune_synthetic",
    "finetune_real",
    "fewshot_frozen_synthetic",
    "fewshot_finetune_synthetic",
    "fewshot_frozen_real",
    "fewshot_finetune_real",
)
SETTINGS = {"synthetic": [(5, 10, 20), (10, 20, 20)], "real": [(5, 10, 4)]}
"""(way, shot, test shapes per class) run on each set."""


MESH_SETS = {"real": "benchmarks.real_meshes", "zeroad": "benchmarks.real_meshes_0ad"}
"""Real-mesh set name -> the module whose ``build()`` makes it under the cache (FlightGear; 0 A.D.)."""


def real_dataset_arg(name: str = "real") -> str:
    """The real-mesh set ``name`` of :data:`MESH_SETS` (built once under the cache) as a data-set argument."""
    root = importlib.import_module(MESH_SETS[name]).build()
    return json.dumps({"class_path": "datamodules.MeshFolder", "init_args": {"root": str(root), "num_points": 2048}})


def dataset_args(name: str) -> list[str]:
    """CLI arguments selecting the set ``name`` (the synthetic set is the default)."""
    return [] if name == "synthetic" else ["--data.dataset", real_dataset_arg(name)]


# ---------------------------------------------------------------------- fine-tuning
def finetune_run(set_name: str, seed: int, ckpt: str | None, extra: list[str], workdir: Path) -> dict[str, Any]:
    """One fine-tuning run of the honest protocol; its result and wall time."""
    from lightning_modules.commands.finetune import run_finetune

    return timed_fit(run_finetune, ["--trainer.default_root_dir", str(workdir), *dataset_args(set_name), *extra],
                     seed, ckpt)


def finetune_table(results: dict[str, Any], set_name: str) -> str:
    """Per initialisation: the runs' table (seeds, selected and last) and the wall time per run."""
    lines = []
    for arm in ("pretrained", "scratch"):
        entries = [v for k, v in sorted(results.items()) if k.startswith(f"finetune_{set_name}/{arm}/")]
        if not entries:
            continue
        runs = [RunResult.from_dict(e["result"]) for e in entries]
        lines.append(f"\n**{set_name}, {arm}** (the first run's protocol line; seeds {[r.seed for r in runs]}):")
        lines.append(entries[0]["protocol"])
        lines.append(results_table(runs, SPEC))
        lines.append(f"wall per run (fit + both tests): {mean_std([e['wall_seconds'] for e in entries], 0)} s")
    return "\n".join(lines)


# ---------------------------------------------------------------------- few-shot
def fewshot_run(set_name: str, protocol: str, way: int, shot: int, query: int, folds: int, seed: int,
                ckpt: str | None, sets: list[str], workdir: Path) -> dict[str, Any]:
    """``pointdwc fewshot`` for one setting; what its results.json holds, plus the wall time."""
    from lightning_modules.commands.fewshot import build_parser, run

    argv = ["--way", str(way), "--shot", str(shot), "--query", str(query), "--folds", str(folds), "--seed", str(seed),
            "--protocol", protocol, "--out", str(workdir), *dataset_args(set_name)]
    if ckpt is not None:
        argv += ["--ckpt_path", ckpt, "--baseline", "true"]
    for item in sets:
        argv += ["--set", item]
    parser = build_parser()
    args = parser.instantiate_classes(parser.parse_args(argv))
    start = time.perf_counter()
    payload = run(args)
    payload["total_wall_seconds"] = time.perf_counter() - start
    return payload


def fewshot_table(results: dict[str, Any]) -> str:
    """One row per set, setting, protocol and network: mean ± std over folds and wall time."""
    head = ("| set | setting | protocol | network | SVM / fine-tuned acc | SVM / fine-tuned mAcc | kNN acc | folds | "
            "wall s |\n|---|---|---|---|---|---|---|---|---|")
    rows, protocols = [], {}
    for key, payload in sorted(results.items()):
        if not key.startswith("fewshot_"):
            continue
        _, protocol, set_name, setting = key.split("/")[0].split("_", 2) + key.split("/")[1:2]
        protocols[protocol] = payload["protocol"]
        for net, folds in payload["per_fold"].items():
            acc_key, macc_key = ("svm_acc", "svm_macc") if protocol == "frozen" else ("acc", "macc")
            knn = mean_std([f["knn_acc"] for f in folds], 1) if protocol == "frozen" else "—"
            wall = payload["networks"][net]["wall_seconds"]
            rows.append(f"| {set_name} | {setting} | {protocol} | {net} | {mean_std([f[acc_key] for f in folds], 1)} | "
                        f"{mean_std([f[macc_key] for f in folds], 1)} | {knn} | {len(folds)} | {wall:.0f} |")
    notes = "\n".join(f"- {name}: {text}" for name, text in protocols.items())
    return f"{notes}\n\n{head}\n" + "\n".join(rows) if rows else ""


# ---------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1], help="fine-tuning seeds")
    parser.add_argument("--pretrained", nargs="+", default=[str(ROOT / "runs" / "pretrained" / "vit-default-seed0.pt")],
                        help="exported backbone(s) or pretraining checkpoint(s); several: one per seed, in order")
    parser.add_argument("--folds", type=int, default=10, help="few-shot folds per setting")
    parser.add_argument("--fold-seed", type=int, default=0, help="draw of the few-shot folds")
    parser.add_argument("--fewshot-set", action="append", default=[], metavar="KEY=VALUE",
                        help="option of every per-fold fine-tuning (e.g. trainer.max_epochs=1)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "downstream" / "results.json")
    parser.add_argument("--merge", type=Path, nargs="*", default=[], help="other results files to read (side-by-side runs)")
    parser.add_argument("--fresh", action="store_true", help="ignore earlier results of the chosen tasks")
    parser.add_argument("--table-only", action="store_true", help="print the tables of the results found, run nothing")
    args, extra = parser.parse_known_args()
    extra = [e for e in extra if e != "--"]
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    for path in args.pretrained:
        if not Path(path).is_file():
            parser.error(f"--pretrained {path}: no such file (export one: pointdwc export CKPT OUT.pt)")

    results: dict[str, Any] = {}
    for path in [*args.merge, args.out]:
        if path.is_file():
            results.update(json.loads(path.read_text()))
    if args.fresh:
        results = {k: v for k, v in results.items() if k.split("/")[0] not in args.tasks}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    work = args.out.parent

    def save() -> None:
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=1, default=str))
        tmp.replace(args.out)

    for task in [] if args.table_only else args.tasks:
        if task.startswith("finetune_"):
            set_name = task.split("_", 1)[1]
            for index, seed in enumerate(args.seeds):
                pretrained = pretrained_for(index, args.pretrained)
                for arm, ckpt in (("pretrained", pretrained), ("scratch", None)):
                    key = f"{task}/{arm}/seed{seed}"
                    if key not in results:
                        print(f"== {key}", flush=True)
                        results[key] = finetune_run(set_name, seed, ckpt, extra, work / "finetune" / set_name / arm)
                        results[key]["pretrained_file"] = ckpt
                        save()
        else:
            _, protocol, set_name = task.split("_", 2)
            for way, shot, query in SETTINGS[set_name]:
                key = f"{task}/{way}w{shot}s-q{query}"
                if key not in results:
                    print(f"== {key}", flush=True)
                    folder = work / "fewshot" / f"{task}-{way}w{shot}s"
                    results[key] = fewshot_run(set_name, protocol, way, shot, query, args.folds, args.fold_seed,
                                               args.pretrained[0], args.fewshot_set, folder)
                    save()

    print(f"\n# Downstream classification ({args.threads} torch thread(s); wall times of this machine)")
    for set_name in ("synthetic", "real"):
        text = finetune_table(results, set_name)
        if text:
            print(f"\n## Fine-tuning, {set_name}{text}")
    text = fewshot_table(results)
    if text:
        print(f"\n## Few-shot (mean ± std over folds; real set: 4 test shapes per class, the most its classes allow)\n{text}")


if __name__ == "__main__":
    main()
