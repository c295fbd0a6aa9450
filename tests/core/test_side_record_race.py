"""A load racing another process's commit returns a committed version, never a spurious refusal (attacker at18 I6).

With signing on, a commit moves a side file (``make_target(..., use_unique_id=False)``, dumped beside a task's
outputs) into place and then writes the path's signed record (``kart_core.side_record``) naming its commit, under the
path's lock. A load that read the new file before the record named it (or the old file, then the new record) was
refused as "an older version copied back" (4 % of loads in a tight loop, also on S3), and the message named the
reader's manifest as if it were the writer's. The same on a task's own output: the manifest read before a commit, the
file after it. Now a refused commit is read again once the commit is over (under the path's lock, after any commit
marker of the task): a state that holds still is refused with a message saying what the record names.

The writers are processes of their own (real builds): stopped (SIGSTOP) between the move and the record, or run to
the end between the reader's two reads (the reader's own reads are the real ones; the second one runs after the
writer's process has finished). Local disk and moto's S3. A real rollback stays refused
(tests/core/test_side_record.py).
"""

from __future__ import annotations

import os
import signal
import textwrap
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import luigi
import pytest
from other_host import wait_for
from test_side_record import OtherSideWriter, SideWriter, _bare, _build, _put, _read, _shared, _threshold

import kart_core as gokart
from kart_core import side_record
from kart_core.errors import IntegrityError
from kart_core.signing import ENVIRONMENT_VARIABLE as SIGNING_KEY
from kart_core.target import TargetOnKart

if TYPE_CHECKING:
    import fork_server

LEASE = 30  # the `where` fixture's commit-marker lease (seconds); no test here waits on it
HERE = str(Path(__file__).resolve().parent)
REPO = str(Path(__file__).resolve().parents[2])

WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    sys.path[:0] = [sys.argv[2], sys.argv[3]]
    workspace, kind, n, flag = sys.argv[1], sys.argv[4], int(sys.argv[5]), sys.argv[6]
    import kart_core
    from kart_core import side_record
    from test_side_record import OtherSideWriter, SideWriter

    if flag != "-":
        original = side_record.write_record

        def write_record(record, commit, signer):
            Path(flag).touch()
            os.kill(os.getpid(), signal.SIGSTOP)  # the file is moved into place; its record does not name it yet
            return original(record, commit, signer)

        side_record.write_record = write_record
    if kind == "sized":
        from test_side_record_race import Sized

        task = Sized(tag=n, rerun=True, workspace_directory=workspace)
    else:
        task = (OtherSideWriter if kind == "other" else SideWriter)(n=n, rerun=True, workspace_directory=workspace)
    print("BUILT", kart_core.build(task, log_level=40, reset_register=False), flush=True)
    """
)


class Sized(gokart.TaskOnKart[str]):
    """One output whose size follows ``tag``, which is not part of its identity: a rerun commits another size."""

    tag = luigi.IntParameter(default=0, significant=False)

    def output(self) -> TargetOnKart:
        return self.make_target("sized/out.pkl")

    def run(self) -> None:
        self.dump("x" * (10 + self.tag))


@pytest.fixture
def signed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SIGNING_KEY, "a test key of some length")


def _writer(tmp_path: Path, where: str, kind: str, n: int, flag: str = "-") -> fork_server.Run:
    """WRITER in a process of its own: a fork of the server that imported luigi, pandas and s3fs once
    (tests/fork_server.py; a fresh interpreter spent ~2 s of CPU on them before its build)."""
    import fork_server  # here: WRITER imports this module with tests/core, not tests/, on its path

    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    args = [str(script), where, REPO, HERE, kind, str(n), flag]
    return fork_server.start(args, tmp_path, dict(os.environ), fork_server.KART_S3)


def _commit_in_another_process(tmp_path: Path, where: str, kind: str, n: int) -> None:
    process = _writer(tmp_path, where, kind, n)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0 and stdout.startswith("BUILT"), (stdout, stderr[-3000:])


def _stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as file:
        return file.read().rpartition(")")[2].split()[0] in ("T", "t")


@pytest.mark.parametrize("kind", ["same", "other"], ids=["same_task", "another_task"])
def test_a_load_meeting_a_commit_between_its_move_and_its_record_returns_the_new_version(
    tmp_path: Path, where: str, signed: None, kind: str
) -> None:
    """The writer stops with the new file in place and the path's record naming the older commit (another task's,
    ``another_task``): the load waits for the commit and returns the new table (before: IntegrityError at once)."""
    _build(SideWriter(n=1, workspace_directory=where))
    flag = tmp_path / "stopped"
    process = _writer(tmp_path, where, kind, 5, str(flag))
    loaded: list[Any] = []
    try:
        wait_for(flag, process)
        deadline = time.monotonic() + 30
        while not _stopped(process.pid):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert _read(_shared(SideWriter(n=1, workspace_directory=where)).path())  # the new file is there

        def load() -> None:
            try:
                loaded.append(_threshold(_bare(where, "pkl").load()))
            except Exception as exc:  # noqa: BLE001 - the test reports what the load raised
                loaded.append(exc)

        reader = threading.Thread(target=load)
        reader.start()
        reader.join(0.5)
    finally:
        os.kill(process.pid, signal.SIGCONT)
    reader.join(60)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0 and stdout.startswith("BUILT"), (stdout, stderr[-3000:])
    assert loaded == [5]  # before: [IntegrityError('... an older version copied back ...')]
    for target in (_shared(SideWriter(n=1, workspace_directory=where)), _bare(where, "pkl")):
        assert _threshold(target.load()) == 5


@pytest.mark.parametrize("kind", ["same", "other"], ids=["same_task", "another_task"])
def test_a_load_that_read_the_file_before_a_commit_and_its_record_after_returns_a_committed_version(
    tmp_path: Path, where: str, signed: None, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader has the older file's bytes; another process commits (file and record) before the reader reads the
    record: the load returns the new table (before: refused as an older version copied back)."""
    _build(SideWriter(n=1, workspace_directory=where))
    original = side_record.vouched
    raced: list[bool] = []

    def vouched_after_a_commit(*args: Any) -> bool:
        if not raced:
            raced.append(True)
            _commit_in_another_process(tmp_path, where, kind, 6)
        return original(*args)

    monkeypatch.setattr(side_record, "vouched", vouched_after_a_commit)
    assert _threshold(_bare(where, "pkl").load()) == 6
    assert raced == [True]


