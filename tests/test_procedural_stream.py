"""The synthetic train split as an endless stream: a new draw each epoch, reproducible, exact on resume."""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from datamodules import SyntheticShapes
from datamodules.synthetic.stream import ProceduralClouds
from datamodules.synthetic.shapes import CLASS_NAMES
from tests.helpers import assert_mid_epoch_resume_is_exact, tiny_data, tiny_module, tiny_trainer


def test_clouds_depend_on_epoch_and_index_only() -> None:
    clouds = ProceduralClouds(num_per_class=1, num_points=64, seed=0)
    assert clouds.shape == (len(CLASS_NAMES), 64, 3) and len(clouds) == len(CLASS_NAMES)
    first = clouds[np.array([3, 0, 5])]
    assert first.dtype == np.float32 and first.shape == (3, 64, 3)
    np.testing.assert_array_equal(first[1], clouds[0])  # a batch row equals the single read
    np.testing.assert_array_equal(first, ProceduralClouds(1, 64, 0)[np.array([3, 0, 5])])  # reproducible
    labels0 = clouds.labels()
    assert sorted(labels0.tolist()) == list(range(len(CLASS_NAMES)))  # balanced
    clouds.set_epoch(1)
    second = clouds[np.array([3, 0, 5])]
    assert not np.allclose(first, second)  # a new draw
    assert not np.array_equal(labels0, clouds.labels())
    clouds.set_epoch(0)
    np.testing.assert_array_equal(first, clouds[np.array([3, 0, 5])])


class Record(pl.Callback):
    """Raw clouds of every training batch, per epoch."""

    def __init__(self) -> None:
        self.seen: dict[int, list[torch.Tensor]] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.seen.setdefault(trainer.current_epoch, []).append(batch["global"].clone())


def _stream(tmp_path, monkeypatch) -> SyntheticShapes:
    monkeypatch.setenv("POINTDWC_CACHE", str(tmp_path / "cache"))
    return SyntheticShapes(num_train_per_class=1, num_test_per_class=1, num_points=512, fresh_train_each_epoch=True)


def test_training_sees_a_new_draw_each_epoch(tmp_path, monkeypatch) -> None:
    data = tiny_data(dataset=_stream(tmp_path, monkeypatch))
    record = Record()
    pl.seed_everything(0)
    tiny_trainer(tmp_path, max_epochs=2, callbacks=[record]).fit(tiny_module(), data)
    assert len(record.seen[0]) == len(record.seen[1]) == len(CLASS_NAMES) // 4
    assert data.splits["train"].points.epoch == 1
    fixed = SyntheticShapes(1, 1, 512).load("train").points
    assert not np.allclose(data.splits["train"].points[np.arange(4)], fixed[:4])  # not the cached set
    for a, b in zip(record.seen[0], record.seen[1]):
        assert not torch.allclose(a, b)


def test_resume_in_the_middle_of_a_streamed_epoch_is_exact(tmp_path, monkeypatch) -> None:
    """Stop at step 9 (epoch 1 of 7-step epochs), resume: bit-identical, the stream included."""
    stream = _stream(tmp_path, monkeypatch)
    assert_mid_epoch_resume_is_exact(tmp_path, lambda: tiny_data(dataset=stream), stop_step=9, total_steps=14)


def test_a_probe_refuses_a_fresh_draw_split_naming_the_field(tmp_path, monkeypatch) -> None:
    from lightning_modules.evaluation.probe import LinearProbe

    probe = LinearProbe(data=_stream(tmp_path, monkeypatch), num_points=256)
    trainer = tiny_trainer(tmp_path, max_steps=1, callbacks=[probe])
    with pytest.raises(ValueError, match=r"probe.data: .*fresh train draw each epoch.*fresh_train_each_epoch: false"):
        trainer.fit(tiny_module(), tiny_data(dataset=SyntheticShapes(1, 1, 512)))
    with pytest.raises(TypeError, match="integer indices only"):
        ProceduralClouds(1, 64, 0)[0:4]  # slicing, as a probe would
