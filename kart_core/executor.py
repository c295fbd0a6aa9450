"""execute(): run a walked graph's incomplete nodes through run_one, in dependency order.

Serially, or on a pool of threads or processes. Each task's failure is gathered, not raised:
an exception, a ``SystemExit`` or a ``KeyboardInterrupt`` from a task is that task's failure. A
``KeyboardInterrupt`` also stops the build (no new task starts) and is left in
``BuildResult.interrupted`` for the caller to re-raise after reporting.

With worker processes, a worker that dies (SIGKILL from the out-of-memory killer, ``os._exit``)
breaks ``concurrent.futures``' pool for every task in it. The task that was in the dead process
fails with ``WorkerDiedError`` (its exit code names the signal), the pool is recreated, and the
tasks that merely shared the pool run again, even when the failure stops the build (luigi
likewise fails only the task whose process died). When the dead process cannot be told (killed
by SIGTERM, which is also what the pool sends the others), the tasks that were running run again
each alone, so the next break names the culprit.

Every step is linear in the number of nodes and edges: the pool's bookkeeping (what each task
waits on, who waits on it) is built once, with one set of the pending keys.

Once every dependant of a task has run (or was found complete), the task forgets the targets it
computed for the build (``kart_release``; the roots keep theirs, build() loads them): nothing in the build reads them again, so memory does not grow with every task that
has finished, and each task's ``output()`` is still asked once per build.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import dataclasses
import functools
import itertools
import multiprocessing.process
import signal
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from typing import Literal

import pluggy

from kart_core.contract import LuigiTask, is_kart_task
from kart_core.errors import ProcessPoolFallbackWarning, WorkerDiedError
from kart_core.graph import TaskGraph
from kart_core.outcome import BuildResult, is_external
from kart_core.process_pool import (
    PluginRecipe,
    claim_slot,
    plugin_recipe,
    run_in_worker,
    ship,
    unpicklable_classes,
    worker_slots,
)
from kart_core.progress import Progress
from kart_core.resources import ResourceLimits
from kart_core.runner import RunReport, RunStatus, default_hook_manager, run_one_reporting

__all__ = ["Executor", "execute"]

Executor = Literal["thread", "process"]


def execute(
    graph: TaskGraph,
    workers: int = 1,
    executor: Executor = "process",
    keep_going: bool = False,
    hook_manager: pluggy.PluginManager | None = None,
    progress: Progress | None = None,
    lock: bool | None = None,
) -> BuildResult:
    """Run the graph's incomplete (expanded) nodes in dependency order; complete ones count as cached.

    Args:
        graph: a walked graph; its ``expanded`` nodes are the incomplete ones.
        workers: how many tasks may run at once; the pool has no more workers than there are tasks to run.
        executor: "process" or "thread", used when ``workers > 1``. On threads, the tasks with seed methods
            (``fix_random_seed_methods``) run one at a time: they seed the process's shared generators.
        keep_going: after a failure, go on with the tasks that do not depend on it. A missing external
            input (an incomplete ``luigi.ExternalTask``, luigi's "missing data") never stops the build: the tasks
            that do not need it run, as under luigi's worker (gokart's build, attacker at14 N4).
        hook_manager: plugins for ``run_one``; default: run logs, built-in formats and entry-point
            plugins. Process workers recreate it (``kart_core.process_pool.plugin_recipe``).
        progress: the display to update; default a silent one.
        lock: passed to ``run_one``.

    Tasks holding luigi resources (``Task.resources``, ``[resources]``) start only while those are free, by
    luigi's scheduler's rule (``kart_core.resources``); one that needs more than there is fails with a
    ``TaskDefinitionError`` naming the resource.

    Returns:
        The outcome of every node; nothing is raised for a task's failure.

    Raises:
        PluginError: with the process pool, a plugin of ``hook_manager`` cannot be sent to the
            worker processes (not picklable); raised before any task runs.

    Warns:
        ProcessPoolFallbackWarning: with the process pool, a task's class cannot be pickled (it is
            defined inside a function); the build runs on threads instead, once, naming the classes.
    """
    started = time.perf_counter()
    result = BuildResult(roots=list(graph.roots), nodes=graph.nodes)
    display = progress if progress is not None else Progress(total=len(graph), live=False)
    pending = [key for key in graph.order if key in graph.expanded]
    result.cached.extend(key for key in graph.order if key not in graph.expanded)
    display.add_cached(len(result.cached))
    release = _Releaser(graph)
    limits = ResourceLimits(graph.nodes)  # luigi's Task.resources and [resources], read once per execution
    if workers <= 1:
        run = functools.partial(run_one_reporting, hook_manager=hook_manager, lock=lock)
        _execute_serially(graph, pending, result, keep_going, run, display, release, limits)
    elif pending:  # nothing to run (all cached): no pool, no checks
        recipe = None
        if executor == "process":
            executor = _process_or_thread(graph)
        if executor == "process":
            recipe = plugin_recipe(hook_manager if hook_manager is not None else default_hook_manager())
        # No more workers than tasks to run: a process pool forks all its workers at once (attacker at25 F1:
        # workers=200 forked 200 copies of the caller for one task; luigi starts one per task it runs).
        pool = _Pool(min(workers, len(pending)), executor, hook_manager, recipe, lock)
        _execute_in_pool(graph, pending, result, pool, keep_going, display, release, limits)
    result.seconds = time.perf_counter() - started
    return result


def _execute_serially(
    graph: TaskGraph,
    pending: list[str],
    result: BuildResult,
    keep_going: bool,
    run: Callable[[LuigiTask], RunReport],
    display: Progress,
    release: Callable[[str], None],
    limits: ResourceLimits,
) -> None:
    blocked: set[str] = set()
    for index, key in enumerate(pending):
        if key in blocked or any(dep in blocked for dep in graph.upstream[key]):
            blocked.add(key)
            result.not_run.append(key)
            continue
        display.started(result.label(key))
        try:
            refusal = limits.refusal(key)  # one at a time: only a task needing more than there is cannot run
            if refusal is not None:
                raise refusal
            status = run(graph.nodes[key])
        except BaseException as exc:  # SystemExit and KeyboardInterrupt from run() are this task's failure too
            _record(result, display, key, exc)
            blocked.add(key)
            if result.interrupted is not None or not (keep_going or is_external(graph.nodes[key])):
                result.not_run.extend(pending[index + 1 :])
                return
            continue
        _record(result, display, key, status)
        release(key)


class _Releaser:
    """``release(key)`` after ``key`` settled: each upstream whose dependants have all settled forgets its targets.

    Counts, per node, the dependants not settled yet: an entry only for a node with two or more left (most nodes of
    a chain or a fan-in have one dependant: a 100,000-task graph keeps no entry for them, ``settle_one``); the roots
    are never released (build() loads their outputs), nor the upstreams of a task that failed or did not run.
    """

    def __init__(self, graph: TaskGraph) -> None:
        self.graph = graph
        self.keep = frozenset(graph.roots)
        self.left: dict[str, int] = {}
        for deps in graph.upstream.values():
            for dep in deps:
                self.left[dep] = self.left.get(dep, 0) + 1
        self.left = {key: count for key, count in self.left.items() if count > 1}

    def __call__(self, key: str) -> None:
        nodes, left = self.graph.nodes, self.left
        for dep in self.graph.upstream[key]:
            if settle_one(left, dep) and dep not in self.keep:
                task = nodes[dep]
                if is_kart_task(task):
                    task.kart_release()


def _record(result: BuildResult, display: Progress, key: str, outcome: RunReport | BaseException) -> None:
    if isinstance(outcome, BaseException):
        result.failed[key] = outcome
        if isinstance(outcome, KeyboardInterrupt) and result.interrupted is None:
            result.interrupted = outcome
        display.finished(result.label(key), "failed")
        return
    for repaired in outcome.repaired:  # rebuilt inside this task's run_one: found cached by the walk, then damaged
        was_cached = repaired in result.cached
        if result.add_repaired(repaired):
            display.repaired(was_cached)
    (result.ran if outcome.status is RunStatus.RAN else result.cached).append(key)
    display.finished(result.label(key), outcome.status.value)


Dependants = dict[str, str | list[str]]  # a key: its one dependant, or the list of several


def dependency_state(graph: TaskGraph, pending: Sequence[str]) -> tuple[list[str], dict[str, int], Dependants]:
    """The pending keys that wait on no pending upstream; how many each key waiting on several waits on; for each
    pending key, who waits on it.

    Linear in nodes and edges: ``pending`` is iterated a fixed number of times, whatever its length
    (an upstream that is not pending was found complete by the walk). Small per task, for 100,000
    of them: a count, not a set, of what each waits on, and only for a key that waits on two or more (a key
    listed as a dependant and absent from the counts waits on one: ``settle_one``); the one dependant most tasks
    have as its key, a list only for several (``dependants_of`` reads both); no entry for a key nothing waits on.
    An upstream listed twice counts twice, and its dependant is listed twice.

    Returns:
        (ready, waiting, dependants): ``ready`` in ``pending``'s order.
    """
    pending_set = set(pending)
    ready: list[str] = []
    waiting: dict[str, int] = {}
    dependants: Dependants = {}
    for key in pending:
        count = 0
        for dep in graph.upstream[key]:
            if dep in pending_set:
                count += 1
                known = dependants.get(dep)
                if known is None:
                    dependants[dep] = key
                elif isinstance(known, str):
                    dependants[dep] = [known, key]
                else:
                    known.append(key)
        if count == 0:
            ready.append(key)
        elif count > 1:
            waiting[key] = count
    return ready, waiting, dependants


def settle_one(counts: dict[str, int], key: str) -> bool:
    """Count one of ``key``'s awaited settlements as done, in ``counts`` that lists only the keys awaiting two or
    more (an absent key awaits one); return whether ``key`` awaits none any more (its entry is gone then)."""
    left = counts.pop(key, 1) - 1
    if left > 1:
        counts[key] = left
    return left == 0


def dependants_of(dependants: Dependants, key: str) -> Sequence[str]:
    """The keys waiting on ``key`` in ``dependency_state``'s answer, in the order they were listed."""
    found = dependants.get(key)
    if found is None:
        return ()
    return (found,) if isinstance(found, str) else found


