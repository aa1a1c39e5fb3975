"""Where a backbone comes from: a pointdwc training checkpoint, a file of ``pointdwc export``, or nowhere.

One module reads both sources, each file once and with ``weights_only=True``; the plain-file
format itself (writing, reading, building, strict loading) is :mod:`backbones.pretrained`'s.

**The encoder inside a training checkpoint** (:func:`load_checkpoint_encoder`, for ``embed``,
``export`` and ``attention``): the teacher's (or student's) backbone, ready to embed. A checkpoint
holds the weights of both networks; to rebuild the backbone it also needs the backbone's class
path and init args. They are looked up, in this order, in

1. ``--config`` files given by the user (``configs/default.yaml`` first, as ``fit`` does),
2. the checkpoint's hyperparameters (``backbone``: class path and init args, recorded
   since pointdwc keeps them; before, only the class path),
3. the resolved config the CLI puts into each checkpoint (``pointdwc_config``),
4. the ``config.yaml`` of the run folder the checkpoint lies in (older checkpoints),

and the weights must then fit exactly.

**A downstream backbone's weights** (``--ckpt FILE`` of ``finetune``, ``partseg``, ``fewshot``):
:func:`read_source` accepts

* a pointdwc pretraining checkpoint (Lightning ``.ckpt``): its teacher's backbone by default,
  the student's with ``network: student`` (as above);
* a file written by ``pointdwc export``: the network it holds.

:func:`init_backbone_from` copies those weights into the backbone a downstream config built,
after checking it is the same architecture: the same class and the same init args, except
the ones that only regularise training (:data:`TRAINING_ONLY_ARGS`, e.g. drop path, which
fine-tuning sets anew); :func:`build_from_source` builds the source's own backbone. Anything
else — another backbone, a fine-tuning checkpoint, a file that is not pointdwc's — is refused.
No file means training from scratch (random initialisation), and the origin says so.

Every failure is one :class:`~backbones.pretrained.PretrainedError` naming the file and what is
missing.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import yaml
from torch import nn

from backbones.pretrained import (
    FORMAT,
    PretrainedError,
    backbone_config,
    build_backbone,
    check_pretrained,
    import_class,
    is_pretrained,
    load_torch_file,
    load_weights,
)
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


def _is_checkpoint(payload: Any) -> bool:
    """Whether a loaded file has a Lightning checkpoint's ``state_dict``."""
    return isinstance(payload, dict) and isinstance(payload.get("state_dict"), dict)


def _read_checkpoint(path: Path) -> dict[str, Any]:
    ckpt = load_torch_file(path, "PyTorch checkpoint", "checkpoint not found")
    if not _is_checkpoint(ckpt):
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
    _check_network(network)
    path = Path(path).expanduser()
    ckpt = _read_checkpoint(path)
    return _encoder(ckpt, path, network, [Path(f).expanduser() for f in config_files or []])


def _check_network(network: str) -> None:
    if network not in ("teacher", "student"):
        raise PretrainedError(f"network must be 'teacher' or 'student', got {network!r}")


def _encoder(ckpt: dict[str, Any], path: Path, network: Network, files: list[Path]) -> CheckpointEncoder:
    """The ``network``'s backbone of a checkpoint already read from ``path`` (see the module docstring)."""
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


# ---------------------------------------------------------------- downstream sources
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
    if is_pretrained(payload):
        exported = check_pretrained(payload, path)
        held = str(exported.get("network", "teacher"))
        if network is not None and network != held:
            raise PretrainedError(
                f"{path}: field 'network' is {held!r}: this exported file holds the {held}'s backbone, not the "
                f"{network}'s; export the {network} (`pointdwc export --ckpt_path CKPT --out OUT.pt --network {network}`) or pass the checkpoint"
            )
        step = exported.get("global_step")
        origin = BackboneOrigin("exported", str(path), held, file_sha256(path), step if isinstance(step, int) else None)
        return SourceBackbone(exported["class_path"], dict(exported["init_args"]), exported["state_dict"], origin)
    if _is_checkpoint(payload):
        state = payload["state_dict"]
        if not any(k.startswith(("teacher.backbone.", "student.backbone.")) for k in state):
            raise PretrainedError(
                f"{path}: field 'state_dict' has no teacher.backbone.* weights: not a pointdwc pretraining "
                f"checkpoint{_finetune_hint(payload)}"
            )
        _check_network(network or "teacher")
        encoder = _encoder(payload, path, network or "teacher", [])
        origin = BackboneOrigin("checkpoint", str(path), encoder.network, encoder.sha256, encoder.global_step)
        return SourceBackbone(encoder.class_path, encoder.init_args, encoder.backbone.state_dict(), origin)
    raise PretrainedError(
        f"{path}: neither a pointdwc pretraining checkpoint (no field 'state_dict') nor a file of `pointdwc export` "
        f"(field 'format' is not {FORMAT!r})"
    )


def backbone_spec(backbone: nn.Module) -> tuple[type, dict[str, Any]]:
    """The class and init args of a built backbone (``init_args()`` of :class:`~backbones.base.PointBackbone`)."""
    config = backbone_config(backbone)
    args = config["init_args"] if isinstance(config, dict) else {}
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
