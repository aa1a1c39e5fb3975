"""PointNet and DGCNN behind the backbone interface: shapes, permutation invariance, the kNN
graph and EdgeConv against DGCNN's reference formulation."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from backbones import DGCNN, PointNet
from backbones.edge_conv import EdgeConv, knn_graph


def _warm_up_statistics(net: torch.nn.Module, points: torch.Tensor) -> None:
    """A few training-mode passes, so eval mode uses running statistics that are not the identity."""
    net.train()
    with torch.no_grad():
        for scale in (1.0, 2.0, 0.5):
            net(points * scale + 0.1)
    net.eval()


def test_pointnet_is_the_ssl_encoder_with_a_1024_d_max_pooled_feature() -> None:
    net = PointNet()
    widths = [layer.linear.out_features for layer in net.mlp]
    assert widths == [64, 64, 64, 128, 1024] and net.out_dim == 1024 and net.tnet is None
    assert all(isinstance(layer.norm, torch.nn.BatchNorm1d) for layer in net.mlp)
    out = net(torch.rand(2, 40, 3))
    assert out.global_feature.shape == (2, 1024) and out.tokens.shape == (2, 40, 1024)
    torch.testing.assert_close(out.global_feature, out.tokens.amax(dim=1))
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        net(torch.rand(2, 40, 6))


def test_pointnet_input_transform_starts_as_the_identity() -> None:
    torch.manual_seed(0)
    net = PointNet(dims=(16, 32), input_transform=True)
    plain = PointNet(dims=(16, 32))
    plain.mlp.load_state_dict(net.mlp.state_dict())
    points = torch.rand(3, 50, 3)
    torch.testing.assert_close(net.tnet(points), torch.eye(3).expand(3, 3, 3))
    torch.testing.assert_close(net(points).global_feature, plain(points).global_feature)


def test_dgcnn_has_four_edge_convs_and_pools_max_and_mean() -> None:
    net = DGCNN()
    assert [c.linear.out_features for c in net.edge_convs] == [64, 64, 128, 256]
    assert net.k == 20 and net.out_dim == 2048
    out = net(torch.rand(2, 48, 3))
    assert out.global_feature.shape == (2, 2048) and out.tokens.shape == (2, 48, 1024)
    torch.testing.assert_close(out.global_feature, torch.cat([out.tokens.amax(1), out.tokens.mean(1)], dim=-1))
    # a crop with fewer points than k uses all of them
    assert net(torch.rand(2, 12, 3)).global_feature.shape == (2, 2048)


@pytest.mark.parametrize(
    "make", [lambda: PointNet(dims=(16, 32, 64)), lambda: PointNet(dims=(16, 32), input_transform=True),
             lambda: DGCNN(k=6, edge_dims=(8, 16, 16), emb_dims=32)],
    ids=["pointnet", "pointnet-tnet", "dgcnn"],
)
def test_shuffling_the_points_leaves_the_global_feature_unchanged(make) -> None:
    torch.manual_seed(0)
    net = make()
    points = torch.rand(3, 64, 3)
    _warm_up_statistics(net, points)
    perm = torch.randperm(64)
    with torch.no_grad():
        a, b = net(points).global_feature, net(points[:, perm]).global_feature
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_knn_graph_equals_brute_force_in_feature_space() -> None:
    torch.manual_seed(0)
    feats = torch.randn(2, 60, 8)
    graph = knn_graph(feats, 7)
    assert graph.shape == (2, 60, 7)
    for b in range(2):
        dist = ((feats[b, :, None] - feats[b, None]) ** 2).sum(-1)
        brute = dist.argsort(dim=1)[:, :7]
        for i in range(60):
            assert sorted(graph[b, i].tolist()) == sorted(brute[i].tolist())
        assert torch.equal(graph[b, :, 0], torch.arange(60))  # each point is its own nearest


def dgcnn_graph_feature(x: torch.Tensor, graph: torch.Tensor) -> torch.Tensor:
    """DGCNN's ``get_graph_feature`` by plain indexing: (B, N, C), (B, N, k) -> (B, 2C, N, k) features [x_j − x_i, x_i]."""
    neighbours = x[torch.arange(x.shape[0])[:, None, None], graph]  # (B, N, k, C)
    centres = x[:, :, None, :].expand_as(neighbours)
    return torch.cat([neighbours - centres, centres], dim=-1).permute(0, 3, 1, 2)


def test_edge_conv_equals_dgcnn_convolution_of_edge_features() -> None:
    """W·x_j + (W_c − W_n)·x_i summed per edge equals DGCNN's 1x1 conv of [x_j − x_i, x_i]
    followed by BatchNorm, LeakyReLU and max over neighbours: outputs, statistics, gradients."""
    torch.manual_seed(0)
    conv = EdgeConv(5, 12)
    ref_norm = copy.deepcopy(conv.norm)
    x = torch.randn(3, 30, 5, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    graph = knn_graph(x, 6)

    out = conv(x, graph)
    edges = F.conv2d(dgcnn_graph_feature(x_ref, graph), conv.linear.weight[:, :, None, None])  # (B, out, N, k)
    ref = ref_norm(edges.reshape(3, 12, -1)).reshape(3, 12, 30, 6)  # BatchNorm over all edges
    ref = F.leaky_relu(ref, 0.2).amax(dim=-1).transpose(1, 2)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(conv.norm.running_mean, ref_norm.running_mean)
    torch.testing.assert_close(conv.norm.running_var, ref_norm.running_var)

    weights = torch.randn_like(out)
    grads = torch.autograd.grad((out * weights).sum(), [x, conv.linear.weight])
    ref_grads = torch.autograd.grad((ref * weights).sum(), [x_ref, conv.linear.weight])
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, atol=1e-4, rtol=1e-4)
