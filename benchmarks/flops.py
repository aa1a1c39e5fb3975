"""Counted FLOPs of a training step and model FLOP utilisation (MFU).

FLOPs are counted, not estimated: :class:`torch.utils.flop_counter.FlopCounterMode`
records every matrix product, convolution and attention kernel a callable runs, forward
and backward (2 FLOPs per multiply-add; element-wise work, FPS and kNN index selection
are not counted, as in the usual MFU definition). MFU is the counted FLOPs per second
divided by the device's dense peak for the precision the step runs in.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

PEAK_TFLOPS_BF16 = {"H100": 989.0, "H200": 989.0, "A100": 312.0}
"""Dense bf16 peaks (TFLOP/s, no sparsity) by GPU name fragment: H100/H200 SXM 989, A100 312."""


def _cpu_attention_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    """The CPU flash-attention kernel, counted as the GPU ones are (torch's counter omits it)."""
    return sdpa_flop_count(query, key, value)


def _cpu_attention_backward_flops(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


CPU_ATTENTION = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_flops,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_attention_backward_flops,
}
"""FLOP formulas for the CPU attention kernels (shapes in, FLOPs out), as torch's for the GPU ones."""


def count_flops(step: Callable[[], object]) -> int:
    """FLOPs ``step()`` runs (forward and backward, everything inside the call)."""
    counter = FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION)
    with counter:
        step()
    return int(counter.get_total_flops())


def default_peak_tflops(device: torch.device) -> float | None:
    """The bf16 dense peak of a known GPU (by name), None for a CPU or an unknown device."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_TFLOPS_BF16.items() if key in name), None)


def mfu(flops_per_step: float, seconds_per_step: float, peak_tflops: float) -> float:
    """Model FLOP utilisation: achieved FLOP/s over the peak, as a fraction."""
    return flops_per_step / seconds_per_step / (peak_tflops * 1e12)
