"""`pointdwc finetune fit|test` end to end: the honest protocol, seeds, the field protocol, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules.classification import ClassificationDataModule
from datamodules.formats.modelnet_h5 import ModelNet40H5
from lightning_modules.commands.finetune import main as finetune_main
from lightning_modules.commands.finetune import run_finetune
from tests.helpers import split_reads

TINY = str(Path(__file__).parent / "tiny_finetune.yaml")
FIELD = str(Path(__file__).parents[1] / "configs" / "finetune" / "field_protocol.yaml")


def test_fit_selects_on_a_carved_split_and_reads_the_test_split_only_at_the_end(
    tiny_modelnet, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    calls = []
    test_loader = ClassificationDataModule.test_dataloader

    def counted(self):  # every read of the test split, and when it happened
        calls.append((self.trainer.state.fn.value, self.trainer.global_step, self.trainer.current_epoch))
        return test_loader(self)

    monkeypatch.setattr(ClassificationDataModule, "test_dataloader", counted)
    reads = split_reads(monkeypatch, ModelNet40H5, "load")
    wandb = ["--trainer.logger", "pytorch_lightning.loggers.WandbLogger", "--trainer.logger.init_args.offline", "true"]
    cli = run_finetune(["fit", "--config", TINY, "--data.root", str(tiny_modelnet), *wandb])
    steps = cli.trainer.global_step
    assert steps > 0 and calls == [("test", steps, 2), ("test", steps, 2)]  # after training, once per checkpoint
    assert [split for _, split in reads] == ["train", "test", "test"]  # the test split read only for the two tests

    # validation shapes come from the train split and are not fitted
    train = ModelNet40H5(str(tiny_modelnet)).load("train")
    fit, val = cli.datamodule.splits["train"], cli.datamodule.splits["val"]
    assert len(fit) + len(val) == len(train) == 24 and np.bincount(val.labels).tolist() == [2, 2, 2]
    rows = {cloud.tobytes() for cloud in train.points}
    assert all(cloud.tobytes() in rows for cloud in val.points)
    assert not {cloud.tobytes() for cloud in val.points} & {cloud.tobytes() for cloud in fit.points}

    out = capsys.readouterr().out
    assert "protocol pointdwc protocol (honest)" in out and "random initialisation (from scratch)" in out
    assert "stratified 25% validation split carved from the train split" in out
    (run,) = (tmp_path / "runs" / "finetune").iterdir()
    results = json.loads((run / "results.json").read_text())
    (entry,) = results["runs"]
    assert results["protocol"] == "pointdwc" and set(entry["last"]["metrics"]) == {"test/acc", "test/macc"}
    best = entry["selected"]["path"]
    assert best == str(run / "checkpoints" / "best.ckpt") and (run / "checkpoints" / "last.ckpt").is_file()
    assert list((run / "wandb").glob("offline-run-*"))  # W&B, offline
    assert f"again with: pointdwc finetune test --config {run / 'config.yaml'} --ckpt_path {best}" in out
    # the results file reads back as the run's result (the benchmarks' tables do)
    from dataclasses import asdict

    from lightning_modules.evaluation.protocol import RunResult

    (result,) = cli.results
    assert RunResult.from_dict(json.loads(json.dumps(asdict(result)))) == result

    # `finetune test` of the selected checkpoint gives the same figures and names the protocol
    tested = run_finetune(["test", "--config", TINY, "--data.root", str(tiny_modelnet), "--ckpt_path", best])
    assert float(tested.trainer.callback_metrics["test/acc"]) == pytest.approx(entry["selected"]["metrics"]["test/acc"])
    text = capsys.readouterr().out
    assert f"evaluated once by {best}" in text and "chosen on a stratified 25% validation split" in text


def test_seeds_repeat_the_run_and_print_mean_and_std(tiny_modelnet, tiny_checkpoint, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    cli = run_finetune(["fit", "--config", TINY, "--data.root", str(tiny_modelnet), "--seeds", "0", "1",
                        "--ckpt", str(tiny_checkpoint), "--trainer.max_epochs", "1", "--results", "all.json"])
    (group,) = (tmp_path / "runs" / "finetune").iterdir()
    assert sorted(p.name for p in group.iterdir() if p.is_dir()) == ["seed0", "seed1"]
    for seed in (0, 1):
        assert (group / f"seed{seed}" / "checkpoints" / "best.ckpt").is_file()
        assert (group / f"seed{seed}" / "results.json").is_file()
    summary = json.loads((group / "summary.json").read_text())
    assert [r["seed"] for r in summary["runs"]] == [0, 1] and summary["seeds"] == [0, 1]
    accs = [r["last"]["metrics"]["test/acc"] for r in summary["runs"]]
    assert summary["summary"]["last"]["test/acc"]["mean"] == pytest.approx(np.mean(accs))
    assert json.loads((tmp_path / "all.json").read_text())["runs"] == summary["runs"]
    out = capsys.readouterr().out
    assert "mean ± std (n=2)" in out and "pretrained teacher of" in out and "mean ± std over seeds [0, 1]" in out
    # the pretrained weights went into the backbone (of the last seed's model, before its fit the same teacher)
    assert cli.model.origin.kind == "checkpoint" and cli.model.origin.path == str(tiny_checkpoint)


def test_the_field_protocol_is_only_an_explicit_config_and_says_so(tiny_modelnet, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    cli = run_finetune(["fit", "--config", TINY, "--config", FIELD, "--data.root", str(tiny_modelnet),
                        "--trainer.max_epochs", "1"])
    test = ModelNet40H5(str(tiny_modelnet)).load("test")
    assert len(cli.datamodule.splits["train"]) == 24  # the whole train split is fitted
    np.testing.assert_array_equal(cli.datamodule.splits["val"].points, test.points)  # validation IS the test split
    out = capsys.readouterr().out
    assert "protocol FIELD PROTOCOL (best test epoch" in out and "validated on the TEST split" in out
    assert "best-test-epoch test/acc" in out
    (run,) = (tmp_path / "runs" / "finetune").iterdir()
    assert json.loads((run / "results.json").read_text())["protocol"] == "field"
    assert "test split (the field's protocol" in torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)[
        "pointdwc_validation"].replace("TEST", "test")


def test_bad_input_is_one_message(tiny_modelnet, tiny_checkpoint, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    base = ["fit", "--config", TINY, "--data.root", str(tiny_modelnet)]
    assert finetune_main([*base, "--data.num_points", "4096"]) == 1
    assert "data.num_points=4096 but the clouds of ModelNet40H5" in capsys.readouterr().err
    foreign = tmp_path / "foreign.pt"
    torch.save([1, 2, 3], foreign)
    assert finetune_main([*base, "--ckpt", str(foreign)]) == 1
    assert f"pointdwc finetune: error: {foreign}: neither a pointdwc pretraining checkpoint" in capsys.readouterr().err
    assert finetune_main([*base, "--ckpt", str(tiny_checkpoint), "--model.backbone.init_args.embed_dim", "48"]) == 1
    assert "embed_dim: 32 in the file vs 48 configured" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("configs", "epochs", "dataset"),
    [
        (["vit_small.yaml", "modelnet40.yaml"], 300, "ModelNet40H5"),
        (["vit_small.yaml", "scanobjectnn.yaml"], 300, "ScanObjectNN(pb_t50_rs)"),
        (["fewshot.yaml", "fewshot_vit_small.yaml"], 150, "SyntheticShapes(seed=0, 2048 points)"),
    ],
)
def test_paper_scale_configs_build_point_maes_recipe(configs, epochs, dataset) -> None:
    folder = Path(__file__).parents[1] / "configs" / "finetune"
    args = [x for c in configs for x in ("--config", str(folder / c))] + ["--trainer.accelerator", "cpu"]
    cli = run_finetune(args, run=False)
    backbone, optim = cli.model.backbone, cli.model.optim_config
    assert (backbone.embed_dim, backbone.depth, backbone.num_heads, backbone.drop_path) == (384, 12, 6, 0.1)
    assert (optim.lr, optim.weight_decay, optim.warmup_epochs) == (5e-4, 0.05, 10)
    assert cli.trainer.max_epochs == epochs and cli.datamodule.batch_size == 32
    assert cli.datamodule.dataset.describe() == dataset and cli.datamodule.num_points in (1024, 2048)
    model = cli.model  # the field's recipe, not the CPU default's small-set one
    assert (list(model.head_config.hidden_dims), model.head_init, model.layer_decay) == ([256, 256], "random", 1.0)
    assert cli.trainer.max_steps == -1 and optim.warmup_steps is None


def test_the_default_is_the_small_set_recipe_and_point_maes_is_named() -> None:
    folder = Path(__file__).parents[1] / "configs" / "finetune"
    default = run_finetune([], run=False)
    model, data = default.model, default.datamodule
    assert (model.head_init, model.layer_decay, model.backbone_bn, list(model.head_config.hidden_dims)) == (
        "probe", 1.0, "frozen", [])
    assert (default.trainer.max_steps, model.optim_config.warmup_steps, data.num_points) == (250, 20, 1024)
    assert (data.val_fraction, data.val_min_per_class) == (0.2, 3)
    field = run_finetune(["--config", str(folder / "point_mae_recipe.yaml")], run=False)
    model, data = field.model, field.datamodule
    assert (model.head_init, model.layer_decay, list(model.head_config.hidden_dims)) == ("random", 1.0, [256, 256])
    assert (field.trainer.max_steps, field.trainer.max_epochs, data.num_points, data.val_min_per_class) == (-1, 8, 512, 1)


def test_seeds_under_ddp_with_two_cpu_processes(tmp_path) -> None:
    from tests.layouts import blob_clouds, write_modelnet_h5
    from tests.test_cli import run_console

    rng = np.random.default_rng(0)  # 13 test shapes: a padding sampler would count one twice on 2 ranks
    root = write_modelnet_h5(tmp_path / "modelnet40_ply_hdf5_2048", ["a", "b", "c"],
                             {"train": blob_clouds(24, 256, 3, rng), "test": blob_clouds(13, 256, 3, rng)})
    args = ["finetune", "fit", "--config", TINY, "--data.root", str(root), "--trainer.strategy", "ddp",
            "--trainer.devices", "2", "--trainer.accelerator", "cpu", "--seeds", "0", "1", "--trainer.max_epochs", "1"]
    proc = run_console(args, tmp_path)
    assert proc.stdout.count("mean ± std (n=2)") == 1  # printed once, by rank 0
    (group,) = (tmp_path / "runs" / "finetune").iterdir()  # both processes wrote into one group, one folder per seed
    assert sorted(p.name for p in group.iterdir() if p.is_dir()) == ["seed0", "seed1"]
    runs = json.loads((group / "summary.json").read_text())["runs"]
    accuracies = [r[which]["metrics"]["test/acc"] for r in runs for which in ("last", "selected")]
    assert all(abs(a * 13 / 100 - round(a * 13 / 100)) < 1e-4 for a in accuracies)  # k of 13, each shape once
