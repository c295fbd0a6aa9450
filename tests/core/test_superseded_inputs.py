"""Two runs of one task at once, its upstream committed again between their loads (attacker at22 M1).

Two Airflow DAG runs of one DAG (or any two workers) run the same task at once; an upstream is committed again with
other content between the two runs' loads. The run that commits second found the other's commit there and was
dropped as "superseded", as if both had read the same inputs: when it was the one that read the newer upstream, the
task kept the older run's outputs, counted stale, and its downstream (run on the same cache) served a value built from
the older upstream as cached. Now a beaten commit whose inputs are all current replaces a winner whose are not; one
whose inputs were committed again since is still dropped.

Each run is a process of its own calling ``kart_core.run_one`` (as an Airflow worker does), held between its load
and its dumps by a gate file until the test releases it; on local disk and on moto's S3. The runs are forks of a
server that imported luigi, pandas and s3fs once (tests/fork_server.py; each imports kart_core itself): a fresh
interpreter spent ~2 s of CPU on those imports, for each of the ~60 runs here.
"""

from __future__ import annotations

import json
import os
import textwrap
import time
from pathlib import Path

import fork_server
import pytest

REPO = str(Path(__file__).resolve().parents[2])

TASKS = textwrap.dedent(
    """
    import os, pathlib, time
    import luigi
    import kart_core

    MARKS = pathlib.Path(os.environ["RACE_MARKS"])


    class Src(kart_core.TaskOnKart):
        def run(self):
            self.dump(float((MARKS / "val").read_text()))


    class Mid(kart_core.TaskOnKart):
        def requires(self):
            return Src()

        def run(self):
            value = self.load()
            gate = MARKS / os.environ.get("RACE_GATE", "none")
            (MARKS / f"started-{os.environ.get('RACE_GATE', 'none')}").touch()
            while gate.exists():
                time.sleep(0.05)
            self.dump(value * 10)


    class MidByPath(kart_core.TaskOnKart):
        # Mid writing its output by path: the first run to ask holds the task's lock until its commit.
        def requires(self):
            return Src()

        def output(self):
            return self.make_target("mid_by_path.txt")

        def run(self):
            value = self.load()
            gate = MARKS / os.environ.get("RACE_GATE", "none")
            (MARKS / f"started-{os.environ.get('RACE_GATE', 'none')}").touch()
            path = self.output().path()  # waits for the lock while the other run holds it
            while gate.exists():
                time.sleep(0.05)
            with open(path, "w") as file:
                file.write(str(value * 10))


    class Other(kart_core.TaskOnKart):
        def run(self):
            self.dump(float((MARKS / "other").read_text()))


    class MidTwo(kart_core.TaskOnKart):
        # Reads Src, waits at gate <G>1, reads Other, waits at gate <G>2, then dumps.
        def requires(self):
            return {"src": Src(), "other": Other()}

        def run(self):
            gate = os.environ.get("RACE_GATE", "none")
            src = self.load("src")
            (MARKS / f"started-{gate}").touch()
            while (MARKS / f"{gate}1").exists():
                time.sleep(0.05)
            other = self.load("other")
            (MARKS / f"loaded-{gate}").touch()
            while (MARKS / f"{gate}2").exists():
                time.sleep(0.05)
            self.dump(src * 10 + other)


    def number(value):
        return float(value[0] if isinstance(value, list) else value)  # the text processor loads a list of lines


    MID = {"Mid": Mid, "MidByPath": MidByPath, "MidTwo": MidTwo}[os.environ.get("RACE_MID", "Mid")]


    class Top(kart_core.TaskOnKart):
        def requires(self):
            return MID()

        def run(self):
            self.dump(number(self.load()) + 1)
    """
)

RUN = textwrap.dedent(
    """
    import json, sys
    import kart_core, race_tasks
    what = sys.argv[1]
    if what == "src":
        kart_core.build(race_tasks.Src(rerun=True), reset_register=False)
    elif what == "other":
        kart_core.build(race_tasks.Other(rerun=True), reset_register=False)
    elif what == "build":
        print(json.dumps(kart_core.build(race_tasks.Top(), reset_register=False)))
    elif what == "mid":
        print(json.dumps(kart_core.run_one(race_tasks.MID()).name))
    else:
        top = race_tasks.Top()
        status = kart_core.run_one(top)
        mid = race_tasks.MID()
        print(json.dumps([status.name, top.output().load(), mid.complete(), race_tasks.number(mid.output().load())]))
    """
)


