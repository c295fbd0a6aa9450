"""Two real processes building one graph, and a build killed with SIGKILL: the cache stays whole."""

from __future__ import annotations

import os
import pickle
import textwrap
import time
from collections import Counter
from pathlib import Path

import fork_server
import pytest

TASKS = textwrap.dedent(
    """
    import os, time
    import luigi
    import kart_core

    class Slow(kart_core.TaskOnKart):
        i = luigi.IntParameter()
        pause = luigi.FloatParameter(default=0.05, significant=False)

        def run(self):
            with open(os.path.join(self.workspace_directory, "runs.log"), "a") as log:
                log.write(f"{self.i}\\n")
            time.sleep(self.pause)
            self.dump(list(range(self.i * 1000)))

    class Gather(kart_core.TaskOnKart):
        n = luigi.IntParameter()
        pause = luigi.FloatParameter(default=0.05, significant=False)

        def requires(self):
            return [Slow(i=i, pause=self.pause) for i in range(self.n)]

        def run(self):
            self.dump(sum(len(x) for x in self.load()))
    """
)

BUILD = "import sys, kart_core, conc_tasks; kart_core.build(conc_tasks.Gather(n=int(sys.argv[1]), pause=float(sys.argv[2])))"


def _setup(tmp_path: Path, lock: bool) -> dict[str, str]:
    (tmp_path / "conc_tasks.py").write_text(TASKS)
    config = tmp_path / "luigi.cfg"
    workspace = tmp_path / "ws"
    workspace.mkdir()
    config.write_text(f"[TaskOnKart]\nworkspace_directory={workspace}\nshould_lock_run={lock}\n")
    return {**os.environ, "PYTHONPATH": str(tmp_path), "LUIGI_CONFIG_PATH": str(config), "CI": "true"}


def _start(tmp_path: Path, env: dict[str, str], n: int, pause: float) -> fork_server.Run:
    """BUILD in a process of its own, forked from a server that imported luigi and pandas once (tests/fork_server.py;
    a fresh interpreter spent ~2 s of CPU on them). Runs overlap as processes do."""
    return fork_server.start(["-c", BUILD, str(n), str(pause)], tmp_path, env, fork_server.KART)


def _runs(tmp_path: Path) -> Counter[int]:
    log = tmp_path / "ws" / "runs.log"
    return Counter(int(line) for line in log.read_text().split()) if log.exists() else Counter()


def _every_output_loads(tmp_path: Path) -> int:
    count = 0
    for path in (tmp_path / "ws").rglob("*.pkl"):
        with open(path, "rb") as file:
            pickle.load(file)
        count += 1
    return count


@pytest.mark.slow
def test_two_processes_with_a_lock_run_each_task_once(tmp_path: Path) -> None:
    env = _setup(tmp_path, lock=True)
    first, second = _start(tmp_path, env, 20, 0.05), _start(tmp_path, env, 20, 0.05)
    for done in (first.wait(120), second.wait(120)):
        assert done.returncode == 0, done.stderr
    assert _runs(tmp_path) == Counter(range(20))
    assert _every_output_loads(tmp_path) == 21 * 5  # outputs plus four .pkl run logs each


@pytest.mark.slow
def test_two_processes_without_a_lock_still_leave_a_whole_cache(tmp_path: Path) -> None:
    env = _setup(tmp_path, lock=False)
    first, second = _start(tmp_path, env, 20, 0.02), _start(tmp_path, env, 20, 0.02)
    assert first.wait(120).returncode == 0 and second.wait(120).returncode == 0
    assert set(_runs(tmp_path)) == set(range(20))
    assert _every_output_loads(tmp_path) == 21 * 5


@pytest.mark.slow
def test_a_build_killed_halfway_resumes_without_redoing_finished_tasks(tmp_path: Path) -> None:
    env = _setup(tmp_path, lock=True)
    victim = _start(tmp_path, env, 30, 0.1)
    deadline = time.monotonic() + 60
    while sum(_runs(tmp_path).values()) < 8 and time.monotonic() < deadline:
        time.sleep(0.02)
    victim.kill()  # SIGKILL, and waits for its end
    finished_before = {p.name for p in (tmp_path / "ws" / "conc_tasks").glob("Slow_*.pkl")}
    assert 0 < len(finished_before) < 30
    _every_output_loads(tmp_path)  # nothing half-written under a final name
    runs_before = _runs(tmp_path)
    rerun = _start(tmp_path, env, 30, 0.01)
    assert rerun.wait(120).returncode == 0
    runs_after = _runs(tmp_path)
    redone = {i for i in runs_after if runs_after[i] > runs_before.get(i, 0) and runs_before.get(i, 0) > 0}
    assert len(redone) <= 1  # only the task killed mid-run starts again
    assert set(runs_after) == set(range(30))
    assert _every_output_loads(tmp_path) == 31 * 5
