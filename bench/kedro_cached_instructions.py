"""Instructions of KartRunner's fully cached runs of bench/kedro_runner.py's pipeline, per node (callgrind).

The sibling of ``kedro_first_instructions.py`` for the cached runs, counted by callgrind (Valgrind) so they do not
move with the load of a shared machine as CPU times do. In one process, after an uncounted warm-up round (a first
and a cached run of a smaller pipeline), each in the same workspace and data folder:

- ``sequential``: SequentialRunner's run of the pipeline (the peer; its own data folder);
- ``first``: KartRunner's first run (every node runs and is cached; not counted by default: ``--first``);
- ``again``: KartRunner's second run in the process (every node cached);
- ``cold``: again after ``kedro_runner.forget_process_state`` (what a new ``kedro run`` process starts without);
- ``again after cold``: a run after the cold one, in the same process;
- ``cold 2``: cold once more (a check that the first cold run's count is not a one-off).

Only the runner's ``run()`` is counted (the catalog is made before). ``PYTHONHASHSEED`` is fixed, so two runs of
this script on the same code count nearly the same (a few thousand instructions apart). Needs ``valgrind`` and a C
compiler with ``valgrind/callgrind.h`` (as ``kedro_first_instructions.py``); ``--annotate`` keeps the callgrind
files and prints ``callgrind_annotate``'s inclusive top functions of each counted run.

    .venv/bin/python bench/kedro_cached_instructions.py                 # 200 nodes in 4 chains (~2 minutes)
    .venv/bin/python bench/kedro_cached_instructions.py --nodes 40 --annotate 30
"""

from __future__ import annotations

import argparse
import glob
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kedro_first_instructions import build_helper  # noqa: E402 (a sibling bench script)

PHASES = ("sequential", "first", "again", "cold", "again after cold", "cold 2")


def measure(library: str, nodes: int, width: int, first: bool) -> None:
    """Run the phases (inside callgrind); each counted one ends with a dump named after it."""
    import ctypes

    import kedro_runner as bench
    from kart_kedro import KartRunner
    from kedro.runner import SequentialRunner

    lib = ctypes.CDLL(library)
    lib.kart_dump.argtypes = [ctypes.c_char_p]
    for name in ("kedro", "kart_kedro"):
        logging.getLogger(name).setLevel(logging.WARNING)
    folder = Path(tempfile.mkdtemp(prefix="kedro-cached-instructions-"))
    for name in ("warm-plain", "warm-data", "plain", "data"):
        (folder / name).mkdir()
    warm = bench.make_pipeline(min(nodes, 20), width)
    SequentialRunner().run(warm, bench.make_catalog(min(nodes, 20), folder / "warm-plain"))
    for _ in range(2):
        KartRunner(workspace_directory=str(folder / "warm-ws")).run(
            warm, bench.make_catalog(min(nodes, 20), folder / "warm-data")
        )
    pipeline = bench.make_pipeline(nodes, width)
    for phase in PHASES:
        if phase.startswith("cold"):
            bench.forget_process_state()
        data = folder / ("plain" if phase == "sequential" else "data")
        catalog = bench.make_catalog(nodes, data)
        runner = SequentialRunner() if phase == "sequential" else KartRunner(workspace_directory=str(folder / "ws"))
        counted = phase != "first" or first
        if counted:
            lib.kart_toggle()
        runner.run(pipeline, catalog)
        if counted:
            lib.kart_toggle()
            lib.kart_dump(phase.encode())
    shutil.rmtree(folder)


def totals(folder: str) -> dict[str, tuple[int, str]]:
    """Each dump's total instructions and file, by its name."""
    found: dict[str, tuple[int, str]] = {}
    for path in glob.glob(os.path.join(folder, "callgrind.out.*.*")):
        name, total = "", 0
        with open(path, errors="replace") as file:
            for line in file:
                if line.startswith("desc: Trigger: Client Request: "):
                    name = line.rstrip("\n").rsplit(": ", 1)[1]
                elif line.startswith("totals:"):
                    total = int(line.split()[1])
                    break
        found[name] = (total, path)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--width", type=int, default=4, help="parallel chains")
    parser.add_argument("--first", action="store_true", help="count the first run too (slower)")
    parser.add_argument("--annotate", type=int, default=0, help="print this many top functions of each phase")
    parser.add_argument("--keep", default=None, help="copy the callgrind files into this folder")
    parser.add_argument("--inside", default=None, help=argparse.SUPPRESS)  # the helper library, under callgrind
    args = parser.parse_args()
    if args.inside:
        measure(args.inside, args.nodes, args.width, args.first)
        return
    with tempfile.TemporaryDirectory(prefix="kedro-cached-instructions-") as folder:
        library = build_helper(folder)
        command = [
            "valgrind",
            "--tool=callgrind",
            "--collect-atstart=no",
            f"--callgrind-out-file={folder}/callgrind.out.%p",
            sys.executable,
            os.path.abspath(__file__),
            f"--nodes={args.nodes}",
            f"--width={args.width}",
            f"--inside={library}",
            *(["--first"] if args.first else []),
        ]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        found = totals(folder)
        print(f"{args.nodes} nodes in {args.width} chains; instructions per node (callgrind), one run each:")
        print()
        print("| run | instructions per node | vs SequentialRunner |")
        print("| --- | ---: | ---: |")
        sequential = found.get("sequential", (0, ""))[0]
        for phase in PHASES:
            if phase not in found:
                continue
            total = found[phase][0]
            ratio = f"{total / sequential:.3f}x" if sequential else "-"
            print(f"| {phase} | {total // args.nodes:,} | {ratio} |")
        if args.keep:
            os.makedirs(args.keep, exist_ok=True)
            for phase, (_, path) in found.items():
                shutil.copy(path, os.path.join(args.keep, f"callgrind.{phase.replace(' ', '_')}"))
        if args.annotate:
            for phase in PHASES:
                if phase == "sequential" or phase not in found:
                    continue
                print(f"\n## {phase}: inclusive\n")
                annotated = subprocess.run(
                    ["callgrind_annotate", "--inclusive=yes", found[phase][1]],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                lines = [line for line in annotated.splitlines() if line.strip()]
                start = next((i for i, line in enumerate(lines) if "file:function" in line), 0) + 1
                print("\n".join(lines[start : start + args.annotate]))


if __name__ == "__main__":
    main()
