"""The ``pointdwc`` command: LightningCLI with the probe, links and default config.

``fit``, ``validate``, ``test`` and ``predict`` are LightningCLI's; each run writes into its
own folder (:mod:`lightning_modules.commands.run_folder`). ``data``, ``embed``, ``export``,
``attention``, ``finetune``, ``fewshot`` and ``partseg`` are dispatched to their own modules before
LightningCLI parses anything.
"""

from __future__ import annotations

import copy
import importlib
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from jsonargparse import Namespace
from pytorch_lightning import LightningModule, Trainer
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from datamodules.errors import DataError
from datamodules.pointcloud import PointCloudDataModule
from lightning_modules.checkpoint_encoder import CONFIG_KEY
from lightning_modules.dist import print_rank_zero
from lightning_modules.pretrain.dwc import DistillationWithContrast
from lightning_modules.evaluation.probe import LinearProbe
from lightning_modules.commands import resume
from lightning_modules.commands.run_folder import ENV_RUN_DIR, RunFolder, RunFolderError, choose_run_folder
from lightning_modules.commands.wandb_runs import finish_wandb_runs

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "default.yaml"


COMMANDS = {
    "fit": "pretrain (each run in its own folder under trainer.default_root_dir, default runs/)",
    "validate": "validate a checkpoint (LightningCLI)",
    "test": "probe a checkpoint (or the random initialisation) on the probe's test split",
    "predict": "LightningCLI's predict",
    "data": "check or prepare a data folder (data check|prepare ROOT)",
    "embed": "features of a data set or a folder of point files / meshes -> one HDF5 file",
    "export": "the backbone of a checkpoint as a plain PyTorch file (backbones.load_pretrained)",
    "attention": "pictures of the [CLS] attention of each head of the last block (PNG)",
    "finetune": "fine-tune for classification (fit|validate|test): val split selects, test split once, --seeds",
    "fewshot": "W-way S-shot classification over folds (frozen features or fine-tuning), mean ± std",
    "partseg": "fine-tune for part segmentation (fit|validate|test): Inst./Cls. mIoU, val split selects, test once",
}
"""Every subcommand of ``pointdwc``, for ``pointdwc --help``."""


class SaveAndLogConfig(SaveConfigCallback):
    """Save the resolved config next to the logs, record it in every logger (W&B) and in checkpoints."""

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:  # noqa: D102
        config = self.config.as_dict()
        for logger in trainer.loggers:
            logger.log_hyperparams({"config": config})

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        """Put the config into the checkpoint, so ``embed``/``export`` need nothing but the file."""
        checkpoint[CONFIG_KEY] = self.parser.dump(self.config, skip_none=False)


def _class_of(class_path: str) -> type | None:
    module, _, name = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return None


def _unset(value: object) -> bool:
    return value is None or value == "" or value == "."


def point_at_run_folder(trainer: Namespace, run: RunFolder) -> None:
    """Send everything a run writes into ``run``: root dir, checkpoints, loggers' files.

    Only values the user left unset are changed (a ModelCheckpoint ``dirpath`` or a
    logger ``save_dir`` given explicitly is kept); W&B gets the run's id and name.
    """
    trainer.default_root_dir = str(run.path)
    for callback in trainer.get("callbacks") or []:
        cls = _class_of(callback.get("class_path", "")) if isinstance(callback, Namespace) else None
        if cls is not None and issubclass(cls, ModelCheckpoint) and _unset(callback.init_args.get("dirpath")):
            callback.init_args.dirpath = str(run.checkpoints)
    loggers = trainer.get("logger")
    for logger in loggers if isinstance(loggers, list) else [loggers]:
        if not isinstance(logger, Namespace) or "init_args" not in logger:
            continue
        args = logger.init_args
        if "save_dir" in args and _unset(args.save_dir):
            args.save_dir = str(run.path)
        if logger.class_path.endswith("WandbLogger"):
            if args.get("id") is None and args.get("version") is None:
                args.id = run.wandb_id
                if run.resumed and args.get("resume") is None:
                    args.resume = "allow"
            if args.get("name") is None:
                args.name = run.name


def add_run_name_argument(parser: LightningArgumentParser) -> None:
    """``--name``: the run's folder name."""
    parser.add_argument(
        "--name",
        type=str | None,
        default=None,
        help="Run name: the run's folder under trainer.default_root_dir (default: start time and W&B id).",
    )


