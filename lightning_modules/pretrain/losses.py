"""The two losses of Distillation with Contrast.

* :class:`DistillationLoss` — DINO's cross-entropy between the centred, sharpened teacher
  distribution of each global view and the student distribution of every other view.
* :func:`multi_view_info_nce` — InfoNCE of each student view's embeddings against the
  teacher's embeddings of every other global view, with negatives from the whole
  (all-rank) batch; the teacher keys are gathered from all ranks once per step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_modules.dist import all_gather_no_grad, all_reduce_mean, rank


@dataclass
class DistillConfig:
    """Distillation hyper-parameters (DINO defaults) and the term's weight in the total loss."""

    weight: float = 1.0
    """Weight of the distillation term (0 switches it off: contrast only)."""
    student_temp: float = 0.1
    teacher_temp: float = 0.07
    warmup_teacher_temp: float = 0.04
    warmup_teacher_temp_epochs: float = 30
    """Teacher temperature rises linearly 0.04 -> 0.07 over these epochs (capped at the run)."""
    center_momentum: float = 0.9


class DistillationLoss(nn.Module):
    """DINO loss with a running centre of the teacher outputs.

    ``forward`` averages the cross-entropy over every (teacher view g, student view
    v ≠ g) pair and the batch. Calling
    :meth:`update_center` afterwards moves the centre towards the batch mean, averaged
    over all ranks.
    """

    center: Tensor

    def __init__(self, out_dim: int, student_temp: float = 0.1, center_momentum: float = 0.9) -> None:
        super().__init__()
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(1, out_dim))

    def teacher_probs(self, teacher_logits: Tensor, teacher_temp: float) -> Tensor:
        """Centred and sharpened teacher distribution."""
        return F.softmax((teacher_logits.float() - self.center) / teacher_temp, dim=-1)

    def forward(self, student_logits: Tensor, teacher_logits: Tensor, teacher_temp: float) -> Tensor:
        """Average of H(teacher view g, student view v) over pairs v ≠ g and the batch.

        Args:
            student_logits: (V, B, K), the G global views first, then the local ones.
            teacher_logits: (G, B, K), the teacher's global views in the same order.
            teacher_temp: current teacher temperature.
        """
        if student_logits.ndim != 3 or teacher_logits.ndim != 3:
            raise ValueError("DistillationLoss expects view-major logits (V, B, K) and (G, B, K)")
        student_logp = F.log_softmax(student_logits.float() / self.student_temp, dim=-1)
        teacher_p = self.teacher_probs(teacher_logits.detach(), teacher_temp)
        # every (g, v) cross-entropy in one product instead of a Python loop over the pairs
        with torch.autocast(student_logp.device.type, enabled=False):  # fp32 under mixed precision too
            cross = -torch.einsum("gbk,vbk->gv", teacher_p.float(), student_logp) / student_logp.shape[1]
        return cross[other_view_mask(*cross.shape, cross.device)].mean()

    @torch.no_grad()
    def update_center(self, teacher_logits: Tensor) -> None:
        """EMA of the (all-rank) batch mean of the teacher logits (any leading shape)."""
        flat = teacher_logits.reshape(-1, teacher_logits.shape[-1]).float()
        batch_center = all_reduce_mean(flat.mean(dim=0, keepdim=True))
        self.center.mul_(self.center_momentum).add_(batch_center, alpha=1 - self.center_momentum)


@dataclass
class ContrastConfig:
    """Contrastive term: weight λ and InfoNCE temperature τ_c."""

    weight: float = 1.0
    """Weight λ of the contrastive term (0 switches it off: distillation only)."""
    temperature: float = 0.2
    student_views: Literal["all", "global"] = "all"
    """Which student views are anchors: ``all`` (global and local crops, each against the
    teacher's other global views) or ``global`` only, leaving the local-to-global relation
    to the distillation term alone."""


def multi_view_info_nce(student_emb: Tensor, teacher_emb: Tensor, temperature: float) -> Tensor:
    """Mean InfoNCE of every student view v against every teacher global view g ≠ v.

    ``student_emb`` (V, B, E) holds the G global views first; ``teacher_emb`` (G, B, E)
    is the teacher's (no gradient: the teacher is an EMA). Its keys are gathered from all
    ranks once for all G views, not once per pair, and all pairs' logits are one product.
    """
    keys = all_gather_no_grad(teacher_emb.detach(), dim=1).float()  # (G, world·B, E)
    (v, b, _), g = student_emb.shape, keys.shape[0]
    # the logits of every (v, g) pair in one product: (V, G, B, world·B)
    with torch.autocast(keys.device.type, enabled=False):  # fp32 under mixed precision too
        logits = torch.einsum("vbe,gne->vgbn", student_emb.float(), keys) / temperature
    labels = (torch.arange(b, device=logits.device) + rank() * b).repeat(v * g)
    per_pair = F.cross_entropy(logits.flatten(0, 2), labels, reduction="none").view(v, g, b).mean(-1)
    return per_pair.T[other_view_mask(g, v, per_pair.device)].mean()


def other_view_mask(teacher_views: int, student_views: int, device: torch.device) -> Tensor:
    """(G, V) mask of the (teacher view g, student view v) pairs with v ≠ g (the G global views come first)."""
    g = torch.arange(teacher_views, device=device)[:, None]
    return g != torch.arange(student_views, device=device)[None, :]
