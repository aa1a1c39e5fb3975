"""A LightningCLI whose ``fit`` runs the honest protocol, for any supervised downstream task.

``fit`` trains, then evaluates the test split once with the selected and once with the last
checkpoint (:func:`~lightning_modules.evaluation.protocol.evaluate_after_fit`), prints the
labelled table and writes ``results.json`` into the run folder. ``--seeds 0 1 2`` repeats the
whole run per seed (each in ``<group>/seed<s>/``, the group folder named like a run) and ends
with mean ± std over them in ``<group>/summary.json``. ``validate`` / ``test`` are
LightningCLI's, and ``test`` prints the protocol line of the checkpoint it evaluated.

The task is a parameter: :func:`run_protocol_cli` takes the LightningModule and DataModule
classes, the default config and the :class:`~lightning_modules.evaluation.protocol.ProtocolSpec`
(metric that selects, metrics reported), so a segmentation module uses it unchanged; a task's
command is one :class:`ProtocolCommand` of them. A module
with ``pretrained`` / ``pretrained_network`` init args gets ``--ckpt FILE`` / ``--network`` for them.
"""

from __future__ import annotations

import copy
import inspect
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch
from jsonargparse import Namespace
from pytorch_lightning import LightningDataModule, LightningModule
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from backbones.pretrained import PretrainedError
from datamodules.errors import DataError
from lightning_modules.commands.cli import PointDWCCLI, SaveAndLogConfig, add_run_name_argument
from lightning_modules.dist import print_rank_zero
from lightning_modules.commands.fold_selection import FoldSelection, SaveAtStep, run_folds
from lightning_modules.downstream.supervised import VALIDATION_KEY
from lightning_modules.evaluation.protocol import (
    ProtocolSpec,
    RunResult,
    evaluate_after_fit,
    protocol_line,
    protocol_name,
    results_payload,
    results_table,
    write_json,
)
from lightning_modules.commands.run_folder import ENV_RUN_DIR, RunFolder, RunFolderError, choose_run_folder, new_wandb_id

ENV_GROUP_DIR = "_POINTDWC_GROUP_DIR"
"""The group folder of a multi-seed run, for the processes a DDP launch starts."""


