"""One folder per run: under ``default_root_dir``, distinct for runs started together, a new one on resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lightning_modules.commands import run_folder
from lightning_modules.commands.cli import run_cli
from lightning_modules.commands.run_folder import RunFolderError, choose_run_folder

TINY = str(Path(__file__).parent / "tiny.yaml")


def _fit(root: Path, *extra: str):
    """A one-epoch tiny fit through the CLI, without W&B (the folder logic is the same with it)."""
    args = ["fit", "--config", TINY, "--data.root", str(root), "--probe.root", str(root), "--trainer.logger", "false",
            "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", *extra]
    return run_cli(args)


def _files(folder: Path) -> set[Path]:
    return {p.relative_to(folder) for p in folder.rglob("*") if p.is_file()}


def test_two_runs_started_in_the_same_second_get_their_own_folders(tiny_modelnet, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(run_folder, "_clock", lambda: 1_700_000_000.0)  # both start in this second
    ids = iter(["sameid00", "sameid00", "otherid1"])  # and the second draws the first one's id once
    monkeypatch.setattr(run_folder, "new_wandb_id", lambda: next(ids))
    first, second = _fit(tiny_modelnet), _fit(tiny_modelnet)
    folders = sorted((tmp_path / "runs").iterdir())
    assert [f.name[-8:] for f in folders] == ["otherid1", "sameid00"]
    assert {first.run_folder.path, second.run_folder.path} == set(folders)
    for cli, folder in ((first, first.run_folder.path), (second, second.run_folder.path)):
        assert Path(cli.trainer.checkpoint_callback.last_model_path) == folder / "checkpoints" / "last.ckpt"
        assert {Path("config.yaml"), Path("run.json"), Path("checkpoints/last.ckpt")} <= _files(folder)
        assert json.loads((folder / "run.json").read_text())["wandb_id"] == folder.name[-8:]
    # the saved config is the user's (root, no name), so reusing it starts yet another folder
    assert "default_root_dir: runs" in (folders[0] / "config.yaml").read_text()


def test_default_root_dir_decides_where_runs_go_and_a_name_is_not_reused(tiny_modelnet, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    cli = _fit(tiny_modelnet, "--trainer.default_root_dir", str(tmp_path / "elsewhere"), "--name", "baseline")
    folder = tmp_path / "elsewhere" / "baseline"
    assert cli.run_folder.path == folder and (folder / "checkpoints" / "last.ckpt").is_file()
    assert not (tmp_path / "runs").exists()
    assert "name: null" in (folder / "config.yaml").read_text() and '"name": "baseline"' in (folder / "run.json").read_text()
    with pytest.raises(RunFolderError, match="already holds a run"):
        _fit(tiny_modelnet, "--trainer.default_root_dir", str(tmp_path / "elsewhere"), "--name", "baseline")


def test_resume_gets_its_own_folder_linked_to_its_parent(tiny_modelnet, tmp_path, monkeypatch) -> None:
    """The resumed fit continues the run (epoch 2 after epoch 1, one W&B id) in a new folder whose
    run.json names the parent folder and checkpoint; the parent's files keep their bytes."""
    monkeypatch.chdir(tmp_path)
    first = _fit(tiny_modelnet)
    folder = first.run_folder.path
    ckpt = folder / "checkpoints" / "last.ckpt"
    parent_files = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    resumed = _fit(tiny_modelnet, "--ckpt_path", str(ckpt), "--trainer.max_epochs", "2")
    new = resumed.run_folder.path
    assert new != folder and new.parent == folder.parent and resumed.run_folder.resumed
    assert sorted((tmp_path / "runs").iterdir()) == sorted([folder, new])
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == parent_files
    marker = json.loads((new / "run.json").read_text())
    assert marker["resumed_from"] == {"run": str(folder), "checkpoint": str(ckpt)}
    assert marker["wandb_id"] == json.loads((folder / "run.json").read_text())["wandb_id"]
    assert resumed.trainer.current_epoch == 2
    assert Path(resumed.trainer.checkpoint_callback.last_model_path) == new / "checkpoints" / "last.ckpt"
    saved = torch.load(new / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["epoch"] == 1 and saved["global_step"] == 4  # 2 steps an epoch, continued after step 2
    assert (new / "config.yaml").is_file()


def test_a_resumed_run_resumes_its_parents_wandb_run(tmp_path) -> None:
    from jsonargparse import Namespace

    from lightning_modules.commands.cli import point_at_run_folder

    parent = choose_run_folder(tmp_path, None, "fit")
    (parent.checkpoints).mkdir()
    (parent.checkpoints / "last.ckpt").write_bytes(b"x")
    child = choose_run_folder(tmp_path, None, "fit", parent.checkpoints / "last.ckpt")
    trainer = Namespace(default_root_dir=None, callbacks=[], logger=Namespace(
        class_path="pytorch_lightning.loggers.WandbLogger", init_args=Namespace(save_dir=None, id=None, version=None,
                                                                                 name=None, resume=None)))
    point_at_run_folder(trainer, child)
    args = trainer.logger.init_args
    assert child.path != parent.path
    assert (args.id, args.resume, args.save_dir) == (parent.wandb_id, "allow", str(child.path))


def test_independent_processes_need_a_shared_name(tmp_path, monkeypatch) -> None:
    for var in ("SLURM_JOB_ID", "TORCHELASTIC_RUN_ID", run_folder.ENV_RUN_DIR):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(RunFolderError, match="--name"):
        choose_run_folder(tmp_path, None, "fit")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job7")
    assert choose_run_folder(tmp_path, None, "fit").path == tmp_path / "torchrun-job7"
    monkeypatch.setenv("RANK", "1")  # another rank: same folder, not created by it
    assert choose_run_folder(tmp_path / "other", None, "fit").path == tmp_path / "other" / "torchrun-job7"
    assert not (tmp_path / "other").exists()
