"""Code skew: a worker whose task differs from what the dag-processor parsed fails at once with kart's message;
task classes a worker cannot import by a stable name are refused when the DAG is parsed.

The same on real LocalExecutor workers (a DAG file edited during a run): test_airflow_standalone, which
shares one cluster between its tests."""

from __future__ import annotations

import datetime
import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from af_helpers import statuses
from kart_airflow import to_dag
from kart_airflow.skew import (
    check_importable,
    compare_with_record,
    compare_with_upstream,
    record_extra,
    record_uri,
    upstream_task_ids,
)
from mlpipeline import Evaluate, LoadData, MakeFeatures, Train

import kart_core


def test_a_class_defined_inside_a_function_is_refused_with_where_to_move_it() -> None:
    class Local(kart_core.TaskOnKart[int]):
        pass

    with pytest.raises(
        kart_core.errors.TaskDefinitionError, match=r"Local .*defined inside a function.*Move the class"
    ):
        to_dag(Local(), dag_id="local")


def test_a_class_defined_in_the_dag_file_is_refused_when_airflow_imports_it(tmp_path: Path) -> None:
    from airflow.dag_processing.dagbag import DagBag

    dag_file = tmp_path / "inline_dag.py"
    dag_file.write_text(
        textwrap.dedent(
            """
            # an airflow dag file that defines its own task class
            import kart_core
            from kart_airflow import to_dag

            class Inline(kart_core.TaskOnKart):
                def run(self):
                    self.dump(1)

            dag = to_dag(Inline(), dag_id="inline")
            """
        )
    )
    bag = DagBag(dag_folder=str(dag_file))
    (error,) = bag.import_errors.values()
    assert "Inline (unusual_prefix_" in error and "is defined in the DAG file" in error
    assert "Move the class into your task package" in error


def test_importable_classes_pass() -> None:
    check_importable(Evaluate)
    check_importable(kart_core.TaskOnKart)


def test_the_record_is_looked_up_by_task_id_not_by_unique_id() -> None:
    task, other = LoadData(n_rows=5), LoadData(n_rows=6)
    code = kart_core.code_fingerprint(LoadData)
    recorded = record_extra([("Load", task, code), ("Load_2", other, code)])
    compare_with_record(task, "Load", code, "x-kart-record://d/", recorded)
    label = rf"LoadData\[{task.make_unique_id()[:8]}\]"
    # The unique id is the DAG's, but task 'Load_2' was parsed as the other task: refused.
    with pytest.raises(
        kart_core.StaleTaskError,
        match=label + rf": the dag-processor parsed task 'Load_2' with unique id {other.make_unique_id()[:16]}… "
        rf"\(x-kart-record://d/\); this worker computes {task.make_unique_id()} with the same code of LoadData.*"
        r"a parameter value computed when the DAG file is parsed changed",
    ):
        compare_with_record(task, "Load_2", code, "x-kart-record://d/", recorded)
    with pytest.raises(kart_core.StaleTaskError, match=label + r".*has no task 'Load_3' \(x-kart-record://d/\)"):
        compare_with_record(task, "Load_3", code, "x-kart-record://d/", recorded)
    with pytest.raises(kart_core.StaleTaskError, match=label + r": the code of mlpipeline.tasks.LoadData on this"):
        compare_with_record(task, "Load", "f" * 16, "x-kart-record://d/", recorded)


def test_upstream_task_ids_come_from_the_record_and_the_run_without_a_walk() -> None:
    source, features = LoadData(n_rows=5), MakeFeatures(data=LoadData(n_rows=5))
    code = kart_core.code_fingerprint(LoadData)
    recorded = record_extra(
        [("LoadData__Evaluate.data", source, code), ("MakeFeatures__Evaluate.f", features, "c" * 16)]
    )
    finished = ["Evaluate", "MakeFeatures__Evaluate.f", "LoadData__Evaluate.data", "group.LoadData__Evaluate.data"]
    assert upstream_task_ids([source, features], recorded, finished) == {
        kart_core.node_key(source): "LoadData__Evaluate.data",
        kart_core.node_key(features): "MakeFeatures__Evaluate.f",
    }
    # Not in the record (other parameters than the dag-processor parsed), or not among the run's task ids.
    assert upstream_task_ids([LoadData(n_rows=6)], recorded, finished) == {}
    assert upstream_task_ids([source], recorded, ["Evaluate"]) == {}


