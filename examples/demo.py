"""`make demo`: one small ML pipeline, one cache, three schedulers.

data -> features -> train -> evaluate (examples/mlpipeline) is built with kart_core.build, built
again (all cached), built with one parameter changed (only what depends on it reruns), run as an
Airflow DAG with dag.test() on SQLite (every task cached), and its model is loaded from a Kedro
catalog entry. Finally `kart runs` lists the cache and `kart report` draws it.

Everything happens in a fresh temporary directory (its path is printed); nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parent
sys.path.insert(0, str(EXAMPLES))

# KART_DEMO_DIR picks the directory (the tests use their own); default: a new temporary one.
WORKDIR = Path(os.environ.get("KART_DEMO_DIR") or tempfile.mkdtemp(prefix="kart-demo-"))
WORKDIR.mkdir(parents=True, exist_ok=True)
os.chdir(WORKDIR)
# Airflow reads its configuration at import: a throwaway home with a SQLite DB, quiet logs.
os.environ.update(
    AIRFLOW_HOME=str(WORKDIR / "airflow"),
    AIRFLOW__CORE__LOAD_EXAMPLES="False",
    AIRFLOW__CORE__DAGS_FOLDER=str(WORKDIR / "airflow" / "dags"),
    AIRFLOW__LOGGING__LOGGING_LEVEL="ERROR",
    DO_NOT_TRACK="1",
    PYTHONPATH=os.pathsep.join(filter(None, [str(EXAMPLES), os.environ.get("PYTHONPATH")])),
    KEDRO_LOGGING_CONFIG=str(WORKDIR / "kedro-logging.yml"),
)
# Kedro logs every dataset load through rich; the demo prints its own lines instead.
(WORKDIR / "kedro-logging.yml").write_text(
    "version: 1\ndisable_existing_loggers: false\nroot: {level: WARNING, handlers: []}\n"
)

from mlpipeline import Evaluate, LoadData, MakeFeatures, Train  # noqa: E402

import kart_core  # noqa: E402  (after the environment above)

MODELS = [Evaluate(model="mean"), Evaluate(model="linear"), Evaluate(model="ridge", alpha=0.5)]


def step(number: int, title: str) -> None:
    """Print a step heading."""
    print(f"\n=== {number}. {title}")


@contextlib.contextmanager
def timed(what: str) -> Iterator[None]:
    """Print how long the body took."""
    started = time.perf_counter()
    yield
    print(f"    {what} in {(time.perf_counter() - started) * 1000:.0f} ms")


def build(tasks: list[Any]) -> list[dict[str, Any]]:
    """kart_core.build, showing kart's own summary line on stdout."""
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        results = kart_core.build(tasks)
    print("    " + errors.getvalue().strip().splitlines()[-1])
    return list(results)


def show_scores(results: list[dict[str, Any]]) -> None:
    """One line per evaluated model."""
    for result in results:
        print(
            f"    {result['model']:<7} alpha={result['alpha']:<4} test RMSE {result['rmse']:.3f} on {result['n_test']} rows"
        )


def airflow_run(tasks: list[Any]) -> dict[str, int]:
    """The same graph as an Airflow DAG run with dag.test(); count what each task reported."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.utils import db
    from kart_airflow import to_dag

    os.makedirs(os.environ["AIRFLOW__CORE__DAGS_FOLDER"], exist_ok=True)
    with contextlib.redirect_stdout(io.StringIO()):
        db.resetdb()
        DagBundlesManager().sync_bundles_to_db()
    dag = to_dag(tasks, dag_id="kart_demo", schedule=None)
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        run = dag.test()
    counts: dict[str, int] = {"state " + str(run.state): 1}
    for instance in run.get_task_instances():
        status = (instance.xcom_pull(task_ids=instance.task_id) or {}).get("status", instance.state)
        counts[str(status)] = counts.get(str(status), 0) + 1
    return counts


def kedro_load_model() -> dict[str, Any]:
    """Load the ridge model through a Kedro catalog entry of type kart_kedro.TaskOnKartDataset."""
    from kedro.io import DataCatalog

    entry = {
        "type": "kart_kedro.TaskOnKartDataset",
        "task": "mlpipeline.tasks.Train",
        "params": {
            "features": {
                "task": "mlpipeline.tasks.MakeFeatures",
                "params": {"data": {"task": "mlpipeline.tasks.LoadData"}},
            },
            "model": "ridge",
            "alpha": 0.5,
        },
    }
    return dict(DataCatalog.from_config({"ridge_model": entry}).load("ridge_model"))


def kart_command(*args: str) -> str:
    """Run the `kart` command line in this directory."""
    kart = os.path.join(os.path.dirname(sys.executable), "kart")
    done = subprocess.run([kart, *args], capture_output=True, text=True, check=True)
    return done.stdout


def processing_time_mtimes() -> dict[str, float]:
    """Modification times of every processing_time log: unchanged means nothing ran."""
    folder = WORKDIR / "resources" / "log" / "processing_time"
    return {p.name: p.stat().st_mtime for p in folder.iterdir()} if folder.exists() else {}


def main() -> None:
    """Tell the story."""
    print(f"kart demo in {WORKDIR} (workspace ./resources/)")

    step(1, "kart_core.build: three models, one shared LoadData and MakeFeatures")
    with timed("built"):
        show_scores(build(MODELS))

    step(2, "build again: everything comes from the cache")
    before = processing_time_mtimes()
    with timed("checked"):
        build(MODELS)
    print(f"    run logs untouched: {processing_time_mtimes() == before}")

    step(3, "change one parameter (ridge alpha 0.5 -> 0.1): only Train and Evaluate rerun")
    changed = [*MODELS[:2], Evaluate(model="ridge", alpha=0.1)]
    with timed("built"):
        show_scores(build(changed)[2:])

    step(4, "the same graph as an Airflow DAG, dag.test() on SQLite")
    before = processing_time_mtimes()
    with timed("Airflow run"):
        counts = airflow_run(changed)
    print(f"    task outcomes: {counts}; run logs untouched: {processing_time_mtimes() == before}")

    step(5, "the ridge model from a Kedro catalog entry (type: kart_kedro.TaskOnKartDataset)")
    with timed("loaded"):
        model = kedro_load_model()
    train = Train(features=MakeFeatures(data=LoadData()), model="ridge", alpha=0.5)
    print(
        f"    {model['model']} coefficients {[round(c, 2) for c in model['coefficients']]} = output of {train.kart_label()}"
    )

    step(6, "kart runs: every cached run in the workspace")
    with timed("listed"):
        print(kart_command("runs", "--workspace", "resources").rstrip())

    step(7, "kart report: the graph as one HTML page")
    with timed("written"):
        kart_command("report", "mlpipeline.tasks.Evaluate", "--model", "ridge", "--alpha", "0.1", "-o", "report.html")
    print(f"    open {WORKDIR / 'report.html'}")


if __name__ == "__main__":
    main()
