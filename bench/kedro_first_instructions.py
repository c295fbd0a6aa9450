"""Instructions of first runs of bench/kedro_runner.py's pipeline, split into kart's own work and Kedro's node execution.

Counted by callgrind (Valgrind), so they do not move with the load of a shared machine as CPU times do. Per
measured run (each in a fresh workspace and data folder, after an uncounted warm-up of each runner):

- ``kart own``: KartRunner's ``run()`` outside Kedro's ``Task.execute`` (deciding, keying, checking,
  committing, records, kart's hooks and scheduling);
- ``Task.execute``: inside it (loading inputs, the node, saving outputs, Kedro's hooks), for each runner;
- ``whole``: the runner's ``run()``.

Each is counted once with Kedro's MemoryDataset as it is, which tries ``import ibis`` on every save and load
(``kedro.io.memory_dataset._infer_copy_mode``: a failed import searches every ``sys.path`` entry anew), and once
with ``ibis`` marked absent (``sys.modules["ibis"] = None``: the import fails at once). The counts printed are
per node. Needs ``valgrind`` and a C compiler with ``valgrind/callgrind.h`` (the client requests that switch the
counting on and off are compiled into a small helper library).

    .venv/bin/python bench/kedro_first_instructions.py                  # 40 nodes in 4 chains
    .venv/bin/python bench/kedro_first_instructions.py --nodes 200      # the bench's size (slower: ~5x)
    .venv/bin/python bench/kedro_first_instructions.py --only kart-own  # kart's own, ibis absent: one counted run
    .venv/bin/python bench/kedro_first_instructions.py --only kart-whole-as-is  # KartRunner's run() as the bench runs
    .venv/bin/python bench/kedro_first_instructions.py --only kart-own \
        --split kart_core.transaction:Transaction.commit kart_core.manifest:Manifest.to_bytes  # where kart's own goes

``--split module:qualname ...`` (with ``--only``) also prints, per node, the instructions counted inside each named
function or method but outside the others named (exclusive: a nested named one counts apart), and ``rest`` for the
remainder. A name is patched on its module or class, so a function another module imported by name (``from m import
f``) is named there (``that_module:f``). The wrappers' own work (a ctypes call per entry and exit) is counted in
the names, so their sum is above the plain count by a few thousand per call.
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HELPER = r"""
#include <valgrind/callgrind.h>
void kart_toggle(void) { CALLGRIND_TOGGLE_COLLECT; }
void kart_dump(const char *name) { CALLGRIND_DUMP_STATS_AT(name); }
"""

# (runner, what is counted, ibis importable): printed in this order.
MEASUREMENTS = [
    ("kart", "whole", True),
    ("kart", "own", True),
    ("kart", "task", True),
    ("seq", "whole", True),
    ("seq", "task", True),
    ("kart", "whole", False),
    ("kart", "own", False),
    ("kart", "task", False),
    ("seq", "whole", False),
    ("seq", "task", False),
]


def build_helper(folder: str) -> str:
    """Compile the client-request helper into ``folder``; return the library's path.

    Raises:
        subprocess.CalledProcessError: no C compiler, or no ``valgrind/callgrind.h``.
    """
    source, library = os.path.join(folder, "toggle.c"), os.path.join(folder, "libtoggle.so")
    Path(source).write_text(HELPER)
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", library, source], check=True)
    return library


class Counter:
    """Switches callgrind's counting on while the current measurement's part of a run executes."""

    def __init__(self, library: str) -> None:
        self.lib = ctypes.CDLL(library)
        self.lib.kart_dump.argtypes = [ctypes.c_char_p]
        self.mode: str | None = None
        self.in_run = False
        self.in_task = 0
        self.counting = False
        self.regions = ["rest"]  # the ``--split`` names entered, innermost last

    def boundary(self) -> None:
        """A ``--split`` function is entered or left: what was counted so far goes to the innermost one (a dump)."""
        if self.counting:
            self.lib.kart_dump(self.regions[-1].encode())

    def split(self, spec: str) -> None:
        """Count the function or method ``module:qualname`` apart (``--split``)."""
        import functools
        import importlib

        module, _, qualname = spec.partition(":")
        *outer, name = qualname.split(".")
        owner: Any = importlib.import_module(module)
        for part in outer:
            owner = getattr(owner, part)
        original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        if isinstance(original, (staticmethod, classmethod)):
            raise SystemExit(f"--split {spec}: a static or class method is not supported")
        counter = self

        @functools.wraps(original)
        def counted(*args: Any, **kwargs: Any) -> Any:
            counter.boundary()
            counter.regions.append(qualname)
            try:
                return original(*args, **kwargs)
            finally:
                counter.boundary()
                counter.regions.pop()

        setattr(owner, name, counted)

    def update(self) -> None:
        """Toggle the counting when what should be counted changed."""
        mode, inside = self.mode, self.in_task > 0
        want = self.in_run and (mode == "whole" or (mode == "task" and inside) or (mode == "own" and not inside))
        if want != self.counting:
            self.lib.kart_toggle()
            self.counting = want

    def watch_tasks(self) -> None:
        """Count Kedro's ``Task.execute`` (every node both runners run goes through it) apart."""
        from kedro.runner import task as task_module

        original = task_module.Task.execute
        counter = self

        def execute(task: Any) -> Any:
            counter.in_task += 1
            counter.update()
            try:
                return original(task)
            finally:
                counter.in_task -= 1
                counter.update()

        task_module.Task.execute = execute  # type: ignore[method-assign, assignment]


