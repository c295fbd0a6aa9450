"""CeleryExecutor with a redis broker and two workers, kart's cache on an S3-compatible server, all on
127.0.0.1: the DAG runs (Numbers on one worker, its downstream tasks on the other), a second run is all
cached, and a worker whose task code differs from the dag-processor's fails at once with kart's message.

The three workers start together: celery queues send each DAG's tasks to the workers the test means
(a worker with another Numbers.run() serves only the queue of a second DAG of the same tasks)."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from af_cluster import Cluster, cluster_env, start_cluster, stop_all, task_logs
from services import S3_KEY_ID, S3_SECRET, make_bucket, moto_server, moto_server_binary, redis_server

pytest.importorskip("airflow.providers.celery", reason="the celery extra: apache-airflow-providers-celery, celery")

DAG_ID = "kart_celery"
PIPELINE = '''
"""Three small tasks for the Celery test: Numbers -> Squares -> Total."""

import luigi

import kart_core


class Numbers(kart_core.TaskOnKart):
    count = luigi.IntParameter(default=5)

    def run(self):
        self.dump(list(range(self.count)))


class Squares(kart_core.TaskOnKart):
    numbers = kart_core.TaskInstanceParameter()

    def run(self):
        self.dump([n * n for n in self.load("numbers")])


class Total(kart_core.TaskOnKart):
    squares = kart_core.TaskInstanceParameter()

    def run(self):
        self.dump(sum(self.load("squares")))
'''
DAG_FILE = '''
"""The Celery test's DAGs (airflow parses files that mention "airflow" and "dag"): the same tasks twice.

kart_celery: Numbers on the "numbers" queue (worker-2), the others on the default one (worker-1).
kart_celery_changed: every task on the "changed" queue, which only the worker with changed code serves.
"""

import datetime

from celerypipe import Numbers, Squares, Total
from kart_airflow import to_dag

OPERATOR_ARGS = {"retries": 2, "retry_delay": datetime.timedelta(seconds=1)}
START = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)

dag = to_dag(
    Total(squares=Squares(numbers=Numbers())),
    dag_id="kart_celery",
    schedule=None,
    start_date=START,
    operator_args=OPERATOR_ARGS,
    class_operator_args={Numbers: {"queue": "numbers"}},
)
changed_dag = to_dag(
    Total(squares=Squares(numbers=Numbers())),
    dag_id="kart_celery_changed",
    schedule=None,
    start_date=START,
    operator_args={**OPERATOR_ARGS, "queue": "changed"},
)
'''
CHANGED_DAG_ID = "kart_celery_changed"
NUMBERS = "Numbers__Total.squares.numbers"
TASK_IDS = {"Total", "Squares__Total.squares", NUMBERS}


def _package(root: Path, source: str) -> Path:
    root.mkdir(parents=True)
    (root / "celerypipe.py").write_text(textwrap.dedent(source))
    return root


@pytest.fixture
def celery_cluster(tmp_path: Path, airflow_db_template: Path) -> Iterator[tuple[Cluster, Path, str]]:
    """redis (broker), moto (kart's cache), the Airflow processes and two celery workers, on 127.0.0.1."""
    if moto_server_binary() is None:
        pytest.skip("moto_server is not installed (dev extra: moto[server])")
    services = tmp_path / "services"
    services.mkdir()
    code = _package(tmp_path / "code", PIPELINE)
    # A worker whose package has another Numbers.run(): what a half-finished deploy looks like.
    changed = _package(tmp_path / "changed", PIPELINE.replace("list(range(self.count))", "list(range(1, self.count))"))
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "celery_dag.py").write_text(textwrap.dedent(DAG_FILE))
    with redis_server(str(services)) as redis, moto_server(str(services)) as s3:
        bucket = make_bucket(s3)
        config = tmp_path / "luigi.cfg"
        config.write_text(f"[TaskOnKart]\nworkspace_directory = s3://{bucket}/ws\n")
        env = cluster_env(
            tmp_path / "airflow",
            dags,
            "CeleryExecutor",
            {
                "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{redis.port}/0",
                "AIRFLOW__CELERY__RESULT_BACKEND": f"redis://127.0.0.1:{redis.port}/1",
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
                "LUIGI_CONFIG_PATH": str(config),
                "AWS_ACCESS_KEY_ID": S3_KEY_ID,
                "AWS_SECRET_ACCESS_KEY": S3_SECRET,
                "AWS_DEFAULT_REGION": "us-east-1",
                "KART_S3_ENDPOINT_URL": s3.url,
                "PYTHONPATH": _pythonpath(code),
            },
        )
        cluster = Cluster(env=env, logs=tmp_path)
        try:
            workers = [
                (
                    name,
                    ("celery", "worker", "--skip-serve-logs", "-q", queue, "-H", f"{name}@127.0.0.1"),
                    {"PYTHONPATH": pythonpath} if pythonpath else None,
                )
                for name, queue, pythonpath in (
                    ("worker-1", "default", None),
                    ("worker-2", "numbers", None),
                    ("worker-changed", "changed", _pythonpath(changed)),
                )
            ]
            start_cluster(cluster, airflow_db_template, also=workers)  # the workers start with the others
            yield cluster, tmp_path, bucket
        finally:
            stop_all(cluster)


def _pythonpath(code: Path) -> str:
    return os.pathsep.join(filter(None, [str(code), os.environ.get("PYTHONPATH")]))


@pytest.mark.slow
def test_celery_workers_run_cache_and_refuse_changed_code(celery_cluster: tuple[Cluster, Path, str]) -> None:
    cluster, tmp_path, bucket = celery_cluster
    logs = tmp_path / "airflow" / "logs"
    cluster.wait_until_parsed(DAG_ID)
    cluster.wait_until_parsed(CHANGED_DAG_ID)

    run_id, state = cluster.trigger_and_wait(DAG_ID)
    assert state == "success"
    first = task_logs(logs, run_id, TASK_IDS, "ran: ")
    assert all(f"ran: s3://{bucket}/ws/celerypipe/" in text for _, text in first.values())
    # Numbers ran on worker-2, its downstream tasks on worker-1: they found its output through S3.
    ran_on = {name: (tmp_path / f"{name}.log").read_text() for name in ("worker-1", "worker-2")}
    for name, text in ran_on.items():
        assert f"{name}@127.0.0.1 ready" in text
    for task_id in TASK_IDS:
        worker = "worker-2" if task_id == NUMBERS else "worker-1"
        assert f"run_id={run_id}/task_id={task_id}/" in ran_on[worker], f"{task_id} did not run on {worker}"

    run_id, state = cluster.trigger_and_wait(DAG_ID)
    assert state == "success"
    second = task_logs(logs, run_id, TASK_IDS, "cached: ")
    assert all("ran: " not in text for _, text in second.values())

    # The same tasks (their outputs on S3 already), on the worker with another Numbers.run().
    run_id, state = cluster.trigger_and_wait(CHANGED_DAG_ID)
    assert state == "failed"
    assert f"run_id={run_id}/task_id={NUMBERS}/" in (tmp_path / "worker-changed.log").read_text()
    failed = task_logs(logs, run_id, {NUMBERS}, "StaleTaskError")
    path, text = failed[NUMBERS]
    assert path.name == "attempt=1.log" and not list(path.parent.glob("attempt=2.log"))  # no retry spent
    assert "the code of celerypipe.Numbers on this worker (fingerprint" in text
    assert "Deploy the same code" in text
