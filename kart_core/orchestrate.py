"""orchestrate(): the one way kart builds a graph. ``build()``, ``kart_core.run`` and ``kart run`` call it.

One build is: read the configuration (and the target settings, e.g. the signing key) afresh and
freeze it; re-arm ``rerun`` on every task it visits; walk the graph (cyclic GC paused, one
listing per directory on object storage); run what is missing (``executor.execute``) under a progress display;
walk and run again while a commit of the build replaced content that a task found complete had loaded
(``_Rounds``: a shared upstream rerun or repaired with other content); print the summary line;
call the ``kart_after_build`` hooks. Callers only present the ``BuildResult``: ``build()`` raises
``GokartBuildError`` and loads outputs, ``run`` logs and returns luigi's codes, the CLI prints.

A task whose ``complete()``, ``output()`` or ``requires()`` raises while the graph is walked is a
failure of that task (luigi's "scheduling error"), named by the deepest task whose call raised;
nothing runs then. A ``KeyboardInterrupt`` is reported like a failure, then re-raised.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence

import pluggy

from kart_core import lineage, luigi_events, rerun, target_config, transaction
from kart_core.contract import KartTask, LuigiTask, is_kart_task
from kart_core.errors import DamagedOutputError, IntegrityError, RoundLimitError
from kart_core.executor import Executor, execute
from kart_core.graph import TaskGraph, node_key, requirements_of, walk
from kart_core.loading import check_finished, check_signed, load_output
from kart_core.manifest import OutputRecord
from kart_core.outcome import BuildResult, uninitialized_message
from kart_core.param_plan import config_frozen
from kart_core.param_roundtrip import warn_ambiguous_parameters
from kart_core.progress import Progress
from kart_core.runner import default_hook_manager, repair_output
from kart_core.storage import listing_scope
from kart_core.structure import flatten
from kart_core.task_memo import memo_of
from kart_core.task_parameters import check_task_on_kart_section
from kart_core.worker import check_worker_section, refuse_worker_timeouts
from kart_core.workspace import MANIFEST, log_task_path

__all__ = ["orchestrate"]

logger = logging.getLogger(__name__)


def orchestrate(
    roots: Sequence[LuigiTask],
    *,
    workers: int = 1,
    executor: Executor = "process",
    keep_going: bool = False,
    hook_manager: pluggy.PluginManager | None = None,
    progress: bool | None = None,
    lock: bool | None = None,
    load_roots: bool = False,
    before_run: Callable[[list[LuigiTask]], None] | None = None,
) -> BuildResult:
    """Build ``roots`` and whatever they need; return what happened, never raising for a task's failure.

    Args:
        roots: the tasks asked for (kart tasks or plain luigi tasks).
        workers: how many tasks may run at once.
        executor: "process" or "thread", used when ``workers > 1``.
        keep_going: after a failure, go on with the tasks that do not depend on it.
        hook_manager: plugins to call; default: run logs and entry-point plugins.
        progress: draw a live progress bar (rich) on stderr (None: when it is a terminal and CI is unset);
            the summary line is printed to stderr either way.
        lock: passed to ``run_one`` (hold each task's lock while it runs; None: as the task says).
        load_roots: when nothing failed, load each root's output(s) into ``result.values`` before the
            summary line (``kart_core.loading.load_output`` with repair: a damaged root is rebuilt, and
            it and whatever its rebuild ran count as repaired).
        before_run: called once the walk succeeded, with the tasks it found incomplete (those the build
            will run, upstreams first), before any runs; what it raises propagates (``kart run`` checks
            their workspaces this way), and then nothing runs, no summary is printed, no hook is called.

    Returns:
        The ``BuildResult``; ``failed`` holds each failing task's exception, and each task whose outputs
        could not be handed back: a root whose load raised (``load_roots``), and with signing on a cached
        root whose manifest signing refuses (without ``load_roots``) or a cached upstream of a task that
        failed with an ``IntegrityError`` (that refusal); such a task is not counted as cached. Without
        ``load_roots``, a cached root whose output an unfinished run left (``loading.check_finished``) is
        run again, as a load would have it, and counts as repaired (as failed when that rebuild raised
        or repairs are off).

    Raises:
        KeyboardInterrupt: a task's ``run()`` (or the user) interrupted the build; raised after the
            summary and the hooks, naming the task, with the original interrupt as ``__cause__``.
        Exception: what loading a root raised (``load_roots``: a damaged root with repairs off, a
            signature refusal, the failed rebuild); raised after the summary and the hooks. And what
            ``before_run`` raised, before anything ran.
        UnsupportedFeatureError: a task to run sets luigi's ``worker_timeout`` (``worker.refuse_worker_timeouts``);
            raised before anything ran.
    """
    manager = hook_manager if hook_manager is not None else default_hook_manager()
    # A build inside a task's run() (or in a thread it started): the roots it returns are that run's inputs.
    outer = transaction.nesting_run(lambda: _described(roots))
    # Read afresh here, then the same for the whole build (the walk and tasks created while running);
    # target settings (the signing key) likewise, unless the caller already froze them.
    # detached: the build looks at committed outputs only. Another build's run of a shared task object (luigi's
    # instance cache: two builds in threads of one process) stages its outputs beside the final paths; a thread
    # started after that run began (a request's thread, this build's pool) would otherwise join that run and
    # find its staged, uncommitted output: the task counted complete, a downstream loading what may never commit.
    # build_states: the rerun and staleness this build finds are its own, not those of a build in another thread
    # over the same (luigi-cached) task objects.
    with (
        config_frozen() as config_changed,
        target_config.frozen(),
        transaction.detached(),
        transaction.loads_noted_by(outer),
        rerun.build_states(),
    ):
        check_worker_section()  # [gokart_worker] keys kart's executor cannot honour are named, not dropped
        check_task_on_kart_section()  # and a misspelt [TaskOnKart] setting (signing_kye) is named, not ignored
        checker = _Checker()
        walked = _walk(roots, forget_upstreams=config_changed, checker=checker)
        load_error: Exception | None = None
        if isinstance(walked, BuildResult):
            result, display = walked, Progress(total=len(walked.nodes), live=progress)
        else:
            to_run = [walked.nodes[key] for key in walked.order if key in walked.expanded]
            refuse_worker_timeouts(to_run)  # luigi's worker_timeout: kart cannot stop a run, so none starts
            if before_run is not None:
                before_run(to_run)
            display = Progress(total=len(walked), live=progress)
            run = functools.partial(
                execute,
                workers=workers,
                executor=executor,
                keep_going=keep_going,
                hook_manager=manager,
                progress=display,
                lock=lock,
            )
            build = _Rounds(roots, checker, run, manager, display, load_roots, keep_going)
            if outer is not None:  # the roots' loads in the run are built inputs: stale when the roots are (lineage)
                outer.note_built(record.manifest for root in roots for record in _records(root))
            result, walked, load_error = build.run(walked)
            if not load_roots:  # what a load of a cached root would refuse as unfinished runs again, as a load's repair
                _repair_unfinished_roots(roots, result, manager, display)
            # Stale: found so by a walk, or run because an upstream was (and its rerun changed what it loaded).
            ran = set(result.ran)
            result.stale = list(dict.fromkeys(checker.stale + [key for key in checker.behind if key in ran]))
            # Before the summary line: a task whose outputs signing refuses is not counted as cached.
            _count_refused(_refusal_suspects(walked, result, roots if not load_roots else ()), result)
            _warn_stale_roots(roots, result, build.verdicts, checker.lineage)
    display.close(result.summary())
    manager.hook.kart_after_build(tasks=list(roots), result=result)
    if result.interrupted is not None:
        raise _interruption(result) from result.interrupted
    if load_error is not None:
        raise load_error
    return result


_MAX_ROUNDS = (
    20  # walks of one build after the first; past it a root still built on replaced content fails (RoundLimitError)
)


class _Rounds:
    """Run a walked graph; while a commit of this build replaced content that a task judged complete had
    loaded, walk and run again, so no root is handed back built from replaced inputs.

    The walk judges every task before anything runs. A task of the build may then commit other content
    for an upstream of a task judged complete: a ``rerun=True`` of a shared upstream, a damaged upstream
    repaired by a task's run or by the load of a root (``load_roots``). After each round the roots'
    lineage is checked again (``kart_core.lineage``), only when such a commit touched a manifest that a
    checked task recorded as an input (``Lineage.records_any``); when a root is stale, the next round
    walks the roots again: the stale task runs, and each task built on it runs again only if what it
    loaded changed (``run_one``'s own check). ``rerun=True`` is not re-armed for a task walked before in
    this build (it reruns once per build), and a task that ran in this build is taken as complete unless
    its own lineage is stale (a ``complete()`` that is always False: it fetches once per build). After a
    failure, the next round walks only the roots that do not depend on it (``keep_going``; without it the
    build stops). A round holds back the tasks that would load a task found complete whose lineage holds
    a task the round runs (``_hold_back``): the next round runs them once, after their upstreams were
    judged again. The rounds end when nothing stale is left among the roots walked or a round committed
    nothing (the roots still stale are then named, ``_warn_stale_roots``), or after ``_MAX_ROUNDS`` more
    rounds that each committed: a root still stale then fails with a ``RoundLimitError`` (``_give_up``).
    """

    def __init__(
        self,
        roots: Sequence[LuigiTask],
        checker: _Checker,
        run: Callable[[TaskGraph], BuildResult],
        manager: pluggy.PluginManager,
        display: Progress,
        load_roots: bool,
        keep_going: bool = False,
    ) -> None:
        self.roots, self.checker, self.execute = roots, checker, run
        self.manager, self.display, self.load_roots, self.keep_going = manager, display, load_roots, keep_going
        # The roots' verdicts when the last check found any root stale (None: the walk's lineage holds them).
        self.verdicts: list[tuple[KartTask, lineage.Verdict]] | None = None
        self.held: set[str] = set()  # keys the last round held back for the next (``_hold_back``)

    def run(self, graph: TaskGraph) -> tuple[BuildResult, TaskGraph, Exception | None]:
        """Run ``graph``, then the rounds it takes; the merged result, the last graph walked and what
        loading a root raised (``load_roots``). A task held back and never run counts as not run."""
        result = self._round(graph)
        outcome = self._rounds(result, graph)
        done = set(result.ran).union(result.cached, result.failed, result.not_run)
        result.not_run.extend(key for key in graph.order if key in self.held and key not in done)
        return outcome

    def _round(self, graph: TaskGraph) -> BuildResult:
        """Run ``graph``'s incomplete tasks but those ``_hold_back`` keeps for the next round."""
        self.held = _hold_back(graph, self.checker.lineage)
        if not self.held:
            return self.execute(graph)
        kept = [key for key in graph.order if key not in self.held]
        return self.execute(dataclasses.replace(graph, order=kept, expanded=graph.expanded - self.held))

    def _rounds(self, result: BuildResult, graph: TaskGraph) -> tuple[BuildResult, TaskGraph, Exception | None]:
        roots = list(self.roots)  # those the next round walks: none that depends on a failure
        last: list[str] = list(result.ran)  # what the latest round ran
        for _ in range(_MAX_ROUNDS):
            if result.interrupted is not None:
                return result, graph, None
            held = bool(self.held)  # then the next round runs them, whatever the check of the roots finds
            if result.failed:
                roots = _clear_of(roots, graph, result.failed) if self.keep_going else []
                stale = self._stale(graph, result.ran + result.repaired)  # the verdicts the warning names
                if not roots or not (held or any(node_key(root) in stale for root in roots)):
                    return result, graph, None
            elif not held and not self._stale(graph, result.ran + result.repaired):
                if not self.load_roots:
                    return result, graph, None
                rebuilt = len(result.repaired)
                load_error = _load_roots(self.roots, result, self.manager, self.display)
                if load_error is not None or not self._stale(graph, result.repaired[rebuilt:]):
                    return result, graph, load_error
            walked = self._walk_again(graph, roots, result.ran)
            if isinstance(walked, BuildResult):
                _merge(result, walked)
                return result, graph, None
            graph = walked
            part = self._round(graph)
            last = list(part.ran)
            _merge(result, part)
            self.display.recount(len(result.ran), len(result.cached), len(result.failed), len(result.repaired))
            # Nothing committed in the round (a task that ran again counts: it committed again): what is stale stays.
            if not part.ran and not part.repaired and not held:
                break
        else:
            if result.interrupted is None and not result.failed and self._stale(graph, result.ran + result.repaired):
                self._give_up(result, last)
                return result, graph, None
        if result.interrupted is None:
            self._stale(graph, result.ran + result.repaired)  # the verdicts the warning names
        load_error = _load_roots(self.roots, result, self.manager, self.display) if self.load_roots else None
        return result, graph, load_error

    def _give_up(self, result: BuildResult, last: Sequence[str]) -> None:
        """Fail each root the last check found stale (``self.verdicts``) with a ``RoundLimitError``: the cap
        was reached and every round still committed other content for what another task had loaded."""
        ran = ", ".join(_label(result.nodes, key) for key in last) or "nothing"
        for root, verdict in self.verdicts or []:
            key = node_key(root)
            upstreams = [item.input.task or item.manifest for item in verdict.direct] + verdict.behind
            error = RoundLimitError(
                f"kart build stopped after {_MAX_ROUNDS + 1} rounds with {root.kart_label()} still built on content "
                f"this build replaced (what it loaded of {', '.join(dict.fromkeys(upstreams))} was committed again, "
                f"with other content): every round committed other content for an output another task had loaded "
                f"(the last round ran {ran}), so the lineage never settles. Tasks that load each other's outputs "
                "(through a target, not requires()), or whose output changes at every run, do this: make one of "
                "them require the other, or load a fixed input."
            )
            _failed(result, key, error)
            logger.error("%s", error)

    def _stale(self, graph: TaskGraph, committed: Sequence[str]) -> set[str]:
        """The keys of the roots stale after ``committed`` (keys that ran or were repaired) committed (empty: none).

        No read unless one of them is a task whose manifest a task checked by the walk recorded as an
        input (a commit of a task nobody had loaded replaces nothing anyone was built from); then the
        roots' lineage is read afresh, once.
        """
        if not committed:
            return set()
        tasks = [graph.nodes.get(key) for key in committed]
        # A task repaired further up (outside the graph): which manifest it rewrote is not known here. A
        # plain luigi task records nothing and is recorded by nobody.
        if all(task is not None for task in tasks):
            recorded = self.checker.lineage
            if not recorded.records_inputs:
                return set()  # the walk met no recorded input at all (a first build): nothing to compare
            manifests = (log_task_path(task, MANIFEST) for task in tasks if task is not None and is_kart_task(task))
            if not recorded.records_any(manifests):  # compared canonically (a workspace spelled otherwise)
                return set()
        checked = lineage.Lineage(self.checker.lineage.memo)  # the memo's manifests: those whose file is unchanged
        self.verdicts = [
            (root, verdict)
            for root in self.roots
            if is_kart_task(root)
            and (verdict := lineage.stale_verdict(flatten(root.kart_outputs()), checked, root.kart_requires))
            is not None
        ]
        return {node_key(root) for root, _ in self.verdicts}

    def _walk_again(self, graph: TaskGraph, roots: Sequence[LuigiTask], ran: Sequence[str]) -> TaskGraph | BuildResult:
        """Walk ``roots`` again, without re-arming ``rerun`` on the tasks walked before; the tasks in ``ran``
        (they ran in this build) count as complete unless their lineage is stale."""
        self.checker.walked.update(graph.nodes)
        self.checker.ran.update(ran)
        self.verdicts = None
        return _walk(roots, forget_upstreams=False, checker=self.checker)


def _hold_back(graph: TaskGraph, walked: lineage.Lineage) -> set[str]:
    """The incomplete tasks of ``graph`` that wait for the next round: those that would load, directly or
    through tasks that run before them, a task the walk found complete whose recorded lineage holds a
    task this round runs (``walked``: the walk's lineage, ``Lineage.built_on``).

    That complete task may be stale once the round's task commits (its ``rerun=True``, or a run with other
    content), and what the round would build on it would be built again in the next round: a task run
    twice, the first time from inputs about to be replaced. Held back, it runs once, after the next walk
    judged its upstreams again. The tasks this round runs that a lineage records, and what they need, are
    never held (so each round makes progress). No work without recorded inputs or without tasks to run.
    """
    if not walked.records_inputs or not graph.expanded:
        return set()
    manifests = {key: [record.manifest for record in _records(graph.nodes[key])] for key in graph.expanded}
    recorded = walked.recorded(path for paths in manifests.values() for path in paths)
    at_risk = walked.built_on(recorded) if recorded else set()
    if not at_risk:
        return set()
    shaky = {
        key
        for key, task in graph.nodes.items()
        if key not in graph.expanded and any(record.manifest in at_risk for record in _records(task))
    }
    held: set[str] = set()
    for key in graph.order:  # upstreams first
        if key in graph.expanded and any(dep in shaky or dep in held for dep in graph.upstream[key]):
            held.add(key)
    # What the recorded tasks need runs now, even under a shaky task (a lineage that contradicts the graph).
    held -= _with_upstreams(graph, [key for key, paths in manifests.items() if recorded.intersection(paths)])
    if held:
        logger.info(
            "kart: %s wait for the next round: they would load a task built on one this round runs, stale once "
            "it commits other content",
            ", ".join(sorted(_label(graph.nodes, key) for key in held)),
        )
    return held


def _label(nodes: dict[str, LuigiTask], key: str) -> str:
    """``Class[8-hex id]`` for a kart task among ``nodes`` (by key), else its key."""
    task = nodes.get(key)
    return task.kart_label() if task is not None and is_kart_task(task) else key


def _records(task: LuigiTask) -> list[OutputRecord]:
    """The integrity records of a kart ``task``'s outputs (none for outputs without one, or a plain luigi task)."""
    if not is_kart_task(task):
        return []
    targets = flatten(task.kart_outputs())
    return [record for target in targets if isinstance(record := getattr(target, "record", None), OutputRecord)]


def _with_upstreams(graph: TaskGraph, keys: Iterable[str]) -> set[str]:
    """``keys`` and every upstream of theirs in ``graph``."""
    found: set[str] = set()
    stack = list(keys)
    while stack:
        key = stack.pop()
        if key not in found:
            found.add(key)
            stack.extend(graph.upstream.get(key, ()))
    return found


def _clear_of(roots: Sequence[LuigiTask], graph: TaskGraph, failed: Iterable[str]) -> list[LuigiTask]:
    """The ``roots`` none of whose upstreams in ``graph`` (nor themselves) is among ``failed`` (keys)."""
    tainted: dict[str, bool] = {}
    bad = set(failed)
    for start in map(_key_or_none, roots):
        if start is None or start in tainted:
            continue
        stack: list[tuple[str, bool]] = [(start, False)]
        while stack:  # depth first without recursion (a chain of 100,000 tasks)
            key, explored = stack.pop()
            upstreams = graph.upstream.get(key, ())
            if explored:
                tainted[key] = key in bad or any(tainted.get(upstream, False) for upstream in upstreams)
            elif key not in tainted:
                tainted[key] = key in bad  # guards a revisit while explored
                stack.append((key, True))
                stack.extend((upstream, False) for upstream in upstreams if upstream not in tainted)
    return [root for root in roots if not tainted.get(_key_or_none(root) or "", True)]


def _merge(result: BuildResult, part: BuildResult) -> None:
    """Fold a later round's ``part`` into ``result``: a task counts once, as failed when it failed in a
    round, as not run when a later round's failure stopped it (not also as cached or ran), else as ran
    when it ran in any round."""
    result.nodes.update(part.nodes)
    # Failed, or not run (an upstream failed in a later round): what it left on disk is not up to date.
    stopped = set(part.failed).union(part.not_run)
    for key in stopped:
        for counts in (result.ran, result.cached, result.repaired):
            if key in counts:
                counts.remove(key)
    done = set(result.ran)
    cached = set(result.cached)
    again = [key for key in part.ran if key not in done]
    if cached.intersection(again):
        ran_now = set(again)
        result.cached = [key for key in result.cached if key not in ran_now]
    result.ran.extend(again)
    counted = done | cached | set(result.repaired)
    result.cached.extend(key for key in part.cached if key not in counted and key not in stopped)
    for key in part.repaired:
        result.add_repaired(key)
    result.failed.update(part.failed)
    result.scheduling_failed |= part.scheduling_failed
    not_run = set(result.not_run)
    result.not_run.extend(key for key in part.not_run if key not in not_run)
    result.interrupted = result.interrupted or part.interrupted
    result.seconds += part.seconds


def _load_roots(
    roots: Sequence[LuigiTask], result: BuildResult, manager: pluggy.PluginManager, display: Progress
) -> Exception | None:
    """Load every root into ``result.values`` (unless the build failed); count what repairing them rebuilt.

    A root whose load raised counts as failed with that error (not as cached, ran or repaired): the
    build could not hand it back (a signature refusal, damage with repairs off, its failed rebuild).

    Returns:
        What a load raised (the caller raises it after the summary and the hooks); None otherwise.
    """
    if result.failed or result.interrupted is not None:
        return None
    values = []
    for root in roots:
        rebuilt: list[str] = []
        try:
            values.append(load_output(root, repair=True, hook_manager=manager, repaired=rebuilt))
        except Exception as exc:
            _failed(result, node_key(root), exc)
            return exc
        finally:
            for key in rebuilt:
                was_cached = key in result.cached
                if result.add_repaired(key):
                    display.repaired(was_cached)
    result.values = values
    return None


def _repair_unfinished_roots(
    roots: Sequence[LuigiTask], result: BuildResult, manager: pluggy.PluginManager, display: Progress
) -> None:
    """Run each cached root again whose output an unfinished run left (``loading.check_finished``), as loading
    it would (``runner.repair_output``); it and what its rebuild ran count as repaired. With repairs off, or
    when the rebuild raised, the root counts as failed with that error: the build cannot hand it back."""
    if result.interrupted is not None:
        return
    cached = set(result.cached)
    for root in roots:
        key = _key_or_none(root)
        if key is None or key not in cached:
            continue
        try:
            check_finished(root)
        except DamagedOutputError as exc:
            rebuilt: list[str] = []
            try:
                if not is_kart_task(root) or not repair_output(root, exc, manager, rebuilt):
                    _failed(result, key, exc)
            except Exception as error:
                _failed(result, key, error)
            finally:
                for done in rebuilt:
                    was_cached = done in result.cached
                    if result.add_repaired(done):
                        display.repaired(was_cached)


def _warn_stale_roots(
    roots: Sequence[LuigiTask],
    result: BuildResult,
    verdicts: list[tuple[KartTask, lineage.Verdict]] | None,
    walked: lineage.Lineage,
) -> None:
    """Warn about each root left built on stale content further up (``kart_core.lineage``).

    The walk reruns a root's stale upstreams and checks the root again when it runs, and the build walks
    again when one of its commits replaced what a task found complete had loaded (``_Rounds``), so this
    is left only when the stale upstream is not among what the root requires (an output loaded by path
    or from a task it does not require) or could not be rebuilt. ``verdicts``: the roots found stale by
    the build's last check of their lineage; None when none was needed (nothing the walk checked was
    replaced), and the cached roots' verdicts are then those of ``walked``, the last walk's lineage (no read).
    """
    if verdicts is None:
        cached = set(result.cached)
        verdicts = [
            (root, verdict)
            for root in roots
            if is_kart_task(root)
            and node_key(root) in cached
            and (verdict := lineage.stale_verdict(flatten(root.kart_outputs()), walked, root.kart_requires)) is not None
        ]
    for root, verdict in verdicts:
        if node_key(root) in result.failed or node_key(root) in result.not_run:
            continue  # failed or stopped by a failure: nothing of it is handed back
        logger.warning("%s", walked.describe(root.kart_label(), verdict, left=True))
        result.stale_roots.append(node_key(root))


def _refusal_suspects(graph: TaskGraph, result: BuildResult, roots: Sequence[LuigiTask]) -> list[str]:
    """The cached tasks whose manifests to check when signing is on: ``roots`` (a build that loads
    nothing: ``load_output`` refuses a root it loads), and the upstreams of a task that failed with an
    ``IntegrityError`` (its run loaded them). Only keys counted as cached; none without signing."""
    if target_config.current().signer is None:
        return []
    cached = set(result.cached)
    suspects = [key for key in map(_key_or_none, roots) if key in cached]
    for key, error in result.failed.items():
        if isinstance(error, IntegrityError):
            suspects.extend(upstream for upstream in graph.upstream.get(key, ()) if upstream in cached)
    return list(dict.fromkeys(suspects))


def _count_refused(keys: Sequence[str], result: BuildResult) -> None:
    """Count each of ``keys`` whose manifest signing refuses (``loading.check_signed``) as failed, not cached.

    One manifest read per key. A downstream that failed loading it keeps its own failure beside it.
    """
    for key in keys:
        try:
            check_signed(result.nodes[key])
        except IntegrityError as exc:
            _failed(result, key, exc)


def _failed(result: BuildResult, key: str, error: Exception) -> None:
    """Count ``key`` as failed with ``error`` instead of ran, cached or repaired."""
    for counted in (result.ran, result.cached, result.repaired):
        if key in counted:
            counted.remove(key)
    result.failed[key] = error


def _walk(roots: Sequence[LuigiTask], forget_upstreams: bool, checker: _Checker) -> TaskGraph | BuildResult:
    """Walk the graph under ``roots`` as a build does; a walk that raised becomes a result naming the culprit.

    Only incomplete tasks are expanded. Each visited kart task's ``rerun`` is re-armed, so
    ``rerun=True`` deletes and reruns in every build, not only the first of the process. With
    ``forget_upstreams`` (the config changed since the previous build), tasks kept from earlier
    builds derive their upstreams again.
    """
    try:
        memo = _lineage_memo(roots)
        with _cyclic_gc_paused(), listing_scope(), lineage.walk_scope(memo) as checker.lineage:
            if forget_upstreams:
                _forget_upstreams(roots)
            return walk(roots, expand=checker, discovered=checker.events.discovered)
    except (Exception, SystemExit) as exc:
        culprit = checker.current if checker.current is not None else _first_failing(roots)
        if checker.current is not None:
            checker.events.complete_raised(culprit)  # luigi's DEPENDENCY_MISSING
        else:
            checker.events.broken(culprit, exc)  # luigi's BROKEN_TASK
        _fire_the_rest(roots, checker.events)
        return _unschedulable(roots, culprit, exc)


def _lineage_memo(roots: Sequence[LuigiTask]) -> lineage.LineageMemo:
    """The ``LineageMemo`` of the previous build of one of ``roots`` in this process (a new one when none was), now
    held by each kart root (``TaskMemo.lineage``): a cached graph built again reads only the manifests that changed.
    """
    kart_roots = [root for root in roots if is_kart_task(root)]
    memo = next((found for root in kart_roots if (found := memo_of(root).lineage) is not None), None)
    if memo is None:
        memo = lineage.LineageMemo()
    for root in kart_roots:
        memo_of(root).lineage = memo
    return memo


def _fire_the_rest(roots: Sequence[LuigiTask], events: luigi_events.WalkEvents) -> None:
    """After a walk stopped at a task whose call raised: walk on as luigi's worker does (it walks every task
    whatever raised) to fire the walk's events of the tasks not reached, once each; nothing else comes of it.

    Only while luigi event handlers are registered. A task whose ``complete()`` was asked before is not asked
    again (its answer is remembered); each call that raises is that task's event and ends its branch.
    """
    if not events.active:
        return
    seen: set[str] = set()
    stack = list(reversed(roots))
    while stack:
        task = stack.pop()
        try:
            if task.task_id in seen:
                continue
            seen.add(task.task_id)
            complete = events.judged_before(task)
            if complete is None:
                complete = bool(task.complete())
                events.judged(task, complete)
        except (Exception, SystemExit):
            events.complete_raised(task)
            continue
        if complete or getattr(task, "run", None) is None:  # complete, or external: luigi asks no upstream
            continue
        try:
            upstreams = requirements_of(task)
        except (Exception, SystemExit) as exc:
            events.broken(task, exc)
            continue
        events.discovered(task, upstreams)
        stack.extend(reversed(upstreams))


def _forget_upstreams(roots: Sequence[LuigiTask]) -> None:
    """Make every kart task reachable from ``roots`` ask ``requires()`` again, under the new config.

    A task object kept across builds (the caller's, or luigi's cached instance) remembers the
    upstreams it created and the unique id computed from them; an upstream may take a parameter
    from the config. Only after the config changed: otherwise what they remember is still right.
    """
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        task = stack.pop()
        if id(task) in seen or not is_kart_task(task):
            continue
        seen.add(id(task))
        stack.extend(task.kart_forget_upstreams())


class _Checker:
    """The walk's ``expand``: re-arm ``rerun``, then ask ``complete()``; remembers whose call is under way,
    which tasks ``complete()`` found stale and which complete ones are built on a stale upstream
    (``kart_core.lineage``).

    A complete kart task whose lineage holds a stale task further up (``Verdict.behind``: A committed
    again with other content, B loaded the old A, C loaded B) is expanded like an incomplete one, so
    the walk reaches B, which ``complete()`` finds stale: B runs, and C runs only if its check at run
    time (``run_one``) finds B's new output other than what C loaded. Its lineage is read once per
    walk (``lineage.walk_scope``): the manifests ``complete()`` read are not read again.
    """

    def __init__(self) -> None:
        self.current: LuigiTask | None = None
        self.stale: list[str] = []
        self.behind: list[str] = []
        self.lineage = lineage.Lineage()  # the walk's (set by _walk), kept for the warning after the build
        self.walked: set[str] = set()  # keys walked by an earlier round of this build: rerun not re-armed
        self.ran: set[str] = set()  # keys that ran in an earlier round: complete unless their lineage is stale
        self.events = luigi_events.WalkEvents()  # luigi's events of the walk, once per task in the build
        self.warned = target_config.current().warned  # the build's: each ambiguous parameter is named once
        self.parameter_names: dict[type, tuple[str, ...]] = {}  # per class, for warn_ambiguous_parameters

    def __call__(self, task: LuigiTask) -> bool:
        self.current = task
        if not is_kart_task(task):
            incomplete = not task.complete()
            self.events.judged(task, not incomplete)
        else:
            key = node_key(task) if self.walked else ""
            if key in self.ran:
                # It ran in this build: again only if a commit of the build replaced what it loaded (its
                # complete() may be always False, a task that fetches anew: once per build).
                incomplete = self._behind(task)
                self.current = None
                return incomplete
            if not self.walked or key not in self.walked:
                task.kart_reset_rerun()
                warn_ambiguous_parameters(
                    task, self.warned, self.parameter_names
                )  # a DataFrame parameter: one id for many values
            else:
                task.kart_stale = []
            incomplete = not task.complete()
            self.events.judged(task, not incomplete)
            if incomplete and task.kart_stale:
                self.stale.append(node_key(task))
            elif not incomplete:
                incomplete = self._behind(task)
        self.current = None
        return incomplete

    def _behind(self, task: KartTask) -> bool:
        """Whether the complete ``task`` is built on a stale upstream (then noted, and expanded)."""
        outputs = flatten(task.kart_outputs())
        verdict = lineage.stale_verdict(outputs, self.lineage, task.kart_requires)
        self.lineage.release(outputs)
        if verdict is None:
            return False
        self.behind.append(node_key(task))
        logger.info(
            "%s was built from %s, stale: they run first; %s runs again if what it loaded or requires changed.",
            task.kart_label(),
            ", ".join(verdict.behind) or "an upstream",
            task.kart_label(),
        )
        return True


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a graph is walked; restore its state afterwards.

    Creating 100,000 task objects triggers repeated full collections that scan every one of them
    (a third of the walk's time); task objects form no garbage cycles that need collecting meanwhile.

    What the walk made is then moved to the oldest generation unscanned (``gc.freeze``, ``gc.unfreeze``): the
    collector would otherwise scan all of it at the first allocation after the walk, as one young generation
    (15 ms of a cached 1,000-link chain's 80 ms). Full collections still scan it, as they would have. Skipped while
    the program holds frozen objects of its own, which stay frozen.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            # Not while the program holds frozen objects of its own (gc.freeze before forking workers, to keep their
            # pages shared): gc.unfreeze would make them collectable and scanned again.
            if gc.get_freeze_count() == 0:
                gc.freeze()
                gc.unfreeze()
            gc.enable()


def _unschedulable(roots: Sequence[LuigiTask], culprit: LuigiTask, error: BaseException) -> BuildResult:
    """The result of a walk that raised: the culprit failed, the roots did not run."""
    result = BuildResult()
    key = _key_or_class(culprit)
    initialized = getattr(culprit, "initialized", None)
    if callable(initialized) and not initialized():
        from luigi.worker import TaskException  # only for this failure: luigi's worker module is not loaded otherwise

        # What luigi's worker raises for it (its check runs before the id is asked); the walk's own error is the cause.
        refused = TaskException(uninitialized_message(culprit))
        refused.__cause__ = error
        error = refused
    result.nodes[key] = culprit
    result.failed[key] = error
    result.scheduling_failed.add(key)
    for root in roots:
        root_key = _key_or_class(root)
        result.roots.append(root_key)
        if root_key != key and root_key not in result.nodes:
            result.nodes[root_key] = root
            result.not_run.append(root_key)
    return result


def _first_failing(roots: Sequence[LuigiTask]) -> LuigiTask:
    """The deepest task whose ``requires()`` or unique id raises (the first root if none does).

    Run only after a walk failed outside ``complete()``. Upstreams are asked first, so a root whose id cannot be computed
    because of an upstream's ``requires()`` is not blamed for it.
    """
    seen: set[int] = set()
    stack: list[tuple[LuigiTask, bool]] = [(root, False) for root in reversed(roots)]
    while stack:
        task, upstreams_done = stack.pop()
        if upstreams_done:
            if _key_or_none(task) is None:
                return task
            continue
        if id(task) in seen:
            continue
        seen.add(id(task))
        try:
            upstreams = requirements_of(task)
        except (Exception, SystemExit):
            return task
        stack.append((task, True))
        stack.extend((dep, False) for dep in reversed(upstreams))
    return roots[0]


def _key_or_none(task: LuigiTask) -> str | None:
    try:
        return node_key(task)
    except (Exception, SystemExit):
        return None


def _key_or_class(task: LuigiTask) -> str:
    key = _key_or_none(task)
    return key if key is not None else f"{type(task).__module__}.{type(task).__qualname__}"


def _described(roots: Sequence[LuigiTask]) -> str:
    """``build()`` of the first root (and how many more), for a message."""
    more = f" and {len(roots) - 1} more" if len(roots) > 1 else ""
    first = (
        roots[0].kart_label() if roots and is_kart_task(roots[0]) else type(roots[0]).__name__ if roots else "nothing"
    )
    return f"build() of {first}{more}"


def _interruption(result: BuildResult) -> KeyboardInterrupt:
    where = next((key for key, error in result.failed.items() if error is result.interrupted), None)
    place = f" in {result.describe(where)}" if where is not None else ""
    return KeyboardInterrupt(f"kart build interrupted{place}; {result.summary()}")
