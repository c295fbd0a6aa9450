"""repair_if_damaged: a cached task's outputs get the checks a load makes before their paths are handed on.

Airflow's operator hands a cached task's output path to XCom and its asset events, read by consumers that are
not kart tasks (attacker at20 K2, K8). A same-size rewrite is found as a load finds it: by its content hash
with verify on, and, the file being newer than its manifest, as a new version with verify off (recorded, so
kart counts what the path holds). With signing on, a file the signature refuses is refused as ``build()``
refuses it, never rebuilt over (the evidence stays), and the refusal says when the file is only shorter or
longer than its commit. A repair's warning names the damaged path once.
"""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path
from typing import Any

import luigi
import pytest

import kart_core
from kart_core.errors import IntegrityError
from kart_core.inspect.verify import verify_workspace
from kart_core.manifest import read_manifest
from kart_core.storage import storage_for


class RdUp(kart_core.TaskOnKart[Any]):
    """Counts its runs in ``journal`` and dumps ``{"threshold": n}`` (pickled: the value 3 is one byte of it)."""

    journal = luigi.Parameter(significant=False)
    n = luigi.IntParameter(default=3)

    def run(self) -> None:
        with open(self.journal, "a") as handle:
            handle.write("run\n")
        self.dump({"threshold": self.n})


def _built(workspace: str, tmp_path: Path, n: int = 3) -> RdUp:
    task = RdUp(journal=str(tmp_path / "journal.txt"), n=n, workspace_directory=workspace)
    assert kart_core.build(task, reset_register=False) == {"threshold": n}
    return task


def _runs(tmp_path: Path) -> int:
    return len((tmp_path / "journal.txt").read_text().splitlines())


def _flip_in_place(path: str) -> bytes:
    """Turn the pickled 3 into a 7 in place, with the modification time put back (a disk error, a careless edit):
    the same size; only the status-change time moves. Returns the bytes now there."""
    before = os.stat(path)
    with open(path, "r+b") as file:
        data = bytearray(file.read())
        data[data.rindex(b"K\x03") + 1] = 7  # pickle's BININT1 opcode, then the value
        file.seek(0)
        file.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    return bytes(data)