class ProtocolCLI(PointDWCCLI):
    """LightningCLI running the honest protocol in ``fit`` (see the module docstring).

    Args:
        spec: what selects a checkpoint and what is reported.
        *args, **kwargs: LightningCLI's.
    """

    checkpoint_prefix = "backbone."
    checkpoint_kind = "fine-tuning"

    def __init__(self, *args: Any, spec: ProtocolSpec, **kwargs: Any) -> None:
        self.spec = spec
        self.results: list[RunResult] = []
        self._seed_index = 0
        self._pristine: Namespace | None = None
        super().__init__(*args, **kwargs)

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """``fit``, ``validate`` and ``test`` (a supervised downstream module has no predict step)."""
        return {k: v for k, v in LightningCLI.subcommands().items() if k != "predict"}

    _new_group: Path | None = None
    """The group folder of several seeds this run created (discarded with the seed's folder if the run fails)."""

    def folders_to_discard(self) -> list[Path]:
        """The seed's folder, then the group folder this run created."""
        return super().folders_to_discard() + ([self._new_group] if self._new_group is not None else [])

    # ------------------------------------------------------------------ arguments
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        add_run_name_argument(parser)
        parser.add_argument(
            "--seeds", type=int, nargs="+", default=None, metavar="SEED",
            help="repeat the run for each seed and print mean ± std (default: one run with seed_everything)",
        )
        parser.add_argument("--results", type=str | None, default=None,
                            help="also write the results (JSON) to this file")
        params = inspect.signature(self.model_class.__init__).parameters
        if "pretrained" in params:
            parser.add_argument("--ckpt", type=str | None, default=None,
                                help="initialise the backbone from this pointdwc pretraining checkpoint or "
                                "`pointdwc export` file (default: from scratch)")
            parser.link_arguments("ckpt", "model.init_args.pretrained" if self.subclass_mode_model else "model.pretrained")
        if "pretrained_network" in params:
            parser.add_argument("--network", type=str | None, default=None,
                                help="teacher (default for checkpoints) or student")
            parser.link_arguments("network", "model.pretrained_network")

    # ------------------------------------------------------------------ seeds
    def _sub(self) -> Namespace:
        return self.config[self.subcommand] if self.subcommand else self.config

    def _seeds(self) -> list[int]:
        seeds = self._sub().get("seeds") if self.subcommand == "fit" else None
        return list(seeds) if seeds else []

    def _set_seed(self) -> None:
        """``seed_everything`` is the current seed of ``--seeds`` when given."""
        seeds = self._seeds()
        if seeds:
            self._sub().seed_everything = seeds[self._seed_index]
        super()._set_seed()

    def choose_folder(self, config: Namespace) -> RunFolder:
        """One seed: a run folder as ``fit``'s. Several: ``<group>/seed<s>/`` (the group created once)."""
        seeds = self._seeds()
        if len(seeds) < 2:
            return super().choose_folder(config)
        if config.get("ckpt_path"):
            raise RunFolderError("--ckpt_path resumes one run; it cannot be combined with several --seeds")
        group = os.environ.get(ENV_GROUP_DIR)
        if group is None:
            run = choose_run_folder(config.trainer.get("default_root_dir"), config.get("name"), "fit")
            group = str(run.path)
            os.environ[ENV_GROUP_DIR] = group
            self._new_group = run.path
        seed = seeds[self._seed_index]
        folder = Path(group) / f"seed{seed}"
        run = RunFolder(folder, f"{Path(group).name}-seed{seed}", new_wandb_id(), "fit", time.strftime("%Y-%m-%dT%H:%M:%S"))
        if rank_zero_only.rank == 0:
            if folder.exists() and any(folder.iterdir()):
                raise RunFolderError(f"{folder}: already holds a run (seed {seed} given twice in --seeds?)")
            folder.mkdir(parents=True, exist_ok=True)
            run.write_marker()
        return run

    def before_instantiate_classes(self) -> None:
        """Keep the config as parsed (the run folder is written into it) so each seed starts from it."""
        if self.subcommand is not None and self._pristine is None:
            self._pristine = copy.deepcopy(self._sub())
        if self.subcommand is not None and self.subcommand != "fit" and self._sub().get("ckpt_path"):
            if "pretrained" in self._sub().model:  # the checkpoint holds every weight: no need for the file
                self._sub().model.pretrained = None
        super().before_instantiate_classes()

    def _run_subcommand(self, subcommand: str) -> None:
        """``fit``: the run of each seed, then the summary; other subcommands as LightningCLI runs them."""
        if subcommand != "fit":
            super()._run_subcommand(subcommand)
            return
        seeds = self._seeds() or [int(self._sub().seed_everything)]
        if len(set(seeds)) != len(seeds):
            raise RunFolderError(f"--seeds {seeds}: a seed is given twice")
        for index in range(len(seeds)):
            if index > 0:  # the objects of the first seed were built by LightningCLI itself
                self._seed_index = index
                assert self._pristine is not None
                self.config[subcommand] = copy.deepcopy(self._pristine)
                self._set_seed()
                self.before_instantiate_classes()
                self.instantiate_classes()
                self.after_instantiate_classes()
            self._folds = self._select_by_folds()
            super()._run_subcommand("fit")  # ends its W&B run: the next seed gets its own
        self._report(seeds)

    # ------------------------------------------------------------------ the protocol
    _folds: FoldSelection | None = None
    """This seed's cross-validated choice (``data.folds``), or None: the trainer's ModelCheckpoint selects."""

    def _select_by_folds(self) -> FoldSelection | None:
        """Under ``data.folds``: the fold runs, then a :class:`SaveAtStep` at their step on the refit's trainer."""
        datamodule = self.datamodule
        if not hasattr(datamodule, "num_folds"):
            return None
        datamodule.prepare_data()
        if not datamodule.num_folds:
            return None
        if self.trainer.world_size > 1:
            raise DataError("data.folds: cross-validated selection runs on one device (a small set); "
                            "set data.folds 0 for a DDP run")
        if self._sub().get("ckpt_path"):
            raise RunFolderError("--ckpt_path resumes one run; cross-validated selection (data.folds) runs "
                                 "a fit per fold and a refit: start it afresh, or set data.folds 0")
        root = self.run_folder.path if self.run_folder is not None else Path(self.trainer.default_root_dir)
        folds = run_folds(self.model, datamodule, self._sub().trainer.as_dict(), self.spec.select_metric,
                          self.spec.mode, int(self._sub().seed_everything), root / "folds")
        self.trainer.callbacks.append(SaveAtStep(folds.step, root / "checkpoints" / f"selected-step{folds.step}.ckpt"))
        return folds

    def after_fit(self) -> None:
        """The test split once for the selected and once for the last checkpoint; this run's results file."""
        start = getattr(self, "_fit_start", None)
        seed = int(self._sub().seed_everything)
        folds = self._folds
        saved = next((c for c in self.trainer.callbacks if isinstance(c, SaveAtStep) and c.saved), None)
        selected = (str(saved.path), folds.score) if folds is not None and saved is not None else None
        result = evaluate_after_fit(self.trainer, self.model, self.datamodule, self.spec, seed, selected=selected)
        result.fit_seconds = (time.perf_counter() - start) if start is not None else float("nan")
        if folds is not None:
            result.fit_seconds += folds.seconds
            result.extra["folds"] = folds.as_dict()
        result.run_folder = str(self.run_folder.path) if self.run_folder is not None else None
        self.results.append(result)
        if self.run_folder is not None and self.trainer.is_global_zero:
            line = protocol_line(self.spec, self.datamodule, self.model, [seed])
            write_json(self.run_folder.path / "results.json",
                       results_payload([result], self.spec, line, protocol_name(self.datamodule)))

    def before_fit(self) -> None:
        self._fit_start = time.perf_counter()

    def _report(self, seeds: list[int]) -> None:
        """Protocol line, table and summary files of all seeds (rank 0 prints and writes)."""
        if not self.trainer.is_global_zero:
            return
        name = protocol_name(self.datamodule)
        line = protocol_line(self.spec, self.datamodule, self.model, seeds)
        table = results_table(self.results, self.spec, field_protocol=name == "field")
        print(f"\n{line}\n{table}", flush=True)
        payload = results_payload(self.results, self.spec, line, name, seeds=seeds)
        group = os.environ.get(ENV_GROUP_DIR)
        written = []
        if group is not None:
            written.append(write_json(Path(group) / "summary.json", payload))
        elif self.run_folder is not None:
            written.append(self.run_folder.path / "results.json")
        if self._sub().get("results"):
            written.append(write_json(self._sub().results, payload))
        for path in written:
            print(f"results: {path}")
        best = [r.selected.path for r in self.results if r.selected is not None]
        if best:
            print(f"evaluate a selected checkpoint again with: {self.evaluate_hint(best[0])}")

    command: str = ""
    """The task's command (``pointdwc finetune``): the start of the hint that tests a checkpoint again."""

    def evaluate_hint(self, path: str) -> str:
        """The command that tests the checkpoint ``path`` again, with its run's saved config when there is one."""
        run = Path(path).parent.parent
        config = f"--config {run / 'config.yaml'} " if (run / "config.yaml").is_file() else ""
        return f"{self.command} test {config}--ckpt_path {path}".lstrip()

    def after_test(self) -> None:
        """The figures (rounded), then the protocol behind the checkpoint that was just tested."""
        super().after_test()
        ckpt = self._sub().get("ckpt_path")
        validation = "unknown (no checkpoint given: the configured initialisation was tested)"
        if ckpt and Path(ckpt).is_file():
            state = torch.load(ckpt, map_location="cpu", weights_only=True)
            validation = state.get(VALIDATION_KEY, "not recorded in the checkpoint")
        origin = getattr(getattr(self.model, "origin", None), "describe", lambda: "not recorded")()
        votes = int(getattr(self.model, "votes", 1) or 1)
        print_rank_zero(
            f"protocol: test split of {getattr(self.datamodule.dataset, 'describe', lambda: '?')()} evaluated once "
            f"by {ckpt or 'the configured model'} (initialised from {origin}; checkpoints of its run were chosen on "
            f"{validation}); {'%d augmented passes averaged' % votes if votes > 1 else 'no voting'}"
        )


