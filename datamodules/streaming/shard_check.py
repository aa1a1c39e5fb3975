"""Validation of a packed shard folder, reading only ``index.json`` files and file sizes (nothing is written).

Each problem is one line naming the file: a missing metadata or ``index.json``, a chunk file
listed in the index that is missing or shorter/longer than the index says (a truncated copy),
a split whose item count differs from the metadata, an interrupted pack.
"""

from __future__ import annotations

import json
from pathlib import Path

from datamodules.errors import DataError
from datamodules.streaming.layout import INDEX_FILE, SPLITS, ShardMeta


def split_problems(split_dir: Path, split: str, expected: int | None) -> list[str]:
    """The problems of one litdata split folder (empty: whole)."""
    index = split_dir / INDEX_FILE
    if not index.is_file():
        return [f"{index}: missing (the litdata index of the {split} split)"]
    try:
        chunks = json.loads(index.read_text())["chunks"]
        listed = [(str(c["filename"]), int(c["chunk_bytes"]), int(c["chunk_size"])) for c in chunks]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
        return [f"{index}: unreadable litdata index ({type(err).__name__}: {err})"]
    found = []
    for filename, size, _ in listed:
        chunk = split_dir / filename
        if not chunk.is_file():
            found.append(f"{chunk}: missing chunk file (listed in {index})")
        elif chunk.stat().st_size != size:
            found.append(f"{chunk}: truncated or altered chunk: {chunk.stat().st_size} bytes, {index} says {size}")
    count = sum(items for _, _, items in listed)
    if expected is not None and count != expected:
        found.append(f"{index}: lists {count} clouds, {split_dir.parent} metadata says {expected}")
    return found


def shard_problems(root: Path) -> list[str]:
    """Every problem of the packed folder ``root``, one line each (empty: usable)."""
    try:
        meta = ShardMeta.read(root)
    except DataError as err:
        return [str(err)]
    found = []
    if not meta.complete:
        pending = [s for s in SPLITS if s not in meta.splits or not meta.splits[s].complete]
        found.append(
            f"{root}: the pack of {meta.source} was interrupted ({', '.join(pending)} not complete); "
            "run the same pointdwc data pack again to finish it"
        )
    for split in SPLITS:
        if split in meta.splits and meta.splits[split].complete:
            found += split_problems(root / split, split, meta.splits[split].count)
    return found
