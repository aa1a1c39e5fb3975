"""Checks every command makes before it writes anything, and the one way a flag is spelled.

* :func:`check_checkpoint_file`: a checkpoint given to a command exists, ``torch.load(weights_only=True)``
  reads it and it is a pointdwc checkpoint of the kind the command needs — before a run folder exists;
* :func:`check_wandb_login`: a W&B logger that logs online needs a key (``WANDB_API_KEY`` or ``~/.netrc``),
  checked without importing wandb;
* :func:`refuse_existing_output`: an existing output is replaced only with ``--overwrite`` (and then
  through a temporary file beside it, :func:`datamodules.cache.write_atomically`);
* :func:`discard_unused_run_folder`: a run that failed before writing anything leaves no folder behind;
* :func:`renamed_flags`: old spellings of a flag keep working for one release, with a notice on stderr.

Every failure is one :class:`~datamodules.errors.DataError` or
:class:`~backbones.pretrained.PretrainedError` naming the file or field and what to do.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from backbones.pretrained import PretrainedError, load_torch_file
from datamodules.errors import DataError

WANDB_LOGIN_HINT = "run `wandb login`, set WANDB_API_KEY, or log offline (--trainer.logger.init_args.offline true)"
"""What to do when W&B would log online without a key."""


def renamed_flags(argv: list[str], renames: Mapping[str, str], prog: str) -> list[str]:
    """``argv`` with each old flag of ``renames`` (old -> new) replaced by its new spelling.

    Each old spelling used prints one line on stderr: ``PROG: --old is deprecated, use --new``.
    ``--old=value`` is rewritten too.
    """
    result: list[str] = []
    for arg in argv:
        flag, sep, value = arg.partition("=")
        if flag in renames:
            print(f"{prog}: {flag} is deprecated, use {renames[flag]}", file=sys.stderr)
            arg = renames[flag] + sep + value
        result.append(arg)
    return result


def check_checkpoint_file(path: str | os.PathLike, field: str, prefix: str, kind: str) -> None:
    """Refuse ``path`` (given as ``field``) unless it is a Lightning checkpoint whose weights start with ``prefix``.

    Raises:
        PretrainedError: one line naming the file, the option and what is wrong with it.
    """
    file = Path(path).expanduser()
    todo = f"give a {kind} checkpoint (a .ckpt under a run's checkpoints/ folder)"
    if not file.is_file():
        raise PretrainedError(f"{field}={path}: checkpoint not found; {todo}")
    try:
        payload = load_torch_file(file, f"PyTorch checkpoint (given as {field})", "checkpoint not found")
    except PretrainedError as err:
        raise PretrainedError(f"{err}; {todo}") from None
    state = payload.get("state_dict") if isinstance(payload, dict) else None
    if not isinstance(state, dict):
        raise PretrainedError(f"{field}={path}: field 'state_dict' is missing: not a Lightning checkpoint; {todo}")
    if not any(str(key).startswith(prefix) for key in state):
        raise PretrainedError(
            f"{field}={path}: field 'state_dict' has no {prefix}* weights: not a {kind} checkpoint; {todo}"
        )


def _netrc_has_wandb(home: Path) -> bool:
    """Whether a netrc file (``$NETRC`` or ``~/.netrc`` / ``~/_netrc``) holds a W&B host."""
    host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1].split("/")[0].split(":")[0]
    candidates = [Path(os.environ["NETRC"])] if os.environ.get("NETRC") else [home / ".netrc", home / "_netrc"]
    for file in candidates:
        try:
            if host in file.read_text(errors="replace"):
                return True
        except OSError:
            continue
    return False


def wandb_key_available() -> bool:
    """Whether W&B would find an API key (``WANDB_API_KEY`` or a netrc entry), without importing wandb."""
    return bool(os.environ.get("WANDB_API_KEY")) or _netrc_has_wandb(Path(os.path.expanduser("~")))


def _logs_online(init_args: Mapping[str, Any]) -> bool:
    mode = str(init_args.get("mode") or os.environ.get("WANDB_MODE") or "").lower()
    if mode in ("offline", "disabled", "dryrun"):
        return False
    return not init_args.get("offline")


def check_wandb_login(loggers: Any) -> None:
    """A DataError when a configured WandbLogger would log online and no key is known (see :data:`WANDB_LOGIN_HINT`)."""
    for logger in loggers if isinstance(loggers, list) else [loggers]:
        class_path = logger.get("class_path", "") if hasattr(logger, "get") else ""
        if not str(class_path).endswith("WandbLogger"):
            continue
        init_args = logger.get("init_args") or {}
        if _logs_online(init_args) and not wandb_key_available():
            raise DataError(f"trainer.logger.init_args.offline=false: W&B has no API key; {WANDB_LOGIN_HINT}")


def refuse_existing_output(path: Path, overwrite: bool, flag: str) -> None:
    """A DataError naming ``path`` when it exists and ``--overwrite`` was not given."""
    if not overwrite and (path.exists() or path.is_symlink()):
        raise DataError(f"{flag}={path}: already exists; pass --overwrite to replace it")


def _only_marker(folder: Path, marker: str) -> bool:
    """Whether ``folder`` holds nothing but ``marker`` files and empty folders."""
    for item in folder.rglob("*"):
        if item.is_file() or item.is_symlink():
            if item.name != marker:
                return False
    return True


def discard_unused_run_folder(folder: str | os.PathLike | None, marker: str = "run.json") -> bool:
    """Remove ``folder`` when it holds nothing but ``run.json`` (a run that failed before writing); True if removed."""
    if not folder:
        return False
    path = Path(folder)
    if not path.is_dir() or not _only_marker(path, marker):
        return False
    shutil.rmtree(path, ignore_errors=True)
    return not path.exists()
