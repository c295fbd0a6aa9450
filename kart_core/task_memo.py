"""TaskMemo: what a kart task object computed once and keeps (its requires(), outputs, serialized form).

One small object per task with a fixed set of slots, instead of a dict per task: a 100,000-task
graph keeps 100,000 of them, and a dict with four entries costs about five times the memory of
this object. ``UNSET`` marks a slot not computed yet (None is a value ``requires()`` may return).
"""

from __future__ import annotations

import os
import threading
from typing import Any, Final, NamedTuple

__all__ = ["UNSET", "Outlived", "RunSlot", "TaskMemo", "memo_of", "shared_threads"]


class _Unset:
    """The type of ``UNSET``: a slot whose value has not been computed."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"

    def __reduce__(self) -> str:
        return "UNSET"  # pickles as the module's one instance


UNSET: Final = _Unset()


class TaskMemo:
    """The values a task computes once per object (with ``cache_unique_id``, gokart's default).

    Attributes:
        requires_structure: what ``requires()`` returned, unflattened (``UNSET`` until asked).
        requires: ``requires()`` flattened to a tuple of tasks (None until asked).
        outputs: what ``output()`` returned (``UNSET`` until asked; dropped by ``release``).
        task_reference: the task serialized as a TaskInstanceParameter value (gokart's format), or
            None. Kept by ``release``: a chain of task parameters serializes each link through it.
        run: where the task's runs in progress are found (``RunSlot``; None until the first run or
            output target needs it). Kept by ``release``; a pickle carries only which process runs it.
        committed: output path -> content hash of each output the latest run of this object in this
            process committed itself (``kart_core.output_digests.committed_digests``); None before a run
            and when that run kept another process's commit or failed. Kept by ``release``: held as one
            flat tuple (path, hash, path, hash, ...), a new dict on each read (a 100,000-task build keeps
            one per task: a one-entry dict costs about 130 bytes more than the tuple).
        lineage: what the lineage checks of the last build of this task as a root read
            (``kart_core.lineage.LineageMemo``), for the next build of it in this process; None before one. Kept
            by ``release``; not pickled.
    """

    __slots__ = ("requires_structure", "requires", "outputs", "task_reference", "run", "_committed", "lineage")

    def __init__(self) -> None:
        self.requires_structure: Any = UNSET
        self.requires: tuple[Any, ...] | None = None
        self.outputs: Any = UNSET
        self.task_reference: str | None = None
        self.run: RunSlot | None = None
        self._committed: tuple[str, ...] | None = None
        self.lineage: Any = None

    @property
    def committed(self) -> dict[str, str] | None:
        """See the class docstring: a new dict on each read (None when nothing is noted)."""
        flat = self._committed
        if flat is None:
            return None
        return dict(zip(flat[::2], flat[1::2], strict=True))

    @committed.setter
    def committed(self, digests: dict[str, str] | None) -> None:
        self._committed = None if digests is None else tuple(item for pair in digests.items() for item in pair)

    def run_slot(self) -> RunSlot:
        """The task's ``RunSlot``, created when first asked."""
        slot = self.run
        if slot is None:
            slot = self.run = RunSlot()
        return slot

    def release(self) -> None:
        """Forget what is cheap to compute again and large to keep: the outputs (their targets)."""
        self.outputs = UNSET

    def __reduce__(self) -> tuple[type[TaskMemo], tuple[()], RunSlot | None]:
        # A copy or a pickle of a task starts with an empty memo: the memo holds the upstream tasks
        # and targets, so pickling it would carry every upstream along (a chain's last link would
        # pickle the whole chain). The run slot goes along (it pickles small, see RunSlot).
        return (TaskMemo, (), self.run)

    def __setstate__(self, run: RunSlot | None) -> None:
        self.run = run


class RunSlot:
    """The runs of one task object in progress in this process, reachable from every thread of it.

    ``kart_core.transaction`` resolves a dump (or path request) of the task's output made from a thread
    that ``run()`` started, which does not inherit the run's context, through the slot its targets
    hold (``TargetOnKart.task_memo``); a module-level registry would outlive its runs.

    Attributes:
        runs: the transactions (``kart_core.transaction.Transaction``) of the task's runs in progress, as a tuple
            replaced by ``enter`` and ``leave`` (the shared empty tuple while none is: no empty list kept per task).
        elsewhere: (process id, task label, relay folder, why that folder could not be made or None) of the run in
            progress when this slot was pickled (e.g. the task sent to a spawned child process by its own ``run()``);
            None otherwise. The child sends the loads it makes through the task to that folder
            (``kart_core.child_loads``), and refuses its dumps.
        strays: what the task's latest ended run left behind (``outlived``; None before one ended, and when only its
            own thread and the main thread were alive at its end): the threads alive when its ``run()`` returned,
            those alive when it began, and its own thread. Every thread
            alive at the end other than its own and the main thread is a stray: one ``run()`` started, or one
            already running when it began (an outsider: a worker of a pool made before the run, which may be
            running a job ``run()`` gave up on). Their writes of the task's output belong to no run. A stray of
            an earlier run still alive is alive at the latest run's end too, so the latest run's sets suffice.
            The record is shared by the runs that one thread ended while the process's threads stayed the same
            (``shared_threads``): a build on two worker threads keeps no record of its own per task (it kept the
            run's label and a 4-tuple, about 140 bytes per task). Messages name the task by its label, which the
            reader passes (``kart_core.transaction.join``).
        failed: whether the task's last ended run in this process committed nothing (failed or interrupted): a
            stray's path request is refused then (what it writes there would make the failed task look complete).
    """

    __slots__ = ("runs", "elsewhere", "strays", "failed")

    def __init__(self, elsewhere: tuple[int, str, str | None, str | None] | None = None) -> None:
        self.runs: tuple[Any, ...] = ()
        self.elsewhere = elsewhere
        self.strays: Outlived | None = None
        self.failed = False

    def enter(self, running: Any) -> None:
        """Add ``running`` (a transaction) to ``runs``."""
        with _RUNS_CHANGE:  # two threads' runs of one task object may begin or end at once
            self.runs = (*self.runs, running)

    def leave(self, running: Any) -> None:
        """Take ``running`` out of ``runs`` (its first occurrence).

        Raises:
            ValueError: it is not there.
        """
        with _RUNS_CHANGE:
            runs = list(self.runs)
            runs.remove(running)
            self.runs = tuple(runs)

    def outlived(
        self, alive: frozenset[threading.Thread], outsiders: frozenset[threading.Thread], own: threading.Thread
    ) -> None:
        """Note what the task's run left behind: the threads ``alive`` when its ``run()`` returned, the ``outsiders``
        alive when it began, and ``own``, the thread that ran it (see ``strays``).

        When no thread but ``own`` and the main thread was alive, nothing can be a stray (``stray_run`` answers None
        for every thread, as it would for the noted sets): ``strays`` is then None. Otherwise it is the record this
        thread noted last when that holds the same sets (``_outlived``), so a build's 100,000 tasks share a few."""
        main = threading.main_thread()
        if all(thread is own or thread is main for thread in alive):
            self.strays = None
            return
        self.strays = _outlived(alive, outsiders, own)

    def stray_run(self, thread: threading.Thread) -> bool | None:
        """Whether ``thread`` outlived the task's latest ended run as a stray that was already running when that run
        began (True: an outsider) or one that began meanwhile (False); None: it is not a stray of the task's runs."""
        strays = self.strays
        if strays is None or thread not in strays.alive or thread is strays.own or thread is threading.main_thread():
            return None
        return thread in strays.outsiders

    def __reduce__(self) -> tuple[type[RunSlot], tuple[tuple[int, str, str | None, str | None] | None]]:
        runs = list(self.runs)
        if not runs:
            return (RunSlot, (self.elsewhere,))
        relay = runs[0].relay_ready()  # its folder made here: the process the pickle goes to sends loads there
        return (RunSlot, ((relay.pid, relay.label, relay.folder, relay.error),))

    def __copy__(self) -> RunSlot:
        return self  # a copy of the task in this process is the same task: its runs are the same

    def __deepcopy__(self, memo: dict[int, Any]) -> RunSlot:
        return self


_shared: list[frozenset[threading.Thread]] = [frozenset()]
_RUNS_CHANGE = threading.Lock()  # RunSlot.enter / leave: a read-modify-write of a slot's runs


def _new_runs_lock() -> None:
    global _RUNS_CHANGE
    _RUNS_CHANGE = threading.Lock()  # a fork while another thread held it would leave the child's copy held


os.register_at_fork(after_in_child=_new_runs_lock)


class Outlived(NamedTuple):
    """What a run left behind (``RunSlot.strays``): the threads ``alive`` when its ``run()`` returned, the
    ``outsiders`` alive when it began, and ``own``, the thread that ran it. Shared between runs: never changed."""

    alive: frozenset[threading.Thread]
    outsiders: frozenset[threading.Thread]
    own: threading.Thread


_last_outlived = threading.local()  # per thread: the Outlived it made last (its runs share it while the sets stay)


def _outlived(
    alive: frozenset[threading.Thread], outsiders: frozenset[threading.Thread], own: threading.Thread
) -> Outlived:
    """An ``Outlived`` record of these sets: this thread's last one when it holds the same objects (the sets come
    from ``shared_threads``, so they are the same objects while the process's threads do not change)."""
    last: Outlived | None = getattr(_last_outlived, "record", None)
    if last is not None and last.alive is alive and last.outsiders is outsiders and last.own is own:
        return last
    record = _last_outlived.record = Outlived(alive, outsiders, own)
    return record


def shared_threads() -> frozenset[threading.Thread]:
    """The threads of the process now, as the frozenset handed out last time when they are the same threads.

    Runs keep these sets (``RunSlot.strays``): while the process's threads do not change, every run shares one
    set instead of holding its own copy. A race between two threads only loses that sharing.
    """
    now = frozenset(threading.enumerate())
    last = _shared[0]
    if now == last:
        return last
    _shared[0] = now
    return now


def memo_of(task: Any) -> TaskMemo:
    """The task's memo (``task._kart_cache``), created when missing (e.g. a task built without ``__init__``)."""
    memo = task.__dict__.get("_kart_cache")
    if type(memo) is not TaskMemo:
        memo = TaskMemo()
        task.__dict__["_kart_cache"] = memo
    return memo
