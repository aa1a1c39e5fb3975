"""The fine-tuning recipe on small real sets: the default vs the field's recipe, each lever removed, probes.

For one pretrained file (``--pretrained``: a ``pointdwc fit`` checkpoint or a ``pointdwc export``
file of the CPU default) and each ``--seeds`` seed, on the real-mesh set
(``benchmarks/real_meshes.py``), the 0 A.D. real-mesh set (``zeroad``: ``benchmarks/real_meshes_0ad.py``)
and/or the synthetic set (``--sets``), the arms (``--arms``):

* ``recipe`` / ``recipe_scratch``: ``pointdwc finetune fit`` with ``configs/finetune/default.yaml``,
  from the pretrained teacher / from scratch (on a set under 1,000 train shapes the default selects
  by 4-fold cross-validation and refits on the whole train split: ``data.folds: auto``).
* ``point_mae`` / ``point_mae_scratch``: the same with ``configs/finetune/point_mae_recipe.yaml``
  (the field's recipe, the default before this one).
* the default with one lever changed: ``holdout_20pct`` (/ ``_scratch``: selection on one stratified
  20 % validation split, at least 3 per class, the network fitting the other 80 %: the previous
  default's selection), ``val_10pct`` (that with 10 %, at least 1 per class), ``layer_decay_065``
  (layer-wise decay 0.65), ``lpft_freeze40`` (40 head-only steps first), ``no_probe_init`` (random
  linear head), ``points_512`` (512 points), ``steps_50`` (50 steps, warm-up 5, candidates every 5).
  BatchNorm handling is no lever here: the CPU default's PoinT-ViT has LayerNorm only.
* ``probe``: frozen features, linear SVM with C by 5-fold CV on the whole train split, the test
  split once (pointdwc's probe protocol, the same split and 1,024 points as fine-tuning); of the
  pretrained teacher (``probe``), of the same PoinT-ViT at seed ``s``'s random initialisation
  (``probe_random_vit``) and of a random-init PointNet 3-64-128-1024 (``probe_random_pointnet``);
  ``probe_fit_part``: the pretrained teacher's SVM fitted only on the shapes fine-tuning fits on
  (the train split less the default's validation split), the probe under fine-tuning's data budget.

With ``--pooled-cv K`` the probes (not ``probe_fit_part``) also give the lower-variance estimate of
a small set: train and test pooled, stratified K-fold cross-validation, every shape a test shape
once, C chosen inside each training fold (a second, named figure; nothing is selected on it).

``probe`` and ``probe_fit_part`` do not depend on the seed: they run for the first seed and the
other seeds reuse that result (marked ``reused_from_another_seed``).

Each fine-tuning run selects its checkpoint on the validation split carved from the train split;
the test split is evaluated once per checkpoint (selected and last). Results go to ``--out``
after every run and are reused by the next call (resumable); the table is printed at the end.

    python benchmarks/finetune_recipe.py --pretrained runs/.../last.ckpt --seeds 0 1 2 --sets real
    python benchmarks/finetune_recipe.py --table-only --out a.json --merge b.json c.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.downstream import dataset_args  # noqa: E402
from benchmarks.protocol_runs import timed_fit  # noqa: E402

POINT_MAE = str(ROOT / "configs" / "finetune" / "point_mae_recipe.yaml")
LD = ["--model.layer_decay", "0.65"]
HOLDOUT = ["--data.folds", "0"]
FINETUNE_ARMS: dict[str, tuple[list[str], bool]] = {
    "recipe": ([], True),
    "recipe_scratch": ([], False),
    "point_mae": (["--config", POINT_MAE], True),
    "point_mae_scratch": (["--config", POINT_MAE], False),
    "holdout_20pct": (HOLDOUT, True),
    "holdout_20pct_scratch": (HOLDOUT, False),
    "val_10pct": ([*HOLDOUT, "--data.val_fraction", "0.1", "--data.val_min_per_class", "1"], True),
    "layer_decay_065": (LD, True),
    "lpft_freeze40": (["--model.freeze_backbone_steps", "40"], True),
    "no_probe_init": (["--model.head_init", "random"], True),
    "points_512": (["--data.num_points", "512"], True),
    "steps_50": (["--trainer.max_steps", "50", "--model.optim.warmup_steps", "5", "--data.fold_every_n_steps", "5"], True),
}
"""Fine-tuning arm -> (arguments on top of the default config, starts from the pretrained file)."""
PROBE_ARMS = ("probe", "probe_fit_part", "probe_random_vit", "probe_random_pointnet")
PROBE_POINTS = 1024
SEED_FREE_ARMS = ("probe", "probe_fit_part")
"""Probes of the pretrained teacher: its features and the SVM (C by CV) do not depend on the seed, so they run once."""


def finetune(set_name: str, arm: str, seed: int, pretrained: str, extra: list[str], work: Path) -> dict[str, Any]:
    """One ``pointdwc finetune fit`` run of ``arm``: its result, protocol line and wall time."""
    from lightning_modules.commands.finetune import run_finetune

    args, from_pretrained = FINETUNE_ARMS[arm]
    folder = work / set_name / arm
    return timed_fit(run_finetune, [*args, "--trainer.logger", "false", "--trainer.default_root_dir", str(folder),
                                    *dataset_args(set_name), *extra], seed, pretrained if from_pretrained else None)


def probe_run(set_name: str, arm: str, seed: int, pretrained: str, pooled_cv: int = 0) -> dict[str, Any]:
    """A frozen-feature linear SVM (C by 5-fold CV on train) of ``arm``'s network; test once.

    With ``pooled_cv`` (not for ``probe_fit_part``) also the lower-variance estimate of the same
    probe: train and test pooled and scored by stratified ``pooled_cv``-fold cross-validation
    (every shape a test shape once, C chosen inside each training fold), as ``pooled_cv_acc``.
    """
    from benchmarks.ablation import RandomPointNet, probe
    from lightning_modules.commands.finetune import run_finetune

    torch.manual_seed(seed)
    args = ["--seed_everything", str(seed), *dataset_args(set_name)]
    cli = run_finetune([*args, *(["--ckpt", pretrained] if arm in ("probe", "probe_fit_part") else [])], run=False)
    network = RandomPointNet() if arm == "probe_random_pointnet" else cli.model.backbone
    start = time.perf_counter()
    if arm == "probe_fit_part":
        from datamodules.splits.validation_split import stratified_split
        from lightning_modules.evaluation.linear_svm import linear_svm
        from lightning_modules.evaluation.probe import extract_features

        data, module = cli.datamodule, cli.model
        train, test = data.dataset.load("train"), data.dataset.load("test")
        fit, _ = stratified_split(train.labels, data.val_fraction, data.split_seed, min_per_class=data.val_min_per_class)
        feats = [extract_features(module.backbone, x[:, :PROBE_POINTS], 128, torch.device("cpu"))
                 for x in (train.points[fit], test.points)]
        svm = linear_svm(feats[0], train.labels[fit], feats[1], test.labels, c="auto")
        return {"acc": svm.acc, "macc": svm.macc, "svm_c": svm.c, "shapes": len(fit),
                "wall_seconds": time.perf_counter() - start}
    result = probe(network, cli.datamodule.dataset, PROBE_POINTS)
    out = {"acc": result.svm_acc, "macc": result.svm_macc, "svm_c": result.svm_c,
           "wall_seconds": time.perf_counter() - start}
    if pooled_cv:
        start = time.perf_counter()
        pooled = probe(network, cli.datamodule.dataset, PROBE_POINTS, cv_folds=pooled_cv)
        out.update(pooled_cv_folds=pooled_cv, pooled_cv_acc=pooled.svm_acc, pooled_cv_macc=pooled.svm_macc,
                   pooled_cv_wall_seconds=time.perf_counter() - start)
    return out


def complete(entry: dict[str, Any], arm: str, pooled_cv: int) -> bool:
    """Whether a stored result has what this call asks for (a probe asked for its pooled CV figure
    gets it added by running again; the test-split figure it gives is the same, deterministic)."""
    return not (pooled_cv and arm in PROBE_ARMS and arm != "probe_fit_part" and "pooled_cv_acc" not in entry)


def stats(values: list[float]) -> str:
    """``mean ± std`` (sample std over seeds) and the count."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return "—"
    return f"{v.mean():.1f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.1f} (n={len(v)})"


