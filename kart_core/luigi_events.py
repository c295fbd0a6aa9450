"""What luigi's worker gives a task around its run, which gokart projects rely on: events and reporter callbacks.

luigi's worker (``luigi.worker.TaskProcess.run``, luigi 3.x) fires a task's event handlers around ``run()``:
``Event.START`` before it, then on success ``Event.PROCESSING_TIME`` (the task and the seconds it took),
``task.on_success()`` and ``Event.SUCCESS``; on failure ``Event.FAILURE`` (the task and the exception) and
``task.on_failure(exception)``. Handlers registered with ``@Task.event_handler(luigi.Event.SUCCESS)`` (alerts,
audit logs, metrics) and overridden ``on_success``/``on_failure`` therefore run under kart too, once per run of
the task, whichever scheduler runs it (``run_one``). luigi's own ``trigger_event`` logs a handler that raises and
goes on, as in luigi. Under ``luigi.build`` luigi's worker fires them itself around the task's ``run()``, which
``run_one`` runs: that run fires none (``fired_by_caller``), so each fires once.

luigi's worker also fires events while it walks the graph (``Worker._add``, luigi 3.x): ``DEPENDENCY_PRESENT``
for a task found complete; ``DEPENDENCY_MISSING`` for an incomplete external task (no ``run()``) or a task whose
``complete()`` raised; ``DEPENDENCY_DISCOVERED`` (the task, the upstream) for each upstream of a task found
incomplete; ``BROKEN_TASK`` (the task, the exception) for a task whose ``requires()`` raised. kart's walk
(``kart_core.orchestrate``) fires them through ``WalkEvents``, once per task (and upstream) per build.

While ``run()`` executes, luigi's worker sets the task's ``set_status_message``, ``set_progress_percentage`` and
``set_tracking_url`` to its status reporter's methods (they are None otherwise, so a call outside a luigi worker
raised ``TypeError``); here each logs what it was given at INFO (no central scheduler shows it).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
from collections.abc import Iterator
from typing import Any

import luigi

__all__ = ["WalkEvents", "failed", "fired_by_caller", "reporter_callbacks", "started", "succeeded"]

logger = logging.getLogger(__name__)

# The task whose events its caller fires (luigi's worker called its run(), kart_core.task._routed): its run_one
# fires none. A context variable: a build nested in that run(), or run in threads it starts, fires its own.
_CALLER_FIRES: contextvars.ContextVar[object] = contextvars.ContextVar("kart_luigi_events_caller", default=None)


@contextlib.contextmanager
def fired_by_caller(task: Any) -> Iterator[None]:
    """While the body runs, ``task``'s events are its caller's to fire (luigi's worker, which called ``run()``)."""
    token = _CALLER_FIRES.set(task)
    try:
        yield
    finally:
        _CALLER_FIRES.reset(token)


def _mine(task: Any) -> bool:
    return _CALLER_FIRES.get() is not task


# The task attributes luigi's worker sets around run() (TaskProcess.forward_reporter_attributes' values).
_REPORTED = ("set_tracking_url", "set_status_message", "set_progress_percentage")


def started(task: Any) -> None:
    """Fire ``Event.START`` for ``task`` (just before its ``run()`` is first called)."""
    if _mine(task):
        task.trigger_event(luigi.Event.START, task)


def succeeded(task: Any, seconds: float) -> None:
    """After ``task``'s run committed: ``Event.PROCESSING_TIME`` with ``seconds`` (wall seconds of the run),
    ``task.on_success()``, then ``Event.SUCCESS``, in luigi's order.

    Raises:
        Exception: what ``on_success()`` raised (luigi fails the task then too).
    """
    if not _mine(task):
        return
    task.trigger_event(luigi.Event.PROCESSING_TIME, task, seconds)
    task.on_success()
    task.trigger_event(luigi.Event.SUCCESS, task)


def failed(task: Any, exception: BaseException) -> None:
    """After ``task``'s run raised ``exception``: ``Event.FAILURE``, then ``task.on_failure(exception)``.

    An exception raised by ``on_failure`` itself is logged, not raised: the run's own error is the one reported.
    """
    if not _mine(task):
        return
    task.trigger_event(luigi.Event.FAILURE, task, exception)
    try:
        task.on_failure(exception)
    except Exception:
        logger.exception("%s.on_failure raised while handling %r", task, exception)


class reporter_callbacks:  # noqa: N801 - used as a function: ``with reporter_callbacks(task, label):``
    """While the body runs, ``task``'s luigi reporter callbacks log at INFO (the ones the task left None).

    Also sets ``decrease_running_resources`` (nothing to decrease: kart does not schedule by luigi's
    resources), as luigi's worker sets it; all back to None after. The callbacks pickle (a task may be sent
    to a child process while it runs). A class, not a ``contextlib.contextmanager``: every task run enters it.
    """

    __slots__ = ("_label", "_set_here", "_task")

    def __init__(self, task: Any, label: str) -> None:
        self._task, self._label = task, label
        self._set_here: list[str] = []

    def __enter__(self) -> None:
        task, label = self._task, self._label
        for name, what in _CALLBACKS:
            if getattr(task, name, None) is None:
                setattr(task, name, functools.partial(_report, label, what))
                self._set_here.append(name)

    def __exit__(self, *_exc: object) -> None:
        for name in self._set_here:
            setattr(self._task, name, None)


# The reporter callbacks run() gets (luigi's worker sets them around run()), and what each logs.
_CALLBACKS = (
    ("set_tracking_url", "tracking URL %s"),
    ("set_status_message", "status: %s"),
    ("set_progress_percentage", "progress %s%%"),
    ("decrease_running_resources", "would release resources %s"),
)


def _report(label: str, what: str, value: object) -> None:
    logger.info("%s: " + what, label, value)


def _walk_handlers() -> bool:
    """Whether any luigi event handler is registered (then the walk's events are worth tracking). luigi keeps an
    empty set behind after ``remove_event_handler``: that counts as none."""
    return any(callbacks for handlers in luigi.Task._event_callbacks.values() for callbacks in handlers.values())


class WalkEvents:
    """The events luigi's worker fires while it walks the graph (``Worker._add``), fired by kart's walk.

    One per build: each event fires once per task (by ``task_id``), and ``DEPENDENCY_DISCOVERED`` once per task
    and upstream, however often later rounds of the build walk the graph again. Nothing is tracked while no
    luigi event handler is registered (a 100,000-task walk pays one dict check per call). A handler that
    raises is logged by luigi's ``trigger_event`` and the walk goes on, as in luigi.
    """

    def __init__(self) -> None:
        self._fired: set[tuple[str, ...]] = set()
        self._complete: set[str] = set()  # task ids complete() found complete: luigi discovers no upstream of them
        self._judged: set[str] = set()  # task ids whose complete() was asked (or raised), while handlers are registered

    @property
    def active(self) -> bool:
        """Whether any luigi event handler is registered (else every call here does nothing)."""
        return _walk_handlers()

    def judged_before(self, task: Any) -> bool | None:
        """What ``complete()`` said of ``task`` earlier in the build (True / False), or None if it was not asked."""
        if task.task_id not in self._judged:
            return None
        return task.task_id in self._complete

    def judged(self, task: Any, complete: bool) -> None:
        """``task.complete()`` returned ``complete``: ``DEPENDENCY_PRESENT``, or for an incomplete external task
        ``DEPENDENCY_MISSING``."""
        if not _walk_handlers():
            return
        self._judged.add(task.task_id)
        if complete:
            self._complete.add(task.task_id)
            self._once(task, luigi.Event.DEPENDENCY_PRESENT)
        elif _is_external(task):
            self._once(task, luigi.Event.DEPENDENCY_MISSING)

    def discovered(self, task: Any, upstreams: list[Any]) -> None:
        """The walk asked ``task`` for ``upstreams``: ``DEPENDENCY_DISCOVERED`` (task, upstream) for each, when
        ``complete()`` found ``task`` incomplete and it is no external task (luigi asks no other task)."""
        if not _walk_handlers() or task.task_id in self._complete or _is_external(task):
            return
        for upstream in upstreams:
            self._once(task, luigi.Event.DEPENDENCY_DISCOVERED, upstream)

    def complete_raised(self, task: Any) -> None:
        """``task.complete()`` raised: ``DEPENDENCY_MISSING`` (luigi's worker passes no exception)."""
        if _walk_handlers():
            self._judged.add(_task_id(task))
            self._once(task, luigi.Event.DEPENDENCY_MISSING)

    def broken(self, task: Any, error: BaseException) -> None:
        """``task.requires()`` raised ``error``: ``BROKEN_TASK`` (task, error)."""
        if _walk_handlers():
            self._once(task, luigi.Event.BROKEN_TASK, error)

    def _once(self, task: Any, event: str, *args: Any) -> None:
        upstream = args[0] if event == luigi.Event.DEPENDENCY_DISCOVERED else None
        key = (event, _task_id(task), _task_id(upstream) if upstream is not None else "")
        if key in self._fired:
            return
        self._fired.add(key)
        task.trigger_event(event, task, *args)


def _task_id(task: Any) -> str:
    """``task.task_id``, or a stand-in for this object when computing it raises: a broken task's id may be what
    broke (a task parameter over kart's size limit), and the event must carry the walk's own error, not a new one."""
    try:
        return str(task.task_id)
    except Exception:  # noqa: BLE001 - any error of the id is the task's, reported by the walk
        return f"{type(task).__qualname__}@{id(task):x}"


def _is_external(task: Any) -> bool:
    """luigi's ``_is_external``: a task with no ``run()`` (``luigi.ExternalTask`` sets ``run = None``)."""
    return getattr(task, "run", None) is None
