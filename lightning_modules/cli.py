"""The ``pointdwc`` command: LightningCLI with the probe, links and default config."""

from __future__ import annotations

from pathlib import Path

from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.utilities import rank_zero_info

from datamodules.pointcloud import PointCloudDataModule
from lightning_modules.dwc import DistillationWithContrast
from lightning_modules.probe import LinearProbe

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "default.yaml"


class PointDWCCLI(LightningCLI):
    """LightningCLI with ``--probe.*`` and values that determine others linked."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:  # noqa: D102
        parser.add_lightning_class_args(LinearProbe, "probe")
        parser.link_arguments("data.batch_size", "model.batch_size")
        parser.link_arguments("trainer.max_epochs", "model.max_epochs")

    def after_fit(self) -> None:
        """Tell the user where the checkpoint is and how to test it."""
        ckpt = self.trainer.checkpoint_callback
        path = getattr(ckpt, "last_model_path", "") or getattr(ckpt, "best_model_path", "")
        if path:
            rank_zero_info(f"checkpoint: {path}")
            rank_zero_info(f"evaluate it with: pointdwc test --ckpt_path {path}")


def run_cli(args: list[str] | None = None) -> PointDWCCLI:
    """Build and run the CLI on ``args`` (default: the command line)."""
    defaults = [str(DEFAULT_CONFIG)] if DEFAULT_CONFIG.is_file() else []
    return PointDWCCLI(
        DistillationWithContrast,
        PointCloudDataModule,
        parser_kwargs={sub: {"default_config_files": defaults} for sub in ("fit", "test", "validate", "predict")},
        save_config_kwargs={"overwrite": True},
        args=args,
    )


def main() -> None:
    """Entry point of the ``pointdwc`` console script."""
    run_cli()


if __name__ == "__main__":
    main()
