"""The method: student/teacher, losses, EMA, schedules, probe callback and CLI."""

from lightning_modules.dwc import DistillationWithContrast
from lightning_modules.probe import LinearProbe

__all__ = ["DistillationWithContrast", "LinearProbe"]
