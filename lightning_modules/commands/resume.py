"""What ``pointdwc fit --ckpt_path`` does with settings that differ from the checkpoint's.

LightningCLI merges a checkpoint's ``hyper_parameters`` over the whole ``model`` section, so
``--model.optim.lr`` or a ``--config`` naming another backbone were silently replaced by the
checkpoint's values. Here, on resume:

* a ``model`` value the user gave (command line or ``--config``; a value equal to the
  configs' default counts as not given) that a resume can honour (:func:`honoured`: the
  optimiser and its schedules, teacher momentum and temperature schedules, the run's length,
  ``compile``) replaces the checkpoint's; values not given are the checkpoint's, as before;
* a given value that changes the network or the recipe's state (backbone class and init
  args, head sizes and K, contrast settings, the student temperature, centre momentum, loss
  weights, synchronised BatchNorm) or the crops (``data.crops``, ``data.num_points``, against
  the checkpoint's saved config) is refused: :class:`ResumeError` lists each field with both
  values;
* every difference applied, and the trainer's limits and the probe's settings that differ
  from the checkpoint's saved config, are printed, one line per field (old -> new).
"""

from __future__ import annotations

import importlib
from typing import Any

import yaml
from jsonargparse import Namespace

from lightning_modules.commands.run_folder import RunFolderError

HONOURED_MODEL = (
    "optim.",
    "teacher.",
    "distill.teacher_temp",
    "distill.warmup_teacher_temp",
    "distill.warmup_teacher_temp_epochs",
    "max_epochs",
    "batch_size",
    "compile",
)
"""``model`` fields (prefixes) a resumed run can take from the command line."""

LINKED_MODEL = ("batch_size", "max_epochs")
"""``model`` fields linked from ``data.batch_size`` / ``trainer.max_epochs``: always the user's."""

REFUSED_DATA = ("crops.", "num_points")
"""``data`` fields that change the recipe: refused when they differ from the checkpoint's config."""

REPORTED_TRAINER = ("max_epochs", "max_steps", "min_epochs", "min_steps", "max_time", "limit_", "accumulate_grad_batches",
                    "val_check_interval", "check_val_every_n_epoch", "gradient_clip")
"""``trainer`` fields (prefixes) whose change from the checkpoint's config is printed."""


class ResumeError(RunFolderError):
    """A resume asked for settings the checkpoint's network or recipe cannot take."""


def honoured(field: str) -> bool:
    """Whether a ``model`` field (without ``model.``) may differ from the checkpoint's on resume."""
    return any(field == p or (p.endswith(".") and field.startswith(p)) for p in HONOURED_MODEL)


def _plain(value: Any) -> Any:
    if isinstance(value, Namespace):
        value = value.as_dict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a.b.c": leaf}`` of nested dicts / Namespaces (lists and tuples are leaves, as lists)."""
    value = _plain(value)
    if not isinstance(value, dict):
        return {prefix: value}
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(item, dict) and item:
            out.update(flatten(item, name))
        else:
            out[name] = item
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or a == b and type(a) is type(b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return a == b


def _same_class(a: Any, b: Any) -> bool:
    """Whether two class paths name one class (``backbones.PointViT`` and ``backbones.point_vit.PointViT``)."""
    if a == b:
        return True
    if not isinstance(a, str) or not isinstance(b, str):
        return False
    classes = []
    for path in (a, b):
        module, _, name = path.rpartition(".")
        try:
            classes.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError, ValueError):
            return False
    return classes[0] is classes[1]


def _backbone_fields(flat: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in flat.items() if k.startswith("backbone")}


def model_differences(given: Any, defaults: Any, saved: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(field, checkpoint's value, given value)`` for each ``model`` field the user set to
    something else than the checkpoint's (``saved``: its ``hyper_parameters``)."""
    given_f, default_f, saved_f = flatten(given), flatten(defaults), flatten(saved)
    diffs: list[tuple[str, Any, Any]] = []
    given_bb, saved_bb = _backbone_fields(given_f), _backbone_fields(saved_f)
    bb_given = any(not _same(v, default_f.get(k)) for k, v in given_bb.items()) or given_bb.keys() != _backbone_fields(
        default_f
    ).keys()
    saved_class = saved_f.get("backbone.class_path", saved_f.get("backbone"))
    if bb_given and not _same_class(given_f.get("backbone.class_path"), saved_class):
        diffs.append(("backbone.class_path", saved_class, given_f.get("backbone.class_path")))
    elif bb_given:
        for key in sorted((set(given_bb) & set(saved_bb)) - {"backbone.class_path"}):
            if not _same(given_bb.get(key), saved_bb.get(key)):
                diffs.append((key, saved_bb.get(key), given_bb.get(key)))
    for key, value in given_f.items():
        if key.startswith("backbone") or key not in saved_f:
            continue
        explicit = key in LINKED_MODEL or not _same(value, default_f.get(key))
        if explicit and not _same(value, saved_f[key]):
            diffs.append((key, saved_f[key], value))
    return diffs


def section_differences(
    section: str, given: Any, saved_config: dict[str, Any], fields: tuple[str, ...]
) -> list[tuple[str, Any, Any]]:
    """``(section.field, saved, given)`` for the fields (prefixes) of ``section`` that differ
    from the checkpoint's saved config (fields it does not record are skipped)."""
    saved_f = flatten(saved_config.get(section) or {})
    diffs = []
    for key, value in flatten(given).items():
        if any(key.startswith(p) for p in fields) and key in saved_f and not _same(value, saved_f[key]):
            diffs.append((f"{section}.{key}", saved_f[key], value))
    return diffs


def saved_config(checkpoint: dict[str, Any], key: str) -> dict[str, Any]:
    """The config a checkpoint's run was started with (empty if it has none)."""
    text = checkpoint.get(key)
    try:
        loaded = yaml.safe_load(text) if isinstance(text, str) else None
    except yaml.YAMLError:
        loaded = None
    return loaded if isinstance(loaded, dict) else {}


def describe(diffs: list[tuple[str, Any, Any]]) -> list[str]:
    """One line per difference: ``field: old -> new``."""
    return [f"{field}: {old!r} -> {new!r}" for field, old, new in diffs]


def refusal(ckpt_path: str, diffs: list[tuple[str, Any, Any]]) -> ResumeError:
    """The one error naming every setting the checkpoint's run cannot take."""
    return ResumeError(
        f"cannot resume {ckpt_path} with another network or recipe ("
        + "; ".join(describe(diffs))
        + "): resume with the settings the run was started with (its config.yaml), or start a new run "
        "without --ckpt_path"
    )
