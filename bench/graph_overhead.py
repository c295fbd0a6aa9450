"""Graph overhead: kart's build() against gokart 1.12.2 on the same task graphs, side by side.

Each phase (first build, then fully cached build) runs in a fresh process with its own workspace,
so imports, luigi's registry and OS caches are alike for both. Prints per-task milliseconds,
peak memory and the kart/gokart ratio.

    .venv/bin/python bench/graph_overhead.py            # chain 1,000 + fan-in 5,000, then 10k/100k kart only
    .venv/bin/python bench/graph_overhead.py --quick    # smaller graphs, for a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

PHASE = r"""
import json, os, resource, sys, time
sys.path.insert(0, {here!r})
sys.setrecursionlimit({recursion})
import graph_tasks
impl, shape, size = {impl!r}, {shape!r}, {size}
if impl == "gokart":
    import gokart as lib
    kwargs = dict(log_level=40)
else:
    import kart_core as lib
    kwargs = dict(workers={workers})
root = graph_tasks.make(shape, size)
started = time.perf_counter()
lib.build(root, **kwargs)
elapsed = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"seconds": elapsed, "peak_mib": peak}}))
"""


def run_phase(impl: str, shape: str, size: int, workspace: str, workers: int = 1) -> dict[str, float]:
    """Run one build in a fresh interpreter inside ``workspace``; return seconds and peak MiB."""
    code = PHASE.format(
        here=HERE, impl=impl, shape=shape, size=size, workers=workers, recursion=max(1000, 4 * size + 100)
    )
    env = {**os.environ, "KART_BENCH_IMPL": impl, "CI": "true"}
    done = subprocess.run([sys.executable, "-c", code], cwd=workspace, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{impl} {shape} {size} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(impl: str, shape: str, size: int) -> dict[str, dict[str, float]]:
    """First and cached build of one graph in a fresh workspace."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{impl}-") as workspace:
        first = run_phase(impl, shape, size, workspace)
        cached = run_phase(impl, shape, size, workspace)
    return {"first": first, "cached": cached}


def row(label: str, size: int, kart: dict, gokart: dict | None) -> list[str]:
    """Table cells for one graph: per-task ms for both phases and the ratios."""
    tasks = size + 1
    cells = [label]
    for phase in ("first", "cached"):
        k = kart[phase]["seconds"] * 1000 / tasks
        cells.append(f"{k:.3f}")
        if gokart is not None:
            g = gokart[phase]["seconds"] * 1000 / tasks
            cells += [f"{g:.3f}", f"{k / g:.3f}"]
        else:
            cells += ["-", "-"]
    cells.append(f"{max(kart['first']['peak_mib'], kart['cached']['peak_mib']):.0f}")
    cells.append(f"{max(gokart['first']['peak_mib'], gokart['cached']['peak_mib']):.0f}" if gokart else "-")
    return cells


def main() -> None:
    """Run the benchmark and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small graphs only")
    parser.add_argument("--no-large", action="store_true", help="skip the 10,000 and 100,000 task graphs")
    args = parser.parse_args()
    compared = [("chain", 200), ("fan-in", 500)] if args.quick else [("chain", 1000), ("fan-in", 5000)]
    large = [] if args.quick or args.no_large else [("chain", 10_000), ("fan-in", 10_000), ("fan-in", 100_000)]
    header = [
        "graph",
        "kart first ms/task",
        "gokart first ms/task",
        "ratio",
        "kart cached ms/task",
        "gokart cached ms/task",
        "ratio",
        "kart peak MiB",
        "gokart peak MiB",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for shape, size in compared:
        kart = measure("kart", shape, size)
        gokart = measure("gokart", shape, size)
        print("| " + " | ".join(row(f"{shape} {size:,}", size, kart, gokart)) + " |", flush=True)
    for shape, size in large:
        kart = measure("kart", shape, size)
        print("| " + " | ".join(row(f"{shape} {size:,}", size, kart, None)) + " |", flush=True)


if __name__ == "__main__":
    main()
