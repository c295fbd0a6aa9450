"""build(): kart's local executor. Walks the graph once, runs what is missing through run_one.

No luigi scheduler and no process-wide logging changes: incomplete tasks run in dependency
order, sequentially or on a pool of threads or processes, and failures are gathered per task.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import gc
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal, TypeVar

import pluggy
from luigi import task_register

from kart_core import target_config
from kart_core.contract import is_kart_task
from kart_core.errors import GokartBuildError
from kart_core.graph import TaskGraph, walk
from kart_core.hashing import short_id
from kart_core.progress import Progress
from kart_core.runner import RunStatus, default_hook_manager, run_one
from kart_core.storage import listing_scope
from kart_core.task import config_frozen

__all__ = ["BuildResult", "build"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
Executor = Literal["thread", "process"]


@dataclasses.dataclass
class BuildResult:
    """What a build did, by node key."""

    ran: list[str] = dataclasses.field(default_factory=list)
    cached: list[str] = dataclasses.field(default_factory=list)
    failed: dict[str, BaseException] = dataclasses.field(default_factory=dict)
    not_run: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether every task is complete."""
        return not self.failed and not self.not_run

    def summary(self) -> str:
        """One line: counts of ran / cached / failed / not run, and the time."""
        return (
            f"kart build: {len(self.ran)} ran, {len(self.cached)} cached, {len(self.failed)} failed, "
            f"{len(self.not_run)} not run, in {self.seconds:.2f}s"
        )


