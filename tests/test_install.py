"""A wheel install means the same as the checkout: the configs travel with the package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).parents[1]
SOURCES = ("pyproject.toml", "README.md", "backbones", "configs", "datamodules", "lightning_modules")
PRINT_CONFIG = ("import sys; sys.argv = ['pointdwc', 'fit', '--print_config']; import lightning_modules; "
                "print(lightning_modules.__file__, file=sys.stderr); "
                "from lightning_modules.commands.entry import main; main()")


def _print_config(python_path: Path, cwd: Path) -> tuple[str, str]:
    env = {**os.environ, "PYTHONPATH": str(python_path)}
    done = subprocess.run([sys.executable, "-c", PRINT_CONFIG], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, done.stderr.strip().splitlines()[0]


def test_a_wheel_install_prints_the_same_fit_config_as_the_checkout(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in SOURCES:  # the tracked sources, without build products or caches of the checkout
        item = REPO / name
        if item.is_dir():
            shutil.copytree(item, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(item, source / name)
    build = ("import sys; from setuptools import build_meta; sys.stdout.write(build_meta.build_wheel(sys.argv[1]))")
    out = tmp_path / "dist"
    out.mkdir()
    built = subprocess.run([sys.executable, "-c", build, str(out)], cwd=source, capture_output=True, text=True,
                           timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = out / built.stdout.strip().splitlines()[-1]
    names = zipfile.ZipFile(wheel).namelist()
    assert "configs/default.yaml" in names and "configs/finetune/default.yaml" in names, names
    assert "configs/partseg/default.yaml" in names and "configs/paper/shapenet55.yaml" in names

    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target",
                    str(target), str(wheel)], check=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"  # not the checkout: nothing but the installed files to import
    elsewhere.mkdir()
    installed, installed_from = _print_config(target, elsewhere)
    checkout, checkout_from = _print_config(REPO, REPO)
    assert installed_from == str(target / "lightning_modules" / "__init__.py")
    assert checkout_from == str(REPO / "lightning_modules" / "__init__.py")
    assert installed == checkout
    assert "out_dim: 512" in installed  # the shipped default config, not the class default (4096)
