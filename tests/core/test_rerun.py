"""rerun=True replaces a task's outputs at its commit: a rerun that fails keeps the old ones (kart_core.rerun).

gokart deletes the outputs at the rerun's first complete() check; kart keeps them (and their
integrity record) until the rerun commits. Checked on local disk and on the real S3-compatible
server, with one worker, two threads and two processes, under luigi.build and the ``kart run
--rerun`` command line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import luigi
import pytest
from click.testing import CliRunner

import kart_core
from kart_core.cli import cli
from kart_core.errors import GokartBuildError, TaskDefinitionError
from kart_core.inspect.verify import verify_workspace
from kart_core.storage import storage_for
from kart_core.workspace import MANIFEST, log_task_path


class RrValue(kart_core.TaskOnKart[Any]):
    """Dumps ``value`` (not part of the id, so a rerun can change it), or raises when ``fail`` is set."""

    value = luigi.IntParameter(default=1, significant=False)
    fail = luigi.BoolParameter(default=False, significant=False)

    def run(self) -> None:
        if self.fail:
            raise RuntimeError("this rerun fails")
        self.dump(self.value)


class RrTwo(kart_core.TaskOnKart[Any]):
    """Two outputs; with ``only_first`` a run writes the first one only."""

    value = luigi.IntParameter(default=1, significant=False)
    only_first = luigi.BoolParameter(default=False, significant=False)

    def output(self) -> Any:
        return {"first": self.make_target("rr/first.pkl"), "second": self.make_target("rr/second.pkl")}

    def run(self) -> None:
        self.dump(self.value, "first")
        if not self.only_first:
            self.dump(self.value * 10, "second")


class RrDirect(kart_core.TaskOnKart[Any]):
    """Writes its output straight to the path, past kart's transaction (a gokart-era habit)."""

    text = luigi.Parameter(default="one", significant=False)

    def output(self) -> Any:
        return self.make_target("rr/direct.txt")

    def run(self) -> None:
        os.makedirs(os.path.dirname(self.output().path()), exist_ok=True)
        with open(self.output().path(), "w") as handle:
            handle.write(self.text + "\n")


class RrDown(kart_core.TaskOnKart[Any]):
    upstream = kart_core.TaskInstanceParameter()

    def run(self) -> None:
        self.dump(self.load("upstream") * 100)


