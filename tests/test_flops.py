"""The step benchmarks' FLOP count and MFU (benchmarks/flops.py) against hand counts."""

from __future__ import annotations

import pytest
import torch

from benchmarks.flops import count_flops, mfu


def test_linear_forward_and_backward_flops_equal_the_hand_count() -> None:
    b, n_in, n_out = 8, 5, 3
    layer = torch.nn.Linear(n_in, n_out)
    x = torch.randn(b, n_in, requires_grad=True)
    assert count_flops(lambda: layer(x)) == 2 * b * n_in * n_out  # one multiply-add per weight and row
    # backward: the gradient of the input and of the weight, one product of the same size each
    assert count_flops(lambda: layer(x).sum().backward()) == 3 * 2 * b * n_in * n_out


def test_attention_flops_equal_the_hand_count() -> None:
    b, h, t, d = 2, 3, 5, 4
    q, k, v = (torch.randn(b, h, t, d) for _ in range(3))
    flops = count_flops(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v))
    assert flops == 2 * (2 * b * h * t * t * d)  # q·kᵀ and attention·v


def test_mfu_is_achieved_over_peak() -> None:
    assert mfu(2e12, 0.5, 8.0) == pytest.approx(0.5)  # 4 TFLOP/s of 8


def test_attention_backward_flops_equal_the_hand_count() -> None:
    b, h, t, d = 2, 3, 5, 4
    q, k, v = (torch.randn(b, h, t, d, requires_grad=True) for _ in range(3))
    flops = count_flops(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v).sum().backward())
    # forward: q·kᵀ, attention·v; backward: grad of v, of the attention, of q and of k (recomputing q·kᵀ)
    assert flops == 2 * (2 * b * h * t * t * d) + 5 * (2 * b * h * t * t * d)
