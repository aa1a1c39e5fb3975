"""The honest evaluation protocol of supervised downstream tasks, shared by classification and segmentation.

1. A validation split carved from the train split (the data module's business:
   :class:`~datamodules.classification.ClassificationDataModule`) selects the checkpoint: a
   ``ModelCheckpoint`` monitoring :attr:`ProtocolSpec.select_metric`.
2. After training, and only then, the test split is evaluated once with the **selected**
   checkpoint and once with the **last** weights (:func:`evaluate_after_fit`).
3. Runs repeat over seeds; every reported figure is a mean ± std over them
   (:func:`summarise`, :func:`results_table`), and every printout names the protocol
   (:func:`protocol_line`).

The field's protocol (validate on the test split, keep the best test epoch) is the same code
with the data module's ``validate_on: test``; its lines and files say ``FIELD PROTOCOL``.

Nothing here knows about classification: a module logs ``val/...`` and ``test/...`` metrics,
the spec names which one selects and which are reported, and the data module may describe its
validation (``describe_validation()``) and its data (``dataset.describe()``).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from datamodules.cache import write_atomically


@dataclass(frozen=True)
class ProtocolSpec:
    """What selects a checkpoint and what is reported (metric names as the module logs them)."""

    select_metric: str = "val/acc"
    mode: Literal["max", "min"] = "max"
    report: tuple[str, ...] = ("test/acc", "test/macc")
    task: str = "classification"


@dataclass
class CheckpointScores:
    """The test metrics of one checkpoint, evaluated once."""

    which: Literal["selected", "last"]
    path: str | None
    epoch: int | None
    """Training epoch (0-based) the weights are from."""
    metrics: dict[str, float]


@dataclass
class RunResult:
    """One seed's (or fold's) run: its selected and last checkpoint on the test split."""

    seed: int
    last: CheckpointScores
    selected: CheckpointScores | None = None
    selection_score: float | None = None
    """The selected checkpoint's value of the selection metric."""
    run_folder: str | None = None
    fit_seconds: float = float("nan")
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunResult:
        """The inverse of ``dataclasses.asdict`` (a result stored as JSON, read back)."""
        selected = CheckpointScores(**raw["selected"]) if raw.get("selected") else None
        return cls(raw["seed"], CheckpointScores(**raw["last"]), selected, raw.get("selection_score"),
                   raw.get("run_folder"), raw.get("fit_seconds", float("nan")), dict(raw.get("extra") or {}))


def protocol_name(datamodule: Any) -> Literal["pointdwc", "field"]:
    """``field`` when validation runs on the test split, else ``pointdwc``."""
    return "field" if getattr(datamodule, "validate_on", "val") == "test" else "pointdwc"


def selection_callback(trainer: pl.Trainer, spec: ProtocolSpec) -> ModelCheckpoint | None:
    """The trainer's ``ModelCheckpoint`` that monitors the selection metric, if any."""
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.monitor == spec.select_metric:
            return callback
    return None


def _scores(results: list[dict[str, float]], spec: ProtocolSpec) -> dict[str, float]:
    merged = {k: float(v) for r in results for k, v in r.items()}
    missing = [m for m in spec.report if m not in merged]
    if missing:
        raise KeyError(f"the test did not log {missing} (logged: {sorted(merged)})")
    return {m: merged[m] for m in spec.report}


def _checkpoint_epoch(path: str) -> int | None:
    state = torch.load(path, map_location="cpu", weights_only=True)
    epoch = state.get("epoch") if isinstance(state, dict) else None
    return int(epoch) if isinstance(epoch, int) else None


def evaluate_after_fit(
    trainer: pl.Trainer, model: pl.LightningModule, datamodule: pl.LightningDataModule, spec: ProtocolSpec, seed: int,
    selected: tuple[str, float] | None = None,
) -> RunResult:
    """The test split, once with the last weights and once with the selected checkpoint (if one was selected).

    The selected checkpoint is the trainer's ``ModelCheckpoint`` on ``spec.select_metric``, or
    ``selected`` = (path, its selection score) when the choice was made elsewhere (cross-validation).
    Call right after ``trainer.fit``; the model holds the selected weights afterwards.
    """
    last_epoch = trainer.current_epoch - 1 if trainer.current_epoch > 0 else 0
    last = CheckpointScores("last", None, last_epoch, _scores(trainer.test(model, datamodule=datamodule, verbose=False), spec))
    result = RunResult(seed, last)
    chosen = selection_callback(trainer, spec)
    path, score = selected if selected is not None else (
        (chosen.best_model_path, chosen.best_model_score) if chosen is not None else (None, None))
    if path and Path(path).is_file():
        metrics = _scores(trainer.test(model, datamodule=datamodule, ckpt_path=path, verbose=False), spec)
        result.selected = CheckpointScores("selected", path, _checkpoint_epoch(path), metrics)
        result.selection_score = float(score) if score is not None else None
    for logger in trainer.loggers:
        flat = {f"final/last/{k}": v for k, v in last.metrics.items()}
        if result.selected is not None:
            flat.update({f"final/selected/{k}": v for k, v in result.selected.metrics.items()})
        logger.log_metrics(flat, step=trainer.global_step)
    return result


