"""``pointdwc embed --ckpt_path CKPT ROOT --out features.h5``: frozen features of your clouds.

The input is any data set the project reads (the folder's layout detected, ``--format``,
or ``--dataset CLASS_PATH --dataset.root ...`` as in ``fit``; every split is embedded),
or a plain folder of point files and meshes, read by the set ``fit`` and the probe read it with
(:class:`~datamodules.formats.point_folder.PointFolder`, storing ``--num_points`` points per file,
packed into the cache). Features are the probe's
(:func:`~lightning_modules.evaluation.probe.extract_features` on the first ``num_points`` points of
each stored cloud, in batches of ``batch_size``), so a data set embedded here gives exactly the
features the probe fits on.

The output is one HDF5 file::

    features  (N, C) float32       the backbone's global feature of each cloud
    labels    (N,) int64           where known (data sets; class folders of a point-file folder)
    names     (N,) str             relative path (or file.h5[row]) of each cloud
    split     (N,) str             train / test (a folder without split folders: its seeded split)
    skipped_names, skipped_reasons files that could not be read
    attrs: checkpoint, checkpoint_sha256, network, backbone, backbone_init_args, config,
           num_points, source, class_names, skipped, global_step, normalize, subsample

A bad file of a point-file folder (unreadable, wrong shape, NaN, too few points) is
skipped with a warning and counted, or fails the command with ``--strict``. Nothing is
written into the input folder, ``--out`` appears only when complete, and an existing ``--out``
is replaced only with ``--overwrite``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable, Iterable
from typing import Any, Literal

import numpy as np
import torch
from jsonargparse import ArgumentParser
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from backbones.pretrained import PretrainedError
from datamodules.cache import write_atomically
from datamodules.dataset import PointCloudSet
from datamodules.detect import detect_datasets, known_sets
from datamodules.errors import DataError
from datamodules.formats.mesh_folder import MeshFolder
from datamodules.formats.packed import PackedSet
from datamodules.formats.point_folder import PointFolder
from lightning_modules.checkpoint_encoder import CheckpointEncoder, load_checkpoint_encoder
from lightning_modules.commands.inputs import refuse_existing_output
from lightning_modules.evaluation.probe import extract_features

FORMATS = ("auto", "files", *sorted(known_sets()))
"""``--format``: detect (a known layout, else point files), point files (``files`` = ``point_files``), or a named layout."""

MAX_WARNINGS = 10
"""Skipped files reported one by one; the rest are counted."""


@dataclass
class Embedding:
    """Features of a set of clouds with what is known about each."""

    features: np.ndarray
    names: list[str]
    splits: list[str]
    labels: np.ndarray | None
    class_names: list[str] | None
    source: str
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(name, reason) of each file left out."""


