"""The ``pointdwc`` command: LightningCLI with the probe, links and default config.

``fit``, ``validate`` and ``test`` are LightningCLI's (``predict`` is not offered: ``pointdwc embed``
writes features); each run writes into its
own folder (:mod:`lightning_modules.commands.run_folder`). ``data``, ``embed``, ``export``,
``attention``, ``finetune``, ``fewshot`` and ``partseg`` are dispatched to their own modules before
LightningCLI parses anything.
"""

from __future__ import annotations

import copy
import importlib
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any, NoReturn

import torch
from jsonargparse import Namespace
from pytorch_lightning import LightningModule, Trainer
from pytorch_lightning.callbacks import ModelCheckpoint, ModelSummary, ProgressBar
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from backbones.pretrained import PretrainedError
from configs import shipped_config
from datamodules.errors import DataError
from datamodules.pointcloud import PointCloudDataModule, no_validation_split_message
from lightning_modules.checkpoint_encoder import CONFIG_KEY
from lightning_modules.dist import print_rank_zero
from lightning_modules.pretrain.dwc import DistillationWithContrast
from lightning_modules.evaluation.metrics import format_metric
from lightning_modules.evaluation.probe import LinearProbe
from lightning_modules.commands import resume
from lightning_modules.commands.inputs import check_checkpoint_file, check_wandb_login, discard_unused_run_folder
from lightning_modules.commands.run_folder import DEFAULT_ROOT, ENV_RUN_DIR, RunFolder, RunFolderError, choose_run_folder
from lightning_modules.commands.wandb_runs import finish_wandb_runs

DEFAULT_CONFIG = shipped_config("default.yaml")




class SaveAndLogConfig(SaveConfigCallback):
    """Save the resolved config next to the logs, record it in every logger (W&B) and in checkpoints."""

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:  # noqa: D102
        config = self.config.as_dict()
        for logger in trainer.loggers:
            logger.log_hyperparams({"config": config})

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        """Put the config into the checkpoint, so ``embed``/``export`` need nothing but the file."""
        checkpoint[CONFIG_KEY] = self.parser.dump(self.config, skip_none=False)


class _QuietLightning(logging.Filter):
    """Drop two lines Lightning prints on every run that tell a pointdwc user nothing: its
    "💡 Tip: … try installing litlogger" and the note that the config's model table replaces its own."""

    def filter(self, record: logging.LogRecord) -> bool:  # noqa: D102
        message = record.getMessage()
        return "litlogger" not in message and "Skipping setting a default `ModelSummary`" not in message


logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_QuietLightning())


def print_metrics(metrics: dict[str, Any]) -> None:
    """``name value`` lines, sorted, rounded by :func:`format_metric` (rank 0 only)."""
    for name in sorted(metrics):
        print_rank_zero(f"{name} {format_metric(name, float(metrics[name]))}")


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


def drop_disabled_callbacks(trainer: Namespace) -> None:
    """Remove the config's progress bar with ``trainer.enable_progress_bar: false`` and its model
    table with ``trainer.enable_model_summary: false``.

    The shipped configs add a ``RichProgressBar`` and a model table; Lightning refuses a
    progress-bar callback beside ``enable_progress_bar=False`` (turning the bar off would end in an
    error) and would print a configured model table even with ``enable_model_summary=False``.
    """
    disabled = tuple(kind for flag, kind in (("enable_progress_bar", ProgressBar), ("enable_model_summary", ModelSummary))
                     if trainer.get(flag) is False)
    if not disabled or not trainer.get("callbacks"):
        return
    trainer.callbacks = [
        callback for callback in trainer.callbacks
        if not (isinstance(callback, Namespace) and (cls := _class_of(callback.get("class_path", ""))) is not None
                and issubclass(cls, disabled))
    ]


def add_run_name_argument(parser: LightningArgumentParser) -> None:
    """``--name``: the run's folder name."""
    parser.add_argument(
        "--name",
        type=str | None,
        default=None,
        help="Run name: the run's folder under trainer.default_root_dir (default: start time and W&B id).",
    )


