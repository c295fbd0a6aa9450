"""A child pytest that starts test servers through the real fixtures, then is SIGKILLed: what it leaves running.

The child's test file (``HOLD_REPORT``'s writer) starts its servers, writes a report with
``write_report(ports)`` (its servers' ports and every process descending from it) and sleeps until killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

TESTS = os.path.dirname(os.path.abspath(__file__))


def write_report(ports: dict[str, int]) -> None:
    """In the child: write ``ports`` and this process's descendants (pid -> creation time) to ``HOLD_REPORT``."""
    processes = {p.pid: p.create_time() for p in psutil.Process().children(recursive=True)}
    target = os.environ["HOLD_REPORT"]
    with open(target + ".tmp", "w") as report:
        json.dump({"ports": ports, "processes": processes}, report)
    os.replace(target + ".tmp", target)


def start(
    tmp_path: Path, test_source: str, paths: list[str], env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Run ``pytest`` on ``test_source`` (written to ``tmp_path/test_hold.py``) with the shared service fixtures
    and ``paths`` (then tests/) importable, in its own session as a terminal's job would be; its output goes
    to ``tmp_path/child.log``."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # the child's rootdir: not the repository's config
    (tmp_path / "test_hold.py").write_text(test_source)
    pythonpath = os.pathsep.join(filter(None, [*paths, TESTS, os.environ.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "pytest", "-p", "service_fixtures", "-p", "no:cacheprovider", "-p", "no:xdist"]
    with (tmp_path / "child.log").open("wb") as log:
        return subprocess.Popen(
            [*command, "--basetemp", str(tmp_path / "base"), "-q", "test_hold.py"],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": pythonpath, "HOLD_REPORT": str(tmp_path / "report.json"), **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def report(tmp_path: Path, child: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    """The child's report (``ports``: name -> port; ``processes``: pid -> creation time) once it is written."""
    deadline = time.monotonic() + timeout
    path = tmp_path / "report.json"
    while not path.exists():
        log = (tmp_path / "child.log").read_text(errors="replace")
        assert child.poll() is None, f"the child pytest ended ({child.returncode}):\n{log[-3000:]}"
        assert time.monotonic() < deadline, f"the child pytest wrote no report in {timeout} s:\n{log[-3000:]}"
        time.sleep(0.2)
    answer: dict[str, Any] = json.loads(path.read_text())
    return answer


def alive(processes: dict[str, float]) -> list[str]:
    """Those of ``processes`` (pid -> creation time) still running, as 'pid command line' (zombies have ended)."""
    found = []
    for pid, created in processes.items():
        with contextlib.suppress(psutil.NoSuchProcess):
            process = psutil.Process(int(pid))
            if process.create_time() == created and process.status() != psutil.STATUS_ZOMBIE:
                found.append(f"{pid} {' '.join(process.cmdline())[:160]}")
    return found


def listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port``."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def kill_and_wait(child: subprocess.Popen[bytes], held: dict[str, Any], within: float) -> tuple[list[str], list[str]]:
    """SIGKILL ``child``; wait up to ``within`` seconds for everything in ``held`` (its report) to end.

    Returns what is still running and the names of the ports still open (both empty when all ended)."""
    child.kill()
    child.wait()
    ports: dict[str, int] = held["ports"]
    deadline = time.monotonic() + within
    while (alive(held["processes"]) or any(map(listening, ports.values()))) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive(held["processes"]), sorted(name for name, port in ports.items() if listening(port))


def clean_up(child: subprocess.Popen[bytes], processes: dict[str, float]) -> None:
    """SIGKILL (by pid) ``child`` and what it started, should a failed test have left them running."""
    if child.poll() is None:
        child.kill()
        child.wait()
    for line in alive(processes):
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(line.split()[0]), signal.SIGKILL)
