"""The segmentation network: intermediate backbone features, IDW propagation, shapes, pretrained weights."""

from __future__ import annotations

import pytest
import torch

from backbones import PointViT, load_pretrained
from backbones.point_vit import evenly_spaced_blocks
from backbones.pretrained import save_pretrained
from backbones.propagation import idw_propagate
from lightning_modules.checkpoint_encoder import load_checkpoint_encoder
from lightning_modules.downstream.part_iou import restricted_argmax
from lightning_modules.downstream.part_segmenter import PartSegmenter
from tests.helpers import tiny_dgcnn, tiny_module, tiny_pointnet

SMALL = dict(category_dim=8, propagation_dims=(32, 24), head_dims=(16,))


def _vit(depth: int = 4) -> PointViT:
    return PointViT(embed_dim=32, depth=depth, num_heads=2, group_size=8, encoder_dims=(16, 32))


def _clouds(b: int = 3, n: int = 128, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, n, 3, generator=torch.Generator().manual_seed(seed))


def test_evenly_spaced_blocks() -> None:
    assert evenly_spaced_blocks(12) == [3, 7, 11]  # Point-MAE's fetch_idx
    assert evenly_spaced_blocks(4) == [0, 2, 3] and evenly_spaced_blocks(6) == [1, 3, 5]
    assert evenly_spaced_blocks(1) == [0, 0, 0]


def test_vit_block_tokens_end_where_forward_does_and_follow_the_blocks() -> None:
    vit = _vit().eval()
    points = _clouds()
    with torch.no_grad():
        out = vit(points)
        (last,), centers = vit.block_tokens(points, [3])
        assert torch.equal(last, out.tokens[:, 1:]) and torch.equal(centers, out.centers)
        assert torch.equal(out.global_feature, torch.cat([out.tokens[:, 0], out.tokens[:, 1:].amax(1)], -1))
        tokens, _ = vit.block_tokens(points, [0, 2])
        x, _ = vit._embed(points)
        for i in range(3):
            x, _ = vit.blocks[i](x)
            if i in (0, 2):
                assert torch.equal(tokens[[0, 2].index(i)], vit.norm(x)[:, 1:])
    assert tokens[0].shape == (3, vit.num_patches(128), 32)
    with pytest.raises(ValueError, match="blocks must be indices"):
        vit.block_tokens(points, [4])


@pytest.mark.parametrize("make", [tiny_pointnet, tiny_dgcnn])
def test_per_point_features_end_with_the_backbones_tokens(make) -> None:
    backbone = make().eval()
    points = _clouds()
    with torch.no_grad():
        features, tokens = backbone.point_features(points), backbone(points).tokens
    assert features.shape == (3, 128, backbone.point_feature_dim)
    assert torch.equal(features[..., -tokens.shape[-1] :], tokens)


def test_idw_propagation_equals_brute_force() -> None:
    gen = torch.Generator().manual_seed(1)
    query, positions = torch.randn(2, 50, 3, generator=gen), torch.randn(2, 9, 3, generator=gen)
    features = torch.randn(2, 9, 5, generator=gen)
    out = idw_propagate(query, positions, features)
    expected = torch.empty_like(out)
    for b in range(2):
        for q in range(50):
            d2 = ((positions[b] - query[b, q]) ** 2).sum(-1)
            nearest = sorted(range(9), key=lambda m: d2[m].item())[:3]
            w = torch.stack([1.0 / (d2[m] + 1e-8) for m in nearest])
            expected[b, q] = (w[:, None] * features[b, nearest]).sum(0) / w.sum()
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    # a query at a position takes (almost only) that position's feature
    torch.testing.assert_close(idw_propagate(positions, positions, features), features, rtol=1e-5, atol=1e-5)
    assert idw_propagate(query, positions[:, :2], features[:, :2]).shape == (2, 50, 5)  # fewer than 3 positions


@pytest.mark.parametrize("make", [_vit, tiny_pointnet, tiny_dgcnn])
def test_logits_at_every_point_and_at_other_query_points(make) -> None:
    net = PartSegmenter(make(), num_categories=4, num_parts=10, **SMALL)
    points, category = _clouds(), torch.tensor([0, 3, 1])
    logits = net(points, category)
    assert logits.shape == (3, 128, 10)
    logits.sum().backward()
    assert all(p.grad is not None for p in net.backbone.parameters() if p.requires_grad)
    net.eval()
    with torch.no_grad():
        query = torch.cat([points, _clouds(3, 40, seed=5)], dim=1)  # every original point: more than the backbone saw
        assert net(points, category, query).shape == (3, 168, 10)
        torch.testing.assert_close(net(points, category, query)[:, :128], net(points, category), rtol=1e-4, atol=1e-4)
    mask = torch.zeros(4, 10, dtype=torch.bool)
    mask[0, :3], mask[1, 3:5], mask[2, 5:7], mask[3, 7:] = True, True, True, True
    pred = restricted_argmax(logits.detach(), category, mask)
    assert all(mask[category[b]][pred[b]].all() for b in range(3))


def test_vit_segmenter_uses_three_evenly_spaced_blocks() -> None:
    net = PartSegmenter(_vit(depth=6), num_categories=2, num_parts=4, **SMALL)
    assert net.blocks == [1, 3, 5] and net.local_dim == 3 * 32
    assert PartSegmenter(_vit(), 2, 4, blocks=[3], **SMALL).local_dim == 32


def test_a_pretrained_teacher_loads_into_the_segmentation_backbone_exactly(tiny_checkpoint) -> None:
    encoder = load_checkpoint_encoder(tiny_checkpoint)
    net = PartSegmenter(encoder.backbone, num_categories=3, num_parts=6, **SMALL)
    weights = torch.load(tiny_checkpoint, weights_only=True)["state_dict"]
    teacher = {k[len("teacher.backbone.") :]: v for k, v in weights.items() if k.startswith("teacher.backbone.")}
    own = {k[len("backbone.") :]: v for k, v in net.state_dict().items() if k.startswith("backbone.")}
    assert own.keys() == teacher.keys() and all(torch.equal(own[k], teacher[k]) for k in own)
    module = tiny_module()
    module.load_state_dict(weights)
    points = _clouds(2, 256)
    with torch.no_grad():
        features, centers, _ = net.eval().local_features(points)
        reference, ref_centers = module.eval().teacher.backbone.block_tokens(points, net.blocks)
    assert torch.equal(features, torch.cat(reference, -1)) and torch.equal(centers, ref_centers)


def test_an_exported_pointnet_loads_into_the_segmentation_backbone_exactly(tmp_path) -> None:
    pointnet = tiny_pointnet()
    pointnet.train()(_clouds(4, 64))  # move the BatchNorm statistics off their initial values
    path = save_pretrained(pointnet, tmp_path / "pointnet.pt", "backbones.PointNet", pointnet.init_args())
    net = PartSegmenter(load_pretrained(path), num_categories=2, num_parts=4, **SMALL)
    for (name, a), (_, b) in zip(pointnet.state_dict().items(), net.backbone.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