def _in_turn(
    turn: threading.Lock, task: LuigiTask, manager: pluggy.PluginManager | None, lock: bool | None
) -> RunReport:
    """``run_one_reporting`` of a task that seeds the process's random generators (``fix_random_seed_methods``,
    gokart's default ``random.seed`` and ``numpy.random.seed``), holding ``turn`` from its seeding to its commit.

    luigi's workers run each task in a process of its own, so a task's draws follow its seed (gokart's
    ``int(task_id, 16) % (2**32 - 1)``) whatever runs beside it; on threads, a task seeding the shared generator
    while another draws from it gave both another stream, different on every build, committed under their ids.
    """
    with turn:
        return run_one_reporting(task, manager, lock)


def _process_or_thread(graph: TaskGraph) -> Executor:
    """ "process", or "thread" with one warning when a task class in the graph cannot be pickled."""
    refused = unpicklable_classes(list(graph.nodes.values()))
    if not refused:
        return "process"
    warnings.warn(
        f"kart: task class(es) {', '.join(refused)} cannot be pickled to worker processes (defined inside a "
        "function); this build runs on threads instead, where the tasks that seed random generators "
        "(fix_random_seed_methods, by default random.seed and numpy.random.seed) run one at a time. Define them at "
        'module level to use processes, or pass executor="thread" to silence this.',
        ProcessPoolFallbackWarning,
        stacklevel=3,
    )
    return "thread"


