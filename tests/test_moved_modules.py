"""Module paths from before the sub-packages still work: imports, configs, pickles and checkpoints.

The old names below are written out by hand from the layout before the move (not read from the
alias tables), so a name dropped from a table fails here.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from lightning_modules.commands.cli import run_cli

TINY = str(Path(__file__).parent / "tiny.yaml")
REPO = Path(__file__).parents[1]

BEFORE_AND_AFTER = [
    ("lightning_modules.dwc", "lightning_modules.pretrain.dwc"),
    ("lightning_modules.losses", "lightning_modules.pretrain.losses"),
    ("lightning_modules.schedules", "lightning_modules.pretrain.schedules"),
    ("lightning_modules.probe", "lightning_modules.evaluation.probe"),
    ("lightning_modules.evaluation_protocol", "lightning_modules.evaluation.protocol"),
    ("lightning_modules.finetune", "lightning_modules.downstream.finetune"),
    ("lightning_modules.partseg", "lightning_modules.downstream.partseg"),
    ("lightning_modules.visuals", "lightning_modules.pictures.visuals"),
    ("lightning_modules.part_pictures", "lightning_modules.pictures.part_pictures"),
    ("lightning_modules.cli", "lightning_modules.commands.cli"),
    ("lightning_modules.embed_command", "lightning_modules.commands.embed"),
    ("lightning_modules.fewshot_finetune", "lightning_modules.commands.fewshot_finetune"),
    ("datamodules.crops", "datamodules.views.crops"),
    ("datamodules.modelnet_h5", "datamodules.formats.modelnet_h5"),
    ("datamodules.procedural_stream", "datamodules.synthetic.stream"),
    ("datamodules.shapes", "datamodules.synthetic.shapes"),
    ("datamodules.shapes.parts", "datamodules.synthetic.shapes.parts"),
    ("datamodules.data_command", "lightning_modules.commands.data"),
]


@pytest.mark.parametrize(("old", "new"), BEFORE_AND_AFTER)
def test_an_old_module_name_is_the_module_at_its_new_place(old: str, new: str) -> None:
    sys.modules.pop(old, None)
    with pytest.warns(FutureWarning, match=rf"{old} moved to {new}"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)
    assert module.__name__ == new and module.__spec__.name == new  # the module keeps its own identity


def test_names_of_the_old_synthetic_module_are_served_by_the_new_package() -> None:
    from datamodules.synthetic import SyntheticShapes, generate_shape
    from datamodules.synthetic.generate import generate_shape as generator
    from datamodules.synthetic.shape_set import SyntheticShapes as shape_set

    assert generate_shape is generator and SyntheticShapes is shape_set


def test_a_new_name_raises_no_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        importlib.import_module("lightning_modules.pictures.visuals")


def test_an_object_pickled_under_its_old_module_path_loads(tmp_path: Path) -> None:
    from datamodules.views.crops import CropSpec

    spec = CropSpec(num_crops=2, num_points=64, scale=(0.2, 0.5))
    CropSpec.__module__ = "datamodules.crops"  # pickle writes the class path the object had before the move
    try:
        torch.save({"crops": spec}, tmp_path / "old.pt")
    finally:
        CropSpec.__module__ = "datamodules.views.crops"
    assert b"datamodules.crops" in (tmp_path / "old.pt").read_bytes()
    code = ("import torch; d = torch.load(r'%s', weights_only=False); c = d['crops']; "
            "print(type(c).__module__, c.num_crops, c.num_points, tuple(c.scale))" % (tmp_path / "old.pt"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["datamodules.views.crops", "2", "64", "(0.2,", "0.5)"]


def test_a_run_saved_with_old_class_paths_is_tested_and_exported(tiny_modelnet, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    root = str(tiny_modelnet)
    run_cli(["fit", "--config", TINY, "--data.root", root, "--probe.root", root, "--trainer.max_epochs", "1",
             "--trainer.logger", "false"])
    (run,) = (tmp_path / "runs").iterdir()
    ckpt = run / "checkpoints" / "last.ckpt"
    # the run as it was saved before the move: its config and the config inside its checkpoint
    saved = (run / "config.yaml").read_text()
    assert "lightning_modules.pictures.visuals.WandbVisuals" in saved
    old_config = tmp_path / "old_config.yaml"
    old_config.write_text(saved.replace("lightning_modules.pictures.visuals", "lightning_modules.visuals"))
    checkpoint = torch.load(ckpt, weights_only=False)
    checkpoint["pointdwc_config"] = checkpoint["pointdwc_config"].replace(
        "lightning_modules.pictures.visuals", "lightning_modules.visuals")
    old_ckpt = tmp_path / "old.ckpt"
    torch.save(checkpoint, old_ckpt)

    sys.modules.pop("lightning_modules.visuals", None)  # as in a new process: the old name not yet imported
    with pytest.warns(FutureWarning, match="lightning_modules.visuals moved"):
        tested = run_cli(["test", "--config", str(old_config), "--ckpt_path", str(old_ckpt)])
    names = [type(c).__name__ for c in tested.trainer.callbacks]
    assert "WandbVisuals" in names and "LinearProbe" in names
    assert float(tested.trainer.callback_metrics["test/loss"]) > 0

    from backbones import load_pretrained
    from lightning_modules.commands.export import main as export

    assert export([str(old_ckpt), str(tmp_path / "encoder.pt")]) == 0
    encoder = load_pretrained(tmp_path / "encoder.pt")
    teacher = {k[len("teacher.backbone."):]: v for k, v in checkpoint["state_dict"].items()
               if k.startswith("teacher.backbone.")}
    for name, value in encoder.state_dict().items():
        assert torch.equal(value, teacher[name]), name
