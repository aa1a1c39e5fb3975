"""Layer-wise learning-rate decay for fine-tuning: deeper layers of the backbone move faster.

Each backbone parameter gets a depth ``d`` in ``0..L`` and the learning-rate scale
``decay ** (L - d)``; the task's head gets depth ``L`` (scale 1). With ``decay < 1`` the layers
nearest the input, which pretraining shaped most generally, change least (BEiT's rule, used by
Point-MAE's successors for PoinT-ViT).

Depths (:func:`layer_depth`):

* :class:`~backbones.point_vit.PointViT` (BEiT): the patch embedding, positional embedding and
  the [CLS] token and position are depth 0, block ``i`` is depth ``i + 1``, the final norm
  is depth ``L = depth + 1`` (with the head).
* any other backbone (PointNet, DGCNN): its top-level sub-modules in registration order,
  each element of a ``ModuleList``/``Sequential`` one step deeper than the one before,
  parameters held directly by the backbone at depth 0; ``L`` is the number of steps (so the
  last layer gets ``decay ** 1``). PointNet: T-Net 0, shared-MLP layers 1, 2, ...; DGCNN:
  EdgeConv 0, 1, ..., the embedding last.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import nn

from backbones.point_vit import PointViT
from lightning_modules.pretrain.adamw import is_no_decay


def module_depths(backbone: nn.Module) -> tuple[dict[str, int], int]:
    """``(prefix -> depth, L)``: the depth of each parameter-name prefix of ``backbone`` and the top depth ``L``.

    A parameter named ``p`` has the depth of the longest prefix ``q`` with ``p == q`` or
    ``p.startswith(q + ".")``.
    """
    if isinstance(backbone, PointViT):
        depths = {"patch_embed": 0, "pos_embed": 0, "cls_token": 0, "cls_pos": 0}
        depths.update({f"blocks.{i}": i + 1 for i in range(len(backbone.blocks))})
        top = len(backbone.blocks) + 1
        depths["norm"] = top
        return depths, top
    depths = {name: 0 for name, _ in backbone.named_parameters(recurse=False)}
    step = 0
    for name, child in backbone.named_children():
        if not any(True for _ in child.parameters()):
            continue
        parts = list(child.named_children()) if isinstance(child, (nn.ModuleList, nn.Sequential)) else [("", child)]
        for sub, module in parts:
            if any(True for _ in module.parameters()):
                depths[f"{name}.{sub}" if sub else name] = step
                step += 1
    return depths, max(step, 1)


def layer_depth(name: str, depths: dict[str, int]) -> int:
    """The depth of parameter ``name`` (relative to the backbone) under :func:`module_depths`' table."""
    best = None
    for prefix, depth in depths.items():
        if (name == prefix or name.startswith(prefix + ".")) and (best is None or len(prefix) > len(best)):
            best = prefix
    if best is None:
        raise ValueError(f"model.layer_decay: no depth for the backbone parameter {name!r}")
    return depths[best]


def layer_decay_groups(
    named_parameters: Iterable[tuple[str, nn.Parameter]],
    backbone: nn.Module,
    decay: float,
    weight_decay: float,
    backbone_prefix: str = "backbone.",
) -> list[dict[str, Any]]:
    """AdamW parameter groups of a task, split by depth and by weight decay, each with its ``lr_scale``.

    Parameters whose name starts with ``backbone_prefix`` get ``decay ** (L - depth)``, all others
    (the head) 1. Biases and 1-d parameters get no weight decay (as :func:`~lightning_modules.pretrain.adamw.param_groups`).
    Groups are ordered by falling scale (the head's first), each with ``"decay": bool`` and ``"lr_scale"``.
    """
    if not 0.0 < decay <= 1.0:
        raise ValueError(f"model.layer_decay={decay}: must be in (0, 1] (1: no decay)")
    depths, top = module_depths(backbone)
    groups: dict[tuple[int, bool], list[nn.Parameter]] = {}
    for name, param in named_parameters:
        if not param.requires_grad:
            continue
        depth = layer_depth(name[len(backbone_prefix):], depths) if name.startswith(backbone_prefix) else top
        groups.setdefault((depth, not is_no_decay(name, param)), []).append(param)
    return [
        {"params": params, "weight_decay": weight_decay if decays else 0.0, "decay": decays,
         "lr_scale": decay ** (top - depth)}
        for (depth, decays), params in sorted(groups.items(), key=lambda item: (-item[0][0], not item[0][1]))
    ]
