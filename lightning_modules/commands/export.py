"""``pointdwc export --ckpt_path CKPT --out OUT.pt``: the backbone of a checkpoint as a plain PyTorch file.

The file holds the backbone's class path, init args and weights (teacher by default),
plus the checkpoint's SHA-256 and step; ``backbones.load_pretrained(OUT.pt)`` returns the
ready module in eval mode, and ``torch.load(OUT.pt, weights_only=True)`` reads it. An existing
``OUT.pt`` is replaced only with ``--overwrite``. The positional form ``pointdwc export CKPT OUT.pt``
still works for one release, with a deprecation notice.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from backbones.pretrained import PretrainedError, save_pretrained
from datamodules.errors import DataError
from lightning_modules.checkpoint_encoder import load_checkpoint_encoder
from lightning_modules.commands.inputs import refuse_existing_output

PROG = "pointdwc export"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pointdwc export",
        description="Write the backbone of a training checkpoint as a plain PyTorch file "
        "(load it with backbones.load_pretrained).",
    )
    parser.add_argument("positional", nargs="*", type=Path, metavar="CKPT OUT",
                        help="deprecated: the same as --ckpt_path CKPT --out OUT")
    parser.add_argument("--ckpt_path", type=Path, default=None, help="the training checkpoint (.ckpt)")
    parser.add_argument("--out", type=Path, default=None, help="the file to write (.pt)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.add_argument("--network", choices=("teacher", "student"), default="teacher",
                        help="which network's backbone (default: teacher, the one the probe judges)")
    parser.add_argument("--config", type=Path, action="append", default=[],
                        help="config the checkpoint was trained with; only for checkpoints that do not record "
                        "their backbone (repeatable, merged over configs/default.yaml)")
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


def export(
    ckpt_path: Path, out: Path, network: str = "teacher", config: list[Path] | None = None, overwrite: bool = False
) -> Path:
    """Write ``network``'s backbone of ``ckpt_path`` to ``out`` (replacing one only with ``overwrite``); return it."""
    if out.expanduser().absolute() == ckpt_path.expanduser().absolute():
        raise PretrainedError(f"{out}: the output would overwrite the checkpoint; choose another file")
    refuse_existing_output(out.expanduser(), overwrite, "--out")
    encoder = load_checkpoint_encoder(ckpt_path, network, config)  # type: ignore[arg-type]
    return save_pretrained(
        encoder.backbone,
        out.expanduser(),
        encoder.class_path,
        encoder.init_args,
        network=encoder.network,
        checkpoint=encoder.checkpoint.name,
        checkpoint_sha256=encoder.sha256,
        global_step=encoder.global_step,
        out_dim=int(getattr(encoder.backbone, "out_dim", -1)),
    )


def main(argv: list[str] | None = None) -> int:
    """Run ``pointdwc export``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    ckpt_path, out = paths_of(parser, args)
    try:
        path = export(ckpt_path, out, args.network, args.config, args.overwrite)
    except (PretrainedError, DataError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {path}: the {args.network} backbone of {ckpt_path}")
    print(f"load it with: from backbones import load_pretrained; encoder = load_pretrained({str(path)!r})")
    return 0