def _setup(tmp_path: Path, workspace: str) -> tuple[Path, dict[str, str]]:
    (tmp_path / "race_tasks.py").write_text(TASKS)
    (tmp_path / "run.py").write_text(RUN)
    marks = tmp_path / "marks"
    marks.mkdir()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), REPO]), RACE_MARKS=str(marks))
    env["KART_WORKSPACE"] = workspace
    return tmp_path, env


@pytest.fixture
def race(tmp_path: Path, request: pytest.FixtureRequest) -> tuple[Path, dict[str, str]]:
    """The task module, the runner script and the environment of the runs, on local disk or moto's S3."""
    local = request.param == "local"
    return _setup(tmp_path, str(tmp_path / "ws") if local else f"s3://{request.getfixturevalue('s3_bucket')}/ws")


def _mid_manifest(where: Path, env: dict[str, str]) -> bytes:
    script = "import kart_core.storage as s, race_tasks as t; r = t.MID().output().record; "
    script += "import sys; sys.stdout.write(s.storage_for(r.manifest).read_bytes(r.manifest).hex())"
    done = fork_server.run(["-c", script], where, env, 60, fork_server.KART_S3)
    assert done.returncode == 0, done.stderr[-3000:]
    return bytes.fromhex(done.stdout)


def _run(where: Path, env: dict[str, str], *args: str) -> object:
    done = fork_server.run([str(where / "run.py"), *args], where, env, 120, fork_server.KART_S3)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]) if args[0] not in ("src", "other") else None


def _src(where: Path, env: dict[str, str], value: float) -> None:
    (where / "marks" / "val").write_text(str(value))
    _run(where, env, "src")


def _start_mid(where: Path, env: dict[str, str], gate: str) -> fork_server.Run:
    (where / "marks" / gate).touch()
    process = fork_server.start([str(where / "run.py"), "mid"], where, dict(env, RACE_GATE=gate), fork_server.KART_S3)
    deadline = time.monotonic() + 120
    while not (where / "marks" / f"started-{gate}").exists():
        assert process.poll() is None, process.wait().stderr[-3000:]
        assert time.monotonic() < deadline, f"run {gate} never loaded its input"
        time.sleep(0.05)
    return process


