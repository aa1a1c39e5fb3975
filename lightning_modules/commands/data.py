"""``pointdwc data check ROOT``, ``pointdwc data prepare ROOT`` and ``pointdwc data pack SRC OUT``.

``check`` detects the layout of a folder, validates every file without writing anything
and prints a summary (classes, shapes per split, points per shape, bounding radius); it
exits 0 when the folder is usable and 1 with one message per problem otherwise.
``prepare`` does the one-time work a format needs (packing file-per-shape sets into the
cache) ahead of training, with a progress bar. ``pack`` writes a data set (a folder of any
detected layout, or ``synthetic`` for the embedded set) into litdata shards that ``fit
--data.root OUT`` streams (:mod:`datamodules.streaming`); ``check OUT`` validates them.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from datamodules.dataset import CheckReport, PointCloudSet, existing_root
from datamodules.detect import LAYOUTS, detect_datasets, known_sets
from datamodules.errors import DataError
from lightning_modules.commands.inputs import renamed_flags
from datamodules.formats.packed import PackedSet
from datamodules.formats.shapenet_part import ShapeNetPart
from datamodules.streaming.pack import PackOptions, pack_shards

SYNTHETIC_SOURCE = "synthetic"
"""The ``SRC`` of ``pointdwc data pack`` that names the embedded synthetic set (its default options)."""

RENAMED = {"--num-points": "--num_points"}
"""Old spellings still accepted for one release (with a notice on stderr)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pointdwc data", description="Check or prepare a data folder.")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="detect the layout, validate every file, print a summary")
    prepare = commands.add_parser("prepare", help="one-time packing into the cache (file-per-shape formats)")
    for sub in (check, prepare):
        sub.add_argument("root", help="the data folder")
        sub.add_argument("--format", choices=sorted(known_sets()), help="skip detection and read this layout")
        sub.add_argument(
            "--num_points",
            type=int,
            default=None,
            help="points per cloud the run will request (checked, and kept when packing)",
        )
        sub.add_argument("--quiet", action="store_true", help="no progress bars")
    prepare.add_argument("--force", action="store_true", help="pack again even if the cache is there")
    pack = commands.add_parser("pack", help="write a data set into litdata shards that fit streams")
    pack.add_argument("src", help=f"the data folder (any layout check detects), or {SYNTHETIC_SOURCE!r}")
    pack.add_argument("out", help="the output folder (train/ and test/ shards, pointdwc_shards.json)")
    pack.add_argument("--format", choices=sorted(known_sets()), help="skip detection and read this layout")
    pack.add_argument(
        "--num_points", type=int, default=None, help="store each cloud's first N points (default: all it has)"
    )
    pack.add_argument("--workers", type=int, default=1, help="litdata worker processes (default: 1)")
    pack.add_argument("--chunk_bytes", default="64MB", help="target size of one chunk file (default: 64MB)")
    pack.add_argument("--overwrite", action="store_true", help="replace a pack already in OUT")
    pack.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def find_sets(root: str, fmt: str | None, num_points: int | None) -> list[PointCloudSet]:
    """The data sets to check in ``root`` (DataError if there are none)."""
    path = existing_root(root)
    if fmt is not None:
        cls = known_sets()[fmt]
        sets = cls.detect(path) or [cls(str(path))]  # type: ignore[call-arg]
    else:
        sets = detect_datasets(path)
        if not sets:
            raise DataError(f"{path}: no known data set layout; expected {LAYOUTS}")
    if num_points is not None:
        for dataset in sets:
            if isinstance(dataset, (PackedSet, ShapeNetPart)):
                dataset.num_points = num_points
    return sets


def print_report(dataset: PointCloudSet, report: CheckReport, num_points: int | None) -> list[str]:
    """Print the summary of one set; return its problems (with the point-count check added)."""
    problems = list(report.problems)
    print(f"{dataset.describe()} at {getattr(dataset, 'root', '(generated)')}")
    for s in report.summaries:
        classes = sum(1 for c in s.class_counts if c)
        lo, mid, hi = s.radius
        labels = (f"{classes}/{len(s.class_counts)} classes ({min(s.class_counts)}-{max(s.class_counts)} per class)"
                  if s.class_counts else "unlabelled")
        print(
            f"  {s.split:5s} {s.count:7d} shapes  {labels}  {s.points_per_cloud} points each  "
            f"radius min/median/max {lo:.3f}/{mid:.3f}/{hi:.3f}"
        )
        if num_points is not None and s.points_per_cloud < num_points:
            problems.append(
                f"{dataset.describe()}: {s.split} clouds have {s.points_per_cloud} points, fewer than the {num_points} requested"
            )
    for note in report.notes:
        print(f"  {note}")
    return problems


def run_check(args: argparse.Namespace) -> int:
    sets = find_sets(args.root, args.format, args.num_points)
    all_problems: list[str] = []
    for dataset in sets:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            report = dataset.check(progress=not args.quiet)
        problems = print_report(dataset, report, args.num_points)
        for w in caught:
            print(f"  warning: {w.message}")
        for problem in problems:
            print(f"  error: {problem}")
        print("  usable" if not problems else f"  NOT usable: {len(problems)} problem(s)")
        all_problems += problems
    return 1 if all_problems else 0


def run_prepare(args: argparse.Namespace) -> int:
    for dataset in find_sets(args.root, args.format, args.num_points):
        if isinstance(dataset, (PackedSet, ShapeNetPart)):
            path = dataset.prepare(progress=not args.quiet, force=args.force)
            print(f"{dataset.describe()}: packed into {path}")
        else:
            dataset.prepare(progress=not args.quiet)
            print(f"{dataset.describe()}: read directly, nothing to pack")
    return 0


def pack_source(src: str, fmt: str | None) -> PointCloudSet:
    """The data set ``pointdwc data pack`` reads: the synthetic set, or the first set found in the folder."""
    if src == SYNTHETIC_SOURCE and fmt is None:
        from datamodules.synthetic.shape_set import SyntheticShapes

        return SyntheticShapes()
    sets = find_sets(src, fmt, None)
    if len(sets) > 1:
        print(f"{src} holds {len(sets)} data sets; packing the first, {sets[0].describe()}")
    return sets[0]


def run_pack(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise DataError(f"--workers={args.workers}: must be at least 1")
    dataset = pack_source(args.src, args.format)
    options = PackOptions(args.num_points, args.workers, args.chunk_bytes, args.overwrite, not args.quiet)
    meta = pack_shards(dataset, args.out, options)
    counts = ", ".join(f"{split} {m.count}" for split, m in meta.splits.items())
    print(f"{meta.source}: packed into {args.out} ({counts} clouds); train on it with --data.root {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``pointdwc data ...``; returns the exit status."""
    argv = list(argv if argv is not None else sys.argv[1:])
    args = build_parser().parse_args(renamed_flags(argv, RENAMED, "pointdwc data"))
    try:
        run = {"check": run_check, "prepare": run_prepare, "pack": run_pack}[args.command]
        return run(args)
    except DataError as err:
        print(f"pointdwc data {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
