"""`kart verify` beyond the integrity records: run logs a load refuses (kind "runlog"), a killed run that
wrote its outputs straight to their paths (kind "commit" at its ``direct`` marker), and `kart runs --class`
naming a class that does not exist (AT4)."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import luigi
import pytest
from by_path_writer import run_writer
from click.testing import CliRunner

import kart_core as gokart
from kart_core.cli import DAMAGE_FOUND, cli
from kart_core.commit_marker import DIRECT, Marker, host_identity, marker_beside
from kart_core.errors import IntegrityError
from kart_core.inspect.verify import remove_damaged, verify_workspace
from kart_core.signing import ENVIRONMENT_VARIABLE as SIGNING_KEY
from kart_core.storage import storage_for
from kart_core.target import TargetOnKart
from kart_core.workspace import MANIFEST, PROCESSING_TIME, TASK_LOG, TASK_PARAMS, LogKind, log_task_path


class _Planted:
    """Unpickling this calls os.system: a run log an attacker put into a shared workspace."""

    def __init__(self, witness: Path) -> None:
        self.witness = witness

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"echo ran >> {self.witness}",))


class LoggedTask(gokart.TaskOnKart[int]):
    x = luigi.IntParameter()

    def output(self) -> TargetOnKart:
        return self.make_target("logged/value.pkl")

    def run(self) -> None:
        self.dump(self.x)


@pytest.fixture(params=["local", "s3"])
def any_workspace(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A workspace on local disk and on a moto S3 server."""
    if request.param == "local":
        return str(tmp_path / "ws")
    return f"s3://{request.getfixturevalue('s3_bucket')}/resources"


@pytest.fixture
def planted(tmp_path: Path) -> Iterator[bytes]:
    """A pickle that runs a shell command when loaded; the test fails if it ever ran."""
    witness = tmp_path / "planted-ran.txt"
    yield pickle.dumps(_Planted(witness))
    assert not witness.exists(), "a planted run log was unpickled"


def _write(path: str, data: bytes) -> None:
    with storage_for(path).atomic_write(path) as file:
        file.write(data)


def _read(path: str) -> bytes:
    with storage_for(path).open_read(path) as file:
        return file.read()


def _label(task: gokart.TaskOnKart[int]) -> str:
    return f"LoggedTask[{task.make_unique_id()[:8]}]"


# --- run logs ------------------------------------------------------------------------------------

REPLACED = (TASK_LOG, PROCESSING_TIME, TASK_PARAMS)


def test_with_signing_planted_run_logs_are_reported_never_loaded_and_deleted(
    any_workspace: str, monkeypatch: pytest.MonkeyPatch, planted: bytes
) -> None:
    monkeypatch.setenv(SIGNING_KEY, "a secret")
    task = LoggedTask(x=1, workspace_directory=any_workspace)
    gokart.build(task, reset_register=False)
    assert verify_workspace(any_workspace).ok
    logs = sorted(log_task_path(task, kind) for kind in REPLACED)
    for path in logs:
        _write(path, planted)
    with pytest.raises(IntegrityError):
        task.get_task_params()  # get_task_log() answers from memory in this process

    report = verify_workspace(any_workspace)
    assert [(p.kind, p.path, p.task) for p in report.problems] == [("runlog", path, _label(task)) for path in logs]
    assert not report.ok and report.runlogs == 5  # all five kinds are signed: each checked
    detail = next(p.detail for p in report.problems if p.path == log_task_path(task, TASK_LOG))
    assert "the task_log run log is not signed" in detail
    assert "`kart runs` shows the run as refused" in detail and "rerun=True" in detail

    assert remove_damaged(report) == logs
    assert verify_workspace(any_workspace).ok
    assert storage_for(task.output().path()).exists(task.output().path())  # the outputs stay
    assert gokart.build(task, reset_register=False) == 1


def test_with_signing_a_run_log_copied_from_another_task_is_reported(
    workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SIGNING_KEY, "a secret")
    one, two = LoggedTask(x=1, workspace_directory=workspace), LoggedTask(x=2, workspace_directory=workspace)
    gokart.build([one, two], reset_register=False)
    _write(log_task_path(two, TASK_LOG), _read(log_task_path(one, TASK_LOG)))  # signed, for another path

    (problem,) = verify_workspace(workspace).problems
    assert (problem.kind, problem.path, problem.task) == ("runlog", log_task_path(two, TASK_LOG), _label(two))
    assert "signature that does not hold for its content and name" in problem.detail


