"""The test servers start on a free port even when another process takes the port first, and die with the test
process that started them however it dies."""

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
import pytest
import services

TESTS = os.path.dirname(os.path.abspath(services.__file__))


def test_a_server_whose_port_was_taken_starts_again_on_another_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if services.redis_server_binary() is None:
        pytest.skip("redis-server not installed")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken])
        real_free_port = services.free_port
        monkeypatch.setattr(services, "free_port", lambda: next(ports, None) or real_free_port())
        with services.redis_server(str(tmp_path)) as server:
            assert server.port != taken
            with socket.create_connection((server.host, server.port)) as client:
                client.sendall(b"PING\r\n")
                assert client.recv(7) == b"+PONG\r\n"


# A test file for a child pytest: it starts the servers through the shared fixtures, says which processes
# serve them and on which ports, and waits to be killed.
_HOLDING_TEST = """
import json
import os
import time

import psutil


def test_hold(s3_server, redis_service, gcs_server):
    me = psutil.Process()
    servers = {"moto": s3_server.port, "redis": redis_service.port, "gcs": gcs_server.port}
    processes = {p.pid: p.create_time() for p in me.children(recursive=True)}
    with open(os.environ["HOLD_REPORT"] + ".tmp", "w") as report:
        json.dump({"ports": servers, "processes": processes}, report)
    os.replace(os.environ["HOLD_REPORT"] + ".tmp", os.environ["HOLD_REPORT"])
    time.sleep(600)
"""


def _child_pytest(tmp_path: Path, test_file: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """``pytest`` on ``test_file`` (written to ``tmp_path``) with the shared service fixtures, in its own
    session (as a terminal's job would be); its output in ``tmp_path/child.log``."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # the child's rootdir: not the repository's config
    (tmp_path / "test_hold.py").write_text(test_file)
    pythonpath = os.pathsep.join(filter(None, [TESTS, os.environ.get("PYTHONPATH")]))
    with (tmp_path / "child.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "service_fixtures", "-p", "no:cacheprovider"]
            + ["-p", "no:xdist", "--basetemp", str(tmp_path / "base"), "-q", "test_hold.py"],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": pythonpath, "HOLD_REPORT": str(tmp_path / "report.json"), **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _report(tmp_path: Path, child: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    """The child's report (its servers' ports and its descendant processes) once its test holds them."""
    deadline = time.monotonic() + timeout
    report = tmp_path / "report.json"
    while not report.exists():
        log = (tmp_path / "child.log").read_text(errors="replace")
        assert child.poll() is None, f"the child pytest ended ({child.returncode}):\n{log[-3000:]}"
        assert time.monotonic() < deadline, f"the child pytest did not start its servers in {timeout} s:\n{log[-3000:]}"
        time.sleep(0.1)
    answer: dict[str, Any] = json.loads(report.read_text())
    return answer


def _alive(processes: dict[str, float]) -> list[str]:
    """The processes of ``processes`` (pid -> creation time) still running (zombies have ended)."""
    alive = []
    for pid, created in processes.items():
        with contextlib.suppress(psutil.NoSuchProcess):
            process = psutil.Process(int(pid))
            if process.create_time() == created and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{pid} {' '.join(process.cmdline())[:120]}")
    return alive


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _kill_leftovers(processes: dict[str, float]) -> None:
    """SIGKILL (by pid) what the test's child started, should the assertion have found it still running."""
    for line in _alive(processes):
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(line.split()[0]), signal.SIGKILL)


def test_a_killed_test_process_takes_its_servers_with_it(tmp_path: Path) -> None:
    """SIGKILL a pytest holding moto, redis and the GCS emulator (no teardown runs): every process it started
    ends and every port closes within a few seconds."""
    for binary in (services.moto_server_binary, services.redis_server_binary, services.gcs_emulator_binary):
        if binary() is None:
            pytest.skip(f"{binary.__name__.removesuffix('_binary')} not installed")
    child = _child_pytest(tmp_path, _HOLDING_TEST)
    processes: dict[str, float] = {}
    try:
        report = _report(tmp_path, child, timeout=120)
        processes = report["processes"]
        ports = report["ports"]
        assert all(_listening(port) for port in ports.values())
        assert len(_alive(processes)) >= 3  # the three servers (and their watchdogs)
        child.kill()
        child.wait()
        deadline = time.monotonic() + 5
        while (_alive(processes) or any(map(_listening, ports.values()))) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _alive(processes) == []
        assert {name: port for name, port in ports.items() if _listening(port)} == {}
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        _kill_leftovers(processes)
