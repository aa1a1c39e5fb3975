"""Part-segmentation fine-tuning: the data module's splits and draws, the module's weights, loss, predictions, metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from backbones import PointNet, PointViT
from datamodules.views.augment import augment
from datamodules.errors import DataError
from datamodules.part_dataset import PartShapes, collate_parts
from datamodules.part_segmentation import SCALE_AND_SHIFT, PartSegmentationDataModule
from datamodules.formats.shapenet_part import ShapeNetPart
from lightning_modules.commands.export import export
from lightning_modules.downstream.partseg import PartSegmentation, SegmenterConfig
from tests.helpers import split_reads
from tests.layouts import shapenet_part_rows, write_shapenet_part

SMALL = SegmenterConfig(category_dim=8, propagation_dims=(16,), head_dims=(16,))
PER_SPLIT = {"train": 3, "val": 2, "test": 2}


@pytest.fixture()
def release(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("POINTDWC_CACHE", str(tmp_path / "cache"))
    return write_shapenet_part(tmp_path / "shapenetpart", PER_SPLIT, np.random.default_rng(3))


def tiny_vit(**kw) -> PointViT:
    """The architecture of the session's tiny pretraining checkpoint."""
    return PointViT(embed_dim=32, depth=1, num_heads=2, group_size=8, encoder_dims=(16, 32), **kw)


def _data(root: Path, **kw) -> PartSegmentationDataModule:
    return PartSegmentationDataModule(root=str(root), batch_size=4, num_points=64, **kw)


def _names(shapes: list) -> list[str]:
    return [name for split in shapes for name in split.names]


def _reads_of(data: PartSegmentationDataModule, reads: list) -> list[str]:
    return [split for reader, split in reads if reader is data.dataset]


def test_honest_splits_fit_on_train_select_on_val_and_read_test_only_for_test(release, monkeypatch) -> None:
    reads = split_reads(monkeypatch, ShapeNetPart, "part_split")
    data = _data(release)
    data.setup("fit")
    reader = ShapeNetPart(str(release))
    assert _names(data.splits["train"]) == reader.part_split("train").names
    assert _names(data.splits["val"]) == reader.part_split("val").names
    assert "test" not in data.splits and _reads_of(data, reads) == ["train", "val"]
    data.setup("test")
    assert _names(data.splits["test"]) == reader.part_split("test").names
    assert _reads_of(data, reads) == ["train", "val", "test"]
    assert "release's val split" in data.describe_validation()


def test_the_field_protocol_fits_on_train_and_val_and_validates_on_test(release, monkeypatch) -> None:
    reads = split_reads(monkeypatch, ShapeNetPart, "part_split")
    data = _data(release, validate_on="test")
    data.setup("fit")
    reader = ShapeNetPart(str(release))
    assert _names(data.splits["train"]) == reader.part_split("train").names + reader.part_split("val").names
    assert _names(data.splits["val"]) == reader.part_split("test").names
    assert sorted(_reads_of(data, reads)) == ["test", "train", "val"]  # each split once
    assert "TEST split" in data.describe_validation()
    with pytest.raises(DataError, match="data.validate_on must be 'val' or 'test'"):
        _data(release, validate_on="train")
    with pytest.raises(DataError, match="needs a set in ShapeNetPart's layout"):
        PartSegmentationDataModule(dataset=object())  # type: ignore[arg-type]


def test_evaluation_draws_are_fixed_for_every_seed_and_training_draws_change_per_epoch(release, monkeypatch) -> None:
    monkeypatch.setenv("PL_GLOBAL_SEED", "5")
    first, second = _data(release), _data(release, seed=9)
    for data in (first, second):
        data.setup("fit")
    a, b = next(iter(first.val_dataloader())), next(iter(second.val_dataloader()))
    assert torch.equal(a["points"], b["points"]) and torch.equal(a["parts"], b["parts"])
    assert first._seed() == 5 and second._seed() == 9  # None: the run's seed_everything
    loader = first.train_dataloader()
    dataset = loader.dataset
    dataset.set_epoch(0)
    epoch0 = dataset[0]["points"]
    dataset.set_epoch(1)
    assert not torch.equal(epoch0, dataset[0]["points"])
    shape = dataset.splits[0].shape(0)  # every drawn point is an original point
    assert (dataset[0]["points"][:, None] == torch.from_numpy(shape.points)[None]).all(-1).any(1).all()


