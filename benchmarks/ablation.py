"""What each loss term adds: ``both``, ``distill`` only, ``contrast`` only and ``random`` init.

Each arm is pretrained at the default budget of ``--backbone`` (PoinT-ViT: ``configs/default.yaml``;
PointNet, DGCNN: ``configs/pointnet.yaml``, ``configs/dgcnn.yaml`` on top of it) plus ``--config`` files
and any overrides after ``--``) for every seed, then the frozen teacher backbone is probed on

* the embedded synthetic set's test split (train split to fit the classifiers), and
* a real-mesh transfer set (``benchmarks/real_meshes.py``; 188 FlightGear models in 9
  classes), unless ``--no-real``; it is small, so its train and test shapes are pooled and
  scored by 5-fold stratified cross-validation (each shape tested once),

with the project's honest probe: a linear SVM whose C is chosen by cross-validation on the
train split (accuracy and mean per-class accuracy) and DINO's weighted kNN. The ``random``
arm is the same architecture at its seed's initialisation, and a randomly initialised
PointNet (shared MLP 3-64-128-1024, max-pool, no training) is probed the same way as the
baseline any learned feature must beat. The table gives mean ± std over seeds, with the
final teacher entropy and batch entropy (as fractions of log K) of each trained arm.

Results are written to ``--out`` (JSON) after every run and reused on the next call, so an
interrupted benchmark continues where it stopped (``--fresh`` starts over).

    python benchmarks/ablation.py                                  # 4 arms x 2 seeds
    python benchmarks/ablation.py --arms both --seeds 0 --tag k1024 -- --model.head.out_dim 1024
    python benchmarks/ablation.py --tag default-p512 --from-saved default --num-points 512
    python benchmarks/ablation.py --backbone dgcnn --arms both random    # tag 'dgcnn': pretrained vs random init
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.real_meshes import build as build_real_meshes  # noqa: E402
from datamodules import MeshFolder, PointCloudSet, SyntheticShapes  # noqa: E402
from lightning_modules.evaluation.knn import weighted_knn  # noqa: E402
from lightning_modules.evaluation.linear_svm import linear_svm  # noqa: E402
from lightning_modules.evaluation.probe import extract_features  # noqa: E402

BACKBONES = {"vit": None, "pointnet": ROOT / "configs" / "pointnet.yaml", "dgcnn": ROOT / "configs" / "dgcnn.yaml"}
"""The config each backbone adds on top of ``configs/default.yaml`` (the default is PoinT-ViT)."""

ARMS = {
    "both": [],
    "distill": ["--model.contrast.weight", "0"],
    "contrast": ["--model.distill.weight", "0"],
    "random": None,  # no training
}
"""CLI overrides of each arm (``None``: the seed's initialisation, untrained)."""


@dataclass
class Probe:
    """Accuracies (%) of one feature extractor on one probe set."""

    svm_acc: float
    svm_macc: float
    svm_c: float
    knn_acc: float


class RandomPointNet(nn.Module):
    """PointNet without training: shared MLP 3-64-128-1024 (ReLU), global max-pool."""

    out_dim = 1024

    def __init__(self) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(3, 64), nn.ReLU(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 1024)
        )

    def forward(self, points: torch.Tensor) -> "RandomPointNet.Output":
        return RandomPointNet.Output(self.mlp(points).amax(dim=1))

    @dataclass
    class Output:
        global_feature: torch.Tensor


def probe(backbone: nn.Module, data: PointCloudSet, num_points: int, cv_folds: int = 0) -> Probe:
    """Embed train and test with the frozen ``backbone``; SVM (C by CV on train) and kNN.

    With ``cv_folds`` the two splits are pooled and scored by stratified k-fold cross-validation
    (every shape is a test shape once; C chosen inside each training fold), the lower-variance
    estimate for a set of a few hundred shapes. The figures are then means over the folds.
    """
    from sklearn.model_selection import StratifiedKFold

    train, test = data.load("train"), data.load("test")
    feats = [
        extract_features(backbone, s.points[:, :num_points], 128, torch.device("cpu")) for s in (train, test)
    ]
    if not cv_folds:
        svm = linear_svm(feats[0], train.labels, feats[1], test.labels, c="auto")
        knn = weighted_knn(feats[0], train.labels, feats[1], test.labels, 20, 0.07)
        return Probe(svm.acc, svm.macc, svm.c, knn.acc)
    x, y = np.concatenate(feats), np.concatenate([train.labels, test.labels])
    folds = StratifiedKFold(cv_folds, shuffle=True, random_state=0).split(x, y)
    runs = []
    for tr, te in folds:
        svm = linear_svm(x[tr], y[tr], x[te], y[te], c="auto")
        runs.append((svm.acc, svm.macc, svm.c, weighted_knn(x[tr], y[tr], x[te], y[te], 20, 0.07).acc))
    acc, macc, c, knn = np.asarray(runs).T
    return Probe(float(acc.mean()), float(macc.mean()), float(np.exp(np.log(c).mean())), float(knn.mean()))


