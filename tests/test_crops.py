"""Multi-crop views: every point comes from its source, sizes stay in range."""

from __future__ import annotations

import math

import pytest
import torch

from backbones.grouping import gather_points
from datamodules.views.augment import AugmentConfig, augment, normalize_unit_sphere, rotation_about_axis
from datamodules.views.crops import CropSpec, MultiCrop, MultiCropConfig, crop_indices


def _cloud(b: int = 4, n: int = 500) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.rand(b, n, 3)


@pytest.mark.parametrize("spec", [CropSpec(1, 256, (0.5, 1.0)), CropSpec(1, 64, (0.1, 0.4)), CropSpec(1, 300, (0.1, 0.2))])
def test_crop_sizes_stay_in_their_range(spec: CropSpec) -> None:
    pts = _cloud()
    n = pts.shape[1]
    for trial in range(5):
        gen = torch.Generator().manual_seed(trial)
        idx = crop_indices(pts, spec, gen)
        assert idx.shape == (4, spec.num_points)
        for b in range(4):
            chosen = set(idx[b].tolist())
            k_lo, k_hi = round(spec.scale[0] * n), round(spec.scale[1] * n)
            # distinct points = min(k, num_points), with k inside the scale range
            assert len(chosen) <= min(k_hi, spec.num_points)
            if spec.num_points <= k_lo:
                assert len(chosen) == spec.num_points  # drawn without replacement
            else:
                assert len(chosen) >= min(k_lo, spec.num_points)


def test_crop_points_are_the_k_nearest_of_their_seed() -> None:
    pts = _cloud(2, 400)
    spec = CropSpec(1, 400, (0.25, 0.25))  # k = 100 exactly, resampled to 400 with repeats
    idx = crop_indices(pts, spec, torch.Generator().manual_seed(3))
    for b in range(2):
        chosen = sorted(set(idx[b].tolist()))
        assert len(chosen) == 100
        # the seed is in the crop and the crop is its 100 nearest neighbours
        ok = False
        for seed in chosen:
            nearest = (pts[b] - pts[b, seed]).norm(dim=-1).argsort()[:100]
            if sorted(nearest.tolist()) == chosen:
                ok = True
                break
        assert ok


def test_batched_crops_are_each_the_k_nearest_of_a_seed_of_their_own_cloud() -> None:
    """num_crops crops per cloud in one batch: row c·B + b is a crop of cloud b, each its own draw."""
    pts = _cloud(2, 300)
    spec = CropSpec(3, 75, (0.25, 0.25))  # k = 75, all of them kept
    idx = crop_indices(pts, spec, torch.Generator().manual_seed(1), num_crops=3)
    assert idx.shape == (6, 75)
    seen = set()
    for row in range(6):
        b = row % 2
        chosen = sorted(idx[row].tolist())
        assert len(set(chosen)) == 75
        seeds = [s for s in chosen if sorted((pts[b] - pts[b, s]).square().sum(-1).argsort()[:75].tolist()) == chosen]
        assert seeds, f"row {row} is not the 75 nearest points of any of its points in cloud {b}"
        seen.add((b, tuple(chosen)))
    assert len(seen) == 6  # three different crops of each cloud


def test_multicrop_views_come_from_the_source_cloud() -> None:
    pts = _cloud(3, 600)
    cfg = MultiCropConfig(
        global_crops=CropSpec(2, 128, (0.5, 1.0)),
        local_crops=CropSpec(4, 32, (0.1, 0.4)),
        augment=AugmentConfig(scale=(1.0, 1.0), rotate_up=False, translate=0.0, jitter_sigma=0.0),
        normalize=False,
    )
    views = MultiCrop(cfg)(pts, torch.Generator().manual_seed(0))
    assert views["global"].shape == (2, 3, 128, 3) and views["local"].shape == (4, 3, 32, 3)
    for kind in ("global", "local"):
        for v in views[kind]:
            for b in range(3):
                d = (v[b][:, None] - pts[b][None]).norm(dim=-1).amin(dim=1)
                assert d.max() < 1e-6


