"""Kedro runners that give nodes kart's cache: sequential, threads and processes.

No Kedro hook can skip a node (``before_node_run`` runs after the inputs are loaded and can only
replace them), so the cache lives in runners, chosen per run:

    kedro run --runner kart_kedro.KartRunner
    kedro run --runner kart_kedro.KartThreadRunner --runner-params max_workers=4
    kedro run --runner kart_kedro.KartParallelRunner --runner-params max_workers=4

Each node becomes a KedroNodeRun kart task whose id covers the node's code (kart_core.code_fingerprint's CodeFingerprinter),
parameters and inputs; the runner's process decides, in dependency order, whether it is served
from the cache or run (pipeline_run.py), and the executor runs what must run (node_work.py).
"""

from __future__ import annotations

import gc
import heapq
import logging
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any

from kedro.framework.hooks.manager import _NullPluginManager
from kedro.io import DataCatalog
from kedro.pipeline import Pipeline
from kedro.runner import ParallelRunner, SequentialRunner, ThreadRunner

import kart_core
from kart_kedro.log_markup import plain_kart_logs
from kart_kedro.memory_dataset import copy_modes_told
from kart_kedro.pipeline_io import pipeline_io
from kart_kedro.pipeline_run import NO_CACHE_TAG, PLAIN, PipelineRun
from kart_kedro.summary import summary_line

__all__ = ["KartParallelRunner", "KartRunner", "KartThreadRunner", "NO_CACHE_TAG"]

logger = logging.getLogger("kart_kedro")


def _make_visible() -> None:
    """Show kart's INFO lines under Kedro's default logging (which sets only ``kedro`` to INFO).

    Only when nothing configured the ``kart_kedro`` logger: a project's logging.yml still decides.
    """
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)


