"""What a catalog output holds now: files by size, mtime and md5 (bytes read only when those changed)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from kart_kedro.output_state import MISSING, current_state, file_stamp, is_persistent
from kedro.io import AbstractDataset, MemoryDataset
from kedro.io.core import AbstractVersionedDataset, Version


class TextFile(AbstractDataset[Any, Any]):
    def __init__(self, filepath: str) -> None:
        self._filepath = Path(filepath)

    def load(self) -> Any:
        return self._filepath.read_text()

    def save(self, data: Any) -> None:
        self._filepath.write_text(data)

    def _exists(self) -> bool:
        return self._filepath.exists()

    def _describe(self) -> dict[str, Any]:
        return {}


class VersionedText(AbstractVersionedDataset[Any, Any]):
    def __init__(self, filepath: str, version: Version | None = None) -> None:
        super().__init__(Path(filepath), version)  # type: ignore[arg-type]

    def load(self) -> Any:
        return Path(self._get_load_path()).read_text()

    def save(self, data: Any) -> None:
        path = Path(self._get_save_path())
        path.parent.mkdir(parents=True)
        path.write_text(data)

    def _exists(self) -> bool:
        return Path(self._get_load_path()).exists()

    def _describe(self) -> dict[str, Any]:
        return {}


class NoPath(AbstractDataset[Any, Any]):
    def __init__(self, data: Any = None) -> None:
        self.data = data

    def load(self) -> Any:
        return self.data

    def save(self, data: Any) -> None:
        self.data = data

    def _exists(self) -> bool:
        return self.data is not None

    def _describe(self) -> dict[str, Any]:
        return {}


def test_a_file_by_content(tmp_path: Path) -> None:
    dataset = TextFile(str(tmp_path / "a.txt"))
    assert current_state(dataset) == MISSING and MISSING.missing
    dataset.save("hello")
    first = current_state(dataset)
    assert first.size == 5 and not first.missing
    os.utime(tmp_path / "a.txt", ns=(1, 1))
    again = current_state(dataset, first)
    assert again.md5 == first.md5 and again.mtime_ns == 1  # same bytes, new mtime: read and found equal
    dataset.save("hellO")
    assert current_state(dataset, again).md5 != first.md5


def test_an_unchanged_size_and_mtime_returns_the_record_without_reading(tmp_path: Path) -> None:
    dataset = TextFile(str(tmp_path / "a.txt"))
    dataset.save("hello")
    recorded = current_state(dataset)
    fake = dataclasses.replace(recorded, md5="not-the-real-md5")
    assert current_state(dataset, fake) == fake


def test_an_edit_that_restores_size_and_mtime_is_read(tmp_path: Path) -> None:
    # A tester's repro: a hand edit of a KartRunner output, then os.utime(ns=...) back (touch -r, cp -p, rsync -a).
    dataset = TextFile(str(tmp_path / "a.json"))
    dataset.save('{"rows": 5}')
    recorded = current_state(dataset)
    stat = os.stat(tmp_path / "a.json")
    time.sleep(0.01)  # a ctime tick apart on coarse-clock file systems
    (tmp_path / "a.json").write_text('{"rows": 9}')
    os.utime(tmp_path / "a.json", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    now = current_state(dataset, recorded)
    assert (now.size, now.mtime_ns) == (recorded.size, recorded.mtime_ns) and now.md5 != recorded.md5


def test_a_state_recorded_without_ctime_is_read_again_and_found_equal(tmp_path: Path) -> None:
    dataset = TextFile(str(tmp_path / "a.txt"))
    dataset.save("hello")
    current = current_state(dataset)
    old_record = type(current)(*dataclasses.astuple(current)[:4])  # what kart recorded before ctime_ns
    assert old_record.ctime_ns == -1
    again = current_state(dataset, old_record)
    assert again.md5 == current.md5 and again.ctime_ns == current.ctime_ns > 0


def test_a_file_stamp_inside_the_project_holds_no_absolute_path_one_outside_does(tmp_path: Path) -> None:
    (tmp_path / "a" / "project" / "data").mkdir(parents=True)
    (tmp_path / "a" / "project" / "data" / "raw.csv").write_text("x\n1\n")
    (tmp_path / "a" / "shared.csv").write_text("x\n2\n")
    inside = file_stamp(TextFile(str(tmp_path / "a" / "project" / "data" / "raw.csv")), tmp_path / "a" / "project")
    outside = file_stamp(TextFile(str(tmp_path / "a" / "shared.csv")), tmp_path / "a" / "project")
    os.rename(tmp_path / "a", tmp_path / "b")  # the project and its neighbour moved: same inodes and times
    moved = TextFile(str(tmp_path / "b" / "project" / "data" / "raw.csv"))
    assert file_stamp(moved, tmp_path / "b" / "project") == inside
    assert file_stamp(moved) != inside  # without a root: stamped by its absolute path
    assert file_stamp(TextFile(str(tmp_path / "b" / "shared.csv")), tmp_path / "b" / "project") != outside
    # Another file at the same relative name (a copy elsewhere, same bytes and mtime): another inode and ctime.
    shutil.copytree(tmp_path / "b" / "project", tmp_path / "c" / "project")
    copy = TextFile(str(tmp_path / "c" / "project" / "data" / "raw.csv"))
    assert file_stamp(copy, tmp_path / "c" / "project") != inside


def test_a_folder_by_all_its_files(tmp_path: Path) -> None:
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "p1").write_text("1")
    dataset = TextFile(str(tmp_path / "parts"))
    before = current_state(dataset)
    (tmp_path / "parts" / "p2").write_text("2")
    assert current_state(dataset).md5 != before.md5


def test_a_versioned_dataset_by_its_latest_version(tmp_path: Path) -> None:
    dataset = VersionedText(str(tmp_path / "v.txt"), Version(None, None))
    assert current_state(dataset).missing
    dataset.save("one")
    first = current_state(dataset)
    assert not first.missing
    time.sleep(0.01)  # Kedro's version timestamps have millisecond resolution
    dataset = VersionedText(str(tmp_path / "v.txt"), Version(None, None))
    dataset.save("two")
    assert current_state(VersionedText(str(tmp_path / "v.txt"), Version(None, None))).md5 != first.md5


def test_a_dataset_without_a_path_by_its_data() -> None:
    assert current_state(NoPath()).missing
    assert current_state(NoPath({"a": 1})).md5 == current_state(NoPath({"a": 1})).md5
    assert current_state(NoPath({"a": 1})).md5 != current_state(NoPath({"a": 2})).md5


def test_memory_datasets_are_not_persistent(tmp_path: Path) -> None:
    assert not is_persistent(MemoryDataset(1))
    assert is_persistent(TextFile(str(tmp_path / "x")))
    assert not is_persistent(None)
    json.dumps(current_state(TextFile(str(tmp_path / "x"))).md5)
