"""How long `kart runs` takes to list a workspace's runs, against a plain read of the same run logs.

Generates N runs in a temporary workspace in gokart's layout (per run: an output, and the
``task_params``, ``random_seed``, ``module_versions``, ``processing_time`` and ``task_log`` logs;
half of the runs have a task-valued parameter, stored as gokart's bz2 blob), then times, each in a
fresh process:

- ``kart runs`` (the console script, table output), and ``kart runs --format json``;
- the peer: a Python process that walks the workspace and unpickles every ``task_params``,
  ``processing_time`` and ``task_log`` file (the least any listing of runs has to read), printing
  one line per run.

    .venv/bin/python bench/kart_runs.py                # 10 and 10,000 runs, best of 5 / 3
    .venv/bin/python bench/kart_runs.py --sizes 10 100 --repeat 3

On a shared machine wall time swings with the neighbours: the table shows the best round of each
(after one untimed warm-up), the CPU time (user + system) of the best round, which is steadier, and
the load average (``os.getloadavg``) when the bench started.
"""

from __future__ import annotations

import argparse
import os
import pickle
import resource
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from kart_core.hashing import serialize_task_reference, unique_id_from_parts  # noqa: E402

PEER = r"""
import os, pickle, sys
root = sys.argv[1]
logs = os.path.join(root, "log")
for name in sorted(os.listdir(os.path.join(logs, "task_params"))):
    row = []
    for kind in ("task_params", "processing_time", "task_log"):
        path = os.path.join(logs, kind, name)
        if os.path.exists(path):
            with open(path, "rb") as file:
                row.append(pickle.load(file))
    print(name, *row)
"""


def make_workspace(root: str, runs: int) -> None:
    """``runs`` finished runs of two classes under ``root`` (half Load, half Features of a Load)."""
    kinds = ["task_params", "random_seed", "module_versions", "processing_time", "task_log"]
    for kind in kinds:
        os.makedirs(os.path.join(root, "log", kind), exist_ok=True)
    os.makedirs(os.path.join(root, "bench"), exist_ok=True)
    for index in range(runs):
        load_params = {"n_rows": str(index // 2), "seed": "0"}
        if index % 2 == 0:
            name, params = "Load", load_params
        else:
            name = "Features"
            params = {"data": serialize_task_reference("bench.Load", load_params), "fraction": "0.25"}
        unique_id = unique_id_from_parts([], params, name)
        output = os.path.join(root, "bench", f"{name}_{unique_id}.pkl")
        with open(output, "wb") as file:
            pickle.dump(list(range(10)), file)
        records = {
            "task_params": params,
            "random_seed": {"seed": int(unique_id, 16) % (2**32 - 1), "seed_methods": []},
            "processing_time": 0.01,
            "task_log": {"file_path": [output]},
        }
        for kind, value in records.items():
            with open(os.path.join(root, "log", kind, f"{name}_{unique_id}.pkl"), "wb") as file:
                pickle.dump(value, file)
        with open(os.path.join(root, "log", "module_versions", f"{name}_{unique_id}.txt"), "w") as file:
            file.write("")


# Byte-compiled modules are cached as an installed package has them (this environment may say otherwise).
ENV = {key: value for key, value in os.environ.items() if key not in ("PYTHONDONTWRITEBYTECODE", "LUIGI_CONFIG_PATH")}


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], repeat: int) -> tuple[float, float, int]:
    """Best wall time and best CPU time (user + system) of ``repeat`` runs of ``command``, after one
    untimed warm-up run; and the lines it printed."""
    warm = subprocess.run(command, capture_output=True, text=True, env=ENV)
    if warm.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({warm.returncode}):\n{warm.stderr}")
    best_wall = best_cpu = float("inf")
    lines = 0
    for _ in range(repeat):
        cpu, started = children_cpu(), time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=ENV, check=True)
        best_wall = min(best_wall, time.perf_counter() - started)
        best_cpu = min(best_cpu, children_cpu() - cpu)
        lines = done.stdout.count("\n")
    return best_wall, best_cpu, lines


def kart_command() -> list[str]:
    script = shutil.which("kart", path=os.path.dirname(sys.executable))
    return [script] if script else [sys.executable, "-m", "kart_core.cli"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 10_000])
    parser.add_argument("--repeat", type=int, default=0, help="rounds per size (default: 5, or 3 above 1,000 runs)")
    args = parser.parse_args()
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(
        "| runs | kart runs s (CPU s) | kart runs --format json s (CPU s) | peer: walk + unpickle s (CPU s) | kart/peer wall | lines |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for size in args.sizes:
        repeat = args.repeat or (5 if size <= 1_000 else 3)
        with tempfile.TemporaryDirectory(prefix="kart-runs-bench-") as tmp:
            workspace = os.path.join(tmp, "resources")
            make_workspace(workspace, size)
            os.chdir(tmp)  # no luigi.cfg of the caller's directory is read
            table, table_cpu, lines = timed([*kart_command(), "runs", "-w", workspace], repeat)
            as_json, json_cpu, _ = timed([*kart_command(), "runs", "-w", workspace, "--format", "json"], repeat)
            peer, peer_cpu, _ = timed([sys.executable, "-c", PEER, workspace], repeat)
            print(
                f"| {size:,} | {table:.3f} ({table_cpu:.3f}) | {as_json:.3f} ({json_cpu:.3f}) | {peer:.3f} ({peer_cpu:.3f}) "
                f"| {table / peer:.1f}x | {lines - 1:,} |"
            )


if __name__ == "__main__":
    main()