class _CachingRunner:
    """What the three kart runners share: options, the scheduling loop and the summary."""

    workspace_directory: str | None
    code_packages: tuple[str, ...]
    last_run: dict[str, str]
    last_reasons: dict[str, str]

    def _init_cache(self, workspace_directory: str | None, code_packages: str | Iterable[str] | None) -> None:
        self.workspace_directory = workspace_directory
        if isinstance(code_packages, str):  # --runner-params code_packages=a;b arrives as one string
            code_packages = [part for part in code_packages.replace(";", ",").split(",") if part.strip()]
        self.code_packages = tuple(part.strip() for part in code_packages or ())
        self.last_run = {}
        self.last_reasons = {}
        _make_visible()

    def run(
        self,
        pipeline: Pipeline,
        catalog: Any,
        hook_manager: Any = None,
        run_id: str | None = None,
        only_missing_outputs: bool = False,
    ) -> dict[str, Any]:
        """Kedro's ``AbstractRunner.run``, refusing ``only_missing_outputs`` (see the error text).

        Raises:
            ValueError: when ``only_missing_outputs`` is set.
        """
        if only_missing_outputs:
            raise ValueError(
                f"{type(self).__name__} does not take --only-missing-outputs: that option skips every node "
                "whose outputs exist, even when its code, parameters or inputs changed, so it would hand back "
                f"stale results. {type(self).__name__} already skips each node whose code, parameters and "
                "inputs are unchanged, and writes back outputs that are missing. Drop the option."
            )
        if not self._defer_runtime_datasets:
            return super().run(pipeline, catalog, hook_manager, run_id)  # type: ignore[misc, no-any-return]
        return self._run_deferring_runtime_datasets(pipeline, catalog, hook_manager, run_id)

    # Kedro's run() first creates a dataset for every name of the pipeline, including the memory
    # datasets of its default runtime pattern (a few ms each: Kedro resolves the dataset type by
    # trying imports). A cached run never needs most of them; PipelineRun creates each one only
    # when something is saved under that name. ParallelRunner needs them all up front (it hands
    # them its multiprocessing manager), so KartParallelRunner keeps Kedro's warm-up.
    _defer_runtime_datasets = True

    def _run_deferring_runtime_datasets(
        self, pipeline: Pipeline, catalog: Any, hook_manager: Any, run_id: str | None
    ) -> dict[str, Any]:
        """Kedro 1.7.0's ``AbstractRunner.run`` with only the declared and pattern-matched datasets created up front.

        Raises:
            ValueError: a pipeline input is neither in the catalog nor matched by one of its patterns (as Kedro).
        """
        # Kedro's Pipeline.datasets()/inputs()/outputs() walk every node's datasets on each call (inputs
        # and outputs ~1.5 ms each for 200 nodes): computed together once per run (pipeline_io), for this
        # check, the run (PipelineRun) and the result.
        datasets, inputs, outputs = pipeline_io(pipeline)
        declared = _in_catalog(datasets, catalog)
        for name in declared:
            catalog.get(name)
        missing = inputs - declared
        if missing:
            raise ValueError(f"Pipeline input(s) {missing} not found in the {type(catalog).__name__}")
        self._pipeline_io = (pipeline, inputs, outputs, declared)
        try:
            # The pipeline's inputs are never saved during the run: their MemoryDatasets (parameters) copy each load
            # with the mode Kedro would infer, told once (memory_dataset.copy_modes_told), not tried per load.
            with copy_modes_told(catalog.get(name) for name in inputs):
                self._run(pipeline, catalog, hook_manager or _NullPluginManager(), run_id)  # type: ignore[attr-defined]
        finally:
            self._pipeline_io = None
        return {name: catalog[name] for name in outputs}

    # (pipeline, inputs, outputs, the datasets the catalog held or matched when the run started) of the run under way
    _pipeline_io: tuple[Pipeline, set[str], set[str], set[str]] | None = None

    def _kart_run(
        self, pipeline: Pipeline, catalog: Any, hook_manager: Any, run_id: str | None, pool: Any, key_hooks: Any = None
    ) -> None:
        known = self._pipeline_io
        inputs, outputs, declared = known[1:] if known is not None and known[0] is pipeline else (None, None, None)
        run = PipelineRun(
            pipeline,
            catalog,
            inputs=inputs,
            outputs=outputs,
            declared=declared,
            workspace_directory=self.workspace_directory,
            project=_package_name(),
            code_packages=self.code_packages,
            is_async=self._is_async,  # type: ignore[attr-defined]
            hook_manager=hook_manager,
            run_id=run_id,
            inline=pool is None,
            key_hooks=key_hooks,
        )
        try:
            # luigi's config and the output settings (signing, verify, integrity record) read once for the
            # run, as one kart build does, not once per node run created or run, nor per cached output
            # handed back at the end.
            with kart_core.config_frozen(), kart_core.target_config_frozen(), plain_kart_logs():
                _schedule(pipeline, run, pool)
                run.restore_pipeline_outputs()
        except Exception:
            done = [node for node in pipeline.nodes if node.name in run.statuses]
            self._suggest_resume_scenario(pipeline, done, catalog)  # type: ignore[attr-defined]
            raise
        finally:
            run.save_records()
            self.last_run, self.last_reasons = dict(run.statuses), dict(run.reasons)
        logger.info(summary_line(run.statuses, run.reasons), extra=PLAIN)


