"""Several Kedro sessions running one pipeline at once against one kart workspace, each with its own catalog.

Two environments of one project, two requests of a service, a notebook's thread pool: the node has one key
(same code, same input), so the sessions share one node run and, in one process, one node run object (luigi's
instance cache, ``TaskOnKart.kart_by_values``). Each session's persistent output must end up holding the node's
result, as when the sessions run one after the other. ``session_nodes.double`` waits until every session has
planned the node, so they overlap on it. Attacker at11, F5: kart before 2026-12-02 kept the session's executor on
the shared object, so one session's node ran with the other's catalog and the first session's output was never
written; and a session that found the node committed by the other one meanwhile only warned about its own
output holding data written outside kart (left stale) while its summary said "cached".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import session_nodes
from kart_kedro import KartRunner, KartThreadRunner

ENVS = ("envA", "envB")
STALE = "STALE FROM LAST WEEK"


def _outputs(tmp_path: Path, stale: bool) -> dict[str, Path]:
    paths = {}
    for env in ENVS:
        (tmp_path / env).mkdir()
        paths[env] = tmp_path / env / "out.json"
        if stale:
            paths[env].write_text(json.dumps(STALE))  # last week's output, written outside kart
    return paths


def _value(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else "no file written"


def _in_threads(runner: Any, workspace: str, paths: dict[str, Path]) -> dict[str, Any]:
    """One session per env in a thread named after it, all at once; each env's output value afterwards."""
    failures: list[BaseException] = []

    def session(env: str) -> None:
        try:
            runner(workspace).run(session_nodes.PIPELINE, session_nodes.catalog(str(paths[env])))
        except BaseException as exc:  # re-raised in the test's thread
            failures.append(exc)

    session_nodes.expect_sessions(len(paths))
    threads = [threading.Thread(target=session, args=(env,), name=env) for env in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    if failures:
        raise failures[0]
    return {env: _value(path) for env, path in paths.items()}


def _kart_runner(workspace: str) -> KartRunner:
    return KartRunner(workspace_directory=workspace)


def _thread_runner(workspace: str) -> KartThreadRunner:
    return KartThreadRunner(max_workers=2, workspace_directory=workspace)


@pytest.mark.parametrize("runner", [_kart_runner, _thread_runner], ids=["KartRunner", "KartThreadRunner"])
def test_sessions_in_threads_write_their_own_outputs(tmp_path: Path, runner: Any) -> None:
    """Proves each session's node ran with its own catalog: on the old code one env's file was never written
    (``no file written``): the first session's run called the executor the second one had put on the shared
    node run object, so it saved into the second session's file, and the second one found it complete."""
    paths = _outputs(tmp_path, stale=False)
    assert _in_threads(runner, str(tmp_path / "ws"), paths) == {"envA": 42, "envB": 42}


def test_sessions_in_threads_replace_outputs_written_outside_kart(tmp_path: Path) -> None:
    """Proves a session that finds the node committed by another session meanwhile still checks its own
    output as a served node is checked: it holds data written outside kart, so the node runs again in that
    session's thread (as in the sequential control below). On the old code one env kept ``STALE`` (its session
    warned and said "cached"), and the node ran once, in one thread, with the other session's catalog."""
    paths = _outputs(tmp_path, stale=True)
    assert _in_threads(_kart_runner, str(tmp_path / "ws"), paths) == {"envA": 42, "envB": 42}
    assert sorted(session_nodes.RAN_IN) == ["envA", "envB"]  # each session ran it, in its own thread


def test_sessions_one_after_the_other(tmp_path: Path) -> None:
    """Control (passes on the old code too): the same two sessions in turn; the second one's output holds data
    written outside kart, so its node runs again and both envs hold the result."""
    paths = _outputs(tmp_path, stale=True)
    session_nodes.expect_sessions(0)
    for env in ENVS:
        KartRunner(workspace_directory=str(tmp_path / "ws")).run(
            session_nodes.PIPELINE, session_nodes.catalog(str(paths[env]))
        )
    assert {env: _value(path) for env, path in paths.items()} == {"envA": 42, "envB": 42}
    assert session_nodes.RAN_IN == [threading.current_thread().name] * 2


def test_sessions_in_two_processes(tmp_path: Path) -> None:
    """Control (passes on the old code too): the two sessions in two processes at once, each with its own node run
    object; both envs hold the result."""
    paths = _outputs(tmp_path, stale=True)
    script = str(Path(session_nodes.__file__))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*sys.path])}
    processes = [
        subprocess.Popen(  # noqa: S603 (this interpreter, this test's own script)
            [sys.executable, script, str(tmp_path / "ws"), str(paths[name])],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ENVS
    ]
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        assert out.strip().splitlines()[-1] == "42"
    assert {name: _value(path) for name, path in paths.items()} == {"envA": 42, "envB": 42}
