"""The model table a command prints before training: Lightning's, without its FLOPs column.

Lightning's summary always shows a FLOPs column and a "Total FLOPs" line; it counts FLOPs only
for a module that declares an ``example_input_array``, which no pointdwc module does (their
inputs are crops made on the device), so the column is all zeros. ``benchmarks/flops.py``
counts the real figure.
"""

from __future__ import annotations

from typing import Any

from pytorch_lightning.callbacks import RichModelSummary
from pytorch_lightning.utilities.model_summary.model_summary import get_formatted_model_size, get_human_readable_count


class ModelTable(RichModelSummary):
    """Name, type, parameters and train/eval mode of each top-level module, then the totals."""

    @staticmethod
    def summarize(  # noqa: D102
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        total_flops: int,
        **summarize_kwargs: Any,
    ) -> None:
        from rich import get_console
        from rich.table import Table

        columns = [(name, values) for name, values in summary_data if name != "FLOPs"]
        table = Table(header_style=summarize_kwargs.get("header_style", "bold magenta"))
        for name, _ in columns:
            table.add_column(name, justify="right" if name == "Params" else "left", style="dim" if name == " " else None)
        for row in zip(*(values for _, values in columns)):
            table.add_row(*row)
        console = get_console()
        console.print(table)
        console.print(
            f"{get_human_readable_count(trainable_parameters)} trainable, "
            f"{get_human_readable_count(total_parameters - trainable_parameters)} non-trainable parameters "
            f"({get_formatted_model_size(model_size)} MB); modules in train mode: {total_training_modes['train']}, "
            f"in eval mode: {total_training_modes['eval']}"
        )
