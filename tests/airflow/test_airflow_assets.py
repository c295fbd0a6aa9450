"""to_dag(assets=...): which outputs are Airflow Assets, and how workers still detect code skew without them."""

from __future__ import annotations

import datetime
import json

import pytest
from af_helpers import statuses
from airflow.sdk import Asset
from airflow.sdk.definitions.asset import AssetRef
from airflow.serialization.serialized_objects import DagSerialization
from kart_airflow import KartTaskGroup, to_dag
from kart_airflow.skew import compare_with_record, record_extra, record_uri, task_key
from mlpipeline import Evaluate, LoadData, MakeFeatures, Train

import kart_core


def _outlet_uris(dag, task_id: str) -> list[str]:
    return [outlet.uri for outlet in dag.get_task(task_id).outlets]


def _inlet_uris(dag, task_id: str) -> list[str]:
    return [inlet.uri for inlet in dag.get_task(task_id).inlets]


def test_final_declares_only_the_roots_outputs_and_records_the_others() -> None:
    roots = [Evaluate(model="linear"), Evaluate(model="ridge", alpha=0.5)]
    full, final = to_dag(roots, dag_id="final"), to_dag(roots, dag_id="final", assets="final")
    assert final.task_ids == full.task_ids
    for task_id in final.task_ids:
        if task_id in ("Evaluate", "Evaluate_2"):
            assert _outlet_uris(final, task_id) == _outlet_uris(full, task_id) != []
        else:
            assert _outlet_uris(final, task_id) == []
        # Inlets only name outputs that are Assets: the roots require no root here.
        assert [uri for uri in _inlet_uris(final, task_id) if not uri.startswith("x-kart-record")] == []
    # The tasks whose outputs are not Assets are recorded on one Asset, an inlet of the first task.
    (record,) = [inlet for inlet in final.get_task("Evaluate").inlets if isinstance(inlet, Asset)]
    assert record.uri == record_uri("final") == "x-kart-record://final/"
    recorded = record.extra["kart_tasks"]
    # Every task is recorded, declared or not: its task id's key and its unique id, under its code.
    graph = kart_core.place_graph(roots)
    assert sorted(entry for entries in recorded.values() for entry in entries.split()) == sorted(
        f"{task_key(graph.places[key])}={task.make_unique_id()[:16]}" for key, task in graph.nodes.items()
    )
    assert recorded[kart_core.code_fingerprint(Train)].count(" ") == 1  # the two Train tasks share their code


def test_none_declares_no_output_asset_and_serializes_much_smaller() -> None:
    roots = [Evaluate(model="linear"), Evaluate(model="ridge")]
    none, full = to_dag(roots, dag_id="none", assets="none"), to_dag(roots, dag_id="none")
    assert all(task.outlets == [] for task in none.tasks)
    inlets = [inlet for task in none.tasks for inlet in task.inlets]
    assert [inlet.uri for inlet in inlets] == ["x-kart-record://none/"] and isinstance(inlets[0], Asset)
    assert len(inlets[0].extra["kart_tasks"]) == 4  # four classes, one code fingerprint each
    size = {name: len(json.dumps(DagSerialization.to_dict(dag))) for name, dag in (("none", none), ("all", full))}
    assert size["none"] < 0.6 * size["all"], size
    assert [task.task_display_name for task in none.tasks] == [task.task_display_name for task in full.tasks]


def test_all_is_the_default_and_an_unknown_choice_is_refused() -> None:
    dag = to_dag(Evaluate(model="mean"), dag_id="default")
    assert all(task.outlets for task in dag.tasks)
    # Inlets are refs to the upstream outputs, plus the DAG's record (what workers check) on the first task.
    records = [inlet for task in dag.tasks for inlet in task.inlets if isinstance(inlet, Asset)]
    assert [record.uri for record in records] == ["x-kart-record://default/"]
    assert all(isinstance(inlet, AssetRef) for task in dag.tasks for inlet in task.inlets if inlet not in records)
    with pytest.raises(ValueError, match=r"assets='some'; choose one of all, final, none"):
        to_dag(Evaluate(model="mean"), dag_id="default", assets="some")  # type: ignore[arg-type]


def test_a_task_group_has_its_own_record(run_dag) -> None:
    from airflow.sdk import DAG

    with DAG(dag_id="group_record") as dag:
        KartTaskGroup(Evaluate(model="mean", alpha=3.0), group_id="models", assets="final")
    (record,) = [inlet for task in dag.tasks for inlet in task.inlets if isinstance(inlet, Asset)]
    assert record.uri == record_uri("group_record", "models") == "x-kart-record://group_record/models"
    assert statuses(run_dag(dag)) == {
        "models.Evaluate": "ran",
        "models.LoadData__Evaluate.features.data": "ran",
        "models.MakeFeatures__Evaluate.features": "ran",
        "models.Train__Evaluate.model": "ran",
    }


