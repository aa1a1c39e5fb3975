"""The encoder inside a training checkpoint: the teacher's (or student's) backbone, ready to embed.

A checkpoint holds the weights of both networks; to rebuild the backbone it also needs
the backbone's class path and init args. They are looked up, in this order, in

1. ``--config`` files given by the user (``configs/default.yaml`` first, as ``fit`` does),
2. the checkpoint's hyperparameters (``backbone``: class path and init args, recorded
   since pointdwc keeps them; before, only the class path),
3. the resolved config the CLI puts into each checkpoint (``pointdwc_config``),
4. the ``config.yaml`` of the run folder the checkpoint lies in (older checkpoints),

and the weights must then fit exactly. Every failure is one :class:`PretrainedError`
naming the checkpoint and what is missing. The file is read with ``weights_only=True``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from torch import nn

from backbones.pretrained import PretrainedError, build_backbone, load_torch_file, load_weights
from configs import shipped_config

Network = Literal["teacher", "student"]

CONFIG_KEY = "pointdwc_config"
"""Checkpoint entry with the run's resolved config as YAML text (written by the CLI)."""

DEFAULT_CONFIG = shipped_config("default.yaml")


@dataclass
class CheckpointEncoder:
    """A backbone rebuilt from a checkpoint, and where it came from."""

    backbone: nn.Module
    """In eval mode, on the CPU."""
    class_path: str
    init_args: dict[str, Any]
    network: Network
    checkpoint: Path
    sha256: str
    """Of the checkpoint file."""
    config: str
    """The training config as YAML (or, for checkpoints without one, the hyperparameters)."""
    spec_source: str
    """Where the class path and init args were found (for messages)."""
    global_step: int | None = None


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _read_checkpoint(path: Path) -> dict[str, Any]:
    ckpt = load_torch_file(path, "PyTorch checkpoint", "checkpoint not found")
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise PretrainedError(f"{path}: field 'state_dict' is missing: not a Lightning checkpoint")
    return ckpt


def _backbone_section(config: Any) -> tuple[str, dict[str, Any]] | None:
    """``model.backbone``'s class path and init args of a parsed config, if it has them."""
    backbone = config.get("model", {}).get("backbone") if isinstance(config, dict) else None
    if isinstance(backbone, dict) and isinstance(backbone.get("class_path"), str):
        return backbone["class_path"], dict(backbone.get("init_args") or {})
    return None


def backbone_from_configs(files: list[Path]) -> tuple[str, dict[str, Any]] | None:
    """``model.backbone`` of ``configs/default.yaml`` overridden by ``files`` in order (as ``fit`` merges them)."""
    spec: tuple[str, dict[str, Any]] | None = None
    for file in [DEFAULT_CONFIG, *files]:
        try:
            found = _backbone_section(yaml.safe_load(Path(file).read_text()))
        except (OSError, yaml.YAMLError) as err:
            raise PretrainedError(f"{file}: not a readable YAML config ({err})") from None
        if found is None:
            continue
        if spec is not None and found[0] == spec[0]:
            spec = (spec[0], {**spec[1], **found[1]})
        else:
            spec = found
    return spec


def _spec(ckpt: dict[str, Any], path: Path, config_files: list[Path]) -> tuple[str, dict[str, Any], str]:
    """Class path, init args and where they were found (see the module docstring for the order)."""
    if config_files:
        spec = backbone_from_configs(config_files)
        if spec is not None:
            return *spec, f"--config {' '.join(map(str, config_files))}"
    hparams = ckpt.get("hyper_parameters") or {}
    spec = _backbone_section({"model": hparams})
    if spec is not None and isinstance(hparams["backbone"].get("init_args"), dict):
        return *spec, "the checkpoint's hyperparameters"
    if isinstance(ckpt.get(CONFIG_KEY), str):
        spec = _backbone_section(yaml.safe_load(ckpt[CONFIG_KEY]))
        if spec is not None:
            return *spec, "the config stored in the checkpoint"
    beside = path.absolute().parent.parent / "config.yaml"
    if path.parent.name == "checkpoints" and beside.is_file():
        spec = backbone_from_configs([beside])
        if spec is not None:
            return *spec, str(beside)
    raise PretrainedError(
        f"{path}: the checkpoint does not record its backbone's init args (field 'hyper_parameters."
        "backbone.init_args'; it predates them) and no config.yaml lies beside its checkpoints/ folder: "
        "pass --config with the YAML file(s) it was trained with"
    )


def _config_text(ckpt: dict[str, Any], class_path: str, init_args: dict[str, Any]) -> str:
    if isinstance(ckpt.get(CONFIG_KEY), str):
        return ckpt[CONFIG_KEY]
    hparams = dict(ckpt.get("hyper_parameters") or {})
    hparams["backbone"] = {"class_path": class_path, "init_args": init_args}
    return yaml.safe_dump({"model": hparams}, sort_keys=False)


def load_checkpoint_encoder(
    path: str | os.PathLike, network: Network = "teacher", config_files: list[str | os.PathLike] | None = None
) -> CheckpointEncoder:
    """Rebuild the ``network``'s backbone of the checkpoint at ``path`` (eval mode, CPU)."""
    if network not in ("teacher", "student"):
        raise PretrainedError(f"network must be 'teacher' or 'student', got {network!r}")
    path = Path(path).expanduser()
    ckpt = _read_checkpoint(path)
    files = [Path(f).expanduser() for f in config_files or []]
    class_path, init_args, source = _spec(ckpt, path, files)
    prefix = f"{network}.backbone."
    weights = {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    if not weights:
        raise PretrainedError(f"{path}: field 'state_dict' has no {prefix}* weights: not a pointdwc checkpoint")
    where = f"{path} (backbone {class_path} from {source})"
    backbone = build_backbone(class_path, init_args, where)
    load_weights(backbone, weights, where)
    step = ckpt.get("global_step")
    return CheckpointEncoder(
        backbone=backbone.eval(),
        class_path=class_path,
        init_args=init_args,
        network=network,
        checkpoint=path,
        sha256=file_sha256(path),
        config=_config_text(ckpt, class_path, init_args),
        spec_source=source,
        global_step=int(step) if isinstance(step, int) else None,
    )
