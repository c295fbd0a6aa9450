"""Graph overhead: kart's build() against gokart 1.12.2 on the same task graphs, side by side.

Each phase (first build, then fully cached build) runs in a fresh process with its own workspace,
so imports, luigi's registry and OS caches are alike for both. Prints per-task milliseconds of wall
time and of CPU time (user + system of the building process and of its worker processes), peak
memory, the kart/gokart ratios and, per shape and workers setting, the scaling: per-task cost at each
size divided by the cost at the smallest size (a linear build stays near 1.0), from wall time and
from CPU time. The CPU scaling is the one to read when other jobs share the machine: waiting for a
core does not count in it.

Workers settings: ``1`` (serial), ``2t`` (two threads), ``2p`` (two processes). gokart runs with
the same number of workers (luigi's workers, which fork a process per task when more than one).

    .venv/bin/python bench/graph_overhead.py                       # 1k/10k/100k, all settings
    .venv/bin/python bench/graph_overhead.py --sizes 1000,10000 --workers 1,2t --gokart-max 1000
    .venv/bin/python bench/graph_overhead.py --quick               # smaller graphs, for a smoke run
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
    kwargs = dict(log_level=40, workers={workers})
else:
    import kart_core as lib
    kwargs = dict(workers={workers}, executor={executor!r})
build = lib.build  # resolved before the clock: kart's facade imports its build modules on first use, gokart's at import
root = graph_tasks.make(shape, size)
def cpu_now():
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
started, cpu_started = time.perf_counter(), cpu_now()
build(root, **kwargs)
elapsed, cpu = time.perf_counter() - started, cpu_now() - cpu_started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
children_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({{"seconds": elapsed, "cpu_seconds": cpu, "peak_mib": peak, "children_peak_mib": children_peak}}))
"""


SETTINGS = {"1": (1, "thread"), "2t": (2, "thread"), "2p": (2, "process")}


def run_phase(impl: str, shape: str, size: int, workspace: str, setting: str = "1") -> dict[str, float]:
    """Run one build in a fresh interpreter inside ``workspace``; return seconds and peak MiB."""
    workers, executor = SETTINGS[setting]
    code = PHASE.format(
        here=HERE,
        impl=impl,
        shape=shape,
        size=size,
        workers=workers,
        executor=executor,
        recursion=max(1000, 4 * size + 100),
    )
    env = {**os.environ, "KART_BENCH_IMPL": impl, "CI": "true"}
    done = subprocess.run([sys.executable, "-c", code], cwd=workspace, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{impl} {shape} {size} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(impl: str, shape: str, size: int, setting: str, where: str | None = None) -> dict[str, dict[str, float]]:
    """First and cached build of one graph in a fresh workspace (under ``where``: default the temp dir)."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{impl}-", dir=where) as workspace:
        first = run_phase(impl, shape, size, workspace, setting)
        cached = run_phase(impl, shape, size, workspace, setting)
    return {"first": first, "cached": cached}


def per_task(measured: dict, phase: str, size: int, clock: str = "seconds") -> float:
    """Milliseconds per task (the root included) of wall time (``seconds``) or CPU time (``cpu_seconds``)."""
    return measured[phase][clock] * 1000 / (size + 1)


CLOCKS = ("seconds", "cpu_seconds")


def row(shape: str, size: int, setting: str, kart: dict, gokart: dict | None, base: tuple[int, dict] | None) -> str:
    """One markdown row: for each phase, kart's and gokart's wall and CPU ms/task, the ratios, the scalings; peaks.

    CPU time is the user + system time of the building process and of its children (process
    workers; luigi forks one per task when workers > 1), so it counts the work, not the wait for a
    core: its ratio and scaling move less than the wall-time ones when other jobs load the machine.
    """
    cells = [shape, f"{size:,}", setting]
    for phase in ("first", "cached"):
        for clock in CLOCKS:
            cells.append(f"{per_task(kart, phase, size, clock):.3f}")
        for clock in CLOCKS:
            cells.append(f"{per_task(gokart, phase, size, clock):.3f}" if gokart is not None else "-")
        for clock in CLOCKS:
            k = per_task(kart, phase, size, clock)
            cells.append(f"{k / per_task(gokart, phase, size, clock):.3f}" if gokart is not None else "-")
        for clock in CLOCKS:
            k = per_task(kart, phase, size, clock)
            scaled = base is not None and base[0] != size
            cells.append(f"{k / per_task(base[1], phase, base[0], clock):.2f}" if scaled and base else "-")
    cells.append(f"{max(kart['first']['peak_mib'], kart['cached']['peak_mib']):.0f}")
    cells.append(f"{max(gokart['first']['peak_mib'], gokart['cached']['peak_mib']):.0f}" if gokart else "-")
    return "| " + " | ".join(cells) + " |"


def header() -> list[str]:
    """The table's column names (``row``'s order)."""
    names = ["graph", "tasks", "workers"]
    for phase in ("first", "cached"):
        names += [f"kart {phase} ms/task", "CPU", f"gokart {phase} ms/task", "CPU"]
        names += ["ratio", "CPU ratio", f"{phase} scaling", "CPU scaling"]
    return names + ["kart peak MiB", "gokart peak MiB"]


def main() -> None:
    """Run the benchmark and print a markdown table (and each measurement as JSON on stderr)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="sizes 200 and 2,000, gokart at 200")
    parser.add_argument(
        "--shapes",
        default="chain,fan-in",
        help="chain, load-chain (each link loads the one before), fan-in, sleep, cpu",
    )
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated task counts")
    parser.add_argument("--workers", default="1,2t,2p", help="settings: 1, 2t (threads), 2p (processes)")
    parser.add_argument("--gokart-max", type=int, default=1000, help="run gokart only up to this size")
    parser.add_argument("--dir", default=None, help="where workspaces go (e.g. /dev/shm); default the temp dir")
    args = parser.parse_args()
    sizes = [200, 2000] if args.quick else [int(s) for s in args.sizes.split(",")]
    gokart_max = 200 if args.quick else args.gokart_max
    names = header()
    print("| " + " | ".join(names) + " |")
    print("|" + "---|" * len(names), flush=True)
    for shape in args.shapes.split(","):
        for setting in args.workers.split(","):
            base = None
            for size in sizes:
                kart = measure("kart", shape, size, setting, args.dir)
                gokart = measure("gokart", shape, size, setting, args.dir) if size <= gokart_max else None
                print(
                    json.dumps({"shape": shape, "size": size, "workers": setting, "kart": kart, "gokart": gokart}),
                    file=sys.stderr,
                    flush=True,
                )
                base = base or (size, kart)
                print(row(shape, size, setting, kart, gokart, base), flush=True)


if __name__ == "__main__":
    main()
