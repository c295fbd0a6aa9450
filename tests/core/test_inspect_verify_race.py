"""kart verify --delete against commits made after its scan (attacker at17 H2): ``remove_damaged`` acts on what
``verify_workspace`` reported, which a rerun (or a build's own repair) may have fixed since; it must not delete
the output or manifest that commit wrote. Local disk, fsspec memory:// and a real S3 server (moto)."""

from __future__ import annotations

import logging
from pathlib import Path

import luigi
import pytest

import kart_core as gokart
from kart_core.inspect.verify import VerifyReport, remove_damaged, verify_workspace
from kart_core.storage import storage_for
from kart_core.workspace import MANIFEST, log_task_path


class RaceUp(gokart.TaskOnKart[dict]):
    n = luigi.IntParameter()

    def run(self) -> None:
        self.dump({"n": self.n, "payload": "x" * 200})


@pytest.fixture(params=["local", "memory", "s3"])
def any_workspace(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "ws")
    if request.param == "memory":
        return f"memory://kart-verify-race/{tmp_path.name}"
    return f"s3://{request.getfixturevalue('s3_bucket')}/resources"


def _read(path: str) -> bytes:
    return storage_for(path).read_bytes(path)


def _write(path: str, data: bytes) -> None:
    with storage_for(path).atomic_write(path) as file:
        file.write(data)


def _manifest(task: gokart.TaskOnKart) -> str:
    return log_task_path(task, MANIFEST)


def _truncate_output(task: gokart.TaskOnKart) -> None:
    path = task.output().path()
    _write(path, _read(path)[:-3])


def _break_manifest(task: gokart.TaskOnKart) -> None:
    _write(_manifest(task), b"{not json")


def _damaged_and_scanned(workspace: str, damage: object, kind: str) -> tuple[RaceUp, VerifyReport]:
    """RaceUp built, then ``damage``d; the scan's report, which names one problem of ``kind``."""
    up = RaceUp(n=1, workspace_directory=workspace)
    gokart.build(up, reset_register=False)
    assert callable(damage)
    damage(up)
    report = verify_workspace(workspace)
    assert [problem.kind for problem in report.problems] == [kind]
    return up, report


@pytest.mark.parametrize(("damage", "kind"), [(_truncate_output, "size"), (_break_manifest, "manifest")])
def test_a_problem_fixed_by_a_commit_after_the_scan_is_not_deleted(
    any_workspace: str, caplog: pytest.LogCaptureFixture, damage: object, kind: str
) -> None:
    up, report = _damaged_and_scanned(any_workspace, damage, kind)
    gokart.build(RaceUp(n=1, workspace_directory=any_workspace, rerun=True), reset_register=False)  # meanwhile
    caplog.set_level(logging.WARNING)
    assert remove_damaged(report) == []
    assert "left" in caplog.text and "Run `kart verify` again" in caplog.text
    assert up.complete() and up.output().load()["n"] == 1
    assert verify_workspace(any_workspace).ok


@pytest.mark.parametrize(("damage", "kind"), [(_truncate_output, "size"), (_break_manifest, "manifest")])
def test_a_problem_nothing_touched_since_the_scan_is_deleted(any_workspace: str, damage: object, kind: str) -> None:
    """The control: the check before each removal lets an unchanged problem go as before."""
    up, report = _damaged_and_scanned(any_workspace, damage, kind)
    removed = remove_damaged(report)
    assert (up.output().path() in removed) if kind == "size" else (_manifest(up) in removed)
    assert not up.complete()
    assert gokart.build(up, reset_register=False)["n"] == 1


def test_a_new_version_a_load_recorded_after_the_scan_is_not_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A same-size rewrite: `kart verify` (hashes) reports it; a load then records it as a new version (another
    commit id in the manifest); --delete must leave the file, now what the manifest records."""
    up = RaceUp(n=1, workspace_directory=str(tmp_path / "ws"))
    gokart.build(up, reset_register=False)
    other = RaceUp(n=2, workspace_directory=str(tmp_path / "other"))
    gokart.build(other, reset_register=False)
    _write(up.output().path(), _read(other.output().path()))  # same size, other content, a later write
    report = verify_workspace(up.workspace_directory)
    assert [problem.kind for problem in report.problems] == ["hash"]
    assert up.output().load()["n"] == 2  # recorded as a new version
    assert remove_damaged(report) == []
    assert up.complete() and up.output().load()["n"] == 2
