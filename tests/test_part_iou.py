"""Part-segmentation mIoU against hand-computed cases and the field's per-shape loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from datamodules.part_table import RELEASE_CATEGORIES, release_parts
from lightning_modules.downstream.part_iou import PartMIoU, restricted_argmax, shape_ious

# two categories: A owns parts 0, 1, 2; B owns 3, 4
MASK = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 0, 1, 1]], dtype=torch.bool)


def _iou(pred: list[int], gt: list[int], category: int) -> float:
    return shape_ious(torch.tensor([pred]), torch.tensor([gt]), torch.tensor([category]), MASK).item()


def test_hand_computed_shape_iou_with_an_absent_part_counting_one() -> None:
    # part 0: pred {0, 4, 5}, gt {0, 1, 5} -> 2/4; part 1: pred {1, 2, 3}, gt {2, 3, 4} -> 2/4; part 2 absent -> 1
    assert _iou([0, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 0], 0) == pytest.approx((0.5 + 0.5 + 1.0) / 3)


def test_a_shape_predicted_entirely_as_one_part() -> None:
    # part 3: pred all 4 points, gt 2 of them -> 2/4; part 4: pred none, gt 2 -> 0/2
    assert _iou([3, 3, 3, 3], [3, 3, 4, 4], 1) == pytest.approx(0.25)
    # the one part is the only part present in the truth: that part 1.0, the others absent from both: 1.0
    assert _iou([0, 0, 0], [0, 0, 0], 0) == 1.0
    # one part predicted, another true: both 0, the third absent from both
    assert _iou([1, 1, 1], [0, 0, 0], 0) == pytest.approx(1 / 3)


def test_inst_and_cls_miou_hand_computed() -> None:
    metric = PartMIoU(MASK)
    # A: 1.0 and 2/3 (first test); B: 0.25
    pred = torch.tensor([[0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 0, 0]])
    metric.update(pred, torch.tensor([[0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 1, 0]]), torch.tensor([0, 0]))
    metric.update(torch.tensor([[3, 3, 3, 3]]), torch.tensor([[3, 3, 4, 4]]), torch.tensor([1]))
    out = metric.compute()
    a = (1.0 + 2 / 3) / 2
    assert out["inst_miou"].item() == pytest.approx((1.0 + 2 / 3 + 0.25) / 3)
    assert out["cls_miou"].item() == pytest.approx((a + 0.25) / 2)
    assert out["category_miou"].tolist() == pytest.approx([a, 0.25])


def test_a_category_without_shapes_is_left_out_of_cls_miou() -> None:
    metric = PartMIoU(torch.tensor([[1, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 1]], dtype=torch.bool))
    metric.update(torch.tensor([[3, 3, 3, 3]]), torch.tensor([[3, 3, 4, 4]]), torch.tensor([2]))
    out = metric.compute()
    assert out["cls_miou"].item() == pytest.approx(0.25) and out["inst_miou"].item() == pytest.approx(0.25)
    assert torch.isnan(out["category_miou"][:2]).all()


def test_restricted_argmax_never_predicts_another_categorys_part() -> None:
    mask = torch.from_numpy(_release_mask())
    gen = torch.Generator().manual_seed(0)
    category = torch.randint(0, 16, (64,), generator=gen)
    logits = torch.randn(64, 100, 50, generator=gen)
    logits[..., 49] += 100.0  # Table's last part would win every unrestricted argmax
    pred = restricted_argmax(logits, category, mask)
    for b in range(64):
        allowed = torch.nonzero(mask[category[b]]).flatten()
        assert torch.isin(pred[b], allowed).all()
        assert torch.equal(pred[b], allowed[logits[b][:, allowed].argmax(-1)])


def _release_mask() -> np.ndarray:
    mask = np.zeros((16, 50), dtype=bool)
    for c, (_, synset, _) in enumerate(RELEASE_CATEGORIES):
        mask[c, [i for i, _ in release_parts()[synset]]] = True
    return mask


def _field_loop(pred: np.ndarray, gt: np.ndarray, category: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """The field's evaluation loop (PointNet++'s test_partseg, as Point-MAE and its successors use it)."""
    shape_ious_by_cat: dict[int, list[float]] = {}
    for b in range(len(pred)):
        part_ious = []
        for part in np.nonzero(mask[category[b]])[0]:
            if (gt[b] == part).sum() == 0 and (pred[b] == part).sum() == 0:
                part_ious.append(1.0)
            else:
                inter = ((gt[b] == part) & (pred[b] == part)).sum()
                union = ((gt[b] == part) | (pred[b] == part)).sum()
                part_ious.append(inter / float(union))
        shape_ious_by_cat.setdefault(int(category[b]), []).append(float(np.mean(part_ious)))
    every = [iou for ious in shape_ious_by_cat.values() for iou in ious]
    return float(np.mean(every)), float(np.mean([np.mean(ious) for ious in shape_ious_by_cat.values()]))


def test_equals_the_fields_loop_over_batches_and_split_states() -> None:
    """Random logits in batches, and the same shapes split between two metrics whose states are summed
    (what the DDP reduction does) give the field's Inst./Cls. mIoU."""
    mask = _release_mask()
    gen = torch.Generator().manual_seed(1)
    category = torch.randint(0, 16, (40,), generator=gen)
    allowed = torch.from_numpy(mask)[category]
    # the truth: parts of the shape's category, some parts missing in some shapes
    target = torch.stack(
        [torch.nonzero(a).flatten()[torch.randint(0, int(a.sum()), (200,), generator=gen)] for a in allowed]
    )
    target[::3] = target[::3].clamp(max=target[::3].min(dim=1, keepdim=True).values)  # one-part shapes
    logits = torch.randn(40, 200, 50, generator=gen) + 2.0 * torch.nn.functional.one_hot(target, 50)
    pred = restricted_argmax(logits, category, torch.from_numpy(mask))
    inst, cls = _field_loop(pred.numpy(), target.numpy(), category.numpy(), mask)
    whole, rank0, rank1 = PartMIoU(mask), PartMIoU(mask), PartMIoU(mask)
    for start in range(0, 40, 16):
        whole.update(logits[start : start + 16], target[start : start + 16], category[start : start + 16])
    rank0.update(logits[:25], target[:25], category[:25])
    rank1.update(logits[25:], target[25:], category[25:])
    rank0.merge_state(rank1)  # the sum reduction of the states, as across DDP ranks
    for metric in (whole, rank0):
        out = metric.compute()
        assert out["inst_miou"].item() == pytest.approx(inst, abs=1e-12)
        assert out["cls_miou"].item() == pytest.approx(cls, abs=1e-12)


def test_padded_points_do_not_count() -> None:
    pred = torch.tensor([[0, 1, 1, 2, 2], [3, 3, 4, 4, 4]])
    target = torch.tensor([[0, 1, 1, 0, 0], [3, 3, 4, 4, 3]])
    valid = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    ious = shape_ious(pred, target, torch.tensor([0, 1]), MASK, valid)
    assert ious[0].item() == 1.0  # the padding's wrong part-2 predictions are ignored
    assert ious[1].item() == pytest.approx((2 / 3 + 2 / 3) / 2)
