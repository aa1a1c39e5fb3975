"""Optional dependencies of the deploy formats, imported only when a format needs them.

``safetensors`` (exported folders), ``huggingface_hub`` (Hub repository ids), ``onnx`` and
``onnxruntime`` (ONNX export and its check) come with ``pip install 'pointdwc[deploy]'``;
nothing else of pointdwc needs them. A missing one is one :class:`MissingExtraError` line.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from backbones.pretrained import PretrainedError

EXTRA = "deploy"
"""The pip extra that installs every optional deploy dependency."""


class MissingExtraError(PretrainedError):
    """An optional dependency is not installed; the message names it and the pip extra."""


def require(module: str, purpose: str) -> ModuleType:
    """``import module``, or a MissingExtraError naming it, ``purpose`` and the pip extra."""
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        raise MissingExtraError(
            f"{purpose} needs {top}, which is not installed: pip install 'pointdwc[{EXTRA}]'"
        ) from None
