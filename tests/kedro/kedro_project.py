"""Run the example Kedro project (examples/kedro) with real ``kedro`` processes, in a copy under tmp_path."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import fork_server

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "kedro"
KEDRO = str(Path(sys.executable).parent / "kedro")
NODE_STATUS = re.compile(r"kart: node '([^']+)' (ran|cached)")
POSITIVE_VALUES_SUM = 3 + 4 + 10 + 2 + 7  # data/01_raw/numbers.csv, values >= min_value (0)


def copy_project(destination: Path) -> Path:
    """A fresh copy of the example project at ``destination``, without any data it produced."""
    ignore = shutil.ignore_patterns("__pycache__", "kart", "08_reporting", "resources", "journal.txt")
    return Path(shutil.copytree(EXAMPLE, destination, ignore=ignore))


def copy_ran_project(template: Path, destination: Path) -> Path:
    """A copy of ``template`` (a project copy after a run) at ``destination``, outputs, caches and file times kept.

    The state a run leaves holds no absolute path (kart's workspace is ``data/kart``), so the copy is the
    state that run would have left at ``destination``; tests start from it instead of each paying a run.
    """
    return Path(shutil.copytree(template, destination, symlinks=True))


def run_kedro(project: Path, *args: str, pythonpath: str | None = None, check: bool = True) -> str:
    """Run ``kedro`` in the project; return its log output (stderr and stdout).

    Rich logs are wide enough (COLUMNS) that one log record stays on one line. Each run is a process of its
    own, forked from a server of tests/fork_server.py that has imported Kedro's CLI and pandas (``PRELOADED``):
    a ``kedro`` started afresh spent most of its ~2.5 s of CPU on imports. The run's environment is the one a
    subprocess would get (PYTHONPATH's entries go on sys.path after the ``kedro`` script's folder); the project,
    kart and the runner are imported in it. What Python reads only at its start is the server's: the runs of
    one test process share its hash seed (a random one per session), so an environment that sets
    PYTHONHASHSEED gets a real ``kedro`` subprocess (fork_server's rule).
    """
    env = {
        **os.environ,
        "DO_NOT_TRACK": "1",
        "KART_KEDRO_DEMO_JOURNAL": str(project / "journal.txt"),
        "COLUMNS": "400",
        "PYTHONDONTWRITEBYTECODE": "1",  # edits within one second must not meet a stale .pyc
    }
    env.pop("LUIGI_CONFIG_PATH", None)
    env.pop("KART_WORKSPACE", None)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [pythonpath, env.get("PYTHONPATH")]))
    done = fork_server.run([KEDRO, *args], project, env, timeout=300, preload=PRELOADED)
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done.stderr + done.stdout


# Imported once in the fork server, before any fork: Kedro's CLI, session and runners, and pandas (the example
# project's nodes use it). Never kart or a project: each run imports those itself, under its own environment.
PRELOADED = ("kedro.framework.cli.cli", "kedro.framework.session", "kedro.runner", "pandas")


def run_script_json(project: Path, *args: str, paths: Sequence[Path] = ()) -> Any:
    """Run ``project/run.py <project> <args>`` in a new Python process (plain ``subprocess``: a test that edits code
    between runs needs a fresh interpreter) and return its last stdout line parsed as JSON.

    Its PYTHONPATH is ``paths`` then the test process's ``sys.path``; Kedro's telemetry is off.

    Raises:
        AssertionError: the script failed (the tail of its stderr).
    """
    entries = [*(str(path) for path in paths), *(path for path in sys.path if path)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(entries), "DO_NOT_TRACK": "1"}
    done = subprocess.run(
        [sys.executable, str(project / "run.py"), str(project), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=project,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def journal(project: Path) -> list[str]:
    """Labels of the kart tasks that ran, in every process."""
    path = project / "journal.txt"
    return path.read_text().split() if path.exists() else []


def statuses(log: str) -> dict[str, str]:
    """What KartRunner said about each node."""
    return dict(NODE_STATUS.findall(log))


def report(project: Path, name: str) -> dict:
    """A JSON output of the project (the latest version of a versioned one)."""
    path = project / "data" / "08_reporting" / f"{name}.json"
    if path.is_dir():
        path = path / max(p.name for p in path.iterdir()) / f"{name}.json"
    return json.loads(path.read_text())


def versions(project: Path, name: str) -> list[str]:
    """The saved versions of a versioned output of the project."""
    path = project / "data" / "08_reporting" / f"{name}.json"
    return sorted(p.name for p in path.iterdir()) if path.is_dir() else []


def edit(path: Path, old: str, new: str) -> None:
    """Replace ``old`` (which must occur) by ``new`` in a file of the project copy."""
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))
