"""The ``pointdwc`` console script: version, the command list, a mistyped command, no heavy imports."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from lightning_modules.commands.entry import main

REPO = Path(__file__).parents[1]


def test_version_is_the_installed_distributions(capsys) -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"pointdwc {declared}\n"


def test_a_mistyped_command_names_the_nearest_and_lists_all(capsys) -> None:
    assert main(["fitt", "--config", "x.yaml"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[0] == "pointdwc: error: unknown command 'fitt'; did you mean 'fit'?"
    listed = [line.split()[0] for line in err.splitlines() if line.startswith("  ")]
    assert listed == ["fit", "validate", "test", "data", "embed", "export", "attention", "finetune",
                      "fewshot", "partseg"]
    assert main(["emebd"]) == 2 and "did you mean 'embed'?" in capsys.readouterr().err
    assert main(["zzzz"]) == 2 and "did you mean" not in capsys.readouterr().err.splitlines()[0]


def test_help_and_version_load_neither_torch_nor_lightning() -> None:
    code = ("import sys; from lightning_modules.commands.entry import main; main(['--help']); main(['--version']); "
            "print(sorted(m for m in ('torch', 'pytorch_lightning', 'jsonargparse', 'wandb') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"
