"""A signed workspace moved or copied to another path (or bucket prefix) verifies and loads in full.

Every file a task writes is signed under its workspace-relative name (``kart_core.signing``): outputs,
run logs, manifests, and the outputs of a task that keeps no integrity record. A run log signed by an
older kart under its full path still loads where it was written and is refused, saying why, elsewhere.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import luigi
import pytest

import kart_core as gokart
from kart_core.errors import IntegrityError
from kart_core.inspect.runlogs import read_runs
from kart_core.inspect.verify import verify_workspace
from kart_core.runlog import stored_params
from kart_core.runlog_reader import load_log_value, read_log_safely
from kart_core.signing import ENVIRONMENT_VARIABLE as SIGNING_KEY
from kart_core.signing import MOVED_ADVICE
from kart_core.storage import storage_for
from kart_core.target import make_target
from kart_core.workspace import (
    MODULE_VERSIONS,
    PROCESSING_TIME,
    RANDOM_SEED,
    TASK_LOG,
    TASK_PARAMS,
    join_url,
    list_files,
    log_task_path,
)


class MovedUp(gokart.TaskOnKart[int]):
    x = luigi.IntParameter()

    def output(self) -> gokart.TargetOnKart:
        return self.make_target("up/value.pkl")

    def run(self) -> None:
        self.task_log["note"] = "from up"
        self.dump(self.x)


class MovedBare(gokart.TaskOnKart[int]):
    """Keeps no run logs and so no integrity record: its output's signature binds its name alone."""

    x = luigi.IntParameter()
    should_dump_supplementary_log_files = False

    def output(self) -> gokart.TargetOnKart:
        return self.make_target("bare/value.pkl")

    def run(self) -> None:
        self.dump(self.x * 10)


class MovedDown(gokart.TaskOnKart[int]):
    x = luigi.IntParameter()

    def requires(self) -> dict[str, gokart.TaskOnKart[int]]:
        return {
            "up": MovedUp(x=self.x, workspace_directory=self.workspace_directory),
            "bare": MovedBare(x=self.x, workspace_directory=self.workspace_directory),
        }

    def output(self) -> gokart.TargetOnKart:
        return self.make_target("down/value.pkl")

    def run(self) -> None:
        self.dump(self.load("up") + self.load("bare"))


