"""``pointdwc data check OUT`` on packed shards: a whole pack is usable; a truncated or missing chunk,
a missing ``index.json`` or an interrupted pack is one line naming the file, exit 1, nothing written."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from datamodules.dataset import PointCloudSet, PointCloudSplit
from datamodules.errors import DataError
from datamodules.streaming.pack import PackOptions, pack_shards
from datamodules.streaming.requirement import require_litdata
from lightning_modules.commands.data import main as data_main


class Blobs(PointCloudSet):
    """Six 32-point clouds per split, two classes."""

    def load(self, split: str) -> PointCloudSplit:
        points = np.random.default_rng(len(split)).normal(size=(6, 32, 3)).astype(np.float32)
        return PointCloudSplit(points, np.arange(6) % 2, ["a", "b"], source=split)


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("check") / "shards"
    pack_shards(Blobs(), out, PackOptions(progress=False, chunk_bytes="1KB"))
    return out


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def _check(root: Path, capsys) -> tuple[int, list[str]]:
    before = _snapshot(root)
    code = data_main(["check", str(root), "--quiet"])
    assert _snapshot(root) == before  # nothing written, nothing repaired
    return code, [line.strip() for line in capsys.readouterr().out.splitlines() if "error:" in line]


def test_a_whole_pack_is_usable(packed: Path, capsys) -> None:
    code = data_main(["check", str(packed), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0 and "usable" in out and "train       6 shapes  2/2 classes" in out and "32 points each" in out


def test_a_truncated_chunk_is_one_line_naming_it(packed: Path, tmp_path: Path, capsys) -> None:
    root = shutil.copytree(packed, tmp_path / "copy")
    chunk = sorted((root / "train").glob("chunk-*.bin"))[1]
    chunk.write_bytes(chunk.read_bytes()[:-10])
    code, errors = _check(root, capsys)
    assert code == 1 and len(errors) == 1
    assert errors[0].startswith(f"error: {chunk}: truncated or altered chunk")


def test_a_missing_chunk_is_one_line_naming_it(packed: Path, tmp_path: Path, capsys) -> None:
    root = shutil.copytree(packed, tmp_path / "copy")
    chunk = sorted((root / "test").glob("chunk-*.bin"))[0]
    chunk.unlink()
    code, errors = _check(root, capsys)
    assert code == 1 and errors == [f"error: {chunk}: missing chunk file (listed in {root / 'test' / 'index.json'})"]


def test_a_missing_index_is_one_line_naming_it(packed: Path, tmp_path: Path, capsys) -> None:
    root = shutil.copytree(packed, tmp_path / "copy")
    (root / "train" / "index.json").unlink()
    code, errors = _check(root, capsys)
    assert code == 1 and errors == [f"error: {root / 'train' / 'index.json'}: missing (the litdata index of the train split)"]


def test_streaming_a_broken_pack_fails_at_setup_naming_the_file(packed: Path, tmp_path: Path) -> None:
    from datamodules import PointCloudDataModule

    root = shutil.copytree(packed, tmp_path / "copy")
    (root / "train" / "index.json").unlink()
    data = PointCloudDataModule(root=str(root), batch_size=2)
    with pytest.raises(DataError, match=r"train/index.json: missing"):
        data.setup("fit")


def test_without_litdata_one_line_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "litdata", None)  # import litdata -> ImportError
    with pytest.raises(DataError, match=r"^pointdwc data pack needs litdata, which is not installed: pip install 'pointdwc\[stream\]'$"):
        require_litdata("pointdwc data pack")


def test_an_interrupted_pack_is_one_line_saying_how_to_finish_it(packed: Path, tmp_path: Path, capsys) -> None:
    import json

    root = shutil.copytree(packed, tmp_path / "copy")
    meta = json.loads((root / "pointdwc_shards.json").read_text())
    meta["splits"]["test"]["complete"] = False
    (root / "pointdwc_shards.json").write_text(json.dumps(meta))
    code, errors = _check(root, capsys)
    assert code == 1 and len(errors) == 1
    assert errors[0].startswith(f"error: {root}: the pack of Blobs was interrupted (test not complete); run the same")
