"""kart_kedro.RawFile: a raw input file as a task; a path that is no file is a message naming RawFile."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest
from kart_kedro import RawFile

import kart_core


class SumOfFile(kart_core.TaskOnKart[int]):
    """The sum of the integers in its source RawFile."""

    source = kart_core.TaskInstanceParameter()

    def run(self) -> None:
        with open(self.load("source")) as handle:
            self.dump(sum(int(word) for word in handle.read().split()))


def test_a_raw_file_is_versioned_by_its_bytes(tmp_path: Path) -> None:
    raw = tmp_path / "numbers.csv"
    raw.write_bytes(b"a\n1\n")
    assert RawFile(path=str(raw)).checksum == hashlib.md5(b"a\n1\n").hexdigest()


@pytest.mark.parametrize("folder", [".", "data"])
def test_a_folder_is_refused_naming_raw_file(tmp_path: Path, folder: str) -> None:
    (tmp_path / "data").mkdir()
    with pytest.raises(IsADirectoryError) as refused:
        RawFile(path=folder)
    assert str(refused.value) == (
        f"RawFile: {folder!r} is a folder (looked up from {os.getcwd()!r}); RawFile takes one file. Name a file "
        "in it, or make one RawFile per file."
    )


def test_a_missing_file_names_where_it_was_looked_up(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"RawFile: no file 'nope\.csv' \(looked up from "):
        RawFile(path="nope.csv")


def _rewrite_keeping_size_and_mtime(raw: Path, content: bytes, *, replace: bool) -> None:
    """Write ``content`` (the same size) into ``raw`` and set its modification time back, as ``cp -p``,
    ``rsync -t`` or ``touch -r`` leave a restored file; ``replace``: a new file renamed over it (a new inode)."""
    before = raw.stat()
    if replace:
        fresh = raw.with_name(raw.name + ".new")
        fresh.write_bytes(content)
        os.utime(fresh, ns=(before.st_atime_ns, before.st_mtime_ns))
        os.replace(fresh, raw)
    else:
        raw.write_bytes(content)
        os.utime(raw, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = raw.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


@pytest.mark.parametrize("replace", [False, True])
def test_a_rewrite_keeping_size_and_mtime_is_read_again_in_the_same_process(tmp_path: Path, replace: bool) -> None:
    raw = tmp_path / "nums.txt"
    raw.write_bytes(b"1 2 3\n")
    time.sleep(2.1)  # past the racy window: this version's md5 is memoised
    assert RawFile(path=str(raw)).checksum == hashlib.md5(b"1 2 3\n").hexdigest()
    _rewrite_keeping_size_and_mtime(raw, b"4 5 6\n", replace=replace)
    assert RawFile(path=str(raw)).checksum == hashlib.md5(b"4 5 6\n").hexdigest()


def test_a_build_after_a_rewrite_keeping_size_and_mtime_gets_the_new_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A notebook: two builds in one process, the raw file restored between them with its old mtime (within
    the racy window of the first read: read again whatever the times say)."""
    monkeypatch.chdir(tmp_path)
    raw = tmp_path / "nums.txt"
    raw.write_bytes(b"1 2 3\n")
    workspace = str(tmp_path / "resources")
    assert kart_core.build(SumOfFile(source=RawFile(path="nums.txt"), workspace_directory=workspace)) == 6
    _rewrite_keeping_size_and_mtime(raw, b"4 5 6\n", replace=False)
    assert kart_core.build(SumOfFile(source=RawFile(path="nums.txt"), workspace_directory=workspace)) == 15


def test_a_missing_file_started_in_src_says_to_start_in_the_project_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `kedro run` in src/ (Kedro finds the project from a sub-folder): the message named only where it looked.
    project = tmp_path / "project"
    (project / "data" / "01_raw").mkdir(parents=True)
    (project / "data" / "01_raw" / "numbers.csv").write_text("a\n1\n")
    (project / "src" / "pkg").mkdir(parents=True)
    (project / "pyproject.toml").write_text('[tool.kedro]\npackage_name = "pkg"\nsource_dir = "src"\n')
    monkeypatch.chdir(project / "src" / "pkg")
    with pytest.raises(FileNotFoundError) as missing:
        RawFile(path="data/01_raw/numbers.csv")
    assert str(missing.value) == (
        f"RawFile: no file 'data/01_raw/numbers.csv' (looked up from {str(project / 'src' / 'pkg')!r}); a relative "
        f"path is taken from the directory the run starts in. Start `kedro run` in the Kedro project's root "
        f"{str(project)!r} (the folder of its pyproject.toml): "
        f"{str(project / 'data' / '01_raw' / 'numbers.csv')!r} is there."
    )
    monkeypatch.chdir(project / "src")
    with pytest.raises(
        FileNotFoundError,
        match=r"/project/src'\); a relative path is taken from the directory the run "
        r"starts in\. Start `kedro run` in the Kedro project's root '[^']+/project' \(the folder of "
        r"its pyproject\.toml\)\.$",
    ):
        RawFile(path="data/nope.csv")
    monkeypatch.chdir(project)  # in the root: the file is simply missing
    with pytest.raises(FileNotFoundError, match=r"starts in\.$"):
        RawFile(path="data/nope.csv")
