"""A commit of a side file killed at any step leaves a consistent state or a writer that runs again (attacker at19 J5).

With signing on, a commit moves a shared side file (``make_target(..., use_unique_id=False)``, dumped beside its
task's output) into place and writes the path's signed record (``kart_core.side_record``). A first commit killed
between the two left its task complete (the manifest claimed, the output moved before the side file) and the file
refused for good, with a message naming the previous writer's task as the one to rebuild. Now a commit moves its side
files before its outputs, so a kill anywhere before the last output's move leaves the task incomplete: the next build
runs it again. A load in between returns a committed version or is refused with a message naming the cut-short task.

The writer is a process of its own (a real build) that SIGKILLs itself right after the k-th durable step of its
commit (a claim, a write, a move, a removal: counted over the storage calls and the local exchange), for every k;
the path's first writer, a second writer over another's file, and a rerun of the same task on local disk; a second
writer on moto's S3.
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

import fork_server
import luigi
import pytest
from other_host import wait_for
from test_side_record import Reader, SideWriter, _bare, _build, _shared, _threshold

import kart_core as gokart
from kart_core import commit_marker
from kart_core.errors import DamagedOutputError, IntegrityError, MissingOutputError
from kart_core.inspect.verify import remove_damaged, verify_workspace
from kart_core.signing import ENVIRONMENT_VARIABLE as SIGNING_KEY

HERE = str(Path(__file__).resolve().parent)
REPO = str(Path(__file__).resolve().parents[2])

# Builds SideWriter(n) (rerun when asked) and SIGKILLs itself right after the k-th durable step of the commit
# (0: as the commit begins; -1: never, printing the steps).
KILLER = textwrap.dedent(
    """
    import contextlib, os, signal, sys
    sys.path[:0] = [sys.argv[2], sys.argv[3]]
    workspace, n, rerun, kill_after = sys.argv[1], int(sys.argv[4]), sys.argv[5] == "rerun", int(sys.argv[6])
    import kart_core
    from kart_core import transaction
    from kart_core.storage import conditional, local, remote
    from test_side_record import SideWriter

    steps, committing = [], [False]

    def step(name):
        if committing[0]:
            steps.append(name)
            if len(steps) == kill_after:
                os.kill(os.getpid(), signal.SIGKILL)

    def after(owner, attr, where):
        original = getattr(owner, attr)

        def wrapped(*args, **kwargs):
            result = original(*args, **kwargs)
            step(f"{attr} {args[where]}")
            return result

        setattr(owner, attr, wrapped)

    def managed(owner, attr):
        original = getattr(owner, attr)

        @contextlib.contextmanager
        def wrapped(self, path, *args):
            with original(self, path, *args) as value:
                if attr == "claim_new":  # the data is written at the claim
                    step(f"{attr} {path}")
                yield value
            if attr == "atomic_write":
                step(f"{attr} {path}")

        setattr(owner, attr, wrapped)

    for backend in (local.LocalStorage, remote.FsspecStorage):
        after(backend, "commit", 2)
        after(backend, "remove", 1)
        managed(backend, "atomic_write")
        managed(backend, "claim_new")
    after(conditional, "exchange", 1)
    original_commit = transaction.Transaction.commit

    def commit(self):
        committing[0] = True
        if kill_after == 0:
            os.kill(os.getpid(), signal.SIGKILL)
        try:
            return original_commit(self)
        finally:
            committing[0] = False

    transaction.Transaction.commit = commit
    kart_core.build(SideWriter(n=n, rerun=rerun, workspace_directory=workspace), log_level=40, reset_register=False)
    root = workspace.rstrip("/") + "/"
    print("STEPS", *(name.replace(root, "") for name in steps), sep="\\n")
    """
)

# scenario -> (the n of the earlier build, or None; the n of the killed build; rerun)
SCENARIOS = {"first_writer": (None, 2, False), "second_writer": (1, 2, False), "same_task_rerun": (1, 1, True)}


@pytest.fixture
def signed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SIGNING_KEY, "a test key of some length")


# What the killed builds import before kart_core: a fork of a server that imported these once (tests/fork_server.py)
# costs its fork and its build; a fresh interpreter spent ~2 s of CPU on them, for each of the ~100 kills of a session.
PRELOADED = fork_server.KART_S3


def _killer(tmp_path: Path, workspace: str, n: int, rerun: bool, kill_after: int) -> subprocess.CompletedProcess[str]:
    """The KILLER script run in a process of its own (forked from the preloading server), its environment this one's."""
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    args = [str(script), workspace, REPO, HERE, str(n), "rerun" if rerun else "-", str(kill_after)]
    return fork_server.run(args, tmp_path, dict(os.environ), 120, PRELOADED)


