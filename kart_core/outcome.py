"""What a build did, how its nodes are named, and which exit code it earns.

The one place for three rules that ``build()``, ``kart_core.run`` (gokart.run), ``kart run`` and
the Slack notification share:

- the labeller: a kart task is ``Class[first 8 hex of its unique id]``, a plain luigi task its
  ``task_id``, and any task whose id cannot be computed (its ``requires()`` raised) its class name;
- ``BuildResult``: each node's outcome by node key (see ``kart_core.graph.node_key``);
- the exit-code rule, luigi 3.8's ``luigi.retcodes.run_with_retcodes``: the largest code among the
  outcomes seen (missing external data, a task failed, the graph could not be scheduled); ``not_run``
  when nothing went wrong but a root is still incomplete.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from kart_core.contract import LuigiTask, is_kart_task

__all__ = [
    "GOKART_RETCODES",
    "BuildResult",
    "RetCodes",
    "exit_code",
    "is_external",
    "produces_nothing",
    "uninitialized_message",
    "task_label",
    "unique_id_or_none",
]


def task_label(task: LuigiTask) -> str:
    """How messages name ``task``: ``Class[1234abcd]``, a luigi ``task_id``, or the bare class name.

    The class name is the fallback when the unique id cannot be computed (it needs ``requires()``
    of the task and its upstreams, which may be what failed).
    """
    try:
        return task.kart_label() if is_kart_task(task) else str(task.task_id)
    except Exception:
        return type(task).__name__


def unique_id_or_none(task: LuigiTask) -> str | None:
    """The task's 32-hex unique id; None for a plain luigi task or when computing it raises."""
    if not is_kart_task(task):
        return None
    try:
        return task.make_unique_id()
    except Exception:
        return None


def uninitialized_message(task: LuigiTask) -> str:
    """What to tell the user of ``task``, whose class overrides ``__init__`` without calling luigi's: it has no
    parameters or id, which luigi's worker refuses (``task.initialized()``; attacker at25 F6)."""
    name = type(task).__qualname__
    return (
        f"Task of class {name} is not initialized: {name}.__init__ does not call super().__init__(*args, **kwargs), "
        "where luigi sets the task's parameters and id. Call it first in __init__ (or drop the override)."
    )


def is_external(task: LuigiTask) -> bool:
    """Whether ``task`` is an input nothing here can produce (``produces_nothing`` of its class)."""
    return produces_nothing(type(task))


def produces_nothing(cls: type) -> bool:
    """Whether tasks of ``cls`` are inputs nothing here can produce: a ``luigi.ExternalTask`` (luigi sets ``run =
    None``), or a class that defines no ``run()`` of its own: a TaskOnKart subclass keeps ``TaskOnKart.run``, which
    wraps luigi's empty one (a raw file dropped in by hand, attacker at25 F10), a plain luigi task luigi's own."""
    from luigi import ExternalTask, Task  # here: `kart runs` imports this module and never needs luigi

    if issubclass(cls, ExternalTask):
        return True
    run = getattr(cls, "run", None)
    return run is None or run is Task.run or getattr(run, "__wrapped__", None) is Task.run


