"""EdgeConv (Wang et al. 2019, DGCNN) on a k-nearest-neighbour graph, pure batched torch.

For a point ``i`` with neighbours ``j``: ``h_i = max_j LeakyReLU(BN(W · [x_j − x_i, x_i]))``.
The first product is linear, so ``W · [x_j − x_i, x_i] = W_n · x_j + (W_c − W_n) · x_i`` with
``W = [W_n | W_c]``: both products are taken once per *point* and only their sum is formed
per *edge*. This equals DGCNN's ``Conv2d(2C, out, 1)`` on the ``(B, 2C, N, k)`` edge
features (tested) with k times fewer multiplications and without the edge-feature tensor,
which is what makes DGCNN trainable on a CPU. Channels-last throughout.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from backbones.grouping import gather_points, knn
from backbones.max_pool import max_pool


def knn_graph(features: Tensor, k: int) -> Tensor:
    """Indices ``(B, N, k)`` of each point's ``k`` nearest points in ``features`` (B, N, C), itself included.

    Distances in float32 via the project's grouping (:func:`backbones.grouping.knn`); no
    gradient flows through the choice of neighbours.
    """
    feats = features.detach()
    return knn(feats, feats, k)


class EdgeConv(nn.Module):
    """One EdgeConv layer: ``(B, N, in_dim)`` features and a ``(B, N, k)`` graph -> ``(B, N, out_dim)``.

    Args:
        in_dim: C, channels of the input features.
        out_dim: channels of the output features.
        negative_slope: of the LeakyReLU (DGCNN: 0.2).
    """

    def __init__(self, in_dim: int, out_dim: int, negative_slope: float = 0.2) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.linear = nn.Linear(2 * in_dim, out_dim, bias=False)  # W on [x_j − x_i, x_i]: DGCNN's 1x1 conv
        self.norm = nn.BatchNorm1d(out_dim)
        self.negative_slope = negative_slope

    def forward(self, x: Tensor, graph: Tensor) -> Tensor:
        """Edge features for every (point, neighbour) pair, normalised over all edges, max over neighbours."""
        w_neighbour, w_centre = self.linear.weight.split(self.in_dim, dim=1)
        neighbour = F.linear(x, w_neighbour)  # (B, N, out): W_n · x_j, gathered per edge below
        centre = F.linear(x, w_centre - w_neighbour)  # (B, N, out): (W_c − W_n) · x_i
        edges = gather_points(neighbour, graph) + centre.unsqueeze(2)  # (B, N, k, out)
        b, n, k, c = edges.shape
        y = self.norm(edges.reshape(-1, c))
        # in place: BatchNorm's backward needs its input, not its output (one edge tensor less)
        y = F.leaky_relu(y, self.negative_slope, inplace=True)
        return max_pool(y.view(b, n, k, c), dim=2)

