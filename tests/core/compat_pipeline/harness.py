"""Helpers for the tests that drive the pipeline: subprocess environment, driver runs, file snapshots.

Imported by the test process; it imports neither gokart nor kart_core nor the task modules (nor does
tests/fork_server.py: its servers are processes of their own).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import fork_server
from fork_server import GOKART, KART

PIPELINE_PARENT = Path(__file__).resolve().parent.parent  # the directory holding compat_pipeline/
LOG_FILES = (
    "log/task_params/{name}.pkl",
    "log/random_seed/{name}.pkl",
    "log/processing_time/{name}.pkl",
    "log/task_log/{name}.pkl",
    "log/module_versions/{name}.txt",
)


# kart's integrity record beside gokart's five (gokart ignores it): one per task whose outputs kart committed.
KART_LOG_FILES = ("log/manifest/{name}.json",)


def without_kart_records(files: Any) -> set[str]:
    """The relative paths of ``files`` without kart's integrity manifests (what gokart also writes)."""
    return {path for path in files if "/log/manifest/" not in path}


class DriverError(AssertionError):
    """A driver subprocess exited non-zero; the message holds the end of its stderr."""


def driver_env(impl: str, pythonpath: Path = PIPELINE_PARENT) -> dict[str, str]:
    """A subprocess environment: the implementation, ``pythonpath`` first on the path, no luigi config."""
    env = {key: value for key, value in os.environ.items() if key != "LUIGI_CONFIG_PATH"}
    env["KART_COMPAT_IMPL"] = impl
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(pythonpath), os.environ.get("PYTHONPATH", "")) if p)
    return env


def run_command(
    args: list[str], cwd: Path, env: dict[str, str], timeout: float = 600, preload: tuple[str, ...] | None = None
) -> tuple[str, str]:
    """Run ``args`` in ``cwd``; return (stdout, stderr), or raise DriverError with the end of stderr.

    With ``preload`` (``args`` then start with ``sys.executable``), the process is a fork of the test process's
    server that imported ``preload`` (tests/fork_server.py): still a process of its own, without the imports.
    """
    if preload is None:
        completed = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    else:
        assert args[0] == sys.executable, args
        completed = fork_server.run(args[1:], cwd, env, timeout, preload)
    if completed.returncode != 0:
        raise DriverError(f"{' '.join(args)} failed (exit {completed.returncode}):\n{completed.stderr[-6000:]}")
    return completed.stdout, completed.stderr


def run_driver(impl: str, cwd: Path, command: str, *args: str) -> dict[str, Any]:
    """Run ``compat_pipeline.driver COMMAND`` with ``impl`` in ``cwd`` and return its JSON report."""
    out = cwd.parent / f"{cwd.name}-{command}-{impl}.json"
    line = [sys.executable, "-m", "compat_pipeline.driver", command, str(out), *args]
    run_command(line, cwd, driver_env(impl), preload=GOKART if impl == "gokart" else KART)
    return dict(json.loads(out.read_text()))


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Every file under ``root/resources`` by relative path: (mtime in ns, sha256 of the content; of a kart integrity
    manifest, ``log/manifest/``, without its entries' stamps, see ``settled``)."""
    files = {}
    for path in sorted((root / "resources").rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            if "/log/manifest/" in path.as_posix():
                data = _STAMP.sub(b"", data)
            digest = hashlib.sha256(data).hexdigest()
            files[path.relative_to(root).as_posix()] = (path.stat().st_mtime_ns, digest)
    return files


# An output entry's stamp in a manifest (``Entry.stamp``): ``,"stamp":[inode,status-change time]`` (sorted keys: last).
_STAMP = re.compile(rb',"stamp":\[[0-9,]*\]')


def settled(files: dict[str, tuple[int, str]]) -> dict[str, tuple[int, str]]:
    """A ``snapshot`` without the modification times of kart's integrity manifests (``log/manifest/``).

    A copied workspace has every output under another inode and status-change time than its manifest entry's stamp
    (``Entry.stamp``; for an entry without one, its status-change time is past the manifest's): the first check that
    hashes such an output and finds its committed content records its new stamp in the manifest
    (``damage.settle_stamp``; ``damage.settle_copied`` moves the manifest's modification time up), so later loads take
    one stat, which changes no output and no other part of the manifest (``snapshot`` hashes manifests without the
    stamps). Whether that check runs before or after the copy settles (50 ms) depends on the machine's speed."""
    return {path: (0 if "/log/manifest/" in path else mtime, digest) for path, (mtime, digest) in files.items()}


def copy_workspace(source: Path, target: Path) -> Path:
    """Copy a built workspace (``resources/``) into a new directory, keeping modification times."""
    target.mkdir(parents=True)
    shutil.copytree(source / "resources", target / "resources", copy_function=shutil.copy2)
    time.sleep(0.06)  # settled (see ``settled``) on any machine: a copy less than 50 ms old is hashed, not settled
    return target


def copy_pipeline(target: Path) -> Path:
    """Copy the compat_pipeline package (without caches) under ``target``; return ``target``."""
    shutil.copytree(
        PIPELINE_PARENT / "compat_pipeline", target / "compat_pipeline", ignore=shutil.ignore_patterns("__pycache__")
    )
    return target


def expected_files(report: dict[str, Any], kart: bool = True) -> set[str]:
    """The outputs of every task in a driver report plus the five run logs of every TaskOnKart
    (and, for kart, its integrity manifest)."""
    files = set(report["output_paths"])
    patterns = LOG_FILES + (KART_LOG_FILES if kart else ())
    for node, class_name in report["class_names"].items():
        name = f"{class_name}_{node.rsplit('_', 1)[1]}"
        files.update(f"resources/{pattern.format(name=name)}" for pattern in patterns)
    return files
