"""`kart verify` checks side files (files a run dumps beside its outputs: its manifest's ``side`` section).

Before, verify skipped them: an older signed copy put back, a side file whose ``log/side/`` record was removed, or
one rewritten outside kart was a clean workspace, and ``--delete`` left it, while every load refused it (signing
on) or served the rewrite (off). Now each one present is checked as a load checks it: with signing on against the
run that wrote the path last (its signed record), without signing against the runs that list it; ``--delete``
removes a bad one, also on a shared path. Real builds, local disk and moto's S3, the real CLI.
"""

from __future__ import annotations

import pickle

import pytest
from click.testing import CliRunner
from test_side_record import OtherSideWriter, SideWriter, _bare, _build, _put, _read, _record_name, _shared, _threshold

from kart_core.cli import DAMAGE_FOUND, cli
from kart_core.errors import IntegrityError, MissingOutputError
from kart_core.inspect.verify import remove_damaged, verify_workspace
from kart_core.signing import ENVIRONMENT_VARIABLE as SIGNING_KEY
from kart_core.signing import HEADER_SIZE
from kart_core.storage import storage_for
from kart_core.workspace import join_url

LEASE = 30  # the `where` fixture's commit-marker lease (seconds); no test here waits on it


@pytest.fixture
def signed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SIGNING_KEY, "a test key of some length")


def _two_writers(where: str) -> str:
    """SideWriter(n=1), then OtherSideWriter(n=3) write the shared table; its path."""
    _build(SideWriter(n=1, workspace_directory=where))
    path = _shared(SideWriter(n=1, workspace_directory=where)).path()
    _build(OtherSideWriter(n=3, workspace_directory=where))
    return path


def _side_problems(where: str) -> list[tuple[str, str, str]]:
    report = verify_workspace(where)
    return [(problem.kind, problem.task, problem.detail) for problem in report.problems if problem.side]


def test_an_older_signed_copy_put_back_is_reported_and_deleted(where: str, signed: None) -> None:
    _build(SideWriter(n=1, workspace_directory=where))
    path = _shared(SideWriter(n=1, workspace_directory=where)).path()
    old = _read(path)
    _build(OtherSideWriter(n=3, workspace_directory=where))
    clean = verify_workspace(where)
    assert clean.ok and clean.sides == 1, clean.problems
    _put(path, old)
    report = verify_workspace(where)
    assert not report.ok  # before: ok, no problem (the side file was never looked at)
    [problem] = [problem for problem in report.problems if problem.side]
    assert problem.kind == "signature" and problem.path == path and problem.task.startswith("OtherSideWriter[")
    assert "older version copied back" in problem.detail and "rerun=True" in problem.detail
    assert remove_damaged(report) == [path]  # a shared path, but its last writer is known: deleted
    with pytest.raises(MissingOutputError):
        _bare(where, "pkl").load()
    _build(OtherSideWriter(n=3, workspace_directory=where, rerun=True))  # the way out the problem names
    assert _threshold(_bare(where, "pkl").load()) == 3
    assert verify_workspace(where).ok


def test_a_side_file_whose_record_was_removed_is_unrecorded(where: str, signed: None) -> None:
    path = _two_writers(where)
    record = join_url(where, _record_name("shared/lookup.pkl"))
    storage_for(record).remove(record)
    [(kind, task, detail)] = _side_problems(where)
    assert kind == "unrecorded" and "OtherSideWriter[" in task and "SideWriter[" in task
    assert "no valid side-file record" in detail
    report = verify_workspace(where)
    assert path in remove_damaged(report)


