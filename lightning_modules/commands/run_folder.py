"""One folder per run: ``<default_root_dir>/<run name>/`` holds everything a run writes.

``checkpoints/``, ``config.yaml``, the W&B files (``wandb/``) and ``run.json`` (the run's
name, W&B id, subcommand and start time) of one ``pointdwc fit`` live together, so two
runs started in the same directory never share a file. The name is ``--name`` or, by
default, the start time and a random W&B-style id (``20250101-120000-k3j4h5g6``), so two
runs started in the same second still differ; the folder is created exclusively, so a
clash (an explicit ``--name`` that exists) is refused instead of mixing two runs.
``fit --ckpt_path <run>/checkpoints/last.ckpt`` resumes ``<run>`` in a new folder of its own
(its W&B id, so W&B shows one run; ``run.json`` names the parent folder and checkpoint under
``resumed_from``): a resumed run never rewrites its parent's files.

Every process of a multi-process run must agree on the folder. A run that Lightning
launches itself (``--trainer.strategy ddp`` on one node) passes it to its child processes
in the environment (:data:`ENV_RUN_DIR`); processes started independently (torchrun,
SLURM's srun) derive it from ``--name`` or the job id, and only global rank 0 creates it.
"""

from __future__ import annotations

import json
import os
import secrets
import string
import time
from dataclasses import asdict, dataclass
from pathlib import Path

DEFAULT_ROOT = "runs"
"""Where runs go when ``--trainer.default_root_dir`` is not given."""

ENV_RUN_DIR = "_POINTDWC_RUN_DIR"
"""Set for the duration of a run so processes Lightning spawns use the same folder."""

MARKER = "run.json"
"""File that makes a folder a run folder (and tells a resumed run its W&B id)."""

_ID_CHARS = string.ascii_lowercase + string.digits


def _clock() -> float:
    """The start time of a run (replaced in tests to start two runs in the same second)."""
    return time.time()


class RunFolderError(ValueError):
    """A run folder cannot be created or chosen (one message naming the folder)."""


def new_wandb_id(length: int = 8) -> str:
    """A random id in W&B's alphabet (lower-case letters and digits)."""
    return "".join(secrets.choice(_ID_CHARS) for _ in range(length))


@dataclass
class RunFolder:
    """The folder of one run and what identifies it."""

    path: Path
    """Absolute path ``<root>/<name>``."""
    name: str
    wandb_id: str
    subcommand: str
    started: str
    """Local start time, ISO 8601."""
    resumed: bool = False
    """Whether this run continues another one (its W&B run is resumed)."""
    resumed_from: dict[str, str] | None = None
    """``{"run": parent folder, "checkpoint": checkpoint}`` of a resumed fit."""

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def write_marker(self) -> None:
        """Write ``run.json`` (kept if the folder has one: the processes of one run share it)."""
        marker = self.path / MARKER
        if not marker.is_file():
            fields = {k: v for k, v in asdict(self).items() if k not in ("path", "resumed")}
            if fields["resumed_from"] is None:
                fields.pop("resumed_from")
            marker.write_text(json.dumps(fields, indent=2) + "\n")


