"""Test-time voting: the class probabilities averaged over augmented passes, evaluated once.

Point-MAE's voting evaluates the test set with ``N`` scale-and-translate augmented copies of
each cloud; its released test script repeats that whole evaluation 299 times and keeps the best
accuracy, a maximum over test-set evaluations. Here the ``votes`` passes are averaged
(softmax probabilities) into one prediction per shape, and the test split is scored once.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from datamodules.views.augment import AugmentConfig, augment


def vote_probabilities(
    forward: Callable[[Tensor], Tensor],
    points: Tensor,
    votes: int,
    augmentation: AugmentConfig,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Mean over ``votes`` passes of ``softmax(forward(augment(points)))``; one plain pass if ``votes`` <= 1.

    Args:
        forward: clouds (B, N, 3) -> logits (B, classes).
        points: the clouds.
        votes: augmented passes to average.
        augmentation: the augmentation of each pass (one draw per cloud and pass).
        generator: makes the passes reproducible.
    """
    if votes <= 1:
        return forward(points).float().softmax(-1)
    total = None
    for _ in range(votes):
        probs = forward(augment(points, augmentation, generator)).float().softmax(-1)
        total = probs if total is None else total + probs
    assert total is not None
    return total / votes