def add_input_arguments(parser: ArgumentParser, out_help: str) -> None:
    """ROOT, ``--ckpt_path``, ``--out``, ``--dataset`` and ``--format``: what ``embed`` and ``attention`` read."""
    parser.add_argument("root", nargs="?", type=str | None, default=None,
                        help="data folder: a known layout (detected) or a plain folder of point files / meshes")
    parser.add_argument("--ckpt_path", type=str, required=True, help="the training checkpoint (.ckpt), or an exported "
                        ".pt, folder or Hugging Face Hub id (user/name) of `pointdwc export`")
    parser.add_argument("--out", type=str, required=True, help=out_help)
    parser.add_argument("--overwrite", action="store_true", help="replace what --out holds if it exists")
    parser.add_subclass_arguments(PointCloudSet, "dataset", required=False,
                                  help="a data set by class path instead of ROOT (e.g. datamodules.ScanObjectNN)")
    parser.add_argument("--format", type=Literal[FORMATS], default="auto",  # type: ignore[valid-type]
                        help="how to read ROOT: detect a known layout, else point files (auto), point files, "
                        "or a named layout")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="pointdwc embed",
        description="Frozen features of a data set or a folder of point files / meshes, into one HDF5 file.",
    )
    add_input_arguments(parser, "HDF5 file to write (e.g. features.h5)")
    parser.add_argument("--splits", type=str, nargs="+", default=None, metavar="SPLIT",
                        help="splits of a data set to embed, e.g. --splits test (default: all)")
    parser.add_argument("--network", type=Literal["teacher", "student"], default="teacher",
                        help="whose backbone (default: teacher, the one the probe judges)")
    parser.add_argument("--num_points", type=int, default=1024, help="points per cloud fed to the backbone")
    parser.add_argument("--batch_size", type=int, default=128, help="clouds per forward pass")
    parser.add_argument("--device", type=str, default="auto", help="auto (a GPU when there is one), cpu, cuda, cuda:1")
    parser.add_argument("--num_workers", type=int, default=0,
                        help="processes reading the files of a point-file folder while it is packed")
    parser.add_argument("--subsample", type=Literal["random", "first"], default="random",
                        help="point files with more points: a random subset seeded by the path, or the first ones")
    parser.add_argument("--no_normalize", action="store_true",
                        help="point files are fed as they are (default: centred and scaled into the unit sphere)")
    parser.add_argument("--strict", action="store_true", help="stop at the first bad file instead of skipping it")
    parser.add_argument("--config", type=str, action="append", default=[],
                        help="config the checkpoint was trained with; only for checkpoints that do not record "
                        "their backbone (repeatable)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def choose_device(name: str) -> torch.device:
    """``auto``: the first GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise DataError(f"--device={name}: {err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DataError(f"--device={name}: no GPU is available here")
    return device


def resolve_input(
    root: str | None, dataset: PointCloudSet | None, fmt: str, num_points: int, normalize: bool, subsample: str
) -> PointCloudSet:
    """The data set to embed (see the module docstring); a folder of own files is a :class:`PointFolder`."""
    if dataset is not None:
        if root is not None:
            raise DataError(f"give either ROOT or --dataset, not both (ROOT={root})")
        return dataset
    if root is None:
        raise DataError("give the data folder ROOT, or a data set with --dataset CLASS_PATH")
    if not Path(root).expanduser().is_dir():
        raise DataError(f"{root}: folder does not exist")
    if fmt not in ("auto", "files", "point_files"):
        cls = known_sets()[fmt]
        return (cls.detect(Path(root).expanduser().absolute()) or [cls(str(root))])[0]  # type: ignore[call-arg]
    found = detect_datasets(root) if fmt == "auto" else []
    if found and not isinstance(found[0], (MeshFolder, PointFolder)):
        return found[0]
    # own files (meshes too: PointFolder samples them as MeshFolder does), as many points stored as fed
    return PointFolder(str(root), num_points, normalize=normalize, subsample=subsample)  # type: ignore[arg-type]


def _progress(quiet: bool) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeRemainingColumn(), disable=quiet, console=Console(stderr=True),
    )


def embed_dataset(
    backbone: torch.nn.Module, dataset: PointCloudSet, splits: list[str] | None, num_points: int, batch_size: int,
    device: torch.device, quiet: bool = False,
) -> Embedding:
    """Every cloud of ``splits`` of ``dataset``: features as the probe computes them."""
    chosen = list(dataset.splits) if splits is None else splits
    for split in chosen:
        if split not in dataset.splits:
            raise DataError(f"--splits: {dataset.describe()} has no split {split!r}; it has {list(dataset.splits)}")
    dataset.prepare(progress=not quiet)  # generation or packing go to the cache, never into the data folder
    loaded = {split: dataset.load(split) for split in chosen}
    for split, data in loaded.items():
        if hasattr(data.points, "set_epoch"):
            raise DataError(f"{dataset.describe()}: the {split} split is drawn afresh every epoch; embed a fixed one")
        data.require_points(num_points, "--num_points")
    feats, names, splits_of, labels = [], [], [], []
    with _progress(quiet) as bar:
        task = bar.add_task("embedding", total=sum(len(d) for d in loaded.values()))
        for split, data in loaded.items():
            for start in range(0, len(data), batch_size):
                chunk = data.points[start : start + batch_size, :num_points]
                feats.append(extract_features(backbone, chunk, batch_size, device))
                bar.advance(task, len(chunk))
            names += dataset.item_names(split, len(data))
            splits_of += [split] * len(data)
            labels.append(np.asarray(data.labels, dtype=np.int64))
    class_names = next(iter(loaded.values())).class_names if loaded else None
    width = getattr(backbone, "out_dim", 0)
    return Embedding(
        np.concatenate(feats) if feats else np.zeros((0, width), np.float32), names, splits_of,
        np.concatenate(labels) if labels and class_names else None,  # a folder without class folders: none
        class_names or None, dataset.describe(),
    )


def skipped_files(dataset: PointCloudSet, splits: list[str], strict: bool) -> list[tuple[str, str]]:
    """(name, reason) of the files packing left out of ``splits``, reported on stderr (capped);
    with ``strict`` the first one is a DataError."""
    if not isinstance(dataset, PackedSet):
        return []
    skipped = sorted(item for split in splits for item in dataset.skipped(split))
    if skipped and strict:
        raise DataError(f"{skipped[0][1]} (--strict: no file may be skipped)")
    console = Console(stderr=True)
    for _, reason in skipped[:MAX_WARNINGS]:
        console.print(f"warning: skipped {reason}", markup=False, highlight=False, soft_wrap=True)
    if skipped:
        total = sum(len(dataset.items(split)) for split in splits)
        console.print(f"warning: skipped {len(skipped)} of {total} files (listed in the output's skipped_names / "
                      "skipped_reasons)", markup=False, highlight=False, soft_wrap=True)
    return skipped


def write_h5(out: Path, embedding: Embedding, encoder: CheckpointEncoder, attrs: dict[str, Any]) -> Path:
    """Write the embedding to ``out`` (via a temporary file beside it, renamed when complete)."""
    import h5py

    text = h5py.string_dtype()

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("features", data=embedding.features.astype(np.float32))
            if embedding.labels is not None:
                f.create_dataset("labels", data=embedding.labels.astype(np.int64))
            f.create_dataset("names", data=np.array(embedding.names, dtype=object), dtype=text)
            f.create_dataset("split", data=np.array(embedding.splits, dtype=object), dtype=text)
            for i, key in enumerate(("skipped_names", "skipped_reasons")):
                f.create_dataset(key, data=np.array([s[i] for s in embedding.skipped], dtype=object), dtype=text)
            values = {
                "checkpoint": str(encoder.checkpoint.absolute() if encoder.checkpoint.exists() else encoder.checkpoint),
                "checkpoint_sha256": encoder.sha256,
                "network": encoder.network,
                "backbone": encoder.class_path,
                "backbone_init_args": json.dumps(encoder.init_args),
                "config": encoder.config,
                "global_step": -1 if encoder.global_step is None else encoder.global_step,
                "source": embedding.source,
                "class_names": json.dumps(embedding.class_names),
                "skipped": len(embedding.skipped),
                **attrs,
            }
            for key, value in values.items():
                f.attrs[key] = value

    return write_atomically(out, write)


def _input_root(source: PointCloudSet) -> Path | None:
    root = getattr(source, "root", None)
    return Path(root).expanduser().absolute() if root is not None else None


def refuse_out_inside_input(out: Path, source: PointCloudSet) -> None:
    """A DataError when ``out`` lies inside the input's folder: pointdwc never writes into a data folder."""
    root = _input_root(source)
    if root is not None and out.is_relative_to(root):
        raise DataError(f"--out={out} lies inside the input folder {root}; pointdwc never writes into a data "
                        "folder: choose another place")


def require_at_least_one(values: Iterable[tuple[str, int]]) -> None:
    """A DataError naming the first ``(option, value)`` whose value is below 1."""
    for name, value in values:
        if value < 1:
            raise DataError(f"{name} must be at least 1, got {value}")


def command_main(parser: ArgumentParser, argv: list[str] | None, run: Callable[[Any], Any], prog: str) -> int:
    """Parse ``argv``, instantiate and ``run`` it (status 0 when it returns something); bad input is one
    line ``PROG: error: ...`` on stderr and status 1."""
    args = parser.parse_args(argv)
    try:
        instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes
        return 0 if run(instantiate(args)) else 1
    except (DataError, PretrainedError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 1


def run(args: Any) -> Path:
    """``pointdwc embed`` on parsed and instantiated arguments; returns the written file."""
    out = Path(args.out).expanduser().absolute()
    refuse_existing_output(out, args.overwrite, "--out")
    source = resolve_input(args.root, args.dataset, args.format, args.num_points, not args.no_normalize,
                           args.subsample)
    refuse_out_inside_input(out, source)
    require_at_least_one((("--num_points", args.num_points), ("--batch_size", args.batch_size)))
    device = choose_device(args.device)
    encoder = load_checkpoint_encoder(args.ckpt_path, args.network, args.config)
    backbone = encoder.backbone.to(device)
    start = _clock()
    if isinstance(source, PackedSet):
        source.read_workers = args.num_workers
        source.skip_bad_items = source.skip_bad_items and not args.strict
    try:
        source.prepare(progress=not args.quiet)  # packing reports what it skips, before any forward pass
    except DataError as err:
        raise DataError(f"{err} (--strict: stopping at the first bad file)" if args.strict else str(err)) from None
    skipped = skipped_files(source, args.splits or list(source.splits), args.strict)
    embedding = embed_dataset(backbone, source, args.splits, args.num_points, args.batch_size, device, args.quiet)
    embedding.skipped = skipped
    if isinstance(source, PointFolder):
        extra = {"normalize": source.normalize, "subsample": source.subsample}
    else:
        extra = {"normalize": "as the data set stores it", "subsample": "first"}
    seconds = _clock() - start
    path = write_h5(out, embedding, encoder, {"num_points": args.num_points, **extra})
    n = len(embedding.names)
    print(f"wrote {path}: {n} clouds x {embedding.features.shape[1]} features ({embedding.source}; "
          f"{encoder.network} of {encoder.checkpoint}; {len(embedding.skipped)} skipped); "
          f"{n / max(seconds, 1e-9):.1f} clouds/s on {device}")
    return path


def _clock() -> float:
    import time

    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter()


def main(argv: list[str] | None = None) -> int:
    """Run ``pointdwc embed``; returns the exit status."""
    return command_main(build_parser(), argv, run, "pointdwc embed")