@pytest.fixture(params=["local", "s3"])
def any_workspace(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A workspace on local disk and one on the S3-compatible server."""
    if request.param == "local":
        return str(tmp_path / "ws")
    return f"s3://{request.getfixturevalue('s3_bucket')}/ws"


def _read(path: str) -> bytes:
    with storage_for(path).open_read(path) as file:
        return bytes(file.read())


SETUPS = [(1, "thread"), (2, "thread"), (2, "process")]


@pytest.mark.parametrize(("workers", "executor"), SETUPS)
def test_a_failed_rerun_keeps_the_old_output_and_its_record(any_workspace: str, workers: int, executor: str) -> None:
    task = RrValue(value=1, workspace_directory=any_workspace)
    assert kart_core.build(task, reset_register=False) == 1
    manifest = _read(log_task_path(task, MANIFEST))
    failing = RrValue(value=2, fail=True, rerun=True, workspace_directory=any_workspace)
    with pytest.raises(GokartBuildError, match="this rerun fails"):
        kart_core.build(failing, workers=workers, executor=executor, reset_register=False)
    assert _read(log_task_path(task, MANIFEST)) == manifest  # the record untouched
    assert RrValue(workspace_directory=any_workspace).output().load() == 1
    assert RrValue(workspace_directory=any_workspace).complete()  # cached for a build without rerun
    assert not failing.complete()  # the failed rerun still waits for its commit
    again = RrValue(value=3, rerun=True, workspace_directory=any_workspace)
    assert kart_core.build(again, workers=workers, executor=executor, reset_register=False) == 3
    assert _read(log_task_path(task, MANIFEST)) != manifest
    assert again.complete()  # committed: in this process too, when a worker process ran it
    assert verify_workspace(any_workspace).ok


def test_a_failed_rerun_of_an_upstream_keeps_both_outputs(workspace: str) -> None:
    upstream = RrValue(value=1, workspace_directory=workspace)
    assert kart_core.build(RrDown(upstream=upstream, workspace_directory=workspace), reset_register=False) == 100
    failing = RrValue(value=2, fail=True, rerun=True, workspace_directory=workspace)
    with pytest.raises(GokartBuildError):
        kart_core.build(RrDown(upstream=failing, rerun=True, workspace_directory=workspace), reset_register=False)
    assert RrDown(upstream=upstream, workspace_directory=workspace).output().load() == 100
    assert upstream.output().load() == 1


def test_a_rerun_must_write_every_output_again(workspace: str) -> None:
    """A rerun that writes one of two outputs fails: the other would be left from the old run."""
    assert kart_core.build(RrTwo(value=1, workspace_directory=workspace), reset_register=False) == {
        "first": 1,
        "second": 10,
    }
    partial = RrTwo(value=2, only_first=True, rerun=True, workspace_directory=workspace)
    with pytest.raises(GokartBuildError) as info:
        kart_core.build(partial, reset_register=False)
    (errors,) = info.value.raised_exceptions.values()
    assert isinstance(errors[0], TaskDefinitionError)
    assert "second" in str(errors[0]) and "previous outputs are kept" in str(errors[0])
    assert kart_core.build(RrTwo(workspace_directory=workspace), reset_register=False) == {"first": 1, "second": 10}


def test_a_rerun_writing_straight_to_the_path_records_the_new_file(workspace: str) -> None:
    assert kart_core.build(RrDirect(text="one", workspace_directory=workspace), reset_register=False) == ["one"]
    assert kart_core.build(RrDirect(text="three", rerun=True, workspace_directory=workspace)) == ["three"]
    assert RrDirect(workspace_directory=workspace).output().load() == ["three"]  # no DamagedOutputError
    assert verify_workspace(workspace).ok  # its record describes the new file (kart_core.direct_write)


def test_a_rerun_through_luigi_build_that_fails_keeps_the_output(any_workspace: str) -> None:
    assert kart_core.build(RrValue(value=1, workspace_directory=any_workspace), reset_register=False) == 1
    failing = RrValue(value=2, fail=True, rerun=True, workspace_directory=any_workspace)
    assert luigi.build([failing], local_scheduler=True, workers=1) is False
    assert RrValue(workspace_directory=any_workspace).output().load() == 1
    upstream = RrValue(value=4, rerun=True, workspace_directory=any_workspace)
    down = RrDown(upstream=upstream, workspace_directory=any_workspace)
    assert luigi.build([down], local_scheduler=True, workers=1) is True
    assert down.output().load() == 400


_LUIGI_TWO_WORKERS = """
import sys, luigi, kart_core
sys.path.insert(0, sys.argv[2])
from test_rerun import RrDown, RrValue

up = RrValue(value=int(sys.argv[3]), rerun=True, workspace_directory=sys.argv[1])
ok = luigi.build([RrDown(upstream=up, rerun=True, workspace_directory=sys.argv[1])], local_scheduler=True, workers=2)
print("OK" if ok else "FAILED")
"""


@pytest.mark.slow
def test_a_rerun_under_two_luigi_worker_processes(workspace: str, tmp_path: Path) -> None:
    """luigi forks a process per task: the downstream's process sees the rerun committed (records, not a flag)."""
    import subprocess
    import sys

    script = tmp_path / "two.py"
    script.write_text(_LUIGI_TWO_WORKERS)
    here = str(Path(__file__).parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([here, os.environ.get("PYTHONPATH", "")])}
    for value in (1, 2):
        done = subprocess.run(
            [sys.executable, str(script), workspace, here, str(value)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert done.stdout.strip().endswith("OK"), done.stderr[-3000:]
    assert RrValue(workspace_directory=workspace).output().load() == 2
    assert RrDown(upstream=RrValue(workspace_directory=workspace), workspace_directory=workspace).output().load() == 200


_CLI_TASK = """
import luigi, kart_core

class RrCli(kart_core.TaskOnKart):
    fail = luigi.BoolParameter(default=False, significant=False)
    value = luigi.IntParameter(default=1, significant=False)

    def run(self):
        if self.fail:
            raise RuntimeError("the cli rerun fails")
        self.dump(self.value)
"""


def test_kart_run_rerun_that_fails_keeps_the_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "rrcli_tasks.py").write_text(_CLI_TASK)
    monkeypatch.syspath_prepend(str(tmp_path))
    workspace = str(tmp_path / "ws")
    base = ["run", "rrcli_tasks.RrCli", "--workspace", workspace]
    assert CliRunner().invoke(cli, base).exit_code == 0
    (output,) = (tmp_path / "ws" / "rrcli_tasks").glob("RrCli_*.pkl")
    before = output.read_bytes()
    failed = CliRunner().invoke(cli, [*base, "--rerun", "--fail"])
    assert failed.exit_code != 0 and "the cli rerun fails" in failed.output + failed.stderr
    assert output.read_bytes() == before
    assert CliRunner().invoke(cli, [*base, "--rerun", "--value", "5"]).exit_code == 0
    assert output.read_bytes() != before


class RrPlus(kart_core.TaskOnKart[Any]):
    upstream = kart_core.TaskInstanceParameter()

    def run(self) -> None:
        self.dump(self.load("upstream") + 1)


class RrPair(kart_core.TaskOnKart[Any]):
    """Requires ``first`` and ``second``: a task under both is reached by two paths."""

    first = kart_core.TaskInstanceParameter()
    second = kart_core.TaskInstanceParameter()

    def run(self) -> None:
        self.dump([self.load("first"), self.load("second")])


@pytest.mark.parametrize(("workers", "executor"), SETUPS)
@pytest.mark.parametrize("shape", ["two roots", "one root"])
def test_rerun_on_the_second_copy_of_a_task_reached_twice_is_kept(
    workspace: str, workers: int, executor: str, shape: str
) -> None:
    """Value built (1); Plus(Value) and Down(Value(value=7, rerun=True)), never built, reach Value by two
    paths, the copy without rerun first. The walk kept the first copy it met: Value found complete, the
    rerun dropped, and the build handed back 2 and 100. The rerun copy takes the node: Value is 7."""
    ws = workspace
    assert kart_core.build(RrValue(workspace_directory=ws), reset_register=False) == 1
    plain = RrPlus(upstream=RrValue(workspace_directory=ws), workspace_directory=ws)
    rerun = RrDown(upstream=RrValue(value=7, rerun=True, workspace_directory=ws), workspace_directory=ws)
    if shape == "two roots":
        built = kart_core.build([plain, rerun], reset_register=False, workers=workers, executor=executor)
    else:
        pair = RrPair(first=plain, second=rerun, workspace_directory=ws)
        built = kart_core.build(pair, reset_register=False, workers=workers, executor=executor)
    assert built == [8, 700]
    assert kart_core.load_output(RrValue(workspace_directory=ws)) == 7
    assert verify_workspace(ws).ok
