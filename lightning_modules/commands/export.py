"""``pointdwc export --ckpt_path CKPT --out OUT``: the encoder of a checkpoint, in the format ``OUT`` names.

* ``OUT.pt``: one plain PyTorch file (class path, init args, weights, the checkpoint's SHA-256
  and step); ``torch.load(OUT.pt, weights_only=True)`` reads it.
* ``OUT`` without a suffix: a folder in the Hugging Face layout, ``model.safetensors`` +
  ``config.json`` + a ``README.md`` model card (:mod:`~lightning_modules.commands.export_card`);
  ``--push-to-hub USER/NAME`` then uploads it.
* ``OUT.onnx`` / ``OUT.pt2``: the forward as an ONNX / ``torch.export`` graph, points
  ``(batch, --num_points, 3)`` to the global feature, checked against the backbone before it is
  kept (:mod:`~lightning_modules.commands.export_graph`); the card and config travel inside.

``backbones.load_pretrained`` reads a ``.pt``, a folder or a Hub id; the teacher is exported by
default. An existing ``OUT`` is replaced only with ``--overwrite``. The positional form
``pointdwc export CKPT OUT`` still works for one release, with a deprecation notice.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from backbones.hub import is_repo_id, upload
from backbones.pretrained import PretrainedError, save_pretrained
from backbones.pretrained_folder import write_folder
from datamodules.cache import atomic_directory
from datamodules.errors import DataError
from lightning_modules.checkpoint_encoder import CheckpointEncoder, load_checkpoint_encoder
from lightning_modules.commands.entry import pointdwc_version
from lightning_modules.commands.export_card import export_config, input_points, model_card
from lightning_modules.commands.export_graph import OPSET, export_onnx, export_program, graph_metadata
from lightning_modules.commands.inputs import refuse_existing_output

PROG = "pointdwc export"
FORMATS = {".pt": "PyTorch file", "": "folder", ".onnx": "ONNX graph", ".pt2": "torch.export program"}
"""``OUT``'s suffix -> the format written."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pointdwc export",
        description="Write the backbone of a training checkpoint as OUT.pt, a folder (model.safetensors + "
        "config.json + README.md), OUT.onnx or OUT.pt2 (load the first two with backbones.load_pretrained).",
    )
    parser.add_argument("positional", nargs="*", type=Path, metavar="CKPT OUT",
                        help="deprecated: the same as --ckpt_path CKPT --out OUT")
    parser.add_argument("--ckpt_path", type=Path, default=None, help="the training checkpoint (.ckpt)")
    parser.add_argument("--out", type=Path, default=None,
                        help="what to write: OUT.pt, a folder (no suffix), OUT.onnx or OUT.pt2")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.add_argument("--network", choices=("teacher", "student"), default="teacher",
                        help="which network's backbone (default: teacher, the one the probe judges)")
    parser.add_argument("--config", type=Path, action="append", default=[],
                        help="config the checkpoint was trained with; only for checkpoints that do not record "
                        "their backbone (repeatable, merged over configs/default.yaml)")
    parser.add_argument("--num_points", type=int, default=None,
                        help="points per cloud of an .onnx/.pt2 graph and the card "
                        "(default: the stored probe's, else the data's)")
    parser.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset (default {OPSET}, the tested one)")
    parser.add_argument("--push-to-hub", dest="push_to_hub", default=None, metavar="USER/NAME",
                        help="upload the exported folder to this Hugging Face Hub repository (created if needed)")
    return parser


