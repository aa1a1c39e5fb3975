"""Where a pretrained backbone is read from: a ``.pt`` file, a folder, or a Hugging Face Hub id.

:func:`locate` turns the user's string into a local path (an existing file or folder, else a
Hub repository id downloaded through ``huggingface_hub``'s cache); :func:`read_local` reads
that path once (a folder's ``config.json`` + ``model.safetensors``, or ``torch.load`` with
``weights_only=True``). ``lightning_modules.checkpoint_encoder`` reads every pretrained source
through these two, then tells a training checkpoint from an exported backbone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from backbones.hub import download, is_repo_id
from backbones.pretrained import PretrainedError, build_backbone, check_pretrained, load_torch_file, load_weights
from backbones.pretrained_folder import CONFIG, WEIGHTS, read_folder

GRAPH_SUFFIXES = {".onnx": "onnxruntime.InferenceSession", ".pt2": "torch.export.load(PATH).module()"}
"""Exported graphs are run by their runtime, not rebuilt as a pointdwc backbone."""


def locate(source: str | os.PathLike, missing: str = "no such file or folder") -> Path:
    """The local file or folder of ``source``: the path itself if it exists, else a Hub repo id's snapshot
    (``missing`` says what a path that is neither is)."""
    path = Path(source).expanduser()
    if path.exists():
        if path.suffix in GRAPH_SUFFIXES:
            raise PretrainedError(
                f"{path}: an exported graph, not a backbone to rebuild; run it with {GRAPH_SUFFIXES[path.suffix]}"
            )
        return path
    if isinstance(source, str) and is_repo_id(source):
        return download(source)
    raise PretrainedError(f"{path}: {missing}")


def read_local(path: Path, what: str = "exported pointdwc backbone") -> Any:
    """The contents of a located source: a folder's fields and weights, or the loaded PyTorch file."""
    return read_folder(path) if path.is_dir() else load_torch_file(path, what)


def weights_file(path: Path) -> Path:
    """The file holding a located source's weights (for its SHA-256)."""
    return path / WEIGHTS if path.is_dir() else path


def load_pretrained(source: str | os.PathLike, map_location: str | torch.device = "cpu") -> nn.Module:
    """The backbone stored in ``source`` (a ``.pt`` file, a folder or a Hub repo id), in eval mode.

    ``pointdwc export`` writes the first two; a Hub id (``user/name``) is fetched through
    ``huggingface_hub`` (its cache and ``HF_HUB_OFFLINE`` apply).
    """
    path = locate(source)
    payload = check_pretrained(read_local(path), path)
    spec = path / CONFIG if path.is_dir() else path  # errors name the file that holds what is wrong
    backbone = build_backbone(payload["class_path"], payload["init_args"], str(spec))
    load_weights(backbone, payload["state_dict"], str(weights_file(path)))
    return backbone.to(map_location).eval()
