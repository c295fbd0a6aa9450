"""A worker's parse (Airflow's parsing context names one task) builds only that task, fast."""

from __future__ import annotations

from typing import Any, ClassVar

import luigi
import pytest
from af_helpers import EXAMPLES
from kart_airflow import MissingKartTaskOperator, task_ids, to_dag
from mlpipeline import Evaluate
from test_airflow_dag import layered_roots

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


def test_a_compacted_place_is_followed_and_one_compacted_with_a_hash_is_found_by_a_walk(parsing_for) -> None:
    roots = layered_roots(200, width=1)
    ids = to_dag(roots, dag_id="deep").task_ids
    compacted = [task_id for task_id in ids if "--" in task_id]
    assert len(compacted) == 187 and not any("---" in task_id for task_id in compacted)
    for task_id in (compacted[0], compacted[-1]):
        parsing_for("deep", task_id)
        assert to_dag(roots, dag_id="deep").task_ids == [task_id]
    long_root = LongRootNameForAPlaceWhoseStepsDoNotFit(layer=20)
    hashed = task_ids(long_root)[kart_core.node_key(LongRootNameForAPlaceWhoseStepsDoNotFit(layer=0))]
    assert "---" in hashed
    parsing_for("long", hashed)
    (task,) = to_dag(long_root, dag_id="long").tasks
    assert task.task_id == hashed and task.kart.task.layer == 0


class LongRootNameForAPlaceWhoseStepsDoNotFit(kart_core.TaskOnKart[int]):
    """A chain under a root whose label leaves no room for the steps: its compacted places end in a hash."""

    layer = luigi.IntParameter()

    def requires(self) -> list[kart_core.TaskOnKart]:
        return [LongRootNameForAPlaceWhoseStepsDoNotFit(layer=self.layer - 1)] if self.layer else []


class Counted(kart_core.TaskOnKart[int]):
    """The benchmark's layered graph (50 wide, two upstreams per task), counting its requires() calls."""

    layer = luigi.IntParameter()
    index = luigi.IntParameter()
    calls: ClassVar[list[int]] = [0]

    def requires(self) -> list[kart_core.TaskOnKart]:
        Counted.calls[0] += 1
        return (
            [Counted(layer=self.layer - 1, index=i) for i in sorted({self.index, (self.index + 1) % 50})]
            if self.layer
            else []
        )


def test_task_start_for_one_task_of_two_thousand_follows_its_place(parsing_for) -> None:
    # The deepest task (last in breadth-first order), 39 steps below its root: its place is compacted.
    roots = [Counted(layer=39, index=i) for i in range(50)]
    ids = task_ids(roots)
    deepest = ids[kart_core.node_key(Counted(layer=0, index=49))]
    assert "--" in deepest and "---" not in deepest and len(deepest) <= 40
    parsing_for("big", deepest)
    luigi.task_register.Register.clear_instance_cache()  # new task objects, as in a worker's fresh process
    Counted.calls[0] = 0
    (task,) = to_dag([Counted(layer=39, index=i) for i in range(50)], dag_id="big").tasks
    # Followed from its root, one requires() per step (39), and the task's own (its upstreams, none
    # here), instead of walking the 2,000 tasks.
    assert Counted.calls[0] == 40
    rebuilt = kart_core.import_object(task.kart_class).from_str_params(task.kart_params)
    assert (rebuilt.layer, rebuilt.index) == (0, 49)


class PrUp(kart_core.TaskOnKart[int]):
    value = luigi.IntParameter(default=2, significant=False)

    def run(self) -> None:
        self.dump(10 * self.value)


class PrNext(kart_core.TaskOnKart[int]):
    up = kart_core.TaskInstanceParameter()

    def run(self) -> None:
        self.dump(self.load("up") + 1)


class PrDouble(kart_core.TaskOnKart[int]):
    up = kart_core.TaskInstanceParameter()

    def run(self) -> None:
        self.dump(self.load("up") * 2)


def test_a_worker_parse_runs_the_rerun_copy_the_dag_was_parsed_with(parsing_for) -> None:
    """[Next(Up), Double(Up(value=3, rerun=True))]: the DAG's Up task is the rerun copy, at Next's path. A
    worker's parse follows that path and meets the copy without rerun; the DAG's record Asset lists the
    settings of the rerun copy (``kart_rerun``), which the operator's execute() applies to its task: it runs Up
    with rerun=True and value=3."""
    from kart_airflow.rebuild import task_for_worker
    from kart_airflow.skew import recorded_settings

    def roots() -> list[Any]:
        return [PrNext(up=PrUp()), PrDouble(up=PrUp(value=3, rerun=True))]

    full = to_dag(roots(), dag_id="rerun_copy")
    (extra,) = [
        asset.extra for task in full.tasks for asset in task.inlets if "kart_tasks" in getattr(asset, "extra", {})
    ]
    up_id = next(task.task_id for task in full.tasks if task.task_id.startswith("PrUp"))
    parsing_for("rerun_copy", up_id)
    worker = to_dag(roots(), dag_id="rerun_copy")
    (operator,) = worker.tasks
    assert operator.kart_settings["rerun"] == "False"  # the copy on the first path
    task = task_for_worker(operator.kart.task, recorded_settings(operator.task_id, extra), operator.kart_unique_id)
    assert task.rerun and task.value == 3 and not operator.kart.task.rerun
    assert recorded_settings("PrNext", extra) == {}  # only a task placed with rerun=True is recorded
    # Only where the copies differ: the others (workspace_directory, redis_host, ... from the dag-processor's
    # luigi config) are the worker's own.
    assert recorded_settings(up_id, extra) == {"rerun": "True", "value": "3"}
