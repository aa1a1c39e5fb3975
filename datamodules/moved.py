"""Package plumbing: module paths from before the sub-packages, and lazily imported attributes.

Module paths from before the sub-packages are kept importable for one release.

Configs, scripts and pickled objects written before ``lightning_modules`` and ``datamodules``
were grouped by concern name modules such as ``lightning_modules.visuals`` or
``datamodules.crops``. :func:`alias_moved_modules` installs an import hook that answers such an
old name with the module at its new place (the same module object, so classes compare equal
and pickles load) and says once, as a ``FutureWarning``, where the module now lives.
Submodules of a moved package follow it (``datamodules.shapes.parts`` ->
``datamodules.synthetic.shapes.parts``).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any

REMOVED_IN = "pointdwc 0.3"


class MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old dotted module name and loads the module now at its new name."""

    def __init__(self, moved: dict[str, str]) -> None:
        self.moved = dict(moved)
        self._specs: dict[int, object] = {}

    def new_name(self, fullname: str) -> str | None:
        """The new dotted name of ``fullname``, or None when it did not move."""
        if fullname in self.moved:
            return self.moved[fullname]
        for old, new in self.moved.items():
            if fullname.startswith(old + "."):
                return new + fullname[len(old):]
        return None

    def find_spec(self, fullname: str, path: object = None, target: object = None):  # noqa: D102
        if self.new_name(fullname) is None:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec) -> ModuleType:  # noqa: D102
        new = self.new_name(spec.name)
        warnings.warn(f"{spec.name} moved to {new}; the old name works until {REMOVED_IN}: update configs "
                      "and imports", FutureWarning, stacklevel=2)
        module = importlib.import_module(new)
        self._specs[id(module)] = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run; the import system set the old name's spec on the module: put its own back."""
        module.__spec__ = self._specs.pop(id(module), module.__spec__)


def alias_moved_modules(moved: dict[str, str]) -> None:
    """Make every old name in ``moved`` (old -> new dotted module name) importable again."""
    if not any(isinstance(f, MovedModules) and f.moved == moved for f in sys.meta_path):
        sys.meta_path.insert(0, MovedModules(moved))  # before the path finder: a moved package's
        # submodules would otherwise be found again under the old name, as second copies


def lazy_attributes(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A package's ``__getattr__`` that imports ``exports[name]`` (a module path) only when ``name`` is used.

    ``import lightning_modules`` or ``import datamodules`` then costs nothing, while configs keep
    naming the short class paths (``datamodules.ShapeNet55``).
    """

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