def _schedule(pipeline: Pipeline, run: PipelineRun, pool: Any) -> None:
    """Decide each node as soon as its upstream nodes are done; run what must run on ``pool`` (or inline).

    Ready nodes are taken in the pipeline's order. Nodes are tracked by their position in it: Kedro's
    ``Node.__hash__`` hashes the node's key tuple on every dictionary look-up.
    """
    nodes = pipeline.nodes
    position = {node: index for index, node in enumerate(nodes)}
    waiting = [0] * len(nodes)
    children: list[list[int]] = [[] for _ in nodes]
    for node, parents in pipeline.node_dependencies.items():
        index = position[node]
        waiting[index] = len(parents)
        for parent in parents:
            children[position[parent]].append(index)
    ready = [index for index, count in enumerate(waiting) if count == 0]  # a heap: the earliest first
    futures: dict[Future[Any], int] = {}

    def done(index: int, result: Any) -> None:
        run.finish(nodes[index], result)
        for child in children[index]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, child)

    collector = _Collector() if pool is None else None  # inline: nothing but this loop runs the nodes' code
    try:
        if collector is not None:
            collector.pause()
        while ready or futures:
            while ready:
                index = heapq.heappop(ready)
                work = run.prepare(nodes[index])
                if work is None:
                    done(index, None)
                elif collector is not None:
                    collector.resume(age=False)  # the node's own code runs with the collector as the caller had it
                    try:
                        result = work()
                    finally:
                        collector.pause()
                    done(index, result)
                else:
                    futures[pool.submit(work)] = index
            if futures:
                finished, _ = wait(futures, return_when=FIRST_COMPLETED)
                for future in finished:
                    index = futures.pop(future)
                    done(index, future.result())
    finally:
        if collector is not None:
            collector.resume(age=True)
    if any(waiting):
        raise kart_core.errors.AdapterError(
            f"KartRunner could not schedule nodes: {sorted(nodes[i].name for i, count in enumerate(waiting) if count)}"
        )


class _Collector:
    """Pauses Python's cyclic garbage collector while KartRunner decides nodes (``PipelineRun.prepare`` and
    ``finish``: keys, checks, records), and resumes it around each node that runs and when the run ends, as
    ``kart_core``'s build walk pauses it (``orchestrate._cyclic_gc_paused``).

    Deciding a node leaves objects alive (its key parts, its manifest's parse, luigi's instance of its node run): the
    young generation's collections scanned them again and again, 7-9 of them in a fully cached 200-node run and 16
    (with one of the middle generation) in a first run, none in SequentialRunner's (``gc.callbacks``, session 22).
    When the run ends, what was made meanwhile goes to the oldest generation unscanned (``gc.freeze``, then
    ``gc.unfreeze``; skipped while the program holds frozen objects of its own, which must stay frozen): full
    collections still scan it. Before a node runs the collector is only enabled again, so the garbage of the node's
    own code (and of the nodes before it) is collected as usual between nodes. Every object that is not in a
    reference cycle is freed as before, when its last reference goes. Only what this pause disabled is enabled
    again: a caller's (or a node's) disabled collector stays disabled. A node a decision runs again at once (a damaged
    cache entry, a run another session committed first) runs with it paused, as code in kart_core's walk does. Not
    used with a pool: other threads run nodes meanwhile (the collector is the process's).
    """

    __slots__ = ("paused",)

    def __init__(self) -> None:
        self.paused = False

    def pause(self) -> None:
        """Disable the collector if it is enabled (and remember doing so)."""
        if gc.isenabled():
            gc.disable()
            self.paused = True

    def resume(self, age: bool) -> None:
        """Enable the collector again if ``pause`` disabled it; ``age``: first move what is in the younger
        generations to the oldest one, unscanned (the run's end)."""
        if not self.paused:
            return
        self.paused = False
        if age and gc.get_freeze_count() == 0:
            gc.freeze()
            gc.unfreeze()
        gc.enable()


def _in_catalog(names: set[str], catalog: Any) -> set[str]:
    """``{name for name in names if name in catalog}``: the names the catalog holds, or matches by a dataset or
    catch-all pattern (Kedro's ``DataCatalog.__contains__``).

    Without such patterns (the catalog's resolver holds none: Kedro 1.x's ``_dataset_patterns`` and
    ``_user_catch_all_pattern`` both empty) that is the names it holds (``keys()``): Kedro's check tries both
    pattern sets per name (1-2 us for each name it does not hold, a pipeline's memory datasets; 0.3 ms per run of
    the 200-node bench). Where the resolver does not say (another Kedro), or a catalog class checks names its own
    way, each name is asked.
    """
    if type(catalog).__contains__ is DataCatalog.__contains__:  # a subclass with a check of its own: asked as is
        resolver = catalog.config_resolver
        patterns = getattr(resolver, "_dataset_patterns", None), getattr(resolver, "_user_catch_all_pattern", None)
        if patterns == ({}, {}):
            return names.intersection(catalog.keys())
    return {name for name in names if name in catalog}


