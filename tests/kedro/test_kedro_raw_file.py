"""kart_kedro.RawFile: a raw input file as a task; a path that is no file is a message naming RawFile."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from kart_kedro import RawFile


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
