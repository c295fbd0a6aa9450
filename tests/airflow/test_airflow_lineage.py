"""OpenLineage: the provider's own extraction path (ExtractorManager -> DefaultExtractor ->
KartTaskOperator.get_openlineage_facets_on_complete) reports kart's facet and the task's datasets."""

from __future__ import annotations

import pytest
from kart_airflow import to_dag
from kart_airflow.outputs import output_paths, output_uri
from mlpipeline import Evaluate, Train

pytest.importorskip("airflow.providers.openlineage", reason="the airflow extra installs the OpenLineage provider")


def _lineage(run, dag, task_id: str):
    """What the OpenLineage provider extracts for ``task_id`` of ``run`` when the task instance succeeded."""
    from airflow.providers.openlineage.extractors.manager import ExtractorManager
    from airflow.utils.state import TaskInstanceState

    (ti,) = [ti for ti in run.get_task_instances() if ti.task_id == task_id]
    return ExtractorManager().extract_metadata(run, dag.get_task(task_id), TaskInstanceState.SUCCESS, ti)


def test_the_provider_extracts_the_kart_facet_ran_then_cached_with_datasets_both_ways(run_dag) -> None:
    from openlineage.client.serde import Serde

    root = Evaluate(model="ridge", alpha=0.125)
    dag = to_dag(root, dag_id="lineage")
    train = root.requires()["model"]
    assert isinstance(train, Train)

    for expected in ("ran", "cached"):
        lineage = _lineage(run_dag(dag), dag, "Train__Evaluate.model")
        facet = lineage.run_facets["kart"]
        assert (facet.uniqueId, facet.taskClass, facet.status) == (
            train.make_unique_id(),
            "mlpipeline.tasks.Train",
            expected,
        )
        assert facet.parameters == train.to_str_params(only_significant=True)
        assert facet.parameters["alpha"] == "0.125"
        # Outputs: the task's own file; inputs: the outputs of what it requires.
        assert [(d.namespace, d.name) for d in lineage.outputs] == [
            ("file://", output_uri(path).removeprefix("file:///")) for path in output_paths(train)
        ]
        expected_inputs = {
            output_uri(p).removeprefix("file:///") for dep in train.kart_requires() for p in output_paths(dep)
        }
        assert {d.name for d in lineage.inputs} == expected_inputs and expected_inputs
        # As the OpenLineage client serializes it into the run event.
        serialized = Serde.to_dict(facet)
        assert serialized["status"] == expected and serialized["_schemaURL"].endswith("KartRunFacet:1-0-0")


@pytest.mark.parametrize("options", [{"emit_cached_asset_events": False}, {"assets": "none"}])
def test_lineage_names_the_datasets_when_outputs_are_not_assets_or_emit_no_event(run_dag, options) -> None:
    # A cached run that emits no Asset event, or outputs that are not Assets at all: the OpenLineage
    # event still says what the task read and wrote (the provider's datasets come from kart, not Assets).
    root = Evaluate(model="ridge", alpha=0.0625)
    dag = to_dag(root, dag_id="lineage_quiet", **options)
    train = root.requires()["model"]
    expected_outputs = [output_uri(path).removeprefix("file:///") for path in output_paths(train)]
    expected_inputs = {
        output_uri(p).removeprefix("file:///") for dep in train.kart_requires() for p in output_paths(dep)
    }
    for expected in ("ran", "cached"):
        run = run_dag(dag)
        lineage = _lineage(run, dag, "Train__Evaluate.model")
        assert lineage.run_facets["kart"].status == expected
        assert [d.name for d in lineage.outputs] == expected_outputs
        assert {d.name for d in lineage.inputs} == expected_inputs
    if "emit_cached_asset_events" in options:  # the cached run declared no outlets, lineage still has them
        (ti,) = [ti for ti in run.get_task_instances() if ti.task_id == "Train__Evaluate.model"]
        assert ti.xcom_pull(task_ids=ti.task_id)["status"] == "cached"
