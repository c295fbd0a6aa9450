"""A file a run left at an output's path without finishing is never served (attacker at14 N7).

A task's code may write its output by a path it builds itself (``os.path.join(workspace, ...)``, a helper
shared with a notebook) instead of ``self.output().path()``: kart does not see that write. gokart and kart
write the ``task_params`` and ``random_seed`` logs before ``run()`` and the task log only after it succeeded,
so a file with no integrity record whose task has start-of-run logs and no task log is what a killed or failed
run left. Its load fails as damage (kind "unfinished"), and a build runs the task again.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import fork_server
import luigi
import pytest

import kart_core
from kart_core.errors import DamagedOutputError, GokartBuildError, MissingOutputError
from kart_core.storage import storage_for
from kart_core.workspace import MODULE_VERSIONS, RANDOM_SEED, TASK_LOG, TASK_PARAMS, log_relative_path

_TASKS = textwrap.dedent(
    """
    import os, sys, time
    import kart_core as gokart

    class HandWritten(gokart.TaskOnKart):
        lines = 40

        def output(self):
            return self.make_target("hp/out.csv")

        def run(self):
            # The path built by hand, not through self.output().path(): kart does not see this write.
            path = os.path.join(self.workspace_directory, "hp", f"out_{self.make_unique_id()}.csv")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as file:
                file.write("a\\n")
                for i in range(self.lines):
                    file.write(f"{i}\\n")
                    file.flush()
                    if os.environ.get("HAND_SLOW"):
                        time.sleep(0.05)
                    if os.environ.get("HAND_FAIL") and i == 5:
                        raise RuntimeError("the export broke half way")

    class CountLines(gokart.TaskOnKart):
        source = gokart.TaskInstanceParameter(default=HandWritten())

        def run(self):
            self.dump(len(self.load("source")))

    if __name__ == "__main__":
        workspace = sys.argv[1]
        root = CountLines(source=HandWritten(workspace_directory=workspace), workspace_directory=workspace)
        print("COUNT", gokart.build(root, log_level=50), flush=True)
    """
)


# The runs below are processes of their own, forked from a server that imported luigi and pandas once
# (tests/fork_server.py): a fresh interpreter spent ~2 s of CPU on them before its build.
def _run(folder: Path, workspace: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return fork_server.run(
        [str(folder / "hand_tasks.py"), str(workspace)], folder, {**os.environ, **env}, 120, fork_server.KART
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "hand_tasks.py").write_text(_TASKS)
    return tmp_path


def _partial_file(workspace: Path) -> Path:
    (found,) = (workspace / "hp").glob("out_*.csv")
    return found


def test_a_killed_runs_hand_written_file_is_rebuilt_not_served(folder: Path) -> None:
    workspace = folder / "ws"
    writer = subprocess.Popen(
        [sys.executable, str(folder / "hand_tasks.py"), str(workspace)],
        env={**os.environ, "HAND_SLOW": "1"},
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not list((workspace / "hp").glob("out_*.csv")) or _partial_file(workspace).stat().st_size < 8:
            assert time.monotonic() < deadline and writer.poll() is None, "the writer never started writing"
            time.sleep(0.05)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert len(_partial_file(workspace).read_text().splitlines()) < 41  # partial: the kill came half way

    done = _run(folder, workspace)
    assert done.returncode == 0, done.stderr
    assert "COUNT 40" in done.stdout  # rebuilt: 40 rows under the header, not the partial file's count
    assert "never finished" in done.stderr


def test_a_failed_runs_hand_written_file_is_rebuilt_not_served(folder: Path) -> None:
    workspace = folder / "ws"
    failed = _run(folder, workspace, HAND_FAIL="1")
    assert failed.returncode != 0 and "the export broke half way" in failed.stderr
    assert len(_partial_file(workspace).read_text().splitlines()) == 7  # what the failed run left

    done = _run(folder, workspace)
    assert done.returncode == 0, done.stderr
    assert "COUNT 40" in done.stdout


def test_loading_it_outside_a_build_names_the_unfinished_run(folder: Path, monkeypatch: Any) -> None:
    workspace = folder / "ws"
    assert _run(folder, workspace, HAND_FAIL="1").returncode != 0
    monkeypatch.syspath_prepend(str(folder))
    import hand_tasks  # type: ignore[import-not-found]

    task = hand_tasks.HandWritten(workspace_directory=str(workspace))
    with pytest.raises(DamagedOutputError, match="started .*never finished") as raised:
        task.output().load()
    assert raised.value.kind == "unfinished" and raised.value.path == str(_partial_file(workspace))


def _kart_run(folder: Path, workspace: Path, task: str) -> subprocess.CompletedProcess[str]:
    """``kart run hand_tasks.<task> --workspace <workspace>`` in its own process, as a user types it."""
    path = os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])
    return fork_server.run(
        ["-m", "kart_core", "run", f"hand_tasks.{task}", "--workspace", str(workspace)],
        folder,
        {**os.environ, "PYTHONPATH": path, "CI": "1"},
        120,
        fork_server.KART,
    )


def test_kart_run_of_the_task_alone_runs_it_again_as_the_loader_asks(folder: Path) -> None:
    """`kart run` of the task whose file an unfinished run left does not call it cached: it runs it again
    (counted as repaired, as a build that loads it does), so the file holds the whole output after (at14 N7)."""
    workspace = folder / "ws"
    assert _run(folder, workspace, HAND_FAIL="1").returncode != 0
    assert len(_partial_file(workspace).read_text().splitlines()) == 7

    done = _kart_run(folder, workspace, "HandWritten")
    assert done.returncode == 0, done.stderr
    assert "0 cached" in done.stderr and "never finished" in done.stderr, done.stderr
    assert len(_partial_file(workspace).read_text().splitlines()) == 41  # the header and 40 rows

    again = _kart_run(folder, workspace, "HandWritten")
    assert again.returncode == 0 and "0 ran, 1 cached" in again.stderr, again.stderr  # finished now: cached


# --- a run that failed or never ran, leaving no file: the load says the file is missing (attacker at21 L2) -------


class UfBoom(kart_core.TaskOnKart[int]):
    """Its run fails before it dumps anything: start-of-run logs, no task log, no output."""

    def run(self) -> None:
        raise RuntimeError("boom")


class UfNeverRun(kart_core.TaskOnKart[int]):
    def run(self) -> None:
        self.dump(1)


@pytest.mark.parametrize("kind", ["failed", "never_run"])
def test_loading_an_absent_output_raises_file_not_found_without_a_diagnosis(
    any_workspace: str, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """gokart raises FileNotFoundError; kart said "the file is what a killed or failed run left, maybe partial"
    (DamagedOutputError, which ``except FileNotFoundError`` misses), or first warned that the absent file "loads
    unchecked ... put there by hand"."""
    task: kart_core.TaskOnKart[int]
    if kind == "failed":
        task = UfBoom(workspace_directory=any_workspace)
        with pytest.raises(GokartBuildError, match="boom"):
            kart_core.build(task, reset_register=False)
    else:
        task = UfNeverRun(workspace_directory=any_workspace)
    with caplog.at_level(logging.WARNING), pytest.raises(MissingOutputError, match="does not exist") as raised:
        task.output().load()
    assert isinstance(raised.value, FileNotFoundError)
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


