"""A commit paused between its last look at its marker and its move, taken over meanwhile, does not win.

A replacing commit puts its marker, writes its manifest pending, then moves each staged output over the old one.
A committer stopped right at a move (SIGSTOP, a suspended machine, a long GC) for longer than the lease is taken
for a killed one by a run on another host, which runs the task and commits over it. Before: resumed, the paused
commit moved its file over the taker's committed output, wrote its own manifest over the taker's and succeeded.
Now each move is preceded by a read of the marker, and (local disk) followed by one: a marker no longer the
commit's fails it with ``MarkerLostError``, and a move already made is rolled back to the bytes that were there
(the taker's), when the path still holds the paused commit's file.

The paused committer is a process of its own, its host name faked and with its own lock folder; it stops itself
right before the rename of its output (a wrapper of ``LocalStorage.commit``). This test's process is the taker:
threads and process workers; outputs dumped and written by path.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import luigi
import pytest
from other_host import wait_for

import kart_core
from kart_core import commit_marker
from kart_core.inspect.verify import verify_workspace

LEASE = 2.0  # seconds: the taker waits this long for the stopped commit's marker to change
HERE = str(Path(__file__).resolve().parent)
REPO = str(Path(__file__).resolve().parents[2])


class Stamped(kart_core.TaskOnKart[Any]):
    """Dumps ``who`` (or writes it by path with ``by_path``)."""

    who = luigi.Parameter(default="old", significant=False)
    by_path = luigi.BoolParameter(default=False, significant=False)

    def output(self) -> Any:
        return self.make_target("stamped/out.txt")

    def run(self) -> None:
        if self.by_path:
            path = self.output().path()
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as file:
                file.write(str(self.who))
        else:
            self.dump(str(self.who))


PAUSED_COMMIT = textwrap.dedent(
    """
    import os, signal, socket, sys
    from pathlib import Path
    sys.path[:0] = [sys.argv[2], sys.argv[3]]
    workspace, by_path, flag = sys.argv[1], sys.argv[4] == "1", sys.argv[5]
    socket.gethostname = lambda: "paused.example"  # another machine (its own lock folder too)
    import kart_core
    from kart_core.storage import local
    from test_commit_paused_move import Stamped

    from kart_core.storage import conditional

    def stop_at(path):
        if "stamped/out" in path and not Path(flag).exists():
            Path(flag).touch()
            os.kill(os.getpid(), signal.SIGSTOP)  # between the commit's last look at its marker and its move

    original_commit = local.LocalStorage.commit
    original_exchange = getattr(conditional, "exchange", None)

    def commit(self, staged, path):
        stop_at(path)
        return original_commit(self, staged, path)

    def exchange(first, second):
        stop_at(second)
        return original_exchange(first, second)

    local.LocalStorage.commit = commit
    if original_exchange is not None:  # the move kart makes on local disk (a swap), where it makes one
        conditional.exchange = exchange
    task = Stamped(who="paused", by_path=by_path, rerun=True, workspace_directory=workspace)
    try:
        print("BUILT", kart_core.build(task, log_level=30), flush=True)
    except BaseException as exc:
        print("FAILED", type(exc).__name__, str(exc).replace(chr(10), " "), flush=True)
    """
)


@pytest.mark.parametrize("by_path", [False, True], ids=["dumped", "by_path"])
@pytest.mark.parametrize("executor", ["thread", "process"])
def test_a_commit_stopped_at_its_move_and_taken_over_leaves_the_taker_s_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, executor: str, by_path: bool
) -> None:
    monkeypatch.setenv(commit_marker.LEASE_VARIABLE, str(LEASE))
    workspace = str(tmp_path / "ws")
    kart_core.build(Stamped(workspace_directory=workspace), return_value=False, log_level=50)
    script = tmp_path / "paused_commit.py"
    script.write_text(PAUSED_COMMIT)
    locks = tmp_path / "paused-host-locks"
    locks.mkdir()
    flag = tmp_path / "stopped"
    env = {**os.environ, commit_marker.LEASE_VARIABLE: str(LEASE), "KART_LOCK_DIR": str(locks)}
    process = subprocess.Popen(
        [sys.executable, str(script), workspace, REPO, HERE, "1" if by_path else "0", str(flag)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    try:
        wait_for(flag, process)
        deadline = time.monotonic() + 30
        while not _stopped(process.pid):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        taker = Stamped(who="taker", by_path=by_path, rerun=True, workspace_directory=workspace)
        workers = 2 if executor == "process" else 1
        assert kart_core.build(taker, workers=workers, executor=executor, log_level=50) == ["taker"]
    finally:
        os.kill(process.pid, signal.SIGCONT)
    stdout, stderr = process.communicate(timeout=120)
    # before: BUILT ['paused'] (dumped; by path its heartbeat found its marker replaced after the move). The paused
    # commit finds its marker gone and the taker's commit finished: it keeps that commit, as a run beaten to the
    # manifest does (attacker at26 G1; it failed with MarkerLostError from 2026-12-01 until then), never its own.
    assert stdout == "BUILT ['taker']\n", (stdout, stderr[-3000:])
    task = Stamped(workspace_directory=workspace)
    assert task.complete()
    assert task.output().load() == ["taker"]  # before: the paused commit's bytes over the taker's
    assert kart_core.build(Stamped(workspace_directory=workspace), log_level=50) == ["taker"]
    report = verify_workspace(workspace)
    assert [problem for problem in report.problems if problem.kind != "commit"] == []


def _stopped(pid: int) -> bool:
    """Whether the process ``pid`` is stopped (state T in /proc)."""
    with open(f"/proc/{pid}/stat") as file:
        return file.read().rpartition(")")[2].split()[0] in ("T", "t")
