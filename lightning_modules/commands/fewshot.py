"""``pointdwc fewshot``: W-way S-shot classification over folds, mean ± std, a per-fold table.

Folds are the released ones (``--root ModelNetFewshot``: ``<W>way_<S>shot/<fold>.pkl``) or drawn
from any labelled data set with a seed (``--data.root DIR`` / ``--data.dataset CLASS``; default:
the embedded synthetic set): S train shapes per class from its train split, ``--query`` test
shapes per class from its test split. Two protocols:

* ``frozen`` (default, seconds on a CPU): linear SVM (C by cross-validation on the fold's train
  shapes) and weighted kNN on the frozen backbone's features (:mod:`lightning_modules.downstream.fewshot_frozen`);
* ``finetune``: fine-tuning per fold (:mod:`lightning_modules.commands.fewshot_finetune`), scored at the
  last epoch or the checkpoint chosen on a validation split of the fold's train shapes, never
  the best test epoch.

``--ckpt_path`` is a pointdwc pretraining checkpoint (teacher by default) or a ``pointdwc export``
``.pt``, folder or Hugging Face Hub id; without it the network is randomly initialised. A random-init baseline of the same
architecture is run beside a pretrained network (by default for ``frozen``; ``--baseline true``
for ``finetune``). Results go to ``<out>/results.json`` and the per-fold table to
``<out>/folds.md`` and ``<out>/folds.csv``.
"""

from __future__ import annotations

import sys
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from jsonargparse import ArgumentParser, Namespace

from backbones.pretrained import PretrainedError, build_backbone
from datamodules.dataset import PointCloudSet
from datamodules.detect import resolve_dataset
from datamodules.errors import DataError
from datamodules.splits.fewshot_fold import FoldSet
from datamodules.fewshot_generator import GeneratedFewShot
from datamodules.formats.modelnet_fewshot import ModelNetFewShot
from lightning_modules.checkpoint_encoder import BackboneOrigin, backbone_from_configs, build_from_source, read_source
from lightning_modules.commands.embed import choose_device
from lightning_modules.evaluation.protocol import mean_std, write_json
from lightning_modules.commands.fewshot_finetune import FEWSHOT_CONFIG, fold_score, finetune_fold
from lightning_modules.downstream.fewshot_frozen import FoldFeatures, FrozenFoldScores, frozen_fewshot
from lightning_modules.commands.finetune import DEFAULT_CONFIG as FINETUNE_CONFIG
from lightning_modules.evaluation.linear_svm import check_svm_c
from lightning_modules.commands.inputs import renamed_flags
from lightning_modules.commands.run_folder import RunFolderError, choose_run_folder