def build(
    task: Any,
    return_value: bool = True,
    reset_register: bool = True,
    log_level: int = logging.ERROR,
    task_lock_exception_max_tries: int = 10,
    task_lock_exception_max_wait_seconds: int = 600,
    *,
    workers: int = 1,
    executor: Executor = "process",
    keep_going: bool = False,
    hook_manager: pluggy.PluginManager | None = None,
    progress: bool | None = None,
    lock: bool | None = None,
    **env_params: Any,
) -> Any:
    """Build ``task`` (or a list of tasks) and return its loaded output (a list of outputs for a list).

    Args:
        task: a TaskOnKart, or a list of them.
        return_value: load and return the output(s); None otherwise.
        reset_register: forget stale re-definitions of task classes (e.g. from notebooks).
        log_level: accepted for gokart compatibility; kart never changes logging globally.
        task_lock_exception_max_tries: accepted for gokart compatibility (kart's locks wait).
        task_lock_exception_max_wait_seconds: accepted for gokart compatibility.
        workers: how many tasks may run at once.
        executor: "process" (default; CPU-bound work) or "thread", used when workers > 1.
        keep_going: after a failure, go on with the tasks that do not depend on it.
        hook_manager: plugins to call; default: run logs and entry-point plugins.
        progress: redraw a status line on stderr (default: when it is a terminal and CI is unset);
            a summary line is printed at the end either way.
        lock: hold each task's lock while it runs, so concurrent builders (other processes, Kedro
            workers, Airflow) run it once; None: as each task says (should_lock_run or redis set).
        env_params: luigi.build keyword arguments, accepted and ignored (e.g. local_scheduler).

    Raises:
        GokartBuildError: listing every failed task with its unique id; the first failure is the cause.
    """
    roots = list(task) if isinstance(task, list | tuple) else [task]
    if reset_register:
        _drop_redefined_task_classes()
    manager = hook_manager if hook_manager is not None else default_hook_manager()
    # The signing key and other target settings are read once for the whole build.
    with target_config.frozen():
        # One pass decides what is complete: on object storage, one listing per directory instead of
        # one request per output. run_one checks each task again before running it.
        with _cyclic_gc_paused(), listing_scope(), config_frozen():
            graph = walk(roots, expand=_is_incomplete)
        display = Progress(total=len(graph), live=progress)
        result = execute(
            graph,
            workers=workers,
            executor=executor,
            keep_going=keep_going,
            hook_manager=manager,
            progress=display,
            lock=lock,
        )
        display.close(result.summary())
        manager.hook.kart_after_build(tasks=roots, result=result)
        if result.failed:
            raise _build_error(result)
        if not return_value:
            return None
        outputs = [load_output(root) for root in roots]
        return outputs if isinstance(task, list | tuple) else outputs[0]


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a graph is built; restore its state afterwards.

    Creating 100,000 task objects triggers repeated full collections that scan every one of them
    (a third of the walk's time); task objects form no garbage cycles that need collecting meanwhile.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _is_incomplete(task: Any) -> bool:
    return not task.complete()


def load_output(task: Any) -> Any:
    """Load a task's output(s), keeping the shape of ``output()`` (target, list, tuple or dict, nested)."""

    def load(item: Any) -> Any:
        if isinstance(item, dict):
            return {key: load(value) for key, value in item.items()}
        if isinstance(item, list | tuple):
            return [load(value) for value in item]
        return item.load()

    return load(task.kart_outputs() if is_kart_task(task) else task.output())


def execute(
    graph: TaskGraph,
    workers: int = 1,
    executor: Executor = "process",
    keep_going: bool = False,
    hook_manager: pluggy.PluginManager | None = None,
    progress: Progress | None = None,
    lock: bool | None = None,
) -> BuildResult:
    """Run the graph's incomplete (expanded) nodes in dependency order; complete ones count as cached."""
    started = time.perf_counter()
    result = BuildResult()
    display = progress if progress is not None else Progress(total=len(graph), live=False)
    pending = [key for key in graph.order if key in graph.expanded]
    result.cached.extend(key for key in graph.order if key not in graph.expanded)
    display.add_cached(len(result.cached))
    if workers <= 1:
        run = functools.partial(run_one, hook_manager=hook_manager, lock=lock)
        _execute_serially(graph, pending, result, keep_going, run, display)
    else:
        _execute_in_pool(graph, pending, result, workers, executor, keep_going, hook_manager, display, lock)
    result.seconds = time.perf_counter() - started
    return result


def _execute_serially(
    graph: TaskGraph,
    pending: list[str],
    result: BuildResult,
    keep_going: bool,
    run: Callable[[Any], RunStatus],
    display: Progress,
) -> None:
    blocked: set[str] = set()
    for index, key in enumerate(pending):
        if key in blocked or any(dep in blocked for dep in graph.upstream[key]):
            blocked.add(key)
            result.not_run.append(key)
            continue
        display.started(_label(key))
        try:
            status = run(graph.nodes[key])
        except Exception as exc:
            _record(result, display, key, exc)
            blocked.add(key)
            if not keep_going:
                result.not_run.extend(pending[index + 1 :])
                return
            continue
        _record(result, display, key, status)


def _record(result: BuildResult, display: Progress, key: str, outcome: RunStatus | BaseException) -> None:
    if isinstance(outcome, BaseException):
        result.failed[key] = outcome
        display.finished(_label(key), "failed")
        return
    (result.ran if outcome is RunStatus.RAN else result.cached).append(key)
    display.finished(_label(key), outcome.value)


def _label(key: str) -> str:
    name, _, unique_id = key.rpartition("_")
    return f"{name.rsplit('.', 1)[-1]}[{short_id(unique_id)}]"


def _run_in_worker(task: Any, lock: bool | None) -> RunStatus:
    # A worker process uses its own default hook manager (plugin objects do not travel).
    return run_one(task, lock=lock)


def _execute_in_pool(
    graph: TaskGraph,
    pending: list[str],
    result: BuildResult,
    workers: int,
    executor: Executor,
    keep_going: bool,
    manager: pluggy.PluginManager | None,
    display: Progress,
    lock: bool | None,
) -> None:
    waiting_on = {key: {dep for dep in graph.upstream[key] if dep in set(pending)} for key in pending}
    dependants: dict[str, list[str]] = {key: [] for key in pending}
    for key, deps in waiting_on.items():
        for dep in deps:
            dependants[dep].append(key)
    ready = [key for key in pending if not waiting_on[key]]
    ready.reverse()
    stopped = False
    pool_class = (
        concurrent.futures.ProcessPoolExecutor if executor == "process" else concurrent.futures.ThreadPoolExecutor
    )
    with pool_class(max_workers=workers) as pool:
        running: dict[concurrent.futures.Future[RunStatus], str] = {}
        while ready or running:
            while ready and not stopped and len(running) < workers:
                key = ready.pop()
                task = graph.nodes[key]
                if executor == "process":
                    future = pool.submit(_run_in_worker, task, lock)
                else:
                    future = pool.submit(run_one, task, manager, lock)
                running[future] = key
                display.started(_label(key))
            if not running:
                break
            finished, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in finished:
                key = running.pop(future)
                error = future.exception()
                _record(result, display, key, error if error is not None else future.result())
                if error is not None:
                    stopped = stopped or not keep_going
                    continue
                for child in dependants[key]:
                    waiting_on[child].discard(key)
                    if not waiting_on[child]:
                        ready.append(child)
    done = set(result.ran) | set(result.cached) | set(result.failed)
    result.not_run.extend(key for key in pending if key not in done)


def _build_error(result: BuildResult) -> GokartBuildError:
    lines = [f"{len(result.failed)} task(s) failed; {len(result.not_run)} not run because of them:"]
    raised: dict[str, list[Exception]] = {}
    for key, exc in result.failed.items():
        unique_id = key.rpartition("_")[2]
        lines.append(f"- {_label(key)} (unique id {unique_id}): {type(exc).__name__}: {exc}")
        raised.setdefault(unique_id, []).append(exc if isinstance(exc, Exception) else Exception(repr(exc)))
    error = GokartBuildError("\n".join(lines), raised_exceptions=raised)
    error.__cause__ = next(iter(result.failed.values()))
    return error


def _drop_redefined_task_classes() -> None:
    """Keep only the latest definition of a task class redefined under the same module and name.

    gokart empties luigi's registry instead, which breaks later lookups by name.
    """
    latest: dict[tuple[str, str], type] = {}
    for cls in task_register.Register._reg:
        latest[(cls.__module__, cls.__qualname__)] = cls
    keep = set(map(id, latest.values()))
    task_register.Register._reg = [cls for cls in task_register.Register._reg if id(cls) in keep]
