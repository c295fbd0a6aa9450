"""to_pipeline(): a kart task graph as a Kedro Pipeline, one node per task, run through run_one.

Edges carry a small KartReceipt, not the data: kart tasks load their own inputs from the cache.
kart_kedro's hook declares each edge as a TaskReceiptDataset (persistent: the task's completeness),
or, without the hook, Kedro keeps receipts in memory. Name an edge with ``names=`` and declare it
in the catalog as a TaskOnKartDataset of the same task, and Kedro nodes can load the real output.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from kedro.pipeline import Pipeline, node

import kart_core
from kart_kedro._receipt import KartReceipt
from kart_kedro.receipt_dataset import receipt_for

__all__ = ["KartTaskNode", "to_pipeline", "node_label"]

logger = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^0-9A-Za-z_-]+")


class KartTaskNode:
    """A Kedro node function that runs one kart task through ``kart_core.run_one`` (picklable).

    Attributes:
        task: the kart task this node runs.
        edges: each dataset name of this node (its inputs and its output) with the task whose
            completion it stands for; kart_kedro's hook declares them from the pipeline it is given.
        upstream_runs_first: whether the node of each task this one requires runs before it in the current
            Kedro run. kart_kedro's ``before_pipeline_run`` hook sets it from the pipeline it is given; False
            (the default, also without the hook) makes the node check its upstreams' lineage before it runs.
    """

    def __init__(self, task: Any, edges: Mapping[str, Any] | None = None) -> None:
        self.task = task
        self.edges: dict[str, Any] = dict(edges or {})
        self.upstream_runs_first = False
        self.__name__ = f"run_{node_label(task)}"  # Kedro and kedro-viz show a function name.
        self.__annotations__: dict[str, Any] = {}  # Kedro's parameter type check reads them (none here)

    def __call__(self, *_receipts: Any) -> KartReceipt:
        """Run the task unless cached; upstream receipts only order the nodes.

        Run without its upstream nodes (``kedro run --nodes``, one Airflow task per node), a node whose task is
        built on an upstream that kart finds stale (``kart_core.stale_upstreams``) warns before it runs, as
        kart_airflow's operator does for an Airflow task cleared alone: its result is not current. With its
        upstream nodes in the run, each of them brings its own task up to date first, so no check is made (a
        lineage walk per node would cost a chain of n nodes n-squared manifest reads).
        """
        if not self.upstream_runs_first:
            behind = kart_core.stale_upstreams(self.task)
            if behind:
                logger.warning(
                    "%s is built on (or about to read) %s, stale: an upstream of it was committed again since with "
                    "other content, and its node is not in this run. This node's result is not current. Run this "
                    "node with its upstream nodes (kedro run --to-nodes=<this node>) to bring them up to date.",
                    self.task.kart_label(),
                    ", ".join(behind),
                )
        return receipt_for(self.task, kart_core.run_one(self.task).value)


def node_label(task: Any) -> str:
    """``Class_<first 8 of unique id>``: a readable, unique Kedro name for a kart task."""
    if hasattr(task, "make_unique_id"):
        return f"{type(task).__name__}_{kart_core.short_id(task.make_unique_id())}"
    return _UNSAFE.sub("_", str(task.task_id))


def to_pipeline(tasks: Any, names: Mapping[Any, str] | None = None, tags: Iterable[str] | None = None) -> Pipeline:
    """Turn the graph under ``tasks`` (one task or a list) into a Kedro Pipeline.

    Args:
        tasks: root kart task(s): one task, or a list, tuple or other iterable of them (a generator is read
            once); their upstreams are included.
        names: dataset names for chosen tasks' outputs (default ``<Class>_<id8>``), so that a
            catalog entry (a TaskOnKartDataset of the same task) can expose the data to Kedro nodes.
        tags: Kedro tags added to every node (e.g. to run the kart part with ``--tags``).
    """
    # One task, or any iterable of them (a generator too, read once), as kart_core.build and kart_airflow.to_dag take.
    roots = [tasks] if hasattr(tasks, "make_unique_id") or not isinstance(tasks, Iterable) else list(tasks)
    graph = kart_core.walk(roots)
    chosen = {kart_core.node_key(task): name for task, name in (names or {}).items()}
    labels = _unique_labels(graph)
    outputs = {key: chosen.get(key, labels[key]) for key in graph.order}
    nodes = [
        node(
            KartTaskNode(graph.nodes[key], {outputs[k]: graph.nodes[k] for k in [*graph.upstream[key], key]}),
            inputs=list(dict.fromkeys(outputs[dep] for dep in graph.upstream[key])) or None,
            outputs=outputs[key],
            name=labels[key],
            tags=list(tags or ()),
        )
        for key in graph.order
    ]
    return Pipeline(nodes)


def _unique_labels(graph: Any) -> dict[str, str]:
    labels = {key: node_label(graph.nodes[key]) for key in graph.order}
    if len(set(labels.values())) < len(labels):  # two ids share 8 characters: use the full keys
        labels = {key: _UNSAFE.sub("_", key) for key in graph.order}
    return labels
