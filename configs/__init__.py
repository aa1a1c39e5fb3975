"""The shipped configs: every ``pointdwc`` command starts from a YAML file in this folder.

``configs/`` is a package so that a wheel carries its YAML files as package data and every
install finds them by the same lookup (``configs.CONFIG_DIR``): the checkout's folder in an
editable install, ``site-packages/configs`` in a normal one.
"""

from __future__ import annotations

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent


def shipped_config(relative: str) -> Path:
    """The shipped config ``relative`` (e.g. ``"finetune/default.yaml"``); a clear error if it is missing."""
    path = CONFIG_DIR / relative
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: the shipped config is missing: pointdwc was installed without its configs; "
            "reinstall it (pip install pointdwc, or scripts/setup.sh in a checkout)")
    return path
