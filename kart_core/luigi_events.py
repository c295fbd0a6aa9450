"""What luigi's worker gives a task around its run, which gokart projects rely on: events and reporter callbacks.

luigi's worker (``luigi.worker.TaskProcess.run``, luigi 3.x) fires a task's event handlers around ``run()``:
``Event.START`` before it, then on success ``Event.PROCESSING_TIME`` (the task and the seconds it took),
``task.on_success()`` and ``Event.SUCCESS``; on failure ``Event.FAILURE`` (the task and the exception) and
``task.on_failure(exception)``. Handlers registered with ``@Task.event_handler(luigi.Event.SUCCESS)`` (alerts,
audit logs, metrics) and overridden ``on_success``/``on_failure`` therefore run under kart too, once per run of
the task, whichever scheduler runs it (``run_one``). luigi's own ``trigger_event`` logs a handler that raises and
goes on, as in luigi. Under ``luigi.build`` luigi's worker fires them itself around the task's ``run()``, which
``run_one`` runs: that run fires none (``fired_by_caller``), so each fires once.

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

__all__ = ["failed", "fired_by_caller", "reporter_callbacks", "started", "succeeded"]

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


@contextlib.contextmanager
def reporter_callbacks(task: Any, label: str) -> Iterator[None]:
    """While the body runs, ``task``'s luigi reporter callbacks log at INFO (the ones the task left None).

    Also sets ``decrease_running_resources`` (nothing to decrease: kart does not schedule by luigi's
    resources), as luigi's worker sets it; all back to None after. The callbacks pickle (a task may be sent
    to a child process while it runs).
    """
    set_here = []
    callbacks = {
        "set_tracking_url": functools.partial(_report, label, "tracking URL %s"),
        "set_status_message": functools.partial(_report, label, "status: %s"),
        "set_progress_percentage": functools.partial(_report, label, "progress %s%%"),
        "decrease_running_resources": functools.partial(_report, label, "would release resources %s"),
    }
    for name, callback in callbacks.items():
        if getattr(task, name, None) is None:
            setattr(task, name, callback)
            set_here.append(name)
    try:
        yield
    finally:
        for name in set_here:
            setattr(task, name, None)


def _report(label: str, what: str, value: object) -> None:
    logger.info("%s: " + what, label, value)