def test_training_augmentation_scales_all_axes_alike_and_shifts() -> None:
    points = torch.randn(5, 40, 3, generator=torch.Generator().manual_seed(0))
    moved = augment(points, SCALE_AND_SHIFT, torch.Generator().manual_seed(1))
    for b in range(5):
        centred, source = moved[b] - moved[b].mean(0), points[b] - points[b].mean(0)
        scale = centred / source
        assert torch.allclose(scale, scale[0, 0].expand_as(scale), atol=1e-4)  # one scale for x, y and z
        assert 0.8 <= float(scale[0, 0]) <= 1.25
        shift = moved[b] - scale[0, 0] * points[b]
        assert torch.allclose(shift, shift[0].expand_as(shift), atol=1e-5) and shift[0].abs().max() <= 0.1


def test_every_point_samples_carry_all_original_points(release) -> None:
    test = ShapeNetPart(str(release)).part_split("test")
    shapes = PartShapes([test], 64, "fixed", every_point=True)
    batch = collate_parts([shapes[0], shapes[1]])
    counts = np.array([shapenet_part_rows(release, name) for name in test.names[:2]])  # the release files' rows
    assert batch["points"].shape == (2, 64, 3) and batch["mask"].all()
    assert batch["all_points"].shape == (2, counts.max(), 3) and batch["all_mask"].sum(1).tolist() == counts.tolist()
    for b in range(2):
        whole = test.shape(b)
        assert np.array_equal(batch["all_points"][b, : counts[b]].numpy(), whole.points)
        assert np.array_equal(batch["all_parts"][b, : counts[b]].numpy(), whole.parts)


def _weights(ckpt: Path, network: str) -> dict[str, torch.Tensor]:
    prefix = f"{network}.backbone."
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def test_a_pretrained_backbone_loads_into_the_segmenter_exactly_and_scratch_does_not(tiny_checkpoint, tmp_path) -> None:
    table = {"categories": ["a", "b"], "synsets": ["1", "2"], "part_ids": [[0, 1], [2, 3, 4]],
             "part_names": ["p0", "p1", "p2", "p3", "p4"]}
    teacher, student = _weights(tiny_checkpoint, "teacher"), _weights(tiny_checkpoint, "student")
    exported = export(tiny_checkpoint, tmp_path / "encoder.pt")
    cases = [(str(tiny_checkpoint), None, teacher), (str(tiny_checkpoint), "student", student), (str(exported), None, teacher)]
    for path, network, expected in cases:
        module = PartSegmentation(tiny_vit(drop_path=0.2), path, network, SMALL, part_table=table)
        own = {k[len("segmenter.backbone."):]: v for k, v in module.state_dict().items() if k.startswith("segmenter.backbone.")}
        assert own.keys() == expected.keys() and all(torch.equal(own[k], expected[k]) for k in own), (path, network)
        assert not any(k.startswith("backbone.") for k in module.state_dict())  # the backbone is held once
        assert module.origin.kind in ("checkpoint", "exported") and module.origin.path == path
    torch.manual_seed(0)
    scratch = PartSegmentation(tiny_vit(), segmenter=SMALL, part_table=table)
    own = scratch.backbone.state_dict()
    assert sum(not torch.equal(v, teacher[k]) for k, v in own.items()) > len(teacher) // 2
    assert scratch.origin.describe() == "random initialisation (from scratch)"


