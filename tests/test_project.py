"""Project-level promises: import layering holds and the packages ship their type markers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import kart_airflow
import kart_kedro
from mypy_cache import mypy_cache

import kart_core

ROOT = Path(__file__).resolve().parents[1]


def test_import_layers_hold() -> None:
    lint = os.path.join(os.path.dirname(sys.executable), "lint-imports")
    done = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]


def test_packages_ship_py_typed() -> None:
    for package in (kart_core, kart_airflow, kart_kedro):
        assert (Path(package.__file__).parent / "py.typed").is_file()


def _tool(name: str) -> str:
    return os.path.join(os.path.dirname(sys.executable), name)


def test_ruff_lint_and_format_hold() -> None:
    paths = ["kart_core", "plugins", "tests", "bench", "examples"]
    lint = subprocess.run([_tool("ruff"), "check", "--no-cache", *paths], cwd=ROOT, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout[-3000:]
    fmt = subprocess.run(
        [_tool("ruff"), "format", "--check", "--no-cache", *paths], cwd=ROOT, capture_output=True, text=True
    )
    assert fmt.returncode == 0, fmt.stdout[-3000:]


def test_mypy_passes_on_kart_core_and_the_adapters() -> None:
    # One mypy process for the three packages: checking the adapters analyses kart_core anyway (they import
    # it), so a separate run for kart_core paid that analysis twice (~27 s of CPU).
    # MYPYPATH: make test's editable install is an import hook mypy cannot follow to kart_core.
    env = {
        **os.environ,
        "MYPYPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins/airflow"), str(ROOT / "plugins/kedro")]),
    }
    done = subprocess.run(
        [
            _tool("mypy"),
            "--cache-dir",
            str(mypy_cache("kart_core and the adapters")),
            "kart_core",
            "plugins/airflow/kart_airflow",
            "plugins/kedro/kart_kedro",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert done.returncode == 0, done.stdout[-3000:]
