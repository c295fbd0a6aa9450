"""How deep a chain of TaskInstanceParameters kart builds, against gokart 1.12.2, each depth in a fresh process.

Link n of the chain takes link n-1 as a TaskInstanceParameter (the default ``requires()`` makes it
the upstream). gokart's id recipe serializes a task parameter as the hex of its bz2-compressed
parameters, which include its own task parameter: the string grows by a constant factor per level,
so a deep chain cannot be built with gokart-equal ids. Prints per depth: wall seconds of a first
build, the serialized parameter of the top link in bytes, and the outcome (ok, or the error).

    .venv/bin/python bench/task_parameter_chain.py --depths 50,100,200,300 --dir /dev/shm
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import json, os, sys, time
sys.setrecursionlimit(100000)
impl, depth = {impl!r}, {depth}
if impl == "gokart":
    import gokart as lib
    kwargs = dict(log_level=40)
else:
    import kart_core as lib
    kwargs = dict()
import luigi

class Bottom(lib.TaskOnKart):
    def run(self):
        self.dump(0)

class Link(lib.TaskOnKart):
    prev = lib.TaskInstanceParameter()  # the default requires() makes it the upstream
    n = luigi.IntParameter()

    def run(self):
        self.dump(self.n)

started = time.perf_counter()
outcome, size = "ok", None
try:
    top = Bottom()
    for n in range(1, depth):
        top = Link(prev=top, n=n)
    size = len(Link.prev.serialize(top.prev))
    lib.build(top, **kwargs)
except BaseException as exc:
    outcome = f"{{type(exc).__name__}}: {{str(exc)[:300]}}"
print(json.dumps({{"seconds": time.perf_counter() - started, "bytes": size, "outcome": outcome}}))
"""


def run(impl: str, depth: int, where: str | None, timeout: float) -> dict[str, object]:
    """One first build of a chain ``depth`` links deep in a fresh interpreter and workspace."""
    with tempfile.TemporaryDirectory(prefix=f"bench-tip-{impl}-", dir=where) as workspace:
        env = {**os.environ, "CI": "true"}
        try:
            done = subprocess.run(
                [sys.executable, "-c", CHILD.format(impl=impl, depth=depth)],
                cwd=workspace,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return {"seconds": timeout, "bytes": None, "outcome": f"not done after {timeout:.0f} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"seconds": None, "bytes": None, "outcome": f"exit {done.returncode}: {done.stderr[-300:]}"}
    return json.loads(lines[-1])


def main() -> None:
    """Print a markdown table: depth, then seconds / bytes / outcome for kart and gokart."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depths", default="50,100,200,300,1000")
    parser.add_argument("--gokart-max", type=int, default=300, help="run gokart only up to this depth")
    parser.add_argument("--timeout", type=float, default=600, help="seconds before a depth is given up")
    parser.add_argument("--dir", default=None, help="where workspaces go (e.g. /dev/shm)")
    args = parser.parse_args()
    print("| depth | kart s | kart serialized bytes | kart outcome | gokart s | gokart outcome |")
    print("|---:|---:|---:|---|---:|---|", flush=True)
    for depth in (int(d) for d in args.depths.split(",")):
        kart = run("kart", depth, args.dir, args.timeout)
        gokart = run("gokart", depth, args.dir, args.timeout) if depth <= args.gokart_max else None
        cells = [f"{depth:,}", _seconds(kart), f"{kart['bytes']:,}" if kart["bytes"] is not None else "-"]
        cells.append(str(kart["outcome"]).replace("|", "/").replace("\n", " "))
        if gokart is None:
            cells += ["-", "not run"]
        else:
            cells += [_seconds(gokart), str(gokart["outcome"]).replace("|", "/").replace("\n", " ")]
        print("| " + " | ".join(cells) + " |", flush=True)


def _seconds(result: dict[str, object]) -> str:
    return f"{result['seconds']:.2f}" if isinstance(result["seconds"], float) else "-"


if __name__ == "__main__":
    main()