def test_an_upstream_that_ran_another_task_in_this_run_is_refused_with_both_ids() -> None:
    features = MakeFeatures(data=LoadData(n_rows=5))
    ran = LoadData(n_rows=13).make_unique_id()
    compare_with_upstream(
        features, LoadData(n_rows=5), "Load", {"unique_id": LoadData(n_rows=5).make_unique_id()}, "r1"
    )
    compare_with_upstream(features, LoadData(n_rows=5), "Load", None, "r1")  # no XCom: it did not succeed
    with pytest.raises(kart_core.StaleTaskError) as error:
        compare_with_upstream(features, LoadData(n_rows=5), "Load", {"status": "ran", "unique_id": ran}, "r1")
    message = str(error.value)
    assert message.startswith(f"{features.kart_label()}: it requires {LoadData(n_rows=5).kart_label()} (unique id ")
    assert f"in this run (r1) the upstream task 'Load' ran LoadData[{ran[:8]}] (unique id {ran})" in message
    assert "changed during the run" in message and "Clear the whole run" in message


def test_another_dag_that_declares_the_workers_output_does_not_vouch_for_it(register_dag, capfd) -> None:
    # Two DAGs share their upstreams; the dag-processor parsed at_dag with alpha=0.125, at_dag2 with 0.5.
    register_dag(to_dag(Evaluate(model="ridge", alpha=0.125), dag_id="at_dag"))
    register_dag(to_dag(Evaluate(model="ridge", alpha=0.5), dag_id="at_dag2"))
    # A worker of at_dag whose environment gives at_dag2's parameters: its Train and Evaluate are
    # at_dag2's tasks (their outputs are at_dag2's Assets), not the ones at_dag was parsed with.
    worker = to_dag(Evaluate(model="ridge", alpha=0.5), dag_id="at_dag")
    states = statuses(worker.test())
    assert (states["Train__Evaluate.model"], states["Evaluate"]) == ("failed", "upstream_failed")
    planned = Train(features=MakeFeatures(data=LoadData()), model="ridge", alpha=0.125).make_unique_id()
    out = capfd.readouterr().out
    assert "StaleTaskError: Train[" in out
    assert (
        f"the dag-processor parsed task 'Train__Evaluate.model' with unique id {planned[:16]}… (x-kart-record://at_dag/)"
        in out
    )


def test_roots_swapped_between_task_ids_are_refused(register_dag, capfd) -> None:
    # Each unique id is one of the DAG's, but under the other task id.
    linear, ridge = Evaluate(model="linear", alpha=0.0625), Evaluate(model="ridge", alpha=0.0625)
    register_dag(to_dag([linear, ridge], dag_id="swapped"))
    states = statuses(to_dag([ridge, linear], dag_id="swapped").test())
    assert states["Evaluate"] == states["Evaluate_2"] == "upstream_failed"
    assert states["Train__Evaluate.model"] == states["Train__Evaluate_2.model"] == "failed"
    assert "the dag-processor parsed task 'Train__Evaluate.model' with unique id" in capfd.readouterr().out


