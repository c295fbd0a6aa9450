"""Markers of killed direct writers on another host or under a reused process id, and signed direct writes.

A run that writes its outputs straight to their paths leaves a ``direct`` marker when it is killed
(``kart_core.direct_write``). On its own host a later check undoes its writes at once; a marker of
another host (faked here by rewriting the marker's host name) is taken over by a run that holds the
task's lock once its writer stopped refreshing it, and waited for while it is fresh. With signing on,
a file written by path is signed at the commit, so it loads; a change after the commit is refused.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import luigi
import pandas as pd
import pytest
from by_path_writer import run_writer

import kart_core
from kart_core import commit_marker
from kart_core.commit_marker import Marker, host_identity, marker_path, read_marker
from kart_core.errors import DamagedOutputError, IntegrityError
from kart_core.inspect.verify import remove_damaged, verify_workspace
from kart_core.signing import HEADER_SIZE, MAGIC
from kart_core.storage import storage_for


def _writer(
    tmp_path: Path, workspace: str, mode: str, text: str = "whole", rerun: str = ""
) -> subprocess.CompletedProcess[str]:
    return run_writer(tmp_path, workspace, mode, text, rerun)


def _marker_file(tmp_path: Path, workspace: str) -> str:
    manifest = _writer(tmp_path, workspace, "marker").stdout.strip()
    return commit_marker.marker_beside(manifest)


def _rewrite_marker(path: str, **changes: Any) -> Marker:
    marker = read_marker(storage_for(path), path)
    assert marker is not None and marker.kind == commit_marker.DIRECT
    changed = dataclasses.replace(marker, **changes)
    Path(path).write_bytes(changed.to_bytes())
    return changed


def _hidden(workspace: str) -> list[str]:
    return [name for name in os.listdir(Path(workspace, "dw")) if name.startswith(".")]


def _killed_rerun(tmp_path: Path, workspace: str) -> str:
    """'first' committed, then a rerun writing 'second' in place killed half way, as a kart before 2026-12-02 left it
    (the old output moved aside, named in the marker; ``by_path_writer``'s ``kill-old``)."""
    assert _writer(tmp_path, workspace, "run", "first").stdout.split() == ["['first']"]
    assert _writer(tmp_path, workspace, "kill-old", "second", "rerun").returncode == -signal.SIGKILL
    marker = _marker_file(tmp_path, workspace)
    assert os.path.exists(marker) and len(_hidden(workspace)) == 1  # the old output, moved aside
    return marker


def test_a_marker_under_a_reused_process_id_is_undone(tmp_path: Path, workspace: str) -> None:
    """The writer's process id now names another live process (started at another time): the writer is gone."""
    marker = _killed_rerun(tmp_path, workspace)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        _rewrite_marker(marker, pid=other.pid, started=1)
        assert _writer(tmp_path, workspace, "check").stdout.split() == ["False", "None"]  # this check undoes it
        assert _writer(tmp_path, workspace, "check").stdout.split() == ["True", "['first']"]
    finally:
        other.kill()
        other.wait()
    assert not os.path.exists(marker) and _hidden(workspace) == []


def test_a_stale_marker_of_another_host_is_taken_over_by_a_rerun(
    tmp_path: Path, workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = _killed_rerun(tmp_path, workspace)
    # Stale once the run here has seen it unchanged for the lease (the time it carries does not count).
    monkeypatch.setenv(commit_marker.LEASE_VARIABLE, "0.5")
    _rewrite_marker(marker, host="elsewhere.example", written=time.time() - 10 * commit_marker.DIRECT_LEASE_SECONDS)
    # A reader here cannot tell whether the writer there still runs: the task is not complete.
    assert _writer(tmp_path, workspace, "check").stdout.split() == ["False", "None"]
    assert os.path.exists(marker)
    taken = _writer(tmp_path, workspace, "run", "third", "rerun")
    assert taken.stdout.split() == ["['third']"]
    assert "elsewhere.example" in taken.stderr and "takes over" in taken.stderr
    assert _hidden(workspace) == []  # the old output moved aside there was put back, then replaced
    assert not os.path.exists(marker)
    assert verify_workspace(workspace).ok


def test_a_failed_takeover_puts_the_old_output_back(
    tmp_path: Path, workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = _killed_rerun(tmp_path, workspace)
    monkeypatch.setenv(commit_marker.LEASE_VARIABLE, "0.5")
    _rewrite_marker(marker, host="elsewhere.example", written=time.time() - 10 * commit_marker.DIRECT_LEASE_SECONDS)
    assert _writer(tmp_path, workspace, "fail", "third", "rerun").stdout.split() == ["failed", "GokartBuildError"]
    assert _writer(tmp_path, workspace, "check").stdout.split() == ["True", "['first']"]
    assert _hidden(workspace) == [] and not os.path.exists(marker)


class DwForeign(kart_core.TaskOnKart[Any]):
    text = luigi.Parameter(default="mine", significant=False)

    def output(self) -> Any:
        return self.make_target("dw/foreign.txt")

    def run(self) -> None:
        path = self.output().path()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Path(path).write_text(str(self.text))


def test_a_fresh_marker_of_another_host_is_waited_for(
    workspace: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A writer on another host that refreshes its marker may still write: the run waits until the lease runs out."""
    assert kart_core.build(DwForeign(text="first", workspace_directory=workspace)) == ["first"]
    record = DwForeign(workspace_directory=workspace).output().record
    path = marker_path(record)
    foreign = Marker("0" * 32, "elsewhere.example", 4242, time.time(), commit_marker.DIRECT, ())
    Path(path).write_bytes(foreign.to_bytes())
    monkeypatch.setattr(commit_marker, "DIRECT_LEASE_SECONDS", 1.0)
    with caplog.at_level(logging.INFO):
        assert kart_core.build(DwForeign(text="second", rerun=True, workspace_directory=workspace)) == ["second"]
    messages = [record.getMessage() for record in caplog.records]
    waited = [m for m in messages if "elsewhere.example is writing" in m and "waits" in m]
    taken = [m for m in messages if "elsewhere.example" in m and "takes over" in m]
    assert len(waited) == 1 and len(taken) == 1
    assert messages.index(waited[0]) < messages.index(taken[0])
    assert not os.path.exists(path)


class DwSigned(kart_core.TaskOnKart[Any]):
    rows = luigi.IntParameter(default=3, significant=False)

    def output(self) -> Any:
        return self.make_target("dw/signed.csv")

    def run(self) -> None:
        path = self.output().path()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        pd.DataFrame({"x": list(range(1, self.rows + 1))}).to_csv(path, index=False)


def test_with_signing_on_a_direct_write_is_signed_at_the_commit(
    workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KART_SIGNING_KEY", "a test key of some length")
    assert kart_core.build(DwSigned(workspace_directory=workspace)).x.sum() == 6
    task = DwSigned(workspace_directory=workspace)
    data = Path(task.output().path()).read_bytes()
    assert data.startswith(MAGIC) and data[HEADER_SIZE:].decode().splitlines() == ["x", "1", "2", "3"]
    assert task.complete() and task.output().load().x.sum() == 6
    assert verify_workspace(workspace).ok
    # A rerun that writes by path is signed as well (the old output moved aside, then replaced).
    assert kart_core.build(DwSigned(rows=4, rerun=True, workspace_directory=workspace)).x.sum() == 10
    assert DwSigned(workspace_directory=workspace).output().load().x.sum() == 10
    # Changed after the commit (same size): refused.
    tampered = bytearray(Path(task.output().path()).read_bytes())
    tampered[-2:-1] = b"5"
    Path(task.output().path()).write_bytes(bytes(tampered))
    with pytest.raises(IntegrityError, match="signature does not match"):
        DwSigned(workspace_directory=workspace).output().load()
    assert not verify_workspace(workspace).ok


class DwSlow(kart_core.TaskOnKart[Any]):
    """Writes by path, then waits (up to 30 s) until its own marker has been rewritten."""

    def output(self) -> Any:
        return self.make_target("dw/slow.txt")

    def run(self) -> None:
        path = self.output().path()
        marker = marker_path(self.output().record)
        first = read_marker(storage_for(marker), marker)
        assert first is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = read_marker(storage_for(marker), marker)
            if now is not None and now.written > first.written:
                break
            time.sleep(0.02)
        else:
            raise AssertionError("the marker was not refreshed while the run lasted")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Path(path).write_text("slow")


def test_a_running_writer_refreshes_its_marker(workspace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """So that another host does not take a long run for a dead one (commit_marker.stale)."""
    monkeypatch.setattr(commit_marker, "DIRECT_LEASE_SECONDS", 0.3)
    task = DwSlow(workspace_directory=workspace)
    assert kart_core.build(task) == ["slow"]
    assert not os.path.exists(marker_path(task.output().record))


def test_a_load_does_not_adopt_a_file_a_run_is_writing_by_path(workspace: str) -> None:
    """A same-size file newer than the commit is taken for a new version, unless a run is writing it by path."""
    assert kart_core.build(DwForeign(text="first", workspace_directory=workspace)) == ["first"]
    task = DwForeign(workspace_directory=workspace)
    path = marker_path(task.output().record)
    writing = Marker("0" * 32, host_identity(), os.getpid(), time.time(), commit_marker.DIRECT, ())
    Path(path).write_bytes(writing.to_bytes())
    time.sleep(0.01)  # a later modification time than the manifest's
    assert Path(task.output().path()).read_text() == "first"
    Path(task.output().path()).write_text("secon")  # same size: half of a longer output, say
    with pytest.raises(DamagedOutputError, match="is being rewritten") as raised:
        task.output().load()
    assert raised.value.kind == "commit"
    os.remove(path)
    assert task.output().load() == ["secon"]  # no run writing it: a new version written outside kart


def test_with_signing_on_and_records_off_a_direct_write_is_signed_too(
    workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KART_SIGNING_KEY", "a test key of some length")
    monkeypatch.setenv("KART_INTEGRITY_RECORD", "0")
    assert kart_core.build(DwSigned(workspace_directory=workspace)).x.sum() == 6
    task = DwSigned(workspace_directory=workspace)
    assert Path(task.output().path()).read_bytes().startswith(MAGIC)
    assert task.output().load().x.sum() == 6
    tampered = bytearray(Path(task.output().path()).read_bytes())
    tampered[-2:-1] = b"5"
    Path(task.output().path()).write_bytes(bytes(tampered))
    with pytest.raises(IntegrityError, match="signature does not match"):
        DwSigned(workspace_directory=workspace).output().load()


class DwNested(kart_core.TaskOnKart[Any]):
    """Builds itself (committing) inside its run() before asking for its path: that commit lands while it runs."""

    inner = luigi.BoolParameter(default=False, significant=False)
    swallow = luigi.BoolParameter(default=False, significant=False)

    def output(self) -> Any:
        return self.make_target("dw/nested.txt")

    def run(self) -> None:
        if not self.inner:
            kart_core.build(DwNested(inner=True, workspace_directory=self.workspace_directory), log_level=40)
        try:
            path = self.output().path()
        except Exception:
            if not self.swallow:
                raise
            path = os.path.join(str(self.workspace_directory), "elsewhere.txt")  # the task's code carries on
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Path(path).write_text("inner" if self.inner else "outer")


@pytest.mark.parametrize("swallow", [False, True])
def test_a_run_that_finds_another_commit_at_its_path_request_stops_and_keeps_it(workspace: str, swallow: bool) -> None:
    """Also when the task's code catches the signal (a broad ``except Exception``) and goes on."""
    assert kart_core.build(DwNested(swallow=swallow, workspace_directory=workspace)) == ["inner"]
    task = DwNested(workspace_directory=workspace)
    assert task.complete() and task.output().load() == ["inner"]
    assert not os.path.exists(marker_path(task.output().record)) and _hidden(workspace) == []
    assert verify_workspace(workspace).ok


def _output_text(workspace: str) -> str:
    (found,) = Path(workspace, "dw").glob("out_*.txt")
    return found.read_text()


@pytest.mark.parametrize("how", ["copy", "takeover"])
def test_a_copied_workspace_undoes_its_own_killed_writer_never_the_originals(
    tmp_path: Path, workspace: str, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Failed before: the marker named absolute paths, so the copy's check (or a rerun's takeover) put the
    original workspace's old output back and left the copy's partial file in place."""
    _killed_rerun(tmp_path, workspace)
    copy = str(tmp_path / "elsewhere" / "copy")
    shutil.copytree(workspace, copy)
    if how == "takeover":
        monkeypatch.setenv(commit_marker.LEASE_VARIABLE, "0.5")  # taken over after the lease seen unchanged
        _rewrite_marker(_marker_file(tmp_path, copy), host="gone.example", written=0.0)
        assert _writer(tmp_path, copy, "run", "third", "rerun").stdout.split() == ["['third']"]
    else:
        assert _writer(tmp_path, copy, "check").stdout.split() == ["False", "None"]  # this check undoes it
        assert _writer(tmp_path, copy, "check").stdout.split() == ["True", "['first']"]
    assert _hidden(copy) == [] and verify_workspace(copy).ok
    assert _output_text(workspace) == "se" and len(_hidden(workspace)) == 1  # the original: untouched
    assert os.path.exists(_marker_file(tmp_path, workspace))


@pytest.mark.parametrize("resolver", ["complete", "verify --delete"])
def test_a_marker_naming_a_path_outside_the_workspace_never_touches_it(
    tmp_path: Path, workspace: str, resolver: str
) -> None:
    """Failed before: a direct marker put into a (shared) workspace by hand, naming a folder elsewhere and a
    dead process of this host, made the next complete() (or `kart verify --delete`) delete that folder."""
    assert _writer(tmp_path, workspace, "run", "first").stdout.split() == ["['first']"]
    victim = tmp_path / "precious"
    victim.mkdir()
    (victim / "data.txt").write_text("keep me")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    planted = Marker(
        "0" * 32,
        host_identity(),
        int(gone.stdout),
        time.time(),
        commit_marker.DIRECT,
        ((str(victim), None), ("../precious", None)),  # absolute, and relative climbing out of the workspace
    )
    marker = _marker_file(tmp_path, workspace)
    Path(marker).write_bytes(planted.to_bytes())

    if resolver == "complete":
        checked = _writer(tmp_path, workspace, "check")
        assert checked.stdout.split() == ["False", "None"]  # refused: damaged metadata, the task runs again
        assert "ignoring the marker" in checked.stderr and marker in checked.stderr
        assert "not an output of the task" in checked.stderr
    else:
        (problem,) = verify_workspace(workspace).problems
        assert problem.kind == "commit" and problem.direct_write and "refused" in problem.detail
        assert remove_damaged(verify_workspace(workspace)) == []  # nothing it names is touched
    assert (victim / "data.txt").read_text() == "keep me"
    assert os.path.exists(marker)  # until a run of the task commits
    assert _writer(tmp_path, workspace, "run", "second", "rerun").stdout.split() == ["['second']"]
    assert not os.path.exists(marker) and (victim / "data.txt").read_text() == "keep me"
    assert _writer(tmp_path, workspace, "check").stdout.split() == ["True", "['second']"]