@dataclasses.dataclass(frozen=True)
class _Pool:
    """How the pool runs one task: the pool kind and what its workers need."""

    workers: int
    executor: Executor
    manager: pluggy.PluginManager | None
    recipe: PluginRecipe | None
    lock: bool | None

    def open(self) -> _Workers:
        """A fresh pool of ``workers`` threads or processes."""
        return _Workers(self)


class _Workers:
    """One ``concurrent.futures`` pool and, for processes, what tells which task was in a worker that died.

    The caller replaces it (``_Pool.open``) once it broke (``broken``/``recover``).
    """

    def __init__(self, how: _Pool) -> None:
        self.how = how
        self.slots = worker_slots(how.workers) if how.recipe is not None else None
        self.processes: dict[int, multiprocessing.process.BaseProcess] = {}
        self.tokens: dict[concurrent.futures.Future[RunReport], int] = {}
        self.next_token = itertools.count(1)  # written to the worker slots; 0 means idle
        self.pool: concurrent.futures.Executor
        # Threads share the process's random generators, which a task's seed methods set: the tasks that seed
        # them take turns (``_in_turn``), so each draws from its own seed as in its own process (attacker at14 N9).
        self.seeding = threading.Lock()
        if self.slots is not None:
            self.pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=how.workers, initializer=claim_slot, initargs=(self.slots,)
            )
        else:
            self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=how.workers)

    def submit(self, task: LuigiTask) -> concurrent.futures.Future[RunReport]:
        """Start ``task``; a parameter value pickle refuses is this task's failure (a failed future).

        Raises:
            BrokenProcessPool: the pool broke before (a worker process died); ``recover`` says who.
        """
        how = self.how
        if how.recipe is not None:
            try:
                shipped = ship(task)
            except Exception as exc:  # a parameter value pickle refuses: this task's failure
                failed: concurrent.futures.Future[RunReport] = concurrent.futures.Future()
                failed.set_exception(exc)
                return failed
            token = next(self.next_token)
            future = self.pool.submit(run_in_worker, shipped, how.recipe, how.lock, token)
            self.tokens[future] = token
            # The pool's own map of its processes (CPython's, since 3.3): their exit codes say which died.
            self.processes.update(getattr(self.pool, "_processes", None) or {})
            return future
        # In the caller's context, so the build's frozen config holds in the worker thread too.
        context = contextvars.copy_context()
        if getattr(task, "fix_random_seed_methods", None):
            return self.pool.submit(context.run, _in_turn, self.seeding, task, how.manager, how.lock)
        return self.pool.submit(context.run, run_one_reporting, task, how.manager, how.lock)

    def forget(self, future: concurrent.futures.Future[RunReport]) -> None:
        """``future`` has been settled."""
        self.tokens.pop(future, None)

    @staticmethod
    def broken(futures: set[concurrent.futures.Future[RunReport]]) -> bool:
        """Whether one of ``futures`` failed because the process pool broke."""
        return any(isinstance(future.exception(), BrokenProcessPool) for future in futures if not future.cancelled())

    def recover(
        self,
        running: dict[concurrent.futures.Future[RunReport], str],
        result: BuildResult,
        alone: set[str],
        give_up: bool = False,
    ) -> _Recovery:
        """After the pool broke: which task killed it, what the others did; the pool is shut down.

        A worker process that died on its own has another exit code than the ones
        ``concurrent.futures`` then terminates (SIGTERM); its slot names its task, which fails with
        ``WorkerDiedError``. When none can be told (a worker killed by SIGTERM from outside, or a
        result that could not be received), a task that ran alone (``alone``) or was the only
        suspect is blamed; else the suspects are run again, each alone, so the next break names the
        culprit. The suspects: the tasks whose worker was running them, or, when a result could not
        be received (its worker had finished), every task the pool took down. ``give_up``: blame
        every task the pool took down (the pool broke again and again with nobody to blame).
        """
        self.pool.shutdown(wait=True)  # joins the pool's processes: their exit codes are known
        recovery = _Recovery()
        by_token: dict[int, str] = {}
        broken: list[str] = []
        cause = ""
        for future, key in running.items():
            error = future.exception()
            if not isinstance(error, BrokenProcessPool):
                recovery.settled[key] = error if error is not None else future.result()
                continue
            broken.append(key)
            cause = cause or _remote_cause(error)
            token = self.tokens.get(future)
            if token is not None:
                by_token[token] = key
        pid_of = {
            by_token[token]: pid
            for pid, token in (self.slots.running() if self.slots is not None else {}).items()
            if token in by_token
        }
        exitcodes = {pid: process.exitcode for pid, process in self.processes.items()}
        sigterm = -signal.SIGTERM
        for key, pid in pid_of.items():
            if exitcodes.get(pid) not in (None, sigterm):  # died on its own, before the pool terminated the rest
                recovery.settled[key] = _died(result.label(key), pid, exitcodes[pid], cause)
        if not recovery.settled.keys() & set(broken):
            suspects = broken if cause else list(pid_of)
            blame = (
                broken
                if give_up
                else [key for key in broken if key in alone] or (suspects if len(suspects) == 1 else [])
            )
            for key in blame:
                found = pid_of.get(key)
                exitcode = exitcodes.get(found) if found is not None else None
                recovery.settled[key] = _died(result.label(key), found, exitcode, cause)
            if not blame:
                recovery.alone.update(suspects)
        recovery.again = [key for key in broken if key not in recovery.settled]
        return recovery