RENAMED = {"--ckpt": "--ckpt_path"}
"""Old spellings still accepted for one release (with a notice on stderr)."""


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="pointdwc fewshot",
        description="W-way S-shot classification over folds (released ModelNetFewshot pickles or drawn from a "
        "labelled data set), frozen features or fine-tuning per fold; mean ± std and a per-fold table.",
    )
    parser.add_argument("--ckpt_path", type=str | None, default=None,
                        help="pointdwc pretraining checkpoint, or a `pointdwc export` .pt, folder or Hub id "
                        "(default: random initialisation)")
    parser.add_argument("--network", type=Literal["teacher", "student"] | None, default=None,
                        help="network of a checkpoint (default: teacher)")
    parser.add_argument("--root", type=str | None, default=None,
                        help="released folds: the ModelNetFewshot folder (5way_10shot/0.pkl, ...) or one setting's folder")
    parser.add_argument("--data.root", type=str | None, default=None,
                        help="draw folds from this labelled data folder (layout detected)")
    parser.add_subclass_arguments(PointCloudSet, "data.dataset", required=False,
                                  help="draw folds from this data set by class path (default: the synthetic set)")
    parser.add_argument("--way", type=int, default=5, help="classes per fold")
    parser.add_argument("--shot", type=int, default=10, help="train shapes per class")
    parser.add_argument("--query", type=int, default=20, help="test shapes per class (at least, for released folds)")
    parser.add_argument("--folds", type=int | None, default=None,
                        help="folds to run (default: 10 drawn; every released fold of the setting)")
    parser.add_argument("--seed", type=int, default=0, help="draw of the folds, and the networks' seed")
    parser.add_argument("--protocol", type=Literal["frozen", "finetune"], default="frozen",
                        help="frozen features + linear SVM / kNN per fold, or fine-tuning per fold")
    parser.add_argument("--select", type=Literal["last", "val"], default="last",
                        help="finetune: score the last epoch, or the checkpoint chosen on a validation split of the "
                        "fold's train shapes")
    parser.add_argument("--val_fraction", type=float, default=0.1, help="finetune --select val: share held out per class")
    parser.add_argument("--config", type=str, action="append", default=[],
                        help=f"finetune: fine-tuning config(s) over {FEWSHOT_CONFIG.relative_to(FEWSHOT_CONFIG.parents[2])} "
                        "(repeatable); for a random-init frozen run also its backbone")
    parser.add_argument("--set", type=str, action="append", default=[], metavar="KEY=VALUE",
                        help="finetune: one more fine-tuning option, e.g. --set trainer.max_epochs=5 (repeatable)")
    parser.add_argument("--baseline", type=bool | None, default=None,
                        help="also run the random-init network of the same architecture (default: yes for frozen, "
                        "no for finetune)")
    parser.add_argument("--num_points", type=int, default=1024, help="frozen: points per cloud fed to the backbone")
    parser.add_argument("--svm_c", type=str, default="auto", help="frozen: the SVM's C, or auto (CV on the fold's train shapes)")
    parser.add_argument("--knn_k", type=int, default=20, help="frozen: neighbours of the kNN")
    parser.add_argument("--batch_size", type=int, default=128, help="frozen: clouds per forward pass")
    parser.add_argument("--device", type=str, default="auto", help="frozen: auto, cpu, cuda, cuda:1")
    parser.add_argument("--out", type=str | None, default=None,
                        help="folder for results.json and the per-fold table (default: runs/fewshot/<run>)")
    parser.add_argument("--name", type=str | None, default=None, help="run name under runs/fewshot")
    return parser


# ---------------------------------------------------------------------- folds
def resolve_folds(args: Namespace) -> list[FoldSet]:
    """The folds to run: released ones from ``--root``, else drawn from the data set."""
    data = args.get("data") or Namespace()
    dataset = data.get("dataset")
    if args.folds is not None and args.folds < 1:
        raise DataError(f"--folds={args.folds}: must be at least 1")
    if args.root is not None:
        if dataset is not None or data.get("root") is not None:
            raise DataError(f"give either --root (released folds) or --data.root / --data.dataset, not both (--root={args.root})")
        first = ModelNetFewShot(args.root, args.way, args.shot, 0, args.query)
        available = first.folds()
        if args.folds is not None and args.folds > len(available):
            raise DataError(f"--folds={args.folds}: {first.setting_dir()} holds only {len(available)} folds")
        chosen = available[: args.folds] if args.folds is not None else available
        return [ModelNetFewShot(args.root, args.way, args.shot, k, args.query) for k in chosen]
    source = dataset if isinstance(dataset, PointCloudSet) else None
    base = resolve_dataset(source, data.get("root"), "--data.dataset", "--data.root")
    base.prepare(progress=True)
    first = GeneratedFewShot(base, None, args.way, args.shot, args.query, 0, args.seed)
    first.source_splits()
    first.index()  # an impossible --way / --shot / --query fails here, before any network runs
    return [first] + [first.other_fold(k) for k in range(1, args.folds or 10)]


def _overrides(sets: list[str]) -> list[str]:
    args = []
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise DataError(f"--set {item!r}: expected KEY=VALUE, e.g. trainer.max_epochs=5")
        args += [f"--{key}", value]
    return args


# ---------------------------------------------------------------------- networks (frozen)
def _config_backbone(configs: list[str]) -> tuple[str, dict[str, Any]]:
    spec = backbone_from_configs([FINETUNE_CONFIG, FEWSHOT_CONFIG, *map(Path, configs)])
    assert spec is not None
    return spec


def frozen_networks(args: Namespace) -> list[tuple[str, torch.nn.Module, BackboneOrigin]]:
    """``(label, backbone, origin)``: the pretrained network (if ``--ckpt``) and the random-init baseline."""
    networks = []
    if args.ckpt_path is not None:
        backbone, source = build_from_source(args.ckpt_path, args.network)
        networks.append(("pretrained", backbone, source.origin))
        class_path, init_args = source.class_path, source.init_args
    else:
        class_path, init_args = _config_backbone(args.config)
    if args.ckpt_path is None or args.baseline is not False:
        torch.manual_seed(args.seed)
        random = build_backbone(class_path, init_args, "the configured backbone").eval()
        networks.append(("random init", random, BackboneOrigin("scratch")))
    return networks


