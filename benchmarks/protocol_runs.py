"""Timed ``fit`` runs of a protocol command (``pointdwc finetune``, ``pointdwc partseg``) for the benchmarks."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any, Callable


def pretrained_for(seed_index: int, files: list[str]) -> str:
    """The file seed number ``seed_index`` fine-tunes: its own when there are several, else the one."""
    return files[seed_index] if len(files) > 1 else files[0]


def timed_fit(run: Callable[[list[str]], Any], args: list[str], seed: int, ckpt: str | None) -> dict[str, Any]:
    """``run(["fit", ...])`` with this seed (and ``--ckpt`` when given), W&B off: its one result, protocol line,
    wall time and arguments, as stored in a benchmark's results file (``RunResult.from_dict`` reads it back)."""
    from lightning_modules.evaluation.protocol import protocol_line

    args = ["fit", "--seed_everything", str(seed), "--trainer.logger", "false", *args]
    if ckpt is not None:
        args += ["--ckpt", ckpt]
    start = time.perf_counter()
    cli = run(args)
    wall = time.perf_counter() - start
    (result,) = cli.results
    return {"result": asdict(result), "wall_seconds": wall,
            "protocol": protocol_line(cli.spec, cli.datamodule, cli.model, [seed]), "args": args}