class PointDWCCLI(LightningCLI):
    """LightningCLI with ``--probe.*`` and values that determine others linked."""

    run_folder: RunFolder | None = None
    """The folder of this run (None when building objects without a subcommand)."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(LinearProbe, "probe")
        add_run_name_argument(parser)
        parser.link_arguments("data.batch_size", "model.batch_size")
        parser.link_arguments("trainer.max_epochs", "model.max_epochs")

    def _parse_ckpt_path(self) -> None:
        """``fit --ckpt_path``: the checkpoint's model settings, except those the user changed that a
        resume honours (printed, old -> new); a changed network or recipe is refused
        (:mod:`lightning_modules.commands.resume`)."""
        sub = self.config.get("subcommand")
        ckpt_path = self.config[sub].get("ckpt_path") if sub else None
        if sub != "fit" or not ckpt_path or not Path(ckpt_path).is_file():
            super()._parse_ckpt_path()
            return
        given = copy.deepcopy(self.config[sub])
        checkpoint = torch.load(ckpt_path, weights_only=True, map_location="cpu")
        hparams = dict(checkpoint.get("hyper_parameters") or {})
        hparams.pop("_instantiator", None)
        saved = resume.saved_config(checkpoint, CONFIG_KEY)
        defaults = self._subcommand_parsers[sub].get_defaults()
        diffs = resume.model_differences(given.model, defaults.get("model"), hparams)
        diffs = [(f"model.{field}", old, new) for field, old, new in diffs]
        refused = [d for d in diffs if not resume.honoured(d[0][len("model."):])]
        refused += resume.section_differences("data", given.data, saved, resume.REFUSED_DATA)
        if refused:
            raise resume.refusal(ckpt_path, refused)
        super()._parse_ckpt_path()  # the checkpoint's model values over the user's
        model = self.config[sub].model
        for field, _, new in diffs:  # then the user's changes a resume honours
            model[field[len("model."):]] = copy.deepcopy(given.model[field[len("model."):]])
        changes = diffs + resume.section_differences("trainer", given.trainer, saved, resume.REPORTED_TRAINER)
        changes += resume.section_differences("probe", given.get("probe"), saved, ("",))
        if changes and rank_zero_only.rank == 0:
            print(f"resuming {ckpt_path} with {len(changes)} setting(s) changed:", flush=True)
            for line in resume.describe(changes):
                print(f"  {line}", flush=True)

    def _run_subcommand(self, subcommand: str) -> None:
        """Run ``subcommand``, then end its W&B run (:mod:`lightning_modules.commands.wandb_runs`)."""
        try:
            super()._run_subcommand(subcommand)
        finally:
            finish_wandb_runs(getattr(self, "trainer", None))

    def choose_folder(self, config: Namespace) -> RunFolder:
        """This run's folder: always new; a fit from a checkpoint is linked to the checkpoint's run."""
        return choose_run_folder(config.trainer.get("default_root_dir"), config.get("name"), self.subcommand,
                                 config.get("ckpt_path"))

    def before_instantiate_classes(self) -> None:
        """Choose this run's folder and point the trainer's outputs at it."""
        if self.subcommand is None:  # objects built for a benchmark: it decides where they write
            return
        config = self.config[self.subcommand]
        self._user_config = copy.deepcopy(config)
        self._user_config.name = None  # run.json keeps it; the saved config, reused, starts a new run
        run = self.choose_folder(config)
        point_at_run_folder(config.trainer, run)
        self.run_folder = run
        os.environ[ENV_RUN_DIR] = str(run.path)  # for the processes a DDP launch starts; reset by run_cli
        if rank_zero_only.rank == 0:
            parent = f" (resumes {run.resumed_from['run']})" if run.resumed_from else ""
            print(f"run folder: {run.path}{parent}", flush=True)

    def instantiate_classes(self) -> None:
        """Build the objects; the saved config is the user's (its root, not the run's paths)."""
        super().instantiate_classes()
        if self.run_folder is not None:
            for callback in self.trainer.callbacks:
                if isinstance(callback, SaveConfigCallback):
                    callback.config = self._user_config

    def after_fit(self) -> None:
        """Tell the user where the checkpoint is and how to test it."""
        ckpt = self.trainer.checkpoint_callback
        path = getattr(ckpt, "last_model_path", "") or getattr(ckpt, "best_model_path", "")
        if path and Path(path).is_file():  # fast_dev_run names a path but saves nothing
            print_rank_zero(f"checkpoint: {path}")
            print_rank_zero(f"evaluate it with: pointdwc test --ckpt_path {path}")


def run_cli(args: list[str] | None = None, run: bool = True) -> PointDWCCLI:
    """Build (and with ``run``, run) the CLI on ``args`` (default: the command line).

    With ``run=False`` there is no subcommand: the objects of a config are just built.
    """
    defaults = [str(DEFAULT_CONFIG)] if DEFAULT_CONFIG.is_file() else []
    subcommands = ("fit", "test", "validate", "predict")
    kwargs: dict[str, Any] = {"default_config_files": defaults}
    if run:
        kwargs = {sub: {"default_config_files": defaults} for sub in subcommands}
    inherited = os.environ.get(ENV_RUN_DIR)
    try:
        return PointDWCCLI(
            DistillationWithContrast,
            PointCloudDataModule,
            parser_kwargs=kwargs,
            save_config_callback=SaveAndLogConfig,
            save_config_kwargs={"overwrite": True},
            args=args,
            run=run,
        )
    finally:  # the next run of this process chooses its own folder
        if inherited is None:
            os.environ.pop(ENV_RUN_DIR, None)
        else:
            os.environ[ENV_RUN_DIR] = inherited


def print_commands() -> None:
    """``pointdwc`` / ``pointdwc --help``: every subcommand with one line each."""
    print("usage: pointdwc COMMAND [options]   (pointdwc COMMAND --help for its options)\n")
    print("commands:")
    for name, text in COMMANDS.items():
        print(f"  {name:10s} {text}")


OWN_COMMANDS = {
    "data": "lightning_modules.commands.data",
    "embed": "lightning_modules.commands.embed",
    "export": "lightning_modules.commands.export",
    "attention": "lightning_modules.commands.attention",
    "finetune": "lightning_modules.commands.finetune",
    "fewshot": "lightning_modules.commands.fewshot",
    "partseg": "lightning_modules.commands.partseg",
}
"""Subcommands beside LightningCLI's, each a module with ``main(argv) -> exit status``."""


def main() -> None:
    """Entry point of the ``pointdwc`` console script."""
    if sys.argv[1:] in ([], ["-h"], ["--help"]):
        print_commands()
        raise SystemExit(0)
    if sys.argv[1] in OWN_COMMANDS:
        module = importlib.import_module(OWN_COMMANDS[sys.argv[1]])
        raise SystemExit(module.main(sys.argv[2:]))
    # The teacher is kept in eval mode on purpose (no drop path); Lightning warns about it.
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    try:
        run_cli()
    except (DataError, FloatingPointError, RunFolderError) as err:
        print(f"pointdwc: error: {err}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
