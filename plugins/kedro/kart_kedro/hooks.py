"""Kedro hooks of kart_kedro, registered through the ``kedro.hooks`` entry point.

Inert unless the pipeline being run has ``to_pipeline`` nodes: then every edge of those nodes that
the catalog does not declare becomes a TaskReceiptDataset, so single nodes can run in separate
processes (``kedro run --nodes``, kedro-airflow) and find their upstreams through the kart cache.
Each node carries its own edges (``KartTaskNode.edges``), so a pipeline filtered down to one node
still names the tasks behind its inputs.

Around every pipeline run (any runner) kart_core's log lines are printed as written by Kedro's ``RichHandler``:
a task label such as ``Up[fb0d6725]`` is not read as a rich style tag (``log_markup``).
"""

from __future__ import annotations

from typing import Any

from kedro.framework.hooks import hook_impl

from kart_kedro.log_markup import mark_session_plain, unmark_session_plain
from kart_kedro.pipeline import KartTaskNode
from kart_kedro.receipt_dataset import TaskReceiptDataset

__all__ = ["KartHooks", "hooks"]


class KartHooks:
    """Adds the edges of the to_pipeline nodes being run to the catalog; keeps kart_core's log lines plain."""

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        """Declare each undeclared edge of ``pipeline``'s to_pipeline nodes as a TaskReceiptDataset of its task, and tell
        each such node whether its upstream nodes are in this run (``KartTaskNode.upstream_runs_first``).

        Kedro calls this before the runner checks that the pipeline's inputs are in the catalog. From here until
        ``after_pipeline_run`` or ``on_pipeline_error``, kart_core's records are printed without rich markup.
        """
        mark_session_plain()
        produced = {name for node in pipeline.nodes for name in node.outputs}
        for node in pipeline.nodes:
            if isinstance(node.func, KartTaskNode):
                # Every upstream receipt made by a node of this run: those nodes bring their tasks up to date first.
                node.func.upstream_runs_first = all(name in produced for name in node.inputs)
                for name, task in node.func.edges.items():
                    if name not in catalog:
                        catalog[name] = TaskReceiptDataset(task)

    @hook_impl
    def after_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        """Stop printing kart_core's records plain (``before_pipeline_run`` started it)."""
        unmark_session_plain()

    @hook_impl
    def on_pipeline_error(self, error: Exception, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        """As ``after_pipeline_run``, for a run that raised."""
        unmark_session_plain()


hooks = KartHooks()
