"""A pretrained backbone as a plain PyTorch file: class path, init args and weights.

``pointdwc export --ckpt_path CKPT --out encoder.pt`` writes one;
:func:`backbones.pretrained_source.load_pretrained` turns it (or a folder of
:mod:`backbones.pretrained_folder`, or a Hub id) back into the ready ``nn.Module`` (eval mode)
with nothing but PyTorch and this package::

    from backbones import load_pretrained
    encoder = load_pretrained("encoder.pt")
    feature = encoder(points).global_feature        # points (B, N, 3), centred, unit sphere

The file holds only plain types and tensors, so ``torch.load(path, weights_only=True)``
reads it (no pickled code is ever executed).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

FORMAT = "pointdwc-backbone"
"""Value of the file's ``format`` field."""

VERSION = 1
"""Bumped when the fields change."""


class PretrainedError(ValueError):
    """A pretrained-backbone file (or what it names) cannot be used; the message names the file and field."""


def first_sentence(err: Exception) -> str:
    """The first sentence of an error (torch's unpickling errors run to a page)."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return text.split(". ")[0][:200]


def import_class(class_path: str, where: str) -> type[nn.Module]:
    """The ``nn.Module`` class at ``class_path`` (``package.module.Class``); ``where`` names its source."""
    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name) if module else None
    except (ImportError, AttributeError):
        cls = None
    if not isinstance(cls, type) or not issubclass(cls, nn.Module):
        raise PretrainedError(f"{where}: class_path {class_path!r} is not an importable torch.nn.Module class")
    return cls


def build_backbone(class_path: str, init_args: dict[str, Any], where: str) -> nn.Module:
    """Instantiate the backbone ``class_path(**init_args)``; ``where`` names the source in errors."""
    cls = import_class(class_path, where)
    try:
        return cls(**init_args)
    except TypeError as err:
        raise PretrainedError(f"{where}: init_args do not fit {class_path} ({err})") from None


def backbone_config(backbone: nn.Module) -> dict[str, Any] | str:
    """``{class_path, init_args}`` that :func:`build_backbone` rebuilds ``backbone`` from, or only its class
    path when it does not tell its init args (``PointBackbone.init_args``)."""
    class_path = f"{type(backbone).__module__}.{type(backbone).__qualname__}"
    init_args = getattr(backbone, "init_args", None)
    try:
        return {"class_path": class_path, "init_args": init_args()} if init_args is not None else class_path
    except AttributeError:
        return class_path


@dataclass(frozen=True)
class StateDictMismatch:
    """How a state dict (a file's, a checkpoint's) differs from a module's: the keys that do not fit."""

    missing: list[str]
    """The module's keys the state dict lacks (in the module's order)."""
    unexpected: list[str]
    """The state dict's keys the module lacks (in the state dict's order)."""
    reshaped: list[str]
    """Keys of both whose tensors differ in shape (in the module's order)."""

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.reshaped)


def state_dict_mismatch(own: Mapping[str, torch.Tensor], given: Mapping[str, Any]) -> StateDictMismatch:
    """What of ``given`` does not fit ``own`` (a module's ``state_dict()``): missing, unexpected, reshaped keys."""
    return StateDictMismatch(
        missing=[k for k in own if k not in given],
        unexpected=[k for k in given if k not in own],
        reshaped=[k for k, v in own.items() if k in given and tuple(given[k].shape) != tuple(v.shape)],
    )


def checkpoint_state_dict(checkpoint: Mapping[str, Any], what: str = "Lightning checkpoint") -> dict[str, Any]:
    """The ``state_dict`` of a loaded training checkpoint; a ValueError naming ``what`` it is not, if it has none."""
    state = checkpoint.get("state_dict")
    if not isinstance(state, dict):
        raise ValueError(f"the checkpoint has no 'state_dict': it is not a {what}")
    return state


def load_weights(backbone: nn.Module, state_dict: dict[str, torch.Tensor], where: str) -> None:
    """Load ``state_dict`` strictly; one message listing what does not fit."""
    differ = state_dict_mismatch(backbone.state_dict(), state_dict)
    if differ:
        missing, unexpected, reshaped = differ.missing, differ.unexpected, differ.reshaped
        raise PretrainedError(
            f"{where}: the weights do not fit {type(backbone).__name__}: {len(missing)} missing "
            f"(e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]}), "
            f"{len(reshaped)} of another shape (e.g. {reshaped[:2]})"
        )
    backbone.load_state_dict(state_dict)


def save_pretrained(
    backbone: nn.Module, path: str | os.PathLike, class_path: str, init_args: dict[str, Any], **source: Any
) -> Path:
    """Write the backbone's weights, class path, init args and ``source`` fields (plain types) to ``path``.

    Written to a temporary file in the same folder first, so ``path`` is never half-written.
    """
    path = Path(path)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "class_path": class_path,
        "init_args": dict(init_args),
        "state_dict": {k: v.detach().cpu().clone() for k, v in backbone.state_dict().items()},
        **source,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_torch_file(path: Path, what: str = "PyTorch file", missing: str = "no such file") -> Any:
    """``torch.load(weights_only=True)`` on CPU; a missing or unreadable file is one PretrainedError."""
    if not path.is_file():
        raise PretrainedError(f"{path}: {missing}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a corrupt or foreign file
        reason = f"{type(err).__name__}: {first_sentence(err)}"
        raise PretrainedError(f"{path}: not a readable {what} ({reason})") from None


def is_pretrained(payload: Any) -> bool:
    """Whether a loaded file says it is one :func:`save_pretrained` wrote (its ``format`` field)."""
    return isinstance(payload, dict) and payload.get("format") == FORMAT


def check_pretrained(payload: Any, path: Path) -> dict[str, Any]:
    """The contents of the file at ``path``, already loaded, once its fields are checked (else PretrainedError)."""
    if not is_pretrained(payload):
        hint = " (a training checkpoint? convert it with `pointdwc export CKPT OUT.pt`)" if (
            isinstance(payload, dict) and "state_dict" in payload and "format" not in payload
        ) else ""
        raise PretrainedError(f"{path}: field 'format' is not {FORMAT!r}: not an exported pointdwc backbone{hint}")
    if payload.get("version", 0) > VERSION:
        raise PretrainedError(f"{path}: field 'version' is {payload['version']}, newer than this pointdwc ({VERSION})")
    for field, kind in (("class_path", str), ("init_args", dict), ("state_dict", dict)):
        if not isinstance(payload.get(field), kind):
            raise PretrainedError(f"{path}: field {field!r} is missing or not a {kind.__name__}")
    return payload
