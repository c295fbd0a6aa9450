"""gokart's task lock parameters, and taking one such lock through ``kart_core.lock``.

Names, fields and key recipe follow gokart 1.12.2's ``gokart/conflict_prevention_lock/task_lock.py``
(facts, not code): the redis key of an output is ``{file name without extension}_{unique id}``, a
run's key ``{Class}_{unique id}-run``; a lock is taken only when both ``redis_host`` and
``redis_port`` are set.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, NamedTuple

from kart_core.errors import LockSettingError, TaskLockException
from kart_core.lock import LockParams, hold_lock

__all__ = [
    "RedisClient",
    "TaskLock",
    "TaskLockException",
    "TaskLockParams",
    "make_task_lock_key",
    "make_task_lock_params",
    "make_task_lock_params_for_run",
    "set_lock_scheduler",
    "set_task_lock",
]


class TaskLockParams(NamedTuple):
    """How to lock one output or run (gokart's fields, in gokart's order).

    Attributes:
        redis_host, redis_port: the redis server; no lock unless both are set.
        redis_timeout: seconds until an abandoned lock expires (None: never).
        redis_key: the lock's name in redis.
        should_task_lock: whether a lock is taken at all (host and port set).
        raise_task_lock_exception_on_collision: fail at once (``TaskLockException``) instead of waiting.
        lock_extend_seconds: gokart's renewal period; must be below ``redis_timeout``.
    """

    redis_host: str | None
    redis_port: int | None
    redis_timeout: int | None
    redis_key: str
    should_task_lock: bool
    raise_task_lock_exception_on_collision: bool
    lock_extend_seconds: int


class RedisClient:
    """gokart's accessor for a redis client: ``RedisClient(host, port).get_redis_client()``.

    Defaults to localhost:6379 as gokart's. gokart shares one client per (host, port) through a
    class-level cache; kart creates a client per object (redis-py pools connections per client).
    """

    def __init__(self, host: str | None, port: int | None) -> None:
        self._host = host or "localhost"
        self._port = port or 6379

    def get_redis_client(self) -> Any:
        """A ``redis.Redis`` for this host and port.

        Raises:
            TaskLockException: the redis package is missing (``pip install 'kart-suite[redis]'``).
        """
        try:
            import redis
        except ImportError as exc:
            raise TaskLockException(
                "redis_host is set but redis is not installed: pip install 'kart-suite[redis]'"
            ) from exc
        return redis.Redis(host=self._host, port=self._port)


class TaskLock:
    """A held lock (from ``set_task_lock``); ``release()`` frees it, and a second call does nothing."""

    def __init__(self, params: TaskLockParams, held: contextlib.ExitStack) -> None:
        self.params = params
        self._held = held

    def release(self) -> None:
        """Free the lock (its renewals stop with it)."""
        self._held.close()

    def shutdown(self) -> None:
        """What gokart's lock scheduler offers: renewals end with ``release()``, so nothing is left to stop."""


def make_task_lock_key(file_path: str, unique_id: str | None) -> str:
    """``{file name without extension}_{unique_id}``, gokart's redis key of an output."""
    stem = os.path.splitext(os.path.basename(file_path))[0]
    return f"{stem}_{unique_id}"


def make_task_lock_params(
    file_path: str,
    unique_id: str | None,
    redis_host: str | None = None,
    redis_port: int | None = None,
    redis_timeout: int | None = None,
    raise_task_lock_exception_on_collision: bool = False,
    lock_extend_seconds: int = 10,
) -> TaskLockParams:
    """The lock parameters of the output at ``file_path`` (gokart's signature and defaults).

    Raises:
        LockSettingError: ``redis_timeout`` is not greater than ``lock_extend_seconds`` (an
            ``AssertionError``, as gokart's check).
    """
    if redis_timeout is not None and redis_timeout <= lock_extend_seconds:
        raise LockSettingError(
            f"redis_timeout must be greater than lock_extend_seconds ({lock_extend_seconds}), not {redis_timeout}: "
            "raise redis_timeout (TaskOnKart parameter or [TaskOnKart] redis_timeout)."
        )
    return TaskLockParams(
        redis_host=redis_host,
        redis_port=redis_port,
        redis_timeout=redis_timeout,
        redis_key=make_task_lock_key(file_path, unique_id),
        should_task_lock=redis_host is not None and redis_port is not None,
        raise_task_lock_exception_on_collision=raise_task_lock_exception_on_collision,
        lock_extend_seconds=lock_extend_seconds,
    )


def make_task_lock_params_for_run(task_self: Any, lock_extend_seconds: int = 10) -> TaskLockParams:
    """The lock parameters of a task's whole run: key ``{Class}_{unique id}-run``, fail at once on collision."""
    path = os.path.join(type(task_self).__module__.replace(".", "/"), type(task_self).__name__)
    host, port = task_self.redis_host, task_self.redis_port
    return TaskLockParams(
        redis_host=host,
        redis_port=port,
        redis_timeout=task_self.redis_timeout,
        redis_key=make_task_lock_key(path, task_self.make_unique_id() + "-run"),
        should_task_lock=host is not None and port is not None,
        raise_task_lock_exception_on_collision=True,
        lock_extend_seconds=lock_extend_seconds,
    )


def set_task_lock(task_lock_params: TaskLockParams) -> TaskLock:
    """Take the redis lock named ``redis_key`` (``kart_core.lock``), renewed while held; return it.

    Waits for the lock unless ``raise_task_lock_exception_on_collision``.

    Raises:
        TaskLockException: the lock is held elsewhere and the parameters say not to wait.
    """
    params = LockParams(
        key=task_lock_params.redis_key,
        redis_host=task_lock_params.redis_host or "localhost",
        redis_port=task_lock_params.redis_port or 6379,
        redis_timeout=task_lock_params.redis_timeout,
        redis_name=task_lock_params.redis_key,
    )
    wait = 0.0 if task_lock_params.raise_task_lock_exception_on_collision else None
    held = contextlib.ExitStack()
    try:
        held.enter_context(hold_lock(params, wait_seconds=wait))
    except TaskLockException as exc:
        raise TaskLockException(
            f"Lock already taken by other task: {task_lock_params.redis_key!r} on "
            f"{params.redis_host}:{params.redis_port}. Retry later, or let it wait (raise_task_lock_exception_on_collision=False)."
        ) from exc
    return TaskLock(task_lock_params, held)


def set_lock_scheduler(task_lock: TaskLock, task_lock_params: TaskLockParams) -> TaskLock:
    """gokart started a background job renewing the lock; kart's lock renews itself while held.

    Returns ``task_lock``, whose ``shutdown()`` (what gokart's scheduler offered) does nothing.
    """
    return task_lock
