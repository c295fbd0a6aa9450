"""A marker's host names the machine *and* the pid namespace: a writer in another container with the same host name
is not judged by a process id of this namespace (attacker at9 J3)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from kart_core.commit_marker import DIRECT, Marker, Writing, host_identity, writer_alive


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_writer_of_another_pid_namespace_with_this_host_name_counts_as_alive() -> None:
    # Before: the host name alone matched, the pid was looked up here, not found, and the live writer in the
    # other container was judged killed (its file deleted by complete() and kart verify --delete).
    pid = _dead_pid()
    other_container = f"{socket.gethostname()}@0123456789ab"
    assert other_container != host_identity()
    assert writer_alive(Marker("0" * 32, other_container, pid, time.time(), DIRECT, ()))
    assert Writing("Export[deadbeef]", other_container, pid, time.time(), "/data/x.csv").alive()
    # This namespace's own dead writer is still seen as killed, and a live one as alive.
    assert not writer_alive(Marker("0" * 32, host_identity(), pid, time.time(), DIRECT, ()))
    assert writer_alive(Marker("0" * 32, host_identity(), os.getppid(), time.time(), DIRECT, ()))


def test_the_identity_is_the_host_name_with_this_boot_and_pid_namespace() -> None:
    name, _, tag = host_identity().partition("@")
    assert name == socket.gethostname() and len(tag) == 12
    # A process in this namespace (a child) has the same identity; the code computing it is the same.
    child = subprocess.run(
        [sys.executable, "-c", "from kart_core.commit_marker import host_identity; print(host_identity())"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert child.stdout.strip() == host_identity()


_WRITER_IN_ANOTHER_PID_NAMESPACE = """
import os, socket, time
try:
    from kart_core.commit_marker import host_identity
except ImportError:  # kart before 2026-12-01 22:20 named the host alone
    host_identity = socket.gethostname
from kart_core.commit_marker import Writing, process_start
writing = Writing("Export[deadbeef]", host_identity(), os.getpid(), time.time(), "/data/x.csv", process_start(os.getpid()))
print(writing.to_bytes().decode(), flush=True)
time.sleep(120)
"""


def test_a_live_writer_in_a_real_second_pid_namespace_is_alive() -> None:
    # A container sharing the host name: its pid (1 there) named another process here, whose start time differed,
    # so the live writer was judged killed (at9 J3).
    command = ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", _WRITER_IN_ANOTHER_PID_NAMESPACE]
    probe = subprocess.run([*command[:4], "true"], capture_output=True)
    if shutil.which("unshare") is None or probe.returncode != 0:
        pytest.skip("no unshare, or no right to make a pid namespace here (needs root)")
    writer = subprocess.Popen(
        command, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    )
    try:
        assert writer.stdout is not None
        writing = Writing.from_bytes(writer.stdout.readline().encode())
        assert writing is not None and writing.pid < 10  # its own namespace's numbering
        assert writing.alive()
    finally:
        writer.kill()
        writer.wait()