def test_views_are_normalised_then_augmented_within_bounds() -> None:
    pts = _cloud(8, 300) * 5 + 3
    cfg = MultiCropConfig(global_crops=CropSpec(2, 64, (0.5, 1.0)), local_crops=CropSpec(2, 32, (0.1, 0.4)))
    views = MultiCrop(cfg)(pts, torch.Generator().manual_seed(0))
    a = cfg.augment
    # unit sphere, scaled by at most scale[1], moved by at most the translation and jitter boxes
    bound = a.scale[1] + (a.translate + a.jitter_clip) * math.sqrt(3)
    for kind in ("global", "local"):
        assert views[kind].norm(dim=-1).max() <= bound + 1e-5
        assert torch.isfinite(views[kind]).all()


def test_crops_are_reproducible_from_the_generator() -> None:
    pts = _cloud()
    mc = MultiCrop()
    a = mc(pts.repeat(1, 3, 1), torch.Generator().manual_seed(5))
    b = mc(pts.repeat(1, 3, 1), torch.Generator().manual_seed(5))
    c = mc(pts.repeat(1, 3, 1), torch.Generator().manual_seed(6))
    torch.testing.assert_close(a["global"], b["global"])
    assert not torch.equal(a["global"], c["global"])


def test_normalize_and_rotation() -> None:
    pts = normalize_unit_sphere(_cloud() * 7 - 2)
    torch.testing.assert_close(pts.mean(1), torch.zeros(4, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(pts.norm(dim=-1).amax(1), torch.ones(4))
    rot = rotation_about_axis(torch.tensor([0.3, 1.2]), axis=1)
    torch.testing.assert_close(rot @ rot.transpose(1, 2), torch.eye(3).expand(2, 3, 3))
    torch.testing.assert_close(rot[:, 1], torch.tensor([[0.0, 1.0, 0.0]] * 2))  # y stays y


def test_augment_keeps_up_axis_heights_when_only_rotating() -> None:
    pts = _cloud()
    cfg = AugmentConfig(scale=(1.0, 1.0), rotate_up=True, translate=0.0, jitter_sigma=0.0)
    out = augment(pts, cfg, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out[..., 1], pts[..., 1])
    torch.testing.assert_close(out.norm(dim=-1), pts.norm(dim=-1))


def test_bad_crop_scale_is_rejected() -> None:
    with pytest.raises(ValueError, match="crop scale"):
        crop_indices(_cloud(), CropSpec(1, 10, (0.5, 1.5)))


def test_gather_points_matches_indexing() -> None:
    pts = _cloud()
    idx = torch.randint(0, 500, (4, 6, 2))
    out = gather_points(pts, idx)
    assert torch.equal(out[1, 2, 1], pts[1, idx[1, 2, 1]])


@pytest.mark.parametrize(
    "config,field",
    [
        (MultiCropConfig(global_crops=CropSpec(0, 64, (0.5, 1.0))), "global_crops.num_crops"),
        (MultiCropConfig(global_crops=CropSpec(1, 64, (0.5, 1.0)), local_crops=CropSpec(0, 32, (0.1, 0.4))), "local_crops.num_crops"),
        (MultiCropConfig(local_crops=CropSpec(2, 32, (0.4, 0.1))), "local_crops.scale"),
        (MultiCropConfig(global_crops=CropSpec(2, 0, (0.5, 1.0))), "global_crops.num_points"),
        (MultiCropConfig(augment=AugmentConfig(scale=(1.2, 0.8))), "augment.scale"),
    ],
)
def test_bad_crop_recipe_names_the_field(config: MultiCropConfig, field: str) -> None:
    with pytest.raises(ValueError, match=f"data.crops.{field}"):
        MultiCrop(config)


def test_global_crops_only_is_a_valid_recipe() -> None:
    views = MultiCrop(MultiCropConfig(local_crops=CropSpec(0, 32, (0.1, 0.4))))(_cloud(2, 1200))
    assert views["global"].shape[0] == 2 and views["local"].shape[0] == 0