# ---------------------------------------------------------------------- reporting
def protocol_line(spec: ProtocolSpec, datamodule: Any, model: Any, seeds: list[int], unit: str = "seeds") -> str:
    """One line naming the protocol that produced the figures printed below it."""
    name = protocol_name(datamodule)
    head = (
        "FIELD PROTOCOL (best test epoch: the test split chose the checkpoint, so the 'selected' figures are "
        "optimistic, not a held-out estimate)"
        if name == "field"
        else "pointdwc protocol (honest)"
    )
    describe = getattr(datamodule, "describe_validation", None)
    validation = describe() if describe is not None else "the data module's validation split"
    dataset = getattr(getattr(datamodule, "dataset", None), "describe", lambda: type(datamodule).__name__)()
    origin = getattr(getattr(model, "origin", None), "describe", lambda: "initialisation not recorded")()
    points = getattr(datamodule, "num_points", None)
    votes = int(getattr(model, "votes", 1) or 1)
    voting = f"{votes} augmented passes averaged (softmax), scored once" if votes > 1 else "no voting"
    return (
        f"protocol {head}: {spec.task}, {origin}; data {dataset}"
        + (f", {points} points" if points else "")
        + f"; checkpoint 'selected' = best {spec.select_metric} ({spec.mode}) on {validation}; 'last' = the final "
        f"epoch; test split evaluated once per checkpoint, after training; {voting}; mean ± std over {unit} {seeds}"
    )


def mean_std(values: list[float], digits: int = 2) -> str:
    """``mean ± std`` (sample std; 0 for a single value), NaNs left out."""
    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], dtype=float)
    if len(v) == 0:
        return "—"
    std = v.std(ddof=1) if len(v) > 1 else 0.0
    return f"{v.mean():.{digits}f} ± {std:.{digits}f}"


def summarise(results: list[RunResult], spec: ProtocolSpec) -> dict[str, dict[str, dict[str, float]]]:
    """``{which: {metric: {mean, std, n}}}`` over the runs (sample std)."""
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for which in ("selected", "last"):
        runs = [getattr(r, which) for r in results if getattr(r, which) is not None]
        if not runs:
            continue
        summary[which] = {}
        for metric in spec.report:
            v = np.asarray([s.metrics[metric] for s in runs], dtype=float)
            summary[which][metric] = {
                "mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "n": len(v)
            }
    return summary


def results_table(results: list[RunResult], spec: ProtocolSpec, unit: str = "seed", field_protocol: bool = False) -> str:
    """Markdown table: one row per run, then mean ± std; the selected and the last checkpoint side by side."""
    selected_name = "best-test-epoch" if field_protocol else "selected"
    columns = [f"{unit}", f"{selected_name} epoch", f"{selected_name} {spec.select_metric}"]
    columns += [f"{selected_name} {m}" for m in spec.report] + [f"last {m}" for m in spec.report] + ["fit s"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]

    def cell(value: float | None) -> str:
        return "—" if value is None else f"{value:.2f}"

    for r in results:
        sel = r.selected
        row = [str(r.seed), str(sel.epoch) if sel and sel.epoch is not None else "—", cell(r.selection_score)]
        row += [cell(sel.metrics[m]) if sel else "—" for m in spec.report]
        row += [cell(r.last.metrics[m]) for m in spec.report] + [f"{r.fit_seconds:.0f}"]
        lines.append("| " + " | ".join(row) + " |")
    sels = [r.selected for r in results if r.selected is not None]
    row = [f"mean ± std (n={len(results)})", "", mean_std([r.selection_score for r in results if r.selection_score is not None])]
    row += [mean_std([s.metrics[m] for s in sels]) for m in spec.report]
    row += [mean_std([r.last.metrics[m] for r in results]) for m in spec.report]
    row += [mean_std([r.fit_seconds for r in results], 0)]
    lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def write_json(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write ``payload`` as JSON, atomically (a temporary file renamed)."""
    text = json.dumps(payload, indent=1, default=str) + "\n"
    return write_atomically(Path(path), lambda tmp: tmp.write_text(text))


def results_payload(
    results: list[RunResult], spec: ProtocolSpec, line: str, name: str, **extra: Any
) -> dict[str, Any]:
    """What the result files hold: the protocol, every run and the summary."""
    return {
        "protocol": name,
        "protocol_line": line,
        "spec": asdict(spec),
        "runs": [asdict(r) for r in results],
        "summary": summarise(results, spec),
        "written": time.strftime("%Y-%m-%dT%H:%M:%S"),
        **extra,
    }
