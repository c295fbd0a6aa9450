"""Which threads a thread of this process is blocked waiting for: read from the stacks of its threads.

``lock.hold_turn`` asks it only while a thread waits for a task's turn (never on the way of a run that
gets its turn at once): when the thread holding the turn waits, directly or through other threads, for
the very thread that wants the turn, the two would wait for each other forever (a task's ``run()`` that
joins a thread which builds the same task). The waits recognised are the standard library's ways to wait
for a thread or for a job a thread pool runs: ``Thread.join``, ``Future.result`` / ``Future.exception``,
``concurrent.futures.wait`` / ``as_completed``, ``Executor.map``'s results, an executor's
``shutdown(wait=True)`` (a ``with`` block's end), and a ``multiprocessing.pool.ThreadPool``'s ``get()``,
``wait()``, ``map()`` and ``imap()`` results. A wait on an ``Event``, a ``Queue``, a ``Condition`` or a
sleep-and-poll loop names no thread: it is not recognised.
"""

from __future__ import annotations

import concurrent.futures
import concurrent.futures.thread
import multiprocessing.pool
import sys
import threading
import types
from collections.abc import Iterator

__all__ = ["waits_for"]

_THREADING = threading.__file__
_FUTURES_BASE = sys.modules["concurrent.futures._base"].__file__
_FUTURES_THREAD = concurrent.futures.thread.__file__
_POOL = multiprocessing.pool.__file__
_WAIT_FILES = frozenset({_THREADING, _FUTURES_BASE, _FUTURES_THREAD, _POOL})


def waits_for(holder: int, waiter: int) -> str | None:
    """How thread ``holder`` (a ``threading.get_ident()``) is blocked waiting for thread ``waiter`` to finish,
    directly or through a chain of threads each waiting for the next; None when its stack shows no such wait.

    Returns:
        the wait found, e.g. ``'Thread.join'`` or ``'Future.result'`` (the last link, the one on ``waiter``).
    """
    try:
        frames = sys._current_frames()
        runners = _future_runners(frames)
        seen, todo = {holder}, [holder]
        while todo:
            for target, how in _awaited(frames.get(todo.pop()), runners):
                if target == waiter:
                    return how
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
    except Exception:  # noqa: BLE001 - reading other threads' frames must never break the wait it serves
        return None
    return None


def _future_runners(frames: dict[int, types.FrameType]) -> dict[object, int]:
    """What each pool worker thread is running now -> its thread ident: id() of a ``ThreadPoolExecutor``'s future,
    and ``("job", n)`` for job ``n`` of a ``multiprocessing.pool`` (its results know their ``_job``)."""
    runners: dict[object, int] = {}
    for ident, frame in frames.items():
        for found in _stack(frame):
            code = found.f_code
            if code.co_filename == _FUTURES_THREAD and code.co_name == "run":
                item = found.f_locals.get("self")
                if isinstance(item, concurrent.futures.thread._WorkItem):
                    runners[id(item.future)] = ident
            elif code.co_filename == _POOL and code.co_name == "worker":
                job = found.f_locals.get("job")
                if isinstance(job, int):
                    runners[("job", job)] = ident
    return runners


def _awaited(frame: types.FrameType | None, runners: dict[object, int]) -> Iterator[tuple[int, str]]:
    """The threads the innermost standard-library waiting frames of a stack wait for, with how."""
    while frame is not None and frame.f_code.co_filename in _WAIT_FILES:
        name, where, local = frame.f_code.co_name, frame.f_code.co_filename, frame.f_locals
        if where == _THREADING and name in ("join", "_wait_for_tstate_lock"):
            thread = local.get("self")
            if isinstance(thread, threading.Thread) and thread.ident is not None:
                yield thread.ident, "Thread.join"
        elif where == _FUTURES_BASE:
            futures = [local.get("self")] if name in ("result", "exception") else list(local.get("fs") or ())
            for future in futures:
                if isinstance(future, concurrent.futures.Future) and id(future) in runners:
                    yield runners[id(future)], f"Future.{name}" if name in ("result", "exception") else name
        elif where == _POOL and name in ("get", "wait", "next"):
            job = ("job", getattr(local.get("self"), "_job", None))
            if job in runners:
                yield runners[job], f"{type(local.get('self')).__name__}.{name}"
        frame = frame.f_back


def _stack(frame: types.FrameType | None) -> Iterator[types.FrameType]:
    while frame is not None:
        yield frame
        frame = frame.f_back
