"""DataFrame dump cost against the number of registered task classes: kart and gokart 1.12.2 side by side.

    .venv/bin/python bench/dump_vs_registry.py [--classes 20,200,1000] [--dumps 200]

Each (implementation, class count) runs in a fresh process: it defines that many luigi task classes
(as a large project imports), one PandasTypeConfig, and times ``task.dump(frame)`` of a 100-row frame
to a .pkl output, best of 5 rounds. gokart rescans luigi's registry on every DataFrame dump; kart
looks the config up through PandasTypeConfig's subclasses only. Goal (issue 15): kart's cost at
1,000 classes within 1.1x of its cost at 20.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile

CHILD = r"""
import sys, tempfile, time
import luigi
import pandas as pd

impl, classes, dumps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
lib = __import__("kart_core" if impl == "kart" else "gokart")

for index in range(classes):
    type(f"Filler{index}", (lib.TaskOnKart,), {"__module__": "fillers", "x": luigi.IntParameter(default=index)})

class Types(lib.PandasTypeConfig):
    task_namespace = "bench_ns"

    @classmethod
    def type_dict(cls):
        return {"a": int}

class Dumper(lib.TaskOnKart):
    task_namespace = "bench_ns"

task = Dumper(workspace_directory=tempfile.mkdtemp())
frame = pd.DataFrame({"a": range(100), "b": [0.5] * 100})
best = float("inf")
for _ in range(5):
    started = time.perf_counter()
    for _ in range(dumps):
        task.dump(frame)
    best = min(best, (time.perf_counter() - started) / dumps)
print(best * 1000)
"""


def measure(impl: str, classes: int, dumps: int) -> float:
    """Milliseconds per dump, from a fresh process."""
    with tempfile.TemporaryDirectory() as cwd:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, impl, str(classes), str(dumps)],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    """Print the table: classes, kart and gokart ms/dump, their ratio, and each one's growth from the first row."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--classes", default="20,200,1000")
    parser.add_argument("--dumps", type=int, default=200)
    args = parser.parse_args()
    counts = [int(c) for c in args.classes.split(",")]
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(
        "| registered classes | kart ms/dump | gokart ms/dump | kart/gokart | kart vs first row | gokart vs first row |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    first: dict[str, float] = {}
    for count in counts:
        kart = measure("kart", count, args.dumps)
        gokart = measure("gokart", count, max(5, args.dumps // 20))
        first.setdefault("kart", kart)
        first.setdefault("gokart", gokart)
        print(
            f"| {count:,} | {kart:.3f} | {gokart:.3f} | {kart / gokart:.3f}x | "
            f"{kart / first['kart']:.2f}x | {gokart / first['gokart']:.2f}x |"
        )


if __name__ == "__main__":
    main()
