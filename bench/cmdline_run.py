"""``gokart.run()`` with many registered task classes: kart against gokart 1.12.2, side by side.

luigi's command-line parser holds an option for every parameter of every registered task class, and
argparse checks each new option against the ones before it, so building the parser grows with the
square of the number of options. A script ending in ``gokart.run()`` builds one task; this measures
the whole call (parse, build one small task, exit) in a fresh process per library and size, with
``--classes`` task classes of five parameters each registered. Prints wall and CPU seconds of the
child process and the kart/gokart ratio of CPU time (what to read while other jobs share the machine).

    .venv/bin/python bench/cmdline_run.py                    # 50, 200 and 500 classes
    .venv/bin/python bench/cmdline_run.py --classes 100
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import textwrap
import time

SCRIPT = textwrap.dedent(
    """
    import sys
    import luigi
    if sys.argv.pop(1) == "kart":
        import kart_core as gokart
    else:
        import gokart
    count = int(sys.argv.pop(1))

    def run(self):
        self.dump(1)

    for index in range(count):
        params = {f"p{j}": luigi.IntParameter(default=j) for j in range(5)}
        type(f"T{index}", (gokart.TaskOnKart,), {**params, "__module__": __name__, "run": run})

    if __name__ == "__main__":
        gokart.run()
    """
)


def measure(library: str, classes: int, folder: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system) of one ``gokart.run()`` script in a fresh process."""
    script = os.path.join(folder, "main.py")
    with open(script, "w") as handle:
        handle.write(SCRIPT)
    workspace = os.path.join(folder, f"ws-{library}-{classes}")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, script, library, str(classes), "T1", "--local-scheduler", "--workspace-directory", workspace],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{library} with {classes} classes exited {done.returncode}:\n{done.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", default="50,200,500", help="comma-separated numbers of task classes")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs per cell")
    args = parser.parse_args()
    sizes = [int(size) for size in args.classes.split(",")]
    print(
        f"gokart.run() of one task, N task classes x 5 parameters registered; best of {args.repeat}; "
        f"Python {platform.python_version()}"
    )
    print("| classes | kart wall s | kart CPU s | gokart wall s | gokart CPU s | CPU kart/gokart |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory(prefix="bench-cmdline-") as folder:
        for size in sizes:
            cells = {}
            for library in ("kart", "gokart"):
                runs = [measure(library, size, folder) for _ in range(args.repeat)]
                cells[library] = (min(run[0] for run in runs), min(run[1] for run in runs))
            kart, gokart = cells["kart"], cells["gokart"]
            print(
                f"| {size} | {kart[0]:.2f} | {kart[1]:.2f} | {gokart[0]:.2f} | {gokart[1]:.2f} | "
                f"{kart[1] / gokart[1]:.2f}x |"
            )


if __name__ == "__main__":
    main()
