"""An output's Airflow Asset is the same from every checkout, working directory and machine.

Data-aware scheduling matches Assets by URI: a URI holding the absolute local path split one output
into as many Assets as there were checkouts (and made a worker started in another directory emit
events on Assets no DAG declared).
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import luigi
import pytest
from af_helpers import statuses
from kart_airflow import asset_uris, task_id_for, to_dag
from kart_airflow.outputs import output_uris
from mlpipeline import Evaluate

import kart_core
from kart_core.target import make_target

_TASKS = '''
"""Two tasks of a pipeline package, as a checkout holds it."""
import kart_core
import luigi


class Load(kart_core.TaskOnKart[int]):
    day = luigi.Parameter()

    def run(self) -> None:
        self.dump(len(self.day))


class Total(kart_core.TaskOnKart[int]):
    source = kart_core.TaskInstanceParameter()

    def run(self) -> None:
        self.dump(self.load(self.source) + 1)
'''

# The DAG file keeps its cache beside the checkout (a common layout): the workspace's absolute path
# differs in each checkout.
_DAG = '''
"""airflow dag file of the checkout."""
import datetime
from pathlib import Path
from typing import Any

from kart_airflow import to_dag
from ckpipe.tasks import Load, Total

WORKSPACE = str(Path(__file__).resolve().parents[1] / "resources")
dag = to_dag(
    [Total(source=Load(day="2024-01-01"), workspace_directory=WORKSPACE),
     Total(source=Load(day="2024-01-02"), workspace_directory=WORKSPACE)],
    dag_id="checkout",
    schedule=None,
    start_date=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
)
'''

# Parses the checkout's DAG file as the dag-processor would (a fresh process, the checkout on sys.path,
# started in the checkout) and prints each task's outlet and inlet URIs.
_PARSE = """
import json, runpy, sys
sys.path.insert(0, ".")
dag = runpy.run_path("dags/checkout_dag.py")["dag"]
print(json.dumps({t.task_id: [[a.uri for a in t.outlets], sorted(a.uri for a in t.inlets)] for t in dag.tasks}))
"""


def _checkout(root: Path) -> Path:
    (root / "ckpipe").mkdir(parents=True)
    (root / "ckpipe" / "__init__.py").write_text("")
    (root / "ckpipe" / "tasks.py").write_text(textwrap.dedent(_TASKS))
    (root / "dags").mkdir()
    (root / "dags" / "checkout_dag.py").write_text(textwrap.dedent(_DAG))
    return root


def _parse(checkout: Path) -> dict[str, list[list[str]]]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("KART_WORKSPACE", None)
    done = subprocess.run(
        [sys.executable, "-c", _PARSE], cwd=checkout, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_two_checkouts_declare_the_same_assets_and_different_tasks_different_ones(tmp_path: Path) -> None:
    first = _checkout(tmp_path / "alice" / "repo")
    second = Path(shutil.copytree(first, tmp_path / "ci" / "builds" / "7" / "repo"))
    parsed, again = _parse(first), _parse(second)
    assert parsed == again
    outlets = {task_id: uris for task_id, (uris, _) in parsed.items()}
    assert set(outlets) == {"Total", "Total_2", "Load__Total.source", "Load__Total_2.source"}
    every = [uri for uris in outlets.values() for uri in uris]
    assert len(every) == len(set(every)) == 4  # one Asset per output; two tasks never share one
    assert all(uri.startswith("x-kart://workspace/ckpipe/tasks/") for uri in every)
    assert not any(str(tmp_path) in uri for uri in every)
    # Lineage inside the DAG still joins: each Total reads the Asset its Load declares.
    assert outlets["Load__Total.source"] == [uri for uri in parsed["Total"][1] if not uri.startswith("x-kart-record")]


def test_the_asset_is_the_workspace_relative_path_whatever_the_directory_a_url_or_outside_path_as_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    evaluate = Evaluate(model="mean")
    expected = [f"x-kart://workspace/mlpipeline/tasks/Evaluate_{evaluate.make_unique_id()}.pkl"]
    dag = to_dag(evaluate, dag_id="here")
    assert [outlet.uri for outlet in dag.get_task(task_id_for(evaluate)).outlets] == expected
    for directory in (tmp_path / "elsewhere", tmp_path / "other user" / "home"):
        directory.mkdir(parents=True)
        monkeypatch.chdir(directory)  # the default workspace ./resources/ is now another folder
        moved = to_dag(Evaluate(model="mean"), dag_id="there")
        assert [outlet.uri for outlet in moved.get_task(task_id_for(evaluate)).outlets] == expected
        assert asset_uris(Evaluate(model="mean")) == expected
        # XCom and OpenLineage still name where the bytes are.
        assert output_uris(Evaluate(model="mean")) == [(directory / evaluate.output().path()).as_uri()]
    # An absolute workspace elsewhere names the same output too; another task, another Asset.
    assert asset_uris(Evaluate(model="mean", workspace_directory=str(tmp_path / "ws"))) == expected
    assert asset_uris(Evaluate(model="ridge")) != expected
    # Object storage keeps its URL (one place from everywhere); a path outside any workspace stays absolute.
    remote = Evaluate(model="mean", workspace_directory="s3://bucket/ws")
    assert asset_uris(remote) == [remote.output().path()]
    assert asset_uris(remote)[0].startswith("s3://bucket/ws/mlpipeline/tasks/Evaluate_")

    class Exported(kart_core.TaskOnKart[str]):
        def output(self) -> Any:
            return make_target(str(tmp_path / "exports" / "report 1.csv"))

    assert asset_uris(Exported()) == [(tmp_path / "exports" / "report 1.csv").as_uri()]


class Note(kart_core.TaskOnKart[str]):
    text = luigi.Parameter()

    def run(self) -> None:
        self.dump(self.text)


def test_a_dag_parsed_in_another_directory_and_scheduled_on_asset_uris_is_queued_by_the_producer(
    run_dag: Any, register_dag: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.models.asset import AssetDagRunQueue
    from airflow.models.dag import DagModel
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG, Asset
    from airflow.utils.session import create_session

    (tmp_path / "reports-repo").mkdir()
    monkeypatch.chdir(tmp_path / "reports-repo")  # the consumer's DAG file is parsed from another folder
    schedule = [Asset.ref(uri=uri) for uri in asset_uris(Note(text="for the report"))]
    with DAG("report_on_note", schedule=schedule, start_date=datetime.datetime(2024, 1, 1)) as consumer:
        EmptyOperator(task_id="report")
    register_dag(consumer)
    with create_session() as session:  # new DAGs start paused; a paused DAG is never queued
        session.query(DagModel).filter(DagModel.dag_id == "report_on_note").update({"is_paused": False})
    monkeypatch.chdir(tmp_path)
    note = Note(text="for the report")
    assert statuses(run_dag(to_dag(note, dag_id="note_producer"))) == {"Note": "ran"}
    with create_session() as session:
        queued = session.query(AssetDagRunQueue).filter(AssetDagRunQueue.target_dag_id == "report_on_note").all()
    assert len(queued) == 1


class SharedExport(kart_core.TaskOnKart[str]):
    """gokart's fixed-path export: no class name, no unique id in the path."""

    def run(self) -> None:
        self.dump("export")

    def output(self) -> Any:
        return self.make_target("exports/report.pkl", use_unique_id=False)


