"""The task a worker runs: the DAG file's own task object (task_for_worker), its code (current_code)."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import luigi
import pytest
from kart_airflow.rebuild import current_code, resolve_class, task_for_worker
from mlpipeline import Evaluate, LoadData, MakeFeatures, Train

import kart_core


def test_the_worker_runs_the_parsed_task_itself() -> None:
    train = Train(features=MakeFeatures(data=LoadData(n_rows=50, seed=3)), model="ridge", alpha=0.1)
    assert task_for_worker(train, {}, train.make_unique_id()) is train
    # Settings that are the task's own already change nothing.
    assert task_for_worker(train, {"rerun": "False"}, train.make_unique_id()) is train


def test_recorded_settings_are_parsed_by_their_parameter_and_keep_the_python_values(tmp_path: Path) -> None:
    task = Evaluate(model="mean", alpha=1, workspace_directory=str(tmp_path / "elsewhere"))
    run = task_for_worker(task, {"rerun": "True"}, task.make_unique_id())
    assert run.rerun is True and run.make_unique_id() == task.make_unique_id()
    assert run.alpha == 1 and type(run.alpha) is int  # not 1.0 from the string '1'
    assert run.output().path().startswith(str(tmp_path / "elsewhere"))


def test_a_task_whose_unique_id_is_not_the_expected_one_is_refused() -> None:
    task = Evaluate(model="ridge")
    with pytest.raises(kart_core.StaleTaskError, match=r"Evaluate\[0123abcd\]: with the settings the DAG recorded"):
        task_for_worker(task, {}, "0123abcd" * 4)


def test_a_class_reimported_with_other_code_is_fingerprinted_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = tmp_path / "kart_changing_tasks.py"
    source = """
        import luigi
        import kart_core

        class Changing(kart_core.TaskOnKart):
            size = luigi.IntParameter(default=1)
    """
    module.write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    changing = importlib.import_module("kart_changing_tasks")
    task = changing.Changing()
    parsed = kart_core.code_fingerprint(changing.Changing)
    try:
        assert current_code(task, "kart_changing_tasks.Changing", parsed) == parsed
        module.write_text(textwrap.dedent(source) + "    scale = luigi.IntParameter(default=2)\n")
        importlib.reload(changing)
        now = current_code(task, "kart_changing_tasks.Changing", parsed)
        assert now == kart_core.code_fingerprint(changing.Changing) != parsed
    finally:
        sys.modules.pop("kart_changing_tasks", None)


def test_a_missing_class_names_the_import_path() -> None:
    with pytest.raises(kart_core.StaleTaskError, match=r"'mlpipeline\.tasks\.Gone'.*renamed or removed"):
        resolve_class("mlpipeline.tasks.Gone")
    assert resolve_class("mlpipeline.tasks.Train") is Train


# --- the worker runs the task the DAG file made, with its Python values (attacker at3 A7) ----------------------

LOSSY_PIPELINE = """
import luigi
import kart_core


class Labelled(kart_core.TaskOnKart):
    label = luigi.Parameter(default=None)
    ratio = luigi.FloatParameter()

    def run(self):
        self.dump({"label": self.label, "ratio": repr(self.ratio)})


class Wrapped(kart_core.TaskOnKart):
    inner = kart_core.TaskInstanceParameter()
    scale = luigi.FloatParameter()

    def run(self):
        self.dump({"inner": self.load("inner"), "scale": repr(self.scale)})
"""
LOSSY_DAG = """
# an airflow dag file
import datetime
import os

from kart_airflow import to_dag
from lossypipe import Labelled, Wrapped

WS = os.environ["LOSSY_WS"]
dag = to_dag(Wrapped(inner=Labelled(ratio=0.5, workspace_directory=WS), scale=1, workspace_directory=WS), dag_id="lossy",
             schedule=None, start_date=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc))
"""
# A worker: a fresh process whose parse of the DAG file is pruned to its one task (Airflow's parsing
# context), which then runs the operator as Airflow's task runner does.
WORKER = """
import json, sys
from airflow.dag_processing.dagbag import DagBag

bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
(operator,) = bag.dags["lossy"].tasks
print(json.dumps(operator.execute(context={})))
"""


@pytest.mark.slow  # two interpreters importing Airflow
def test_a_worker_runs_the_values_the_dag_file_wrote_as_build_does(tmp_path: Path) -> None:
    # Rebuilt from its string parameters, a worker ran Labelled with label='None' (the string form of an
    # untyped default None) under the unique id of build()'s label=None, and cached that; Wrapped's
    # scale=1 (an int for a FloatParameter, string form '1') came back as 1.0, another unique id, and
    # failed as code skew; its inner task lost its workspace_directory (insignificant, not in the strings).
    from kart_airflow import task_ids

    (tmp_path / "lossypipe.py").write_text(LOSSY_PIPELINE)
    dag_file = tmp_path / "lossy_dag.py"
    dag_file.write_text(LOSSY_DAG)
    workspace = str(tmp_path / "ws")
    env = {
        **os.environ,
        "LOSSY_WS": workspace,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path]),
        "_AIRFLOW_PARSING_CONTEXT_DAG_ID": "lossy",
    }

    def worker(task: Any) -> dict[str, Any]:
        """Run ``task``'s Airflow task as a worker does, in a fresh process; its XCom value."""
        task_id = task_ids(root)[kart_core.node_key(task)]
        done = subprocess.run(
            [sys.executable, "-c", WORKER, str(dag_file)],
            env={**env, "_AIRFLOW_PARSING_CONTEXT_TASK_ID": task_id},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))

    sys.path.insert(0, str(tmp_path))
    try:
        pipe = importlib.import_module("lossypipe")
        root = pipe.Wrapped(inner=pipe.Labelled(ratio=0.5, workspace_directory=workspace), scale=1)
        assert worker(root.inner)["unique_id"] == root.inner.make_unique_id()
        # build() of the same task finds it cached, with what build() itself would have written.
        assert kart_core.build(pipe.Labelled(ratio=0.5, workspace_directory=workspace)) == {
            "label": None,
            "ratio": "0.5",
        }
        assert worker(root)["unique_id"] == root.make_unique_id()
        built = kart_core.build(pipe.Wrapped(inner=root.inner, scale=1, workspace_directory=workspace))
        assert built == {"inner": {"label": None, "ratio": "0.5"}, "scale": "1"}
        assert not (tmp_path / "resources").exists()  # nothing built in the default workspace
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("lossypipe", None)


class Untyped(kart_core.TaskOnKart[int]):
    n = luigi.Parameter()

    def run(self) -> None:
        self.dump(self.n * 2)


def test_to_dag_refuses_a_value_that_its_parameter_gives_back_changed() -> None:
    from kart_airflow import to_dag

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # luigi's "is not of type string"
        task = Untyped(n=5)
    with pytest.raises(
        kart_core.errors.TaskDefinitionError,
        match=rf"Untyped\[{task.make_unique_id()[:8]}\]: parameter n=5 \(int\) is a luigi\.Parameter, whose string form "
        r"'5' parses back as '5' \(str\)\..*share one cache entry with different outputs\. Declare n = "
        r"luigi\.IntParameter\(\.\.\.\) in Untyped",
    ):
        to_dag(task, dag_id="untyped")
    # The string the parameter takes is accepted, and the same task (same unique id) as the CLI's --n 5.
    dag = to_dag(Untyped(n="5"), dag_id="untyped")
    assert [t.kart_unique_id for t in dag.tasks] == [task.make_unique_id()]
