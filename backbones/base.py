"""The interface every point-cloud backbone implements.

Points ``(B, N, 3)`` go in; a global feature ``(B, C)`` comes out, plus the token
sequence and last-block attention where the backbone has them. PoinT-ViT, PointNet and
DGCNN all fit this, so the method, the heads and the probe never depend on which one
is used.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn


@dataclass
class BackboneOutput:
    """What a backbone returns for a batch of clouds."""

    global_feature: Tensor
    """(B, C) feature of each cloud: the head's input and the probe's feature."""
    tokens: Tensor | None = None
    """(B, T, D) output tokens (ViT: [CLS] first), or None for backbones without tokens."""
    attention: Tensor | None = None
    """(B, heads, T, T) softmax attention of the last block, when asked for."""
    centers: Tensor | None = None
    """(B, M, 3) patch centres the tokens belong to (ViT), for attention pictures."""


class PointBackbone(nn.Module):
    """Base class: subclasses set ``out_dim`` and implement :meth:`forward`.

    A subclass that keeps each ``__init__`` argument as an attribute of the same name gets
    :meth:`init_args` for free, so checkpoints and exported files can rebuild it by class
    path and arguments alone.
    """

    out_dim: int

    def forward(self, points: Tensor, return_attention: bool = False) -> BackboneOutput:
        raise NotImplementedError

    def group(self, points: Tensor) -> Any | None:
        """The part of the forward that depends on the points alone, not on the weights
        (PoinT-ViT: the FPS + kNN patches), or None when there is none.

        A backbone that returns something here accepts it back as ``forward(points,
        patches=...)`` and then skips that work: the teacher and the student see the same
        global crops and share it (:class:`~lightning_modules.pretrain.network.Network`).
        """
        return None

    def init_args(self) -> dict[str, Any]:
        """The ``__init__`` arguments that rebuild this backbone (read from same-named attributes).

        Raises:
            AttributeError: an argument is not kept as an attribute (override this method).
        """
        args = {}
        for name, param in inspect.signature(type(self).__init__).parameters.items():
            if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            if not hasattr(self, name):
                raise AttributeError(
                    f"{type(self).__qualname__} does not keep its argument {name!r} as an attribute; "
                    "keep it or override init_args()"
                )
            value = getattr(self, name)
            args[name] = list(value) if isinstance(value, tuple) else value
        return args