def paths_of(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[Path, Path]:
    """``--ckpt_path`` and ``--out``, or the deprecated positional ``CKPT OUT`` (with a notice on stderr)."""
    if args.positional:
        if len(args.positional) != 2 or args.ckpt_path is not None or args.out is not None:
            parser.error("give --ckpt_path CKPT --out OUT")
        print(f"{PROG}: positional CKPT OUT is deprecated, use --ckpt_path CKPT --out OUT", file=sys.stderr)
        return args.positional[0], args.positional[1]
    if args.ckpt_path is None or args.out is None:
        parser.error("the following arguments are required: --ckpt_path, --out")
    return args.ckpt_path, args.out


def format_of(out: Path) -> str:
    """The suffix that picks the format (``""``: a folder); a DataError for any other suffix."""
    if out.suffix not in FORMATS:
        raise DataError(
            f"--out={out}: unknown suffix {out.suffix!r}: use .pt, .onnx, .pt2 or a folder name without one"
        )
    return out.suffix


def _write(encoder: CheckpointEncoder, out: Path, suffix: str, num_points: int, opset: int, overwrite: bool) -> str:
    """Write ``encoder`` to ``out`` in the format of ``suffix``; a note on what was checked (or "")."""
    fields = export_config(encoder, num_points, pointdwc_version())
    title = f"pointdwc {encoder.class_path.rsplit('.', 1)[-1]} encoder ({out.stem})"
    card = model_card(encoder, fields, title)
    if suffix == ".pt":
        save_pretrained(encoder.backbone, out, encoder.class_path, encoder.init_args, **{
            k: fields[k] for k in ("network", "checkpoint", "checkpoint_sha256", "global_step", "out_dim",
                                   "num_points", "normalisation", "pointdwc_version")})
        return ""
    if suffix == "":
        with atomic_directory(out, replace=overwrite) as tmp:
            write_folder(tmp, encoder.backbone, fields, card)
        return ""
    if suffix == ".onnx":
        diff = export_onnx(encoder.backbone, out, num_points, graph_metadata(fields, card), opset)
        return f"; onnxruntime reproduces it within {diff:.1e} (max relative difference, opset {opset})"
    extra = {"config.json": json.dumps(fields, indent=2), "README.md": card}
    diff = export_program(encoder.backbone, out, num_points, extra)
    return f"; torch.export.load reproduces it within {diff:.1e} (max relative difference)"


def export(
    ckpt_path: Path, out: Path, network: str = "teacher", config: list[Path] | None = None, overwrite: bool = False,
    num_points: int | None = None, opset: int = OPSET, notes: list[str] | None = None,
) -> Path:
    """Write ``network``'s backbone of ``ckpt_path`` (a checkpoint or any exported source) to ``out`` (format by
    its suffix; replacing one only with ``overwrite``); return it. A graph's check is appended to ``notes``."""
    out = out.expanduser()
    if out.absolute() == ckpt_path.expanduser().absolute():
        raise PretrainedError(f"{out}: the output would overwrite the checkpoint; choose another file")
    suffix = format_of(out)
    refuse_existing_output(out, overwrite, "--out")
    if num_points is not None and num_points < 1:
        raise DataError(f"--num_points={num_points}: must be at least 1")
    encoder = load_checkpoint_encoder(ckpt_path, network, config)  # type: ignore[arg-type]
    note = _write(encoder, out, suffix, num_points or input_points(encoder), opset, overwrite)
    if notes is not None:
        notes.append(note)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run ``pointdwc export``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    ckpt_path, out = paths_of(parser, args)
    try:
        if args.push_to_hub is not None and (out.suffix or not is_repo_id(args.push_to_hub)):
            raise DataError(f"--push-to-hub={args.push_to_hub}: needs a folder --out (no suffix) and a USER/NAME id")
        notes: list[str] = []
        path = export(ckpt_path, out, args.network, args.config, args.overwrite, args.num_points, args.opset, notes)
        print(f"wrote {path} ({FORMATS[path.suffix]}): the {args.network} backbone of {ckpt_path}{''.join(notes)}")
        if args.push_to_hub is not None:
            print(f"uploaded {path} to {upload(path, args.push_to_hub)}")
    except (PretrainedError, DataError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    if path.suffix in (".pt", ""):
        print(f"load it with: from backbones import load_pretrained; encoder = load_pretrained({str(path)!r})")
    return 0
