"""Outputs written straight to their paths count as complete only when their run committed (kart_core.direct_write).

gokart code writes outputs by path (``open(self.output().path(), "w")``, ``df.to_csv(path)``,
``model.save(path)``). A run that raises, a rerun that fails and a process killed mid-write must not
leave a file that a later build serves as cached; a successful one gets its integrity record.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import subprocess
from pathlib import Path
from typing import Any, Literal

import luigi
import pandas as pd
import pytest
from by_path_writer import run_writer

import kart_core
from kart_core.commit_marker import marker_path
from kart_core.errors import DamagedOutputError, GokartBuildError
from kart_core.inspect.verify import verify_workspace
from kart_core.manifest import read_unverified
from kart_core.storage import storage_for
from kart_core.workspace import MANIFEST, list_files, log_task_path


class DwCsv(kart_core.TaskOnKart[Any]):
    """Writes a csv by path with pandas; ``fail`` raises after the file is written."""

    rows = luigi.IntParameter(default=3, significant=False)
    fail = luigi.BoolParameter(default=False, significant=False)

    def output(self) -> Any:
        return self.make_target("dw/table.csv")

    def run(self) -> None:
        path = self.output().path()
        frame = pd.DataFrame({"x": list(range(1, self.rows + 1))})
        if "://" in path:  # through the file system kart uses (its endpoint), as s3fs would with the user's config
            with storage_for(path).file_system.open(path, "w") as file:  # type: ignore[attr-defined]
                frame.to_csv(file, index=False)
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            frame.to_csv(path, index=False)
        if self.fail:
            raise RuntimeError("fails after writing")


class DwPickle(kart_core.TaskOnKart[Any]):
    """Writes a pickle by path, part of it before failing."""

    fail = luigi.BoolParameter(default=False, significant=False)

    def output(self) -> Any:
        return self.make_target("dw/value.pkl")

    def run(self) -> None:
        path = self.output().path()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        data = pickle.dumps(list(range(1000)))
        with open(path, "wb") as file:
            file.write(data[:100])
            if self.fail:
                raise RuntimeError("half way")
            file.write(data[100:])


class DwFolder(kart_core.TaskOnKart[Any]):
    """Saves a 'model' into a folder at its output's path, then fails."""

    def output(self) -> Any:
        return self.make_target("dw/model.pkl")

    def run(self) -> None:
        folder = self.output().path()
        os.makedirs(folder)
        Path(folder, "weights.bin").write_bytes(b"w" * 10)
        raise RuntimeError("fails after saving")


class DwSum(kart_core.TaskOnKart[Any]):
    upstream = kart_core.TaskInstanceParameter()

    def run(self) -> None:
        self.dump(int(self.load("upstream")["x"].sum()))


class DwDumpOnly(kart_core.TaskOnKart[Any]):
    def run(self) -> None:
        self.dump(1)


def _marker(task: kart_core.TaskOnKart[Any]) -> str:
    return marker_path(task.output().record)


@pytest.mark.parametrize(("workers", "executor"), [(1, "thread"), (2, "process")])
def test_a_failed_run_leaves_no_file_written_by_path(
    workspace: str, workers: int, executor: Literal["thread", "process"]
) -> None:
    failing = DwCsv(fail=True, workspace_directory=workspace)
    with pytest.raises(GokartBuildError, match="fails after writing"):
        kart_core.build(DwSum(upstream=failing, workspace_directory=workspace), workers=workers, executor=executor)
    assert not os.path.exists(failing.output().path())
    assert not failing.complete()
    assert not os.path.exists(_marker(failing))
    luigi.task_register.Register.clear_instance_cache()  # DwSum's id ignores the upstream's fail flag
    good = DwCsv(workspace_directory=workspace)
    assert kart_core.build(DwSum(upstream=good, workspace_directory=workspace), workers=workers, executor=executor) == 6


