"""The momentum teacher: an exponential moving average of the student.

Student/teacher module pairs are declared once (``momentum_pairs``), so adding a module to
both networks is one line; their parameters are flattened once (:func:`momentum_params`) and
every update is two multi-tensor kernels over those lists. Only parameters are
averaged (as DINO does): buffers such as BatchNorm running statistics are the teacher's
own, gathered from the views the teacher itself sees (see :func:`set_teacher_mode`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class MomentumParams:
    """Flat, aligned teacher/student parameter lists, built once (:func:`momentum_params`).

    They hold the ``nn.Parameter`` objects themselves (not ``.data`` views), so moving the
    module to another device or dtype (which replaces ``param.data`` in place) keeps them valid.
    """

    teacher: list[Tensor]
    student: list[Tensor]
    same_dtype: bool
    """Every student parameter has its teacher's dtype (always, for a deep-copied teacher)."""


def momentum_params(pairs: list[tuple[nn.Module, nn.Module]]) -> MomentumParams:
    """The parameters of every (student, teacher) pair, matched by name and shape, in one flat list each."""
    t_params, s_params = [], []
    for student, teacher in pairs:
        s_named, t_named = list(student.named_parameters()), list(teacher.named_parameters())
        if len(s_named) != len(t_named):
            raise RuntimeError(f"student/teacher mismatch: {len(s_named)} vs {len(t_named)} parameters")
        for (name_s, p_s), (name_t, p_t) in zip(s_named, t_named):
            if name_s != name_t or p_s.shape != p_t.shape:
                raise RuntimeError(f"student/teacher mismatch: {name_s} vs {name_t}")
            t_params.append(p_t)
            s_params.append(p_s)
    return MomentumParams(t_params, s_params, all(t.dtype == s.dtype for t, s in zip(t_params, s_params)))


@torch.no_grad()
def ema_update(pairs: list[tuple[nn.Module, nn.Module]] | MomentumParams, momentum: float) -> None:
    """teacher ← m·teacher + (1 − m)·student for every parameter; buffers are left alone.

    Two multi-tensor kernels over the flat lists (``pairs`` may be the lists already built by
    :func:`momentum_params`, as the training module passes them: no per-step walk of the modules).
    """
    params = pairs if isinstance(pairs, MomentumParams) else momentum_params(pairs)
    if not params.teacher:
        return
    student = params.student if params.same_dtype else [s.to(t.dtype) for t, s in zip(params.teacher, params.student)]
    torch._foreach_mul_(params.teacher, momentum)
    torch._foreach_add_(params.teacher, student, alpha=1.0 - momentum)


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
