"""OpenLineage for kart operators: the task's inputs and outputs as datasets, and a ``kart`` run facet.

Imported only by ``KartTaskOperator.get_openlineage_facets_on_complete``, which the OpenLineage
provider (apache-airflow-providers-openlineage) calls through its DefaultExtractor when a task
instance finishes; without the provider nothing here is imported. The provider documents this
hook as the way an operator reports its own lineage ("Implementing OpenLineage in Operators").

The run facet, under the key ``kart`` of the run's facets::

    {"uniqueId": "3f2ac1e0...", "taskClass": "mlpipeline.tasks.Train",
     "parameters": {"alpha": "0.5", ...}, "status": "ran" | "cached" | "failed"}

``parameters`` are the significant ones as strings (what the unique id covers), ``status`` what
``kart_core.run_one`` did: ``cached`` when the outputs existed and nothing ran.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from airflow.providers.openlineage.extractors.base import OperatorLineage
from airflow.providers.openlineage.extractors.manager import ExtractorManager
from openlineage.client.facet_v2 import RunFacet

__all__ = ["FACET_KEY", "KartRunFacet", "kart_lineage"]

FACET_KEY = "kart"
SCHEMA_URL = "urn:kart:openlineage:KartRunFacet:1-0-0"  # described in docs/airflow.md, "Lineage"


@attrs.define
class KartRunFacet(RunFacet):
    """What kart knows of one run of one task (OpenLineage names fields in camelCase)."""

    uniqueId: str  # noqa: N815 - OpenLineage facet fields are camelCase
    taskClass: str  # noqa: N815
    parameters: dict[str, str]
    status: str

    @staticmethod
    def _get_schema() -> str:
        return SCHEMA_URL


def kart_lineage(
    *,
    unique_id: str,
    task_class: str,
    parameters: Mapping[str, str],
    status: str,
    input_uris: Sequence[str],
    output_uris: Sequence[str],
) -> OperatorLineage:
    """The OperatorLineage the provider emits for a kart task: datasets from the output URIs, the kart facet.

    Args:
        unique_id: the task's unique id (32 hex).
        task_class: ``package.module.Class``.
        parameters: significant parameters as strings.
        status: ``ran``, ``cached`` or ``failed``.
        input_uris: URIs of the upstream tasks' outputs (the operator's inlets).
        output_uris: URIs of the task's outputs (its outlets).
    """
    facet = KartRunFacet(uniqueId=unique_id, taskClass=task_class, parameters=dict(parameters), status=status)
    return OperatorLineage(
        inputs=_datasets(input_uris),
        outputs=_datasets(output_uris),
        run_facets={FACET_KEY: facet},
    )


def _datasets(uris: Sequence[str]) -> list[Any]:
    # The provider's own naming for object-storage and file URIs (namespace "s3://bucket", name "key").
    datasets = (ExtractorManager.convert_to_ol_dataset_from_object_storage_uri(uri) for uri in uris)
    return [dataset for dataset in datasets if dataset is not None]
