"""DGCNN (Wang et al. 2019): EdgeConv layers on a dynamic kNN graph, the field's second encoder.

Four EdgeConv layers (64-64-128-256) each on the k-nearest-neighbour graph of the previous
layer's features (the first on the coordinates), their outputs concatenated, a per-point
linear layer to ``emb_dims``, then global max- and average-pooling concatenated: a
``2·emb_dims`` feature (1024 + 1024 in CrossPoint, STRL, OcCo). Pure batched torch; the
kNN is the project's grouping kNN (:mod:`backbones.grouping`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from backbones.base import BackboneOutput, PointBackbone
from backbones.edge_conv import EdgeConv, knn_graph
from backbones.max_pool import max_pool
from backbones.pointwise import PointwiseLinear


class DGCNN(PointBackbone):
    """Points ``(B, N, 3)`` -> ``concat(max, mean)`` of per-point features ``(B, 2·emb_dims)``.

    Args:
        k: neighbours per point in every graph (clouds with fewer points use all of them).
        edge_dims: output widths of the EdgeConv layers.
        emb_dims: width of the per-point embedding that is pooled.
        negative_slope: LeakyReLU slope (DGCNN: 0.2).
    """

    def __init__(
        self,
        k: int = 20,
        edge_dims: tuple[int, ...] = (64, 64, 128, 256),
        emb_dims: int = 1024,
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__()
        if k < 1 or not edge_dims:
            raise ValueError(f"DGCNN: k must be >= 1 and edge_dims non-empty, got k={k}, edge_dims={edge_dims}")
        self.k = k
        self.edge_dims = tuple(edge_dims)
        self.emb_dims = emb_dims
        self.negative_slope = negative_slope
        self.out_dim = 2 * emb_dims
        widths = [3, *edge_dims]
        self.edge_convs = nn.ModuleList(EdgeConv(a, b, negative_slope) for a, b in zip(widths[:-1], widths[1:]))
        self.embed = PointwiseLinear(sum(edge_dims), emb_dims, nn.LeakyReLU(negative_slope))

    @property
    def point_feature_dim(self) -> int:
        """Width of :meth:`point_features`: every EdgeConv output and the embedding."""
        return sum(self.edge_dims) + self.emb_dims

    def _layers(self, points: Tensor) -> list[Tensor]:
        """The output (B, N, width) of every EdgeConv layer, then the per-point embedding."""
        if points.ndim != 3 or points.shape[-1] != 3:
            raise ValueError(f"DGCNN expects points of shape (B, N, 3), got {tuple(points.shape)}")
        k = min(self.k, points.shape[1])
        x, outputs = points, []
        for conv in self.edge_convs:
            x = conv(x, knn_graph(x, k))  # dynamic graph: neighbours in the current feature space
            outputs.append(x)
        return [*outputs, self.embed(torch.cat(outputs, dim=-1))]

    def forward(self, points: Tensor, return_attention: bool = False) -> BackboneOutput:
        """(B, N, 3) -> global feature (B, 2·emb_dims); tokens are the per-point embeddings (B, N, emb_dims)."""
        per_point = self._layers(points)[-1]
        feature = torch.cat([max_pool(per_point, dim=1), per_point.mean(dim=1)], dim=-1)
        return BackboneOutput(global_feature=feature, tokens=per_point)

    def point_features(self, points: Tensor) -> Tensor:
        """(B, N, sum(edge_dims) + emb_dims): the EdgeConv outputs and the embedding per point (DGCNN's
        segmentation concatenates its EdgeConv outputs the same way). The last ``emb_dims`` channels are
        ``forward(points).tokens``.
        """
        return torch.cat(self._layers(points), dim=-1)
