"""The momentum teacher: an exponential moving average of the student.

Student/teacher module pairs are declared once (``momentum_pairs``) and every update
walks them, so adding a module to both networks is one line. Only parameters are
averaged (as DINO does): buffers such as BatchNorm running statistics are the teacher's
own, gathered from the views the teacher itself sees (see :func:`set_teacher_mode`).
"""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def ema_update(pairs: list[tuple[nn.Module, nn.Module]], momentum: float) -> None:
    """teacher ← m·teacher + (1 − m)·student for every parameter; buffers are left alone."""
    t_params, s_params = [], []
    for student, teacher in pairs:
        for (name_s, p_s), (name_t, p_t) in zip(student.named_parameters(), teacher.named_parameters()):
            if name_s != name_t or p_s.shape != p_t.shape:
                raise RuntimeError(f"student/teacher mismatch: {name_s} vs {name_t}")
            t_params.append(p_t.data)
            s_params.append(p_s.data.to(p_t.dtype))
    if t_params:
        torch._foreach_mul_(t_params, momentum)
        torch._foreach_add_(t_params, s_params, alpha=1.0 - momentum)


def init_teacher(pairs: list[tuple[nn.Module, nn.Module]]) -> None:
    """Start the teacher as an exact copy of the student and take it out of autograd."""
    for student, teacher in pairs:
        teacher.load_state_dict(student.state_dict())
        for p in teacher.parameters():
            p.requires_grad = False


def set_teacher_mode(teacher: nn.Module, training: bool) -> None:
    """Eval mode for the teacher, except its BatchNorm layers while training.

    The teacher never drops paths or tokens (eval mode), but, as in DINO, its BatchNorm
    layers normalise each batch with that batch's own statistics during training: the
    student's running statistics mix global and local crops (a different distribution)
    and lag behind the teacher's weights. The teacher's running statistics, updated by
    those batches, are what it uses in eval mode (probes, tests, exports).
    """
    teacher.eval()
    if training:
        for module in teacher.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.train()