def _prepared(where: str, name: str, earlier: int | None) -> str:
    workspace = f"{where}_{name}"
    if earlier is not None:
        _build(SideWriter(n=earlier, workspace_directory=workspace))
    return workspace


def _check_between(workspace: str, earlier: int | None, n: int) -> None:
    """After the kill: the writer is complete and every target loads its table; or it is incomplete and a load
    returns a committed table (the earlier one, or its own once its record names it), or is refused naming it (through
    its own target after a replacing commit was killed: the commit's damage, kart_core.commit_marker)."""
    killed = SideWriter(n=n, workspace_directory=workspace)
    complete = killed.complete()
    targets: list[Any] = [_shared(killed), _bare(workspace, "pkl")]
    if earlier is not None:
        targets.append(_shared(SideWriter(n=earlier, workspace_directory=workspace)))
    for target in targets:
        try:
            value = _threshold(target.load())
        except IntegrityError as refused:
            assert not complete, f"{killed.kart_label()} counts as complete, its side file is refused: {refused}"
            assert killed.kart_label() in str(refused) and "cut short" in str(refused), str(refused)
            continue
        except DamagedOutputError as damaged:  # through its own target: its manifest is pending, its marker killed
            assert not complete and damaged.kind == "commit" and killed.kart_label() in str(damaged), str(damaged)
            continue
        except MissingOutputError:
            assert earlier is None and not complete  # the first writer's file is not in place yet
            continue
        assert value == n if complete else value in (earlier, n), (value, complete)


def _check_after_build(workspace: str, earlier: int | None, n: int) -> None:
    """A plain build (no rerun) of the killed writer brings the path to its table, through every target."""
    _build(SideWriter(n=n, workspace_directory=workspace))
    assert SideWriter(n=n, workspace_directory=workspace).complete()
    targets = [_shared(SideWriter(n=n, workspace_directory=workspace)), _bare(workspace, "pkl")]
    if earlier is not None:
        targets.append(_shared(SideWriter(n=earlier, workspace_directory=workspace)))
    assert [_threshold(target.load()) for target in targets] == [n] * len(targets)
    if n == 2:  # Reader requires SideWriter(n=2) and reads the table through its make_target
        assert _build(Reader(workspace_directory=workspace)) == 2


@pytest.mark.slow
@pytest.mark.parametrize(
    ("place", "scenario"),
    # Object storage has no exclusive create: its first commit takes the replacing path, as a rerun does there.
    [
        ("local", "first_writer"),
        ("local", "second_writer"),
        ("local", "same_task_rerun"),
        ("s3", "second_writer"),
        ("s3", "same_task_rerun"),
    ],
)
def test_a_side_file_commit_killed_at_any_step_never_leaves_a_complete_writer_with_a_refused_file(
    tmp_path: Path, request: pytest.FixtureRequest, signed: None, place: str, scenario: str
) -> None:
    where = str(tmp_path / "ws") if place == "local" else f"s3://{request.getfixturevalue('s3_bucket')}/ws"
    earlier, n, rerun = SCENARIOS[scenario]
    counted = _killer(tmp_path, _prepared(where, "count", earlier), n, rerun, -1)
    assert counted.returncode == 0, counted.stderr[-3000:]
    steps = counted.stdout.split("STEPS\n", 1)[1].splitlines()
    assert any("log/side/" in item for item in steps), steps  # the path's record is one of the steps
    for kill_after in range(len(steps) + 1):
        workspace = _prepared(where, f"k{kill_after}", earlier)
        process = _killer(tmp_path, workspace, n, rerun, kill_after)
        assert process.returncode == -signal.SIGKILL, (kill_after, process.stdout, process.stderr[-3000:])
        _check_between(workspace, earlier, n)
        _check_after_build(workspace, earlier, n)


