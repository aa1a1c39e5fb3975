"""``pointdwc attention --ckpt_path CKPT ROOT --out DIR``: the paper's attention figure as PNG files.

For each chosen cloud, one picture: every point coloured by the attention the [CLS]
token pays to its patch in the backbone's last block (viridis, per head: purple least,
yellow most), one tile per head plus their mean (last column), one row per view
(azimuths spread around the up axis). The same functions draw the W&B pictures
(:func:`~lightning_modules.pictures.visuals.cls_attention_per_point`, :mod:`lightning_modules.pictures.render`).

Clouds come from the same inputs as ``pointdwc embed`` (a data set, its ``--split``, or a
folder of point files / meshes) and are chosen by ``--index`` (positions in the split; a
folder without train/ test/ folders has PointFolder's seeded split) and/or ``--class`` (the first ``--per_class`` clouds of each
named class); by default one cloud of each of the first four classes (or the first four
files). Files are written to ``--out`` only, named after the clouds (``<class>_<name>.png``); a
``--out`` that exists and is not an empty folder is written into only with ``--overwrite``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from jsonargparse import ArgumentParser

from datamodules.dataset import PointCloudSet
from datamodules.errors import DataError
from datamodules.formats.point_folder import PointFolder
from lightning_modules.checkpoint_encoder import load_checkpoint_encoder
from lightning_modules.commands.embed import (
    add_input_arguments,
    choose_device,
    command_main,
    refuse_out_inside_input,
    require_at_least_one,
    resolve_input,
)
from datamodules.cache import write_atomically
from lightning_modules.commands.inputs import refuse_existing_output
from lightning_modules.pictures.render import colormap, render_points, tile
from lightning_modules.pictures.visuals import cls_attention_per_point

DEFAULT_COUNT = 4
"""Clouds drawn when neither ``--index`` nor ``--class`` is given."""


@dataclass
class Sample:
    """One cloud to draw and what names it."""

    name: str
    class_name: str | None
    cloud: np.ndarray
    """(num_points, 3) float32, as fed to the backbone."""


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="pointdwc attention",
        description="PNG pictures of the [CLS] attention of each head of the backbone's last block.",
    )
    add_input_arguments(parser, "folder for the PNG files")
    parser.add_argument("--split", type=str, default="test", help="split of a data set to draw from (default: test)")
    parser.add_argument("--index", type=int, nargs="+", default=[], metavar="I", help="positions of the clouds, e.g. --index 0 5")
    parser.add_argument("--class", dest="classes", type=str, nargs="+", default=[], metavar="NAME",
                        help="class names whose first clouds to draw, e.g. --class chair lamp")
    parser.add_argument("--per_class", type=int, default=1, help="clouds per class named with --class")
    parser.add_argument("--network", type=Literal["teacher", "student"], default="teacher")
    parser.add_argument("--num_points", type=int, default=1024, help="points per cloud fed to the backbone")
    parser.add_argument("--views", type=int, default=3, help="views (rows) per picture, spread around the up axis")
    parser.add_argument("--elevation", type=float, default=20.0, help="camera elevation of every view (degrees)")
    parser.add_argument("--image_size", type=int, default=256, help="pixels per tile")
    parser.add_argument("--device", type=str, default="auto", help="auto, cpu, cuda, cuda:1")
    parser.add_argument("--config", type=str, action="append", default=[],
                        help="config the checkpoint was trained with (only for checkpoints that do not record it)")
    return parser


def _chosen(count: int, indices: list[int], labels: list[str | None], classes: list[str], per_class: int,
            where: str) -> list[int]:
    """Positions picked by ``indices`` and ``classes`` (or the default: one per class, else the first few)."""
    for i in indices:
        if not 0 <= i < count:
            raise DataError(f"--index {i}: {where} has {count} clouds (0 to {count - 1})")
    picked = list(indices)
    known = sorted({c for c in labels if c is not None})
    for name in classes:
        if name not in known:
            raise DataError(f"--class {name}: {where} has no such class; it has {known or 'no class names'}")
        picked += [i for i, c in enumerate(labels) if c == name][:per_class]
    if not indices and not classes:
        if known:
            picked = [labels.index(c) for c in sorted(known, key=labels.index)[:DEFAULT_COUNT]]
        else:
            picked = list(range(min(DEFAULT_COUNT, count)))
    return list(dict.fromkeys(picked))  # in order, once each


def pick_samples(source: PointCloudSet, args: Any) -> list[Sample]:
    """The clouds ``args`` choose from ``source`` (a point-file folder: only those files are read)."""
    if isinstance(source, PointFolder):
        if args.split not in source.splits:
            raise DataError(f"--split {args.split}: {source.describe()} has the splits {list(source.splits)}")
        items = source.items(args.split)
        names = source.class_names()
        labels = [names[label] if names else None for _, label in items]
        picked = _chosen(len(items), args.index, labels, args.classes, args.per_class,
                         f"the {args.split} split of {source.root}")
        return [Sample(source.relative_name(items[p][0]), labels[p], source.read_item(items[p][0])) for p in picked]
    if args.split not in source.splits:
        raise DataError(f"--split {args.split}: {source.describe()} has the splits {list(source.splits)}")
    source.prepare(progress=False)
    split = source.load(args.split)
    split.require_points(args.num_points, "--num_points")
    labels = [split.class_names[int(y)] for y in split.labels]
    picked = _chosen(len(split), args.index, labels, args.classes, args.per_class,
                     f"the {args.split} split of {source.describe()}")
    names = source.item_names(args.split, len(split))
    return [Sample(names[p], labels[p], np.ascontiguousarray(split.points[p, : args.num_points])) for p in picked]


@torch.no_grad()
def attention_maps(backbone: torch.nn.Module, cloud: np.ndarray, device: torch.device) -> np.ndarray:
    """(heads, N) attention of the [CLS] token to each point's patch in the last block."""
    points = torch.from_numpy(np.ascontiguousarray(cloud, dtype=np.float32))[None].to(device)
    out = backbone.eval()(points, return_attention=True)
    if getattr(out, "attention", None) is None or getattr(out, "centers", None) is None:
        raise DataError(f"{type(backbone).__name__} returns no attention and patch centres to draw")
    return cls_attention_per_point(out.attention, out.centers, points)[0].float().cpu().numpy()


