"""How long a kart graph takes to become an Airflow DAG, against a plain-Airflow DAG of the same shape.

    AIRFLOW_HOME=$(mktemp -d) .venv/bin/python bench/airflow_parse.py [2000 10000 20000]

The graph is layered, 50 tasks wide; every task depends on two tasks of the layer below (about
two edges per task). kart: ``to_dag`` from the root tasks (walking the kart graph, one
KartTaskOperator per task, edges set in bulk). Plain Airflow: EmptyOperators wired with ``>>``
per edge, as a hand-written DAG file would. Each is shown as wall-clock seconds and as this
process's CPU seconds (the latter is steadier when other processes share the machine); the
ratio is of CPU seconds.
"""

from __future__ import annotations

import datetime
import gc
import os
import sys
import tempfile
import time

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="kart-bench-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

import luigi  # noqa: E402
from airflow.providers.standard.operators.empty import EmptyOperator  # noqa: E402
from airflow.sdk import DAG  # noqa: E402
from kart_airflow import to_dag  # noqa: E402

import kart_core  # noqa: E402

WIDTH = 50


class BenchNode(kart_core.TaskOnKart[int]):
    """Task ``index`` of ``layer``; depends on two tasks of the layer below."""

    layer = luigi.IntParameter()
    index = luigi.IntParameter()

    def requires(self) -> list[BenchNode]:
        if self.layer == 0:
            return []
        return [BenchNode(layer=self.layer - 1, index=i) for i in _below(self.index)]


def _below(index: int) -> list[int]:
    return sorted({index, (index + 1) % WIDTH})


Timing = tuple[float, float, int]  # wall seconds, CPU seconds, tasks in the DAG


def time_kart(n_tasks: int) -> Timing:
    """to_dag over an ``n_tasks`` layered graph (task objects created inside the timing)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    roots = [BenchNode(layer=n_tasks // WIDTH - 1, index=i) for i in range(WIDTH)]
    dag = to_dag(roots, dag_id=f"kart_{n_tasks}")
    return time.perf_counter() - started, time.process_time() - cpu_started, len(dag.tasks)


def time_plain_airflow(n_tasks: int) -> Timing:
    """The same shape with EmptyOperators and per-edge ``>>``."""
    started, cpu_started = time.perf_counter(), time.process_time()
    with DAG(dag_id=f"plain_{n_tasks}", schedule=None) as dag:
        previous: list[EmptyOperator] = []
        for layer in range(n_tasks // WIDTH):
            current = [EmptyOperator(task_id=f"n_{layer}_{i}") for i in range(WIDTH)]
            for i, task in enumerate(current):
                for j in _below(i) if previous else []:
                    previous[j] >> task
            previous = current
    return time.perf_counter() - started, time.process_time() - cpu_started, len(dag.tasks)


def main(sizes: list[int]) -> None:
    """Print one row per size: kart to_dag, plain Airflow, and their ratio."""
    print(
        f"# {datetime.date.today()}  python {sys.version.split()[0]}  cores {os.cpu_count()}  "
        f"graph: layered, {WIDTH} wide, 2 upstreams per task"
    )
    print(f"{'tasks':>7} | {'kart wall / cpu (s)':>19} | {'plain Airflow wall / cpu (s)':>28} | {'kart/plain':>10}")
    print(f"{'-' * 7}-+-{'-' * 19}-+-{'-' * 28}-+-{'-' * 10}")
    for n_tasks in sizes:
        gc.collect()
        kart_wall, kart_cpu, kart_count = time_kart(n_tasks)
        gc.collect()
        plain_wall, plain_cpu, plain_count = time_plain_airflow(n_tasks)
        assert kart_count == plain_count == n_tasks, (kart_count, plain_count)
        kart, plain = f"{kart_wall:.2f} / {kart_cpu:.2f}", f"{plain_wall:.2f} / {plain_cpu:.2f}"
        print(f"{n_tasks:>7} | {kart:>19} | {plain:>28} | {kart_cpu / plain_cpu:>10.2f}", flush=True)


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]] or [2000, 10000, 20000])
