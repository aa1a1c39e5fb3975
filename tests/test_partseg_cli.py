"""`pointdwc partseg fit|test` end to end: the honest protocol, seeds, the field protocol, configs, bad input."""

from __future__ import annotations

import json
import time
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules.part_segmentation import PartSegmentationDataModule
from datamodules.formats.shapenet_part import ShapeNetPart
from lightning_modules.commands import entry
from lightning_modules.commands.partseg import run_partseg
from tests.helpers import split_reads
from tests.layouts import write_shapenet_part

TINY = str(Path(__file__).parent / "tiny_partseg.yaml")
CONFIGS = Path(__file__).parents[1] / "configs" / "partseg"
PER_SPLIT = {"train": 4, "val": 2, "test": 2}


@pytest.fixture()
def release(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("POINTDWC_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return write_shapenet_part(tmp_path / "shapenetcore_partanno_segmentation_benchmark_v0_normal", PER_SPLIT,
                               np.random.default_rng(0))


def pointdwc(argv: list[str], monkeypatch) -> int:
    """``pointdwc ARGV`` through the console entry point; its exit status."""
    monkeypatch.setattr(sys, "argv", ["pointdwc", *argv])
    with pytest.raises(SystemExit) as done:
        entry.console_script()
    return int(done.value.code or 0)


def test_fit_selects_on_val_tests_once_at_the_end_and_test_reproduces_it(release, tmp_path, monkeypatch, capsys) -> None:
    calls = []
    test_loader = PartSegmentationDataModule.test_dataloader

    def counted(self):  # every read of the test split, and when it happened
        calls.append((self.trainer.state.fn.value, self.trainer.global_step))
        return test_loader(self)

    monkeypatch.setattr(PartSegmentationDataModule, "test_dataloader", counted)
    reads = split_reads(monkeypatch, ShapeNetPart, "part_split")
    wandb = ["--trainer.logger", "pytorch_lightning.loggers.WandbLogger", "--trainer.logger.init_args.offline", "true"]
    cli = run_partseg(["fit", "--config", TINY, "--data.root", str(release), "--data.every_point", "true",
                       *wandb])
    steps = cli.trainer.global_step
    assert steps > 0 and calls == [("test", steps), ("test", steps)]  # after training, once per checkpoint
    assert [split for _, split in reads] == ["train", "val", "test", "test"]  # test read only for the two tests
    reader = ShapeNetPart(str(release))
    assert [n for s in cli.datamodule.splits["train"] for n in s.names] == reader.part_split("train").names
    assert [n for s in cli.datamodule.splits["val"] for n in s.names] == reader.part_split("val").names

    out = capsys.readouterr().out
    assert "protocol pointdwc protocol (honest): part segmentation, random initialisation (from scratch)" in out
    assert "best val/inst_miou (max) on the release's val split" in out
    assert "test/every_point/*: the same on EVERY original point" in out and "| last test/every_point/inst_miou |" in out
    (run,) = (tmp_path / "runs" / "partseg").iterdir()
    results = json.loads((run / "results.json").read_text())
    (entry,) = results["runs"]
    assert results["protocol"] == "pointdwc"
    assert set(entry["last"]["metrics"]) == {"test/inst_miou", "test/cls_miou", "test/every_point/inst_miou",
                                             "test/every_point/cls_miou"}
    best = entry["selected"]["path"]
    assert entry["last"]["metrics"] == pytest.approx(_field_scores(cli.model, run / "checkpoints" / "last.ckpt", cli.datamodule))
    assert best == str(run / "checkpoints" / "best.ckpt") and (run / "checkpoints" / "last.ckpt").is_file()
    # wandb 0.31's service writes the offline run's files after the process asked for them: wait (a loaded machine)
    deadline = time.monotonic() + 60
    while len(list((run / "wandb").glob("offline-run-*/**/parts/test_*.png"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    (offline,) = (run / "wandb").glob("offline-run-*")
    assert len(list(offline.rglob("parts/test_*.png"))) == 2  # true vs predicted parts, one per evaluated checkpoint

    # `partseg test` of the selected checkpoint: the architecture comes from the checkpoint, same figures
    tested = run_partseg(["test", "--data.root", str(release), "--data.num_points", "128", "--data.batch_size", "4",
                          "--trainer.logger", "false", "--ckpt_path", best])
    assert tested.model.backbone.embed_dim == 32 and list(tested.model.segmenter_config.propagation_dims) == [32]
    got = float(tested.trainer.callback_metrics["test/inst_miou"])
    assert got == pytest.approx(entry["selected"]["metrics"]["test/inst_miou"], abs=1e-4)
    text = capsys.readouterr().out
    assert f"evaluated once by {best}" in text and "chosen on the release's val split" in text

    # the same checkpoint on data with another part table: one message
    other = write_shapenet_part(tmp_path / "reduced", PER_SPLIT, np.random.default_rng(1),
                                listed=[("Chair", "03001627"), ("Airplane", "02691156")])
    assert pointdwc(["partseg", "test", "--data.root", str(other), "--trainer.logger", "false", "--ckpt_path", best],
                    monkeypatch) == 1
    assert "pointdwc partseg: error: the model segments 16 categories (Airplane, Bag, Cap, Car, …) with 50 part ids, but the " \
           "data has 2 (Chair, Airplane)" in capsys.readouterr().err


def _field_scores(model, ckpt: Path, data: PartSegmentationDataModule) -> dict[str, float]:
    """Inst. and Cls. mIoU (%) of a checkpoint's weights (in a copy of ``model``) on the test batches, drawn and
    every point, by the field's loop."""
    import copy

    from tests.test_partseg import category_argmax, field_miou

    model = copy.deepcopy(model).eval()
    model.load_state_dict(torch.load(ckpt, weights_only=True)["state_dict"])
    part_ids = [list(ids) for ids in data.part_table.part_ids]
    drawn, every = [], []
    with torch.no_grad():
        for batch in data.test_dataloader():
            logits = model(batch["points"], batch["category"]).numpy()
            at_all = model(batch["points"], batch["category"], batch["all_points"]).numpy()
            for b, category in enumerate(batch["category"].tolist()):
                drawn.append((category_argmax(logits[b], part_ids[category]), batch["parts"][b].numpy(), category))
                n = int(batch["all_mask"][b].sum())
                pred = category_argmax(at_all[b, :n], part_ids[category])
                every.append((pred, batch["all_parts"][b, :n].numpy(), category))
    scores = {}
    for prefix, shapes in (("test", drawn), ("test/every_point", every)):
        scores[f"{prefix}/inst_miou"], scores[f"{prefix}/cls_miou"] = field_miou(shapes, part_ids)
    return scores


def test_seeds_on_synthetic_parts_from_a_pretrained_teacher(tiny_checkpoint, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("POINTDWC_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    tiny_set = ["--data.dataset", "datamodules.SyntheticParts", "--data.dataset.num_train_per_class", "2",
                "--data.dataset.num_val_per_class", "1", "--data.dataset.num_test_per_class", "1",
                "--data.dataset.min_points", "150", "--data.dataset.max_points", "200"]
    cli = run_partseg(["fit", "--config", TINY, *tiny_set, "--seeds", "0", "1", "--ckpt", str(tiny_checkpoint),
                       "--results", "all.json"])
    (group,) = (tmp_path / "runs" / "partseg").iterdir()
    assert sorted(p.name for p in group.iterdir() if p.is_dir()) == ["seed0", "seed1"]
    summary = json.loads((group / "summary.json").read_text())
    assert [r["seed"] for r in summary["runs"]] == [0, 1]
    values = [r["last"]["metrics"]["test/inst_miou"] for r in summary["runs"]]
    assert summary["summary"]["last"]["test/inst_miou"]["mean"] == pytest.approx(np.mean(values))
    assert json.loads((tmp_path / "all.json").read_text())["runs"] == summary["runs"]
    out = capsys.readouterr().out
    assert "mean ± std (n=2)" in out and "pretrained teacher of" in out and "mean ± std over seeds [0, 1]" in out
    assert "SyntheticParts(seed=0, 128 points)" in out
    assert cli.model.origin.kind == "checkpoint" and cli.model.table.num_categories == 16


def test_the_field_protocol_is_an_explicit_config_and_says_so(release, tmp_path, capsys) -> None:
    cli = run_partseg(["fit", "--config", TINY, "--config", str(CONFIGS / "field_protocol.yaml"),
                       "--data.root", str(release)])
    reader = ShapeNetPart(str(release))
    fitted = [n for s in cli.datamodule.splits["train"] for n in s.names]
    assert fitted == reader.part_split("train").names + reader.part_split("val").names  # train + val fitted
    assert [n for s in cli.datamodule.splits["val"] for n in s.names] == reader.part_split("test").names
    out = capsys.readouterr().out
    assert "protocol FIELD PROTOCOL (best test epoch" in out and "validated on the TEST split" in out
    assert "best-test-epoch test/inst_miou" in out
    (run,) = (tmp_path / "runs" / "partseg").iterdir()
    assert json.loads((run / "results.json").read_text())["protocol"] == "field"
    assert "TEST split" in torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)["pointdwc_validation"]


def _shape_file(root: Path, split: str = "train") -> Path:
    _, synset, token = json.loads((root / "train_test_split" / f"shuffled_{split}_file_list.json").read_text())[0].split("/")
    return root / synset / f"{token}.txt"


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("columns", "{file}: line 2 has 6 values, expected 7 (x y z nx ny nz part)"),
        ("part", "{file}: line 1: part id 47 is not one of the parts of"),
        ("nan", "{file}: line 3 has NaN or Inf values"),
        ("split", "shuffled_val_file_list.json: missing (the val split list of the ShapeNetPart layout)"),
        ("synset", "shuffled_train_file_list.json: entry 0 (shape_data/99999999/x) has the unknown synset '99999999'"),
    ],
)
def test_bad_data_is_one_message_naming_the_file_and_line(release, monkeypatch, capsys, damage, message) -> None:
    shape = _shape_file(release)
    rows = shape.read_text().splitlines()
    if damage == "columns":
        rows[1] = " ".join(rows[1].split()[:6])
    elif damage == "part":
        rows[0] = " ".join(rows[0].split()[:6] + ["47"])
    elif damage == "nan":
        rows[2] = " ".join(["nan"] + rows[2].split()[1:])
    shape.write_text("\n".join(rows) + "\n")
    listing = release / "train_test_split"
    if damage == "split":
        (listing / "shuffled_val_file_list.json").unlink()
    elif damage == "synset":
        entries = json.loads((listing / "shuffled_train_file_list.json").read_text())
        (listing / "shuffled_train_file_list.json").write_text(json.dumps(["shape_data/99999999/x", *entries]))
    assert pointdwc(["partseg", "fit", "--config", TINY, "--data.root", str(release)], monkeypatch) == 1
    err = capsys.readouterr().err
    assert err.startswith("pointdwc partseg: error: ") and message.format(file=shape) in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_pretrained_file_of_another_architecture_is_one_message(release, tiny_checkpoint, monkeypatch, capsys) -> None:
    argv = ["partseg", "fit", "--config", TINY, "--data.root", str(release), "--ckpt", str(tiny_checkpoint),
            "--model.backbone.init_args.embed_dim", "48"]
    assert pointdwc(argv, monkeypatch) == 1
    assert "embed_dim: 32 in the file vs 48 configured" in capsys.readouterr().err


def test_the_configs_build_the_cpu_default_and_point_maes_recipe() -> None:
    cli = run_partseg(["--trainer.accelerator", "cpu"], run=False)
    backbone, data = cli.model.backbone, cli.datamodule
    assert (backbone.embed_dim, backbone.depth, backbone.num_heads, backbone.group_size) == (128, 4, 4, 16)
    assert data.dataset.describe().startswith("SyntheticParts") and data.validate_on == "val"
    assert data.augment.isotropic_scale and data.augment.scale == (0.8, 1.25) and data.augment.translate == 0.1
    assert [type(c).__name__ for c in cli.trainer.callbacks if type(c).__name__ == "PartPictures"] == ["PartPictures"]
    cli = run_partseg(["--config", str(CONFIGS / "vit_small.yaml"), "--config", str(CONFIGS / "shapenetpart.yaml"),
                       "--trainer.accelerator", "cpu", "--trainer.precision", "32-true"], run=False)
    backbone, optim, data = cli.model.backbone, cli.model.optim_config, cli.datamodule
    assert (backbone.embed_dim, backbone.depth, backbone.num_heads, backbone.group_size) == (384, 12, 6, 32)
    assert backbone.num_patches(2048) == 128 and backbone.drop_path == 0.1
    assert (optim.lr, optim.weight_decay, optim.warmup_epochs, optim.min_lr) == (2e-4, 0.05, 10, 1e-6)
    seg = cli.model.segmenter_config
    assert (list(seg.propagation_dims), list(seg.head_dims), seg.category_dim, seg.dropout) == ([1536, 1024], [512, 256], 64, 0.5)
    assert cli.trainer.max_epochs == 300 and data.batch_size == 16 and data.num_points == 2048 and data.every_point
    assert type(data.dataset) is ShapeNetPart and data.dataset.root.name == "shapenetcore_partanno_segmentation_benchmark_v0_normal"
    assert cli.trainer.gradient_clip_val == 10.0
