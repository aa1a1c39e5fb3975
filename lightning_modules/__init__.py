"""The method: student/teacher, losses, EMA, schedules, probe callback and CLI.

Attributes are imported lazily so that small helpers (``lightning_modules.dist``) can be
used by the data modules without importing the whole method.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {"DistillationWithContrast": "lightning_modules.dwc", "LinearProbe": "lightning_modules.probe"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'lightning_modules' has no attribute {name!r}")
