"""Code skew: a worker whose task differs from what the dag-processor parsed fails at once with kart's message;
task classes a worker cannot import by a stable name are refused when the DAG is parsed."""

from __future__ import annotations

import datetime
import importlib
import sys
import textwrap
from pathlib import Path

import pytest
from af_helpers import statuses
from kart_airflow import to_dag
from kart_airflow.skew import check_importable, compare_with_parse
from mlpipeline import Evaluate, LoadData

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


def test_compare_names_the_task_what_differs_and_what_to_do() -> None:
    task = LoadData(n_rows=5)
    code = kart_core.code_fingerprint(LoadData)
    same = {"kart_unique_id": task.make_unique_id(), "kart_code": code}
    compare_with_parse(task, code, "s3://b/x.pkl", same)
    label = rf"LoadData\[{task.make_unique_id()[:8]}\]"
    with pytest.raises(
        kart_core.StaleTaskError, match=label + r".*declares no such output.*Deploy the same code"
    ) as s3:
        compare_with_parse(task, code, "s3://b/x.pkl", None)
    with pytest.raises(kart_core.StaleTaskError, match=r"a relative one resolves against each process's current"):
        compare_with_parse(task, code, "file:///srv/ws/x.pkl", None)
    assert "relative" not in str(s3.value)
    with pytest.raises(kart_core.StaleTaskError, match=label + r".*parsed with unique id 0+ .*this worker computes"):
        compare_with_parse(task, code, "s3://b/x.pkl", {**same, "kart_unique_id": "0" * 32})
    with pytest.raises(
        kart_core.StaleTaskError, match=label + r": the code of mlpipeline.tasks.LoadData on this worker"
    ):
        compare_with_parse(task, code, "s3://b/x.pkl", {**same, "kart_code": "f" * 16})


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
    assert "StaleTaskError: Train[" in out and "declares no such output" in out and "Deploy the same code" in out


def test_a_worker_with_other_task_code_fails_with_both_fingerprints(run_dag, capfd) -> None:
    planned = to_dag(LoadData(n_rows=33), dag_id="code_skew")
    (outlet,) = planned.get_task("LoadData").outlets
    outlet.extra["kart_code"] = "0123456789abcdef"  # as if the dag-processor had parsed other code
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