def check_validate_has_split(config: Namespace) -> None:
    """``data.val_fraction`` in [0, 1), and > 0 for ``validate`` (shapes held out of pretraining): else
    one DataError, raised before the run folder is made."""
    subcommand = config.get("subcommand")
    if subcommand not in ("fit", "validate", "test"):
        return
    fraction = config[subcommand].get("data", Namespace()).get("val_fraction", 0.0) or 0.0
    if not 0.0 <= fraction < 1.0:
        raise DataError(f"data.val_fraction={fraction}: the validation fraction must be in [0, 1)")
    if subcommand == "validate" and not fraction > 0:
        raise DataError(no_validation_split_message())


LIGHTNING_CKPT_NAMES = ("best", "last", "hpc", "registry")
"""``--ckpt_path`` values Lightning resolves itself (not files): left to Lightning."""


def condense_parse_error(message: str) -> str:
    """jsonargparse's many-line error as one line: the key, then the first reason that is not "expected None"."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if not lines:
        return "invalid arguments"
    head = lines[0].rstrip(":")
    reasons: list[str] = []
    for index, line in enumerate(lines[1:], start=1):
        if line.startswith("- ") and "Expected a <class 'NoneType'>" not in line:
            reasons = [line[2:].rstrip(":")]
            for more in lines[index + 1:]:
                if more.startswith(("- ", "Given value")):
                    break
                reasons.append(more)
            break
    if not reasons and len(lines) > 1 and not lines[1].startswith(("Given value", "Subtypes")):
        reasons = [lines[1]]
    reason = reasons[0] + (f": {' '.join(reasons[1:])}" if len(reasons) > 1 else "") if reasons else ""
    return f"{head}: {reason}" if reason else head


class OneLineErrorParser(LightningArgumentParser):
    """A LightningCLI parser whose errors are one line (``PROG: error: …; see PROG --help``), exit status 2."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:  # noqa: D102
        if not self.exit_on_error or callable(getattr(self, "_error_handler", None)):
            super().error(message, ex)
        parser = getattr(ex, "subcommand_parser", None) or self
        prog = parser.prog.replace(" [options]", "")
        print(f"{prog}: error: {condense_parse_error(message)}; see {prog} --help", file=sys.stderr)
        raise SystemExit(2)