def run_protocol_cli(
    model_class: type[LightningModule],
    datamodule_class: type[LightningDataModule],
    default_config: Path,
    spec: ProtocolSpec,
    args: list[str] | None = None,
    run: bool = True,
    cli_class: type[ProtocolCLI] = ProtocolCLI,
    prog: str | None = None,
    description: str | None = None,
) -> ProtocolCLI:
    """Build (and with ``run``, run) a :class:`ProtocolCLI` of these classes on ``args``.

    ``default_config`` is loaded first (as ``configs/default.yaml`` for ``pointdwc fit``).
    The run-folder environment is restored afterwards, so a process can run several.
    """
    defaults = [str(default_config)] if default_config.is_file() else []
    subcommands = tuple(ProtocolCLI.subcommands())
    kwargs: dict[str, Any] = {"default_config_files": defaults}
    if run:
        kwargs = {sub: {"default_config_files": defaults} for sub in subcommands}
        kwargs.update({k: v for k, v in (("prog", prog), ("description", description)) if v is not None})
    inherited = {var: os.environ.get(var) for var in (ENV_RUN_DIR, ENV_GROUP_DIR)}
    warnings.filterwarnings("ignore", message=r".*could not find the monitored key.*")  # no validation split: last only
    warnings.filterwarnings("ignore", message=r"LightningCLI's args parameter")  # argv comes from `pointdwc <command>`
    try:
        return cli_class(
            model_class, datamodule_class, spec=spec, parser_kwargs=kwargs, save_config_callback=SaveAndLogConfig,
            save_config_kwargs={"overwrite": True}, args=args, run=run,
        )
    finally:
        for var, value in inherited.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


