"""``pointdwc partseg fit|validate|test``: part segmentation under the honest protocol.

A LightningCLI of its own (:class:`~lightning_modules.commands.protocol_cli.ProtocolCLI`) on
:class:`~lightning_modules.downstream.partseg.PartSegmentation` and
:class:`~datamodules.part_segmentation.PartSegmentationDataModule`, with
``configs/partseg/default.yaml`` loaded first (CPU-sized, the embedded synthetic part set)::

    pointdwc partseg fit                                                   # from scratch, synthetic parts
    pointdwc partseg fit --ckpt runs/<run>/checkpoints/last.ckpt           # from the pretrained teacher
    pointdwc partseg fit --seeds 0 1 2 --ckpt encoder.pt
    pointdwc partseg fit --config configs/partseg/vit_small.yaml --config configs/partseg/shapenetpart.yaml \\
        --ckpt runs/<run>/checkpoints/last.ckpt --data.root /data/shapenetcore_partanno_segmentation_benchmark_v0_normal
    pointdwc partseg test --ckpt_path runs/partseg/<run>/checkpoints/best.ckpt
    pointdwc partseg fit --config configs/partseg/field_protocol.yaml      # the field's protocol, labelled as such

The checkpoint 'selected' is the best ``val/inst_miou`` on the release's val split; the test
split is evaluated once after training, for the selected and the last checkpoint, on the
resampled points (and with ``--data.every_point true`` on every original point as well).
"""

from __future__ import annotations

from dataclasses import replace

from datamodules.part_segmentation import PartSegmentationDataModule
from configs import shipped_config
from lightning_modules.dist import print_rank_zero
from lightning_modules.evaluation.protocol import ProtocolSpec
from lightning_modules.downstream.partseg import PartSegmentation
from lightning_modules.commands.protocol_cli import ProtocolCLI, ProtocolCommand

DEFAULT_CONFIG = shipped_config("partseg/default.yaml")
"""Loaded before any ``--config``: the CPU default on the synthetic part set."""

SPEC = ProtocolSpec(
    select_metric="val/inst_miou", mode="max", report=("test/inst_miou", "test/cls_miou"), task="part segmentation"
)
"""The checkpoint with the best validation Inst. mIoU is selected (Point-MAE's choice); Inst. and Cls. mIoU are reported."""

EVERY_POINT_REPORT = ("test/every_point/inst_miou", "test/every_point/cls_miou")
"""Reported as well when the test split is also scored on every original point."""

DESCRIPTION = (
    "Fine-tune a backbone for part segmentation: the release's val split selects the checkpoint, the "
    "test split is evaluated once after training (selected and last checkpoint; Inst. and Cls. mIoU); --seeds "
    "repeats and prints mean ± std."
)
"""The help under ``pointdwc partseg --help``."""


def metric_legend(every_point: bool, num_points: int) -> str:
    """What the reported figures are, for the printout under the protocol line."""
    field = "the field's evaluation" if num_points == 2048 else "the field evaluates 2048"
    text = (
        f"test/inst_miou, test/cls_miou: Inst. / Cls. mIoU (%) on {num_points} points resampled from each test shape "
        f"({field}), argmax restricted to the shape's category, a part absent from prediction and truth counting 1.0"
    )
    if every_point:
        text += (
            f"; test/every_point/*: the same on EVERY original point of each shape, labels propagated from the "
            f"{num_points}-point input by inverse-distance weighting over the 3 nearest feature positions"
        )
    return text


class PartSegCLI(ProtocolCLI):
    """``pointdwc partseg``: :class:`ProtocolCLI` reporting the every-point figures when they are computed."""

    command = "pointdwc partseg"
    checkpoint_prefix = "segmenter.backbone."

    def instantiate_classes(self) -> None:
        super().instantiate_classes()
        every_point = bool(getattr(self.datamodule, "every_point", False))
        self.spec = replace(SPEC, report=SPEC.report + EVERY_POINT_REPORT) if every_point else SPEC

    def _report(self, seeds: list[int]) -> None:
        super()._report(seeds)
        if self.trainer.is_global_zero:
            print(metric_legend(self.datamodule.every_point, self.datamodule.num_points), flush=True)

    def after_test(self) -> None:
        super().after_test()
        print_rank_zero(metric_legend(self.datamodule.every_point, self.datamodule.num_points))


COMMAND = ProtocolCommand(PartSegCLI, PartSegmentation, PartSegmentationDataModule, DEFAULT_CONFIG, SPEC, DESCRIPTION)
"""``pointdwc partseg``."""

run_partseg = COMMAND.run
"""``pointdwc partseg`` on ``args`` (with ``run=False``: only build the objects of a config)."""

main = COMMAND.main
"""Entry of ``pointdwc partseg``; returns the exit status."""
