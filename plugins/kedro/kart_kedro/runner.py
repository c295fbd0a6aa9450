"""KartRunner: a Kedro runner that gives nodes kart's cache.

No Kedro hook can skip a node (hooks only observe, or replace inputs), so the cache lives in a
runner: ``kedro run --runner kart_kedro.KartRunner``. Nodes run in topological order; each
becomes a KedroNodeRun kart task whose id covers the node's code, parameters and inputs, and
``kart_core.run_one`` decides: cached (outputs loaded from the kart cache) or run.
"""

from __future__ import annotations

import inspect
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

import pluggy
from kedro.framework.hooks import _create_hook_manager, hook_impl
from kedro.pipeline import Pipeline
from kedro.runner import SequentialRunner, Task

import kart_core
from kart_kedro._receipt import KartReceipt
from kart_kedro.dataset import TaskOnKartDataset
from kart_kedro.fingerprint import digest, function_digest
from kart_kedro.node_cache import KedroNodeRun
from kart_kedro.pipeline import KartTaskNode
from kart_kedro.receipt_dataset import TaskReceiptDataset

__all__ = ["KartRunner", "NO_CACHE_TAG"]

logger = logging.getLogger(__name__)

NO_CACHE_TAG = "kart_no_cache"


class KartRunner(SequentialRunner):
    """Runs a Kedro pipeline sequentially, skipping nodes whose code, parameters and inputs are unchanged."""

    def __init__(self, workspace_directory: str | None = None, is_async: bool = False) -> None:
        """Args:
        workspace_directory: where node outputs and run logs are cached; default: kart's
            (``[TaskOnKart] workspace_directory`` in luigi config, else ./resources/).
        is_async: load and save each node's data with threads (as SequentialRunner).
        """
        super().__init__(is_async=is_async)
        self.workspace_directory = workspace_directory
        self.last_run: dict[str, str] = {}

    def _run(self, pipeline: Pipeline, catalog: Any, hook_manager: Any = None, run_id: str | None = None) -> None:
        if not isinstance(hook_manager, pluggy.PluginManager):  # Kedro's null manager: outputs need a real one
            hook_manager = _create_hook_manager()
        run = _CachedPipelineRun(self, pipeline, catalog, hook_manager, run_id)
        hook_manager.register(run.capture)
        try:
            for node in pipeline.nodes:
                run.process(node)
            run.restore_pipeline_outputs()
        finally:
            hook_manager.unregister(run.capture)
        self.last_run = run.statuses
        logger.info("kart: %d node(s) ran, %d cached", *_count(run.statuses))

    def task_kwargs(self) -> dict[str, Any]:
        """Constructor arguments shared by every KedroNodeRun of this runner."""
        return {} if self.workspace_directory is None else {"workspace_directory": self.workspace_directory}


class _OutputCapture:
    """A Kedro hook plugin that keeps each node's outputs as the node returned them."""

    def __init__(self) -> None:
        self.outputs: dict[str, dict[str, Any]] = {}

    @hook_impl
    def after_node_run(self, node: Any, outputs: dict[str, Any]) -> None:
        """Remember the outputs until the node's KedroNodeRun caches them."""
        self.outputs[node.name] = outputs


