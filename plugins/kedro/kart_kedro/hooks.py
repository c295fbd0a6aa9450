"""Kedro hooks of kart_kedro, registered through the ``kedro.hooks`` entry point.

Inert unless the project builds a pipeline with ``to_pipeline``: then every edge of it that the
catalog does not declare becomes a TaskReceiptDataset, so single nodes can run in separate
processes (``kedro run --nodes``, kedro-airflow) and find their upstreams through the kart cache.
"""

from __future__ import annotations

from typing import Any

from kedro.framework.hooks import hook_impl

from kart_kedro.pipeline import registered_edges
from kart_kedro.receipt_dataset import TaskReceiptDataset

__all__ = ["KartHooks", "hooks"]


class KartHooks:
    """Adds the to_pipeline edges to the catalog."""

    @hook_impl
    def after_catalog_created(self, catalog: Any) -> None:
        """Declare each undeclared to_pipeline edge as a TaskReceiptDataset of its task."""
        for name, task in registered_edges().items():
            if name not in catalog:
                catalog[name] = TaskReceiptDataset(task)


hooks = KartHooks()
