"""A folder of own point files in `fit`, `test`, the probe and `embed`: one set, the same clouds everywhere."""

from __future__ import annotations

import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from datamodules import PointCloudDataModule, PointFolder
from datamodules.errors import DataError
from lightning_modules.checkpoint_encoder import load_checkpoint_encoder
from lightning_modules.commands.cli import run_cli
from lightning_modules.commands.embed import main as embed_main
from lightning_modules.evaluation.probe import LinearProbe
from tests.layouts import write_pcd

TINY = str(Path(__file__).parent / "tiny.yaml")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("POINTDWC_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _blob(rng: np.random.Generator, n: int, scale: tuple[float, float, float]) -> np.ndarray:
    return (rng.normal(size=(n, 3)) * scale).astype(np.float32)


def unlabelled_folder(root: Path) -> Path:
    """Twelve clouds straight in the folder (no class folders), in three formats, and one corrupt file."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    for i in range(12):
        cloud = _blob(rng, 2100, (1.0, 1.0 + 0.1 * i, 0.5))
        if i % 3 == 0:
            np.save(root / f"scan{i:02d}.npy", cloud)
        elif i % 3 == 1:
            write_pcd(root / f"scan{i:02d}.pcd", cloud, "binary")
        else:
            np.savetxt(root / f"scan{i:02d}.xyz", cloud, fmt="%.7g")
    (root / "broken.npy").write_bytes(b"\x93NUMPY not really")
    return root


def labelled_folder(root: Path) -> Path:
    """Three class folders of four clouds each (.npy and binary .pcd)."""
    rng = np.random.default_rng(1)
    for c, scale in enumerate(((1.0, 1.0, 1.0), (2.0, 0.5, 0.5), (0.3, 0.3, 2.0))):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(4):
            cloud = _blob(rng, 2100, scale)
            if i % 2:
                write_pcd(root / f"class{c}" / f"{i}.pcd", cloud, "binary")
            else:
                np.save(root / f"class{c}" / f"{i}.npy", cloud)
    return root


def test_fit_and_test_on_a_folder_without_class_folders(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    flat, labelled = unlabelled_folder(tmp_path / "flat"), labelled_folder(tmp_path / "labelled")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cli = run_cli(["fit", "--config", TINY, "--data.root", str(flat), "--probe.root", str(labelled),
                       "--trainer.max_steps", "2", "--trainer.logger", "false"])
    assert isinstance(cli.datamodule.dataset, PointFolder) and cli.trainer.global_step == 2
    data = cli.datamodule.dataset
    assert len(data.load("train")) + len(data.load("test")) == 12  # the corrupt file left out
    skipped = [str(w.message) for w in caught if "broken.npy" in str(w.message)]
    assert skipped and "skipped 1 of" in skipped[0]  # a count, not a crash deep in torch
    assert "probe/svm_acc" in capsys.readouterr().out  # the probe ran on its own, labelled, set
    ckpt = next((tmp_path / "runs").rglob("last.ckpt"))
    embed_matches_fit(ckpt, flat, cli.datamodule, tmp_path / "features.h5")

    def no_reading(self, path):  # the second run reads the packed cache, not the files
        raise AssertionError(f"read {path} again")

    monkeypatch.setattr(PointFolder, "read_item", no_reading)
    tested = run_cli(["test", "--config", TINY, "--data.root", str(flat), "--probe.root", str(labelled),
                      "--ckpt_path", str(ckpt), "--trainer.logger", "false"])
    assert {"test/loss", "probe/svm_acc"} <= set(tested.trainer.callback_metrics)
    assert np.isfinite(float(tested.trainer.callback_metrics["test/loss"]))


def test_the_probe_refuses_a_folder_without_labels(tmp_path) -> None:
    probe = LinearProbe(root=str(unlabelled_folder(tmp_path / "flat")), num_points=256)
    with pytest.raises(DataError, match=r"probe: PointFolder.* has no class folders, so no labels"):
        probe._split("train")


def test_fit_and_the_probe_read_the_same_clouds(tmp_path) -> None:
    root = labelled_folder(tmp_path / "labelled")
    data = PointCloudDataModule(root=str(root), num_points=512)
    data.setup("fit")
    data.setup("test")
    probe = LinearProbe(root=str(root), num_points=256)
    for split in ("train", "test"):
        fitted, probed = data.splits[split], probe._split(split)
        assert len(fitted) == {"train": 9, "test": 3}[split]  # one test file per class of four
        np.testing.assert_array_equal(np.asarray(fitted.points), np.asarray(probed.points))
        np.testing.assert_array_equal(fitted.labels, probed.labels)


def embed_matches_fit(ckpt: Path, root: Path, data: PointCloudDataModule, out: Path) -> None:
    """`embed ROOT --num_points 256` gives, per file, the teacher's feature of fit's stored cloud's first 256 points."""
    assert embed_main(["--ckpt_path", str(ckpt), "--out", str(out), str(root), "--num_points", "256", "--quiet"]) == 0
    with h5py.File(out, "r") as f:
        names = [n.decode() for n in f["names"][...]]
        features = f["features"][...]
    backbone = load_checkpoint_encoder(ckpt).backbone.eval()
    dataset = data.dataset
    seen = []
    for split in ("train", "test"):
        clouds = np.ascontiguousarray(dataset.load(split).points[:, :256])
        with torch.no_grad():
            expected = backbone(torch.from_numpy(clouds)).global_feature.numpy()
        for name, feature in zip(dataset.item_names(split, len(clouds)), expected, strict=True):
            np.testing.assert_allclose(features[names.index(name)], feature, rtol=0, atol=1e-5)
            seen.append(name)
    assert sorted(seen) == sorted(names)
