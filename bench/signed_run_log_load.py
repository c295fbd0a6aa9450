"""CPU time of one signed ``task_log`` load (``load_log_value``), what ``kart runs`` pays per run with signing on.

    env -u PYTHONDONTWRITEBYTECODE PYTHONPATH=<tree> .venv/bin/python bench/signed_run_log_load.py /dev/shm/ws

Builds one task in a fresh workspace with ``KART_SIGNING_KEY`` set, then loads its task log
``--loads`` times and prints the mean CPU time per load. Run it against two trees alternately to
compare them (since 2026-12-01 a load also reads the task's manifest: ``kart_core.log_binding``).
"""

from __future__ import annotations

import argparse
import os
import time

import kart_core


class Bench(kart_core.TaskOnKart[int]):
    """One output, so one manifest and the five run logs."""

    def run(self) -> None:
        """Dump a small value."""
        self.dump(1)


def main() -> None:
    """Build, then time the loads of the task log."""
    parser = argparse.ArgumentParser()
    parser.add_argument("workspace", help="an empty folder (e.g. under /dev/shm)")
    parser.add_argument("--loads", type=int, default=2000)
    args = parser.parse_args()
    os.environ["KART_SIGNING_KEY"] = "a benchmark key"
    from kart_core.runlog_reader import load_log_value
    from kart_core.workspace import TASK_LOG, log_task_path

    task = Bench(workspace_directory=args.workspace)
    kart_core.build(task, reset_register=False)
    path = log_task_path(task, TASK_LOG)
    load_log_value(path)  # imports and first reads outside the clock
    start = time.process_time()
    for _ in range(args.loads):
        load_log_value(path)
    print(f"{(time.process_time() - start) / args.loads * 1e6:.0f} us CPU per signed task_log load")


if __name__ == "__main__":
    main()