def test_a_task_s_own_output_read_across_another_process_s_commit_loads(
    tmp_path: Path, where: str, signed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The manifest read before another process commits the task again, the output after: the load returns the new
    commit's value (before: refused, "signed as commit X, but the task's manifest records commit Y")."""
    task = SideWriter(n=7, workspace_directory=where)
    _build(task)
    original = TargetOnKart._committed_entry
    raced: list[bool] = []

    def entry_then_a_commit(self: TargetOnKart, signer: Any) -> Any:
        entry = original(self, signer)
        if not raced:
            raced.append(True)
            _commit_in_another_process(tmp_path, where, "same", 7)  # the same task again (rerun): a new commit
        return entry

    monkeypatch.setattr(TargetOnKart, "_committed_entry", entry_then_a_commit)
    assert task.output().load() == 7
    assert raced == [True]


def test_a_real_rollback_is_still_refused_and_the_message_names_the_writer(where: str, signed: None) -> None:
    """An older copy put back stays refused (re-read once, the same): the message says what the path's record
    names (the writer's manifest and commit), not the reader's manifest as the writer's."""
    _build(SideWriter(n=1, workspace_directory=where))
    old = _read(_shared(SideWriter(n=1, workspace_directory=where)).path())
    _build(OtherSideWriter(n=2, workspace_directory=where))
    _put(_shared(SideWriter(n=1, workspace_directory=where)).path(), old)
    reader: TargetOnKart = _bare(where, "pkl")
    with pytest.raises(IntegrityError, match="older version copied back") as refused:
        reader.load()
    message = str(refused.value)
    writer = OtherSideWriter(n=2, workspace_directory=where).output().record
    assert writer is not None and writer.manifest_name in message  # the last writer's manifest
    assert "OtherSideWriter" in message and "rerun=True" in message
    assert "records no commit" not in message  # before: "the task's manifest ... records no commit" (the reader's)


def test_a_load_waits_a_bounded_time_for_a_stopped_commit_then_says_so(
    tmp_path: Path, workspace: str, signed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer stopped between its move and its record for longer than ``side_record.SETTLE_SECONDS``: the load
    fails with IntegrityError saying a run committing the path held its lock (not that a rollback happened)."""
    _build(SideWriter(n=1, workspace_directory=workspace))
    monkeypatch.setattr(side_record, "SETTLE_SECONDS", 0.5)
    flag = tmp_path / "stopped"
    process = _writer(tmp_path, workspace, "same", 5, str(flag))
    try:
        wait_for(flag, process)
        deadline = time.monotonic() + 30
        while not _stopped(process.pid):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        started = time.monotonic()
        with pytest.raises(IntegrityError, match="held its lock") as refused:
            _bare(workspace, "pkl").load()
        assert 0.4 < time.monotonic() - started < 20
        assert "Load again once it has finished" in str(refused.value)
    finally:
        os.kill(process.pid, signal.SIGCONT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, (stdout, stderr[-3000:])
    assert _threshold(_bare(workspace, "pkl").load()) == 5


@pytest.mark.parametrize("commits", [1, 2], ids=["one_commit", "two_commits"])
def test_without_signing_an_output_read_across_commits_of_other_sizes_loads(
    tmp_path: Path, where: str, monkeypatch: pytest.MonkeyPatch, commits: int
) -> None:
    """Signing off: the manifest read before another process's commit, the file opened after it (another size) was
    refused as damage ("N bytes were committed, found M": 3 of 10,700 loads in a tight loop). ``two_commits``: a
    third commit lands while the load reads the manifest again, so the file it holds is not that one's either and
    is opened again. The load returns a committed value."""
    monkeypatch.delenv(SIGNING_KEY, raising=False)
    task = Sized(workspace_directory=where)
    _build(task)
    original = TargetOnKart._committed_entry
    reads: list[int] = []

    def commits_between_reads(self: TargetOnKart, signer: Any) -> Any:
        reads.append(1)
        if len(reads) == 2 and commits == 2:
            _commit_in_another_process(tmp_path, where, "sized", 1)  # before the load reads the manifest again
        entry = original(self, signer)
        if len(reads) == 1:
            _commit_in_another_process(tmp_path, where, "sized", 3)  # after the load read the manifest
        return entry

    monkeypatch.setattr(TargetOnKart, "_committed_entry", commits_between_reads)
    assert task.output().load() == "x" * (11 if commits == 2 else 13)  # before: DamagedOutputError (size)
    assert len(reads) >= 2
