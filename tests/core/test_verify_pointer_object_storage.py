"""``kart verify --delete`` on object storage never deletes an object outside the workspace on a planted
pointer's word (``kart_core.inspect.writing``).

A by-path writer of an output outside its workspace leaves a pointer beside the task's record
(``log/manifest/{Class}_{id}.{12 hex}.kart-writing``) naming the output; ``--delete`` removes a killed writer's
file and marker through it. On local disk the marker's and the file's owners must match; object storage has
no owners, so a pointer and a marker planted by anyone who can write the workspace and one other prefix got
any object the credentials reach deleted. Now, with signing off, only objects under the workspace's bucket and
prefix are acted on; with signing on, a run signs its pointers and only a pointer signed by the key is acted
on. Real servers (moto's S3, the GCS emulator), a real killed process; no mocks.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from kart_core.cli import cli
from kart_core.commit_marker import host_identity
from kart_core.inspect.verify import remove_damaged, verify_workspace
from kart_core.signing import ENVIRONMENT_VARIABLE as SIGNING_KEY
from kart_core.storage import storage_for

POINTER = "log/manifest/Export_0123456789abcdef0123456789abcdef.abcdef012345.kart-writing"


@pytest.fixture(params=["s3", "gcs"])
def bucket(request: pytest.FixtureRequest) -> str:
    """A fresh bucket on the S3 server (``s3://``) or the GCS emulator (``gs://``)."""
    if request.param == "s3":
        return f"s3://{request.getfixturevalue('s3_bucket')}"
    return f"gs://{request.getfixturevalue('gcs_bucket')}"


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _put(path: str, data: bytes) -> None:
    with storage_for(path).atomic_write(path) as file:
        file.write(data)


def _exists(path: str) -> bool:
    return storage_for(path).exists(path)


def _left_in_place(output: str) -> None:
    """What an older kart's killed writer left: its partial object at the output's key (a run now writes a private
    object beside it, and the key keeps what it held)."""
    assert not _exists(output)
    _put(output, b"a,b\n1,")


def _plant(workspace: str, target: str) -> str:
    """A killed writer's marker beside ``target`` and a pointer to it in ``workspace`` (same bytes, as kart's)."""
    directory, _, name = target.rpartition("/")
    marker = f"{directory}/.{name}.kart-writing"
    data = json.dumps(
        {"task": "Export[01234567]", "host": host_identity(), "pid": _dead_pid(), "time": 0.0, "path": target}
    ).encode()
    _put(marker, data)
    _put(f"{workspace}/{POINTER}", data)
    return marker


@pytest.mark.parametrize("where", ["data", "ws-other"])  # ws-other shares its first letters with the workspace
def test_a_planted_pointer_to_an_object_outside_the_workspace_deletes_nothing(bucket: str, where: str) -> None:
    workspace = f"{bucket}/ws"
    _put(f"{workspace}/keep.txt", b"the workspace exists")
    target = f"{bucket}/{where}/precious.csv"
    _put(target, b"precious")
    marker = _plant(workspace, target)
    report = verify_workspace(workspace)
    (problem,) = [p for p in report.problems if p.by_path_writer]
    remove_damaged(report)
    assert _exists(target) and _exists(marker) and _exists(f"{workspace}/{POINTER}")  # before: target deleted
    assert "outside the workspace" in problem.detail and "with signing off" in problem.detail
    result = CliRunner().invoke(cli, ["verify", "-w", workspace, "--delete"])
    assert "(deleted)" not in result.output
    assert _exists(target) and _exists(marker)


def test_a_pointer_inside_the_workspace_prefix_is_still_acted_on(bucket: str) -> None:
    workspace = f"{bucket}/ws"
    target = f"{workspace}/exports/partial.csv"
    _put(target, b"a,b\n1,")
    marker = _plant(workspace, target)
    removed = remove_damaged(verify_workspace(workspace))
    assert set(removed) == {target, marker, f"{workspace}/{POINTER}"}
    assert not _exists(target) and not _exists(marker)


TASKS = textwrap.dedent(
    """
    import os, signal, time
    import luigi
    import kart_core
    from kart_core.storage import storage_for
    from kart_core.target import make_target

    class Export(kart_core.TaskOnKart):
        where = luigi.Parameter()

        def output(self):
            return make_target(self.where + "/export.csv")

        def run(self):
            path = self.output().path()
            storage_for(path).file_system.pipe(path, b"a,b\\n1,")
            os.kill(os.getpid(), signal.SIGKILL)  # killed half way

    class Slow(kart_core.TaskOnKart):
        where = luigi.Parameter()
        flag = luigi.Parameter()

        def output(self):
            return make_target(self.where + "/export.csv")

        def run(self):
            path = self.output().path()
            storage_for(path).file_system.pipe(path, b"a,b\\n1,2\\n")
            if os.environ.get("KILL_HALF_WAY"):
                os.kill(os.getpid(), signal.SIGKILL)
            open(self.flag, "w").close()  # the pointer and the marker are there now
            time.sleep(2)
    """
)


@pytest.fixture
def tasks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    (tmp_path / "pointer_tasks.py").write_text(TASKS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    sys.modules.pop("pointer_tasks", None)
    return importlib.import_module("pointer_tasks")


def test_with_signing_on_a_killed_writers_signed_pointer_is_acted_on_and_a_planted_one_is_not(
    tasks: Any, tmp_path: Path, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SIGNING_KEY, "a secret")
    workspace, exports = f"s3://{s3_bucket}/ws", f"s3://{s3_bucket}/exports"
    code = (
        "import kart_core, pointer_tasks; "
        f"kart_core.build(pointer_tasks.Export(where={exports!r}, workspace_directory={workspace!r}))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, env=os.environ.copy())
    assert done.returncode == -9, done.stderr.decode()[-2000:]
    output = f"{exports}/export.csv"
    _left_in_place(output)
    report = verify_workspace(workspace)
    (problem,) = [p for p in report.problems if p.by_path_writer]
    assert "was killed" in problem.detail  # signed by the run: outside the prefix, and acted on
    assert output in remove_damaged(report)
    assert not _exists(output)

    _put(f"s3://{s3_bucket}/data/precious.csv", b"precious")
    marker = _plant(workspace, f"s3://{s3_bucket}/data/precious.csv")  # unsigned, as a planter writes it
    report = verify_workspace(workspace)
    (problem,) = [p for p in report.problems if p.by_path_writer]
    remove_damaged(report)
    assert _exists(f"s3://{s3_bucket}/data/precious.csv") and _exists(marker)  # before: deleted
    assert "signing is on and the pointer" in problem.detail and "unsigned" in problem.detail


def test_with_signing_on_a_signed_pointer_copied_into_another_workspace_deletes_nothing(
    tasks: Any, tmp_path: Path, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attacker at12 A1 (cross): the pointer was signed under its workspace-relative name, the same in every
    workspace, so a copy planted in another workspace verified with the same key got the object deleted."""
    monkeypatch.setenv(SIGNING_KEY, "a secret")
    workspace, other, exports = f"s3://{s3_bucket}/ws", f"s3://{s3_bucket}/ws2", f"s3://{s3_bucket}/exports"
    code = (
        "import kart_core, pointer_tasks; "
        f"kart_core.build(pointer_tasks.Export(where={exports!r}, workspace_directory={workspace!r}))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, env=os.environ.copy())
    assert done.returncode == -9, done.stderr.decode()[-2000:]
    output = f"{exports}/export.csv"
    _left_in_place(output)
    file_system = storage_for(workspace).file_system  # type: ignore[attr-defined]
    (pointer,) = [key for key in file_system.find(f"{s3_bucket}/ws") if key.endswith(".kart-writing")]
    copied = "s3://" + pointer.replace(f"{s3_bucket}/ws/", f"{s3_bucket}/ws2/", 1)
    _put(copied, file_system.cat(pointer))
    report = verify_workspace(other)
    (problem,) = [p for p in report.problems if p.by_path_writer]
    assert remove_damaged(report) == []
    assert _exists(output) and _exists(copied)  # before: the output was deleted through ws2
    assert "signing is on and the pointer" in problem.detail and "another workspace" in problem.detail
    assert output in remove_damaged(verify_workspace(workspace))  # the writer's own workspace still undoes it
    assert not _exists(output)


def test_with_signing_on_a_pointer_put_back_after_its_run_committed_deletes_nothing(
    tasks: Any, tmp_path: Path, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attacker at12 A1 (same): the pointer and marker copied while the run was live, put back after its commit,
    got the committed output outside the workspace deleted by ``kart verify --delete`` on the writer's host."""
    monkeypatch.setenv(SIGNING_KEY, "a secret")
    workspace, exports, flag = f"s3://{s3_bucket}/ws", f"s3://{s3_bucket}/exports", tmp_path / "running"
    code = (
        "import kart_core, pointer_tasks; kart_core.build(pointer_tasks.Slow("
        f"where={exports!r}, flag={str(flag)!r}, workspace_directory={workspace!r}))"
    )
    process = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=os.environ.copy())
    file_system = storage_for(workspace).file_system  # type: ignore[attr-defined]
    deadline = time.monotonic() + 60
    while not flag.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    copied = {key: file_system.cat(key) for key in file_system.find(s3_bucket) if key.endswith(".kart-writing")}
    assert process.wait(timeout=120) == 0
    assert len(copied) == 2  # the pointer in the workspace, the marker beside the output
    output = f"{exports}/export.csv"
    assert _exists(output)
    for key, data in copied.items():
        _put(f"s3://{key}", data)
    file_system.invalidate_cache()
    report = verify_workspace(workspace)
    (problem,) = [p for p in report.problems if p.by_path_writer]
    assert remove_damaged(report) == []
    assert _exists(output)  # before: the committed export was deleted
    assert "its task committed after" in problem.detail


def test_with_signing_on_a_killed_rerun_after_a_commit_still_has_its_partial_object_removed(
    tasks: Any, tmp_path: Path, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The committed run log of an earlier commit (older than the killed rerun's partial object) does not stop
    ``--delete`` from undoing the killed rerun."""
    monkeypatch.setenv(SIGNING_KEY, "a secret")
    workspace, exports, flag = f"s3://{s3_bucket}/ws", f"s3://{s3_bucket}/exports", tmp_path / "running"
    code = (
        "import kart_core, pointer_tasks; kart_core.build(pointer_tasks.Slow("
        f"where={exports!r}, flag={str(flag)!r}, workspace_directory={workspace!r}))"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=os.environ.copy()).returncode == 0
    output = f"{exports}/export.csv"
    storage_for(output).remove(output)
    time.sleep(1.1)  # S3 keeps modification times to the second
    killed = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**os.environ, "KILL_HALF_WAY": "1"})
    assert killed.returncode == -9
    _left_in_place(output)
    report = verify_workspace(workspace)
    (problem,) = [p for p in report.problems if p.by_path_writer]
    assert "was killed" in problem.detail
    assert output in remove_damaged(report)
    assert not _exists(output)
