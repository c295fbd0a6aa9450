"""Kedro hooks of kart_kedro, registered through the ``kedro.hooks`` entry point.

Inert unless the pipeline being run has ``to_pipeline`` nodes: then every edge of those nodes that
the catalog does not declare becomes a TaskReceiptDataset, so single nodes can run in separate
processes (``kedro run --nodes``, kedro-airflow) and find their upstreams through the kart cache.
Each node carries its own edges (``KartTaskNode.edges``), so a pipeline filtered down to one node
still names the tasks behind its inputs.
"""

from __future__ import annotations

from typing import Any

from kedro.framework.hooks import hook_impl

from kart_kedro.pipeline import KartTaskNode
from kart_kedro.receipt_dataset import TaskReceiptDataset

__all__ = ["KartHooks", "hooks"]


class KartHooks:
    """Adds the edges of the to_pipeline nodes being run to the catalog."""

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        """Declare each undeclared edge of ``pipeline``'s to_pipeline nodes as a TaskReceiptDataset of its task.

        Kedro calls this before the runner checks that the pipeline's inputs are in the catalog.
        """
        for node in pipeline.nodes:
            if isinstance(node.func, KartTaskNode):
                for name, task in node.func.edges.items():
                    if name not in catalog:
                        catalog[name] = TaskReceiptDataset(task)


hooks = KartHooks()
