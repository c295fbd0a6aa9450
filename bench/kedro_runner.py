"""KartRunner against Kedro's SequentialRunner on one 200-node pipeline, side by side in one process.

The pipeline: ``--nodes`` nodes in ``--width`` parallel chains; node i adds one to a small list
from its predecessor and reads a parameter; every 10th output is a JSON file (a persistent dataset,
so KartRunner's output-state checks run), the rest are memory datasets. Per round, in a fresh
workspace and data folder, back to back: SequentialRunner, KartRunner's first run (every node runs
and is cached), KartRunner again (every node cached), and KartRunner cold: again after emptying what
only a second run in the same process has (luigi's instance cache, kart's manifest parses: what a new
``kedro run`` process starts without; ``forget_process_state``); every other round runs KartRunner's two runs
first, so a drift of the machine within a round favours neither runner. Kedro's and kart's INFO logs
are off for both, so the numbers are the runners' own cost.

Why paired rounds, and many of them: on the project's 2-core VM, SequentialRunner alone moved between
1.06 and 1.85 ms/node across three idle runs a minute apart, and KartRunner's first run on ext4
between 2.07 and 5.04 (docs/benchmarks.md, session 11 close): the best of five rounds per runner,
taken from different moments, could not decide a 1.2x or 0.2x goal either way. Here each round's
KartRunner runs are divided by that round's SequentialRunner (seconds apart, under the same load),
and the goal is decided on the median of those per-round ratios over ``--repeat`` rounds (15 by
default; ``--budget`` adds rounds until that many seconds are spent), printed with its quartiles
and extremes, in CPU time of the process (user + system: what to compare while other work loads
the machine; both runners run in this one process) and in wall time.

The first table keeps the columns earlier sessions compared: milliseconds per node, best of the
rounds, the ratio to SequentialRunner in wall and CPU time, and the kernel's share of the CPU time
(system time: file creations, renames and locks are counted there; on a journal-less ext4 creating a
file costs what the machine deleted in the last minutes, docs/benchmarks.md): so the rounds' folders are
deleted at the end, not between rounds (``--delete-each-round``: as before session 12).
The first line also gives what making one file in the data folder costs (``creation_cost``) before and after the
rounds: KartRunner's first run makes two files per node, so on such a disk its ratio follows that number.

    .venv/bin/python bench/kedro_runner.py                    # 200 nodes, 15 paired rounds
    .venv/bin/python bench/kedro_runner.py --budget 120       # as many rounds as 2 minutes hold (>= 15)
    .venv/bin/python bench/kedro_runner.py --nodes 50 --repeat 2
    .venv/bin/python bench/kedro_runner.py --nodes 50 --workspace-root s3://bench/ws   # kart's cache on S3

With ``--workspace-root`` each round's kart workspace is a fresh folder (or prefix) under that URL,
e.g. on a moto server: ``moto_server -H 127.0.0.1 -p 5123`` plus ``AWS_ACCESS_KEY_ID=x
AWS_SECRET_ACCESS_KEY=x KART_S3_ENDPOINT_URL=http://127.0.0.1:5123`` and the bucket created.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import platform
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

import luigi.task_register
from kart_kedro import KartRunner
from kedro.io import AbstractDataset, DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline, node
from kedro.runner import SequentialRunner


class JsonFile(AbstractDataset[Any, Any]):
    """A JSON file (a persistent dataset)."""

    def __init__(self, filepath: str) -> None:
        self._filepath = Path(filepath)

    def load(self) -> Any:
        return json.loads(self._filepath.read_text())

    def save(self, data: Any) -> None:
        self._filepath.write_text(json.dumps(data))

    def _exists(self) -> bool:
        return self._filepath.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


def start(step: int) -> list[int]:
    """The first node of a chain."""
    return list(range(step, step + 10))


def step(values: list[int], increment: int) -> list[int]:
    """Every other node: a small amount of real work."""
    return [value + increment for value in values]


def make_pipeline(nodes: int, width: int) -> Pipeline:
    """``nodes`` nodes in ``width`` chains."""
    made = []
    for index in range(nodes):
        position = index // width
        output = f"d{index}"
        if position == 0:
            made.append(node(start, "params:increment", output, name=f"n{index}"))
        else:
            made.append(node(step, [f"d{index - width}", "params:increment"], output, name=f"n{index}"))
    return Pipeline(made)


def make_catalog(nodes: int, data: Path) -> DataCatalog:
    """Parameters, and every 10th output as a JSON file."""
    entries: dict[str, Any] = {"params:increment": MemoryDataset(1)}
    for index in range(0, nodes, 10):
        entries[f"d{index}"] = JsonFile(str(data / f"d{index}.json"))
    return DataCatalog(entries)


class Timing(NamedTuple):
    """One run's cost in seconds: wall, CPU of this process (user + system), and its system part."""

    wall: float
    cpu: float
    system: float


