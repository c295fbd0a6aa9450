"""The test servers start on a free port even when another process takes the port first."""

from __future__ import annotations

import socket
from pathlib import Path

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
