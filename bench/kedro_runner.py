"""KartRunner against Kedro's SequentialRunner on one 200-node pipeline, side by side in one process.

The pipeline: ``--nodes`` nodes in ``--width`` parallel chains; node i adds one to a small list
from its predecessor and reads a parameter; every 10th output is a JSON file (a persistent dataset,
so KartRunner's output-state checks run), the rest are memory datasets. Per round, in a fresh
workspace and data folder: SequentialRunner, KartRunner's first run (every node runs and is
cached), KartRunner again (every node cached). Kedro's and kart's INFO logs are off for both, so
the numbers are the runners' own cost. Prints milliseconds per node, best of ``--repeat`` rounds,
and the ratio to SequentialRunner, in wall time and in CPU time of the process (user + system:
what to compare while other work loads the machine; both runners run in this one process), and the
kernel's share of that CPU time (system time: file creations, renames and locks are counted there;
on a journal-less ext4 creating a file costs what the machine deleted in the last minutes,
docs/benchmarks.md).

    .venv/bin/python bench/kedro_runner.py                    # 200 nodes, 5 rounds
    .venv/bin/python bench/kedro_runner.py --nodes 50 --repeat 2
    .venv/bin/python bench/kedro_runner.py --nodes 50 --workspace-root s3://bench/ws   # kart's cache on S3

With ``--workspace-root`` each round's kart workspace is a fresh folder (or prefix) under that URL,
e.g. on a moto server: ``moto_server -H 127.0.0.1 -p 5123`` plus ``AWS_ACCESS_KEY_ID=x
AWS_SECRET_ACCESS_KEY=x KART_S3_ENDPOINT_URL=http://127.0.0.1:5123`` and the bucket created.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

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


def timed(runner: Any, pipeline: Pipeline, nodes: int, data: Path) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds of this process: user + system, system seconds) for one run with a fresh catalog."""
    catalog = make_catalog(nodes, data)
    system = resource.getrusage(resource.RUSAGE_SELF).ru_stime
    cpu, wall = time.process_time(), time.perf_counter()
    runner.run(pipeline, catalog)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return wall, cpu, resource.getrusage(resource.RUSAGE_SELF).ru_stime - system


def one_round(nodes: int, width: int, workspace_root: str | None = None) -> dict[str, tuple[float, float, float]]:
    """SequentialRunner, KartRunner first and KartRunner cached, each in a fresh folder as needed.

    ``workspace_root``: a URL (``s3://bucket/prefix``) under which kart's workspace is a fresh prefix;
    default: a folder beside the data.
    """
    pipeline = make_pipeline(nodes, width)
    with tempfile.TemporaryDirectory(prefix="bench-kedro-") as folder:
        root = Path(folder)
        (root / "plain").mkdir()
        (root / "kart").mkdir()
        workspace = f"{workspace_root}/{root.name}" if workspace_root else str(root / "ws")
        sequential = timed(SequentialRunner(), pipeline, nodes, root / "plain")
        first = timed(KartRunner(workspace_directory=workspace), pipeline, nodes, root / "kart")
        cached = timed(KartRunner(workspace_directory=workspace), pipeline, nodes, root / "kart")
    return {"sequential": sequential, "kart_first": first, "kart_cached": cached}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--width", type=int, default=4, help="parallel chains")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workspace-root", default=None, help="URL under which kart's workspaces go (s3://...)")
    args = parser.parse_args()
    for name in ("kedro", "kart_kedro"):
        logging.getLogger(name).setLevel(logging.WARNING)
    one_round(min(args.nodes, 20), args.width, args.workspace_root)  # warm-up: imports, first-use caches
    rounds = [one_round(args.nodes, args.width, args.workspace_root) for _ in range(args.repeat)]
    wall = {key: min(r[key][0] for r in rounds) for key in rounds[0]}
    best_cpu = {key: min((r[key] for r in rounds), key=lambda timing: timing[1]) for key in rounds[0]}
    cpu = {key: timing[1] for key, timing in best_cpu.items()}
    system = {key: timing[2] for key, timing in best_cpu.items()}  # of the round with the least CPU
    where = args.workspace_root or f"a folder under {tempfile.gettempdir()}"
    load = " / ".join(f"{value:.1f}" for value in os.getloadavg())  # CPU times inflate on a loaded machine
    print(
        f"{args.nodes} nodes in {args.width} chains, best of {args.repeat} rounds; {platform.python_version()}; "
        f"kart workspace: {where}; load average at the end {load}"
    )
    print(
        "| runner | run | wall s | wall ms/node | vs SequentialRunner | CPU ms/node | CPU vs SequentialRunner "
        "| of which kernel ms/node |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    labels = {
        "sequential": ("SequentialRunner", "every node runs"),
        "kart_first": ("KartRunner", "first (every node runs, is cached)"),
        "kart_cached": ("KartRunner", "again (every node cached)"),
    }
    for key, (runner, run) in labels.items():
        print(
            f"| {runner} | {run} | {wall[key]:.3f} | {1000 * wall[key] / args.nodes:.2f} | "
            f"{wall[key] / wall['sequential']:.2f}x | {1000 * cpu[key] / args.nodes:.2f} | "
            f"{cpu[key] / cpu['sequential']:.2f}x | {1000 * system[key] / args.nodes:.2f} |"
        )


if __name__ == "__main__":
    main()
