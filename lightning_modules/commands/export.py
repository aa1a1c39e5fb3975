"""``pointdwc export CKPT OUT.pt``: the backbone of a checkpoint as a plain PyTorch file.

The file holds the backbone's class path, init args and weights (teacher by default),
plus the checkpoint's SHA-256 and step; ``backbones.load_pretrained(OUT.pt)`` returns the
ready module in eval mode, and ``torch.load(OUT.pt, weights_only=True)`` reads it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from backbones.pretrained import PretrainedError, save_pretrained
from lightning_modules.checkpoint_encoder import load_checkpoint_encoder


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pointdwc export",
        description="Write the backbone of a training checkpoint as a plain PyTorch file "
        "(load it with backbones.load_pretrained).",
    )
    parser.add_argument("ckpt_path", type=Path, help="the training checkpoint (.ckpt)")
    parser.add_argument("out", type=Path, help="the file to write (.pt)")
    parser.add_argument("--network", choices=("teacher", "student"), default="teacher",
                        help="which network's backbone (default: teacher, the one the probe judges)")
    parser.add_argument("--config", type=Path, action="append", default=[],
                        help="config the checkpoint was trained with; only for checkpoints that do not record "
                        "their backbone (repeatable, merged over configs/default.yaml)")
    return parser


def export(ckpt_path: Path, out: Path, network: str = "teacher", config: list[Path] | None = None) -> Path:
    """Write ``network``'s backbone of ``ckpt_path`` to ``out``; return ``out``."""
    if out.expanduser().absolute() == ckpt_path.expanduser().absolute():
        raise PretrainedError(f"{out}: the output would overwrite the checkpoint; choose another file")
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
    args = build_parser().parse_args(argv)
    try:
        path = export(args.ckpt_path, args.out, args.network, args.config)
    except PretrainedError as err:
        print(f"pointdwc export: error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {path}: the {args.network} backbone of {args.ckpt_path}")
    print(f"load it with: from backbones import load_pretrained; encoder = load_pretrained({str(path)!r})")
    return 0
