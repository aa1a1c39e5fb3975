"""The ``pointdwc`` console script: the command list, ``--version``, and dispatch to each command.

Nothing heavy is imported here: ``pointdwc``, ``pointdwc --help``, ``pointdwc --version`` and a
mistyped command answer without loading torch or Lightning. A command's module is imported only
once it is chosen: ``fit``/``validate``/``test`` go to LightningCLI
(:mod:`lightning_modules.commands.cli`), the others to their own modules, each with
``main(argv) -> exit status``.
"""

from __future__ import annotations

import difflib
import importlib
import sys
from importlib.metadata import PackageNotFoundError, version

LIGHTNING_COMMANDS = {
    "fit": "pretrain (each run in its own folder under trainer.default_root_dir, default runs/)",
    "validate": "pretext losses on shapes held out of pretraining (data.val_fraction) and the probe's "
                "CV accuracy on its train split; the test split untouched",
    "test": "probe a checkpoint (or the random initialisation) on the probe's test split",
}
"""LightningCLI's subcommands of pretraining (:mod:`lightning_modules.commands.cli`)."""

OWN_COMMANDS = {
    "data": ("lightning_modules.commands.data", "check or prepare a data folder (data check|prepare ROOT)"),
    "embed": ("lightning_modules.commands.embed",
              "features of a data set or a folder of point files / meshes -> one HDF5 file"),
    "export": ("lightning_modules.commands.export",
               "a checkpoint's encoder as .pt, a safetensors folder (+ model card, --push-to-hub), .onnx or .pt2"),
    "attention": ("lightning_modules.commands.attention",
                  "pictures of the [CLS] attention of each head of the last block (PNG)"),
    "finetune": ("lightning_modules.commands.finetune",
                 "fine-tune for classification (fit|validate|test): val split selects, test split once, --seeds"),
    "fewshot": ("lightning_modules.commands.fewshot",
                "W-way S-shot classification over folds (frozen features or fine-tuning), mean ± std"),
    "partseg": ("lightning_modules.commands.partseg",
                "fine-tune for part segmentation (fit|validate|test): Inst./Cls. mIoU, val split selects, test once"),
}
"""Subcommands beside LightningCLI's: the module that runs each, and its line in the command list."""

NOT_COMMANDS = {
    "predict": "pointdwc predict is not a command: features of a checkpoint are written by "
               "pointdwc embed --ckpt_path CKPT [ROOT] --out features.h5 (pointdwc embed --help)",
}
"""LightningCLI subcommands pointdwc does not offer, each answered with one line naming what to use (exit 2)."""

COMMANDS = {**LIGHTNING_COMMANDS, **{name: text for name, (_, text) in OWN_COMMANDS.items()}}
"""Every subcommand of ``pointdwc`` with its one-line description, in the order ``--help`` lists them."""


def pointdwc_version() -> str:
    """The installed distribution's version ("unknown" when run from sources that were never installed)."""
    try:
        return version("pointdwc")
    except PackageNotFoundError:
        return "unknown (not installed)"


def print_commands(file=None) -> None:
    """``pointdwc`` / ``pointdwc --help``: every subcommand with one line each."""
    print("usage: pointdwc COMMAND [options]   (pointdwc COMMAND --help for its options; pointdwc --version)\n",
          file=file)
    print("commands:", file=file)
    for name, text in COMMANDS.items():
        print(f"  {name:10s} {text}", file=file)


def unknown_command(name: str) -> int:
    """One error line naming the nearest command, then the full list; exit status 2 (a usage error)."""
    nearest = difflib.get_close_matches(name, list(COMMANDS), n=1, cutoff=0.5)
    hint = f"; did you mean '{nearest[0]}'?" if nearest else ""
    print(f"pointdwc: error: unknown command '{name}'{hint}\n", file=sys.stderr)
    print_commands(file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Run ``pointdwc ARGV`` and return its exit status (the console script exits with it)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv in ([], ["-h"], ["--help"]):
        print_commands()
        return 0
    if argv == ["--version"]:
        print(f"pointdwc {pointdwc_version()}")
        return 0
    command = argv[0]
    if command in NOT_COMMANDS:
        print(f"pointdwc: error: {NOT_COMMANDS[command]}", file=sys.stderr)
        return 2
    if command in OWN_COMMANDS:
        return int(importlib.import_module(OWN_COMMANDS[command][0]).main(argv[1:]) or 0)
    if command in LIGHTNING_COMMANDS or command.startswith("-"):  # LightningCLI's options before a subcommand
        from lightning_modules.commands.cli import main as lightning_main

        return lightning_main(argv)
    return unknown_command(command)


def console_script() -> None:
    """The ``pointdwc`` executable: :func:`main` on the command line, its status as the exit code."""
    raise SystemExit(main())


if __name__ == "__main__":
    console_script()
