"""luigi's central scheduler (luigid on 127.0.0.1) runs kart tasks through run_one and writes kart's cache."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

TASKS = textwrap.dedent(
    """
    import luigi
    import kart_core

    class SchedLeaf(kart_core.TaskOnKart):
        i = luigi.IntParameter()

        def run(self):
            self.dump(self.i * 10)

    class SchedRoot(kart_core.TaskOnKart):
        n = luigi.IntParameter()

        def requires(self):
            return [SchedLeaf(i=i) for i in range(self.n)]

        def run(self):
            self.dump(sum(self.load()))
    """
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"luigid did not listen on 127.0.0.1:{port}")


@pytest.fixture
def luigid(tmp_path: Path) -> Iterator[int]:
    """A real luigi central scheduler on a free loopback port, stopped afterwards."""
    port = _free_port()
    bin_dir = os.path.dirname(sys.executable)
    process = subprocess.Popen(
        [
            os.path.join(bin_dir, "luigid"),
            "--address",
            "127.0.0.1",
            "--port",
            str(port),
            "--state-path",
            str(tmp_path / "state.pickle"),
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_for_port(port)
        yield port
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(10)


def _relative_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_luigid_builds_the_same_cache_as_kart(tmp_path: Path, luigid: int) -> None:
    (tmp_path / "sched_tasks.py").write_text(TASKS)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "CI": "true"}
    luigi_dir, kart_dir = tmp_path / "under_luigid", tmp_path / "under_kart"
    luigi_dir.mkdir()
    kart_dir.mkdir()
    command = [
        os.path.join(os.path.dirname(sys.executable), "luigi"),
        "--module",
        "sched_tasks",
        "SchedRoot",
        "--n",
        "4",
        "--scheduler-host",
        "127.0.0.1",
        "--scheduler-port",
        str(luigid),
        "--workers",
        "2",
    ]
    done = subprocess.run(command, cwd=luigi_dir, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    script = "import kart_core, sched_tasks; print(kart_core.build(sched_tasks.SchedRoot(n=4)))"
    built = subprocess.run(
        [sys.executable, "-c", script], cwd=kart_dir, env=env, capture_output=True, text=True, timeout=120
    )
    assert built.stdout.strip() == "60", built.stderr[-2000:]
    luigi_files = _relative_files(luigi_dir / "resources")
    assert luigi_files == _relative_files(kart_dir / "resources")
    assert len([f for f in luigi_files if f.startswith("log/task_log/")]) == 5  # run logs prove run_one ran them
