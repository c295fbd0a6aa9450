"""Signing against rollback: an older signed version of one file copied back over the current one.

With signing on, a file is bound to the version its task's signed manifest names: every output
(pickle, csv, large-DataFrame zip) by its commit, and the run logs a run commits with its outputs
(task_log, processing_time) by the run (``kart_core.log_binding``). An older version copied back is an
``IntegrityError`` at load and a problem of ``kart verify``; local and S3 workspaces. An output of a task
that keeps no record has nothing to be bound to (docs/faq.md says so); once the task keeps one, such an
older version copied back is refused too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import luigi
import pandas as pd
import pytest

import kart_core
from kart_core.errors import IntegrityError
from kart_core.inspect.runlogs import read_runs
from kart_core.inspect.verify import verify_workspace
from kart_core.runlog import read_log
from kart_core.signing import signer_from_config
from kart_core.storage import storage_for
from kart_core.task_targets import log_target
from kart_core.workspace import PROCESSING_TIME, TASK_LOG


@pytest.fixture(autouse=True)
def signing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KART_SIGNING_KEY", "a rollback test key")


class Versioned(kart_core.TaskOnKart[Any]):
    """Dumps its (insignificant) version ``v`` as a pickle or a one-row csv, and logs it."""

    fmt = luigi.Parameter(default="pkl")
    v = luigi.IntParameter(default=1, significant=False)

    def output(self) -> Any:
        return self.make_target(f"rollback/versioned.{self.fmt}")

    def run(self) -> None:
        self.task_log["v"] = self.v
        self.dump(pd.DataFrame({"v": [self.v]}) if self.fmt == "csv" else self.v)


class BigVersioned(kart_core.TaskOnKart[Any]):
    """Dumps its version into a large-DataFrame zip."""

    v = luigi.IntParameter(default=1, significant=False)

    def output(self) -> Any:
        return self.make_large_data_frame_target("rollback/big.zip")

    def run(self) -> None:
        self.dump(pd.DataFrame({"v": [self.v]}))


def _read(path: str) -> bytes:
    return storage_for(path).read_bytes(path)


def _put(path: str, data: bytes) -> None:
    with storage_for(path).atomic_write(path) as file:
        file.write(data)


def _roll_back(make: Callable[..., kart_core.TaskOnKart[Any]], path_of: Callable[[Any], str], **first: Any) -> Any:
    """Build version 1 (``first`` its extra parameters), keep the file at ``path_of``, rerun as version 2
    and copy version 1's file back over it; return the task."""
    kart_core.build(make(v=1, **first), reset_register=False, return_value=False)
    task = make(v=2, rerun=True)
    old = _read(path_of(task))
    kart_core.build(task, reset_register=False, return_value=False)
    assert _read(path_of(task)) != old
    _put(path_of(task), old)
    return make(v=2)


def _run_statuses(workspace: str) -> list[str]:
    return [record.status for record in read_runs(workspace)]


def _problems(workspace: str) -> list[tuple[str, str]]:
    report = verify_workspace(workspace, signer=signer_from_config())
    return [(problem.kind, problem.path) for problem in report.problems]


@pytest.mark.parametrize("fmt", ["pkl", "csv"])
def test_an_older_task_log_copied_back_is_refused(any_workspace: str, fmt: str) -> None:
    first = Versioned(fmt=fmt, workspace_directory=any_workspace)
    kart_core.build(first, reset_register=False, return_value=False)
    log = log_target(first, TASK_LOG).path()
    old = _read(log)
    task = Versioned(fmt=fmt, v=2, rerun=True, workspace_directory=any_workspace)
    kart_core.build(task, reset_register=False, return_value=False)
    task.output().dump(pd.DataFrame({"v": [3]}) if fmt == "csv" else 3)  # outside a run: a new manifest commit
    assert read_log(first, TASK_LOG, None)["v"] == 2  # the current run's log still loads
    assert _problems(any_workspace) == []
    assert _run_statuses(any_workspace) == ["complete"]

    _put(log, old)

    with pytest.raises(
        IntegrityError,
        match=r"task_log run log of Versioned\[\w{8}\] .*: it is signed as run \w{32}, but its task's manifest .* "
        r"names run \w{32} as the one whose run logs are current \(an older version copied back",
    ):
        read_log(first, TASK_LOG, None)
    assert _problems(any_workspace) == [("runlog", log)]
    assert _run_statuses(any_workspace) == ["refused"]  # `kart runs`: what a load does with it


def test_kart_runs_shows_a_run_whose_processing_time_log_is_an_older_copy_as_refused(any_workspace: str) -> None:
    # attacker at4 B6: it showed as complete, with a "skipping unreadable run log" warning
    first = Versioned(workspace_directory=any_workspace)
    kart_core.build(first, reset_register=False, return_value=False)
    log = log_target(first, PROCESSING_TIME).path()
    old = _read(log)
    kart_core.build(Versioned(v=2, rerun=True, workspace_directory=any_workspace), reset_register=False)
    assert _run_statuses(any_workspace) == ["complete"]
    _put(log, old)
    assert _problems(any_workspace) == [("runlog", log)]
    assert _run_statuses(any_workspace) == ["refused"]


def test_an_older_large_data_frame_zip_copied_back_is_refused(any_workspace: str) -> None:
    task = _roll_back(lambda **p: BigVersioned(workspace_directory=any_workspace, **p), lambda t: t.output().path())
    with pytest.raises(IntegrityError, match="older version copied back"):
        task.output().load()
    assert [path for _, path in _problems(any_workspace)] == [task.output().path()]  # kart verify lists it


@pytest.mark.parametrize("fmt", ["pkl", "csv"])
def test_an_older_version_written_while_the_task_kept_no_record_copied_back_is_refused(
    any_workspace: str, fmt: str
) -> None:
    task = _roll_back(
        lambda **p: Versioned(fmt=fmt, workspace_directory=any_workspace, **p),
        lambda t: t.output().path(),
        should_dump_supplementary_log_files=False,
    )
    with pytest.raises(
        IntegrityError, match=r"it is signed without a commit, but the task's manifest .* records commit"
    ):
        task.output().load()
