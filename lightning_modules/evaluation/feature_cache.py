"""Features of fixed clouds under one network, kept while the network's weights are unchanged.

The probe embeds its train and test splits with the frozen teacher. When it runs again on
the same network at the same step with the same weights (``test`` after ``fit`` in one
process, a probe asked for twice), the embedding is the same work for the same result. The
cache is keyed on the network object, the global step and an exact copy of its weights and
buffers (BatchNorm running statistics included): any change, in place or by loading a
checkpoint, recomputes.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable

import numpy as np
import torch
from torch import nn

from lightning_modules.dist import is_distributed


class FeatureCache:
    """Feature arrays by key, valid for one (network, step, weights) at a time."""

    def __init__(self) -> None:
        self._network: weakref.ref[nn.Module] | None = None
        self._step: int | None = None
        self._weights: dict[str, torch.Tensor] = {}
        self._features: dict[Hashable, np.ndarray] = {}

    def get(self, network: nn.Module, step: int, key: Hashable, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """``compute()``'s features for ``key``, computed again unless ``network`` is the one
        they were computed with, at ``step``, with exactly the same weights."""
        if not self._holds_on_all_ranks(network, step):
            self._features.clear()
            self._network = weakref.ref(network)
            self._step = step
            self._weights = {k: v.detach().clone() for k, v in network.state_dict().items()}
        if key not in self._features:
            self._features[key] = compute()
        return self._features[key]

    def _holds_on_all_ranks(self, network: nn.Module, step: int) -> bool:
        """Whether every rank's cache holds (the embedding gathers across ranks: all or none recompute)."""
        holds = self._holds(network, step)
        if not is_distributed():
            return holds
        device = next(iter(network.state_dict().values())).device
        flag = torch.tensor(float(holds), device=device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
        return bool(flag.item())

    def _holds(self, network: nn.Module, step: int) -> bool:
        if self._network is None or self._network() is not network or self._step != step:
            return False
        state = network.state_dict()
        return state.keys() == self._weights.keys() and all(
            v.shape == self._weights[k].shape and torch.equal(v, self._weights[k]) for k, v in state.items()
        )
