"""gokart's ``gokart.conflict_prevention_lock``: task lock parameters and the dump/load/remove/run lock wrappers.

kart locks a whole task run in ``run_one`` (``kart_core.lock``, keyed by the output's canonical
location). These modules keep gokart 1.12.2's public names for code that builds lock parameters
or wraps its own functions; they take their locks through the same ``kart_core.lock``, with the
redis lock named as gokart names it (``{file name without extension}_{unique id}``), so a kart and
a gokart process sharing one redis exclude each other.
"""

from kart_core.conflict_prevention_lock.task_lock import (
    RedisClient,
    TaskLock,
    TaskLockException,
    TaskLockParams,
    make_task_lock_key,
    make_task_lock_params,
    make_task_lock_params_for_run,
    set_lock_scheduler,
    set_task_lock,
)
from kart_core.conflict_prevention_lock.task_lock_wrappers import (
    wrap_dump_with_lock,
    wrap_load_with_lock,
    wrap_remove_with_lock,
    wrap_run_with_lock,
)

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
    "wrap_dump_with_lock",
    "wrap_load_with_lock",
    "wrap_remove_with_lock",
    "wrap_run_with_lock",
]
