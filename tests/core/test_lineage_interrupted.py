"""kart_core.lineage past an upstream whose commit was interrupted (attacker at21 L7): a manifest left pending by a
killed committer, or one that cannot be read, no longer ends the lineage walk as fresh: the tasks built on it are
stale, so a build runs the interrupted upstream first and judges them again. A commit whose committer lives is
waited for as before. Real builds on local disk; the killed commit's state is made as the kill leaves it (the
manifest marked pending, its marker naming a dead process of this host).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest
from test_lineage_requirements import FlByPath, FlLoadsByPath, FlUp

import kart_core
from kart_core import lineage
from kart_core.commit_marker import host_identity, marker_beside
from kart_core.workspace import MANIFEST, log_task_path


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
