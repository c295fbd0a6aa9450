"""Parallel builds: 200 independent tasks that sleep 50 ms or burn 50 ms of CPU, workers=1 against workers=2.

kart uses threads for the sleeping tasks and processes for the CPU-bound ones; gokart 1.12.2 runs the
same graph with luigi's workers (which fork a process per task when there are two). Each build is a
first build in a fresh process and a fresh workspace (bench/graph_overhead.py's phases). Prints wall
seconds, the speedup of workers=2 over workers=1 and kart's time against gokart's.

    .venv/bin/python bench/parallel_build.py              # 200 tasks, best of 1
    .venv/bin/python bench/parallel_build.py --tasks 50   # smoke run
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from graph_overhead import run_phase  # noqa: E402

# Per kind: kart's two-worker setting (graph_overhead.SETTINGS).
KART_PARALLEL = {"sleep": "2t", "cpu": "2p"}


def first_build(impl: str, kind: str, tasks: int, setting: str, where: str | None) -> float:
    """Wall seconds of one first build in a fresh workspace."""
    with tempfile.TemporaryDirectory(prefix=f"parallel-{impl}-", dir=where) as workspace:
        return run_phase(impl, kind, tasks, workspace, setting)["seconds"]


def main() -> None:
    """Run the benchmark and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--kinds", default="sleep,cpu")
    parser.add_argument("--dir", default=None, help="where workspaces go; default the temp dir")
    args = parser.parse_args()
    header = ["work", "kart w=1 s", "kart w=2 s", "kart speedup", "gokart w=1 s", "gokart w=2 s", "gokart speedup"]
    header += ["kart/gokart at w=2"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header), flush=True)
    for kind in args.kinds.split(","):
        kart1 = first_build("kart", kind, args.tasks, "1", args.dir)
        kart2 = first_build("kart", kind, args.tasks, KART_PARALLEL[kind], args.dir)
        gokart1 = first_build("gokart", kind, args.tasks, "1", args.dir)
        gokart2 = first_build("gokart", kind, args.tasks, "2t", args.dir)  # gokart: workers=2 (luigi's)
        label = f"{args.tasks} x 50 ms {kind} ({'threads' if KART_PARALLEL[kind] == '2t' else 'processes'})"
        cells = [label, f"{kart1:.2f}", f"{kart2:.2f}", f"{kart1 / kart2:.2f}x", f"{gokart1:.2f}", f"{gokart2:.2f}"]
        cells += [f"{gokart1 / gokart2:.2f}x", f"{kart2 / gokart2:.3f}"]
        print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
