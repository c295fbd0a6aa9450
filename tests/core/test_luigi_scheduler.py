"""luigi's central scheduler (luigid on 127.0.0.1) runs kart tasks through run_one and writes kart's cache."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from services import luigi_scheduler

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


@pytest.fixture
def luigid(tmp_path: Path) -> Iterator[int]:
    """A real luigi central scheduler on a free loopback port (``services.luigi_scheduler``), stopped afterwards."""
    (tmp_path / "luigid").mkdir()
    with luigi_scheduler(str(tmp_path / "luigid")) as service:
        yield service.port


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