def pretrain(arm: str, seed: int, config: list[str], extra: list[str], workdir: Path) -> tuple[nn.Module, dict]:
    """Fit one arm with the project's CLI (no end-of-fit probe) and return the teacher backbone."""
    from pytorch_lightning.loggers import CSVLogger

    from lightning_modules.commands.cli import run_cli
    from lightning_modules.evaluation.probe import LinearProbe

    args = [*config, "--seed_everything", str(seed), "--trainer.logger", "false",
            "--trainer.enable_checkpointing", "false", "--trainer.callbacks", "[]", *ARMS[arm], *extra]
    cli = run_cli(args, run=False)
    trainer, model = cli.trainer, cli.model
    trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, LinearProbe)]
    trainer.loggers = [CSVLogger(str(workdir), name=f"{arm}-seed{seed}")]
    start = time.perf_counter()
    trainer.fit(model, cli.datamodule)
    wall = time.perf_counter() - start
    torch.save(model.teacher.backbone.state_dict(), workdir / f"{arm}-seed{seed}" / "teacher_backbone.pt")
    log_k = math.log(model.head_config.out_dim)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/")}
    stats = {
        "fit_seconds": wall,
        "steps": trainer.global_step,
        "teacher_entropy": metrics.get("train/teacher_entropy", float("nan")) / log_k,
        "teacher_batch_entropy": metrics.get("train/teacher_batch_entropy", float("nan")) / log_k,
        "loss_distill": metrics.get("train/loss_distill", float("nan")),
        "loss_contrast": metrics.get("train/loss_contrast", float("nan")),
    }
    return model.teacher.backbone, stats


def untrained(seed: int, config: list[str], extra: list[str]) -> nn.Module:
    """The configured architecture at seed ``seed``'s initialisation."""
    from lightning_modules.commands.cli import run_cli

    cli = run_cli([*config, "--seed_everything", str(seed), "--trainer.logger", "false", *extra], run=False)
    return cli.model.teacher.backbone


def mean_std(values: list[float], digits: int = 1) -> str:
    """``mean ± std`` (sample std over seeds; 0 for one seed), NaNs left out."""
    v = np.asarray([x for x in values if x == x], dtype=float)
    if len(v) == 0:
        return "—"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.{digits}f}"