def test_a_worker_with_other_parameters_fails_fast_without_retries(register_dag, capfd) -> None:
    planned = to_dag(Evaluate(model="ridge", alpha=0.25), dag_id="skewed", operator_args={"retries": 3})
    register_dag(planned)  # what the dag-processor parsed
    # What a worker with other code builds: the same task ids (places), other unique ids for two tasks.
    worker = to_dag(
        Evaluate(model="ridge", alpha=0.75),
        dag_id="skewed",
        operator_args={"retries": 3, "retry_delay": datetime.timedelta(0)},
    )
    assert worker.task_ids == planned.task_ids
    run = worker.test()
    states = statuses(run)
    assert states["LoadData__Evaluate.features.data"] in ("ran", "cached")
    assert (states["Train__Evaluate.model"], states["Evaluate"]) == ("failed", "upstream_failed")
    tries = {ti.task_id: ti.try_number for ti in run.get_task_instances()}
    assert tries["Train__Evaluate.model"] == 1  # failed at once, no retry
    out = capfd.readouterr().out
    assert "StaleTaskError: Train[" in out and "the dag-processor parsed task 'Train__Evaluate.model'" in out
    # Same class code, another value where the DAG file was parsed (attacker at26 G4: not "Deploy the same code").
    assert "a parameter value computed when the DAG file is parsed changed" in out
    assert "airflow dags reserialize" in out  # one machine, same code: the next parse records it


def test_a_worker_with_other_task_code_fails_with_both_fingerprints(run_dag, capfd) -> None:
    planned = to_dag(LoadData(n_rows=33), dag_id="code_skew")
    (record,) = [inlet for inlet in planned.get_task("LoadData").inlets if inlet.uri == record_uri("code_skew")]
    (entries,) = record.extra["kart_tasks"].values()
    record.extra["kart_tasks"] = {"0123456789abcdef": entries}  # as if the dag-processor had parsed other code
    run = run_dag(planned)
    assert statuses(run) == {"LoadData": "failed"}
    out = capfd.readouterr().out
    code = kart_core.code_fingerprint(LoadData)
    assert (
        f"on this worker (fingerprint {code}) differs from the code the DAG was parsed with (fingerprint 0123456789abcdef)"
        in out
    )


