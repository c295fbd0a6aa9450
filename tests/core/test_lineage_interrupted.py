"""kart_core.lineage past an upstream whose commit was interrupted (attacker at21 L7): a manifest left pending by a
killed committer, or one that cannot be read, no longer ends the lineage walk as fresh: the tasks built on it are
stale, so a build runs the interrupted upstream first and judges them again. A commit whose committer lives is
waited for as before. Real builds on local disk; the killed commit's state is made as the kill leaves it (the
manifest marked pending, its marker naming a dead process of this host).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from typing import Any

import pytest
from test_lineage_requirements import FlByPath, FlLoads, FlLoadsByPath, FlUp

import kart_core
from kart_core import lineage
from kart_core.commit_marker import host_identity, marker_beside
from kart_core.workspace import MANIFEST, log_task_path


class _OnLoads(kart_core.TaskOnKart[int]):
    def requires(self) -> FlLoads:
        return FlLoads(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(self.load() * 100)


def _build(task: Any, **kwargs: Any) -> Any:
    return kart_core.build(task, reset_register=False, **kwargs)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _leave_pending(task: Any, pid: int) -> None:
    """``task``'s manifest as a replacing commit killed between its moves leaves it: pending, its marker beside."""
    path = log_task_path(task, MANIFEST)
    with open(path, "rb") as file:
        document = json.loads(file.read())
    document["pending"] = True
    with open(path, "w") as file:
        file.write(json.dumps(document, sort_keys=True, separators=(",", ":")))
    marker = {"commit": document["commit"], "host": host_identity(), "pid": pid, "written": time.time()}
    with open(marker_beside(path), "w") as file:
        file.write(json.dumps(marker))


