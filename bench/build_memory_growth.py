"""Memory a long-lived process keeps per ``build()`` of a 200-task graph (a notebook, kedro-viz, an Airflow worker).

    env -u PYTHONDONTWRITEBYTECODE PYTHONPATH=<tree> .venv/bin/python bench/build_memory_growth.py /dev/shm/ws

Two warm-up builds, then 20 builds of ``Top`` (199 ``Leaf`` upstreams): ``same`` builds the same graph each
time (all cached after the first), ``new`` one with a new ``day`` each time (luigi's instance cache keeps
every task object it made). Prints traced bytes kept per build (tracemalloc, after a full collection), the
TaskOnKart objects alive, and the files whose allocations grew most.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import logging
import tempfile
import tracemalloc
from typing import Any

import luigi

import kart_core


class Leaf(kart_core.TaskOnKart[int]):
    """One of Top's 199 upstreams."""

    i = luigi.IntParameter()
    day = luigi.IntParameter()

    def run(self) -> None:
        """Dump its number."""
        self.dump(self.i)


class Top(kart_core.TaskOnKart[int]):
    """Sums its 199 leaves."""

    day = luigi.IntParameter()

    def requires(self) -> Any:
        """199 leaves of the same day."""
        return [Leaf(i=i, day=self.day) for i in range(199)]

    def run(self) -> None:
        """Dump the sum."""
        self.dump(sum(self.load()))


def _tasks() -> int:
    gc.collect()
    return sum(1 for item in gc.get_objects() if isinstance(item, kart_core.TaskOnKart))


def measure(mode: str, builds: int) -> None:
    """Build ``builds`` times (``mode``: same / new graph each time); print what each build left behind."""
    with contextlib.redirect_stderr(io.StringIO()):
        kart_core.build(Top(day=0))
        kart_core.build(Top(day=0))  # warm-up: imports, abc caches, the config plan
    tracemalloc.start()
    before, tasks_before = tracemalloc.take_snapshot(), _tasks()
    traced = tracemalloc.get_traced_memory()[0]
    with contextlib.redirect_stderr(io.StringIO()):
        for day in range(1, builds + 1):
            kart_core.build(Top(day=day if mode == "new" else 0))
    tasks_after = _tasks()
    kept = (tracemalloc.get_traced_memory()[0] - traced) / builds / 1024
    print(f"{mode}: {kept:.1f} KiB kept per build; task objects {tasks_before} -> {tasks_after}")
    for stat in tracemalloc.take_snapshot().compare_to(before, "filename")[:6]:
        print(f"    {stat}")
    tracemalloc.stop()


def main() -> None:
    """Parse the arguments and measure both modes in this process, ``same`` first."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("workspace", nargs="?", default=None)
    parser.add_argument("--builds", type=int, default=20)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    workspace = args.workspace or tempfile.mkdtemp(dir="/dev/shm")
    luigi.configuration.get_config().set("TaskOnKart", "workspace_directory", workspace)
    measure("same", args.builds)
    measure("new", args.builds)


if __name__ == "__main__":
    main()
