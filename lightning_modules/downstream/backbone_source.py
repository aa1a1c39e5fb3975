"""Where a downstream backbone's weights come from: a pretraining checkpoint, an exported file, or nowhere.

``--ckpt FILE`` accepts

* a pointdwc pretraining checkpoint (Lightning ``.ckpt``): its teacher's backbone by default,
  the student's with ``network: student`` (:mod:`lightning_modules.checkpoint_encoder`);
* a file written by ``pointdwc export`` (:mod:`backbones.pretrained`): the network it holds.

:func:`init_backbone_from` copies those weights into the backbone a downstream config built,
after checking it is the same architecture: the same class and the same init args, except
the ones that only regularise training (:data:`TRAINING_ONLY_ARGS`, e.g. drop path, which
fine-tuning sets anew). Anything else — another backbone, a fine-tuning checkpoint, a file
that is not pointdwc's — is one :class:`~backbones.pretrained.PretrainedError` naming the file.
No file means training from scratch (random initialisation), and the origin says so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from backbones.pretrained import FORMAT, PretrainedError, build_backbone, import_class, load_torch_file, load_weights, read_pretrained
from lightning_modules.checkpoint_encoder import file_sha256, load_checkpoint_encoder

Network = Literal["teacher", "student"]

TRAINING_ONLY_ARGS = frozenset({"drop_path"})
"""Init args a downstream config may change without changing the architecture or its weights."""


@dataclass
class BackboneOrigin:
    """What a backbone was initialised from, for protocol lines and result files."""

    kind: Literal["scratch", "checkpoint", "exported"]
    path: str | None = None
    network: str | None = None
    sha256: str | None = None
    global_step: int | None = None

    @property
    def pretrained(self) -> bool:
        return self.kind != "scratch"

    def describe(self) -> str:
        """One phrase: ``pretrained teacher of FILE (…)`` or ``random initialisation (from scratch)``."""
        if self.kind == "scratch":
            return "random initialisation (from scratch)"
        what = "pointdwc checkpoint" if self.kind == "checkpoint" else "exported backbone"
        step = f", step {self.global_step}" if self.global_step is not None else ""
        return f"pretrained {self.network} of {self.path} ({what}{step}, sha256 {str(self.sha256)[:12]})"


@dataclass
class SourceBackbone:
    """A source's backbone spec and weights, before they go into a module."""

    class_path: str
    init_args: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    origin: BackboneOrigin


def _finetune_hint(payload: Any) -> str:
    state = payload.get("state_dict") if isinstance(payload, dict) else None
    if isinstance(state, dict) and any(k.startswith("backbone.") for k in state) and any(k.startswith("head.") for k in state):
        return " (it is a fine-tuning checkpoint: evaluate it with `pointdwc finetune test --ckpt_path FILE`)"
    return ""


def read_source(path: str | os.PathLike, network: Network | None = None) -> SourceBackbone:
    """The backbone spec and weights of a pretraining checkpoint or an exported file (see the module docstring)."""
    path = Path(path).expanduser()
    payload = load_torch_file(path, "pointdwc checkpoint or exported backbone", "pretrained file not found")
    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        exported = read_pretrained(path)
        held = str(exported.get("network", "teacher"))
        if network is not None and network != held:
            raise PretrainedError(
                f"{path}: field 'network' is {held!r}: this exported file holds the {held}'s backbone, not the "
                f"{network}'s; export the {network} (`pointdwc export CKPT OUT.pt --network {network}`) or pass the checkpoint"
            )
        step = exported.get("global_step")
        origin = BackboneOrigin("exported", str(path), held, file_sha256(path), step if isinstance(step, int) else None)
        return SourceBackbone(exported["class_path"], dict(exported["init_args"]), exported["state_dict"], origin)
    if isinstance(payload, dict) and isinstance(payload.get("state_dict"), dict):
        state = payload["state_dict"]
        if not any(k.startswith(("teacher.backbone.", "student.backbone.")) for k in state):
            raise PretrainedError(
                f"{path}: field 'state_dict' has no teacher.backbone.* weights: not a pointdwc pretraining "
                f"checkpoint{_finetune_hint(payload)}"
            )
        encoder = load_checkpoint_encoder(path, network or "teacher")
        origin = BackboneOrigin("checkpoint", str(path), encoder.network, encoder.sha256, encoder.global_step)
        return SourceBackbone(encoder.class_path, encoder.init_args, encoder.backbone.state_dict(), origin)
    raise PretrainedError(
        f"{path}: neither a pointdwc pretraining checkpoint (no field 'state_dict') nor a file of `pointdwc export` "
        f"(field 'format' is not {FORMAT!r})"
    )


def backbone_spec(backbone: nn.Module) -> tuple[type, dict[str, Any]]:
    """The class and init args of a built backbone (``init_args()`` of :class:`~backbones.base.PointBackbone`)."""
    args = backbone.init_args() if hasattr(backbone, "init_args") else {}
    return type(backbone), {k: list(v) if isinstance(v, tuple) else v for k, v in args.items()}


def _same_architecture(source: SourceBackbone, backbone: nn.Module, field: str) -> None:
    """Refuse a source of another class or other architecture args, naming the file and what differs."""
    where = f"{source.origin.path}"
    cls, args = backbone_spec(backbone)
    theirs = import_class(source.class_path, where)
    wanted = f"{cls.__module__}.{cls.__qualname__}"
    if theirs is not cls:
        raise PretrainedError(
            f"{where}: holds a {source.class_path} backbone but {field} is a {wanted}: fine-tune it with the backbone "
            "it was pretrained with (the model.backbone of its pretraining config)"
        )
    given = {k: list(v) if isinstance(v, tuple) else v for k, v in source.init_args.items()}
    differ = [
        f"{k}: {given.get(k)!r} in the file vs {args.get(k)!r} configured"
        for k in sorted(set(given) | set(args))
        if k not in TRAINING_ONLY_ARGS and given.get(k) != args.get(k)
    ]
    if differ:
        raise PretrainedError(
            f"{where}: its {source.class_path} differs from {field} ({'; '.join(differ)}): configure the backbone it "
            "was pretrained with (the model.backbone of its pretraining config)"
        )


def init_backbone_from(
    backbone: nn.Module, path: str | os.PathLike | None, network: Network | None = None, field: str = "model.backbone"
) -> BackboneOrigin:
    """Load the weights of ``path`` into ``backbone`` (same architecture required); None: leave it as initialised."""
    if path is None:
        return BackboneOrigin("scratch")
    source = read_source(path, network)
    _same_architecture(source, backbone, field)
    load_weights(backbone, source.state_dict, f"{source.origin.path}")
    return source.origin


def build_from_source(path: str | os.PathLike, network: Network | None = None) -> tuple[nn.Module, SourceBackbone]:
    """The source's own backbone (its class and init args), weights loaded, in eval mode."""
    source = read_source(path, network)
    backbone = build_backbone(source.class_path, source.init_args, f"{source.origin.path}")
    load_weights(backbone, source.state_dict, f"{source.origin.path}")
    return backbone.eval(), source
