"""A by-path writer on "another host" for the multi-host marker tests (test_marker_clock_skew, test_direct_write_paused).

The writer is a process of its own running ``source`` (its host name faked by the script itself) with its own lock
folder: one machine's file locks do not reach another, so only the markers stand between the two runs.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from kart_core import commit_marker

if TYPE_CHECKING:
    import fork_server

REPO = str(Path(__file__).resolve().parents[2])
HERE = str(Path(__file__).resolve().parent)


def start_writer(
    tmp_path: Path, name: str, source: str, workspace: str, extra: list[str], lease: float
) -> tuple[fork_server.Run, Path]:
    """Start ``source`` as ``python script workspace REPO HERE *extra flag``, with lease ``lease`` seconds: a process of
    its own, forked from a server that imported luigi, pandas and s3fs once (tests/fork_server.py; a fresh interpreter
    spent ~2 s of CPU on them before the writer's build).

    Returns the run (``pid``, ``poll``, ``communicate``, ``kill`` as a ``subprocess.Popen``'s; stdout and stderr as
    text) and the flag file the writer creates once its marker is written (``wait_for``).
    """
    import fork_server  # here: the writers put tests/core, not tests/, on their path

    script = tmp_path / f"{name}_writer.py"
    script.write_text(source)
    locks = tmp_path / f"{name}-host-locks"
    locks.mkdir(exist_ok=True)
    flag = tmp_path / "marked"
    env = {**os.environ, commit_marker.LEASE_VARIABLE: str(lease), "KART_LOCK_DIR": str(locks)}
    args = [str(script), workspace, REPO, HERE, *extra, str(flag)]
    return fork_server.start(args, tmp_path, env, fork_server.KART_S3), flag


class _Process(Protocol):
    """A started process: a ``subprocess.Popen`` or a fork server's ``Run`` (tests/fork_server.py)."""

    def poll(self) -> int | None: ...

    def communicate(self) -> tuple[Any, Any]: ...


def wait_for(flag: Path, process: _Process) -> None:
    """Until the writer created ``flag`` (its marker is written); fails with its output if it ended or 60 s passed."""
    deadline = time.monotonic() + 60
    while not flag.exists():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.02)
