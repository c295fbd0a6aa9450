"""``python -m kart_core ...`` and ``python -m kart_core.cli ...`` run the ``kart`` command (real subprocesses)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

_PIPELINE = textwrap.dedent(
    """
    import kart_core as gokart

    class MainOk(gokart.TaskOnKart[int]):
        def run(self):
            self.dump(1)

    class MainFails(gokart.TaskOnKart[int]):
        def run(self):
            raise RuntimeError("boom under python -m")
    """
)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def python_m(tmp_path: Path):
    """Run ``python -m <module> args...`` in a directory holding a small pipeline."""
    (tmp_path / "mainpipe.py").write_text(_PIPELINE)
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "CI": "1", "PYTHONPATH": path, "KART_WORKSPACE": str(tmp_path / "ws")}

    def run(module: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", module, *args]
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)

    return run


@pytest.mark.slow
@pytest.mark.parametrize("module", ["kart_core", "kart_core.cli"])
def test_python_m_runs_the_command_with_kart_s_exit_codes(python_m, module: str) -> None:
    assert python_m(module, "run", "mainpipe.MainOk").returncode == 0
    failed = python_m(module, "run", "mainpipe.MainFails")
    assert failed.returncode == 40 and "boom under python -m" in failed.stderr
    assert python_m(module, "verify").returncode == 0
    usage = python_m(module, "nosuchcommand")
    assert usage.returncode == 4 and "No such command 'nosuchcommand'" in usage.stderr
    assert python_m(module, "run", "mainpipe.Nope").returncode == 4
    assert python_m(module, "runs", "-w", "nosuchscheme://b/x").returncode == 1
    helped = python_m(module, "--help")
    assert helped.returncode == 0 and "Usage: kart" in helped.stdout
