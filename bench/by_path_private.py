"""What a by-path output costs per task: kart at two checkouts side by side (A/B), on local disk and on S3 (moto).

Each task writes a 1 KiB output by ``open(self.output().path(), "wb")`` (S3: ``fs.open(path, "wb")``); since
2026-12-02 that path is a private name the commit moves into place (a rename; a CopyObject and a DeleteObject on S3,
``kart_core.direct_write``). Each measurement is a fresh interpreter with ``PYTHONPATH`` at one checkout: one warm-up
build, then ``--tasks`` first builds, CPU (user + system) and wall per task; rounds alternate the order (ABBA).

    .venv/bin/python bench/by_path_private.py --a /path/to/main --b /path/to/branch --rounds 4 --tasks 30

Needs ``moto_server`` (the dev extra), started on 127.0.0.1 by ``tests/services.py``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

ONE = r"""
import os, resource, sys, time
root, workspace, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path[:0] = [root]
import luigi, kart_core
from kart_core.storage import storage_for

class ByPath(kart_core.TaskOnKart):
    i = luigi.IntParameter()
    def output(self):
        return self.make_target("bp/out.txt")
    def run(self):
        path = self.output().path()
        if "://" in path:
            opened = storage_for(path).file_system.open(path, "wb")
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            opened = open(path, "wb")
        with opened as file:
            file.write(b"x" * 1024)

kart_core.build(ByPath(i=-1, workspace_directory=workspace), log_level=40)  # imports, bucket, folders
before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
for i in range(n):
    kart_core.build(ByPath(i=i, workspace_directory=workspace), log_level=40)
wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
print(f"{cpu / n * 1000:.3f} {wall / n * 1000:.3f}")
"""


def main() -> None:
    """Run the A/B and print the median CPU and wall milliseconds per task for each checkout and storage."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", required=True, help="checkout A (its root goes first on PYTHONPATH)")
    parser.add_argument("--b", required=True, help="checkout B")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--tasks", type=int, default=30)
    args = parser.parse_args()
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
    from services import S3_KEY_ID, S3_SECRET, make_bucket, moto_server

    script = os.path.join(tempfile.mkdtemp(), "one.py")
    with open(script, "w") as file:
        file.write(ONE)
    roots = {"A": args.a, "B": args.b}
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    with moto_server(tempfile.mkdtemp()) as server:
        env.update(
            AWS_ACCESS_KEY_ID=S3_KEY_ID,
            AWS_SECRET_ACCESS_KEY=S3_SECRET,
            AWS_DEFAULT_REGION="us-east-1",
            KART_S3_ENDPOINT_URL=server.url,
        )
        for round_ in range(args.rounds):
            for name in ["A", "B"] if round_ % 2 == 0 else ["B", "A"]:
                for where in ("local", "s3"):
                    env["PYTHONPATH"] = roots[name]
                    local = where == "local"
                    workspace = tempfile.mkdtemp() if local else f"s3://{make_bucket(server)}/ws"
                    command = [sys.executable, script, roots[name], workspace, str(args.tasks)]
                    out = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout.split()
                    results.setdefault((where, name), []).append((float(out[0]), float(out[1])))
                    if local:
                        shutil.rmtree(workspace)
    for (where, name), values in sorted(results.items()):
        cpu = statistics.median(value[0] for value in values)
        wall = statistics.median(value[1] for value in values)
        print(f"{where:6} {name} cpu {cpu:7.2f} ms/task  wall {wall:8.2f} ms/task  (median of {len(values)})")


if __name__ == "__main__":
    main()
