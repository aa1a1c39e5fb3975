"""litdata, the optional dependency of the shards (``pip install 'pointdwc[stream]'``), imported on use."""

from __future__ import annotations

from types import ModuleType

from datamodules.errors import DataError

EXTRA = "stream"


def require_litdata(what: str) -> ModuleType:
    """The ``litdata`` module, or a one-line DataError naming the extra that installs it."""
    try:
        import litdata
    except ImportError:
        raise DataError(f"{what} needs litdata, which is not installed: pip install 'pointdwc[{EXTRA}]'") from None
    return litdata
