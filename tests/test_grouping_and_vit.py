"""FPS + kNN grouping and the PoinT-ViT backbone."""

from __future__ import annotations

import pytest
import torch

from backbones import PointViT
from backbones.grouping import farthest_point_sample, group_patches, knn


def loop_fps(cloud: torch.Tensor, num_samples: int, start: int = 0) -> list[int]:
    """Farthest point sampling as a Python loop: each pick maximises the distance to the nearest pick so far."""
    picks = [start]
    while len(picks) < num_samples:
        nearest = [min(float((p - cloud[j]).square().sum()) for j in picks) for p in cloud]
        picks.append(max(range(len(cloud)), key=lambda i: nearest[i]))
    return picks


def sorted_neighbours(query: torch.Tensor, cloud: torch.Tensor, k: int) -> list[int]:
    """The ``k`` nearest points of ``cloud`` by sorting every squared distance, nearest first."""
    dist = [float((query - p).square().sum()) for p in cloud]
    return sorted(range(len(cloud)), key=lambda i: dist[i])[:k]


def test_fps_equals_the_loop_from_point_zero() -> None:
    torch.manual_seed(0)
    pts = torch.rand(3, 120, 3)
    idx = farthest_point_sample(pts, 16)
    assert idx.shape == (3, 16)
    for b in range(3):
        assert idx[b].tolist() == loop_fps(pts[b], 16)
    # a hand-made case: from (0,0,0) the farthest is (10,0,0), then (0,4,0) (4 from both), then (1,0,0)
    line = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [10, 0, 0], [0, 4, 0]]])
    assert farthest_point_sample(line, 4).tolist() == [[0, 2, 3, 1]]


def test_knn_equals_brute_force_nearest_first() -> None:
    torch.manual_seed(0)
    pts = torch.rand(2, 100, 3)
    queries = torch.rand(2, 7, 3)
    idx = knn(queries, pts, 5)
    assert idx.shape == (2, 7, 5)
    for b in range(2):
        for q in range(7):
            assert idx[b, q].tolist() == sorted_neighbours(queries[b, q], pts[b], 5)


def test_knn_is_exact_for_near_duplicates_far_from_the_origin() -> None:
    """Points 1e-2 apart around (1000, 1000, 1000): |q|² + |p|² - 2 q·p (cdist's matrix-product
    path, and a TF32 matmul on a GPU) cancels away every digit that tells them apart."""
    g = torch.Generator().manual_seed(0)
    far = torch.full((1, 1, 3), 1000.0)
    pts = far + torch.rand(2, 64, 3, generator=g) * 1e-2
    queries = far + torch.rand(2, 30, 3, generator=g) * 1e-2
    idx = knn(queries, pts, 4)
    for b in range(2):
        for q in range(30):
            assert idx[b, q].tolist() == sorted_neighbours(queries[b, q], pts[b], 4)


def test_knn_in_a_feature_space_equals_brute_force() -> None:
    """DGCNN's dynamic graph: kNN among 16-dimensional features, the clouds' own points as queries."""
    torch.manual_seed(0)
    feats = torch.randn(2, 80, 16) + 50.0
    idx = knn(feats, feats, 6)
    for b in range(2):
        for q in range(80):
            assert idx[b, q].tolist() == sorted_neighbours(feats[b, q], feats[b], 6)


def test_fps_from_a_random_start_equals_the_loop_from_that_start() -> None:
    torch.manual_seed(0)
    pts = torch.rand(4, 90, 3)
    torch.manual_seed(3)
    idx = farthest_point_sample(pts, 12, random_start=True)
    torch.manual_seed(3)
    starts = torch.randint(0, 90, (4,))  # the start is the generator's one draw
    for b in range(4):
        assert idx[b].tolist() == loop_fps(pts[b], 12, int(starts[b]))


