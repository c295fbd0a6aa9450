"""The local spool (kart_core/storage/local.py): positions kept without lseek, and the digest of a dump
hashed while it is written, which must equal the digest of the bytes on disk whatever the writer did
(wrote in chunks, seeked back to patch a header as zip and .npz do, took the descriptor, failed midway)."""

from __future__ import annotations

import array
import io
import json
import os
import pickle
import subprocess
from pathlib import Path
from typing import Any

import luigi
import numpy as np
import pandas as pd
import pytest

import kart_core
from kart_core.errors import DumpError
from kart_core.integrity import DEFAULT_ALGORITHM, digest_bytes
from kart_core.storage.local import LocalStorage
from kart_core.target import make_target


def _spool(tmp_path: Path, hashed: bool = True) -> Any:
    return LocalStorage().spool(str(tmp_path / "out.bin"), hashed=hashed)


def _staged_bytes(spool: Any) -> bytes:
    spool.file.flush()
    return Path(spool.location).read_bytes()


def test_a_spool_written_in_chunks_knows_the_digest_of_the_bytes_on_disk(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    parts: list[Any] = [b"a", bytes(range(256)) * 300, bytearray(b"middle"), array.array("i", [1, -2, 3]), b""]
    parts.append(memoryview(np.arange(5000, dtype="<f8")))  # a multi-byte format: bytes, not items, are counted
    for part in parts:
        spool.file.write(part)
    on_disk = _staged_bytes(spool)
    expected = b"".join(bytes(memoryview(part).cast("B")) for part in parts)
    assert on_disk == expected
    assert spool.written() == (len(expected), digest_bytes(expected))
    spool.discard()


def test_reading_a_spool_back_midway_keeps_its_digest(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    spool.file.write(b"header")
    spool.file.seek(0)
    assert spool.file.read(3) == b"hea"
    spool.file.seek(0, os.SEEK_END)
    spool.file.write(b"-tail")
    assert spool.file.tell() == 11
    assert spool.written() is not None
    assert spool.written() == (11, digest_bytes(_staged_bytes(spool)))
    assert _staged_bytes(spool) == b"header-tail"
    spool.discard()


@pytest.mark.parametrize(
    "writer",
    [
        pytest.param(lambda file: (file.write(b"0000body"), file.seek(0), file.write(b"LEN8")), id="header patched"),
        pytest.param(lambda file: (file.write(b"ab"), file.seek(5), file.write(b"cd")), id="hole"),
        pytest.param(lambda file: (file.write(b"abcdef"), file.truncate(3)), id="truncated"),
        pytest.param(lambda file: (file.write(b"abc"), file.seek(-2, os.SEEK_END), file.write(b"XYZ")), id="overlap"),
    ],
)
def test_a_spool_written_out_of_order_has_no_digest_and_the_right_bytes(tmp_path: Path, writer: Any) -> None:
    expected_file = io.BytesIO()
    writer(expected_file)
    spool = _spool(tmp_path)
    writer(spool.file)
    assert _staged_bytes(spool) == expected_file.getvalue()
    assert spool.written() is None  # the target reads the file back
    spool.discard()


@pytest.mark.parametrize("reads", ["preadv", "pread"])
def test_positions_follow_a_file_s(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reads: str) -> None:
    if reads == "pread":  # the path of a platform without os.preadv
        monkeypatch.setattr("kart_core.storage.local._PREADV", None)
    spool = _spool(tmp_path)
    spool.file.write(b"0123456789")
    assert spool.file.seek(-4, os.SEEK_END) == 6
    assert spool.file.read() == b"6789"
    assert spool.file.seek(2) == 2
    assert spool.file.seek(3, os.SEEK_CUR) == 5
    with pytest.raises(OSError, match="Invalid argument"):
        spool.file.seek(-1)
    assert spool.file.tell() == 5
    spool.discard()
    assert not Path(spool.location).exists()


def test_a_spool_whose_descriptor_was_taken_writes_where_a_file_would_and_is_read_back(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    spool.file.write(b"before-")
    spool.file.flush()
    os.write(spool.file.fileno(), b"raw-")  # at the position, as through an io.FileIO's descriptor
    spool.file.seek(0, os.SEEK_END)
    spool.file.write(b"after")
    assert _staged_bytes(spool) == b"before-raw-after"
    assert spool.written() is None
    spool.discard()


@pytest.mark.parametrize("writer", ["pwrite_name", "proc_reopen", "child_process"])
def test_bytes_written_through_the_descriptor_number_are_not_missed(tmp_path: Path, writer: str) -> None:
    # `name` hands out the descriptor too (gzip reads it; a library may write through it), and a child process
    # can open /proc/<pid>/fd/N: the digest of the in-order writes alone made a good output "damaged" (at8 H1).
    spool = _spool(tmp_path)
    spool.file.write(b"A" * 10)
    spool.file.flush()
    if writer == "pwrite_name":
        os.pwrite(spool.file.name, b"B" * 10, 0)
    elif writer == "proc_reopen":  # the number learnt without asking the file: only the size can tell
        with open(f"/proc/self/fd/{spool._raw._fd}", "r+b") as other:
            other.seek(10)
            other.write(b"Z" * 4)
    else:
        subprocess.run(["sh", "-c", f"printf XYZXYZXYZXYZ 1<>/proc/{os.getpid()}/fd/{spool._raw._fd}"], check=True)
    on_disk = _staged_bytes(spool)
    assert on_disk != b"A" * 10
    written = spool.written()
    assert written is None or written == (len(on_disk), digest_bytes(on_disk))
    spool.discard()


def test_a_spool_not_asked_to_hash_has_no_digest(tmp_path: Path) -> None:
    spool = _spool(tmp_path, hashed=False)
    spool.file.write(b"abc")
    spool.file.flush()
    assert spool.written() is None
    spool.discard()


# --- the digest a build records, against the bytes on disk ------------------------------------------


class Dumps(kart_core.TaskOnKart[Any]):
    """Dumps what ``kind`` names to a file of the matching extension."""

    kind = luigi.Parameter()

    def output(self) -> Any:
        if self.kind == "model_zip":  # zipfile seeks back into the spool to patch each member's header
            return self.make_model_target("out/model.zip", save_function=_save_text, load_function=_load_text)
        extension = {"npz": "npz", "big_pickle": "pkl", "csv": "csv", "gz": "gz"}[self.kind]
        return self.make_target(f"out/{self.kind}.{extension}")

    def run(self) -> None:
        if self.kind == "npz":
            self.dump(np.arange(100_000, dtype="int64").reshape(1000, 100))
        elif self.kind == "big_pickle":
            self.dump({"blob": os.urandom(300_000), "items": list(range(10_000))})
        elif self.kind == "csv":
            self.dump(pd.DataFrame({"a": range(20_000), "b": ["x" * 7] * 20_000}))
        elif self.kind == "gz":
            self.dump([f"line {i}" for i in range(50_000)])
        else:
            self.dump("a" * 100_000)


def _save_text(obj: str, path: str) -> None:
    Path(path).write_text(obj)


def _load_text(path: str) -> str:
    return Path(path).read_text()


def _recorded(workspace: Path, task: kart_core.TaskOnKart[Any]) -> dict[str, Any]:
    manifest = workspace / "log" / "manifest" / f"{type(task).__name__}_{task.make_unique_id()}.json"
    (entry,) = json.loads(manifest.read_text())["outputs"].values()
    return dict(entry)


@pytest.mark.parametrize("kind", ["npz", "big_pickle", "csv", "gz", "model_zip"])
def test_the_recorded_digest_is_that_of_the_output_on_disk(tmp_path: Path, kind: str) -> None:
    task = Dumps(kind=kind, workspace_directory=str(tmp_path))
    kart_core.build(task, reset_register=False)
    data = Path(task.output().path()).read_bytes()
    entry = _recorded(tmp_path, task)
    assert entry["size"] == len(data)
    assert entry["digest"] == f"{DEFAULT_ALGORITHM}:{digest_bytes(data)}"
    assert not list(tmp_path.rglob("*.kart-tmp"))


class _FailsWhenPickled:
    def __reduce__(self) -> Any:
        raise pickle.PicklingError("refused midway")


class DumpFailsMidway(kart_core.TaskOnKart[Any]):
    """Pickles a large blob (written to the file before the next item) and then an object that refuses."""

    fail = luigi.BoolParameter(significant=False)

    def run(self) -> None:
        blob = b"z" * 200_000
        self.dump([blob, _FailsWhenPickled()] if self.fail else [blob, "whole"])


def test_a_dump_that_fails_midway_leaves_nothing_and_the_next_one_records_its_own_bytes(tmp_path: Path) -> None:
    failing = DumpFailsMidway(fail=True, workspace_directory=str(tmp_path))
    with pytest.raises(kart_core.GokartBuildError, match="refused midway"):
        kart_core.build(failing, reset_register=False)
    staged = list(tmp_path.rglob("*.kart-tmp"))
    assert staged == [] and not Path(failing.output().path()).exists()
    task = DumpFailsMidway(fail=False, workspace_directory=str(tmp_path))
    assert kart_core.build(task, reset_register=False) == [b"z" * 200_000, "whole"]
    data = Path(task.output().path()).read_bytes()
    assert _recorded(tmp_path, task)["digest"] == f"{DEFAULT_ALGORITHM}:{digest_bytes(data)}"
    assert pickle.loads(data) == [b"z" * 200_000, "whole"]


def test_a_direct_dump_that_fails_midway_is_a_dump_error_naming_the_cause_and_leaves_nothing(tmp_path: Path) -> None:
    target = make_target(str(tmp_path / "direct.pkl"))
    with pytest.raises(DumpError, match="refused midway"):
        target.dump([b"z" * 200_000, _FailsWhenPickled()])
    assert list(tmp_path.iterdir()) == []