_FRUITLESS_BREAKS = 3  # then the tasks a broken pool took down fail: something kills its workers whatever runs


@dataclasses.dataclass
class _Recovery:
    """What ``_Workers.recover`` found: outcomes to record, tasks to run again, tasks to run alone."""

    settled: dict[str, RunReport | BaseException] = dataclasses.field(default_factory=dict)
    again: list[str] = dataclasses.field(default_factory=list)
    alone: set[str] = dataclasses.field(default_factory=set)


def _remote_cause(error: BaseException) -> str:
    """The last line of what broke the pool in the pool's own thread (a result that could not be unpickled)."""
    cause = error.__cause__
    if cause is None:
        return ""
    lines = [line.strip() for line in str(cause).strip().strip("'").strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _died(label: str, pid: int | None, exitcode: int | None, cause: str) -> WorkerDiedError:
    """The error for the task whose worker process died (or whose result broke the pool)."""
    process = f"worker process {pid}" if pid is not None else "worker process"
    if cause and exitcode in (None, -signal.SIGTERM):  # its worker finished; its result broke the pool
        how = f"its result could not be received from the worker process ({cause})"
    elif exitcode is not None and exitcode < 0:
        try:
            name = f", {signal.Signals(-exitcode).name}"
        except ValueError:
            name = ""
        how = f"worker process died (signal {-exitcode}{name})"
    elif exitcode is not None:
        how = f"worker process died (exit code {exitcode})"
    else:
        how = "worker process died"
    advice = (
        "SIGKILL usually comes from the out-of-memory killer (see `dmesg`): give the task more memory or build "
        "with fewer workers."
        if exitcode == -signal.SIGKILL
        else "Run it with workers=1 (or executor='thread') to see where it stops."
    )
    return WorkerDiedError(
        f"{label}: {how} while it ran ({process}); nothing it staged was committed, so it counts as not built. "
        f"{advice} Tasks running beside it in the pool are run again.",
        pid=pid,
        exitcode=exitcode,
    )


def _execute_in_pool(
    graph: TaskGraph,
    pending: list[str],
    result: BuildResult,
    how: _Pool,
    keep_going: bool,
    display: Progress,
    release: Callable[[str], None],
    limits: ResourceLimits,
) -> None:
    ready, waiting, dependants = dependency_state(graph, pending)
    ready.reverse()  # popped from the end: the walk's order first
    again: list[str] = []  # taken down with a dead worker's pool: run first, even after a failure stopped the build
    alone: set[str] = set()  # a pool broke while they ran and the dead worker could not be told: run each alone
    running: dict[concurrent.futures.Future[RunReport], str] = {}
    workers = how.workers
    pool = how.open()
    stopped = False
    fruitless = 0  # pool breaks in a row that named no task and isolated none
    reopen = False  # the pool broke while no task ran in it (found at submit)

    def settle(key: str, outcome: RunReport | BaseException) -> None:
        nonlocal stopped
        _record(result, display, key, outcome)
        if isinstance(outcome, BaseException):
            # A missing external input (luigi's "missing data") stops only what needs it, as luigi's worker.
            stopped = stopped or result.interrupted is not None or not (keep_going or is_external(graph.nodes[key]))
            return
        release(key)
        for child in dependants_of(dependants, key):
            if settle_one(waiting, child):
                ready.append(child)

    try:
        while ready or again or running:
            while result.interrupted is None and len(running) < workers:
                queue = again if again else ready if not stopped else []
                if not queue:
                    break
                fitting = limits.last_fitting(queue, running.values())  # luigi's Task.resources rule
                if fitting is None:
                    if running:
                        break  # a running task holds what they need: wait for it
                    key = queue.pop()  # needs more than there is at all: luigi would never start it
                    settle(key, limits.refusal(key) or RuntimeError(f"{result.label(key)} cannot start"))
                    continue
                queue.append(queue.pop(fitting))
                key = queue[-1]
                if running and (key in alone or not alone.isdisjoint(running.values())):
                    break
                queue.pop()
                try:
                    future = pool.submit(graph.nodes[key])
                except BrokenProcessPool:  # a worker died while idle: a new pool, nobody to blame
                    fruitless += 1
                    if fruitless > _FRUITLESS_BREAKS:
                        settle(key, _died(result.label(key), None, None, ""))
                    else:
                        queue.append(key)
                    reopen = True
                    break
                running[future] = key
                display.started(result.label(key))
            if not running:
                if reopen and result.interrupted is None:
                    pool.pool.shutdown(wait=True)
                    pool, reopen = how.open(), False
                    continue
                break
            finished, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
            if pool.broken(finished):
                recovery = pool.recover(running, result, alone, give_up=fruitless >= _FRUITLESS_BREAKS)
                fruitless = 0 if recovery.settled or recovery.alone else fruitless + 1
                running.clear()
                pool, reopen = how.open(), False
                alone |= recovery.alone
                again.extend(reversed(recovery.again))
                for key, outcome in recovery.settled.items():
                    alone.discard(key)
                    settle(key, outcome)
                continue
            for future in finished:
                key = running.pop(future)
                pool.forget(future)
                error = future.exception()
                alone.discard(key)
                settle(key, error if error is not None else future.result())
    except KeyboardInterrupt as exc:  # Ctrl-C while waiting: start nothing more, let running tasks end
        result.interrupted = exc
        pool.pool.shutdown(wait=True, cancel_futures=True)
        for future, key in running.items():
            if future.done() and not future.cancelled():
                _settle(result, display, key, future)
    finally:
        pool.pool.shutdown(wait=True)
    done = set(result.ran) | set(result.cached) | set(result.failed)
    result.not_run.extend(key for key in pending if key not in done)


def _settle(result: BuildResult, display: Progress, key: str, future: concurrent.futures.Future[RunReport]) -> bool:
    """Record a finished future's outcome; return whether the task succeeded."""
    error = future.exception()
    _record(result, display, key, error if error is not None else future.result())
    return error is None
