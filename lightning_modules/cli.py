"""The ``pointdwc`` command: LightningCLI with the probe, links and default config."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

from pytorch_lightning import LightningModule, Trainer
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback

from datamodules.errors import DataError
from datamodules.pointcloud import PointCloudDataModule
from lightning_modules.dist import print_rank_zero
from lightning_modules.dwc import DistillationWithContrast
from lightning_modules.probe import LinearProbe

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "default.yaml"


class SaveAndLogConfig(SaveConfigCallback):
    """Save the resolved config next to the logs and record it in every logger (W&B)."""

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:  # noqa: D102
        config = self.config.as_dict()
        for logger in trainer.loggers:
            logger.log_hyperparams({"config": config})


class PointDWCCLI(LightningCLI):
    """LightningCLI with ``--probe.*`` and values that determine others linked."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(LinearProbe, "probe")
        parser.link_arguments("data.batch_size", "model.batch_size")
        parser.link_arguments("trainer.max_epochs", "model.max_epochs")

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
    kwargs = {sub: {"default_config_files": defaults} for sub in subcommands} if run else {"default_config_files": defaults}
    return PointDWCCLI(
        DistillationWithContrast,
        PointCloudDataModule,
        parser_kwargs=kwargs,
        save_config_callback=SaveAndLogConfig,
        save_config_kwargs={"overwrite": True},
        args=args,
        run=run,
    )


def main() -> None:
    """Entry point of the ``pointdwc`` console script."""
    if sys.argv[1:2] == ["data"]:  # `pointdwc data check|prepare ROOT`, beside LightningCLI's subcommands
        from datamodules.data_command import main as data_main

        raise SystemExit(data_main(sys.argv[2:]))
    # The teacher is kept in eval mode on purpose (no drop path); Lightning warns about it.
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    try:
        run_cli()
    except (DataError, FloatingPointError) as err:
        print(f"pointdwc: error: {err}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
