"""`make demo`'s script tells the whole story: build, cached rebuild, one change, Airflow, Kedro, runs, report."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.py"


@pytest.mark.slow
def test_demo_runs_every_step_on_one_cache(tmp_path: Path) -> None:
    env = {**os.environ, "CI": "true", "KART_DEMO_DIR": str(tmp_path / "demo")}
    done = subprocess.run([sys.executable, str(DEMO)], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "kart build: 8 ran, 0 cached, 0 failed" in out
    assert "kart build: 0 ran, 3 cached, 0 failed" in out
    assert "kart build: 2 ran, 3 cached, 0 failed" in out
    assert "task outcomes: {'state success': 1, 'cached': 8}; run logs untouched: True" in out
    assert re.search(r"ridge coefficients \[.*\] = output of Train\[[0-9a-f]{8}\]", out)
    assert out.count("run logs untouched: True") == 2
    assert "Evaluate      0920c8a3e6114512d09c1a1d5724fa21" in out
    report = Path(re.search(r"open (\S+report\.html)", out).group(1))
    assert report == tmp_path / "demo" / "report.html"
    assert report.is_file() and "<svg" in report.read_text()
    assert "INFO" not in out
