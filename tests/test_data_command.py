"""`pointdwc data check|prepare ROOT` and data sets named in configs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lightning_modules.commands.data import main as data_main
from lightning_modules.commands.cli import run_cli
from tests.layouts import write_mesh_folder, write_modelnet_resampled, write_scanobjectnn, write_shapenet55

TINY = str(Path(__file__).parent / "tiny.yaml")


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("POINTDWC_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def folders(tmp_path: Path, tiny_modelnet: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    return {
        "ModelNet40H5": tiny_modelnet,
        "ModelNet40Resampled": write_modelnet_resampled(
            tmp_path / "resampled", ["a", "b"], {"train": 2, "test": 1}, 300, rng
        ),
        "ScanObjectNN(pb_t50_rs)": write_scanobjectnn(tmp_path / "h5_files", {"train": 6, "test": 3}, rng, points=128),
        "ShapeNet55": write_shapenet55(tmp_path / "ShapeNet55-34", {"train": 4, "test": 2}, rng, points=8192),
        "MeshFolder": write_mesh_folder(tmp_path / "meshes", per_class=3),
    }


def test_check_each_format_prints_a_summary_and_writes_nothing(tmp_path, tiny_modelnet, cache, capsys) -> None:
    for name, root in folders(tmp_path, tiny_modelnet).items():
        assert data_main(["check", str(root), "--num_points", "128", "--quiet"]) == 0, capsys.readouterr()
        out = capsys.readouterr().out
        assert name in out and "usable" in out and "NOT usable" not in out
        assert "train" in out and "test" in out and "radius" in out
    assert not cache.exists()


def test_check_reports_each_problem_and_fails(tmp_path, cache, capsys) -> None:
    root = write_shapenet55(tmp_path / "ShapeNet55-34", {"train": 4, "test": 2}, np.random.default_rng(0))
    names = (root / "ShapeNet-55" / "train.txt").read_text().split()
    (root / "shapenet_pc" / names[0]).unlink()
    np.save(root / "shapenet_pc" / names[1], np.full((8192, 3), np.nan, "f4"))
    assert data_main(["check", str(root), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert f"error: {root / 'shapenet_pc' / names[0]}: listed but not found" in out
    assert f"error: {root / 'shapenet_pc' / names[1]}: array has NaN or Inf" in out
    assert "NOT usable: 2 problem(s)" in out


def test_check_requested_points_and_unknown_folders(tmp_path, tiny_modelnet, capsys) -> None:
    assert data_main(["check", str(tiny_modelnet), "--num_points", "2048", "--quiet"]) == 1
    assert "fewer than the 2048 requested" in capsys.readouterr().out
    assert data_main(["check", str(tmp_path / "nope")]) == 1
    assert "nope: data root does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert data_main(["check", str(tmp_path / "empty")]) == 1
    assert "no known data set layout" in capsys.readouterr().err


def test_mesh_check_warns_about_skipped_files(tmp_path, cache, capsys) -> None:
    root = write_mesh_folder(tmp_path / "meshes", per_class=3)
    (root / "box" / "broken.ply").write_bytes(b"ply\nformat garbage\n")
    assert data_main(["check", str(root), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "warning:" in out and "broken.ply" in out


def test_prepare_packs_into_the_cache_once(tmp_path, cache, capsys) -> None:
    root = write_shapenet55(tmp_path / "ShapeNet55-34", {"train": 4, "test": 2}, np.random.default_rng(0))
    assert data_main(["prepare", str(root), "--quiet"]) == 0
    first = capsys.readouterr().out
    assert "ShapeNet55(8192 points): packed into" in first
    packed = Path(first.split("packed into ")[1].strip())
    assert (packed / "train_points.npy").is_file() and packed.is_relative_to(cache)
    assert data_main(["prepare", str(root), "--quiet"]) == 0
    assert capsys.readouterr().out == first


def test_console_script_data_check(tiny_modelnet) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from lightning_modules.commands.entry import console_script; sys.argv[0] = 'pointdwc'; console_script()",
            "data",
            "check",
            str(tiny_modelnet),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "ModelNet40H5" in done.stdout and "3/3 classes" in done.stdout


def test_config_naming_a_data_set_by_class_path_and_its_mistakes(tmp_path, tiny_modelnet, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    cli = run_cli(
        ["--config", TINY, "--data.dataset", "datamodules.ModelNet40H5", "--data.dataset.root", str(tiny_modelnet),
         "--probe.data", "datamodules.ModelNet40H5", "--probe.data.root", str(tiny_modelnet)],
        run=False,
    )  # fmt: skip
    assert type(cli.datamodule.dataset).__name__ == "ModelNet40H5"
    for args, needle in (
        (["--data.dataset", "datamodules.NoSuchSet"], "NoSuchSet"),
        (
            [
                "--data.dataset",
                "datamodules.ShapeNet55",
                "--data.dataset.root",
                "x",
                "--data.dataset.no_such_option",
                "1",
            ],
            "no_such_option",
        ),
        (
            ["--probe.data", "datamodules.ScanObjectNN", "--probe.data.root", "x", "--probe.data.variant", "pb_t99"],
            "pb_t99",
        ),
    ):
        with pytest.raises(SystemExit) as exc:
            run_cli(["fit", "--config", TINY, *args])
        assert exc.value.code != 0
        assert needle in capsys.readouterr().err