def _release(where: Path, process: fork_server.Run, gate: str) -> tuple[str, str]:
    (where / "marks" / gate).unlink(missing_ok=True)
    done = process.wait(120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def _prepared(where: Path, env: dict[str, str], top: float = 61.0) -> None:
    """Src 6 -> Mid 60 -> Top 61 built; then Src committed again with 7 (Mid and Top stale)."""
    _src(where, env, 6)
    assert _run(where, env, "build") == top
    _src(where, env, 7)


@pytest.mark.slow
@pytest.mark.parametrize("race", ["local", "s3"], indirect=True)
def test_the_run_on_the_newer_upstream_replaces_an_earlier_commit_on_the_older(
    race: tuple[Path, dict[str, str]],
) -> None:
    where, env = race
    _prepared(where, env)
    older = _start_mid(where, env, "A")  # reads Src 7
    _src(where, env, 8)
    newer = _start_mid(where, env, "B")  # reads Src 8
    assert _release(where, older, "A")[0] == "RAN"  # commits first
    status, log = _release(where, newer, "B")  # beaten to the commit, on newer inputs: replaces it
    assert status == "RAN" and "built from inputs committed again since" in log, log[-2000:]
    # Mid holds the run on Src 8 and counts complete; Top runs on it (it was served 71 as cached before).
    assert _run(where, env, "top") == ["RAN", 81.0, True, 80.0]


@pytest.mark.slow
@pytest.mark.parametrize("race", ["local", "s3"], indirect=True)
def test_the_run_on_the_older_upstream_never_replaces_a_commit_on_the_newer(race: tuple[Path, dict[str, str]]) -> None:
    where, env = race
    _prepared(where, env)
    older = _start_mid(where, env, "A")  # reads Src 7
    _src(where, env, 8)
    newer = _start_mid(where, env, "B")  # reads Src 8
    assert _release(where, newer, "B")[0] == "RAN"  # commits first
    committed = _mid_manifest(where, env)
    status, log = _release(where, older, "A")  # beaten, on older inputs: dropped as before
    assert status == "RAN" and "replace" not in log, log[-2000:]
    assert _mid_manifest(where, env) == committed
    assert _run(where, env, "top") == ["RAN", 81.0, True, 80.0]


@pytest.mark.slow
def test_a_by_path_writer_on_the_newer_upstream_goes_on_after_the_other_commits(tmp_path: Path) -> None:
    """The run on the newer upstream waited for the task's lock (the other run asked for the path first) and found
    the task committed by the other when it got it: it stopped there, keeping the older run's output (now it goes on
    and its commit replaces that one's)."""
    where, env = _setup(tmp_path, str(tmp_path / "ws"))
    env["RACE_MID"] = "MidByPath"
    _prepared(where, env)
    older = _start_mid(where, env, "A")  # reads Src 7, holds the lock
    _src(where, env, 8)
    newer = _start_mid(where, env, "B")  # reads Src 8, waits for the lock
    (where / "marks" / "B").unlink()
    assert _release(where, older, "A")[0] == "RAN"
    status, log = _release(where, newer, "B")
    assert status == "RAN" and "built from inputs committed again since" in log, log[-2000:]
    assert _run(where, env, "top") == ["RAN", 81.0, True, 80.0]


def _wait_for(where: Path, name: str, process: fork_server.Run) -> None:
    deadline = time.monotonic() + 120
    while not (where / "marks" / name).exists():
        assert process.poll() is None, process.wait().stderr[-3000:]
        assert time.monotonic() < deadline, f"no {name}"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("race", ["local", "s3"], indirect=True)
def test_two_runs_each_on_an_input_the_other_read_newer_leave_the_task_current(
    race: tuple[Path, dict[str, str]],
) -> None:
    """Attacker at22 M1b: run A reads Src old and Other new, run B Src new and Other old; both are stale at their
    commits, so neither replaces the other and the task stayed stale (its downstream built on it). The beaten run
    now runs the task again on the current inputs (a warning says so); its commit replaces the stale one. On local
    disk and on moto's S3."""
    where, env = race
    env["RACE_MID"] = "MidTwo"
    (where / "marks" / "other").write_text("1")
    _prepared(where, env, 62.0)  # Src 6, Other 1 -> MidTwo 61 -> Top 62; then Src 7
    assert _run(where, env, "build") == 72.0
    _src(where, env, 8)  # MidTwo stale
    (where / "marks" / "A1").touch()
    older_src = _start_mid(where, env, "A")  # reads Src 8, waits at A1
    _src(where, env, 9)
    (where / "marks" / "B2").touch()
    newer_src = _start_mid(where, env, "B")  # reads Src 9
    _wait_for(where, "loaded-B", newer_src)  # and Other 1, waits at B2
    (where / "marks" / "other").write_text("2")
    _run(where, env, "other")
    (where / "marks" / "A1").unlink()
    assert _release(where, older_src, "A")[0] == "RAN"  # Src 8 (old), Other 2: commits first, stale
    status, log = _release(where, newer_src, "B2")  # Src 9, Other 1 (old): beaten, stale: runs again
    assert status == "RAN" and "running it again on the current ones" in log, log[-6000:]
    assert _run(where, env, "top") == ["RAN", 93.0, True, 92.0]


@pytest.mark.slow
def test_two_runs_on_the_same_inputs_keep_the_first_commit(tmp_path: Path) -> None:
    """The common race, unchanged: both read Src 7; the second is dropped, the first's commit stays."""
    where, env = _setup(tmp_path, str(tmp_path / "ws"))
    _prepared(where, env)
    first = _start_mid(where, env, "A")
    second = _start_mid(where, env, "B")
    _release(where, first, "A")
    committed = _mid_manifest(where, env)
    status, log = _release(where, second, "B")
    assert status == "RAN" and "replace" not in log, log[-2000:]
    assert _mid_manifest(where, env) == committed
    assert _run(where, env, "top") == ["RAN", 71.0, True, 70.0]