class _CachedPipelineRun:
    """The state of one KartRunner run: node runs by node, data digests, outputs not yet in the catalog."""

    def __init__(
        self, runner: KartRunner, pipeline: Pipeline, catalog: Any, hook_manager: Any, run_id: str | None
    ) -> None:
        self.runner, self.pipeline, self.catalog = runner, pipeline, catalog
        self.hook_manager, self.run_id = hook_manager, run_id
        self.capture = _OutputCapture()
        self.producer = {name: node.name for node in pipeline.nodes for name in node.outputs}
        self.tasks: dict[str, KedroNodeRun] = {}
        self.digests: dict[str, str] = {}
        self.pending: dict[str, Callable[[], Any]] = {}  # cached outputs loaded only if a running node needs them
        self.statuses: dict[str, str] = {}
        self.load_counts = Counter(name for node in pipeline.nodes for name in node.inputs)
        self.kept = pipeline.inputs() | pipeline.outputs()  # never released: the caller's data

    def process(self, node: Any) -> None:
        """Run or skip one node, then release the memory data nobody else needs."""
        if not _cacheable(node):
            outputs = self.execute(node)
            self.statuses[node.name] = _kart_status(outputs) or "ran uncached"
            logger.info("kart: node %r %s", node.name, self.statuses[node.name])
        else:
            self.run_through_kart(node)
        self.release(node)

    def run_through_kart(self, node: Any) -> None:
        task = self.task_for(node)
        task.kedro_execute = lambda: self.execute(node)
        try:
            status = kart_core.run_one(task)
        finally:
            task.kedro_execute = None  # luigi caches task instances: do not keep this run's catalog alive
        self.tasks[node.name] = task
        self.statuses[node.name] = status.value
        logger.info("kart: node %r %s (%s)", node.name, status.value, task.kart_label())
        if status is kart_core.RunStatus.CACHED:
            self.offer_cached_outputs(task)

    def task_for(self, node: Any) -> KedroNodeRun:
        """The KedroNodeRun naming this node's code, parameters and inputs."""
        params = {name: self.catalog.load(name) for name in node.inputs if _is_parameter(name)}
        upstream, external = [], {}
        for name in node.inputs:
            if _is_parameter(name):
                continue
            if self.producer.get(name) in self.tasks:
                upstream.append(self.tasks[self.producer[name]].make_unique_id())
            else:
                external[name] = self.data_digest(name)
        fields: dict[str, Any] = {
            "project": _package_name(),
            "node_name": node.name,
            "code": function_digest(node.func),
            "parameters": digest(params),
            "data": digest(external),
            "inputs": list(node.inputs),
            "outputs": list(node.outputs),
            "upstream": upstream,
        }
        return KedroNodeRun(**fields, **self.runner.task_kwargs())

    def data_digest(self, name: str) -> str:
        """The content digest of an input that no cached node of this run produced (computed once)."""
        if name not in self.digests:
            dataset = self.catalog.get(name)
            if isinstance(dataset, TaskOnKartDataset | TaskReceiptDataset):  # named by its task's unique id
                self.digests[name] = digest(["kart", kart_core.node_key(dataset.task)])
            else:
                self.restore(name)
                self.digests[name] = digest(self.catalog.load(name))
        return self.digests[name]

    def execute(self, node: Any) -> dict[str, Any]:
        """Run the node the Kedro way (hooks, catalog loads and saves); return its outputs."""
        for name in node.inputs:
            self.restore(name)
        Task(
            node=node,
            catalog=self.catalog,
            is_async=self.runner._is_async,
            hook_manager=self.hook_manager,
            run_id=self.run_id,
        ).execute()
        return self.capture.outputs.pop(node.name, {})

    def offer_cached_outputs(self, task: KedroNodeRun) -> None:
        """Write a cached node's persistent outputs now (files stay current); keep memory ones for later."""
        for name, target in task.output().items():
            if name not in task.outputs:
                continue
            self.pending[name] = target.load
            if not getattr(self.catalog.get(name), "_EPHEMERAL", False):
                self.restore(name)

    def restore(self, name: str) -> None:
        """Put a cached output into the catalog if it is still only in the kart cache."""
        loader = self.pending.pop(name, None)
        if loader is not None:
            self.catalog.save(name, loader())

    def restore_pipeline_outputs(self) -> None:
        """Hand the caller every pipeline output, cached or not."""
        for name in self.pipeline.outputs():
            self.restore(name)

    def release(self, node: Any) -> None:
        """Free memory datasets once every node reading them is done."""
        for name in node.inputs:
            self.load_counts[name] -= 1
            if self.load_counts[name] < 1 and name not in self.kept:
                self.catalog.release(name)


def _cacheable(node: Any) -> bool:
    # A kart task node is cached by kart itself (run_one); a generator node streams, nothing to keep.
    if isinstance(node.func, KartTaskNode) or inspect.isgeneratorfunction(node.func):
        return False
    return NO_CACHE_TAG not in node.tags


def _kart_status(outputs: dict[str, Any]) -> str | None:
    """What run_one did for a kart task node (from its receipt), None for other nodes."""
    receipts = [value for value in outputs.values() if isinstance(value, KartReceipt)]
    return receipts[0].status if receipts else None


def _is_parameter(name: str) -> bool:
    return name == "parameters" or name.startswith("params:")


def _package_name() -> str:
    from kedro.framework.project import PACKAGE_NAME

    return PACKAGE_NAME or ""


def _count(statuses: dict[str, str]) -> tuple[int, int]:
    cached = sum(1 for status in statuses.values() if status == kart_core.RunStatus.CACHED.value)  # run_one's word
    return len(statuses) - cached, cached
