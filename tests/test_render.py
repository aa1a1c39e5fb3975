"""Point renderer and the attention-to-points mapping used for the W&B pictures."""

from __future__ import annotations

import numpy as np
import torch

from lightning_modules.pictures.render import colormap, render_points, tile
from lightning_modules.pictures.visuals import cls_attention_per_point


def test_colormap_endpoints() -> None:
    rgb = colormap(np.array([0.0, 0.5, 1.0]))
    assert rgb.dtype == np.uint8 and rgb.shape == (3, 3)
    assert tuple(rgb[0]) == (68, 1, 84) and tuple(rgb[-1]) == (253, 231, 37)


def test_render_draws_points_inside_the_frame() -> None:
    pts = np.random.default_rng(0).normal(size=(500, 3))
    img = render_points(pts, size=64)
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    drawn = (img != 255).any(-1)
    assert 0.05 < drawn.mean() < 0.9
    assert not drawn[0].any() and not drawn[-1].any()  # margin kept
    assert tile([img, img]).shape == (64, 132, 3)


def test_cls_attention_is_read_from_each_points_nearest_patch() -> None:
    centers = torch.tensor([[[0.0, 0, 0], [1.0, 0, 0]]])
    points = torch.tensor([[[0.1, 0, 0], [0.9, 0, 0], [-0.2, 0, 0]]])
    attn = torch.zeros(1, 2, 3, 3)
    attn[0, 0, 0] = torch.tensor([0.2, 0.7, 0.1])  # head 0: CLS -> patch0 0.7, patch1 0.1
    attn[0, 1, 0] = torch.tensor([0.0, 0.25, 0.75])
    out = cls_attention_per_point(attn, centers, points)
    torch.testing.assert_close(out, torch.tensor([[[0.7, 0.1, 0.7], [0.25, 0.75, 0.25]]]))