def protocol_main(runner: Any, argv: list[str], prog: str) -> int:
    """Run ``runner(argv)`` and turn bad input into one line on stderr and exit status 1."""
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    try:
        runner(argv)
    except (DataError, PretrainedError, FloatingPointError, RunFolderError) as err:
        print(f"{prog}: error: {err}", flush=True, file=sys.stderr)
        return 1
    return 0


CLI = TypeVar("CLI", bound=ProtocolCLI)


@dataclass(frozen=True)
class ProtocolCommand(Generic[CLI]):
    """One ``pointdwc <task>`` command: its :class:`ProtocolCLI` subclass, classes, default config and help.

    What ``pointdwc finetune`` and ``pointdwc partseg`` do alike: build the CLI (:meth:`run`) and turn
    bad input into one line and exit status 1 (:meth:`main`); the program name is ``cli_class.command``.
    """

    cli_class: type[CLI]
    model_class: type[LightningModule]
    datamodule_class: type[LightningDataModule]
    default_config: Path
    spec: ProtocolSpec
    description: str

    def run(self, args: list[str] | None = None, run: bool = True) -> CLI:
        """The command on ``args`` (with ``run=False``: only build the objects of a config)."""
        cli = run_protocol_cli(
            self.model_class, self.datamodule_class, self.default_config, self.spec, args, run, self.cli_class,
            prog=self.cli_class.command, description=self.description,
        )
        assert isinstance(cli, self.cli_class)
        return cli

    def main(self, argv: list[str] | None = None) -> int:
        """The command's entry; returns the exit status."""
        return protocol_main(self.run, list(argv or []), self.cli_class.command)