def test_a_worker_whose_helper_module_changed_fails_with_the_skew_message(
    run_dag, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd
) -> None:
    package = tmp_path / "afhelpers"
    package.mkdir()
    (package / "__init__.py").write_text("")
    helpers = package / "scaling.py"
    helpers.write_text("def scale(x):\n    return 2 * x\n")
    (package / "tasks.py").write_text(
        "import kart_core\nfrom afhelpers.scaling import scale\n\n\n"
        "class Scaled(kart_core.TaskOnKart):\n    def run(self):\n        self.dump(scale(21))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    try:
        tasks = importlib.import_module("afhelpers.tasks")
        planned = to_dag(tasks.Scaled(workspace_directory=str(tmp_path / "ws")), dag_id="helper_skew")
        assert statuses(run_dag(planned)) == {"Scaled": "ran"}  # the dag-processor's code, on the worker too

        # The worker now has another helper (the task class itself is unchanged): skew, no retry.
        helpers.write_text("def scale(x):\n    return 3 * x\n")
        importlib.reload(sys.modules["afhelpers.scaling"])
        importlib.reload(tasks)  # as a worker process imports the task module (same class source)
        assert statuses(planned.test()) == {"Scaled": "failed"}
        out = capfd.readouterr().out
        assert "StaleTaskError: Scaled[" in out and "project code it uses (a helper function" in out
        assert f"on this worker (fingerprint {kart_core.code_fingerprint(tasks.Scaled)})" in out
    finally:
        for name in [n for n in sys.modules if n.startswith("afhelpers")]:
            del sys.modules[name]


def test_the_worker_computes_the_code_fingerprint_once_per_task(run_dag, monkeypatch: pytest.MonkeyPatch) -> None:
    # The worker's parse computed it already; execute() reuses it while the class is the same object.
    dag = to_dag(LoadData(n_rows=35), dag_id="fingerprint_once")
    calls: list[type] = []
    real = kart_core.code_fingerprint

    def counting(task_class: type, *args: object) -> str:
        calls.append(task_class)
        return real(task_class, *args)

    monkeypatch.setattr(kart_core, "code_fingerprint", counting)
    assert statuses(run_dag(dag)) == {"LoadData": "ran"}
    assert calls == []


def _rerun(run: Any, operator: Any) -> str:
    """Clear one task of a finished run and run it again with ``operator`` (as a worker that re-parsed the file).

    What ``dag.test()`` does for each task instance (Airflow's ``_run_task``), for one task.
    """
    from airflow.sdk.definitions.dag import _run_task

    ti = run.get_task_instance(operator.task_id)
    ti.try_number += 1
    ti.refresh_from_task(operator)
    _run_task(ti=ti, task=operator)
    return str(getattr(ti.state, "value", ti.state))


def test_a_task_whose_upstreams_ran_other_ids_in_this_run_fails_fast(run_dag, register_dag, capfd) -> None:
    run = run_dag(to_dag(Evaluate(model="ridge", n_rows=13), dag_id="midrun"))  # every task ran with n_rows=13
    # The DAG file now says n_rows=5 (the dag-processor re-parsed it), and that final output exists already.
    edited = Evaluate(model="ridge", n_rows=5)
    kart_core.build(edited)
    changed = to_dag(edited, dag_id="midrun")
    register_dag(changed)
    assert _rerun(run, changed.get_task("Evaluate")) == "failed"
    features = MakeFeatures(data=LoadData(n_rows=5))
    ran = MakeFeatures(data=LoadData(n_rows=13)).make_unique_id()
    out = capfd.readouterr().out
    assert (
        f"StaleTaskError: {edited.kart_label()}: it requires {features.kart_label()} (unique id "
        f"{features.make_unique_id()}), but in this run ({run.run_id}) the upstream task "
        f"'MakeFeatures__Evaluate.features' ran MakeFeatures[{ran[:8]}] (unique id {ran})"
    ) in out
    assert "Clear the whole run" in out
    assert "AirflowFailException: StaleTaskError" in out  # fails at once: a retry would not spend a try


def test_a_worker_parse_finds_an_upstream_reached_by_a_shorter_path(
    run_dag, register_dag, monkeypatch: pytest.MonkeyPatch, capfd
) -> None:
    # Train requires MakeFeatures, whose task id is MakeFeatures__Evaluate.features (reached from the
    # root directly), not MakeFeatures__Evaluate.model.features: the one-task parse guesses wrong.
    run = run_dag(to_dag(Evaluate(model="ridge", n_rows=17), dag_id="midrun_pruned"))
    register_dag(to_dag(Evaluate(model="ridge", n_rows=7), dag_id="midrun_pruned"))
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "midrun_pruned")
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_TASK_ID", "Train__Evaluate.model")
    worker = to_dag(Evaluate(model="ridge", n_rows=7), dag_id="midrun_pruned")
    assert worker.task_ids == ["Train__Evaluate.model"]
    assert _rerun(run, worker.get_task("Train__Evaluate.model")) == "failed"
    out = capfd.readouterr().out
    # Found in the DAG's record and the run's finished task ids, without walking the graph.
    assert "found the upstream task ids of Train__Evaluate.model in the DAG's record" in out
    assert "walked the graph" not in out
    assert "the upstream task 'MakeFeatures__Evaluate.features' ran MakeFeatures[" in out


def test_a_task_rerun_in_its_run_with_unchanged_code_passes_the_check(run_dag, monkeypatch, capfd) -> None:
    planned = to_dag(Evaluate(model="ridge", n_rows=19), dag_id="midrun_same")
    run = run_dag(planned)
    assert _rerun(run, planned.get_task("Evaluate")) == "success"
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "midrun_same")
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_TASK_ID", "Train__Evaluate.model")
    worker = to_dag(Evaluate(model="ridge", n_rows=19), dag_id="midrun_same")
    assert _rerun(run, worker.get_task("Train__Evaluate.model")) == "success"
    assert "StaleTaskError" not in capfd.readouterr().out


class Exploding(kart_core.TaskOnKart[int]):
    """Its run() raises a bare exception, with no task label of its own."""

    def run(self) -> None:
        raise KeyError("missing column 'y'")


def test_an_exception_in_run_names_the_kart_task_in_the_task_log(run_dag, capfd) -> None:
    task = Exploding()
    assert statuses(run_dag(to_dag(task, dag_id="exploding"))) == {"Exploding": "failed"}
    out = capfd.readouterr().out
    where = f"kart task {task.kart_label()} (unique id {task.make_unique_id()}, Airflow task Exploding)"
    assert f"{where} failed: KeyError: \"missing column 'y'\"" in out


