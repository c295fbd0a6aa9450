"""What a kart graph costs as an Airflow DAG, against plain-Airflow DAGs of the same shape.

    AIRFLOW_HOME=$(mktemp -d) .venv/bin/python bench/airflow_parse.py [2000 10000 20000]

The graph is layered, 50 tasks wide; every task depends on two tasks of the layer below (about
two edges per task; bench/airflow_tasks.py). Each DAG is built in a fresh process, after the
imports a DAG file makes, as Airflow's dag-processor parses a file in a fresh child process
(best of 3 below 10,000 tasks). For each size it prints:

- parse: CPU seconds of building the DAG: kart's ``to_dag`` from the root tasks (creating the
  kart tasks, walking the graph, one KartTaskOperator per task with its Assets, edges set in
  bulk), with ``assets="all"`` (kart), ``"final"`` (kart-final: only the 50 roots' outputs are
  Assets) and ``"none"`` (kart-none); "plain": EmptyOperators wired with ``>>`` per edge, as a
  hand-written DAG file would; "plain+assets": the same with one outlet Asset per task and the
  upstream outputs as inlets (URIs as long as kart's), i.e. a plain DAG that declares the lineage
  kart declares with ``assets="all"``. Each row's ratios are against its peer ("vs"): kart
  against plain+assets, kart-final and kart-none against plain;
- kart-none*: kart-none with task ids replaced by ``n_<i>`` (not a kart option, a measurement):
  what the DAG would weigh if kart's ids were as short as plain's;
- id chars: the mean length of the task ids (kart's name the task's place in the graph: long in
  this 40-layer graph; plain's are ``n_<layer>_<index>``). Each id is written about five times
  in the serialized DAG (task, downstream lists of its upstreams, task group);
- serialized: the size of ``DagSerialization.to_dict`` as JSON (what Airflow stores and sends to
  the UI), and the same zlib-compressed (``[core] compress_serialized_dags``);
- task start: what kart adds to a worker's parse when Airflow's parsing context names one task
  (the deepest one, whose place is compacted and followed by its encoded steps; the longest place
  that is its path, followed by it; a root), in a fresh process as Airflow starts each task: importing kart (after
  Airflow, which the worker has loaded already) and ``to_dag``, which builds only that task;
  Airflow's own cost of the process's first ``DAG()`` (importing its timetables, ~0.1 s), which
  any DAG file pays, is printed beside it and not counted.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="kart-bench-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

MODES = ("kart", "kart-final", "kart-none", "kart-none*", "plain+assets", "plain")
PEER = {
    "kart": "plain+assets",
    "kart-final": "plain",
    "kart-none": "plain",
    "kart-none*": "plain",
    "plain+assets": "plain",
    "plain": "plain",
}

_BUILD = """
import hashlib, json, os, sys, time, zlib
import airflow.sdk
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Asset
from airflow.serialization.serialized_objects import DagSerialization
import kart_airflow, airflow_tasks  # what a DAG file imports (kart's one-time costs count as parse)
from airflow_tasks import WIDTH, below

def uri(layer, i):  # as long as kart's Asset URI for BenchNode(layer, i) (kart_airflow.outputs.asset_uri)
    digest = hashlib.md5(f"{layer}_{i}".encode()).hexdigest()
    return f"x-kart://workspace/airflow_tasks/BenchNode_{digest}.pkl"

