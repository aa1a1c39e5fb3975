"""`pointdwc fewshot` end to end: frozen and fine-tuned protocols, released and drawn folds, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules.fewshot_generator import GeneratedFewShot
from datamodules.formats.modelnet_h5 import ModelNet40H5
from lightning_modules.commands.export import export
from lightning_modules.commands.fewshot import main as fewshot_main
from lightning_modules.evaluation.linear_svm import linear_svm
from lightning_modules.evaluation.probe import extract_features
from tests.layouts import write_modelnet_fewshot

TINY = str(Path(__file__).parent / "tiny_finetune.yaml")


def test_frozen_protocol_on_drawn_folds_with_a_baseline(tiny_modelnet, tiny_checkpoint, tmp_path, capsys) -> None:
    encoder = export(tiny_checkpoint, tmp_path / "encoder.pt")
    out = tmp_path / "out"
    args = ["--ckpt_path", str(encoder), "--data.root", str(tiny_modelnet), "--way", "3", "--shot", "4", "--query", "3",
            "--folds", "3", "--seed", "1", "--num_points", "256", "--out", str(out)]
    assert fewshot_main(args) == 0
    printed = capsys.readouterr().out
    assert "protocol pointdwc few-shot, frozen features" in printed and "C by stratified 5-fold CV on the fold's train shapes" in printed
    assert "mean ± std (n=3)" in printed and "pretrained svm_acc" in printed and "random init svm_acc" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["fold_ids"] == [0, 1, 2] and set(results["per_fold"]) == {"pretrained", "random init"}
    assert (out / "folds.md").read_text().count("\n| ") >= 5 and len((out / "folds.csv").read_text().splitlines()) == 7

    # fold 2's pretrained SVM figure is the probe's SVM on the exported teacher's features of that fold
    from backbones import load_pretrained

    fold = GeneratedFewShot(ModelNet40H5(str(tiny_modelnet)), way=3, shot=4, query=3, fold=2, seed=1).fold_data()
    backbone = load_pretrained(encoder)
    feats = [extract_features(backbone, s.points[:, :256], 128, torch.device("cpu")) for s in (fold.train, fold.test)]
    expected = linear_svm(feats[0], fold.train.labels, feats[1], fold.test.labels, "auto")
    assert results["per_fold"]["pretrained"][2]["svm_acc"] == pytest.approx(expected.acc)
    assert results["per_fold"]["pretrained"][2]["svm_c"] == pytest.approx(expected.c)
    summary = results["summary"]["pretrained"]["svm_acc"]
    assert summary["mean"] == pytest.approx(np.mean([r["svm_acc"] for r in results["per_fold"]["pretrained"]]))


def test_released_folds_frozen_and_fine_tuned(tmp_path, tiny_checkpoint, capsys) -> None:
    root = write_modelnet_fewshot(tmp_path / "ModelNetFewshot", [(3, 4)], folds=2, points=256, num_classes=5,
                                  train_per_class=6, test_per_class=6, eval_sample=5)
    common = ["--root", str(root), "--way", "3", "--shot", "4", "--query", "5", "--num_points", "128"]
    assert fewshot_main([*common, "--out", str(tmp_path / "frozen")]) == 0  # no --ckpt: the random-init network
    frozen = json.loads((tmp_path / "frozen" / "results.json").read_text())
    assert list(frozen["per_fold"]) == ["random init"] and frozen["fold_ids"] == [0, 1]
    assert "released folds (0, 1)" in frozen["folds"]

    out = tmp_path / "finetuned"
    args = [*common, "--protocol", "finetune", "--ckpt_path", str(tiny_checkpoint), "--config", TINY, "--set",
            "trainer.max_epochs=1", "--set", "data.batch_size=6", "--out", str(out)]
    assert fewshot_main(args) == 0
    printed = capsys.readouterr().out
    assert "fine-tuning per fold" in printed and "scored with the last epoch" in printed and "never the best test" in printed
    results = json.loads((out / "results.json").read_text())
    assert list(results["per_fold"]) == ["pretrained"]
    runs = results["networks"]["pretrained"]["runs"]
    assert [r["seed"] for r in runs] == [0, 1] and all(r["selected"] is None for r in runs)  # no validation split
    assert [row["acc"] for row in results["per_fold"]["pretrained"]] == [r["last"]["metrics"]["test/acc"] for r in runs]
    assert "pretrained teacher of" in results["networks"]["pretrained"]["origin_text"]

    selected = tmp_path / "selected"
    args = [*common, "--protocol", "finetune", "--config", TINY, "--select", "val", "--val_fraction", "0.25",
            "--set", "trainer.max_epochs=2", "--folds", "1", "--out", str(selected)]
    assert fewshot_main(args) == 0
    (run,) = json.loads((selected / "results.json").read_text())["networks"]["random init"]["runs"]
    assert run["selected"] is not None and run["selected"]["path"].endswith("best.ckpt")
    assert json.loads((selected / "results.json").read_text())["per_fold"]["random init"][0]["acc"] == run["selected"]["metrics"]["test/acc"]


def test_bad_requests_are_one_message(tiny_modelnet, tiny_checkpoint, tmp_path, capsys) -> None:
    def error(args: list[str]) -> str:
        assert fewshot_main([*args, "--out", str(tmp_path / "x")]) == 1
        return capsys.readouterr().err

    assert "--way=4 is larger than the 3 classes of ModelNet40H5" in error(["--data.root", str(tiny_modelnet), "--way", "4"])
    assert "fewer than --query=20 test shapes: sphere 4" in error(["--data.root", str(tiny_modelnet), "--way", "2", "--shot", "2"])
    root = write_modelnet_fewshot(tmp_path / "ModelNetFewshot", [(5, 10)], folds=1, points=64)
    assert "no 10way_20shot/ folder" in error(["--root", str(root), "--way", "10", "--shot", "20"])
    assert "--num_points=1024 but the clouds" in error(["--root", str(root), "--way", "5", "--shot", "10"])
    args = ["--root", str(root), "--way", "5", "--shot", "10", "--protocol", "finetune", "--config", TINY, "--ckpt_path",
            str(tiny_checkpoint), "--set", "model.backbone.init_args.embed_dim=48"]
    assert "embed_dim: 32 in the file vs 48 configured" in error(args)
