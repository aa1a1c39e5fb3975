"""The part-segmentation network: a pointdwc backbone with Point-MAE's segmentation structure.

For a batch of clouds (B, N, 3) and their categories:

1. **local features** from the backbone: a PoinT-ViT gives the patch tokens of three
   evenly spaced blocks (12 blocks: 3, 7, 11), each through its last LayerNorm,
   concatenated (B, M, 3·D) at the M patch centres; PointNet and DGCNN give per-point
   features (B, N, C) at the points themselves (``point_features``: every layer's output);
2. a **global feature**: max ‖ mean of the local features over M;
3. the **category**: its one-hot through a small MLP (linear, BatchNorm, LeakyReLU 0.2);
4. **propagation** to every point: inverse-distance weighting over the 3 nearest positions
   (:func:`~backbones.propagation.idw_propagate`), concatenated with the point's xyz and
   passed through a per-point MLP (PointNet++'s feature propagation);
5. a per-point **head**: [propagated ‖ global ‖ category] -> MLP with BatchNorm, ReLU and
   dropout -> logits over every global part id.

Point-MAE's ``segmentation/models/pt.py`` has the same stages and widths (propagation MLP
1536-1024, head 512-256, 64-d category feature, dropout 0.5). The logits cover the whole
part table; the prediction for a shape is the argmax over its category's parts
(:func:`~lightning_modules.downstream.part_iou.restricted_argmax`). Query points other than the
input (e.g. every original point of a shape, while the backbone sees 2048 of them) get
their features by the same propagation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from backbones.pointwise import PointwiseLinear
from backbones.point_vit import evenly_spaced_blocks
from backbones.propagation import idw_propagate


class PartSegmenter(nn.Module):
    """Backbone + propagation + per-point head (Point-MAE's part-segmentation structure).

    Args:
        backbone: a PoinT-ViT (has ``block_tokens``) or a per-point backbone (has
            ``point_features`` and ``point_feature_dim``: PointNet, DGCNN), pretrained or not.
        num_categories: width of the category one-hot.
        num_parts: width of the logits (every global part id of the table).
        blocks: the ViT blocks whose tokens are used (default: three evenly spaced, the last included).
        category_dim: width of the category feature.
        propagation_dims: widths of the per-point MLP after interpolation.
        head_dims: hidden widths of the per-point head.
        dropout: after the head's first layer.
        neighbours: positions each point interpolates from.
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_categories: int,
        num_parts: int,
        blocks: Sequence[int] | None = None,
        category_dim: int = 64,
        propagation_dims: Sequence[int] = (1536, 1024),
        head_dims: Sequence[int] = (512, 256),
        dropout: float = 0.5,
        neighbours: int = 3,
    ) -> None:
        super().__init__()
        if not propagation_dims or not head_dims:
            raise ValueError("PartSegmenter: propagation_dims and head_dims need at least one width each")
        self.backbone = backbone
        self.num_categories = num_categories
        self.num_parts = num_parts
        self.neighbours = neighbours
        if hasattr(backbone, "block_tokens"):
            self.blocks = list(blocks) if blocks is not None else evenly_spaced_blocks(len(backbone.blocks))
            local_dim = len(self.blocks) * backbone.embed_dim
        elif hasattr(backbone, "point_features"):
            self.blocks = None
            local_dim = backbone.point_feature_dim
        else:
            raise TypeError(
                f"PartSegmenter: {type(backbone).__name__} gives no local features (needs block_tokens "
                "like PointViT, or point_features like PointNet and DGCNN)"
            )
        self.local_dim = local_dim
        self.category_mlp = PointwiseLinear(num_categories, category_dim, nn.LeakyReLU(0.2))
        widths = [local_dim + 3, *propagation_dims]
        self.propagation = nn.Sequential(*(PointwiseLinear(a, b, nn.ReLU()) for a, b in zip(widths[:-1], widths[1:])))
        widths = [propagation_dims[-1] + 2 * local_dim + category_dim, *head_dims]
        layers: list[nn.Module] = []
        for k, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(PointwiseLinear(a, b, nn.ReLU()))
            if k == 0 and dropout > 0:
                layers.append(nn.Dropout(dropout))
        self.head = nn.Sequential(*layers, nn.Linear(widths[-1], num_parts))

    def local_features(self, points: Tensor) -> tuple[Tensor, Tensor, bool]:
        """(B, M, C) features, (B, M, 3) their positions, and whether the positions are ``points`` themselves."""
        if self.blocks is not None:
            tokens, centers = self.backbone.block_tokens(points, self.blocks)
            return torch.cat(tokens, dim=-1), centers, False
        return self.backbone.point_features(points), points, True

    def forward(self, points: Tensor, category: Tensor, query: Tensor | None = None) -> Tensor:
        """(B, N, 3) clouds, (B,) category indices -> (B, Q, num_parts) logits at ``query`` (default: ``points``)."""
        features, positions, at_points = self.local_features(points)
        global_feature = torch.cat([features.amax(dim=1), features.mean(dim=1)], dim=-1)  # (B, 2C)
        query = points if query is None else query
        if at_points and query is points:
            propagated = features
        else:
            propagated = idw_propagate(query, positions, features, self.neighbours)
        per_point = self.propagation(torch.cat([query.to(propagated.dtype), propagated], dim=-1))
        one_hot = F.one_hot(category.long(), self.num_categories).to(per_point.dtype)
        category_feature = self.category_mlp(one_hot)  # (B, category_dim)
        q = per_point.shape[1]
        x = torch.cat(
            [per_point, global_feature[:, None].expand(-1, q, -1), category_feature[:, None].expand(-1, q, -1)], dim=-1
        )
        return self.head(x)