def plain(n, assets):
    with DAG(dag_id="plain", schedule=None) as dag:
        previous = []
        for layer in range(n // WIDTH):
            current = []
            for i in range(WIDTH):
                extra = {}
                if assets:
                    extra = {"outlets": [Asset(uri(layer, i))],
                             "inlets": [Asset.ref(uri=uri(layer - 1, j)) for j in below(i)] if previous else []}
                current.append(EmptyOperator(task_id=f"n_{layer}_{i}", **extra))
            for i, task in enumerate(current):
                for j in below(i) if previous else []:
                    previous[j] >> task
            previous = current
    return dag

n, mode = int(sys.argv[1]), sys.argv[2]
wall, cpu = time.perf_counter(), time.process_time()
if mode == "kart-none*":  # not a kart option: task ids as short as plain's, to show what the place ids cost
    import kart_core
    real_place_graph = kart_core.place_graph
    def short_places(roots):
        graph = real_place_graph(roots)
        graph.places = {key: f"n_{i}" for i, key in enumerate(graph.order)}
        return graph
    kart_core.place_graph = short_places
if mode.startswith("kart"):
    assets = mode.partition("-")[2].rstrip("*") or "all"
    dag = kart_airflow.to_dag(airflow_tasks.roots(n), dag_id="kart", assets=assets)
else:
    dag = plain(n, mode == "plain+assets")
cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
assert len(dag.tasks) == n
text = json.dumps(DagSerialization.to_dict(dag)).encode()
if mode == "kart" and os.environ.get("KART_BENCH_RECORD"):  # what a worker's upstream check reads from Airflow
    record = next(a for a in dag.tasks[0].inlets if str(a.uri).startswith("x-kart-record"))
    with open(os.environ["KART_BENCH_RECORD"], "w") as out:
        json.dump({"record": record.extra, "task_ids": dag.task_ids}, out)
print(json.dumps({"cpu": cpu, "wall": wall, "json": len(text), "zlib": len(zlib.compress(text)),
                  "deepest": dag.task_ids[-1], "dag_id": dag.dag_id,
                  "upstreamed": next(t for t in reversed(dag.task_ids) if dag.get_task(t).upstream_task_ids),
                  "followed": max((t for t in dag.task_ids if "--" not in t), key=len),
                  "id_chars": sum(map(len, dag.task_ids)) / len(dag.task_ids)}))
"""


def _env(**extra: str) -> dict[str, str]:
    # Bytecode is written and read (an installed package has its .pyc files): with
    # PYTHONDONTWRITEBYTECODE set and a source tree whose __pycache__ is stale, every run would
    # compile kart's modules again (~0.1 s of "import kart" in the task start numbers).
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    return {
        **env,
        "PYTHONPATH": os.pathsep.join([os.path.dirname(os.path.abspath(__file__)), *sys.path]),
        **extra,
    }


def build(n_tasks: int, mode: str, repeat: int, record: str = "") -> dict[str, float | str]:
    """Build one DAG in fresh processes (best CPU of ``repeat``): its parse times and serialized sizes.

    ``record``: a file to write the DAG's kart record and task ids to (mode ``kart``), for ``time_task_start``.
    """
    runs = []
    for _ in range(repeat):
        done = subprocess.run(
            [sys.executable, "-c", _BUILD, str(n_tasks), mode],
            env=_env(KART_BENCH_RECORD=record),
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return min(runs, key=lambda run: float(run["cpu"]))


_COLD_START = """
import sys, time
import airflow.sdk, airflow.sdk.execution_time.task_runner  # a worker has these before it parses the file
started_import = time.process_time()
import kart_airflow, airflow_tasks
imported = time.process_time()
airflow.sdk.DAG(dag_id="first")  # Airflow's one-time cost of a process's first DAG (timetables): plain DAG files pay it too
first_dag = time.process_time()
dag = kart_airflow.to_dag(airflow_tasks.roots(int(sys.argv[1])), dag_id=sys.argv[2])
built = time.process_time()
assert len(dag.tasks) == 1, dag.task_ids
(operator,) = dag.tasks
check = walk = 0.0
if operator.kart.task.kart_requires():
    import json
    with open(sys.argv[3]) as data:
        parsed = json.load(data)

    class StandIn:  # Airflow's task instance, as the check reads it: no XCom at the guessed ids, the DAG's tasks finished
        dag_id, run_id = sys.argv[2], "bench"

        def xcom_pull(self, task_ids):
            return None

        def get_task_breadcrumbs(self, dag_id, run_id):
            return [{"task_id": task_id} for task_id in parsed["task_ids"]]

    started = time.process_time()
    operator._check_upstream_run(operator.kart.task, {"ti": StandIn()}, parsed["record"])
    check = time.process_time() - started
    started = time.process_time()
    exact = operator.kart.upstream_lookup()  # the walk the record replaces (and still the fallback)
    walk = time.process_time() - started
    assert exact == kart_airflow.skew.upstream_task_ids(operator.kart.task.kart_requires(), parsed["record"], parsed["task_ids"])
print(imported - started_import, built - first_dag, first_dag - imported, check, walk)
"""


def time_task_start(n_tasks: int, dag_id: str, task_id: str, record: str) -> tuple[float, float, float, float, float]:
    """CPU seconds a fresh worker process spends importing kart and in to_dag for its one task.

    Run in a new process each time, as Airflow runs each task (best of 3): the worker has imported
    Airflow already; it then imports the DAG file's imports and calls to_dag, which builds one task.
    The third number is Airflow's own: creating the process's first DAG object (it imports the
    timetable modules), which a plain DAG file pays as well; it is not counted in to_dag's time.
    For a task with upstreams, the fourth is the operator's XCom upstream check before it runs
    (``_check_upstream_run``) when no guessed upstream task id has XCom, so that it looks up the
    exact ids (from the DAG's record in ``record`` and the run's task ids; the XCom reads
    themselves are Airflow's I/O and not counted), and the fifth the graph walk that lookup
    replaced (``upstream_lookup``, still its fallback).
    """
    env = _env(_AIRFLOW_PARSING_CONTEXT_DAG_ID=dag_id, _AIRFLOW_PARSING_CONTEXT_TASK_ID=task_id)
    runs = []
    for _ in range(3):
        done = subprocess.run(
            [sys.executable, "-c", _COLD_START, str(n_tasks), dag_id, record], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-2000:]
        imported, built, first_dag, check, walk = map(float, done.stdout.split()[-5:])
        runs.append((imported, built, first_dag, check, walk))
    return min(runs, key=lambda run: run[0] + run[1])


def main(sizes: list[int]) -> None:
    """Print one row per size and mode: parse CPU and wall, serialized sizes, ratios to plain; then task start."""
    load = os.getloadavg()
    print(
        f"# {datetime.date.today()}  python {sys.version.split()[0]}  cores {os.cpu_count()}  "
        f"load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}  graph: layered, 50 wide, 2 upstreams per task"
    )
    header = (
        f"{'tasks':>6} | {'dag':>12} | {'parse cpu s':>11} | {'wall s':>7} | {'json MB':>8} | {'zlib MB':>8} | "
        f"{'id chars':>8} | {'vs':>12} | {'cpu ratio':>9} | {'json ratio':>10}"
    )
    print(header)
    print("-" * len(header))
    for n_tasks in sizes:
        repeat = 3 if n_tasks < 10000 else 1
        record = os.path.join(tempfile.mkdtemp(prefix="kart-bench-record-"), "record.json")
        rows = {mode: build(n_tasks, mode, repeat, record) for mode in MODES}
        for mode, row in rows.items():
            peer = rows[PEER[mode]]
            print(
                f"{n_tasks:>6} | {mode:>12} | {row['cpu']:>11.2f} | {row['wall']:>7.2f} | {row['json'] / 1e6:>8.2f} | "
                f"{row['zlib'] / 1e6:>8.3f} | {row['id_chars']:>8.1f} | {PEER[mode]:>12} | "
                f"{row['cpu'] / peer['cpu']:>9.2f} | {row['json'] / peer['json']:>10.2f}",
                flush=True,
            )
        # The deepest task (last in breadth-first order: a compacted place, followed by its encoded
        # steps), the deepest with upstreams (its XCom upstream check measured too), the longest
        # place that is its path (followed, one requires() per step) and a root, whose unique id
        # covers every task below it (gokart's id includes the upstream ids).
        starts = (
            ("deepest", rows["kart"]["deepest"]),
            ("deepest with upstreams", rows["kart"]["upstreamed"]),
            ("followed", rows["kart"]["followed"]),
            ("root", "BenchNode"),
        )
        for which, task_id in starts:
            imported, built, first_dag, check, walk = time_task_start(
                n_tasks, str(rows["kart"]["dag_id"]), str(task_id), record
            )
            print(
                f"{n_tasks:>6} | task start ({which} task {task_id}), CPU s: import kart {imported:.3f} + to_dag "
                f"for one task {built:.3f} = {imported + built:.3f} (Airflow's first DAG() in the process, not counted: {first_dag:.3f})",
                flush=True,
            )
            if check or walk:
                print(
                    f"{n_tasks:>6} |   its XCom upstream check, exact upstream ids from the record: {check:.3f} "
                    f"(the graph walk it replaced: {walk:.3f})",
                    flush=True,
                )


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]] or [2000, 10000, 20000])