def test_without_assets_the_dag_runs_and_caches(run_dag) -> None:
    dag = to_dag(Evaluate(model="mean", alpha=7.0), dag_id="no_assets", assets="none")
    assert set(statuses(run_dag(dag)).values()) == {"ran"}
    assert set(statuses(run_dag(dag)).values()) == {"cached"}


def test_without_assets_a_worker_with_other_parameters_fails_fast_with_the_record_message(register_dag, capfd) -> None:
    register_dag(to_dag(Evaluate(model="ridge", alpha=0.375), dag_id="record_skew", assets="none"))
    worker = to_dag(
        Evaluate(model="ridge", alpha=0.625),
        dag_id="record_skew",
        assets="none",
        operator_args={"retries": 3, "retry_delay": datetime.timedelta(0)},
    )
    run = worker.test()
    states = statuses(run)
    assert states["LoadData__Evaluate.features.data"] in ("ran", "cached")
    assert (states["Train__Evaluate.model"], states["Evaluate"]) == ("failed", "upstream_failed")
    assert {ti.task_id: ti.try_number for ti in run.get_task_instances()}["Train__Evaluate.model"] == 1
    out = capfd.readouterr().out
    assert "StaleTaskError: Train[" in out and "the dag-processor parsed task 'Train__Evaluate.model'" in out
    assert "(x-kart-record://record_skew/)" in out


def test_without_assets_a_worker_with_other_code_names_both_fingerprints(run_dag, capfd) -> None:
    planned = to_dag(LoadData(n_rows=34), dag_id="record_code", assets="none")
    (record,) = planned.get_task("LoadData").inlets
    code = kart_core.code_fingerprint(LoadData)
    record.extra["kart_tasks"] = {"0123456789abcdef": record.extra["kart_tasks"][code]}  # other code at parse
    assert statuses(run_dag(planned)) == {"LoadData": "failed"}
    assert f"(fingerprint {code}) differs from the code the DAG was parsed with (fingerprint 0123456789abcdef)" in (
        capfd.readouterr().out
    )


def test_compare_with_record_names_the_task_and_what_to_do() -> None:
    task = MakeFeatures(data=LoadData(n_rows=3))
    code = kart_core.code_fingerprint(MakeFeatures)
    recorded = record_extra([("F", task, code), ("L", LoadData(n_rows=3), "feedfacefeedface")])
    compare_with_record(task, "F", code, "x-kart-record://d/", recorded)
    label = rf"MakeFeatures\[{task.make_unique_id()[:8]}\]"
    with pytest.raises(kart_core.StaleTaskError, match=label + r": .*declares no such Asset.*Deploy the same code"):
        compare_with_record(task, "F", code, "x-kart-record://d/", None)
    with pytest.raises(kart_core.StaleTaskError, match=label + r": the code of mlpipeline.tasks.MakeFeatures"):
        compare_with_record(task, "F", "0" * 16, "x-kart-record://d/", recorded)
    other = MakeFeatures(data=LoadData(n_rows=4))
    # Same class code, other parameter values: a value the DAG file computes at parse time changed (attacker at26 G4:
    # days from the clock, around midnight), not the deployed code, which the message used to blame.
    with pytest.raises(kart_core.StaleTaskError) as same_code:
        compare_with_record(other, "F", code, "x-kart-record://d/", recorded)
    message = str(same_code.value)
    assert "parsed task 'F' with unique id" in message and "(x-kart-record://d/)" in message
    assert f"with the same code of MakeFeatures (fingerprint {code[:12]})" in message
    assert "a parameter value computed when the DAG file is parsed changed" in message
    assert "Deploy the same code" not in message
    with pytest.raises(kart_core.StaleTaskError, match=r"parameters or code differ.*Deploy the same code"):
        compare_with_record(other, "F", "0" * 16, "x-kart-record://d/", recorded)


def test_outlets_and_inlets_in_operator_args_are_added_to_kart_s_own() -> None:
    """at17 low note: operator_args={"outlets": [...]} replaced every kart outlet, so a DAG scheduled on
    asset_uris(task) never ran; `outlets=[]` left none. Given Assets now come after kart's."""
    root = Evaluate(model="ridge", alpha=0.25)
    report = Asset("s3://reports/weekly.html")
    plain = to_dag(root, dag_id="given_assets")
    given = to_dag(
        root,
        dag_id="given_assets",
        operator_args={"outlets": [report]},
        class_operator_args={Train: {"inlets": Asset("s3://raw/labels.csv"), "outlets": []}},
    )
    for task_id in plain.task_ids:
        kart_outlets = _outlet_uris(plain, task_id)
        assert kart_outlets != []
        extra = [] if task_id.startswith("Train") else [report.uri]
        assert _outlet_uris(given, task_id) == [*kart_outlets, *extra]
        extra_in = ["s3://raw/labels.csv"] if task_id.startswith("Train") else []
        assert _inlet_uris(given, task_id) == [*_inlet_uris(plain, task_id), *extra_in]
