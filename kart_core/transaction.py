"""The run of one task's ``run()`` body, as a per-task context (not a global).

``run_one`` opens a ``Transaction`` around the task's own ``run()``; code further down asks
``current()`` whether it runs inside one. TaskOnKart's routed ``run`` uses it to tell luigi's
call (route it through ``run_one``) from ``run_one``'s own call or a ``super().run()`` inside it
(run the user's code). The context lives in a ``contextvars.ContextVar``: each thread worker and
each process worker has its own, and nested builds nest.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Iterator

__all__ = ["Transaction", "begin", "current", "runs"]


@dataclasses.dataclass(eq=False)
class Transaction:
    """One task's run in progress.

    Attributes:
        task: the task object whose ``run()`` body executes.
        label: how messages name the task (``Class[8-hex id]``).
    """

    task: object
    label: str


_current: contextvars.ContextVar[Transaction | None] = contextvars.ContextVar("kart_transaction", default=None)


@contextlib.contextmanager
def begin(task: object, label: str) -> Iterator[Transaction]:
    """Mark ``task``'s ``run()`` body as running for the body of the ``with``."""
    transaction = Transaction(task=task, label=label)
    token = _current.set(transaction)
    try:
        yield transaction
    finally:
        _current.reset(token)


def current() -> Transaction | None:
    """The innermost transaction of this thread or task context, if any."""
    return _current.get()


def runs(task: object) -> bool:
    """Whether the innermost transaction is ``task``'s own (its ``run()`` body is executing)."""
    transaction = _current.get()
    return transaction is not None and transaction.task is task
