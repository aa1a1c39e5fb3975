"""The LP of LP-FT: a linear head fitted on the frozen backbone's features before fine-tuning starts.

Fine-tuning a pretrained backbone under a randomly initialised head sends large, random
gradients into the backbone during the first steps and distorts the features the head was
meant to read (Kumar et al. 2022, "Fine-tuning can distort pretrained features"). Fitting the
head first on frozen features (a linear probe), then fine-tuning everything from there, keeps
them. :func:`fit_linear_probe` is that probe: multinomial logistic regression with an L2
penalty on the weights, fitted to convergence by L-BFGS in float64 on standardised features,
and returned as the weight and bias of a ``Linear`` on the raw features.
"""

from __future__ import annotations

import torch
from torch import Tensor


def fit_linear_probe(
    features: Tensor, labels: Tensor, num_classes: int, l2: float = 1.0, max_iter: int = 500
) -> tuple[Tensor, Tensor]:
    """Multinomial logistic regression on ``features`` (n, d): ``(weight (C, d), bias (C,))``.

    Minimises ``sum_i CE(W z_i + b, y_i) + l2 / 2 * ||W||^2`` over the standardised features
    ``z = (x - mean) / std`` (sklearn's ``LogisticRegression(C=1/l2)`` objective), then folds the
    standardisation into the returned weights, so ``features @ weight.T + bias`` are the logits.
    """
    if features.ndim != 2 or len(features) != len(labels):
        raise ValueError(f"the probe needs (n, d) features and n labels, got {tuple(features.shape)} and {len(labels)}")
    if l2 <= 0:
        raise ValueError(f"model.probe_l2={l2}: must be positive")
    x = features.detach().double().cpu()
    y = labels.detach().long().cpu()
    mean = x.mean(0)
    std = x.std(0, unbiased=False).clamp_min(1e-6)
    z = (x - mean) / std
    weight = torch.zeros(num_classes, x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, tolerance_grad=1e-9,
                                  tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(z @ weight.T + bias, y, reduction="sum") + 0.5 * l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        raw_weight = weight / std
        raw_bias = bias - raw_weight @ mean
    return raw_weight.float(), raw_bias.float()
