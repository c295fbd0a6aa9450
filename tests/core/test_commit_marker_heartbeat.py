"""A dump-only task's commit keeps its marker fresh until its last output moved, so another host waits for it.

A commit that replaces a task's outputs puts a marker beside its manifest (``kart_core.commit_marker``). Another
host without a shared lock (no ``redis_host``) cannot ask the committer's file lock, so it counts the marker as a
live commit for ``commit_marker.foreign_seconds()`` after it was last written (the lease,
``KART_DIRECT_LEASE_SECONDS``, when set) and then takes the task for a killed commit's and runs it again. The
marker used to be written once, so a commit longer than that (copying many or large outputs on object storage)
was run again elsewhere while it still moved its outputs. Here the lease is 1.5 s and a rerun of a task with many
outputs commits on the moto S3 server (each output one server-side copy) for longer than that, while a second
process "on another host" (its host name faked, its own lock folder: one machine's file locks do not reach
another) checks the task.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import kart_core
from kart_core import commit_marker
from kart_core.commit_marker import Marker, read_marker
from kart_core.storage import storage_for

REPO = str(Path(__file__).resolve().parents[2])
LEASE = 1.5
OUTPUTS = 300

SCRIPT = textwrap.dedent(
    """
    import os, socket, sys, time
    sys.path.insert(0, sys.argv[2])
    workspace, mode, value, host, ran, outputs = sys.argv[1], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], int(sys.argv[7])
    if host:
        socket.gethostname = lambda: host  # stands in for another machine (which has its own lock folder too)
    import luigi, kart_core
    from kart_core import commit_marker
    from kart_core.storage import storage_for
    from kart_core.workspace import MANIFEST, log_task_path

    class Many(kart_core.TaskOnKart):
        value = luigi.Parameter(default="first", significant=False)

        def output(self):
            return {f"p{i}": self.make_target(f"many/p{i}.pkl") for i in range(outputs)}

        def run(self):
            with open(ran, "a") as file:
                file.write(self.value + "\\n")
            for i in range(outputs):
                self.dump(self.value, f"p{i}")

    task = Many(value=value, rerun=mode == "rerun", workspace_directory=workspace)
    marker = commit_marker.marker_beside(log_task_path(task, MANIFEST))
    if mode == "marker":
        print(marker)
    elif mode == "other-host":
        # What an older kart waited for (FOREIGN_MARKER_SECONDS) is the lease here too.
        commit_marker.FOREIGN_MARKER_SECONDS = commit_marker.lease_seconds()
        deadline = time.monotonic() + 120
        while not storage_for(marker).exists(marker):
            assert time.monotonic() < deadline, "the commit's marker never appeared"
            time.sleep(0.01)
        seen = time.monotonic()
        done = task.complete()
        print(done, round(time.monotonic() - seen, 3))
        print(kart_core.build(task, log_level=30)["p0"])
    else:
        print(kart_core.build(task, log_level=30)["p0"])
    """
)


def _start(tmp_path: Path, workspace: str, mode: str, value: str, host: str = "") -> subprocess.Popen[str]:
    script = tmp_path / "many_outputs.py"
    script.write_text(SCRIPT)
    env = {**os.environ, commit_marker.LEASE_VARIABLE: str(LEASE)}
    if host:
        (tmp_path / "other-host-locks").mkdir(exist_ok=True)
        env["KART_LOCK_DIR"] = str(tmp_path / "other-host-locks")
    ran = str(tmp_path / f"ran-{mode}")
    return subprocess.Popen(
        [sys.executable, str(script), workspace, REPO, mode, value, host, ran, str(OUTPUTS)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env,
    )


def _finished(process: subprocess.Popen[str]) -> list[str]:
    stdout, stderr = process.communicate(timeout=240)
    assert process.returncode == 0, stderr
    return stdout.split()


@pytest.mark.slow
def test_another_host_waits_for_a_dump_only_commit_longer_than_the_lease(tmp_path: Path, s3_bucket: str) -> None:
    workspace = f"s3://{s3_bucket}/ws"
    assert _finished(_start(tmp_path, workspace, "build", "first")) == ["first"]
    other = _start(tmp_path, workspace, "other-host", "two", host="elsewhere.example")  # imports, then polls
    time.sleep(1.0)
    first = _start(tmp_path, workspace, "rerun", "one")
    assert _finished(first) == ["one"]
    done, waited, loaded = _finished(other)
    # The commit outlasted the lease (else this test shows nothing), and was waited for all along.
    assert float(waited) > LEASE, f"the commit took {waited} s: too short to outlast the lease"
    assert (done, loaded) == ("True", "one")
    assert not (tmp_path / "ran-other-host").exists()  # the other host never ran the task
    assert (tmp_path / "ran-rerun").read_text() == "one\n"
    marker = _finished(_start(tmp_path, workspace, "marker", ""))[0]
    assert read_marker(storage_for(marker), marker) is None


class Once(kart_core.TaskOnKart[str]):
    def run(self) -> None:
        self.dump("once")


def test_a_foreign_commit_marker_that_is_not_rewritten_counts_as_live_for_the_lease(
    workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the lease set, another host's commit marker counts as live for the lease after it was last written
    (no longer for FOREIGN_MARKER_SECONDS, 300 s), then a commit that moved nothing is cleared."""
    assert kart_core.build(Once(workspace_directory=workspace)) == "once"
    monkeypatch.setenv(commit_marker.LEASE_VARIABLE, "0.5")
    assert commit_marker.foreign_seconds() == 0.5
    marker = commit_marker.marker_path(Once(workspace_directory=workspace).output().record)
    Path(marker).write_bytes(Marker("c", "elsewhere.example", 4242, time.time()).to_bytes())
    result: list[bool] = []
    checker = threading.Thread(target=lambda: result.append(Once(workspace_directory=workspace).complete()))
    started = time.monotonic()
    checker.start()
    checker.join(timeout=60)
    assert not checker.is_alive(), "complete() still waits for the marker"
    assert result == [True] and 0.5 <= time.monotonic() - started
    assert not os.path.exists(marker)
    monkeypatch.delenv(commit_marker.LEASE_VARIABLE)
    assert commit_marker.foreign_seconds() == commit_marker.FOREIGN_MARKER_SECONDS == 300.0
