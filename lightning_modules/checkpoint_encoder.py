"""Where a backbone comes from: a pointdwc training checkpoint, an exported backbone, or nowhere.

One module reads every source, each once and without unpickling code; the exported formats
themselves are :mod:`backbones.pretrained` (``.pt``), :mod:`backbones.pretrained_folder`
(``model.safetensors`` + ``config.json``) and :mod:`backbones.hub` (a Hugging Face Hub id,
fetched into its cache), located and read by :mod:`backbones.pretrained_source`. Every command
that takes a pretrained backbone (``embed``, ``attention``, ``finetune``, ``partseg``,
``fewshot``) accepts all four:

* a pointdwc pretraining checkpoint (Lightning ``.ckpt``): its teacher's backbone by default,
  the student's with ``network: student``;
* a ``.pt`` file, a folder or a Hub repository id (``user/name``) of ``pointdwc export``: the
  network it holds.

**The encoder inside a training checkpoint** (:func:`load_checkpoint_encoder`, for ``embed``,
``export`` and ``attention``, which also take the exported sources): a checkpoint holds the
weights of both networks; to rebuild the backbone it also needs the backbone's class path and
init args. They are looked up, in this order, in

1. ``--config`` files given by the user (``configs/default.yaml`` first, as ``fit`` does),
2. the checkpoint's hyperparameters (``backbone``: class path and init args, recorded
   since pointdwc keeps them; before, only the class path),
3. the resolved config the CLI puts into each checkpoint (``pointdwc_config``),
4. the ``config.yaml`` of the run folder the checkpoint lies in (older checkpoints),

and the weights must then fit exactly.

**A downstream backbone's weights** (``--ckpt_path``/``pretrained`` of ``finetune``, ``partseg``,
``fewshot``): :func:`init_backbone_from` copies the weights of :func:`read_source` into the
backbone a downstream config built, after checking it is the same architecture: the same class
and the same init args, except the ones that only regularise training
(:data:`TRAINING_ONLY_ARGS`, e.g. drop path, which fine-tuning sets anew);
:func:`build_from_source` builds the source's own backbone. Anything else — another backbone, a
fine-tuning checkpoint, a file that is not pointdwc's — is refused. No source means training
from scratch (random initialisation), and the origin says so.

Every failure is one :class:`~backbones.pretrained.PretrainedError` naming the file and what is
missing.
"""

from __future__ import annotations

import dataclasses
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
    load_weights,
)
from backbones.pretrained_source import locate, read_local, weights_file
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
    probes: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    """The probe results saved in the checkpoint (``protocol``, ``step``, ``metrics``; see
    ``LinearProbe.state_dict``), for the exported model card."""


def saved_probes(ckpt: dict[str, Any]) -> list[dict[str, Any]]:
    """The callbacks' states in a checkpoint that are probe results (a protocol line and metrics)."""
    states = ckpt.get("callbacks")
    if not isinstance(states, dict):
        return []
    return [dict(state) for state in states.values() if isinstance(state, dict)
            and isinstance(state.get("protocol"), str) and isinstance(state.get("metrics"), dict)]


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
    """Rebuild the ``network``'s backbone of ``path`` (eval mode, CPU): a training checkpoint, or an exported
    ``.pt``, folder or Hub id (then ``network`` must be the one it holds and ``config_files`` are not used)."""
    _check_network(network)
    local = locate(path, "checkpoint not found")
    payload = read_local(local, "PyTorch checkpoint")
    if is_pretrained(payload):
        return _exported_encoder(check_pretrained(payload, local), str(path), local, network)
    if not _is_checkpoint(payload):
        raise PretrainedError(f"{local}: field 'state_dict' is missing: not a Lightning checkpoint")
    return _encoder(payload, local, network, [Path(f).expanduser() for f in config_files or []])


def _exported_encoder(payload: dict[str, Any], source: str, local: Path, network: Network) -> CheckpointEncoder:
    """The backbone of an exported file, folder or Hub id, as a :class:`CheckpointEncoder`."""
    _held_network(payload, source, network)
    backbone = build_backbone(payload["class_path"], payload["init_args"], source)
    load_weights(backbone, payload["state_dict"], source)
    step = payload.get("global_step")
    return CheckpointEncoder(
        backbone=backbone.eval(),
        class_path=payload["class_path"],
        init_args=dict(payload["init_args"]),
        network=network,
        checkpoint=Path(source),
        sha256=file_sha256(weights_file(local)),
        config=yaml.safe_dump({"model": {"backbone": {"class_path": payload["class_path"],
                                                      "init_args": dict(payload["init_args"])}}}, sort_keys=False),
        spec_source=f"the exported backbone {source}",
        global_step=step if isinstance(step, int) else None,
        probes=[dict(p) for p in payload.get("probes") or [] if isinstance(p, dict)],
    )


def _held_network(payload: dict[str, Any], source: str, network: Network | None) -> str:
    """The network an exported backbone holds; a PretrainedError when another one was asked for."""
    held = str(payload.get("network", "teacher"))
    if network is not None and network != held:
        raise PretrainedError(
            f"{source}: field 'network' is {held!r}: this exported backbone holds the {held}'s backbone, not the "
            f"{network}'s; export the {network} (`pointdwc export --ckpt_path CKPT --out OUT --network {network}`) "
            "or pass the checkpoint"
        )
    return held


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
        probes=saved_probes(ckpt),
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
    """The backbone spec and weights of a pretraining checkpoint or an exported ``.pt``, folder or Hub id."""
    local = locate(path, "pretrained file not found")
    payload = read_local(local, "pointdwc checkpoint or exported backbone")
    if is_pretrained(payload):
        exported = check_pretrained(payload, local)
        held = _held_network(exported, str(path), network)
        step = exported.get("global_step")
        origin = BackboneOrigin("exported", str(path), held, file_sha256(weights_file(local)),
                                step if isinstance(step, int) else None)
        return SourceBackbone(exported["class_path"], dict(exported["init_args"]), exported["state_dict"], origin)
    if _is_checkpoint(payload):
        state = payload["state_dict"]
        if not any(k.startswith(("teacher.backbone.", "student.backbone.")) for k in state):
            raise PretrainedError(
                f"{local}: field 'state_dict' has no teacher.backbone.* weights: not a pointdwc pretraining "
                f"checkpoint{_finetune_hint(payload)}"
            )
        _check_network(network or "teacher")
        encoder = _encoder(payload, local, network or "teacher", [])
        origin = BackboneOrigin("checkpoint", str(local), encoder.network, encoder.sha256, encoder.global_step)
        return SourceBackbone(encoder.class_path, encoder.init_args, encoder.backbone.state_dict(), origin)
    raise PretrainedError(
        f"{local}: neither a pointdwc pretraining checkpoint (no field 'state_dict') nor a file of `pointdwc export` "
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