@pytest.fixture(params=["local", "s3"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the workspaces live: a local folder, or a prefix in a bucket of the moto S3 server."""
    if request.param == "local":
        return str(tmp_path)
    return f"s3://{request.getfixturevalue('s3_bucket')}"


def _copy_workspace(source: str, target: str) -> None:
    """Copy every file of the workspace ``source`` to the same relative path under ``target``."""
    for entry in list_files(source):
        destination = join_url(target, entry.relative)
        with storage_for(entry.path).open_read(entry.path) as file:
            data = file.read()
        with storage_for(destination).atomic_write(destination) as file:
            file.write(data)


def _read(path: str) -> bytes:
    with storage_for(path).open_read(path) as file:
        return bytes(file.read())


def _write(path: str, data: bytes) -> None:
    with storage_for(path).atomic_write(path) as file:
        file.write(data)


def _build(task: MovedDown, runner: str) -> None:
    if runner == "luigi":
        assert luigi.build([task], local_scheduler=True, workers=2)
    else:
        gokart.build(task, reset_register=False, workers=2, executor="process", return_value=False)


@pytest.mark.parametrize("runner", ["process-workers", "luigi"])
def test_a_copied_signed_workspace_loads_and_verifies_in_full(
    place: str, runner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Failed before: every run log (and the output of a task without a record) was signed with its full path."""
    monkeypatch.setenv(SIGNING_KEY, "a secret")
    built = MovedDown(x=2, workspace_directory=join_url(place, "built"))
    _build(built, runner)  # written by worker processes (or luigi's workers)
    moved = join_url(place, "elsewhere/copy")
    _copy_workspace(built.workspace_directory, moved)

    down = MovedDown(x=2, workspace_directory=moved)
    up, bare = down.requires()["up"], down.requires()["bare"]
    assert down.complete()
    assert gokart.build(down, reset_register=False) == 22  # cached: loaded from the copy
    assert bare.output().load() == 20
    assert up.get_task_log()["note"] == "from up"  # read from the copy's task_log run log
    assert up.get_task_params() == {"x": "2"} and down.get_task_params() == {"x": "2"}
    assert isinstance(down.get_processing_time(), float)
    assert stored_params(moved, "MovedUp", up.make_unique_id()) == {"x": "2"}
    for kind in (TASK_PARAMS, RANDOM_SEED, PROCESSING_TIME, TASK_LOG, MODULE_VERSIONS):
        assert read_log_safely(log_task_path(down, kind), None) is not None, kind
    report = verify_workspace(moved)
    assert report.ok and not report.problems and report.runlogs == 10 and report.unrecorded == 1
    runs = read_runs(moved)  # `kart runs`
    assert sorted((run.class_name, run.status) for run in runs) == [("MovedDown", "complete"), ("MovedUp", "complete")]

    # Another name inside the workspace: still refused.
    _write(log_task_path(down, TASK_PARAMS), _read(log_task_path(up, TASK_PARAMS)))
    with pytest.raises(IntegrityError, match="signature does not match"):
        load_log_value(log_task_path(down, TASK_PARAMS))
    (problem,) = verify_workspace(moved).problems
    assert (problem.kind, problem.path) == ("runlog", log_task_path(down, TASK_PARAMS))


def test_a_moved_local_workspace_loads_its_run_logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rename, and the moved workspace read through a symlink of another spelling."""
    monkeypatch.setenv(SIGNING_KEY, "a secret")
    gokart.build(MovedDown(x=3, workspace_directory=str(tmp_path / "a")), reset_register=False)
    os.rename(tmp_path / "a", tmp_path / "b")
    os.symlink(tmp_path / "b", tmp_path / "link")
    for spelling in (str(tmp_path / "b"), f"{tmp_path}/link/../link/"):
        up = MovedUp(x=3, workspace_directory=spelling)
        assert load_log_value(log_task_path(up, TASK_LOG))["note"] == "from up"
        assert verify_workspace(spelling).ok
    assert gokart.build(MovedDown(x=3, workspace_directory=str(tmp_path / "link")), reset_register=False) == 33


def _sign_as_an_older_kart(path: str, value: Any) -> None:
    """Write ``value`` as kart signed run logs before: bound to the file's full path (a bare target's name)."""
    make_target(path).dump(value)


def test_a_run_log_an_older_kart_signed_with_its_full_path_loads_in_place_and_is_refused_once_moved(
    place: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SIGNING_KEY, "a secret")
    workspace = join_url(place, "old")
    up = MovedUp(x=4, workspace_directory=workspace)
    gokart.build(up, reset_register=False)
    # task_params: written before run(), bound to no run (an older kart's task_log is also accepted only while
    # the manifest, an older kart's too, names no run's logs: kart_core.log_binding).
    log = log_task_path(up, TASK_PARAMS)
    _sign_as_an_older_kart(log, {"note": "old scheme"})
    assert load_log_value(log) == {"note": "old scheme"}  # where it was written: its full path holds
    assert verify_workspace(workspace).ok

    moved = join_url(place, "new")
    _copy_workspace(workspace, moved)
    copied = log_task_path(MovedUp(x=4, workspace_directory=moved), TASK_PARAMS)
    with pytest.raises(IntegrityError) as info:
        load_log_value(copied)
    assert MOVED_ADVICE in " ".join(str(info.value).split())
    (problem,) = verify_workspace(moved).problems
    assert problem.kind == "runlog" and "signed by an older kart with its full path" in problem.detail
    if "://" not in place:
        shutil.rmtree(workspace)  # gone from where it was written: still refused
        with pytest.raises(IntegrityError):
            load_log_value(copied)


class MovedByPath(gokart.TaskOnKart[str]):
    """Writes its output straight to its path and keeps no record: the commit signs it under its name alone."""

    should_dump_supplementary_log_files = False

    def output(self) -> gokart.TargetOnKart:
        return self.make_target("by_path/text.txt")

    def run(self) -> None:
        path = self.output().path()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as file:
            file.write("written by path")


class MovedLargeFrame(gokart.TaskOnKart[Any]):
    """A large-DataFrame zip (with an integrity record since 2026-12-01; record-less before)."""

    def output(self) -> gokart.TargetOnKart:
        return self.make_large_data_frame_target("large/frame.zip")

    def run(self) -> None:
        import pandas as pd

        self.dump(pd.DataFrame({"a": [1, 2, 3]}))


@pytest.mark.parametrize("task_class", [MovedByPath, MovedLargeFrame])
def test_record_less_outputs_of_a_moved_workspace_load(
    task_class: type[gokart.TaskOnKart[Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Failed before: a direct write without a record, and a large-DataFrame zip, were signed with their full path."""
    monkeypatch.setenv(SIGNING_KEY, "a secret")
    gokart.build(task_class(workspace_directory=str(tmp_path / "a")), reset_register=False, return_value=False)
    os.rename(tmp_path / "a", tmp_path / "b")
    loaded = task_class(workspace_directory=str(tmp_path / "b")).output().load()
    if task_class is MovedByPath:
        assert loaded == ["written by path"]
    else:
        assert loaded["a"].tolist() == [1, 2, 3]
