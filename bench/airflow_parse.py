"""What a kart graph costs as an Airflow DAG, against a plain-Airflow DAG of the same shape.

    AIRFLOW_HOME=$(mktemp -d) .venv/bin/python bench/airflow_parse.py [2000 10000 20000]

The graph is layered, 50 tasks wide; every task depends on two tasks of the layer below (about
two edges per task; bench/airflow_tasks.py). For each size it prints:

- parse: kart's ``to_dag`` from the root tasks (creating the kart tasks, walking the graph, one
  KartTaskOperator per task with its Assets, edges set in bulk) against EmptyOperators wired with
  ``>>`` per edge, as a hand-written DAG file would; CPU seconds of this process (steadier than
  wall-clock seconds when other processes share the machine) and wall seconds;
- serialized: the size of ``DagSerialization.to_dict`` as JSON (what Airflow stores and sends to
  the UI), kart against plain, and the same zlib-compressed (``[core] compress_serialized_dags``);
- task start: what kart adds to a worker's parse when Airflow's parsing context names one task
  (the deepest one), in a fresh process as Airflow starts each task: importing kart (after
  Airflow, which the worker has loaded already) and ``to_dag``, which builds only that task.
"""

from __future__ import annotations

import datetime
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import zlib
from typing import Any

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="kart-bench-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

from airflow.providers.standard.operators.empty import EmptyOperator  # noqa: E402
from airflow.sdk import DAG  # noqa: E402
from airflow.serialization.serialized_objects import DagSerialization  # noqa: E402
from airflow_tasks import WIDTH, below, roots  # noqa: E402
from kart_airflow import to_dag  # noqa: E402

Timing = tuple[float, float, Any]  # wall seconds, CPU seconds, the DAG


def time_kart(n_tasks: int) -> Timing:
    """to_dag over an ``n_tasks`` layered graph (task objects created inside the timing)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    dag = to_dag(roots(n_tasks), dag_id=f"kart_{n_tasks}")
    return time.perf_counter() - started, time.process_time() - cpu_started, dag


def time_plain_airflow(n_tasks: int) -> Timing:
    """The same shape with EmptyOperators and per-edge ``>>``."""
    started, cpu_started = time.perf_counter(), time.process_time()
    with DAG(dag_id=f"plain_{n_tasks}", schedule=None) as dag:
        previous: list[EmptyOperator] = []
        for layer in range(n_tasks // WIDTH):
            current = [EmptyOperator(task_id=f"n_{layer}_{i}") for i in range(WIDTH)]
            for i, task in enumerate(current):
                for j in below(i) if previous else []:
                    previous[j] >> task
            previous = current
    return time.perf_counter() - started, time.process_time() - cpu_started, dag


def serialized_size(dag: Any) -> tuple[int, int]:
    """Bytes of the serialized DAG as JSON, and zlib-compressed."""
    text = json.dumps(DagSerialization.to_dict(dag)).encode()
    return len(text), len(zlib.compress(text))


_COLD_START = """
import sys, time
import airflow.sdk, airflow.sdk.execution_time.task_runner  # a worker has these before it parses the file
started = time.process_time()
import kart_airflow, airflow_tasks
imported = time.process_time()
dag = kart_airflow.to_dag(airflow_tasks.roots(int(sys.argv[1])), dag_id=sys.argv[2])
built = time.process_time()
assert len(dag.tasks) == 1, dag.task_ids
print(imported - started, built - imported)
"""


def time_task_start(n_tasks: int, dag: Any) -> tuple[float, float]:
    """CPU seconds a fresh worker process spends importing kart and in to_dag for its one (deepest) task.

    Run in a new process each time, as Airflow runs each task (best of 3): the worker has imported
    Airflow already; it then imports the DAG file's imports and calls to_dag, which builds one task.
    """
    env = {
        **os.environ,
        "_AIRFLOW_PARSING_CONTEXT_DAG_ID": dag.dag_id,
        "_AIRFLOW_PARSING_CONTEXT_TASK_ID": max(dag.task_ids, key=len),
        "PYTHONPATH": os.pathsep.join([os.path.dirname(os.path.abspath(__file__)), *sys.path]),
    }
    runs = []
    for _ in range(3):
        done = subprocess.run(
            [sys.executable, "-c", _COLD_START, str(n_tasks), dag.dag_id], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-2000:]
        imported, built = map(float, done.stdout.split()[-2:])
        runs.append((imported, built))
    return min(runs, key=sum)


def main(sizes: list[int]) -> None:
    """Print one row per size: parse CPU and wall, serialized sizes, task start."""
    print(
        f"# {datetime.date.today()}  python {sys.version.split()[0]}  cores {os.cpu_count()}  "
        f"load {os.getloadavg()[0]:.1f}  graph: layered, {WIDTH} wide, 2 upstreams per task"
    )
    header = (
        f"{'tasks':>6} | {'parse cpu kart/plain (s)':>24} | {'ratio':>5} | {'wall kart/plain (s)':>19} | "
        f"{'json kart/plain (MB)':>20} | {'ratio':>5} | {'zlib kart/plain (MB)':>20} | {'ratio':>5} | "
        f"{'task start cpu: import + build (s)':>34}"
    )
    print(header)
    print("-" * len(header))
    for n_tasks in sizes:
        gc.collect()
        kart_wall, kart_cpu, kart_dag = time_kart(n_tasks)
        gc.collect()
        plain_wall, plain_cpu, plain_dag = time_plain_airflow(n_tasks)
        assert len(kart_dag.tasks) == len(plain_dag.tasks) == n_tasks
        (kart_json, kart_zip), (plain_json, plain_zip) = serialized_size(kart_dag), serialized_size(plain_dag)
        imported, built = time_task_start(n_tasks, kart_dag)
        print(
            f"{n_tasks:>6} | {f'{kart_cpu:.2f} / {plain_cpu:.2f}':>24} | {kart_cpu / plain_cpu:>5.2f} | "
            f"{f'{kart_wall:.2f} / {plain_wall:.2f}':>19} | "
            f"{f'{kart_json / 1e6:.2f} / {plain_json / 1e6:.2f}':>20} | {kart_json / plain_json:>5.2f} | "
            f"{f'{kart_zip / 1e6:.3f} / {plain_zip / 1e6:.3f}':>20} | {kart_zip / plain_zip:>5.2f} | {f'{imported:.3f} + {built:.3f}':>34}",
            flush=True,
        )


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]] or [2000, 10000, 20000])
