"""CPU time a task run pays for threads: the in-process turn, and the thread lists of ``Transaction.opened``.

    env -u PYTHONDONTWRITEBYTECODE PYTHONPATH=<tree> .venv/bin/python bench/run_turns.py /dev/shm/ws

Prints the mean CPU µs per run of ``transaction.begin`` + ``opened()`` around an empty body (any tree),
of the turn (``runner._task_turn``, trees since 2026-12-01), and CPU ms per task of a chain's first
``build()``. Run it against two trees alternately to compare them.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Any

import luigi

import kart_core
from kart_core import runner, transaction
from kart_core.task_memo import memo_of


class Link(kart_core.TaskOnKart[int]):
    """One link of a chain: needs the link below it, dumps its number."""

    n = luigi.IntParameter()

    def requires(self) -> Any:
        """The link below (none for the first)."""
        return Link(n=self.n - 1, workspace_directory=self.workspace_directory) if self.n else []

    def run(self) -> None:
        """Dump the link's number."""
        self.dump(self.n)


def _per_call(body: Any, count: int) -> float:
    started = time.process_time()
    for _ in range(count):
        body()
    return (time.process_time() - started) / count


def main() -> None:
    """Time the steps, then the chain."""
    parser = argparse.ArgumentParser()
    parser.add_argument("workspace", help="a folder (e.g. under /dev/shm); the chain goes into a new one inside")
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--chain", type=int, default=400)
    args = parser.parse_args()
    os.makedirs(args.workspace, exist_ok=True)
    task = Link(n=0, workspace_directory=args.workspace)
    slot = memo_of(task).run_slot()

    def run_frame() -> None:
        with transaction.begin(task, "Link", slot=slot) as running:
            with running.opened():
                pass
            running.committed = True

    print(f"begin + opened: {_per_call(run_frame, args.calls) * 1e6:.1f} CPU us/run")
    turn = getattr(runner, "_task_turn", None)
    if turn is not None:

        def take_turn() -> None:
            with turn(task):
                pass

        print(f"turn: {_per_call(take_turn, args.calls) * 1e6:.1f} CPU us/run")
    chain = Link(n=args.chain, workspace_directory=tempfile.mkdtemp(dir=args.workspace))
    started = time.process_time()
    kart_core.build(chain, return_value=False)
    print(f"chain first build: {(time.process_time() - started) * 1e3 / (args.chain + 1):.3f} CPU ms/task")


if __name__ == "__main__":
    main()
