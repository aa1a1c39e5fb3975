"""The two losses against their reference definitions."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lightning_modules.pretrain.losses import DistillationLoss, multi_view_info_nce


def reference_dino_loss(student_output, teacher_output, center, student_temp, teacher_temp, ncrops):
    """DINO's ``DINOLoss.forward`` (facebookresearch/dino, main_dino.py), written out.

    Inputs are crop-major concatenations (ncrops*B, K) and (2*B, K), as DINO passes them.
    """
    student_out = (student_output / student_temp).chunk(ncrops)
    teacher_out = F.softmax((teacher_output - center) / teacher_temp, dim=-1).chunk(2)
    total_loss, n_loss_terms = 0, 0
    for iq, q in enumerate(teacher_out):
        for v in range(len(student_out)):
            if v == iq:
                continue
            loss = torch.sum(-q * F.log_softmax(student_out[v], dim=-1), dim=-1)
            total_loss += loss.mean()
            n_loss_terms += 1
    return total_loss / n_loss_terms


def test_distillation_loss_matches_dino_reference() -> None:
    torch.manual_seed(0)
    b, k, g, loc = 5, 64, 2, 4
    student = torch.randn(g + loc, b, k)
    teacher = torch.randn(g, b, k)
    loss_fn = DistillationLoss(k, student_temp=0.1, center_momentum=0.9)
    loss_fn.center.copy_(torch.randn(1, k))
    ours = loss_fn(student, teacher, teacher_temp=0.05)
    ref = reference_dino_loss(student.flatten(0, 1), teacher.flatten(0, 1), loss_fn.center, 0.1, 0.05, g + loc)
    torch.testing.assert_close(ours, ref)


def test_distillation_loss_gradient_flows_only_to_student() -> None:
    student = torch.randn(4, 3, 16, requires_grad=True)
    teacher = torch.randn(2, 3, 16, requires_grad=True)
    DistillationLoss(16)(student, teacher, 0.04).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


def test_center_update_is_ema_of_batch_mean() -> None:
    loss_fn = DistillationLoss(8, center_momentum=0.9)
    c0 = torch.randn(1, 8)
    loss_fn.center.copy_(c0)
    teacher = torch.randn(2, 6, 8)
    loss_fn.update_center(teacher)
    expected = 0.9 * c0 + 0.1 * teacher.reshape(-1, 8).mean(0, keepdim=True)
    torch.testing.assert_close(loss_fn.center, expected)


def naive_info_nce(anchors, keys, temperature):
    """InfoNCE written as a loop over anchors."""
    total = 0.0
    for i in range(len(anchors)):
        sims = torch.stack([anchors[i] @ keys[j] / temperature for j in range(len(keys))])
        total = total - (sims[i] - torch.logsumexp(sims, dim=0))
    return total / len(anchors)


def test_multi_view_info_nce_and_its_gradient_match_the_naive_loop() -> None:
    torch.manual_seed(1)
    anchors = F.normalize(torch.randn(2, 7, 16), dim=-1).requires_grad_()  # two global views
    keys = F.normalize(torch.randn(2, 7, 16), dim=-1)
    ours = multi_view_info_nce(anchors, keys, 0.2)
    ref = (naive_info_nce(anchors[1], keys[0], 0.2) + naive_info_nce(anchors[0], keys[1], 0.2)) / 2
    torch.testing.assert_close(ours, ref)
    (g1,) = torch.autograd.grad(ours, anchors)
    (g2,) = torch.autograd.grad(ref, anchors)
    torch.testing.assert_close(g1, g2)


def test_multi_view_info_nce_is_low_for_matching_pairs() -> None:
    keys = F.normalize(torch.randn(2, 32, 64), dim=-1)
    swapped = keys.flip(0)  # student view v holds the teacher's view g != v: every positive matches
    assert multi_view_info_nce(swapped, keys, 0.1) < multi_view_info_nce(swapped.roll(1, 1), keys, 0.1)


def test_multi_view_info_nce_is_the_mean_over_pairs_of_other_views() -> None:
    torch.manual_seed(2)
    student = F.normalize(torch.randn(4, 6, 8), dim=-1)  # 2 global + 2 local views
    teacher = F.normalize(torch.randn(2, 6, 8), dim=-1)
    pairs = [(g, v) for g in range(2) for v in range(4) if v != g]
    expected = sum(naive_info_nce(student[v], teacher[g], 0.2) for g, v in pairs) / len(pairs)
    torch.testing.assert_close(multi_view_info_nce(student, teacher, 0.2), expected)
