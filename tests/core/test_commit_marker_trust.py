"""Markers and manifests are workspace metadata: what they name is confined to the task's own outputs.

Anyone who can write a workspace can write ``log/manifest/*.committing`` and ``*.json``. A marker is
acted upon only for paths that normalise inside the workspace being checked to the task's own outputs
(and kart's aside-names beside them); with signing on, only when signed. Anything else is refused with
a warning naming the marker, nothing it names is touched, and the task counts as incomplete so it runs
again (``kart_core.commit_marker``). Direct markers keep workspace-relative paths, so a copied or moved
workspace resolves them against itself. Another host's marker is waited for ``FOREIGN_MARKER_SECONDS``
at most, whatever time it claims. Real files, real processes, the moto S3 server (tests/services.py).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Literal

import pytest
from by_path_writer import run_writer
from click.testing import CliRunner

import kart_core
from kart_core import commit_marker
from kart_core.cli import cli
from kart_core.commit_marker import MARKER_SUFFIX, host_identity, read_marker
from kart_core.signing import HEADER_SIZE, is_sealed
from kart_core.storage import storage_for
from kart_core.workspace import MANIFEST, log_task_path

TASKS = textwrap.dedent(
    """
    import kart_core

    class Hello(kart_core.TaskOnKart):
        def run(self):
            self.dump("Hello, world!")

    class TrustGreet(kart_core.TaskOnKart):
        def requires(self):
            return Hello(workspace_directory=self.workspace_directory)

        def run(self):
            self.dump(self.load() + "!")
    """
)


@pytest.fixture
def tasks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The task module, importable here, in worker processes and by ``kart tree``."""
    (tmp_path / "trust_tasks.py").write_text(TASKS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    import importlib

    sys.modules.pop("trust_tasks", None)
    return importlib.import_module("trust_tasks")


def _dead_pid() -> int:
    """A process id of this host whose process has exited."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _marker(task: Any) -> str:
    return log_task_path(task, MANIFEST).removesuffix(MANIFEST.extension) + MARKER_SUFFIX


def _put(path: str, data: bytes) -> None:
    with storage_for(path).atomic_write(path) as file:
        file.write(data)


def _read(path: str) -> bytes | None:
    try:
        return storage_for(path).read_bytes(path)
    except FileNotFoundError:
        return None


def _manifest_commit(task: Any) -> str:
    data = _read(log_task_path(task, MANIFEST))
    assert data is not None
    return str(json.loads(data[HEADER_SIZE:] if is_sealed(data) else data)["commit"])


def _forge(any_workspace: str, tmp_path: Path) -> tuple[list[list[str | None]], str, str, str]:
    """Paths outside the workspace: a victim file, where to plant a file, and the attacker's file."""
    if "://" in any_workspace:
        root = any_workspace.rsplit("/", 1)[0]
        victim, planted, evil = f"{root}/victim/data.txt", f"{root}/victim2/planted.txt", f"{root}/evil.txt"
        _put(victim, b"precious")
        moves: list[list[str | None]] = [[victim, None], [planted, evil]]
    else:
        (tmp_path / "victim").mkdir()
        victim, planted = str(tmp_path / "victim/data.txt"), str(tmp_path / "victim2/planted.txt")
        evil = str(tmp_path / "evil.txt")
        (tmp_path / "victim2").mkdir()
        Path(victim).write_text("precious")
        moves = [[str(tmp_path / "victim"), None], [planted, evil]]
    _put(evil, b"evil")
    return moves, victim, planted, evil


def _forged_marker(moves: list[list[str | None]], host: str = "", pid: int = 0, written: float = 0.0) -> bytes:
    document = {
        "commit": "x",
        "host": host or host_identity(),
        "pid": pid or _dead_pid(),
        "written": written,
        "kind": "direct",
        "moves": moves,
    }
    return json.dumps(document).encode()


@pytest.mark.parametrize("check", ["complete", "tree", "build", "build-threads", "build-processes"])
def test_a_forged_direct_marker_touches_nothing_outside_and_the_task_runs_again(
    tasks: Any,
    any_workspace: str,
    signing: bool,
    tmp_path: Path,
    check: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """F1: the marker names absolute paths outside the workspace and a dead writer of this host (beside the
    root task's manifest: a build checks the root first)."""
    greet = tasks.TrustGreet(workspace_directory=any_workspace)
    assert kart_core.build(greet) == "Hello, world!!"
    before = _manifest_commit(greet)
    moves, victim, planted, evil = _forge(any_workspace, tmp_path)
    _put(_marker(greet), _forged_marker(moves))
    with caplog.at_level(logging.WARNING, logger="kart_core"):
        if check == "complete":
            assert not tasks.TrustGreet(workspace_directory=any_workspace).complete()
            assert any(_marker(greet) in record.getMessage() for record in caplog.records)
        elif check == "tree":
            result = CliRunner().invoke(cli, ["tree", "trust_tasks.TrustGreet", "-w", any_workspace])
            assert result.exit_code == 0, result.output
            assert "Greet" in result.output and "PENDING" in result.output
        else:
            workers = 1 if check == "build" else 2
            executor: Literal["thread", "process"] = "process" if check == "build-processes" else "thread"
            again = tasks.TrustGreet(workspace_directory=any_workspace)
            assert kart_core.build(again, workers=workers, executor=executor) == "Hello, world!!"
            assert _manifest_commit(greet) != before  # Greet ran again
            assert _read(_marker(greet)) is None  # its commit replaced the marker
            assert tasks.TrustGreet(workspace_directory=any_workspace).complete()
    assert _read(victim) == b"precious"
    assert _read(planted) is None
    assert _read(evil) == b"evil"


def test_a_marker_naming_a_path_that_climbs_out_is_refused(
    tasks: Any, workspace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A workspace-relative path with ``..``, and another task's output: neither is this task's own (checked
    from the workspace folder, where a kart that took them relative to its working directory found them)."""
    hello = tasks.Hello(workspace_directory=workspace)
    greet = tasks.TrustGreet(workspace_directory=workspace)
    kart_core.build(greet)
    monkeypatch.chdir(workspace)
    (tmp_path / "outside.txt").write_text("keep")
    others = log_task_path(greet, MANIFEST)
    greet_output = json.loads(Path(others).read_text())["outputs"]
    (key,) = greet_output
    for moves in ([["../outside.txt", None]], [[key, None]]):
        _put(_marker(hello), _forged_marker(moves))
        assert not tasks.Hello(workspace_directory=workspace).complete()
        assert (tmp_path / "outside.txt").read_text() == "keep"
        assert os.path.exists(os.path.join(workspace, key))


def test_with_signing_on_an_unsigned_marker_naming_the_tasks_own_output_is_not_acted_upon(
    tasks: Any, any_workspace: str, signing: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """A marker that names only the task's own output and a dead writer: signing off it is undone (the
    output removed); signing on, unsigned, it is left alone (the output stays), and the task runs again."""
    hello = tasks.Hello(workspace_directory=any_workspace)
    kart_core.build(hello)
    data = _read(log_task_path(hello, MANIFEST))
    assert data is not None
    (key,) = json.loads(data[HEADER_SIZE:] if is_sealed(data) else data)["outputs"]
    output = hello.output().path()
    _put(_marker(hello), _forged_marker([[key, None]]))
    with caplog.at_level(logging.WARNING, logger="kart_core"):
        assert not tasks.Hello(workspace_directory=any_workspace).complete()
    assert (_read(output) is not None) is signing
    if signing:
        assert any("unsigned" in r.getMessage() and _marker(hello) in r.getMessage() for r in caplog.records)
    assert kart_core.build(tasks.Hello(workspace_directory=any_workspace)) == "Hello, world!"
    assert tasks.Hello(workspace_directory=any_workspace).complete()


def test_with_signing_on_a_killed_writers_own_marker_is_signed_and_undone(
    tmp_path: Path, workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KART_SIGNING_KEY", "a test key of some length")
    assert run_writer(tmp_path, workspace, "kill-old").returncode == -signal.SIGKILL  # in place, as before 2026-12-02
    manifest = run_writer(tmp_path, workspace, "marker").stdout.strip()
    marker = commit_marker.marker_beside(manifest)
    assert Path(marker).read_bytes().startswith(b"KART")  # signed
    assert run_writer(tmp_path, workspace, "check").stdout.split() == ["False", "None"]
    assert not os.path.exists(marker)  # undone: the partial file removed
    assert [name for name in os.listdir(Path(workspace, "dw"))] == []
    assert run_writer(tmp_path, workspace, "run").stdout.split() == ["['whole']"]


# --- F4: a copied or moved workspace -----------------------------------------------------------


def _output(workspace: str | Path) -> list[Path]:
    return sorted(Path(workspace, "dw").iterdir())


@pytest.mark.parametrize("how", ["copy", "move"])
@pytest.mark.parametrize("rerun", ["", "rerun"])
def test_a_killed_direct_writer_in_a_copied_workspace_is_undone_in_the_copy(
    tmp_path: Path, how: str, rerun: str
) -> None:
    original, copy = tmp_path / "wsA", tmp_path / "wsB"
    if rerun:
        assert run_writer(tmp_path, str(original), "run", "first").stdout.split() == ["['first']"]
    assert run_writer(tmp_path, str(original), "kill-old", "second", rerun).returncode == -signal.SIGKILL
    marker = commit_marker.marker_beside(run_writer(tmp_path, str(original), "marker").stdout.strip())
    relative = os.path.relpath(marker, original)
    moves = json.loads(Path(marker).read_text())["moves"]
    assert all(not os.path.isabs(path) for move in moves for path in move if path is not None)
    if how == "copy":
        shutil.copytree(original, copy, symlinks=True)
        kept = {path: path.read_bytes() for path in _output(original)}
    else:
        os.rename(original, copy)
    assert run_writer(tmp_path, str(copy), "check").stdout.split() == ["False", "None"]
    assert not (copy / relative).exists()
    if how == "copy":  # the original is not touched by a check of the copy
        assert {path: path.read_bytes() for path in _output(original)} == kept and (original / relative).exists()
    if rerun:  # the old output is back in the copy: its commit stands
        assert run_writer(tmp_path, str(copy), "check").stdout.split() == ["True", "['first']"]
    else:  # the partial file is gone: the task runs again
        assert run_writer(tmp_path, str(copy), "check").stdout.split() == ["False", "None"]
        assert run_writer(tmp_path, str(copy), "run").stdout.split() == ["['whole']"]
    assert [path.name for path in _output(copy) if path.name.startswith(".")] == []


def _legacy(marker: str, root: Path) -> None:
    """Rewrite the marker as a kart before 2026-12-01 wrote it: the writer's absolute paths."""
    document = json.loads(Path(marker).read_text())
    document["moves"] = [
        [str(root / path), None if aside is None else str(root / aside)] for path, aside in document["moves"]
    ]
    Path(marker).write_text(json.dumps(document))


def test_an_older_karts_absolute_marker_is_honoured_in_place_and_refused_in_a_copy(tmp_path: Path) -> None:
    original, copy = tmp_path / "wsA", tmp_path / "wsB"
    assert run_writer(tmp_path, str(original), "kill-old").returncode == -signal.SIGKILL
    marker = commit_marker.marker_beside(run_writer(tmp_path, str(original), "marker").stdout.strip())
    _legacy(marker, original)
    shutil.copytree(original, copy, symlinks=True)
    # In the copy the paths lie in the original: refused, nothing touched, the task runs again.
    checked = run_writer(tmp_path, str(copy), "check")
    assert checked.stdout.split() == ["False", "None"]
    assert "ignoring the marker" in checked.stderr
    assert [path.read_text() for path in _output(original)] == ["wh"]
    assert run_writer(tmp_path, str(copy), "run").stdout.split() == ["['whole']"]
    # In place they are the task's own outputs: undone.
    assert run_writer(tmp_path, str(original), "check").stdout.split() == ["False", "None"]
    assert _output(original) == [] and not os.path.exists(marker)


# --- kart verify --delete --------------------------------------------------------------------------


def test_verify_delete_never_follows_a_forged_marker_out_of_the_workspace(
    tasks: Any, workspace: str, tmp_path: Path
) -> None:
    hello = tasks.Hello(workspace_directory=workspace)
    kart_core.build(hello)
    moves, victim, planted, evil = _forge(workspace, tmp_path)
    _put(_marker(hello), _forged_marker(moves))
    report = CliRunner().invoke(cli, ["verify", "-w", workspace])
    assert "refused as damaged or forged metadata" in report.output
    deleted = CliRunner().invoke(cli, ["verify", "-w", workspace, "--delete"])
    assert victim not in deleted.output
    assert Path(victim).read_text() == "precious" and not os.path.exists(planted) and os.path.exists(evil)


def test_verify_delete_never_deletes_a_file_a_manifest_names_outside_the_workspace(
    tasks: Any, workspace: str, tmp_path: Path
) -> None:
    """F2: a pending manifest whose key climbs out with ``..`` is a damaged manifest."""
    hello = tasks.Hello(workspace_directory=workspace)
    kart_core.build(hello)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside/keep.txt").write_text("keep")
    path = log_task_path(hello, MANIFEST)
    document = json.loads(Path(path).read_text())
    document["pending"] = True
    (entry,) = document["outputs"].values()
    document["outputs"]["../outside/keep.txt"] = entry
    Path(path).write_text(json.dumps(document))
    report = CliRunner().invoke(cli, ["verify", "-w", workspace])
    assert "not a path inside the workspace" in report.output
    CliRunner().invoke(cli, ["verify", "-w", workspace, "--delete"])
    assert (tmp_path / "outside/keep.txt").read_text() == "keep"


# --- F9: another host's marker whose time lies in the future ------------------------------------


def test_a_foreign_marker_from_the_future_is_waited_for_a_bounded_time_with_one_log_line(
    tasks: Any,
    any_workspace: str,
    signing: bool,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    hello = tasks.Hello(workspace_directory=any_workspace)
    kart_core.build(hello)
    marker = _marker(hello)
    _put(marker, json.dumps({"commit": "x", "host": "otherhost", "pid": 4242, "written": 99999999999}).encode())
    monkeypatch.setattr(commit_marker, "FOREIGN_MARKER_SECONDS", 0.5)
    result: list[bool] = []
    checker = threading.Thread(target=lambda: result.append(tasks.Hello(workspace_directory=any_workspace).complete()))
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="kart_core"):
        checker.start()
        checker.join(timeout=30)
        assert not checker.is_alive(), "complete() still waits for the marker"
    messages = [r.getMessage() for r in caplog.records if marker in r.getMessage()]
    assert len(messages) == 1
    if signing:  # unsigned: not waited for at all, and the task runs again
        assert result == [False] and "unsigned" in messages[0]
    else:  # waited for the cap, then found to have moved nothing (the manifest is not pending): removed
        assert result == [True] and time.monotonic() - started >= 0.5
        assert "otherhost" in messages[0] and "4242" in messages[0] and "Hello[" in messages[0]
        assert read_marker(storage_for(marker), marker) is None


# --- a refused marker beside a task with no manifest ------------------------------------------------


def _unsigned_commit_marker() -> bytes:
    """A commit marker of a dead process of this host, unsigned (refused with signing on)."""
    return json.dumps({"commit": "x", "host": host_identity(), "pid": _dead_pid(), "written": 0.0}).encode()


@pytest.mark.parametrize("planted", ["forged-paths", "unsigned-commit", "killed-writer"])
@pytest.mark.parametrize("outputs", ["none", "gokart"])
@pytest.mark.parametrize("executor", ["thread", "process"])
def test_a_refused_marker_beside_a_task_with_no_manifest_is_replaced_by_its_first_run(
    tasks: Any,
    any_workspace: str,
    tmp_path: Path,
    planted: str,
    outputs: str,
    executor: Literal["thread", "process"],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The first commit of a dump-only task (it creates the manifest, so it puts no marker of its own) removes a
    marker refused as damaged metadata, or a killed by-path writer's (whose undo would remove the committed
    output), touching nothing it names: the second build is cached. ``gokart``: the output is already there,
    written without a manifest (as gokart writes it)."""
    if planted == "unsigned-commit":
        monkeypatch.setenv("KART_SIGNING_KEY", "a test key of some length")
    moves, victim, planted_path, evil = _forge(any_workspace, tmp_path)
    hello = tasks.Hello(workspace_directory=any_workspace)
    if outputs == "gokart":
        _put(hello.output().path(), b"\x80\x04\x95\x11\x00\x00\x00\x00\x00\x00\x00\x8c\rHello, world!\x94.")
    marker = _marker(hello)
    if planted == "killed-writer":  # a run that wrote the output by path, killed (a dead process of this host)
        key = hello.output().path()[len(any_workspace) + 1 :]
        _put(marker, _forged_marker([[key, None]]))
    else:
        _put(marker, _forged_marker(moves) if planted == "forged-paths" else _unsigned_commit_marker())
    with caplog.at_level(logging.WARNING, logger="kart_core"):
        assert kart_core.build(tasks.Hello(workspace_directory=any_workspace), executor=executor) == "Hello, world!"
    assert _read(marker) is None  # its commit replaced the refused marker
    if planted == "killed-writer" and outputs == "gokart":
        # The build's first check found the output there and undid the killed writer's file (and the marker).
        assert any("was killed" in r.getMessage() for r in caplog.records)
    elif "://" not in any_workspace:  # it created the manifest (object storage: a first commit puts its own marker)
        (told,) = [r.getMessage() for r in caplog.records if "removed the marker" in r.getMessage()]
        assert marker in told and "Nothing it names was touched" in told
    first = _manifest_commit(hello)
    assert tasks.Hello(workspace_directory=any_workspace).complete()
    assert kart_core.build(tasks.Hello(workspace_directory=any_workspace), executor=executor) == "Hello, world!"
    assert _manifest_commit(hello) == first  # the second build was cached
    assert _read(victim) == b"precious" and _read(planted_path) is None and _read(evil) == b"evil"
