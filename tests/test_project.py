"""Project-level promises: import layering holds and the packages ship their type markers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import kart_airflow
import kart_core
import kart_kedro

ROOT = Path(__file__).resolve().parents[1]


def test_import_layers_hold() -> None:
    lint = os.path.join(os.path.dirname(sys.executable), "lint-imports")
    done = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]


def test_packages_ship_py_typed() -> None:
    for package in (kart_core, kart_airflow, kart_kedro):
        assert (Path(package.__file__).parent / "py.typed").is_file()