def _hook_manager(hook_manager: Any) -> Any:
    # Kedro's Task needs a manager outside worker processes. Without a session's, Kedro's runners use
    # their do-nothing manager (AbstractRunner.run): so does kart. An empty pluggy manager would cost
    # six hook calls per node for no plugin.
    return hook_manager if hook_manager is not None else _NullPluginManager()


class KartRunner(_CachingRunner, SequentialRunner):
    """Runs nodes one after the other, skipping those whose code, parameters and inputs are unchanged."""

    def __init__(
        self,
        workspace_directory: str | None = None,
        is_async: bool = False,
        code_packages: str | Iterable[str] | None = None,
    ) -> None:
        """Args:
        workspace_directory: where node outputs and run logs are cached; default: kart's
            (``[TaskOnKart] workspace_directory`` in luigi config, ``KART_WORKSPACE``, else ./resources/).
        is_async: load and save each node's data with threads (as SequentialRunner).
        code_packages: more top-level packages whose code the fingerprint follows (besides the node's
            own package, the project package, editable installs and modules installed by nobody);
            a list, or one string ``"pkg_a;pkg_b"`` from ``--runner-params``.
        """
        super().__init__(is_async=is_async)
        self._init_cache(workspace_directory, code_packages)

    def _run(self, pipeline: Pipeline, catalog: Any, hook_manager: Any = None, run_id: str | None = None) -> None:
        self._kart_run(pipeline, catalog, _hook_manager(hook_manager), run_id, None)


class _PoolCachingRunner(_CachingRunner):
    """The constructor KartThreadRunner and KartParallelRunner share: Kedro's pool options, then kart's."""

    def __init__(
        self,
        max_workers: int | None = None,
        is_async: bool = False,
        workspace_directory: str | None = None,
        code_packages: str | Iterable[str] | None = None,
    ) -> None:
        """Args: as KartRunner; ``max_workers`` as Kedro's ThreadRunner / ParallelRunner (default: from the
        pipeline and CPUs)."""
        super().__init__(max_workers=max_workers, is_async=is_async)  # type: ignore[call-arg]
        self._init_cache(workspace_directory, code_packages)


class KartThreadRunner(_PoolCachingRunner, ThreadRunner):
    """Runs nodes in threads (as ThreadRunner), skipping those whose code, parameters and inputs are unchanged."""

    def _run(self, pipeline: Pipeline, catalog: Any, hook_manager: Any = None, run_id: str | None = None) -> None:
        with self._get_executor(self._get_required_workers_count(pipeline)) as pool:
            self._kart_run(pipeline, catalog, _hook_manager(hook_manager), run_id, pool)


class KartParallelRunner(_PoolCachingRunner, ParallelRunner):
    """Runs nodes in processes (as ParallelRunner), skipping those whose code, parameters and inputs are unchanged.

    Decisions and cache reads happen in the runner's process; a node that must run is run and
    cached inside a worker process, so its data never travels back.
    """

    _defer_runtime_datasets = False

    def _run(self, pipeline: Pipeline, catalog: Any, hook_manager: Any = None, run_id: str | None = None) -> None:
        self._validate_catalog(catalog)
        self._validate_nodes(pipeline.nodes)
        self._set_manager_datasets(catalog)
        with self._get_executor(self._get_required_workers_count(pipeline)) as pool:
            # Worker processes build their own hook manager from the project settings (as ParallelRunner); the
            # session's counts in the keys, as the hooks the workers run (attacker at12 A5).
            self._kart_run(pipeline, catalog, None, run_id, pool, key_hooks=hook_manager)


def _package_name() -> str:
    from kedro.framework.project import PACKAGE_NAME

    return PACKAGE_NAME or ""
