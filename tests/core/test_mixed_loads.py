"""A run that loads its input twice while another process commits that input again in between (attacker at18 I5).

Its value is built from both versions, so it must come out stale (and run again), never fresh: whichever load is
the run's own, a thread's it starts or a forked child's, both versions are recorded as its inputs.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import luigi
import pytest

import kart_core


class MixUp(kart_core.TaskOnKart[int]):
    source = luigi.Parameter()

    def run(self) -> None:
        self.dump(int(Path(self.source).read_text()))


def _commit_elsewhere(up: MixUp, value: int) -> None:
    """Commit ``up`` again with ``value`` from another process, as a second scheduler would."""
    Path(up.source).write_text(str(value))
    code = (
        "import kart_core, test_mixed_loads as m; "
        f"kart_core.build(m.MixUp(source={up.source!r}, workspace_directory={up.workspace_directory!r}, rerun=True), "
        "reset_register=False)"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), *sys.path]))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True)


def _load_in_child(task: MixOuter) -> Any:
    return task.load()


class MixOuter(kart_core.TaskOnKart[int]):
    source = luigi.Parameter()
    how = luigi.Parameter()  # where the first and the second load are made: own, thread or fork

    def requires(self) -> MixUp:
        return MixUp(source=self.source, workspace_directory=self.workspace_directory)

    def _load(self, where: str) -> int:
        if where == "own":
            return self.load()
        if where == "fork":
            with multiprocessing.get_context("fork").Pool(1) as pool:
                return pool.apply(_load_in_child, (self,))
        found: list[int] = []
        thread = threading.Thread(target=lambda: found.append(self.input().load()))
        thread.start()
        thread.join()
        return found[0]

    def run(self) -> None:
        first, second = self.how.split("-")
        before = self._load(first)
        _commit_elsewhere(self.requires(), 2)
        self.dump(before * 100 + self._load(second))


@pytest.mark.parametrize("how", ["own-own", "thread-own", "fork-own", "own-thread", "thread-thread"])
def test_a_run_that_read_two_versions_of_its_input_is_stale(workspace: str, tmp_path: Path, how: str) -> None:
    source = tmp_path / "source.txt"
    source.write_text("1")
    outer = MixOuter(source=str(source), how=how, workspace_directory=workspace)
    assert kart_core.build(outer, reset_register=False) == 102  # built from both versions
    assert kart_core.build(outer, reset_register=False) == 202  # stale: built again from the current one