def test_without_signing_damaged_and_planted_run_logs_are_reported_never_run(
    any_workspace: str, monkeypatch: pytest.MonkeyPatch, planted: bytes
) -> None:
    monkeypatch.delenv(SIGNING_KEY, raising=False)
    task = LoggedTask(x=3, workspace_directory=any_workspace)
    gokart.build(task, reset_register=False)
    task_log = log_task_path(task, TASK_LOG)
    _write(task_log, _read(task_log)[:10])  # truncated
    _write(log_task_path(task, PROCESSING_TIME), planted)
    _write(log_task_path(task, TASK_PARAMS), pickle.dumps(["not", "a", "dict"]))

    report = verify_workspace(any_workspace)
    found = {p.path: p for p in report.problems}
    assert sorted(found) == sorted(log_task_path(task, kind) for kind in REPLACED)
    assert all(p.kind == "runlog" and p.task == _label(task) for p in found.values())
    assert "the task_log run log is damaged: it cannot be read" in found[task_log].detail
    assert "it names posix.system" in found[log_task_path(task, PROCESSING_TIME)].detail
    assert "holds a list, not what kart writes there" in found[log_task_path(task, TASK_PARAMS)].detail
    assert report.runlogs == 4 and not report.ok  # the .pkl logs; module_versions is text: nothing to check
    assert verify_workspace(any_workspace, hashes=False).runlogs == 0  # --quick reads no run log

    assert sorted(remove_damaged(report)) == sorted(found)
    assert verify_workspace(any_workspace).ok


def test_the_cli_names_a_refused_run_log_and_exits_3(workspace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SIGNING_KEY, "a secret")
    task = LoggedTask(x=4, workspace_directory=workspace)
    gokart.build(task, reset_register=False)
    path = log_task_path(task, TASK_LOG)
    _write(path, pickle.dumps({"file_path": []}))  # plain, but unsigned

    result = CliRunner().invoke(cli, ["verify", "-w", workspace])
    assert result.exit_code == DAMAGE_FOUND, result.output
    assert f"runlog  {_label(task)}  {path}: the task_log run log is not signed" in result.output
    assert "5 run log(s)" in result.output and "1 problem(s)" in result.output


@pytest.mark.parametrize("kind", [TASK_LOG, PROCESSING_TIME], ids=lambda kind: kind.name)
def test_a_damaged_run_log_of_a_task_whose_manifest_is_refused_is_not_reported_apart(
    workspace: str, monkeypatch: pytest.MonkeyPatch, kind: LogKind
) -> None:
    """Signing turned on for a workspace with outputs: one line per task (its rerun writes the logs anew)."""
    task = LoggedTask(x=5, workspace_directory=workspace)
    gokart.build(task, reset_register=False)
    damaged = log_task_path(task, kind)
    _write(damaged, _read(damaged)[:5])
    monkeypatch.setenv(SIGNING_KEY, "a secret")
    report = verify_workspace(workspace)
    assert [p.kind for p in report.problems] == ["manifest"] and report.problems[0].path == log_task_path(
        task, MANIFEST
    )
    remove_damaged(report)
    assert gokart.build(task, reset_register=False) == 5
    assert verify_workspace(workspace).ok  # the rerun wrote every log again, signed


# --- a killed run that wrote its outputs straight to their paths ---------------------------------


def _writer(tmp_path: Path, mode: str, text: str = "whole", rerun: str = "") -> subprocess.CompletedProcess[str]:
    """Run the writer in ``tmp_path`` on the workspace ``./ws/`` (relative, as the marker then records it)."""
    return run_writer(tmp_path, "./ws/", mode, text, rerun)


def _output(tmp_path: Path) -> Path:
    (found,) = (tmp_path / "ws" / "dw").glob("out_*.txt")
    return found


