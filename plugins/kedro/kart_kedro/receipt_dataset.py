"""TaskReceiptDataset: a to_pipeline edge that survives between processes without moving any data.

Its data is a KartReceipt, recomputed from the kart cache: ``exists()`` is the task's completeness,
``load()`` a receipt when the task is complete. So a node of a kart pipeline run alone (``kedro run
--nodes``, one Airflow task per node with kedro-airflow) finds its upstream edges in the catalog.
"""

from __future__ import annotations

from typing import Any

import luigi.task
from kedro.io import AbstractDataset, DatasetError

import kart_core
from kart_kedro._receipt import KartReceipt
from kart_kedro.dataset import JSONPreview, task_preview
from kart_kedro.task_text import describe

__all__ = ["TaskReceiptDataset", "receipt_for"]


def receipt_for(task: Any, status: str) -> KartReceipt:
    """The receipt of a task run_one has just run or found cached."""
    paths = tuple(str(target.path()) for target in kart_core.utils.flatten(task.output()))
    label = task.kart_label() if hasattr(task, "kart_label") else str(task)
    description = describe(task) if isinstance(task, kart_core.TaskOnKart) else {}
    return KartReceipt(node_key=kart_core.node_key(task), label=label, status=status, paths=paths, task=description)


class TaskReceiptDataset(AbstractDataset[KartReceipt, KartReceipt]):
    """The completion of one kart task: loads a receipt, accepts only its own task's receipt."""

    def __init__(self, task: Any, metadata: dict[str, Any] | None = None) -> None:
        """Args:
        task: the kart task this edge stands for.
        metadata: free-form information for plugins such as kedro-viz.
        """
        self.task = task
        self.metadata = metadata

    def load(self) -> KartReceipt:
        """A receipt if the task is complete; otherwise an error saying what to run."""
        if not self.task.complete():
            label = receipt_for(self.task, "missing").label
            if all(target.exists() for target in luigi.task.flatten(self.task.output())):
                # Its outputs are there, so complete() found them built on inputs committed again since.
                raise DatasetError(
                    f"{label} is stale: its outputs were built on inputs committed again since with other content. "
                    "Run its node again with the nodes downstream of it (kedro run --from-nodes=<its node>), or "
                    "build it with kart_core.build."
                )
            raise DatasetError(
                f"{label} is not built yet: run its node first (kedro run) or build it with kart_core.build."
            )
        return receipt_for(self.task, kart_core.RunStatus.CACHED.value)

    def save(self, data: KartReceipt) -> None:
        """Accept the receipt of this task once it is complete (nothing is written)."""
        if not (
            isinstance(data, KartReceipt) and data.node_key == kart_core.node_key(self.task) and self.task.complete()
        ):
            raise DatasetError(
                f"TaskReceiptDataset({kart_core.node_key(self.task)}) only accepts the KartReceipt of its own "
                f"completed task; got {type(data).__name__}."
            )

    def _exists(self) -> bool:
        return bool(self.task.complete())

    def preview(self) -> JSONPreview:
        """kedro-viz's preview panel: the task's class, label, parameters, unique id, output paths and state."""
        if isinstance(self.task, kart_core.TaskOnKart):
            return task_preview(self.task)
        return JSONPreview({"task": kart_core.node_key(self.task), "complete": bool(self.task.complete())})

    def _describe(self) -> dict[str, Any]:
        receipt = receipt_for(self.task, "")
        return {"task": receipt.node_key, "label": receipt.label, "filepath": ", ".join(receipt.paths)}