def table(results: dict[str, Any], set_name: str) -> str:
    """One row per arm: test acc of the selected and the last checkpoint, mean ± std over seeds; wall."""
    lines = [f"\n{set_name}: test accuracy (%), mean ± std over seeds",
             "| arm | selected (val) | last | val acc of the selected | probes: pooled k-fold CV acc | wall s per run (under contention) |",
             "|---|---|---|---|---|---|"]
    for arm in (*FINETUNE_ARMS, *PROBE_ARMS):
        runs = [v for k, v in sorted(results.items()) if k.startswith(f"{set_name}/{arm}/")]
        if not runs:
            continue
        if arm in PROBE_ARMS:
            acc = [r["acc"] for r in runs]
            pooled = [r["pooled_cv_acc"] for r in runs if "pooled_cv_acc" in r]
            folds = sorted({r["pooled_cv_folds"] for r in runs if "pooled_cv_folds" in r})
            pooled_cell = f"{stats(pooled)}, {'/'.join(map(str, folds))} folds" if pooled else "—"
            lines.append(f"| {arm} (frozen, linear SVM) | {stats(acc)} | — | — | {pooled_cell} | "
                         f"{stats([r['wall_seconds'] for r in runs])} |")
            continue
        selected = [r["result"]["selected"]["metrics"]["test/acc"] for r in runs if r["result"].get("selected")]
        last = [r["result"]["last"]["metrics"]["test/acc"] for r in runs]
        val = [r["result"]["selection_score"] for r in runs if r["result"].get("selection_score") is not None]
        steps = [r["result"]["extra"]["folds"]["chosen_step"] for r in runs if (r["result"].get("extra") or {}).get("folds")]
        if steps:
            arm = f"{arm} (cross-validated steps {', '.join(map(str, steps))})"
        lines.append(f"| {arm} | {stats(selected)} | {stats(last)} | {stats(val)} | — | {stats([r['wall_seconds'] for r in runs])} |")
    protocol = next((v["protocol"] for k, v in sorted(results.items()) if k.startswith(f"{set_name}/recipe/")), None)
    if protocol:
        lines.append(f"\nprotocol of `recipe` (its first seed): {protocol}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pretrained", help="pointdwc checkpoint or export of the CPU default pretraining "
                        "(not needed by the scratch and random-init arms)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sets", nargs="+", default=["real"], choices=["real", "synthetic", "zeroad"])
    parser.add_argument("--arms", nargs="+", default=[*PROBE_ARMS, *FINETUNE_ARMS],
                        choices=[*PROBE_ARMS, *FINETUNE_ARMS])
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--pooled-cv", type=int, default=0, metavar="K",
                        help="probes also report train and test pooled, scored by stratified K-fold CV "
                             "(the lower-variance estimate on a small set; not for probe_fit_part)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "finetune_recipe" / "results.json")
    parser.add_argument("--merge", type=Path, nargs="*", default=[], help="other results files to read (side-by-side runs)")
    parser.add_argument("--table-only", action="store_true", help="print the table of the results found, run nothing")
    parser.add_argument("extra", nargs="*", help="after --: arguments for every fine-tuning run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    merged = {k: v for path in args.merge for k, v in json.loads(path.read_text()).items()}
    if not args.table_only:
        needs_file = any(arm in ("probe", "probe_fit_part") or (arm in FINETUNE_ARMS and FINETUNE_ARMS[arm][1]) for arm in args.arms)
        if needs_file and (not args.pretrained or not Path(args.pretrained).is_file()):
            parser.error(f"--pretrained {args.pretrained}: no such file (a pointdwc checkpoint or export)")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        for set_name in args.sets:
            for arm in args.arms:  # every seed of an arm before the next arm
                for seed in args.seeds:
                    key = f"{set_name}/{arm}/{seed}"
                    if key in results and complete(results[key], arm, args.pooled_cv):
                        continue
                    done = next((results[f"{set_name}/{arm}/{s}"] for s in args.seeds
                                 if f"{set_name}/{arm}/{s}" in results
                                 and complete(results[f"{set_name}/{arm}/{s}"], arm, args.pooled_cv)), None)
                    if arm in SEED_FREE_ARMS and done is not None and done.get("pretrained_file") == args.pretrained:
                        results[key] = {**done, "reused_from_another_seed": True}  # the same features and SVM
                    else:
                        print(f"== {key}", flush=True)
                        if arm in PROBE_ARMS:
                            results[key] = probe_run(set_name, arm, seed, args.pretrained,
                                                     0 if arm == "probe_fit_part" else args.pooled_cv)
                        else:
                            results[key] = finetune(set_name, arm, seed, args.pretrained, args.extra, args.out.parent)
                        if arm in SEED_FREE_ARMS or (arm in FINETUNE_ARMS and FINETUNE_ARMS[arm][1]):
                            results[key]["pretrained_file"] = args.pretrained
                    tmp = args.out.with_suffix(".tmp")
                    tmp.write_text(json.dumps(results, indent=1, default=str))
                    tmp.replace(args.out)
    for set_name in args.sets:
        print(table({**merged, **results}, set_name))


if __name__ == "__main__":
    main()
