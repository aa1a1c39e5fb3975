"""The momentum teacher: an exponential moving average of the student.

Student/teacher module pairs are declared once (``momentum_pairs``) and every update
walks them, so adding a module to both networks is one line.
"""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def ema_update(pairs: list[tuple[nn.Module, nn.Module]], momentum: float) -> None:
    """teacher ← m·teacher + (1 − m)·student for every parameter; buffers are copied."""
    t_params, s_params = [], []
    for student, teacher in pairs:
        for (name_s, p_s), (name_t, p_t) in zip(student.named_parameters(), teacher.named_parameters()):
            if name_s != name_t or p_s.shape != p_t.shape:
                raise RuntimeError(f"student/teacher mismatch: {name_s} vs {name_t}")
            t_params.append(p_t.data)
            s_params.append(p_s.data.to(p_t.dtype))
        for b_s, b_t in zip(student.buffers(), teacher.buffers()):
            b_t.copy_(b_s)
    if t_params:
        torch._foreach_mul_(t_params, momentum)
        torch._foreach_add_(t_params, s_params, alpha=1.0 - momentum)


def init_teacher(pairs: list[tuple[nn.Module, nn.Module]]) -> None:
    """Start the teacher as an exact copy of the student and take it out of autograd."""
    for student, teacher in pairs:
        teacher.load_state_dict(student.state_dict())
        for p in teacher.parameters():
            p.requires_grad = False
