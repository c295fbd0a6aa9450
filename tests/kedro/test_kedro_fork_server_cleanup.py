"""The fork server of the Kedro runs (tests/fork_server.py, through kedro_project.run_kedro) ends with the test
process that started it, SIGKILL included."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import killed_pytest
import pytest

_HOLDING_TEST = """
import threading
import time

from kedro_project import copy_project, edit, run_kedro
from killed_pytest import write_report


def test_hold(tmp_path):
    project = copy_project(tmp_path / "project")
    started = tmp_path / "node-started"
    nodes = project / "src" / "kart_kedro_demo" / "nodes.py"
    edit(nodes, "def clean(raw_numbers: pd.DataFrame, min_value: float) -> pd.DataFrame:\\n",
         "def clean(raw_numbers: pd.DataFrame, min_value: float) -> pd.DataFrame:\\n"
         f"    open({str(started)!r}, 'w').close()\\n    import time; time.sleep(600)\\n")
    threading.Thread(target=run_kedro, args=(project, "run"), kwargs={"check": False}, daemon=True).start()
    deadline = time.monotonic() + 240
    while not started.exists():
        assert time.monotonic() < deadline, "the kedro run never reached its first node"
        time.sleep(0.2)
    write_report({})
    time.sleep(600)
"""


@pytest.mark.slow
def test_a_killed_test_process_takes_its_kedro_fork_server_and_run_with_it(tmp_path: Path) -> None:
    """SIGKILL a pytest whose `kedro run` (forked by the server) is inside a node: the server, the forked run
    and the watchdog end within a few seconds (the server ended with its stdin, but only between runs)."""
    if "PYTHONHASHSEED" in os.environ:
        pytest.skip("with PYTHONHASHSEED set, run_kedro starts a plain kedro subprocess, not the fork server")
    child = killed_pytest.start(tmp_path, _HOLDING_TEST, [os.path.dirname(__file__)])
    held: dict[str, Any] = {"processes": {}}
    try:
        held = killed_pytest.report(tmp_path, child, timeout=300)
        assert len(killed_pytest.alive(held["processes"])) >= 2  # the server and its forked run (and a watchdog)
        assert killed_pytest.kill_and_wait(child, held, within=8) == ([], [])
    finally:
        killed_pytest.clean_up(child, held["processes"])