def _truncate(task: Any) -> None:
    path = log_task_path(task, MANIFEST)
    with open(path, "rb") as file:
        data = file.read()
    with open(path, "wb") as file:
        file.write(data[: len(data) // 2])


@pytest.mark.parametrize("state", ["pending", "unreadable"])
def test_a_change_behind_an_interrupted_upstream_still_reruns_its_readers(workspace: str, state: str) -> None:
    """Up <- ByPath <- Top built (1100); ByPath's manifest left by a killed commit (or unreadable); Up rerun with
    other content; a build of Top runs ByPath again, then Top: 2100, not 1100."""
    ws = workspace
    assert _build(FlLoadsByPath(workspace_directory=ws)) == 1100
    by_path = FlByPath(workspace_directory=ws)
    if state == "pending":
        _leave_pending(by_path, _dead_pid())
    else:
        _truncate(by_path)
    _build(FlUp(value=2, rerun=True, workspace_directory=ws))
    top = FlLoadsByPath(workspace_directory=ws)
    verdict = lineage.stale_verdict([top.output()], None, top.kart_requires)
    assert verdict is not None and verdict.behind == [by_path.kart_label()]
    assert _build(FlLoadsByPath(workspace_directory=ws)) == 2100


def test_a_commit_in_progress_upstream_is_not_claimed(workspace: str) -> None:
    """While the committer lives (this process, here) the pending manifest is a commit in progress: nothing claimed."""
    ws = workspace
    assert _build(FlLoadsByPath(workspace_directory=ws)) == 1100
    _leave_pending(FlByPath(workspace_directory=ws), os.getpid())
    top = FlLoadsByPath(workspace_directory=ws)
    assert lineage.stale_verdict([top.output()], None, top.kart_requires) is None
    assert not lineage.interrupted(log_task_path(FlUp(workspace_directory=ws), MANIFEST) + ".none", None)


def _leave_pending_of_another_host(task: Any, age: float) -> None:
    """``task``'s manifest as a commit killed on another host (a preempted worker on a shared workspace) leaves it:
    pending, its marker naming a process of another host, last written ``age`` seconds ago."""
    _leave_pending(task, 4242)
    marker = marker_beside(log_task_path(task, MANIFEST))
    with open(marker) as file:
        document = json.loads(file.read())
    document["host"] = "preempted-worker@0123456789ab"
    with open(marker, "w") as file:
        file.write(json.dumps(document))
    written = time.time() - age
    os.utime(marker, (written, written))


def test_a_change_behind_another_hosts_long_dead_commit_reruns_its_readers(
    workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attacker at22 M5: a pending manifest whose marker names another host ended the walk as fresh however old the
    marker (2.5 h: Top served 1100 for good). Past three leases since its last write it counts as a killed commit:
    Top is stale, the build takes the commit over (after one lease seen unchanged) and runs ByPath, then Top."""
    monkeypatch.setenv("KART_DIRECT_LEASE_SECONDS", "1")
    ws = workspace
    assert _build(FlLoadsByPath(workspace_directory=ws)) == 1100
    by_path = FlByPath(workspace_directory=ws)
    _leave_pending_of_another_host(by_path, age=2.5 * 3600)
    _build(FlUp(value=2, rerun=True, workspace_directory=ws))
    top = FlLoadsByPath(workspace_directory=ws)
    verdict = lineage.stale_verdict([top.output()], None, top.kart_requires)
    assert verdict is not None and verdict.behind == [by_path.kart_label()]
    assert _build(FlLoadsByPath(workspace_directory=ws)) == 2100


def test_another_hosts_long_dead_commit_is_taken_over_without_waiting_a_lease(
    workspace: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Attacker at23 A3: with the default lease (5 minutes) a marker last written 2.5 hours ago (the store's time)
    made the build wait until it had seen it unchanged for a lease, twice (ten minutes), though the walk had judged
    it dead. Now the run takes it over at once: no wait is announced, and Top is 2100."""
    monkeypatch.delenv("KART_DIRECT_LEASE_SECONDS", raising=False)
    ws = workspace
    assert _build(FlLoadsByPath(workspace_directory=ws)) == 1100
    by_path = FlByPath(workspace_directory=ws)
    _leave_pending_of_another_host(by_path, age=2.5 * 3600)
    _build(FlUp(value=2, rerun=True, workspace_directory=ws))
    with caplog.at_level(logging.INFO, logger="kart_core"):
        assert _build(FlLoadsByPath(workspace_directory=ws)) == 2100
    assert not [r for r in caplog.records if "waiting for the commit of process" in r.getMessage()]


@pytest.mark.parametrize("lease", ["1", None])
def test_another_hosts_commit_within_three_leases_is_not_claimed(
    workspace: str, monkeypatch: pytest.MonkeyPatch, lease: str | None
) -> None:
    """A marker of another host written within three leases (a live committer rewrites it every third of one) is a
    commit in progress; with the default lease (5 minutes) a marker 10 minutes old is one too."""
    if lease is None:
        monkeypatch.delenv("KART_DIRECT_LEASE_SECONDS", raising=False)
    else:
        monkeypatch.setenv("KART_DIRECT_LEASE_SECONDS", lease)
    ws = workspace
    assert _build(FlLoadsByPath(workspace_directory=ws)) == 1100
    by_path = FlByPath(workspace_directory=ws)
    _leave_pending_of_another_host(by_path, age=1.0 if lease else 600.0)
    top = FlLoadsByPath(workspace_directory=ws)
    assert lineage.stale_verdict([top.output()], None, top.kart_requires) is None
    path = log_task_path(by_path, MANIFEST)
    assert not lineage.interrupted(path, lineage.read_unverified(lineage.storage_for(path), path, run=False))


def test_another_hosts_long_dead_commit_on_s3_reruns_its_readers(
    s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same on object storage, by the store's own time of the marker's write (a lease of 1 s: three of them
    pass in the sleep)."""
    monkeypatch.setenv("KART_DIRECT_LEASE_SECONDS", "1")
    ws = f"s3://{s3_bucket}/ws"
    assert _build(_OnLoads(workspace_directory=ws)) == 1200
    by_path = FlLoads(workspace_directory=ws)
    path = log_task_path(by_path, MANIFEST)
    storage = lineage.storage_for(path)
    document = json.loads(storage.read_bytes(path))
    document["pending"] = True
    with storage.atomic_write(path) as file:
        file.write(json.dumps(document, sort_keys=True, separators=(",", ":")).encode())
    marker = {"commit": document["commit"], "host": "preempted-worker@0123456789ab", "pid": 4242, "written": 0.0}
    with storage.atomic_write(marker_beside(path)) as file:
        file.write(json.dumps(marker).encode())
    top = _OnLoads(workspace_directory=ws)
    assert lineage.stale_verdict([top.output()], None, top.kart_requires) is None  # just written: in progress
    time.sleep(4.5)  # the store's times may be whole seconds
    _build(FlUp(value=2, rerun=True, workspace_directory=ws))
    verdict = lineage.stale_verdict([top.output()], None, top.kart_requires)
    assert verdict is not None and verdict.behind == [by_path.kart_label()]
    assert _build(_OnLoads(workspace_directory=ws)) == 2200