def test_two_namespaces_name_the_same_task_two_assets_and_only_the_named_one_queues_the_consumer(
    run_dag: Any, register_dag: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Prod and staging workspaces of one deployment build the same task: one's run never queues the other's consumer."""
    from airflow.models.asset import AssetDagRunQueue
    from airflow.models.dag import DagModel
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG, Asset
    from airflow.utils.session import create_session

    monkeypatch.chdir(tmp_path)
    note = Note(text="namespaced")
    (default,) = asset_uris(note)  # the default namespace: the URIs of every DAG that sets none, unchanged
    assert default.startswith("x-kart://workspace/") and default.endswith(f"/Note_{note.make_unique_id()}.pkl")
    path = default.removeprefix("x-kart://workspace/")
    prod, staging = asset_uris(note, namespace="prod"), asset_uris(note, namespace="staging")
    assert (prod, staging) == ([f"x-kart://prod/{path}"], [f"x-kart://staging/{path}"])
    # A fixed-path export of any task: one Asset per namespace, not one for every workspace.
    assert asset_uris(SharedExport(), namespace="team-a.v2") == ["x-kart://team-a.v2/exports/report.pkl"]
    # Object storage and paths outside any workspace name one place already: no namespace.
    remote = Note(text="namespaced", workspace_directory="s3://bucket/ws")
    assert asset_uris(remote, namespace="prod") == [remote.output().path()]

    schedule = [Asset.ref(uri=uri) for uri in staging]
    with DAG("staging_report", schedule=schedule, start_date=datetime.datetime(2024, 1, 1)) as consumer:
        EmptyOperator(task_id="report")
    register_dag(consumer)
    with create_session() as session:  # new DAGs start paused; a paused DAG is never queued
        session.query(DagModel).filter(DagModel.dag_id == "staging_report").update({"is_paused": False})

    def queued() -> int:
        with create_session() as session:
            return session.query(AssetDagRunQueue).filter(AssetDagRunQueue.target_dag_id == "staging_report").count()

    prod_dag = to_dag(
        Note(text="namespaced", workspace_directory=str(tmp_path / "prod")), dag_id="note_prod", asset_namespace="prod"
    )
    assert [a.uri for a in prod_dag.get_task("Note").outlets] == prod
    assert statuses(run_dag(prod_dag)) == {"Note": "ran"}
    assert queued() == 0  # on one Asset (the old URIs) prod's run queued staging's consumer
    staging_dag = to_dag(
        Note(text="namespaced", workspace_directory=str(tmp_path / "staging")),
        dag_id="note_staging",
        asset_namespace="staging",
    )
    assert statuses(run_dag(staging_dag)) == {"Note": "ran"}
    assert queued() == 1


@pytest.mark.parametrize("namespace", ["", "Prod", "prod/eu", "team a", "-prod", "ü", "x" * 64, None])
def test_a_namespace_that_cannot_be_a_uri_authority_is_a_named_error(namespace: Any) -> None:
    expected = f"Asset namespace {namespace!r} cannot name Assets"
    with pytest.raises(kart_core.errors.SettingValueError, match=re.escape(expected)):
        asset_uris(Note(text="x"), namespace=namespace)
    with pytest.raises(kart_core.errors.SettingValueError, match=re.escape(expected)):
        to_dag(Note(text="x"), dag_id="bad_namespace", asset_namespace=namespace)


def test_a_workers_one_task_parse_declares_the_namespaced_outlets_and_inlets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker's parse builds its task alone (no shared URI cache): its Assets must be those the dag-processor declared."""
    total = Evaluate(model="mean")
    full = to_dag(total, dag_id="ns_worker", asset_namespace="staging")
    task_id = next(t.task_id for t in full.tasks if t.upstream_task_ids and t.downstream_task_ids)
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "ns_worker")
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_TASK_ID", task_id)
    pruned = to_dag(Evaluate(model="mean"), dag_id="ns_worker", asset_namespace="staging")
    assert pruned.task_ids == [task_id]
    mine, theirs = pruned.get_task(task_id), full.get_task(task_id)
    assert [a.uri for a in mine.outlets] == [a.uri for a in theirs.outlets] != []
    assert all(a.uri.startswith("x-kart://staging/") for a in mine.outlets)
    inlets = [a.uri for a in mine.inlets if not a.uri.startswith("x-kart-record")]
    assert inlets == [a.uri for a in theirs.inlets if not a.uri.startswith("x-kart-record")] != []
    assert all(uri.startswith("x-kart://staging/") for uri in inlets)
