"""build(): gokart's entry point, on kart's own orchestration (no luigi scheduler).

``orchestrate`` walks the graph once and runs what is missing through ``run_one``, sequentially or
on a pool of threads or processes, gathering failures per task; build() turns them into one
``GokartBuildError`` and loads the outputs. No process-wide logging changes.
"""

from __future__ import annotations

import logging
from typing import Any

import pluggy
from luigi import task_register

from kart_core.contract import LuigiTask, is_kart_task
from kart_core.errors import GokartBuildError
from kart_core.executor import Executor, execute
from kart_core.orchestrate import orchestrate
from kart_core.outcome import BuildResult, unique_id_or_none

__all__ = ["BuildResult", "Executor", "build", "execute", "load_output"]

logger = logging.getLogger(__name__)


def build(
    task: LuigiTask | list[LuigiTask] | tuple[LuigiTask, ...],
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
        GokartBuildError: listing every failed task with its label and unique id (the class name when
            the id cannot be computed); ``__cause__`` is the first failure. An exception, ``SystemExit``
            included, from a task's ``complete()``, ``output()``, ``requires()`` or ``run()`` ends here.
        KeyboardInterrupt: a task's ``run()`` was interrupted; raised after the summary line and the
            hooks, naming the task, with the original interrupt as ``__cause__``.
    """
    roots: list[LuigiTask] = list(task) if isinstance(task, list | tuple) else [task]
    if reset_register:
        _drop_redefined_task_classes()
    result = orchestrate(
        roots,
        workers=workers,
        executor=executor,
        keep_going=keep_going,
        hook_manager=hook_manager,
        progress=progress,
        lock=lock,
    )
    if result.failed:
        raise _build_error(result)
    if not return_value:
        return None
    outputs = [load_output(root) for root in roots]
    return outputs if isinstance(task, list | tuple) else outputs[0]


def load_output(task: LuigiTask) -> Any:
    """Load a task's output(s), keeping the shape of ``output()`` (target, list, tuple or dict, nested)."""

    def load(item: Any) -> Any:
        if isinstance(item, dict):
            return {key: load(value) for key, value in item.items()}
        if isinstance(item, list | tuple):
            return [load(value) for value in item]
        return item.load()

    return load(task.kart_outputs() if is_kart_task(task) else task.output())


def _build_error(result: BuildResult) -> GokartBuildError:
    """One error for the whole build: each failure with its task's label and unique id; the first is the cause."""
    lines = [f"{len(result.failed)} task(s) failed; {len(result.not_run)} not run because of them:"]
    raised: dict[str, list[Exception]] = {}
    for key, exc in result.failed.items():
        when = " while the graph was walked (complete(), output() or requires() raised)"
        lines.append(f"- {result.describe(key)}{when if key in result.scheduling_failed else ''}: {_one_line(exc)}")
        task = result.nodes.get(key)
        unique_id = unique_id_or_none(task) if task is not None else None
        raised.setdefault(unique_id or key, []).append(exc if isinstance(exc, Exception) else Exception(repr(exc)))
    error = GokartBuildError("\n".join(lines), raised_exceptions=raised)
    error.__cause__ = next(iter(result.failed.values()))
    return error


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _drop_redefined_task_classes() -> None:
    """Keep only the latest definition of a task class redefined under the same module and name.

    gokart empties luigi's registry instead, which breaks later lookups by name.
    """
    latest: dict[tuple[str, str], type] = {}
    for cls in task_register.Register._reg:
        latest[(cls.__module__, cls.__qualname__)] = cls
    keep = set(map(id, latest.values()))
    task_register.Register._reg = [cls for cls in task_register.Register._reg if id(cls) in keep]
