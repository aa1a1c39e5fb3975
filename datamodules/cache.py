"""Where derived data (generated sets, packed clouds, sampled meshes) is kept.

Nothing is ever written into a user's data folder: every one-time product goes under
``$POINTDWC_CACHE`` (default ``~/.cache/pointdwc``), into a directory whose name holds a
fingerprint of what it was made from, and appears there atomically (written to a
temporary sibling, then renamed), so an interrupted run never leaves a half cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def default_cache_dir() -> Path:
    """``$POINTDWC_CACHE`` or ``~/.cache/pointdwc``."""
    env = os.environ.get("POINTDWC_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "pointdwc"


def fingerprint(payload: Any) -> str:
    """A short stable hash of a JSON-serialisable description."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_atomically(path: Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it onto ``path``.

    A reader never sees a half-written file, and an interrupted write leaves ``path`` as it was
    (the temporary file is removed). Returns ``path``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


@contextlib.contextmanager
def atomic_directory(target: Path, replace: bool = False) -> Iterator[Path]:
    """Yield a temporary directory that becomes ``target`` when the block succeeds.

    If ``target`` exists by then (another process finished the same work first), it is
    kept, since a reader may already have it open, unless ``replace``. On error the
    temporary directory is removed and ``target`` is left as it was.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        tmp.chmod(0o755)
        yield tmp
        if target.exists() and not replace:
            return
        if target.exists():
            stale = target.with_name(f".{target.name}.stale-{uuid.uuid4().hex[:8]}")
            try:
                os.replace(target, stale)
            except OSError:
                pass
            else:
                shutil.rmtree(stale, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:
            if not target.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