def test_a_killed_rerun_writing_by_path_is_an_interrupted_commit_and_delete_puts_the_old_output_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _writer(tmp_path, "run", "first").stdout.split() == ["['first']"]
    assert _writer(tmp_path, "kill-old", "second", "rerun").returncode == -signal.SIGKILL  # as before 2026-12-02
    workspace = str(tmp_path / "ws")  # another spelling than the writer's ./ws/
    assert _output(tmp_path).read_text() == "se"  # partial; the old output is moved aside

    report = verify_workspace(workspace)
    (problem,) = report.problems
    assert problem.kind == "commit" and problem.direct_write and problem.path.endswith(".committing")
    assert problem.task.startswith("ByPath[")
    assert "was killed: dw/out_" in problem.detail and "may be partial" in problem.detail
    assert "the old output(s) are kept, moved aside to" in problem.detail and ".kart-tmp" in problem.detail
    assert "puts them back" in problem.detail

    monkeypatch.chdir(tmp_path.parent)  # verify runs elsewhere than the writer did
    result = CliRunner().invoke(cli, ["verify", "-w", workspace, "--delete"])
    assert result.exit_code == DAMAGE_FOUND, result.output
    assert "(undone: the old outputs are back)" in result.output
    assert _output(tmp_path).read_text() == "first"
    assert not list((tmp_path / "ws" / "dw").glob(".*kart-tmp"))
    assert verify_workspace(workspace).ok and verify_workspace(workspace).problems == ()
    assert _writer(tmp_path, "check").stdout.split() == ["True", "['first']"]


def test_a_killed_first_run_writing_by_path_is_reported_and_delete_removes_its_partial_file(tmp_path: Path) -> None:
    assert _writer(tmp_path, "kill-old", "first").returncode == -signal.SIGKILL  # in place, as before 2026-12-02
    workspace = str(tmp_path / "ws")
    partial = str(_output(tmp_path))
    report = verify_workspace(workspace)
    (problem,) = report.problems
    assert problem.direct_write and "removes them and runs the task again" in problem.detail
    assert report.notices == ()  # not an unrecorded output "put there by hand"

    assert remove_damaged(report) == [problem.path, partial]
    assert not list((tmp_path / "ws" / "dw").glob("out_*"))
    assert _writer(tmp_path, "run", "again").stdout.split() == ["['again']"]
    assert verify_workspace(workspace).ok


def test_a_live_writer_by_path_is_reported_as_running_and_left_alone(workspace: str) -> None:
    task = LoggedTask(x=6, workspace_directory=workspace)
    gokart.build(task, reset_register=False)
    output = task.output().path()
    marker = marker_beside(log_task_path(task, MANIFEST))
    alive = Marker("0" * 32, host_identity(), os.getpid(), time.time(), DIRECT, ((output, None),))
    _write(marker, alive.to_bytes())

    report = verify_workspace(workspace)
    (problem,) = report.problems
    assert problem.direct_write and "is still running" in problem.detail
    assert remove_damaged(report) == []
    assert os.path.exists(marker) and os.path.exists(output)


# --- kart runs --class ---------------------------------------------------------------------------


def test_runs_of_a_class_that_cannot_be_imported_is_an_error(workspace: str) -> None:
    gokart.build(LoggedTask(x=7, workspace_directory=workspace), reset_register=False)
    runner = CliRunner()
    missing = runner.invoke(cli, ["runs", "-w", workspace, "--class", "no_such_module_zz.Zzz"])
    assert missing.exit_code == 1
    (line,) = missing.output.strip().splitlines()
    assert "no_such_module_zz.Zzz" in line and "no_such_module_zz" in line and "--class Zzz" in line

    no_class = runner.invoke(cli, ["runs", "-w", workspace, "--class", "kart_core.Zzz"])
    assert no_class.exit_code == 1 and "'kart_core.Zzz'" in no_class.output

    bare = runner.invoke(cli, ["runs", "-w", workspace, "--class", "Zzz"])  # nothing to import: no runs
    assert bare.exit_code == 0 and "No runs found." in bare.output
    # Runs of a class removed from the code still list under its old module name.
    gone = runner.invoke(cli, ["runs", "-w", workspace, "--class", "no_such_module_zz.LoggedTask"])
    assert gone.exit_code == 0 and "LoggedTask" in gone.output