def _content(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()


def test_a_same_size_change_is_rebuilt_with_verify_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """at20 K2: with KART_VERIFY_OUTPUTS=1 the size check alone handed the flipped file on as cached."""
    monkeypatch.setenv("KART_VERIFY_OUTPUTS", "1")
    task = _built(str(tmp_path / "ws"), tmp_path)
    path = task.output().path()
    _flip_in_place(path)
    with caplog.at_level(logging.WARNING, logger="kart_core.runner"):
        assert kart_core.repair_if_damaged(task) == (kart_core.node_key(task),)
    assert _runs(tmp_path) == 2
    assert pickle.loads(_content(path)) == {"threshold": 3}  # what a consumer of the path reads
    (warning,) = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert "content hash" in warning and warning.count(path) == 1  # the path once, not "path: path: ..."
    assert kart_core.repair_if_damaged(task) == ()


def test_a_same_size_change_with_verify_off_is_recorded_as_a_new_version(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """As a load takes it (the file is newer than its manifest): recorded, so kart counts what the path holds."""
    workspace = str(tmp_path / "ws")
    task = _built(workspace, tmp_path)
    path = task.output().path()
    record = task.output().record
    committed = read_manifest(storage_for(record.manifest), record.manifest, record.manifest_name, None)
    assert committed is not None
    _flip_in_place(path)
    with caplog.at_level(logging.WARNING, logger="kart_core.target"):
        assert kart_core.repair_if_damaged(task) == ()
    now = read_manifest(storage_for(record.manifest), record.manifest, record.manifest_name, None)
    assert now is not None and now.outputs[record.key].commit != committed.outputs[record.key].commit
    assert verify_workspace(workspace).ok  # the manifest describes the file handed on
    assert any("records it as a new version" in record.getMessage() for record in caplog.records)
    assert _runs(tmp_path) == 1


def test_a_truncated_output_is_rebuilt_and_the_warning_names_its_path_once(
    any_workspace: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    task = _built(any_workspace, tmp_path)
    path = task.output().path()
    storage = storage_for(path)
    data = storage.read_bytes(path)
    with storage.atomic_write(path) as file:
        file.write(data[:-3])
    with caplog.at_level(logging.WARNING, logger="kart_core.runner"):
        assert kart_core.repair_if_damaged(task) == (kart_core.node_key(task),)
    assert storage.read_bytes(path) == data
    (warning,) = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert f"{path}: {len(data)} bytes were committed, found {len(data) - 3} bytes" in warning
    assert warning.count(path) == 1


@pytest.fixture
def signed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KART_SIGNING_KEY", "a test key of some length")


def _refused(task: RdUp, tmp_path: Path, kept: bytes) -> str:
    """repair_if_damaged refuses as build() does, rebuilds nothing and leaves the refused file in place."""
    with pytest.raises(IntegrityError) as caught:
        kart_core.repair_if_damaged(task)
    with pytest.raises(IntegrityError) as by_build:
        kart_core.build(task, reset_register=False)
    message = str(caught.value)
    assert message == str(by_build.value)
    assert task.output().path() in message and "kart verify --delete" in message
    assert _runs(tmp_path) == 1
    assert _content(task.output().path()) == kept
    return message


@pytest.mark.usefixtures("signed")
def test_a_signed_output_cut_short_is_refused_naming_the_bytes_missing(tmp_path: Path) -> None:
    """at20 K8: the size check rebuilt it (the evidence gone) where build() refuses it; the refusal now also says
    the file is only shorter than its commit."""
    task = _built(str(tmp_path / "ws"), tmp_path)
    path = task.output().path()
    data = _content(path)
    with open(path, "wb") as file:
        file.write(data[:-10])
    message = _refused(task, tmp_path, data[:-10])
    assert f"It is also 10 bytes short of its commit ({len(data)} bytes were committed, found {len(data) - 10})" in (
        message
    )


@pytest.mark.usefixtures("signed")
def test_a_signed_output_replaced_by_a_longer_unsigned_file_is_refused(tmp_path: Path) -> None:
    task = _built(str(tmp_path / "ws"), tmp_path)
    foreign = pickle.dumps({"threshold": 999, "pad": "x" * 200})
    with open(task.output().path(), "wb") as file:
        file.write(foreign)
    assert "kart did not sign this file" in _refused(task, tmp_path, foreign)


@pytest.mark.usefixtures("signed")
def test_a_signed_output_changed_in_place_at_its_size_is_refused(tmp_path: Path) -> None:
    """The size holds, so only the signature (read because the file changed after its manifest) refuses it."""
    task = _built(str(tmp_path / "ws"), tmp_path)
    flipped = _flip_in_place(task.output().path())
    message = _refused(task, tmp_path, flipped)
    assert "its signature does not match" in message and "short of" not in message


@pytest.mark.usefixtures("signed")
def test_a_signed_output_copied_from_another_task_is_refused(tmp_path: Path) -> None:
    """Another parameter set's validly signed output of the same size, copied over (cp -p keeps its time)."""
    task = _built(str(tmp_path / "ws"), tmp_path)
    other = RdUp(journal=str(tmp_path / "other.txt"), n=4, workspace_directory=str(tmp_path / "ws"))
    kart_core.build(other, reset_register=False)
    copied = _content(other.output().path())
    assert len(copied) == len(_content(task.output().path()))
    with open(task.output().path(), "wb") as file:
        file.write(copied)
    _refused(task, tmp_path, copied)


@pytest.mark.usefixtures("signed")
def test_an_intact_signed_output_is_handed_on(tmp_path: Path) -> None:
    task = _built(str(tmp_path / "ws"), tmp_path)
    assert kart_core.repair_if_damaged(task) == ()
    assert _runs(tmp_path) == 1


class RdFolder(kart_core.TaskOnKart[Any]):
    """Writes a folder at its output's path, by path (a model saved as a directory)."""

    def output(self) -> Any:
        return self.make_target("saved/model.pkl")

    def run(self) -> None:
        folder = self.output().path()
        os.makedirs(folder)
        Path(folder, "part0.bin").write_text("0")


def test_a_folder_output_written_by_path_is_handed_on_as_it_is(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No record lists such a folder and no format loads it: nothing to check (a load's open failed with
    IsADirectoryError, and its warning said the manifest was gone)."""
    task = RdFolder(workspace_directory=str(tmp_path / "ws"))
    kart_core.build(task, return_value=False, reset_register=False)
    with caplog.at_level(logging.WARNING):
        assert kart_core.repair_if_damaged(task) == ()
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]
