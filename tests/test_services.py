"""The test servers start on a free port even when another process takes the port first, and die with the test
process that started them however it dies."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import killed_pytest
import pytest
import services


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


# A test file for a child pytest: it starts the servers through the shared fixtures (and luigid), reports which processes
# serve them and on which ports, and waits to be killed.
_HOLDING_TEST = """
import time

from killed_pytest import write_report
from services import luigi_scheduler


def test_hold(s3_server, redis_service, gcs_server, tmp_path):
    with luigi_scheduler(str(tmp_path)) as luigid:
        write_report({"moto": s3_server.port, "redis": redis_service.port, "gcs": gcs_server.port, "luigid": luigid.port})
        time.sleep(600)
"""


def test_a_killed_test_process_takes_its_servers_with_it(tmp_path: Path) -> None:
    """SIGKILL a pytest holding moto, redis, the GCS emulator and luigid (no teardown runs): every process it
    started ends and every port closes within a few seconds."""
    for binary in (services.moto_server_binary, services.redis_server_binary, services.gcs_emulator_binary):
        if binary() is None:
            pytest.skip(f"{binary.__name__.removesuffix('_binary')} not installed")
    child = killed_pytest.start(tmp_path, _HOLDING_TEST, [])
    held: dict[str, Any] = {"processes": {}}
    try:
        held = killed_pytest.report(tmp_path, child, timeout=120)
        assert all(map(killed_pytest.listening, held["ports"].values()))
        assert len(killed_pytest.alive(held["processes"])) >= 8  # the four servers and their watchdogs
        assert killed_pytest.kill_and_wait(child, held, within=5) == ([], [])
    finally:
        killed_pytest.clean_up(child, held["processes"])