def attention_picture(cloud: np.ndarray, maps: np.ndarray, views: int = 3, size: int = 256,
                      elevation: float = 20.0, gap: int = 4) -> np.ndarray:
    """One row per view, one tile per head and a last one for their mean: (H, W, 3) uint8."""
    columns = [*maps, maps.mean(0)]
    rows = []
    for v in range(views):
        azimuth = 30.0 + 360.0 * v / views
        rows.append(tile([render_points(cloud, colormap(m), size, azimuth, elevation) for m in columns], gap))
    spacer = np.full((gap, rows[0].shape[1], 3), 255, dtype=np.uint8)
    parts: list[np.ndarray] = []
    for i, row in enumerate(rows):
        parts += [spacer, row] if i else [row]
    return np.concatenate(parts, axis=0)


def file_name(sample: Sample) -> str:
    """``<class>_<name>.png`` (class left out when the name starts with it), unsafe characters replaced."""
    def safe(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")

    named = sample.class_name is None or sample.name.startswith(f"{sample.class_name}/")
    return f"{safe(sample.name if named else f'{sample.class_name}/{sample.name}')}.png"


def run(args: Any) -> list[Path]:
    """``pointdwc attention`` on parsed and instantiated arguments; returns the written files."""
    from PIL import Image

    require_at_least_one((("--num_points", args.num_points), ("--views", args.views),
                          ("--image_size", args.image_size), ("--per_class", args.per_class)))
    out = Path(args.out).expanduser().absolute()
    refuse_existing_output(out, args.overwrite or (out.is_dir() and not any(out.iterdir())), "--out")
    source = resolve_input(args.root, args.dataset, args.format, args.num_points, True, "random")
    refuse_out_inside_input(out, source)
    device = choose_device(args.device)
    encoder = load_checkpoint_encoder(args.ckpt_path, args.network, args.config)
    backbone = encoder.backbone.to(device)
    samples = pick_samples(source, args)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for sample in samples:
        maps = attention_maps(backbone, sample.cloud, device)
        picture = attention_picture(sample.cloud, maps, args.views, args.image_size, args.elevation)
        path = write_atomically(out / file_name(sample), lambda tmp: Image.fromarray(picture).save(tmp, format="PNG"))
        written.append(path)
    heads = maps.shape[0] if samples else 0
    print(f"wrote {len(written)} pictures to {out} ({heads} heads + mean per row, {args.views} views; "
          f"{encoder.network} of {encoder.checkpoint})")
    return written


def main(argv: list[str] | None = None) -> int:
    """Run ``pointdwc attention``; returns the exit status."""
    return command_main(build_parser(), argv, run, "pointdwc attention")