def table(results: dict, arms: list[str], sets: list[str], seeds: list[int], tag: str) -> str:
    """Markdown table, mean ± std over the seeds found in ``results``."""
    head = "| arm | " + " | ".join(f"{s} SVM acc | {s} SVM mAcc | {s} kNN acc" for s in sets)
    head += " | teacher H / log K | batch H / log K | fit s |\n"
    head += "|---" * (1 + 3 * len(sets) + 3) + "|\n"
    rows = []
    for arm in [*arms, "pointnet_random"]:
        runs = [results.get(f"{tag}/{arm}/seed{s}") for s in seeds]
        runs = [r for r in runs if r]
        if not runs:
            continue
        cells = []
        for s in sets:
            for m in ("svm_acc", "svm_macc", "knn_acc"):
                cells.append(mean_std([r["probes"][s][m] for r in runs if s in r["probes"]]))
        for m, digits in (("teacher_entropy", 2), ("teacher_batch_entropy", 2), ("fit_seconds", 0)):
            cells.append(mean_std([r.get("stats", {}).get(m, float("nan")) for r in runs], digits))
        label = "random-init PointNet" if arm == "pointnet_random" else arm
        rows.append(f"| {label} (n={len(runs)}) | " + " | ".join(cells) + " |")
    return head + "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--backbone", choices=list(BACKBONES), default="vit",
                        help="the backbone's CPU preset (vit: configs/default.yaml; else configs/<backbone>.yaml)")
    parser.add_argument("--config", action="append", default=[], help="extra config files on top of the default")
    parser.add_argument("--tag", default=None,
                        help="name of this recipe in the results file (default: 'default' for vit, else the backbone)")
    parser.add_argument("--num-points", type=int, default=1024, help="points per cloud fed to the probed backbone")
    parser.add_argument("--no-real", action="store_true", help="probe the synthetic set only")
    parser.add_argument("--no-baseline", action="store_true", help="skip the random-init PointNet (another tag has it)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "ablation" / "results.json")
    parser.add_argument("--fresh", action="store_true", help="ignore earlier results of this tag")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (two 1-thread runs side by side use 2 cores)")
    parser.add_argument("--merge", type=Path, nargs="*", default=[], help="other results files (side-by-side runs) to read")
    parser.add_argument(
        "--from-saved", metavar="TAG",
        help="probe the teacher backbones recipe TAG saved (e.g. at another --num-points) instead of training",
    )
    args, extra = parser.parse_known_args()
    extra = [e for e in extra if e != "--"]
    if args.tag is None:
        args.tag = "default" if args.backbone == "vit" else args.backbone
    preset = [str(BACKBONES[args.backbone])] if BACKBONES[args.backbone] else []
    config = [x for c in [*preset, *args.config] for x in ("--config", c)]
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")

    sets: dict[str, PointCloudSet] = {"synthetic": SyntheticShapes()}
    if not args.no_real:
        sets["real"] = MeshFolder(root=str(build_real_meshes()), num_points=2048)
    for data in sets.values():
        data.prepare(progress=True)
    cv = {"synthetic": 0, "real": 5}

    args.out.parent.mkdir(parents=True, exist_ok=True)
    results = {}
    for path in [*args.merge, args.out]:
        if path.is_file():
            results.update(json.loads(path.read_text()))
    if args.fresh:
        results = {k: v for k, v in results.items() if not k.startswith(f"{args.tag}/")}

    def save() -> None:
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=1))
        tmp.replace(args.out)

    for seed in args.seeds:
        key = f"{args.tag}/pointnet_random/seed{seed}"
        if key not in results and not args.no_baseline:
            torch.manual_seed(seed)
            net = RandomPointNet()
            results[key] = {"probes": {n: asdict(probe(net, d, args.num_points, cv[n])) for n, d in sets.items()}}
            save()
        for arm in args.arms:
            key = f"{args.tag}/{arm}/seed{seed}"
            if key in results:
                continue
            print(f"== {key}", flush=True)
            if ARMS[arm] is None:
                backbone, stats = untrained(seed, config, extra), {}
            elif args.from_saved:
                backbone = untrained(seed, config, extra)
                saved = args.out.parent / args.from_saved / f"{arm}-seed{seed}" / "teacher_backbone.pt"
                backbone.load_state_dict(torch.load(saved, weights_only=True))
                stats = results.get(f"{args.from_saved}/{arm}/seed{seed}", {}).get("stats", {})
            else:
                backbone, stats = pretrain(arm, seed, config, extra, args.out.parent / args.tag)
            probes = {n: asdict(probe(backbone, d, args.num_points, cv[n])) for n, d in sets.items()}
            results[key] = {"probes": probes, "stats": stats, "overrides": extra}
            save()
            print(json.dumps(results[key]), flush=True)

    recorded = {" ".join(v.get("overrides", [])) for k, v in results.items() if k.startswith(f"{args.tag}/")}
    recorded.discard("")
    print(f"\nbackbone {args.backbone}, recipe '{args.tag}' (overrides: {'; '.join(sorted(recorded)) or 'none'}); probe: linear SVM with C by 5-fold CV on "
          f"the train split, test split once (real: pooled, 5-fold stratified CV, C chosen inside each fold); "
          f"kNN k=20; {args.num_points} points per cloud; mean ± std over seeds {args.seeds}")
    print(table(results, args.arms, list(sets), args.seeds, args.tag))


if __name__ == "__main__":
    main()
