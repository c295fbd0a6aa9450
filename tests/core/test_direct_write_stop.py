"""A run leaves the interpreter as it found it: no asynchronous-exception signal left set.

6639860 stopped a taken-over run's code with ``PyThreadState_SetAsyncExc`` and "took back" a stop not yet raised
when the body returned by calling it again with NULL, at the end of every run. On CPython 3.11 that call sets
the interpreter's async-exception signal, which only a thread raising its exception clears: after any build,
every instruction of the process went through the pending-calls path, and under a trace function (coverage, a
debugger, ``sys.settrace``) a plain loop of calls never finished (CI at 5bc1653 hung in a later test, at 100 %
CPU). Each case runs in its own process and then runs 200,000 traced calls (about 0.1 s); the old code never
finished them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

_SCRIPT = """
import os, sys
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, os.path.dirname(sys.argv[1]))  # tests/: test_marker_ownership imports fork_server from there
import kart_core
from kart_core import commit_marker
from test_marker_ownership import Appending, Owned

os.environ[commit_marker.LEASE_VARIABLE] = "0.6"
workspace, case = sys.argv[2], sys.argv[3]
if case == "plain":
    kart_core.build(Owned(workspace_directory=workspace), log_level=40)
    print("built")
else:
    try:
        kart_core.build(Appending(workspace_directory=workspace), log_level=40)
    except kart_core.GokartBuildError as error:
        print("stopped" if "MarkerLostError" in str(error) else error)


def traced(*_: object) -> None:
    return None


def call() -> None:
    pass


sys.settrace(traced)
for _ in range(200_000):
    call()
sys.settrace(None)
print("traced calls finished")
"""


@pytest.mark.parametrize(("case", "said"), [("plain", "built"), ("taken", "stopped")])
def test_after_a_run_traced_code_still_runs(case: str, said: str, tmp_path: Path) -> None:
    """A plain by-path run, and one stopped because another process took its marker over."""
    script = tmp_path / "run.py"
    script.write_text(_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), str(HERE), str(tmp_path / "ws"), case],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == [said, "traced calls finished"], done.stdout + done.stderr