def _global_rank() -> int:
    for var in ("RANK", "SLURM_PROCID", "PMI_RANK", "OMPI_COMM_WORLD_RANK"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0


def _independent_processes() -> bool:
    """Whether this process is one of several started independently (torchrun, srun)."""
    for var in ("WORLD_SIZE", "SLURM_NTASKS"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 1:
            return True
    return False


def _shared_job_name() -> str | None:
    """A name every process of an independently launched job computes alike (or None)."""
    job = os.environ.get("SLURM_JOB_ID")
    if job:
        return f"slurm-{job}" + (f".{os.environ['SLURM_STEP_ID']}" if os.environ.get("SLURM_STEP_ID") else "")
    run_id = os.environ.get("TORCHELASTIC_RUN_ID", "")
    if run_id and run_id != "none":
        return f"torchrun-{run_id}"
    return None


def run_folder_of_checkpoint(ckpt_path: str | os.PathLike | None) -> Path | None:
    """The run folder a checkpoint lies in (``<run>/checkpoints/x.ckpt`` with ``<run>/run.json``), or None."""
    if not ckpt_path:
        return None
    path = Path(ckpt_path).expanduser()
    if not path.is_file():
        return None
    run = path.absolute().parent.parent
    return run if path.parent.name == "checkpoints" and (run / MARKER).is_file() else None


def _read_marker(folder: Path) -> dict:
    try:
        return json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return {}


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def choose_run_folder(
    root: str | os.PathLike | None,
    name: str | None,
    subcommand: str,
    ckpt_path: str | os.PathLike | None = None,
) -> RunFolder:
    """Pick (and on global rank 0 create) the folder of a new or resumed run.

    Args:
        root: ``--trainer.default_root_dir`` (None: :data:`DEFAULT_ROOT`).
        name: ``--name``; None for ``<time>-<W&B id>`` (``-<subcommand>`` added unless fit).
        subcommand: ``fit``, ``test``, ...; only ``fit`` resumes a checkpoint's run.
        ckpt_path: the checkpoint a fit resumes from: the new folder is linked to the run
            folder it lies in (W&B id, ``resumed_from``); that folder is left untouched.

    Raises:
        RunFolderError: ``--name`` names a folder that holds another run, or a
            multi-process job started without a launcher gives no shared name.
    """
    started = time.localtime(_clock())
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", started)
    inherited = os.environ.get(ENV_RUN_DIR)
    if inherited:  # a process Lightning launched for the same run
        folder = Path(inherited)
        meta = _read_marker(folder)
        return RunFolder(folder, folder.name, meta.get("wandb_id") or new_wandb_id(), subcommand, stamp, True)
    base = Path(root if root else DEFAULT_ROOT).expanduser().absolute()
    previous = run_folder_of_checkpoint(ckpt_path) if subcommand == "fit" else None
    parent = None
    if previous is not None:
        parent = {"run": str(previous), "checkpoint": str(Path(ckpt_path).expanduser().absolute())}
        parent["wandb_id"] = _read_marker(previous).get("wandb_id") or new_wandb_id()
        if name is None:  # beside the parent run
            base = previous.parent
    if name is not None:
        if not name or "/" in name or name in (".", ".."):
            raise RunFolderError(f"--name={name!r}: a run name must be a non-empty folder name without '/'")
        return _named_folder(base / name, subcommand, stamp, parent)
    if _independent_processes():
        shared = _shared_job_name()
        if shared is None:
            raise RunFolderError(
                "this process is one of several started independently (WORLD_SIZE > 1) and no job id is "
                "known: give every process the same --name so they share one run folder"
            )
        return _named_folder(base / shared, subcommand, stamp, parent)
    return _fresh_folder(base, subcommand, started, stamp, parent)


def _link(run: RunFolder, parent: dict[str, str] | None) -> RunFolder:
    """Make ``run`` the continuation of ``parent`` (its W&B id; ``resumed_from`` in run.json)."""
    if parent is not None:
        run.wandb_id = parent["wandb_id"]
        run.resumed = True
        run.resumed_from = {"run": parent["run"], "checkpoint": parent["checkpoint"]}
    return run


def _named_folder(folder: Path, subcommand: str, stamp: str, parent: dict[str, str] | None) -> RunFolder:
    meta = _read_marker(folder)
    run = _link(RunFolder(folder, folder.name, meta.get("wandb_id") or new_wandb_id(), subcommand, stamp), parent)
    if _global_rank() != 0:
        return run  # rank 0 creates and checks it
    if folder.exists() and not _is_empty_dir(folder):
        raise RunFolderError(
            f"{folder}: already holds a run; choose another --name, or continue that run with "
            f"--ckpt_path {folder / 'checkpoints' / 'last.ckpt'}"
        )
    folder.mkdir(parents=True, exist_ok=True)
    run.write_marker()
    return run


def _fresh_folder(
    base: Path, subcommand: str, started: time.struct_time, stamp: str, parent: dict[str, str] | None = None
) -> RunFolder:
    """``<time>-<id>[-<subcommand>]``, created exclusively (a new id on the rare clash; a resumed
    run keeps its parent's W&B id and gets ``-2``, ``-3``, ... instead)."""
    base.mkdir(parents=True, exist_ok=True)
    suffix = "" if subcommand == "fit" else f"-{subcommand}"
    for attempt in range(100):
        wandb_id = parent["wandb_id"] if parent is not None else new_wandb_id()
        again = f"-{attempt + 1}" if parent is not None and attempt else ""
        folder = base / f"{time.strftime('%Y%m%d-%H%M%S', started)}-{wandb_id}{suffix}{again}"
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        run = _link(RunFolder(folder, folder.name, wandb_id, subcommand, stamp), parent)
        run.write_marker()
        return run
    raise RunFolderError(f"{base}: could not create a new run folder (100 name clashes)")