# ---------------------------------------------------------------------- reporting
def fold_table(folds: list[FoldSet], rows: dict[str, list[dict[str, float]]], metrics: list[str]) -> str:
    """Markdown: one row per fold, a column per network and metric, then mean ± std."""
    columns = ["fold", "classes"] + [f"{net} {m}" for net in rows for m in metrics]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for i, fold in enumerate(folds):
        classes = " ".join(fold.fold_data().train.class_names)
        cells = [f"{rows[net][i][m]:.2f}" for net in rows for m in metrics]
        lines.append(f"| {fold.fold} | {classes} | " + " | ".join(cells) + " |")
    cells = [mean_std([r[m] for r in rows[net]]) for net in rows for m in metrics]
    lines.append(f"| mean ± std (n={len(folds)}) | | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def fold_csv(folds: list[FoldSet], rows: dict[str, list[dict[str, float]]], metrics: list[str]) -> str:
    header = ["network", "fold", "classes", *metrics]
    lines = [",".join(header)]
    for net, values in rows.items():
        for fold, row in zip(folds, values):
            classes = " ".join(fold.fold_data().train.class_names)
            lines.append(",".join([net, str(fold.fold), classes, *(f"{row[m]:.4f}" for m in metrics)]))
    return "\n".join(lines) + "\n"


def describe_folds(folds: list[FoldSet], args: Namespace) -> str:
    first = folds[0].fold_data()
    queries = sorted({int(q) for f in folds for q in f.fold_data().query_counts()})
    query = str(queries[0]) if len(queries) == 1 else f"{queries[0]}-{queries[-1]}"
    kind = "released folds" if isinstance(folds[0], ModelNetFewShot) else f"folds drawn with seed {args.seed}"
    source = folds[0].setting_dir() if isinstance(folds[0], ModelNetFewShot) else folds[0].dataset.describe()  # type: ignore[attr-defined]
    return (f"{args.way}-way {args.shot}-shot, {query} test shapes per class, {len(folds)} {kind} "
            f"({', '.join(str(f.fold) for f in folds)}) of {source}; {first.train.points_per_cloud} points stored")


def _svm_c(text: str) -> float | str:
    try:
        return check_svm_c(text if text == "auto" else float(text))
    except ValueError:
        raise DataError(f"--svm_c={text}: must be a positive number or 'auto'") from None


# ---------------------------------------------------------------------- the protocols
def run_frozen(args: Namespace, folds: list[FoldSet]) -> tuple[dict[str, list[dict[str, float]]], dict[str, Any], str]:
    device = choose_device(args.device)
    for fold in folds:
        fold.fold_data().train.require_points(args.num_points, "--num_points")
        fold.fold_data().test.require_points(args.num_points, "--num_points")
    rows, info = {}, {}
    svm_c = _svm_c(args.svm_c)
    for label, backbone, origin in frozen_networks(args):
        start = time.perf_counter()
        scores: list[FrozenFoldScores] = frozen_fewshot(
            FoldFeatures(backbone.to(device), args.num_points, args.batch_size, device), folds, svm_c, knn_k=args.knn_k
        )
        wall = time.perf_counter() - start
        rows[label] = [asdict(s) for s in scores]
        info[label] = {"origin": asdict(origin), "origin_text": origin.describe(), "wall_seconds": wall}
        print(f"{label}: {origin.describe()} — {wall:.1f} s for {len(folds)} folds", flush=True)
    c_text = "C by stratified 5-fold CV on the fold's train shapes" if svm_c == "auto" else f"fixed C={svm_c:g}"
    protocol = (
        f"protocol pointdwc few-shot, frozen features: {args.num_points} points per cloud; linear SVM on standardised "
        f"features ({c_text}) and weighted kNN (k={args.knn_k}) fitted on each fold's train shapes, its test shapes "
        "predicted once; mean ± std over folds"
    )
    return rows, info, protocol


def run_finetune_folds(
    args: Namespace, folds: list[FoldSet], out: Path
) -> tuple[dict[str, list[dict[str, float]]], dict[str, Any], str]:
    rows: dict[str, list[dict[str, float]]] = {}
    info: dict[str, Any] = {}
    arms = [("pretrained" if args.ckpt_path else "random init", args.ckpt_path)]
    if args.ckpt_path is not None and args.baseline:
        arms.append(("random init", None))
    overrides = _overrides(args.set)
    model = None
    for label, ckpt in arms:
        start = time.perf_counter()
        rows[label], runs = [], []
        for fold in folds:
            workdir = out / label.replace(" ", "_") / f"fold{fold.fold}"
            result, cli = finetune_fold(fold, ckpt, args.network, args.config, overrides, args.seed, args.select,
                                        args.val_fraction, workdir)
            score = fold_score(result, args.select)
            rows[label].append({"fold": fold.fold, "acc": score.metrics["test/acc"], "macc": score.metrics["test/macc"],
                                "epoch": score.epoch if score.epoch is not None else -1})
            runs.append(asdict(result))
            model = cli.model
        wall = time.perf_counter() - start
        origin = model.origin.describe() if model is not None else "?"
        info[label] = {"origin_text": origin, "wall_seconds": wall, "runs": runs}
        print(f"{label}: {origin} — {wall:.1f} s for {len(folds)} folds", flush=True)
    scored = ("the last epoch" if args.select == "last" else
              f"the checkpoint of best val/acc on a stratified {args.val_fraction:.0%} validation split of the fold's train shapes")
    protocol = (
        "protocol pointdwc few-shot, fine-tuning per fold (configs/finetune/fewshot.yaml"
        + "".join(f" + {c}" for c in args.config) + "".join(f" + {s}" for s in args.set)
        + f"): each fold scored with {scored}, its test shapes evaluated once after training (never the best test "
        "epoch); mean ± std over folds"
    )
    return rows, info, protocol


def run(args: Namespace) -> dict[str, Any]:
    """Run ``pointdwc fewshot`` on parsed arguments; return what results.json holds."""
    folds = resolve_folds(args)
    if args.ckpt_path is not None:  # a bad file is refused before the run folder exists
        read_source(args.ckpt_path, args.network)
    if args.out is not None:
        out = Path(args.out).expanduser().absolute()
        out.mkdir(parents=True, exist_ok=True)
    else:
        out = choose_run_folder("runs/fewshot", args.name, "fewshot").path
    start = time.perf_counter()
    if args.protocol == "frozen":
        rows, info, protocol = run_frozen(args, folds)
        metrics = ["svm_acc", "svm_macc", "knn_acc"]
    else:
        rows, info, protocol = run_finetune_folds(args, folds, out)
        metrics = ["acc", "macc"]
    folds_text = describe_folds(folds, args)
    table = fold_table(folds, rows, metrics)
    print(f"\n{protocol}\n{folds_text}\n{table}")
    if args.ckpt_path is not None and "random init" not in rows:
        print("no random-init baseline was run (add --baseline true)")
    (out / "folds.md").write_text(f"{protocol}\n\n{folds_text}\n\n{table}\n")
    (out / "folds.csv").write_text(fold_csv(folds, rows, metrics))
    summary = {net: {m: {"mean": float(np.mean([r[m] for r in v])),
                         "std": float(np.std([r[m] for r in v], ddof=1)) if len(v) > 1 else 0.0} for m in metrics}
               for net, v in rows.items()}
    payload = {
        "protocol": protocol, "folds": folds_text, "way": args.way, "shot": args.shot, "query": args.query,
        "fold_ids": [f.fold for f in folds], "per_fold": rows, "summary": summary, "networks": info,
        "wall_seconds": time.perf_counter() - start, "arguments": {k: str(v) for k, v in vars(args).items()},
    }
    write_json(out / "results.json", payload)
    print(f"results: {out / 'results.json'} (per-fold table: {out / 'folds.md'})")
    return payload


def main(argv: list[str] | None = None) -> int:
    """Entry of ``pointdwc fewshot``; returns the exit status."""
    parser = build_parser()
    argv = list(argv if argv is not None else sys.argv[1:])
    args = parser.parse_args(renamed_flags(argv, RENAMED, "pointdwc fewshot"))
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    try:
        args = parser.instantiate_classes(args)
        run(args)
    except (DataError, PretrainedError, RunFolderError) as err:
        print(f"pointdwc fewshot: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
