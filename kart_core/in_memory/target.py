"""In-memory targets: a task output kept in the process's ``InMemoryCacheRepository`` under a key.

Inside a task's run a dump is staged under a hidden key and moved to its key when ``run_one``
commits (``kart_core.transaction``); a failed run leaves nothing. Outside a run it is stored at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from kart_core import transaction
from kart_core.conflict_prevention_lock.task_lock import TaskLockParams
from kart_core.in_memory.repository import InMemoryCacheRepository
from kart_core.manifest import Entry
from kart_core.storage import Storage
from kart_core.target import TargetOnKart

__all__ = ["InMemoryTarget", "make_in_memory_target"]

_STAGED_MARK = ".kart-staged-"


class _StagedValues:
    """What a transaction needs of a Storage to commit or drop a staged in-memory value."""

    def __init__(self, repository: InMemoryCacheRepository) -> None:
        self._repository = repository

    def commit(self, staged: str, path: str) -> None:
        self._repository.move(staged, path)

    def remove(self, path: str) -> None:
        if self._repository.has(path):
            self._repository.remove(path)

    def exists(self, path: str) -> bool:
        return self._repository.has(path)

    def modification_time(self, path: str) -> datetime:
        return self._repository.get_last_modification_time(path)


class InMemoryTarget(TargetOnKart):
    """An output stored as the object itself under ``data_key`` (its ``path()``).

    Args:
        data_key: the key in the in-memory store; make it unique per task, e.g. with the unique id.
        task_lock_param: gokart's lock parameters; a redis lock is not supported, as in gokart.

    Raises:
        ValueError: ``task_lock_param`` asks for a redis lock (gokart's type and message start).
    """

    def __init__(self, data_key: str, task_lock_param: TaskLockParams) -> None:
        if task_lock_param.should_task_lock:
            raise ValueError(
                "Redis with `InMemoryTarget` is not currently supported: in-memory outputs live in one process, "
                "so there is nothing to lock across processes. Leave redis_host/redis_port unset for this target."
            )
        self._repository = InMemoryCacheRepository()
        self._values = _StagedValues(self._repository)
        # The transaction and TargetOnKart know storages; this one holds objects, not bytes.
        super().__init__(data_key, storage=cast(Storage, self._values))
        self._data_key = data_key
        self._task_lock_params = task_lock_param

    def exists(self) -> bool:
        """Whether a value is stored under the key, or staged by the running task."""
        running = transaction.current()
        if running is not None and running.lookup(self._data_key) is not None:
            return True
        return self._repository.has(self._data_key)

    def load(self) -> Any:
        """The stored object itself (the staged one inside the run that dumped it).

        Raises:
            InMemoryKeyError: nothing is stored under the key (a ``KeyError``, as gokart's).
        """
        running = transaction.current()
        staged = running.lookup(self._data_key) if running is not None else None
        return self._repository.get_value(staged.location if staged is not None else self._data_key)

    def dump(self, obj: Any, lock_at_dump: bool = True, **_labels: Any) -> None:
        """Keep ``obj`` under the key: staged until the running task commits, else at once."""
        running = transaction.current()
        if running is None:
            self._repository.set_value(self._data_key, obj)
            return
        staged_key = f"{self._data_key}{_STAGED_MARK}{running.commit_id}"
        self._repository.set_value(staged_key, obj)
        entry = Entry(size=0, digest="", commit=running.commit_id, sealed=False)
        running.add(transaction.Staged(self._data_key, staged_key, cast(Storage, self._values), None, entry))

    def remove(self) -> None:
        """Forget the value (and any staged one), if there is one."""
        running = transaction.current()
        if running is not None:
            running.drop(self._data_key)
        if self._repository.has(self._data_key):
            self._repository.remove(self._data_key)

    def last_modification_time(self) -> datetime:
        """When the value was stored.

        Raises:
            ValueError: nothing is stored under the key (gokart's type).
        """
        if not self._repository.has(self._data_key):
            raise ValueError(f"No object(s) which id is {self._data_key} are stored before.")
        return self._repository.get_last_modification_time(self._data_key)

    def __repr__(self) -> str:
        return f"InMemoryTarget({self._data_key!r})"


def make_in_memory_target(target_key: str, task_lock_params: TaskLockParams) -> InMemoryTarget:
    """An ``InMemoryTarget`` for ``target_key`` (gokart's signature)."""
    return InMemoryTarget(target_key, task_lock_params)