def test_the_removal_is_logged_with_the_task_and_the_file(workspace: str, caplog: pytest.LogCaptureFixture) -> None:
    failing = DwPickle(fail=True, workspace_directory=workspace)
    with caplog.at_level(logging.WARNING), pytest.raises(GokartBuildError):
        kart_core.build(failing)
    (message,) = [r.getMessage() for r in caplog.records if "what it wrote for its output" in r.getMessage()]
    assert failing.kart_label() in message and repr(failing.output().path()) in message and ".kart-took-" in message
    assert not os.path.exists(failing.output().path())


def test_a_folder_saved_at_the_output_path_is_removed_too(workspace: str) -> None:
    task = DwFolder(workspace_directory=workspace)
    with pytest.raises(GokartBuildError, match="fails after saving"):
        kart_core.build(task)
    assert not os.path.exists(task.output().path())
    assert not task.complete()


def test_a_direct_write_gets_its_integrity_record(workspace: str) -> None:
    task = DwPickle(workspace_directory=workspace)
    assert kart_core.build(task) == list(range(1000))
    manifest = read_unverified(storage_for(log_task_path(task, MANIFEST)), log_task_path(task, MANIFEST))
    assert manifest is not None
    (entry,) = manifest.outputs.values()
    assert entry.size == os.path.getsize(task.output().path())
    with open(task.output().path(), "r+b") as file:
        file.truncate(50)
    with pytest.raises(DamagedOutputError):
        DwPickle(workspace_directory=workspace).output().load()


def test_a_failed_rerun_keeps_the_old_output(workspace: str) -> None:
    assert kart_core.build(DwCsv(rows=3, workspace_directory=workspace)).x.sum() == 6
    with pytest.raises(GokartBuildError, match="fails after writing"):
        kart_core.build(DwCsv(rows=2, fail=True, rerun=True, workspace_directory=workspace))
    task = DwCsv(workspace_directory=workspace)
    assert task.complete()
    assert task.output().load().x.sum() == 6  # the old output, its record intact
    assert [name for name in os.listdir(os.path.dirname(task.output().path())) if name.startswith(".")] == []
    assert kart_core.build(DwCsv(rows=4, rerun=True, workspace_directory=workspace)).x.sum() == 10
    assert DwCsv(workspace_directory=workspace).output().load().x.sum() == 10


def test_on_object_storage_a_failed_run_leaves_no_file(s3_bucket: str) -> None:
    workspace = f"s3://{s3_bucket}/ws"
    failing = DwCsv(fail=True, workspace_directory=workspace)
    with pytest.raises(GokartBuildError, match="fails after writing"):
        kart_core.build(failing)
    assert not storage_for(workspace).exists(failing.output().path())
    assert kart_core.build(DwCsv(workspace_directory=workspace)).x.sum() == 6
    with pytest.raises(GokartBuildError):
        kart_core.build(DwCsv(fail=True, rerun=True, workspace_directory=workspace))
    # The failed rerun wrote its private object only: the committed output is untouched, and nothing else is left.
    task = DwCsv(workspace_directory=workspace)
    assert task.complete() and task.output().load().x.sum() == 6
    folder = task.output().path().rpartition("/")[0]
    assert [name for name in storage_for(folder).file_system.ls(folder, refresh=True) if ".kart-took-" in name] == []  # type: ignore[attr-defined]


def test_on_object_storage_a_rerun_in_the_same_second_with_the_same_bytes_commits(s3_bucket: str) -> None:
    """S3 times have one-second steps: the rerun's file looked unwritten ("finished without writing")."""
    workspace = f"s3://{s3_bucket}/ws"
    for attempt in range(3):  # at least one rerun lands in its first run's second
        task = DwCsv(workspace_directory=f"{workspace}{attempt}")
        assert kart_core.build(task).x.sum() == 6
        assert kart_core.build(DwCsv(rerun=True, workspace_directory=f"{workspace}{attempt}")).x.sum() == 6
        assert task.complete() and verify_workspace(f"{workspace}{attempt}").ok


