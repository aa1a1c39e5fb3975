"""The step benchmarks' FLOP count and MFU (benchmarks/flops.py) against hand counts."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.flops import count_flops, mfu


def test_linear_forward_and_backward_flops_equal_the_hand_count() -> None:
    layer = torch.nn.Linear(5, 3)
    x = torch.randn(8, 5, requires_grad=True)
    # (8 x 5) @ (5 x 3): 8·3 outputs of 5 multiply-adds = 120 multiply-adds = 240 FLOPs (the bias is not counted)
    assert count_flops(lambda: layer(x)) == 240
    # backward: the input's gradient (8 x 3) @ (3 x 5) and the weight's (3 x 8) @ (8 x 5), 240 FLOPs each
    assert count_flops(lambda: layer(x).sum().backward()) == 720


def test_attention_flops_equal_the_hand_count() -> None:
    q, k, v = (torch.randn(2, 3, 5, 4) for _ in range(3))  # batch 2, 3 heads, 5 tokens, head width 4
    # q·kᵀ: 2·3 heads × (5 x 4) @ (4 x 5) = 6 · 100 multiply-adds = 1200 FLOPs; attention·v the same
    assert count_flops(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v)) == 2400


def test_the_cpu_attention_kernel_counts_as_the_same_attention_written_with_matmuls() -> None:
    """torch's own counter on attention spelled out with matmuls (which it does count on CPU) agrees."""
    q, k, v = (torch.randn(2, 3, 7, 8) for _ in range(3))
    plain = FlopCounterMode(display=False)
    with plain:
        ((q @ k.transpose(-1, -2) / 8**0.5).softmax(-1) @ v).sum()
    assert count_flops(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v)) == plain.get_total_flops()
    assert plain.get_total_flops() == 2 * 2 * (2 * 3 * 7 * 7 * 8)  # and to the hand count: two products


def test_mfu_is_achieved_over_peak() -> None:
    assert mfu(2e12, 0.5, 8.0) == pytest.approx(0.5)  # 2 TFLOP in 0.5 s = 4 TFLOP/s of a peak of 8
    assert mfu(6e12, 2.0, 10.0) == pytest.approx(0.3)  # 3 TFLOP/s of 10


def test_attention_backward_flops_equal_the_hand_count() -> None:
    q, k, v = (torch.randn(2, 3, 5, 4, requires_grad=True) for _ in range(3))
    flops = count_flops(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v).sum().backward())
    # forward: q·kᵀ and attention·v, 1200 FLOPs each (as above); backward: the gradients of v, of the attention,
    # of q and of k, and q·kᵀ recomputed: 5 products of 1200
    assert flops == 2400 + 6000