def timed(runner: Any, pipeline: Pipeline, nodes: int, data: Path) -> Timing:
    """One run with a fresh catalog, after a garbage collection (so no phase pays for another's garbage)."""
    catalog = make_catalog(nodes, data)
    gc.collect()
    system = resource.getrusage(resource.RUSAGE_SELF).ru_stime
    cpu, wall = time.process_time(), time.perf_counter()
    runner.run(pipeline, catalog)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return Timing(wall, cpu, resource.getrusage(resource.RUSAGE_SELF).ru_stime - system)


PHASES = ("sequential", "kart_first", "kart_cached", "kart_cold")


def forget_process_state() -> None:
    """Empty what a second run in this process reuses and a new ``kedro run`` process would not have: luigi's
    instance cache (the node runs, their ids and targets; kart's look-up by values lives inside it), kart's
    parses of manifest bytes seen before, its reads of installed distributions' metadata (the code
    fingerprint's classifier), its scans of code objects' imports and its node run ids by their values. Imports
    and kart's per-process code fingerprints stay warm, so the ``cold`` phase
    is a lower bound of a new process's cached run (without the interpreter's start and imports, which
    SequentialRunner's process pays alike)."""
    luigi.task_register.Register.clear_instance_cache()
    from kart_kedro import node_cache

    from kart_core import fingerprint, manifest

    manifest._PARSED.clear()  # bench only: kart keeps no public switch for this per-process memo
    fingerprint._FACTS.clear()  # nor for this one (installed distributions' metadata, read once per install state)
    fingerprint._scanned_imports.cache_clear()  # nor this one (each code object's imports, read from its bytecode)
    node_cache._ids_by_values.cache_clear()  # nor this one (node runs' ids by their values)


def one_round(
    nodes: int, width: int, root: Path, workspace_root: str | None = None, kart_first: bool = False
) -> dict[str, Timing]:
    """SequentialRunner, KartRunner first and KartRunner cached, back to back, in fresh folders under ``root``.

    ``workspace_root``: a URL (``s3://bucket/prefix``) under which kart's workspace is a fresh prefix;
    default: a folder beside the data. ``kart_first``: run KartRunner's two runs before SequentialRunner
    (rounds alternate, so a drift of the machine within a round favours neither runner).
    """
    pipeline = make_pipeline(nodes, width)
    (root / "plain").mkdir(parents=True)
    (root / "kart").mkdir()
    workspace = f"{workspace_root}/{root.parent.name}-{root.name}" if workspace_root else str(root / "ws")
    timings: dict[str, Timing] = {}
    if not kart_first:
        timings["sequential"] = timed(SequentialRunner(), pipeline, nodes, root / "plain")
    timings["kart_first"] = timed(KartRunner(workspace_directory=workspace), pipeline, nodes, root / "kart")
    timings["kart_cached"] = timed(KartRunner(workspace_directory=workspace), pipeline, nodes, root / "kart")
    forget_process_state()
    timings["kart_cold"] = timed(KartRunner(workspace_directory=workspace), pipeline, nodes, root / "kart")
    if kart_first:
        timings["sequential"] = timed(SequentialRunner(), pipeline, nodes, root / "plain")
    return timings


def spread(values: list[float]) -> tuple[float, float, float, float, float]:
    """(min, lower quartile, median, upper quartile, max) of ``values`` (statistics' inclusive quartiles)."""
    if len(values) == 1:
        return (values[0],) * 5
    low, middle, high = statistics.quantiles(values, n=4, method="inclusive")
    return min(values), low, middle, high, max(values)


GOALS = {"kart_first": 1.2, "kart_cached": 0.2, "kart_cold": 0.2}  # issue 15: KartRunner / SequentialRunner


def run_rounds(args: argparse.Namespace, folder: Path) -> list[dict[str, Timing]]:
    """``--repeat`` rounds, or more while ``--budget`` seconds last; alternating the order within a round.

    Each round's folders are deleted right after it with ``--delete-each-round``, else all at the end
    (``main``): on an ext4 mounted with ``discard`` (this VM's /tmp) creating a file just after many
    deletions costs up to 30 times more (28 us against 1,000 us measured), so deleting a round's ~1,000
    files before the next round charged the next round's file creations, mostly KartRunner's, for the
    bench's own clean-up.
    """
    rounds: list[dict[str, Timing]] = []
    started = time.perf_counter()
    while len(rounds) < args.repeat or (args.budget and time.perf_counter() - started < args.budget):
        root = folder / f"round{len(rounds)}"
        kart_first = len(rounds) % 2 == 1
        rounds.append(one_round(args.nodes, args.width, root, args.workspace_root, kart_first=kart_first))
        if args.delete_each_round:
            shutil.rmtree(root)
    return rounds