def test_a_task_that_only_dumps_writes_no_marker(workspace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from kart_core import commit_marker

    calls: list[object] = []
    monkeypatch.setattr(commit_marker, "put_direct", lambda *args: calls.append(args))
    assert kart_core.build(DwDumpOnly(workspace_directory=workspace)) == 1
    assert calls == []


def _killed(
    tmp_path: Path, workspace: str, mode: str, text: str = "whole", rerun: str = "", cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return run_writer(tmp_path, workspace, mode, text, rerun, cwd)


def test_a_kill_mid_write_does_not_count_as_complete(tmp_path: Path, workspace: str) -> None:
    killed = _killed(tmp_path, workspace, "kill")
    assert killed.returncode == -signal.SIGKILL
    assert _killed(tmp_path, workspace, "check").stdout.split() == ["False", "None"]
    assert _killed(tmp_path, workspace, "run").stdout.split() == ["['whole']"]
    assert _killed(tmp_path, workspace, "check").stdout.split() == ["True", "['whole']"]


def test_a_kill_mid_rerun_with_a_relative_workspace_is_undone_from_another_directory(tmp_path: Path) -> None:
    # The marker held the paths as the writer saw them (./ws/dw/…): a check from another working directory
    # found none of them, removed the marker and left the partial file, which then counted as complete.
    writer, checker = tmp_path / "writer", tmp_path / "elsewhere"
    writer.mkdir()
    checker.mkdir()
    assert _killed(tmp_path, "./ws", "run", "first", cwd=writer).stdout.split() == ["['first']"]
    assert _killed(tmp_path, "./ws", "kill", "second", "rerun", cwd=writer).returncode == -signal.SIGKILL
    assert _killed(tmp_path, "../writer/ws", "check", cwd=checker).stdout.split() == ["False", "None"]
    assert _killed(tmp_path, str(writer / "ws"), "check", cwd=checker).stdout.split() == ["True", "['first']"]
    assert not list((writer / "ws" / "dw").glob("*.kart-tmp"))


@pytest.mark.parametrize("kill", ["kill", "kill-old"])  # kill-old: in place, as a kart before 2026-12-02 wrote it
def test_a_kill_mid_rerun_puts_the_old_output_back(tmp_path: Path, workspace: str, kill: str) -> None:
    assert _killed(tmp_path, workspace, "run", "first").stdout.split() == ["['first']"]
    assert _killed(tmp_path, workspace, kill, "second", "rerun").returncode == -signal.SIGKILL
    assert _killed(tmp_path, workspace, "check").stdout.split() == ["False", "None"]  # this check puts it back
    assert _killed(tmp_path, workspace, "check").stdout.split() == ["True", "['first']"]


def test_a_kill_mid_rerun_leaves_the_output_s_path_as_it_was(tmp_path: Path, workspace: str) -> None:
    """The run wrote its private file only: the committed output stays readable at its path all along, the private
    file is hidden from listings (``kart gc`` sweeps it). Before: the old output was moved aside and the partial
    ``se`` was at the path until a check on this host put it back."""
    assert _killed(tmp_path, workspace, "run", "first").stdout.split() == ["['first']"]
    assert _killed(tmp_path, workspace, "kill", "second", "rerun").returncode == -signal.SIGKILL
    folder = Path(workspace, "dw")
    (output,) = folder.glob("out_*.txt")
    assert output.read_text() == "first"
    (private,) = [name for name in os.listdir(folder) if name.startswith(".kart-took-")]
    assert private.endswith(output.name) and (folder / private).read_text() == "se"
    assert [entry.relative for entry in list_files(workspace) if "kart-took" in entry.relative] == []
    assert _killed(tmp_path, workspace, "check").stdout.split() == ["False", "None"]  # the killed run's marker goes
    assert _killed(tmp_path, workspace, "check").stdout.split() == ["True", "['first']"]
    assert output.read_text() == "first"