@dataclasses.dataclass
class BuildResult:
    """What a build did, by node key.

    Attributes:
        ran: keys of the tasks that ran, in the order they finished.
        cached: keys of the tasks found complete (during the walk or by ``run_one``) and not repaired.
        repaired: keys of the tasks found complete whose damaged output was rebuilt when a task that
            needs it ran (``kart_core.repair``) or when the build loaded it to return it (a root), in
            the order the rebuilds committed; a damaged task further up (not in the walked graph)
            counts too, and so does an upstream deleted since, built first because such a rebuild
            needed it. Neither in ``ran`` nor in ``cached``.
        failed: key → what the task raised (a ``SystemExit`` or ``KeyboardInterrupt`` too).
        not_run: keys of the tasks left out because an upstream failed or the build stopped.
        seconds: wall time of the execution, in seconds.
        scheduling_failed: the failed keys whose ``complete()``, ``output()`` or ``requires()`` raised
            while the graph was walked (luigi's "scheduling error"); nothing ran then.
        roots: keys of the tasks the build was asked for.
        nodes: key → task, for naming them (``label``).
        interrupted: the ``KeyboardInterrupt`` that stopped the build, if one did.
        values: the roots' loaded outputs, in order, when the build was asked to return them
            (``build(return_value=True)``); None otherwise.
        stale: keys of the tasks that ran because they were stale (``kart_core.lineage``: an output they
            loaded was committed again since with other content): found so by a walk of the build (in
            ``ran`` too when their run succeeded), or built on a stale upstream that this build reran
            with other content (in ``ran``).
        stale_roots: keys of the roots left built on stale content further up (``kart_core.lineage``; a
            warning names each; never a failed one): that upstream is not among what they require, so the
            build did not reach it, or the build stopped at a failure first.
    """

    ran: list[str] = dataclasses.field(default_factory=list)
    cached: list[str] = dataclasses.field(default_factory=list)
    failed: dict[str, BaseException] = dataclasses.field(default_factory=dict)
    not_run: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    scheduling_failed: set[str] = dataclasses.field(default_factory=set)
    roots: list[str] = dataclasses.field(default_factory=list)
    nodes: dict[str, LuigiTask] = dataclasses.field(default_factory=dict, repr=False)
    interrupted: BaseException | None = None
    repaired: list[str] = dataclasses.field(default_factory=list)
    values: list[Any] | None = dataclasses.field(default=None, repr=False)
    stale: list[str] = dataclasses.field(default_factory=list)
    stale_roots: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every task is complete."""
        return not self.failed and not self.not_run

    def summary(self) -> str:
        """One line: counts of ran (and how many of them were stale, when any) / repaired (when any) /
        cached (and how many cached roots are in ``stale_roots``, when any) / failed / not run, and the time."""
        repaired = f"{len(self.repaired)} repaired, " if self.repaired else ""
        # Each annotation counts only tasks of the count it stands beside (a stale task may have failed).
        ran, cached = set(self.ran), set(self.cached)
        stale_ran = sum(1 for key in self.stale if key in ran)
        behind_cached = sum(1 for key in self.stale_roots if key in cached)
        stale = f" ({stale_ran} stale)" if stale_ran else ""
        behind = f" ({behind_cached} built on stale upstreams)" if behind_cached else ""
        return (
            f"kart build: {len(self.ran)} ran{stale}, {repaired}{len(self.cached)} cached{behind}, "
            f"{len(self.failed)} failed, "
            f"{len(self.not_run)} not run, in {self.seconds:.2f}s"
        )

    def add_repaired(self, key: str) -> bool:
        """Count ``key`` as repaired (once); a key counted as cached moves out of ``cached``.

        Returns:
            Whether it was counted now (False: already repaired, or it ran in this build).
        """
        if key in self.repaired or key in self.ran:
            return False
        if key in self.cached:  # a list: only on this rare path, so the common one stays a plain append
            self.cached.remove(key)
        self.repaired.append(key)
        return True

    def label(self, key: str) -> str:
        """The node's label (``task_label``); the key itself for a node this result does not hold."""
        task = self.nodes.get(key)
        return task_label(task) if task is not None else key

    def describe(self, key: str) -> str:
        """The label plus the full unique id when there is one: ``Class[1234abcd] (unique id 1234abcd…)``."""
        task = self.nodes.get(key)
        unique_id = unique_id_or_none(task) if task is not None else None
        return f"{self.label(key)} (unique id {unique_id})" if unique_id else self.label(key)


@dataclasses.dataclass(frozen=True)
class RetCodes:
    """Exit codes by outcome, as luigi's ``[retcode]`` section names them (luigi's defaults)."""

    unhandled_exception: int = 4
    missing_data: int = 0
    task_failed: int = 0
    already_running: int = 0
    scheduling_error: int = 0
    not_run: int = 0


# gokart.run(set_retcode=True)'s values, which gokart users' schedulers and cron jobs check.
GOKART_RETCODES = RetCodes(missing_data=20, task_failed=40, already_running=10, scheduling_error=50, not_run=30)


def exit_code(result: BuildResult, codes: RetCodes) -> int:
    """luigi's rule: the largest code among the outcomes seen; ``not_run`` if nothing failed but a root is incomplete.

    A failed external task counts as missing data, a failure while walking the graph as a scheduling
    error, any other failure (an exception, ``SystemExit`` or ``KeyboardInterrupt`` in ``run()``) as a
    failed task. Tasks left out because of an upstream failure add no code of their own (luigi neither).
    """
    ran = set(result.failed) - result.scheduling_failed
    external = {key for key in ran if key in result.nodes and is_external(result.nodes[key])}
    ran_and_failed = ran - external
    seen = [
        (codes.missing_data, bool(external)),
        (codes.task_failed, bool(ran_and_failed)),
        (codes.scheduling_error, bool(result.scheduling_failed)),
    ]
    code = max((value for value, happened in seen if happened), default=0)
    complete = set(result.ran) | set(result.cached) | set(result.repaired)
    if code == 0 and any(root not in complete for root in result.roots):
        return codes.not_run
    return code
