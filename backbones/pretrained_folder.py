"""A pretrained backbone as a folder: ``model.safetensors`` + ``config.json`` + ``README.md``.

The Hugging Face layout, readable without pointdwc's training code and without pickle:

* ``model.safetensors``: the backbone's ``state_dict`` (safetensors: tensors only, no code);
* ``config.json``: the fields of an exported ``.pt`` file (:mod:`backbones.pretrained`) except
  the weights: ``format``, ``version``, ``class_path``, ``init_args``, plus what a user needs to
  feed it (``num_points``, ``normalisation``, ``out_dim``) and where it came from;
* ``README.md``: the model card (written by ``pointdwc export``, not read back).

:func:`read_folder` returns the same dictionary as ``torch.load`` of an exported ``.pt`` file
(:func:`backbones.pretrained_source.read_local` reads either), so everything after reading is one code path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from backbones.optional import require
from backbones.pretrained import FORMAT, VERSION, PretrainedError, check_pretrained

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
CARD = "README.md"


def write_folder(folder: Path, backbone: nn.Module, config: dict[str, Any], card: str) -> Path:
    """Write the three files into ``folder`` (an existing, empty folder); ``config`` holds plain JSON types.

    ``format`` and ``version`` are set here; ``class_path`` and ``init_args`` must be in ``config``.
    """
    safetensors_torch = require("safetensors.torch", "a pretrained folder (model.safetensors)")
    for field in ("class_path", "init_args"):
        if field not in config:
            raise ValueError(f"write_folder: config lacks {field!r}")
    weights = {k: v.detach().cpu().contiguous().clone() for k, v in backbone.state_dict().items()}
    safetensors_torch.save_file(weights, str(folder / WEIGHTS), metadata={"format": "pt"})
    payload = {"format": FORMAT, "version": VERSION, **config}
    (folder / CONFIG).write_text(json.dumps(payload, indent=2) + "\n")
    (folder / CARD).write_text(card)
    return folder


def read_folder(folder: Path) -> dict[str, Any]:
    """``config.json`` with ``state_dict`` from ``model.safetensors``, checked as an exported ``.pt`` is."""
    config_file, weights_file = folder / CONFIG, folder / WEIGHTS
    if not config_file.is_file():
        raise PretrainedError(f"{folder}: no {CONFIG}: not a folder of `pointdwc export`")
    try:
        config = json.loads(config_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PretrainedError(f"{config_file}: not readable JSON ({err})") from None
    if not isinstance(config, dict) or "state_dict" in config:
        raise PretrainedError(f"{config_file}: not a JSON object of a pointdwc backbone's fields")
    if not weights_file.is_file():
        raise PretrainedError(f"{folder}: no {WEIGHTS} beside {CONFIG}")
    safetensors_torch = require("safetensors.torch", "a pretrained folder (model.safetensors)")
    try:
        state: dict[str, torch.Tensor] = safetensors_torch.load_file(str(weights_file), device="cpu")
    except Exception as err:  # safetensors raises its own error types for a corrupt file
        raise PretrainedError(f"{weights_file}: not a readable safetensors file ({type(err).__name__})") from None
    return check_pretrained({**config, "state_dict": state}, config_file)