def creation_cost(folder: Path, files: int = 200) -> float:
    """Microseconds of this process's CPU to make one empty file (``O_CREAT | O_EXCL``, then closed) in a new folder
    under ``folder``: what each file kart's first run makes costs here (an output and its manifest per node;
    SequentialRunner makes one per persistent output). On ext4 without a journal it is what the machine deleted
    in the last minutes (each new file passes every inode freed since), so it can move tenfold between runs. The
    files stay until ``folder`` is deleted with the rounds' (deleted now, they would make the rounds' files dearer)."""
    probe = Path(tempfile.mkdtemp(dir=folder, prefix="creation-probe-"))
    started = time.process_time()
    for index in range(files):
        os.close(os.open(probe / f"f{index}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    return (time.process_time() - started) / files * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--width", type=int, default=4, help="parallel chains")
    parser.add_argument("--repeat", type=int, default=15, help="rounds (at least)")
    parser.add_argument("--budget", type=float, default=0.0, help="seconds: keep adding rounds until spent")
    parser.add_argument("--workspace-root", default=None, help="URL under which kart's workspaces go (s3://...)")
    parser.add_argument(
        "--delete-each-round", action="store_true", help="delete a round's folders right after it (before 12/2026)"
    )
    args = parser.parse_args()
    for name in ("kedro", "kart_kedro"):
        logging.getLogger(name).setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-kedro-") as folder:
        # warm-up: imports, first-use caches
        one_round(min(args.nodes, 20), args.width, Path(folder) / "warm-up", args.workspace_root)
        load_before = os.getloadavg()
        creation = [creation_cost(Path(folder))]
        rounds = run_rounds(args, Path(folder))
        creation.append(creation_cost(Path(folder)))
    wall = {key: min(r[key].wall for r in rounds) for key in PHASES}
    best_cpu = {key: min((r[key] for r in rounds), key=lambda timing: timing.cpu) for key in PHASES}
    cpu = {key: timing.cpu for key, timing in best_cpu.items()}
    system = {key: timing.system for key, timing in best_cpu.items()}  # of the round with the least CPU
    where = args.workspace_root or f"a folder under {tempfile.gettempdir()}"
    load = " / ".join(f"{value:.1f}" for value in os.getloadavg())  # CPU times inflate on a loaded machine
    print(
        f"{args.nodes} nodes in {args.width} chains, {len(rounds)} rounds; {platform.python_version()}; "
        f"kart workspace: {where}; load average (1/5/15 min) at the start {load_before[0]:.1f}, at the end {load}; "
        f"making a file in the data folder cost {creation[0]:.0f} us of CPU before the rounds, {creation[1]:.0f} after"
    )
    print()
    print("Best of the rounds (each phase's least time, whichever round it came from):")
    print()
    print(
        "| runner | run | wall s | wall ms/node | vs SequentialRunner | CPU ms/node | CPU vs SequentialRunner "
        "| of which kernel ms/node |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    labels = {
        "sequential": ("SequentialRunner", "every node runs"),
        "kart_first": ("KartRunner", "first (every node runs, is cached)"),
        "kart_cached": ("KartRunner", "again (every node cached)"),
        "kart_cold": ("KartRunner", "cold (every node cached, as a new process finds it)"),
    }
    for key, (runner, run) in labels.items():
        print(
            f"| {runner} | {run} | {wall[key]:.3f} | {1000 * wall[key] / args.nodes:.2f} | "
            f"{wall[key] / wall['sequential']:.2f}x | {1000 * cpu[key] / args.nodes:.2f} | "
            f"{cpu[key] / cpu['sequential']:.2f}x | {1000 * system[key] / args.nodes:.2f} |"
        )
    print()
    print(
        "Paired: KartRunner / SequentialRunner within each round; median of the rounds' ratios, with the "
        "quartiles and the extremes:"
    )
    print()
    print("| run | time | median ratio | quartiles | min – max | goal | median ms/node (Sequential, Kart) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    verdicts = []
    for key in ("kart_first", "kart_cached", "kart_cold"):
        for measure in ("cpu", "wall"):
            ratios = [getattr(r[key], measure) / getattr(r["sequential"], measure) for r in rounds]
            low, q1, median, q3, high = spread(ratios)
            plain = statistics.median(getattr(r["sequential"], measure) for r in rounds)
            kart = statistics.median(getattr(r[key], measure) for r in rounds)
            print(
                f"| {labels[key][1].split(' ')[0]} | {measure.upper() if measure == 'cpu' else measure} | "
                f"{median:.2f}x | {q1:.2f}–{q3:.2f}x | {low:.2f}–{high:.2f}x | ≤ {GOALS[key]}x | "
                f"{1000 * plain / args.nodes:.2f}, {1000 * kart / args.nodes:.2f} |"
            )
            if measure == "cpu":
                verdicts.append(_verdict(key, median, q3))
    print()
    for line in verdicts:
        print(line)


def _verdict(key: str, median: float, upper_quartile: float) -> str:
    """One line deciding a goal on the paired CPU ratios: met when the median is under the goal."""
    goal = GOALS[key]
    what = {
        "kart_first": "first run",
        "kart_cached": "fully cached run (same process)",
        "kart_cold": "fully cached run (as a new process)",
    }[key]
    if median > goal:
        return f"{what}: goal <= {goal}x NOT met (median CPU ratio {median:.3f}x)"
    margin = "" if upper_quartile <= goal else f"; upper quartile {upper_quartile:.3f}x is over it"
    return f"{what}: goal <= {goal}x met (median CPU ratio {median:.3f}x{margin})"


if __name__ == "__main__":
    main()
