"""Part-segmentation mIoU exactly as the field computes it (PointNet++, Point-MAE, Point-M2AE, point2vec).

For each shape of category ``c``:

1. the prediction of a point is the argmax of its logits over ``c``'s part ids only
   (:func:`restricted_argmax`), so another category's part is never predicted;
2. for every part ``p`` of ``c``: IoU = |pred = p ∧ gt = p| / |pred = p ∨ gt = p|, and
   **1.0 when p is absent from both** the prediction and the ground truth;
3. the shape's IoU is the mean over ``c``'s parts (:func:`shape_ious`).

**Inst. mIoU** is the mean of the shape IoUs over all test shapes, **Cls. mIoU** the mean
over categories of each category's mean shape IoU (categories without test shapes left
out). :class:`PartMIoU` keeps per-category sums and counts, summed over DDP ranks, so the
result is the one computed on all shapes at once, whichever rank saw which shape.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric


def restricted_argmax(logits: Tensor, category: Tensor, part_mask: Tensor) -> Tensor:
    """(B, N, P) logits, (B,) categories, (C, P) bool allowed parts -> (B, N) part ids of each shape's category."""
    allowed = part_mask.to(logits.device)[category]  # (B, P)
    return logits.masked_fill(~allowed[:, None, :], float("-inf")).argmax(dim=-1)


def shape_ious(
    pred: Tensor, target: Tensor, category: Tensor, part_mask: Tensor, valid: Tensor | None = None
) -> Tensor:
    """(B,) float64 IoU of each shape: the mean over its category's parts, an absent part counting 1.0.

    Args:
        pred: (B, N) predicted global part ids.
        target: (B, N) true global part ids.
        category: (B,) category index of each shape.
        part_mask: (C, P) bool, the part ids each category owns.
        valid: (B, N) bool, the points that count (padding excluded); all by default.
    """
    num_parts = part_mask.shape[1]
    pred_1h = F.one_hot(pred.long(), num_parts).bool()
    true_1h = F.one_hot(target.long(), num_parts).bool()
    if valid is not None:
        pred_1h &= valid[..., None]
        true_1h &= valid[..., None]
    inter = (pred_1h & true_1h).sum(dim=1).double()  # (B, P)
    union = (pred_1h | true_1h).sum(dim=1).double()
    iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
    allowed = part_mask.to(pred.device)[category].double()  # (B, P)
    return (iou * allowed).sum(dim=1) / allowed.sum(dim=1)


class PartMIoU(Metric):
    """Inst. and Cls. mIoU of part segmentation (the field's definitions, see the module docstring).

    ``update(preds, target, category, valid=None)``: ``preds`` are (B, N, P) logits (the
    restricted argmax is taken here) or (B, N) part ids. ``compute()`` returns
    ``inst_miou``, ``cls_miou`` (fractions in [0, 1]) and ``category_miou`` (C,) (NaN for
    a category without shapes).

    Args:
        part_mask: (C, P) bool, the part ids of each category (``PartTable.part_mask()``).
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, part_mask: Tensor | np.ndarray, **kwargs) -> None:
        super().__init__(**kwargs)
        mask = torch.as_tensor(np.asarray(part_mask), dtype=torch.bool)
        if mask.ndim != 2 or not mask.any(dim=1).all():
            raise ValueError("part_mask must be (categories, parts) with at least one part per category")
        self.register_buffer("part_mask", mask, persistent=False)
        self.add_state("iou_sum", torch.zeros(mask.shape[0], dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("shape_count", torch.zeros(mask.shape[0], dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor, category: Tensor, valid: Tensor | None = None) -> None:
        if preds.is_floating_point():
            preds = restricted_argmax(preds, category, self.part_mask)
        ious = shape_ious(preds, target, category, self.part_mask, valid)
        self.iou_sum.index_add_(0, category, ious.to(self.iou_sum.dtype))
        self.shape_count.index_add_(0, category, torch.ones_like(category))

    def compute(self) -> dict[str, Tensor]:
        seen = self.shape_count > 0
        per_category = torch.where(seen, self.iou_sum / self.shape_count.clamp(min=1), torch.nan)
        return {
            "inst_miou": self.iou_sum.sum() / self.shape_count.sum().clamp(min=1),
            "cls_miou": per_category[seen].mean() if seen.any() else torch.tensor(torch.nan, dtype=torch.float64),
            "category_miou": per_category,
        }
