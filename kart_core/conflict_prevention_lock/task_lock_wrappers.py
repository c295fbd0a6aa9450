"""gokart's lock wrappers: a function run under a task lock (``set_task_lock``), as gokart 1.12.2 wraps its targets.

Each wrapper returns ``func`` itself when the parameters take no lock (no redis host and port), as
gokart's do. The behaviour of each follows gokart's (facts):

- dump: hold the lock, call ``func`` only if ``exist_check()`` is false (another process may have
  written the output meanwhile), release;
- load: wait until the lock is free (take and release it), then call ``func``;
- remove and run: hold the lock while ``func`` runs, release also when it raises.

kart's own targets do not use these: ``run_one`` locks the whole run instead.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from kart_core.conflict_prevention_lock.task_lock import TaskLockParams, set_task_lock

__all__ = ["wrap_dump_with_lock", "wrap_load_with_lock", "wrap_remove_with_lock", "wrap_run_with_lock"]

P = ParamSpec("P")
R = TypeVar("R")


def wrap_dump_with_lock(
    func: Callable[P, R], task_lock_params: TaskLockParams, exist_check: Callable[..., bool]
) -> Callable[P, R | None]:
    """``func`` under the lock, skipped (returning None) when ``exist_check()`` says the output exists."""
    if not task_lock_params.should_task_lock:
        return func

    @functools.wraps(func)
    def dump_locked(*args: P.args, **kwargs: P.kwargs) -> R | None:
        lock = set_task_lock(task_lock_params)
        try:
            return None if exist_check() else func(*args, **kwargs)
        finally:
            lock.release()

    return dump_locked


def wrap_load_with_lock(func: Callable[P, R], task_lock_params: TaskLockParams) -> Callable[P, R]:
    """``func`` after the lock was free once: a load never reads while a locked dump writes."""
    if not task_lock_params.should_task_lock:
        return func

    @functools.wraps(func)
    def load_after_lock(*args: P.args, **kwargs: P.kwargs) -> R:
        set_task_lock(task_lock_params).release()
        return func(*args, **kwargs)

    return load_after_lock


def wrap_remove_with_lock(func: Callable[P, R], task_lock_params: TaskLockParams) -> Callable[P, R]:
    """``func`` while holding the lock."""
    if not task_lock_params.should_task_lock:
        return func
    return _held_while_running(func, task_lock_params)


def wrap_run_with_lock(run_func: Callable[[], R], task_lock_params: TaskLockParams) -> Callable[[], R]:
    """``run_func`` while holding the lock (gokart wraps a task's ``run`` with it when ``should_lock_run``)."""
    return _held_while_running(run_func, task_lock_params)


def _held_while_running(func: Callable[P, R], task_lock_params: TaskLockParams) -> Callable[P, R]:
    @functools.wraps(func)
    def locked(*args: P.args, **kwargs: P.kwargs) -> R:
        lock = set_task_lock(task_lock_params)
        try:
            return func(*args, **kwargs)
        finally:
            lock.release()

    return locked
