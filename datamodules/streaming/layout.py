"""What a packed shard folder holds, and its metadata file.

``OUT/train`` and ``OUT/test`` are litdata datasets (``index.json`` + ``chunk-*.bin``), one item
per cloud: ``{"index": row in the source split, "points": (P, 3) float32, "label": int,
"name": str}``. ``OUT/pointdwc_shards.json`` records what the items do not: the source, the
class names, the points per cloud asked for when packing, and per split the count, the fewest
and most points of a cloud and whether the split is complete (a pack that was interrupted
leaves ``complete: false`` and is resumed by running it again).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from datamodules.cache import write_atomically
from datamodules.errors import DataError

META_FILE = "pointdwc_shards.json"
INDEX_FILE = "index.json"
FORMAT = "pointdwc-shards"
VERSION = 1
SPLITS = ("train", "test")

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(root: str) -> bool:
    """Whether ``root`` is an object-store URL (``s3://bucket/path``, ``gs://…``) handed to litdata as is."""
    return bool(_URL.match(str(root)))


def split_location(root: str, split: str) -> str:
    """Where split ``split`` of the shards at ``root`` (a folder or a URL) lives."""
    return f"{str(root).rstrip('/')}/{split}" if is_url(root) else str(Path(root) / split)


def is_shard_root(path: Path) -> bool:
    """A folder written by ``pointdwc data pack``: its metadata file or a ``train/index.json``."""
    return (path / META_FILE).is_file() or (path / "train" / INDEX_FILE).is_file()


@dataclass
class SplitMeta:
    """One packed split."""

    count: int
    min_points: int
    max_points: int
    complete: bool = False


@dataclass
class ShardMeta:
    """The contents of ``pointdwc_shards.json``."""

    source: str
    class_names: list[str]
    num_points: int | None
    """Points stored per cloud (each cloud's first ones); None: every cloud as read."""
    splits: dict[str, SplitMeta] = field(default_factory=dict)
    format: str = FORMAT
    version: int = VERSION

    @property
    def complete(self) -> bool:
        return set(self.splits) == set(SPLITS) and all(s.complete for s in self.splits.values())

    def write(self, root: Path) -> None:
        """Write atomically into ``root`` (an interrupted write keeps the previous file)."""
        text = json.dumps(asdict(self), indent=1)
        write_atomically(root / META_FILE, lambda tmp: tmp.write_text(text))

    @classmethod
    def read(cls, root: Path) -> ShardMeta:
        """The metadata of the shards in ``root``; DataError naming the file and the field."""
        path = root / META_FILE
        if not path.is_file():
            raise DataError(f"{path}: missing (the pointdwc metadata of a packed folder)")
        try:
            raw: dict[str, Any] = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise DataError(f"{path}: unreadable ({err})") from None
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise DataError(f"{path}: format is not {FORMAT!r}")
        if raw.get("version") != VERSION:
            raise DataError(f"{path}: version {raw.get('version')!r}, this pointdwc reads version {VERSION}")
        try:
            splits = {name: SplitMeta(**value) for name, value in raw["splits"].items()}
            return cls(str(raw["source"]), [str(c) for c in raw["class_names"]], raw["num_points"], splits)
        except (KeyError, TypeError, AttributeError) as err:
            raise DataError(f"{path}: malformed ({type(err).__name__}: {err})") from None