# ``--only``: one measurement instead of all ten (a before/after comparison of kart's own code in a fifth of the time).
# The "-as-is" ones count with ibis importable, as bench/kedro_runner.py runs (Kedro's failed imports included).
ONLY = {
    "kart-own": [("kart", "own", False)],
    "kart-whole": [("kart", "whole", False)],
    "kart-whole-as-is": [("kart", "whole", True)],
    "seq-whole-as-is": [("seq", "whole", True)],
}


def measure(library: str, nodes: int, width: int, only: str | None = None, split: list[str] | None = None) -> None:
    """Run the measurements (inside callgrind); each ends with a dump named after it (and one per ``split`` entry)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import kedro_runner as bench
    from kart_kedro import KartRunner
    from kedro.runner import SequentialRunner

    for name in ("kedro", "kart_kedro"):
        logging.getLogger(name).setLevel(logging.WARNING)
    counter = Counter(library)
    counter.watch_tasks()
    for spec in split or ():
        counter.split(spec)
    folder = Path(tempfile.mkdtemp(prefix="kedro-first-instructions-"))
    pipeline = bench.make_pipeline(nodes, width)
    count = 0

    def one(kind: str, mode: str | None) -> None:
        nonlocal count
        count += 1
        (folder / f"data{count}").mkdir()
        catalog = bench.make_catalog(nodes, folder / f"data{count}")
        runner = KartRunner(workspace_directory=str(folder / f"ws{count}")) if kind == "kart" else SequentialRunner()
        counter.mode, counter.in_run = mode, True
        counter.update()
        runner.run(pipeline, catalog)
        counter.in_run = False
        counter.update()

    one("kart", None)
    one("seq", None)
    for kind, mode, ibis in ONLY[only] if only else MEASUREMENTS:
        if not ibis:
            sys.modules["ibis"] = None  # type: ignore[assignment]
        elif sys.modules.get("ibis", 0) is None:
            del sys.modules["ibis"]
        one(kind, mode)
        counter.lib.kart_dump(f"{kind}:{mode}:{'ibis' if ibis else 'noibis'}".encode())
    shutil.rmtree(folder, ignore_errors=True)  # the runs' workspaces and data (a counted run's size each, in TMPDIR)


def report(folder: str, nodes: int, only: str | None = None, split: list[str] | None = None) -> None:
    """Print the dumps' totals per node, in the order measured (and per ``split`` name, most first)."""
    totals: dict[str, int] = {}
    for path in glob.glob(os.path.join(folder, "callgrind.out.*.*")):
        name, total = "", 0
        for line in Path(path).read_text(errors="replace").splitlines():
            if line.startswith("desc: Trigger: Client Request: "):
                name = line.rsplit(": ", 1)[1]
            elif line.startswith(("summary:", "totals:")):
                total = int(line.split()[1])
                break
        totals[name] = totals.get(name, 0) + total
    if only:
        parts = {name: total for name, total in totals.items() if ":" not in name}  # --split's ("rest" too)
        for kind, mode, ibis in ONLY[only]:  # one measurement: the parts are its own
            label = f"{kind}:{mode}:{'ibis' if ibis else 'noibis'}"
            value = (totals.get(label, 0) + sum(parts.values())) // nodes
            print(
                f"{nodes} nodes; {only} ({'ibis importable' if ibis else 'ibis absent'}): {value:,} instructions per node"
            )
            if split:
                parts["rest"] = parts.get("rest", 0) + totals.get(label, 0)  # after the last boundary
                for name, total in sorted(parts.items(), key=lambda item: -item[1]):
                    print(f"  {total // nodes:>12,}  {name}")
        return
    print(f"{nodes} nodes; instructions per node (callgrind), one first run each:")
    print()
    print("| runner | counted | ibis importable (Kedro as is) | `ibis` marked absent |")
    print("| --- | --- | ---: | ---: |")
    labels = {"whole": "run()", "own": "run() outside Task.execute", "task": "inside Task.execute"}
    for kind, mode, ibis in MEASUREMENTS:
        if not ibis:
            continue
        runner = "KartRunner" if kind == "kart" else "SequentialRunner"
        values = [totals.get(f"{kind}:{mode}:{flag}", 0) // nodes for flag in ("ibis", "noibis")]
        print(f"| {runner} | {labels[mode]} | {values[0]:,} | {values[1]:,} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=40)
    parser.add_argument("--width", type=int, default=4, help="parallel chains")
    parser.add_argument("--only", choices=sorted(ONLY), default=None, help="count one measurement only")
    parser.add_argument(
        "--split", nargs="+", default=None, metavar="MODULE:QUALNAME", help="with --only: count these functions apart"
    )
    parser.add_argument("--inside", default=None, help=argparse.SUPPRESS)  # the helper library, under callgrind
    args = parser.parse_args()
    if args.split and not args.only:
        parser.error("--split needs --only (one measurement)")
    if args.inside:
        measure(args.inside, args.nodes, args.width, args.only, args.split)
        return
    with tempfile.TemporaryDirectory(prefix="kedro-first-instructions-") as folder:
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
            *([f"--only={args.only}"] if args.only else []),
            *(["--split", *args.split] if args.split else []),
        ]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        report(folder, args.nodes, args.only, args.split)


if __name__ == "__main__":
    main()