@pytest.mark.slow
def test_kart_verify_names_the_cut_short_writer_and_delete_leaves_it_to_run_again(tmp_path: Path, signed: None) -> None:
    """Killed right after its side file's move (the path's record still names the first writer): `kart verify`
    reports the file naming the killed writer (it named the first writer as the one to rebuild, whose rerun writes
    its own older table); after `--delete` the next build of Reader runs the writer again (it stayed complete, and
    Reader got MissingOutputError)."""
    workspace = _prepared(str(tmp_path / "ws"), "verify", 1)
    counted = _killer(tmp_path, _prepared(str(tmp_path / "ws"), "count", 1), 2, False, -1)
    moved = counted.stdout.split("STEPS\n", 1)[1].splitlines().index("commit shared/lookup.pkl") + 1
    assert _killer(tmp_path, workspace, 2, False, moved).returncode == -signal.SIGKILL
    killed = SideWriter(n=2, workspace_directory=workspace)
    report = verify_workspace(workspace)
    (problem,) = [problem for problem in report.problems if problem.side]
    assert problem.kind == "unrecorded" and problem.task == killed.kart_label(), problem
    assert "cut short" in problem.detail and problem.path == _shared(killed).path()
    assert remove_damaged(report) == [problem.path]
    assert not killed.complete()
    assert _build(Reader(workspace_directory=workspace)) == 2
    assert verify_workspace(workspace).ok


class StampedSide(gokart.TaskOnKart[Any]):
    """Dumps ``who`` to its output and to a shared side file."""

    who = luigi.Parameter(default="old", significant=False)

    def output(self) -> Any:
        return self.make_target("stamped/side_out.txt")

    def run(self) -> None:
        self.dump(str(self.who), self.make_target("shared/stamp.txt", use_unique_id=False))
        self.dump(str(self.who))


# A replacing commit of StampedSide on "another host" that stops itself (SIGSTOP) right after it wrote its pending
# manifest, before it moves its side file.
PAUSED = textwrap.dedent(
    """
    import contextlib, os, signal, socket, sys
    from pathlib import Path
    sys.path[:0] = [sys.argv[2], sys.argv[3], os.path.dirname(sys.argv[3])]  # tests/ for test_side_record_kill's imports
    workspace, flag = sys.argv[1], sys.argv[4]
    socket.gethostname = lambda: "paused.example"  # another machine (its own lock folder too)
    import kart_core
    from kart_core.storage import local
    from test_side_record_kill import StampedSide

    original = local.LocalStorage.atomic_write

    @contextlib.contextmanager
    def atomic_write(self, path):
        with original(self, path) as file:
            yield file
        if path.endswith(".json") and "/log/manifest/StampedSide_" in path and not Path(flag).exists():
            Path(flag).touch()
            os.kill(os.getpid(), signal.SIGSTOP)  # the pending manifest is written; nothing moved yet

    local.LocalStorage.atomic_write = atomic_write
    try:
        task = StampedSide(who="paused", rerun=True, workspace_directory=workspace)
        print("BUILT", kart_core.build(task, log_level=30), flush=True)
    except BaseException as exc:
        print("FAILED", type(exc).__name__, str(exc).replace(chr(10), " "), flush=True)
    """
)


def test_a_commit_paused_before_its_side_file_and_taken_over_leaves_the_taker_s_side_file(
    tmp_path: Path, signed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Side files now move before the outputs, so before each a replacing commit reads its marker (as before each
    output's move): a commit paused past the lease and taken over by another host fails before it moves its side
    file. Without that read it moved its side file and record over the taker's, then failed at its output's move:
    the taker complete, its side file refused for good."""
    monkeypatch.setenv(commit_marker.LEASE_VARIABLE, "2")
    workspace = str(tmp_path / "ws")
    _build(StampedSide(workspace_directory=workspace))
    script = tmp_path / "paused.py"
    script.write_text(PAUSED)
    locks = tmp_path / "paused-host-locks"
    locks.mkdir()
    flag = tmp_path / "stopped"
    env = {**os.environ, commit_marker.LEASE_VARIABLE: "2", "KART_LOCK_DIR": str(locks)}
    process = subprocess.Popen(
        [sys.executable, str(script), workspace, REPO, HERE, str(flag)],
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
        assert _build(StampedSide(who="taker", rerun=True, workspace_directory=workspace)) == ["taker"]
    finally:
        os.kill(process.pid, signal.SIGCONT)
    stdout, stderr = process.communicate(timeout=120)
    # The paused commit finds its marker taken and the taker's commit finished: it keeps that commit (attacker at26
    # G1; it failed with MarkerLostError before), never its own side file.
    assert stdout == "BUILT ['taker']\n", (stdout, stderr[-3000:])
    task = StampedSide(workspace_directory=workspace)
    assert task.complete() and task.output().load() == ["taker"]
    side = task.make_target("shared/stamp.txt", use_unique_id=False)
    assert side.load() == ["taker"]  # before: refused (the paused commit's file and record over the taker's)


def _stopped(pid: int) -> bool:
    """Whether the process ``pid`` is stopped (state T in /proc)."""
    with open(f"/proc/{pid}/stat") as file:
        return file.read().rpartition(")")[2].split()[0] in ("T", "t")