SEEDED_TASKS = """
import luigi
import kart_core


class Pick(kart_core.TaskOnKart):
    level = luigi.ChoiceParameter(choices=["a", "b", "c", "d", "e"], default="a")
    names = [x for x in {"n", "o", "p", "q"}]

    def run(self):
        self.dump(self.names)
"""
# The dag-processor parses the DAG file and prints the record it registers; a worker (another interpreter,
# another hash seed, other modules imported first) checks its own fingerprint of the class against it.
DAG_PROCESSOR = """
import json, sys
import seeded_tasks
from kart_airflow import to_dag
from kart_airflow.skew import record_uri
dag = to_dag(seeded_tasks.Pick(workspace_directory=sys.argv[1]), dag_id="seeded")
(record,) = [inlet for inlet in dag.get_task("Pick").inlets if inlet.uri == record_uri("seeded")]
print(json.dumps(record.extra))
"""
WORKER = """
import json, sys
import luigi
made = [luigi.Parameter() for _ in range(3)]
import kart_core, seeded_tasks
from kart_airflow.skew import compare_with_record, record_uri
task = seeded_tasks.Pick(workspace_directory=sys.argv[1])
code = kart_core.code_fingerprint(seeded_tasks.Pick)
compare_with_record(task, "Pick", code, record_uri("seeded"), json.loads(sys.argv[2]))
print("no skew", code)
"""


@pytest.mark.slow  # three interpreters importing Airflow
def test_a_worker_with_another_hash_seed_agrees_with_the_dag_processor(tmp_path: Path) -> None:
    # A class attribute made by iterating a set, and luigi's ChoiceParameter (its description lists the
    # choices in set order), used to fingerprint differently in each process: false code skew on every run.
    (tmp_path / "seeded_tasks.py").write_text(SEEDED_TASKS)
    path = os.pathsep.join([str(tmp_path), *sys.path])

    def python(seed: str, code: str, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": path}
        return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=300)

    workspace = str(tmp_path / "ws")
    parsed = python("0", DAG_PROCESSOR, workspace)
    assert parsed.returncode == 0, parsed.stderr[-3000:]
    record = parsed.stdout.strip().splitlines()[-1]
    worker = python("1", WORKER, workspace, record)
    assert worker.returncode == 0, worker.stderr[-3000:]
    assert worker.stdout.strip().splitlines()[-1].split()[-1] in json.loads(record)["kart_tasks"]
    (tmp_path / "seeded_tasks.py").write_text(SEEDED_TASKS.replace('"p", "q"}', '"p", "r"}'))  # real skew
    worker = python("1", WORKER, workspace, record)
    assert worker.returncode != 0 and "StaleTaskError: Pick[" in worker.stderr


def test_default_args_cannot_turn_off_the_xcom_the_upstream_check_reads(run_dag, register_dag, capfd) -> None:
    # With do_xcom_push=False from the DAG's default_args no task pushed its unique id, so the task below
    # compared nothing and found the edited file's output cached: a green run with a stale final output.
    off = {"default_args": {"do_xcom_push": False}}
    run = run_dag(to_dag(Evaluate(model="ridge", n_rows=23), dag_id="midrun_no_xcom", **off))
    edited = Evaluate(model="ridge", n_rows=11)
    kart_core.build(edited)
    changed = to_dag(edited, dag_id="midrun_no_xcom", **off)
    register_dag(changed)
    assert _rerun(run, changed.get_task("Evaluate")) == "failed"
    assert changed.get_task("Evaluate").do_xcom_push is True
    out = capfd.readouterr().out
    assert f"StaleTaskError: {edited.kart_label()}: it requires " in out and "Clear the whole run" in out
    with pytest.raises(ValueError, match=r"do_xcom_push=False would turn off the check"):
        to_dag(Evaluate(), dag_id="no_xcom", class_operator_args={Train: {"do_xcom_push": False}})
