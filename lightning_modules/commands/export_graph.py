"""The encoder as a standalone graph: ONNX (run by onnxruntime) and ``torch.export`` (``.pt2``).

Both graphs map points ``(batch, num_points, 3)`` float32 to the global feature
``(batch, out_dim)``; the batch is dynamic, the points per cloud are fixed at export
(PoinT-ViT's patch count is ``num_points // points_per_patch``). The whole forward is in the
graph, the grouping included: PoinT-ViT's farthest point sampling is unrolled into its
``num_patches - 1`` steps and its kNN is a ``TopK``; DGCNN's dynamic kNN graph is a
``TopK`` per layer. Nothing runs outside the graph except normalising the clouds.

Every export is checked before it is kept: the written graph is run (onnxruntime /
``torch.export.load``) on clouds of another batch size than the traced one and compared with
the eager backbone; a maximum relative difference (``max |graph - eager| / max |eager|``)
above :data:`TOLERANCE` is refused, and the file is never left half-written.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor, nn

from backbones.optional import require
from backbones.pretrained import PretrainedError, first_sentence
from datamodules.cache import write_atomically

OPSET = 17
"""ONNX opset of the export: the first with LayerNormalization (PoinT-ViT); tested with onnxruntime."""

TOLERANCE = 1e-4
"""Largest accepted ``max |graph - eager| / max |eager|`` on the check's clouds."""

TRACE_BATCH, CHECK_BATCH = 2, 3
"""Clouds traced at export, and clouds of the check (another size: the batch axis must be dynamic)."""


class GlobalFeature(nn.Module):
    """``backbone(points).global_feature``: the one-tensor forward a graph holds."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, points: Tensor) -> Tensor:
        return self.backbone(points).global_feature


def example_clouds(batch: int, num_points: int, seed: int) -> Tensor:
    """``(batch, num_points, 3)`` clouds as the encoder sees them: centred, farthest point at radius 1."""
    points = torch.randn(batch, num_points, 3, generator=torch.Generator().manual_seed(seed))
    points = points - points.mean(dim=1, keepdim=True)
    return points / points.norm(dim=-1).amax(dim=1).view(-1, 1, 1)


def relative_difference(graph: Tensor, eager: Tensor) -> float:
    """``max |graph - eager| / max |eager|``: the difference on the features' own scale."""
    return float((graph.float() - eager.float()).abs().max() / eager.float().abs().max().clamp_min(1e-12))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' own output (the tracer's warnings, the graph torch prints from C++ or logs when an
    export fails): a failure is reported as one line by :func:`_refuse`, and success is decided by :func:`_check`."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved, disabled = [os.dup(fd) for fd in (1, 2)], logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with open(os.devnull, "w") as null, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for fd in (1, 2):
                os.dup2(null.fileno(), fd)
            yield
    finally:
        for fd, copy in zip((1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)
        logging.disable(disabled)


def _eager(backbone: nn.Module, points: Tensor) -> Tensor:
    with torch.no_grad():
        return GlobalFeature(backbone).eval()(points)


def _refuse(path: Path, backbone: nn.Module, what: str, err: Exception) -> PretrainedError:
    return PretrainedError(
        f"{path}: {type(backbone).__name__} cannot be exported to {what} "
        f"({type(err).__name__}: {first_sentence(err)}); "
        "export a folder or a .pt file instead"
    )


def _check(path: Path, backbone: nn.Module, what: str, run: object, points: Tensor) -> float:
    """The maximum relative difference of ``run(points)`` to the eager backbone; refused above TOLERANCE."""
    diff = relative_difference(torch.as_tensor(run(points)), _eager(backbone, points))  # type: ignore[operator]
    if not diff <= TOLERANCE:
        raise PretrainedError(
            f"{path}: the {what} graph of {type(backbone).__name__} does not reproduce the backbone "
            f"(max relative difference {diff:.2e} > {TOLERANCE:g}); export a folder or a .pt file instead"
        )
    return diff


def export_onnx(
    backbone: nn.Module, path: Path, num_points: int, metadata: dict[str, str], opset: int = OPSET
) -> float:
    """Write ``backbone`` as an ONNX graph at ``path`` (with ``metadata`` as its metadata properties and
    ``metadata["card"]`` as its doc string); returns the checked maximum relative difference."""
    onnx = require("onnx", "ONNX export")
    ort = require("onnxruntime", "ONNX export (its check)")
    model = GlobalFeature(backbone).eval()
    checked: list[float] = []

    def write(tmp: Path) -> None:
        try:
            with torch.no_grad(), _quiet():
                torch.onnx.export(model, (example_clouds(TRACE_BATCH, num_points, 0),), str(tmp), dynamo=False,
                                  input_names=["points"], output_names=["global_feature"], opset_version=opset,
                                  dynamic_axes={"points": {0: "batch"}, "global_feature": {0: "batch"}})
        except Exception as err:  # the exporter raises many types for an unsupported operator
            raise _refuse(path, backbone, f"ONNX (opset {opset})", err) from None
        proto = onnx.load(str(tmp))
        proto.doc_string = metadata.get("card", "")
        for key, value in metadata.items():
            if key != "card":
                proto.metadata_props.add(key=key, value=value)
        onnx.save(proto, str(tmp))
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        run = lambda p: session.run(None, {"points": p.numpy()})[0]  # noqa: E731
        checked.append(_check(path, backbone, "ONNX", run, example_clouds(CHECK_BATCH, num_points, 1)))

    write_atomically(path, write)
    return checked[0]


def export_program(backbone: nn.Module, path: Path, num_points: int, extra_files: dict[str, str]) -> float:
    """Write ``backbone`` as a ``torch.export`` program at ``path`` (``extra_files`` stored inside);
    returns the checked maximum relative difference."""
    model = GlobalFeature(backbone).eval()
    batch = torch.export.Dim("batch", min=1)
    checked: list[float] = []

    def write(tmp: Path) -> None:
        try:
            with torch.no_grad(), _quiet():
                program = torch.export.export(model, (example_clouds(TRACE_BATCH, num_points, 0),),
                                              dynamic_shapes=({0: batch},))
            buffer = io.BytesIO()  # through a buffer: torch.export wants files named *.pt2, the temporary one is not
            torch.export.save(program, buffer, extra_files=extra_files)
        except Exception as err:  # torch.export raises many types for code it cannot trace
            raise _refuse(path, backbone, "torch.export", err) from None
        tmp.write_bytes(buffer.getvalue())
        loaded = torch.export.load(io.BytesIO(tmp.read_bytes())).module()

        def run(points: Tensor) -> Tensor:
            with torch.no_grad():
                return loaded(points)

        checked.append(_check(path, backbone, "torch.export", run, example_clouds(CHECK_BATCH, num_points, 1)))

    write_atomically(path, write)
    return checked[0]


def graph_metadata(config: dict[str, object], card: str) -> dict[str, str]:
    """String metadata for a graph file: each config field (JSON for non-strings) and the card."""
    fields = {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}
    return {**fields, "card": card}