# --- complete() and run_one see such a file too (attacker at24 F9) -------------------------------------------------


class UfByHand(kart_core.TaskOnKart[str]):
    """Writes its csv output itself, at the path it computes from the workspace and its id (on local disk or
    object storage), and fails half way when ``fail`` is set: its partial file stands at the final path."""

    fail = luigi.BoolParameter(default=False, significant=False)

    def output(self) -> Any:
        return self.make_target("uf/by_hand.csv")

    def run(self) -> None:
        path = f"{self.workspace_directory}/uf/by_hand_{self.make_unique_id()}.csv"
        # One put of what the export wrote before it broke (object storage has no half-written object).
        with storage_for(path).atomic_write(path) as file:
            file.write(b"a\n1\n" if self.fail else b"a\n1\n2\n3\n")
        if self.fail:
            raise RuntimeError("the export broke half way")


def test_complete_and_run_one_take_an_unfinished_runs_file_as_incomplete(
    any_workspace: str, caplog: pytest.LogCaptureFixture
) -> None:
    """``complete()`` applies the load's test (start-of-run logs, no task log, no integrity record): it said True,
    so ``if task.complete(): task.output().load()`` failed, and ``run_one`` (Airflow's operator, a to_pipeline node)
    called the task cached, on local disk and on object storage."""
    with pytest.raises(GokartBuildError, match="broke half way"):
        kart_core.build(UfByHand(workspace_directory=any_workspace, fail=True), reset_register=False)
    task = UfByHand(workspace_directory=any_workspace)
    with caplog.at_level(logging.WARNING):
        assert task.complete() is False
    assert "UfByHand" in caplog.text and "never finished" in caplog.text and "runs again" in caplog.text

    assert kart_core.run_one(task) is kart_core.RunStatus.RAN
    assert task.complete() is True
    assert list(task.output().load()["a"]) == [1, 2, 3]
    assert kart_core.run_one(task) is kart_core.RunStatus.CACHED


def test_luigi_build_runs_an_unfinished_runs_task_again(tmp_path: Path) -> None:
    """luigi's scheduler asks ``complete()`` only: before, it skipped the task and its reader loaded the partial
    file (refused as damage). Now the task runs again and its reader gets the whole output."""
    workspace = str(tmp_path / "ws")
    with pytest.raises(GokartBuildError):
        kart_core.build(UfByHand(workspace_directory=workspace, fail=True), reset_register=False)
    reader = UfCount(source=UfByHand(workspace_directory=workspace), workspace_directory=workspace)
    assert luigi.build([reader], local_scheduler=True, log_level="ERROR") is True
    assert reader.output().load() == 3


class UfCount(kart_core.TaskOnKart[int]):
    source = kart_core.TaskInstanceParameter()

    def run(self) -> None:
        self.dump(len(self.load("source")))


@pytest.mark.parametrize("origin", ["by_hand", "gokart"])
def test_a_file_no_run_of_kart_left_unfinished_stays_complete(tmp_path: Path, origin: str) -> None:
    """Only a run that started and never finished makes the task incomplete: a file put there by hand (no run
    logs) and one gokart wrote (its run logs, task log included, and no integrity record) stay complete and
    load unchecked, as before."""
    workspace = tmp_path / "ws"
    task = UfByHand(workspace_directory=str(workspace))
    path = Path(task.output().path())
    path.parent.mkdir(parents=True)
    path.write_text("a\n7\n")
    if origin == "gokart":
        unique_id = task.make_unique_id()
        for kind in [TASK_PARAMS, RANDOM_SEED, MODULE_VERSIONS, TASK_LOG]:
            log = workspace / log_relative_path(kind, "UfByHand", unique_id)
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_bytes(b"" if kind is MODULE_VERSIONS else pickle.dumps({}))  # gokart's versions log is empty
    assert task.complete() is True
    assert kart_core.run_one(task) is kart_core.RunStatus.CACHED
    assert list(task.output().load()["a"]) == [7]
