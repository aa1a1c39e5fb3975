"""Backbone + head, applied to a stack of same-size views in one batched pass."""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from backbones.base import PointBackbone
from lightning_modules.pretrain.heads import DINOHead, HeadConfig, HeadOutput


class Network(nn.Module):
    """One side of the student/teacher pair."""

    def __init__(self, backbone: PointBackbone, head: HeadConfig) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = DINOHead(backbone.out_dim, head)
        self._compile_backend: str | None = None
        self._compile_mode: str | None = None
        self._compiled: Callable[[Tensor, Any], HeadOutput] | None = None

    @torch.no_grad()
    def group(self, views: Tensor) -> Any | None:
        """The backbone's weight-independent grouping of (V, B, N, 3) views (None if it has none).

        The teacher and the student see the same global crops: one grouping serves both
        (``forward(views, patches)``), instead of FPS + kNN twice on identical points.
        """
        return self.backbone.group(views.flatten(0, 1))

    def compile_forward(self, backend: str = "inductor", mode: str | None = None) -> None:
        """``torch.compile`` the backbone and head of :meth:`forward` with ``backend`` (and inductor's ``mode``).

        Shapes are static (``dynamic=False``): each crop resolution is its own call, so each
        gets its own graph and no graph handles varying shapes. Each is one graph
        (``fullgraph=True``: a break raises instead of running part of the network eagerly).
        The grouping (FPS + kNN, a data-dependent loop) stays outside the graph. Compiled
        lazily, in the process that runs it; the parameters and the state dict are the
        module's own (nothing renamed).
        """
        self._compile_backend = backend
        self._compile_mode = mode
        self._compiled = None

    def _embed(self, flat_views: Tensor, patches: Any | None) -> HeadOutput:
        """Backbone + head on (V·B, N, 3) views."""
        shared = {} if patches is None else {"patches": patches}
        return self.head(self.backbone(flat_views, **shared).global_feature)

    def forward(self, views: Tensor, patches: Any | None = None) -> HeadOutput:
        """(V, B, N, 3) views -> logits (V, B, K) and embeddings (V, B, E).

        ``patches``: :meth:`group` of these views, computed once for networks that share them.
        """
        v, b = views.shape[:2]
        if self._compile_backend is None:
            out = self._embed(views.flatten(0, 1), patches)
        else:
            if self._compiled is None:
                embed = types.MethodType(_own_copy(Network._embed), self)
                self._compiled = torch.compile(
                    embed, backend=self._compile_backend, mode=self._compile_mode, dynamic=False, fullgraph=True
                )
            out = self._compiled(views.flatten(0, 1), patches if patches is not None else self.group(views))
        return HeadOutput(out.logits.unflatten(0, (v, b)), out.embedding.unflatten(0, (v, b)))

    def __getstate__(self) -> dict[str, Any]:
        """Copies and pickles (``copy.deepcopy``, spawned processes) compile again when first called."""
        state = dict(self.__dict__)
        state["_compiled"] = None
        return state


def _own_copy(function: types.FunctionType) -> types.FunctionType:
    """``function`` with a code object of its own.

    Dynamo keeps compiled graphs, and its limit on recompilations, per code object, and
    each head's weight-norm parametrisation has a class of its own, so networks sharing
    one code object would recompile for each other and, past the limit (8), silently run
    eagerly (several models in one process: tests, ablations). A copy per network keeps its
    graphs and its limit its own.
    """
    copy = types.FunctionType(
        function.__code__.replace(), function.__globals__, function.__name__, function.__defaults__, function.__closure__
    )
    copy.__kwdefaults__ = function.__kwdefaults__
    return copy
