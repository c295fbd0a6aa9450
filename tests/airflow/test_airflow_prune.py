"""A worker's parse (Airflow's parsing context names one task) builds only that task, fast."""

from __future__ import annotations

import time
from typing import Any

import pytest
from af_helpers import EXAMPLES
from kart_airflow import MissingKartTaskOperator, task_ids, to_dag
from mlpipeline import Evaluate
from test_airflow_dag import Layered, layered_roots

import kart_core

DAGS = EXAMPLES / "airflow" / "dags"


def _parse(file_name: str, dag_id: str) -> Any:
    """The DAG as Airflow's DagBag imports it (under a generated module name, as workers do)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS / file_name))
    assert bag.import_errors == {}
    return bag.dags[dag_id]


@pytest.fixture
def parsing_for(monkeypatch: pytest.MonkeyPatch):
    """``parsing_for(dag_id, task_id)``: parse as a worker that runs that task would."""

    def set_context(dag_id: str, task_id: str) -> None:
        monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", dag_id)
        monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_TASK_ID", task_id)

    return set_context


def test_a_worker_parse_holds_only_its_task_with_outlets_and_inlets(parsing_for) -> None:
    full = _parse("train.py", "kart_train")
    parsing_for("kart_train", "MakeFeatures__Evaluate.features")
    pruned = _parse("train.py", "kart_train")
    assert pruned.task_ids == ["MakeFeatures__Evaluate.features"]
    mine, theirs = pruned.get_task("MakeFeatures__Evaluate.features"), full.get_task("MakeFeatures__Evaluate.features")
    assert (mine.kart_unique_id, mine.kart_params, mine.kart_code) == (
        theirs.kart_unique_id,
        theirs.kart_params,
        theirs.kart_code,
    )
    assert [a.uri for a in mine.outlets] == [a.uri for a in theirs.outlets]
    assert [a.uri for a in mine.inlets] == [a.uri for a in theirs.inlets] != []
    assert mine.retries == theirs.retries == 1


def test_another_dags_context_or_a_plain_task_of_the_dag_builds_normally(parsing_for) -> None:
    parsing_for("some_other_dag", "Evaluate")
    assert len(to_dag(Evaluate(), dag_id="mine").tasks) == 4
    parsing_for("kart_embedded", "start")
    embedded = _parse("embedded.py", "kart_embedded")
    assert sorted(embedded.task_ids) == ["done", "start"]
    parsing_for("kart_embedded", "models.LoadData__Evaluate.features.data")
    embedded = _parse("embedded.py", "kart_embedded")
    assert sorted(embedded.task_ids) == ["done", "models.LoadData__Evaluate.features.data", "start"]


def test_a_task_id_missing_from_this_code_gets_an_operator_that_fails_with_the_kart_message(parsing_for) -> None:
    parsing_for("gone", "Train__Evaluate.model.features")
    dag = to_dag(Evaluate(), dag_id="gone")
    (task,) = dag.tasks
    assert isinstance(task, MissingKartTaskOperator) and task.task_id == "Train__Evaluate.model.features"
    with pytest.raises(Exception, match=r"StaleTaskError: DAG 'gone'.*has no task at that place.*Deploy the same code"):
        task.execute({})


def test_a_compacted_place_is_found_by_walking_the_graph(parsing_for) -> None:
    roots = layered_roots(200, width=1)
    ids = to_dag(roots, dag_id="deep").task_ids
    hashed = next(task_id for task_id in ids if "--" in task_id)
    parsing_for("deep", hashed)
    assert to_dag(roots, dag_id="deep").task_ids == [hashed]


def test_task_start_for_one_task_of_two_thousand_is_fast(parsing_for) -> None:
    # CPU seconds of this process for what kart adds to the worker's parse of a 2,000-task DAG.
    deepest = task_ids(layered_roots(2000))[kart_core.node_key(Layered(layer=0, index=0, width=50))]
    assert "--" in deepest  # a compacted place: found by walking the task objects, not by following a path
    parsing_for("big", deepest)
    timings = []
    for _ in range(3):
        started = time.process_time()
        dag = to_dag(layered_roots(2000), dag_id="big")
        timings.append(time.process_time() - started)
        (task,) = dag.tasks
    rebuilt = kart_core.import_object(task.kart_class).from_str_params(task.kart_params)
    assert (rebuilt.layer, rebuilt.index) == (0, 0)
    assert min(timings) < 0.3, timings
