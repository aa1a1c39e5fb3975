"""What the scripts that build data from Debian packages share: the package's version, and their exit.

``real_meshes.py`` (FlightGear), ``real_meshes_0ad.py`` (0 A.D.) and ``pretrain_corpus.py``
(KiCad) each read an installed Debian package, record its version in their manifest and end
with a one-line error, not a traceback, when the package or the output folder is not usable.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

from datamodules.errors import DataError


def package_version(package: str) -> str | None:
    """The installed version of ``package`` per ``dpkg-query -W``, None if unknown (not installed, no dpkg)."""
    try:
        done = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=False, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    version = done.stdout.strip()
    return version if done.returncode == 0 and version else None


def exit_status(build: Callable[[], Any]) -> int:
    """Run ``build()`` for a script's ``main``: 0, or 1 after printing ``error: <why>`` for a :class:`DataError`."""
    try:
        build()
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
