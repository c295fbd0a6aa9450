"""What the integrity record costs: kart with it (the default) against kart without it, side by side.

The record is each committed output's size and XXH3-128 hash in ``log/manifest/`` (see
docs/reference.md, "The cache contract"). ``KART_INTEGRITY_RECORD=0`` turns it off; transactions
(staging and commit) stay on in both columns, so the difference is the record alone. Each
measurement runs in a fresh interpreter with its own workspace; rounds alternate the order.

    .venv/bin/python bench/integrity_cost.py             # chain 1,000 first build; 1M-row parquet dump and load
    .venv/bin/python bench/integrity_cost.py --quick     # smaller, for a smoke run

On a shared machine wall time swings with the neighbours; the CPU columns (user + system time of
the measuring process) are steadier.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

CHAIN = r"""
import json, resource, sys, time
sys.path.insert(0, {here!r})
sys.setrecursionlimit(10000)
import graph_tasks
import kart_core
import numpy.random  # the default seed method: imported before the clock starts
root = graph_tasks.make("chain", {size})
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

cpu_started, started = cpu(), time.perf_counter()
kart_core.build(root, progress=False)
print(json.dumps({{"seconds": time.perf_counter() - started, "cpu": cpu() - cpu_started}}))
"""

PARQUET = r"""
import json, resource, time
import numpy as np, pandas as pd
import kart_core

rows = {rows}
frame = pd.DataFrame({{
    "id": np.arange(rows), "x": np.random.default_rng(0).random(rows),
    "label": np.random.default_rng(1).choice(["a", "b", "c"], rows),
}})

class DumpFrame(kart_core.TaskOnKart):
    def output(self):
        return self.make_target("frame.parquet")
    def run(self):
        self.dump(frame)

def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

task = DumpFrame()
cpu_started, started = cpu(), time.perf_counter()
kart_core.build(task, return_value=False, progress=False)
dumped, dumped_cpu = time.perf_counter() - started, cpu() - cpu_started
cpu_started, started = cpu(), time.perf_counter()
assert len(task.output().load()) == rows
print(json.dumps({{"seconds": dumped, "cpu": dumped_cpu, "load_seconds": time.perf_counter() - started,
                  "load_cpu": cpu() - cpu_started}}))
"""


def run(code: str, record: bool) -> dict[str, float]:
    """Run ``code`` in a fresh interpreter in a fresh workspace, with the record on or off."""
    env = {**os.environ, "KART_INTEGRITY_RECORD": "1" if record else "0", "CI": "true"}
    env.pop("KART_SIGNING_KEY", None)
    env.pop("KART_VERIFY_OUTPUTS", None)
    with tempfile.TemporaryDirectory(prefix="bench-integrity-") as workspace:
        done = subprocess.run([sys.executable, "-c", code], cwd=workspace, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"benchmark failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


Row = tuple[str, float, float, float, float]


def compare(name: str, code: str, rounds: int) -> list[Row]:
    """Median wall and CPU seconds without and with the record over ``rounds`` alternating rounds."""
    without: list[dict[str, float]] = []
    with_: list[dict[str, float]] = []
    for index in range(rounds):
        order = (False, True) if index % 2 == 0 else (True, False)
        for record in order:
            (with_ if record else without).append(run(code, record))
    rows = []
    for prefix, label in (("", name), ("load_", name.replace("dump", "load"))):
        wall, cpu = ("seconds", "cpu") if not prefix else ("load_seconds", "load_cpu")
        if wall in with_[0]:
            medians = [statistics.median(r[field] for r in runs) for field in (wall, cpu) for runs in (without, with_)]
            rows.append((label, *medians))
    return rows


def main() -> None:
    """Print the table: scenario, without, with, ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller graphs and frames, 3 rounds")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per scenario (default 5; quick: 3)")
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 5)
    chain, rows = (200, 100_000) if args.quick else (1000, 1_000_000)
    results = compare(f"chain {chain:,} first build", CHAIN.format(here=HERE, size=chain), rounds)
    results += compare(f"{rows:,}-row parquet dump (build)", PARQUET.format(rows=rows), rounds)
    print(f"median of {rounds} rounds, seconds; CPU = user + system of the measuring process")
    header = f"{'scenario':<36} {'wall without':>12} {'wall with':>10} {'ratio':>6} {'CPU without':>12} {'CPU with':>9} {'ratio':>6}"
    print(header)
    for label, wall_off, wall_on, cpu_off, cpu_on in results:
        print(
            f"{label:<36} {wall_off:>12.3f} {wall_on:>10.3f} {wall_on / wall_off:>6.3f}"
            f" {cpu_off:>12.3f} {cpu_on:>9.3f} {cpu_on / cpu_off:>6.3f}"
        )


if __name__ == "__main__":
    main()