def test_group_patches_are_fps_centres_and_their_nearest_points_relative_to_them() -> None:
    torch.manual_seed(0)
    pts = torch.rand(2, 128, 3)
    neigh, centers = group_patches(pts, 8, 16)
    assert neigh.shape == (2, 8, 16, 3) and centers.shape == (2, 8, 3)
    for b in range(2):
        for m, c in enumerate(loop_fps(pts[b], 8)):
            assert torch.equal(centers[b, m], pts[b, c])
            rows = sorted_neighbours(pts[b, c], pts[b], 16)
            assert rows[0] == c  # the centre is its own nearest neighbour
            torch.testing.assert_close(neigh[b, m], pts[b, rows] - pts[b, c])


def test_fps_rejects_too_few_points() -> None:
    with pytest.raises(ValueError, match="asked for 10 samples from 4 points"):
        farthest_point_sample(torch.rand(1, 4, 3), 10)


@pytest.mark.parametrize("num_points,patches", [(1024, 64), (256, 16)])
def test_vit_output_shapes_for_global_and_local_crops(num_points: int, patches: int) -> None:
    vit = PointViT(embed_dim=48, depth=2, num_heads=3, encoder_dims=(16, 32))
    out = vit(torch.rand(2, num_points, 3), return_attention=True)
    assert out.global_feature.shape == (2, 96) == (2, vit.out_dim)
    assert out.tokens.shape == (2, patches + 1, 48)
    assert out.attention.shape == (2, 3, patches + 1, patches + 1)
    torch.testing.assert_close(out.attention.sum(-1), torch.ones(2, 3, patches + 1))
    assert out.centers.shape == (2, patches, 3)


def test_vit_attention_path_matches_sdpa_path() -> None:
    vit = PointViT(embed_dim=32, depth=2, num_heads=2, encoder_dims=(16, 32)).eval()
    x = torch.rand(2, 256, 3)
    torch.testing.assert_close(vit(x).global_feature, vit(x, return_attention=True).global_feature)


def test_vit_rejects_bad_shape() -> None:
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        PointViT(embed_dim=32, depth=1, num_heads=2)(torch.rand(2, 100, 6))


def test_vit_small_preset_size() -> None:
    vit = PointViT(embed_dim=384, depth=12, num_heads=6)
    params = sum(p.numel() for p in vit.parameters()) / 1e6
    assert 20 < params < 24  # ViT-S, ≈22M


def test_patch_embedding_equals_the_concat_formula_with_its_gradients() -> None:
    """The pooled half of the layer after the concat runs once per patch: same function, same parameters."""
    from backbones.patch_embed import MiniPointNet

    torch.manual_seed(0)
    net = MiniPointNet(24, (8, 16))
    x = torch.randn(2, 5, 7, 3)

    def concat_formula() -> torch.Tensor:  # Point-BERT's: cat([pooled expanded to every point, f]) -> MLP -> max
        f = net.first(x)
        return net.second(torch.cat([f.amax(dim=2, keepdim=True).expand_as(f), f], dim=-1)).amax(dim=2)

    ours, ref = net(x), concat_formula()
    assert ours.shape == (2, 5, 24)
    torch.testing.assert_close(ours, ref)
    grads = torch.autograd.grad(ours.square().sum(), list(net.parameters()))
    ref_grads = torch.autograd.grad(ref.square().sum(), list(net.parameters()))
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r)


def test_vit_with_precomputed_patches_gives_identical_outputs() -> None:
    """forward(points, patches=group(points)) is the forward that groups the points itself, bit for bit."""
    torch.manual_seed(0)
    vit = PointViT(embed_dim=32, depth=2, num_heads=2, group_size=8, encoder_dims=(16, 32), drop_path=0.0)
    pts = torch.rand(3, 128, 3)
    patches = vit.group(pts)
    assert patches[0].shape == (3, 8, 8, 3) and patches[1].shape == (3, 8, 3)
    assert torch.equal(vit(pts, patches=patches).global_feature, vit(pts).global_feature)
    with pytest.raises(ValueError, match="do not belong to points"):
        vit(pts[:2], patches=patches)