class PointDWCCLI(LightningCLI):
    """LightningCLI with ``--probe.*`` and values that determine others linked."""

    run_folder: RunFolder | None = None
    """The folder of this run (None when building objects without a subcommand)."""

    checkpoint_prefix: str = "teacher.backbone."
    """What every weight name of a ``--ckpt_path`` this CLI reads may start with (checked before the run starts)."""

    checkpoint_kind: str = "pointdwc pretraining"
    """What such a checkpoint is, for the message refusing another file."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(LinearProbe, "probe")
        add_run_name_argument(parser)
        parser.link_arguments("data.batch_size", "model.batch_size")
        parser.link_arguments("trainer.max_epochs", "model.max_epochs")

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """LightningCLI's subcommands but ``predict`` (features are written by ``pointdwc embed``)."""
        return {name: args for name, args in LightningCLI.subcommands().items() if name != "predict"}

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse, then refuse a ``validate`` that has nothing to validate on, before any run folder exists."""
        super().parse_arguments(parser, args)
        check_validate_has_split(self.config)

    def merge_checkpoint_settings(self) -> None:
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

    def _prepare_subcommand_kwargs(self, subcommand: str) -> dict[str, Any]:
        """``validate``/``test`` print their figures rounded like ``fit``'s (:meth:`after_test`), not
        in Lightning's table of full-precision floats."""
        kwargs = super()._prepare_subcommand_kwargs(subcommand)
        if subcommand in ("validate", "test"):
            kwargs["verbose"] = False
        return kwargs

    def before_validate(self) -> None:
        """Warn when the checkpoint was trained on the shapes about to be validated."""
        ckpt_path = self.config[self.subcommand].get("ckpt_path")
        if ckpt_path and Path(ckpt_path).is_file() and rank_zero_only.rank == 0:
            from backbones.pretrained import PretrainedError, load_torch_file

            try:
                checkpoint = load_torch_file(Path(ckpt_path), "checkpoint")
            except PretrainedError:
                return  # Lightning's own loading says what is wrong with it
            self.datamodule.warn_if_trained_on_validation(checkpoint)

    def after_test(self) -> None:
        """The test figures, rounded as ``fit`` prints them."""
        print_metrics(self.trainer.callback_metrics)

    after_validate = after_test

    def choose_folder(self, config: Namespace) -> RunFolder:
        """This run's folder: always new; a fit from a checkpoint is linked to the checkpoint's run."""
        return choose_run_folder(config.trainer.get("default_root_dir"), config.get("name"), self.subcommand,
                                 config.get("ckpt_path"))

    _new_roots: list[Path] = []
    """Folders above the run folder that this run created (removed again, if empty, when it fails)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """LightningCLI's, with parse errors in one line; a run that fails before writing anything leaves no
        folder behind."""
        kwargs.setdefault("parser_class", OneLineErrorParser)
        try:
            super().__init__(*args, **kwargs)
        except BaseException:
            self.discard_unused_folders()
            raise

    def folders_to_discard(self) -> list[Path]:
        """The folders this run created that are removed when it fails holding nothing but ``run.json``."""
        return [self.run_folder.path] if self.run_folder is not None and not self.run_folder.resumed else []

    def discard_unused_folders(self) -> None:
        """Remove this run's folders when they hold nothing but ``run.json``, then the empty roots it created."""
        for folder in self.folders_to_discard():
            discard_unused_run_folder(folder)
        for folder in self._new_roots:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()

    def _parse_ckpt_path(self) -> None:
        """:meth:`check_inputs` first: the earliest hook after parsing, before Lightning reads the checkpoint's
        hyperparameters, seeds or builds anything."""
        subcommand = self.config.get("subcommand")
        if subcommand:
            self.check_inputs(self.config[subcommand])
        self.merge_checkpoint_settings()

    def check_inputs(self, config: Namespace) -> None:
        """Refuse a ``--ckpt_path`` that is not this CLI's checkpoint, an online W&B logger without a key or a
        batch size below 1, before anything is written (the run folder included)."""
        ckpt_path = config.get("ckpt_path")
        if ckpt_path and ckpt_path not in LIGHTNING_CKPT_NAMES:
            check_checkpoint_file(ckpt_path, "--ckpt_path", self.checkpoint_prefix, self.checkpoint_kind)
        root = Path(config.trainer.get("default_root_dir") or DEFAULT_ROOT).expanduser().absolute()
        self._new_roots = [folder for folder in (root, *root.parents) if not folder.exists()]
        check_wandb_login(config.trainer.get("logger"))
        batch_size = config.get("data", Namespace()).get("batch_size")
        if isinstance(batch_size, int) and batch_size < 1:
            raise DataError(f"data.batch_size must be at least 1, got {batch_size}")

    def before_instantiate_classes(self) -> None:
        """Choose this run's folder and point the trainer's outputs at it."""
        if self.subcommand is None:  # objects built for a benchmark: it decides where they write
            return
        config = self.config[self.subcommand]
        self._user_config = copy.deepcopy(config)
        self._user_config.name = None  # run.json keeps it; the saved config, reused, starts a new run
        run = self.choose_folder(config)
        point_at_run_folder(config.trainer, run)
        drop_disabled_callbacks(config.trainer)
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
    defaults = [str(DEFAULT_CONFIG)]
    subcommands = tuple(PointDWCCLI.subcommands())
    kwargs: dict[str, Any] = {"default_config_files": defaults}
    if run:
        kwargs = {sub: {"default_config_files": defaults} for sub in subcommands}
        kwargs["prog"] = "pointdwc"
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


def main(argv: list[str] | None = None) -> int:
    """``pointdwc fit|validate|test …`` (dispatched by :func:`lightning_modules.commands.entry.main`)."""
    # The teacher is kept in eval mode on purpose (no drop path); Lightning warns about it.
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    # the console script hands its own command line over as ``args``, on purpose
    warnings.filterwarnings("ignore", message=r"LightningCLI's args parameter is intended to run from within Python")
    try:
        run_cli(argv)
    except (DataError, PretrainedError, FloatingPointError, RunFolderError) as err:
        print(f"pointdwc: error: {err}", file=sys.stderr)
        return 1
    return 0