def reference_cross_entropy(logits: torch.Tensor, parts: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Label-smoothed cross-entropy written out: (1 - ε)·NLL of the true part + ε·mean over parts of -log p."""
    logp = logits - logits.logsumexp(-1, keepdim=True)
    nll = -logp.gather(-1, parts[..., None]).squeeze(-1)
    return ((1 - smoothing) * nll + smoothing * -logp.mean(-1)).mean()


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_the_loss_is_cross_entropy_over_every_part_of_every_point(smoothing) -> None:
    table = {"categories": ["a", "b", "c"], "synsets": ["1", "2", "3"], "part_ids": [[0, 1], [2, 3, 4], [5]],
             "part_names": [f"p{i}" for i in range(6)]}
    torch.manual_seed(0)
    module = PartSegmentation(PointNet(dims=(8, 16)), segmenter=SMALL, label_smoothing=smoothing, part_table=table)
    with torch.no_grad():
        logits = module.eval()(torch.randn(3, 50, 3), torch.tensor([2, 0, 1]))
    assert logits.shape == (3, 50, 6)  # every global part, whatever the category
    parts = torch.randint(0, 6, (3, 50))
    torch.testing.assert_close(module._loss(logits, parts), reference_cross_entropy(logits, parts, smoothing))
    # by hand: uniform logits over 6 parts cost log 6 whatever the labels and the smoothing
    uniform = module._loss(torch.zeros(1, 2, 6), parts[:1, :2])
    torch.testing.assert_close(uniform, torch.tensor(np.log(6.0), dtype=torch.float32))


def field_miou(shapes: list[tuple[np.ndarray, np.ndarray, int]], part_ids: list[list[int]]) -> tuple[float, float]:
    """Inst. and Cls. mIoU (%) as PointNet++'s evaluation loop computes them, from (pred, gt, category) per shape."""
    by_category: dict[int, list[float]] = {}
    for pred, gt, category in shapes:
        ious = []
        for p in part_ids[category]:
            union = np.sum((pred == p) | (gt == p))
            ious.append(1.0 if union == 0 else np.sum((pred == p) & (gt == p)) / union)
        by_category.setdefault(category, []).append(float(np.mean(ious)))
    every = [iou for ious in by_category.values() for iou in ious]
    return 100 * float(np.mean(every)), 100 * float(np.mean([np.mean(v) for v in by_category.values()]))


def category_argmax(logits: np.ndarray, ids: list[int]) -> np.ndarray:
    """(N, P) logits -> (N,) the best of the category's own part ids."""
    return np.asarray(ids)[logits[:, ids].argmax(1)]


def test_the_test_step_scores_category_restricted_predictions_on_drawn_and_every_point(release, monkeypatch) -> None:
    reads = split_reads(monkeypatch, ShapeNetPart, "part_split")
    data = _data(release, every_point=True)
    torch.manual_seed(0)
    module = PartSegmentation(tiny_vit(), segmenter=SMALL, part_table=data.part_table.to_dict()).eval()

    class Outputs(pl.Callback):
        def __init__(self) -> None:
            self.preds: list[torch.Tensor] = []

        def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
            self.preds.append(outputs["pred"])

    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[outputs := Outputs()])
    (logged,) = trainer.test(module, datamodule=data, verbose=False)
    part_ids = [list(ids) for ids in data.part_table.part_ids]
    drawn, every, step_preds = [], [], []
    with torch.no_grad():
        for batch in data.test_dataloader():
            logits = module(batch["points"], batch["category"]).numpy()
            at_all = module(batch["points"], batch["category"], batch["all_points"]).numpy()
            for b, category in enumerate(batch["category"].tolist()):
                pred = category_argmax(logits[b], part_ids[category])
                step_preds.append(pred)
                drawn.append((pred, batch["parts"][b].numpy(), category))
                n = int(batch["all_mask"][b].sum())  # the shape's own points, not the padding
                assert batch["all_mask"][b, :n].all()
                pred_all = category_argmax(at_all[b, :n], part_ids[category])
                every.append((pred_all, batch["all_parts"][b, :n].numpy(), category))
    assert len(every) == 6 and len({len(gt) for _, gt, _ in every}) > 1  # shapes of several sizes: padding to leave out
    np.testing.assert_array_equal(torch.cat(outputs.preds).numpy(), np.stack(step_preds))  # the step's predictions
    for name, shapes in (("test", drawn), ("test/every_point", every)):
        inst, cls = field_miou(shapes, part_ids)
        assert logged[f"{name}/inst_miou"] == pytest.approx(inst, abs=1e-4)
        assert logged[f"{name}/cls_miou"] == pytest.approx(cls, abs=1e-4)
    assert {f"test/miou/{c}" for c in ("Airplane", "Bag", "Chair")} <= set(logged)
    assert _reads_of(data, reads) == ["test"]  # read once, by setup("test")


def test_a_checkpoint_of_another_part_table_is_one_clear_error(release) -> None:
    data = _data(release)
    module = PartSegmentation(tiny_vit(), segmenter=SMALL, part_table=data.part_table.to_dict())
    other = dict(data.part_table.to_dict(), categories=["X"] * 16)
    with pytest.raises(DataError, match="the checkpoint segments 16 categories \\(X, X, X, X, …\\)"):
        module.on_load_checkpoint({"state_dict": module.state_dict(), "hyper_parameters": {"part_table": other}})
    with pytest.raises(DataError, match="does not fit the configured segmentation model"):
        module.on_load_checkpoint({"state_dict": {"segmenter.head.0.weight": torch.zeros(1)}})
