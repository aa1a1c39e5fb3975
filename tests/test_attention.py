"""`pointdwc attention`: PNG pictures of the last block's [CLS] attention, one tile per head."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lightning_modules.commands.attention import attention_picture
from lightning_modules.commands.attention import main as attention_main

WHITE = np.array([255, 255, 255], dtype=np.uint8)
SIZE = 96


def _draw(ckpt: Path, root: Path, out: Path, *args: str) -> list[Path]:
    argv = ["--ckpt_path", str(ckpt), str(root), "--out", str(out), "--num_points", "256", "--image_size", str(SIZE)]
    assert attention_main([*argv, *args]) == 0
    return sorted(out.glob("*.png"))


def _tiles(image: np.ndarray, views: int, columns: int, gap: int = 4) -> list[list[np.ndarray]]:
    return [[image[r * (SIZE + gap) : r * (SIZE + gap) + SIZE, c * (SIZE + gap) : c * (SIZE + gap) + SIZE]
             for c in range(columns)] for r in range(views)]


def test_pictures_show_each_heads_attention(tiny_checkpoint, tiny_modelnet, tmp_path) -> None:
    files = _draw(tiny_checkpoint, tiny_modelnet, tmp_path / "att", "--index", "0", "--class", "cigar", "--views", "2")
    assert [f.name for f in files] == ["cigar_ply_data_test0.h5_2.png", "sphere_ply_data_test0.h5_0.png"]
    image = np.asarray(Image.open(files[0]).convert("RGB"))
    heads = 2  # tiny PoinT-ViT: 2 heads, and their mean in the last column
    assert image.shape == (2 * SIZE + 4, (heads + 1) * SIZE + 2 * 4, 3)
    tiles = _tiles(image, 2, heads + 1)
    for row in tiles:
        for tile in row:
            painted = tile[(tile != WHITE).any(-1)]
            assert len(painted) > 200  # points were drawn
            assert len(np.unique(painted, axis=0)) > 10  # coloured by a varying attention
        assert not np.array_equal(row[0], row[1])  # the heads attend differently
    assert not np.array_equal((tiles[0][0] != WHITE).any(-1), (tiles[1][0] != WHITE).any(-1))  # two views


def test_pixels_change_with_the_attention(tiny_checkpoint, tiny_modelnet, tmp_path) -> None:
    cloud = np.random.default_rng(0).normal(size=(256, 3)).astype(np.float32)
    maps = np.random.default_rng(1).random((2, 256))
    same = attention_picture(cloud, maps, 1, SIZE)
    np.testing.assert_array_equal(same, attention_picture(cloud, maps, 1, SIZE))
    flipped = attention_picture(cloud, 1.0 - maps, 1, SIZE)
    mask = (same != WHITE).any(-1)
    np.testing.assert_array_equal(mask, (flipped != WHITE).any(-1))  # the same points where they were
    assert (same[mask] != flipped[mask]).any(-1).mean() > 0.5  # in other colours
    # end to end: a checkpoint whose last block attends differently draws other pixels
    state = torch.load(tiny_checkpoint, weights_only=True)
    qkv = state["state_dict"]["teacher.backbone.blocks.0.attn.qkv.weight"]
    qkv.add_(torch.randn(qkv.shape, generator=torch.Generator().manual_seed(0)))
    changed = tmp_path / "changed.ckpt"
    torch.save(state, changed)
    (a,) = _draw(tiny_checkpoint, tiny_modelnet, tmp_path / "a", "--index", "0")
    (b,) = _draw(changed, tiny_modelnet, tmp_path / "b", "--index", "0")
    pa, pb = (np.asarray(Image.open(p).convert("RGB")) for p in (a, b))
    assert pa.shape == pb.shape and not np.array_equal(pa, pb)


def test_unknown_class_or_index_is_one_clear_error(tiny_checkpoint, tiny_modelnet, tmp_path, capsys) -> None:
    argv = ["--ckpt_path", str(tiny_checkpoint), str(tiny_modelnet), "--out", str(tmp_path / "x")]
    assert attention_main([*argv, "--class", "dragon"]) == 1
    assert "--class dragon" in capsys.readouterr().err
    assert attention_main([*argv, "--index", "99"]) == 1
    assert "--index 99" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