def test_a_load_of_a_side_file_whose_record_alone_is_gone_names_the_record_and_its_writers_rerun(
    where: str, signed: None
) -> None:
    """at20 K12: the refusal said the manifest "has no entry" and "was removed" (the writer's manifest lists the path
    under 'side' with that very commit) and advised `kart verify --delete`, after which the writer stays complete."""
    writer = SideWriter(n=1, workspace_directory=where)
    _build(writer)
    record = join_url(where, _record_name("shared/lookup.pkl"))
    storage_for(record).remove(record)
    for through in (_shared(writer), _bare(where, "pkl")):  # its writer's target, and another task's
        with pytest.raises(IntegrityError) as caught:
            through.load()
        message = str(caught.value)
        assert f"which {writer.kart_label()}'s manifest lists for this path under 'side'" in message
        assert f"side-file record ({_record_name('shared/lookup.pkl')!r})" in message and "is missing" in message
        assert f"build {writer.kart_label()} again with rerun=True" in message
        assert f"leaves {writer.kart_label()} complete" in message
        assert "has no entry" not in message and "manifest was removed" not in message


def test_verify_delete_of_a_side_file_says_its_writer_stays_complete(workspace: str, signed: None) -> None:
    writer = SideWriter(n=1, workspace_directory=workspace)
    _build(writer)
    record = join_url(workspace, _record_name("shared/lookup.pkl"))
    storage_for(record).remove(record)
    runner = CliRunner()
    found = runner.invoke(cli, ["verify", "-w", workspace])
    assert found.exit_code == DAMAGE_FOUND, found.output
    assert "the next build runs their tasks again" not in found.output  # only a side file: no build does
    assert "deleting it leaves the task that wrote it complete" in found.output
    deleted = runner.invoke(cli, ["verify", "-w", workspace, "--delete"])
    assert f"(deleted; {writer.kart_label()} stays complete: build it with rerun=True" in deleted.output
    assert writer.complete()  # as said: a build does not write the file again
    _build(SideWriter(n=1, workspace_directory=workspace, rerun=True))  # the way out both messages name
    assert _threshold(_shared(writer).load()) == 1
    assert verify_workspace(workspace).ok


def test_a_signed_side_file_changed_in_place_is_a_hash_problem(where: str, signed: None) -> None:
    path = _two_writers(where)
    data = bytearray(_read(path))
    data[HEADER_SIZE + 5] ^= 0xFF  # the same size, its header kept
    _put(path, bytes(data))
    [(kind, task, detail)] = _side_problems(where)
    assert kind == "hash" and task.startswith("OtherSideWriter[") and "its last writer's commit" in detail


def test_an_unsigned_side_file_rewritten_outside_kart_is_reported_and_deleted(
    any_workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SIGNING_KEY, raising=False)
    where = any_workspace
    path = _two_writers(where)
    assert verify_workspace(where).ok and verify_workspace(where).sides == 1
    committed = _read(path)
    rewritten = pickle.dumps({"threshold": 9})
    assert len(rewritten) == len(committed)
    _put(path, rewritten)
    [(kind, _, detail)] = _side_problems(where)
    assert kind == "hash" and "none of the runs that list it committed" in detail
    _put(path, b"short")
    [(kind, _, _)] = _side_problems(where)
    assert kind == "size"
    assert remove_damaged(verify_workspace(where)) == [path]
    _build(SideWriter(n=1, workspace_directory=where, rerun=True))
    assert verify_workspace(where).ok


def test_the_cli_reports_side_files_and_delete_removes_them(workspace: str, signed: None) -> None:
    _build(SideWriter(n=1, workspace_directory=workspace))
    path = _shared(SideWriter(n=1, workspace_directory=workspace)).path()
    old = _read(path)
    _build(SideWriter(n=2, workspace_directory=workspace))
    runner = CliRunner()
    clean = runner.invoke(cli, ["verify", "-w", workspace])
    assert clean.exit_code == 0 and "1 side file(s)" in clean.output, clean.output
    _put(path, old)
    found = runner.invoke(cli, ["verify", "-w", workspace])
    assert found.exit_code == DAMAGE_FOUND, found.output
    assert "older version copied back" in found.output and "build it with rerun=True" in found.output
    deleted = runner.invoke(cli, ["verify", "-w", workspace, "--delete"])
    assert "(deleted; SideWriter[" in deleted.output, deleted.output  # its writer stays complete, as it says
    assert not storage_for(path).exists(path)
