"""The unit of work a KartRunner hands to its executor: run one Kedro node, cache what it returned.

It runs in the runner's process (KartRunner), a thread (KartThreadRunner) or a worker process
(KartParallelRunner), so it is picklable and returns only a small NodeResult; the node's data
goes through the catalog and into the kart cache inside the worker.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping
from typing import Any

from kedro.runner import Task

import kart_core
from kart_kedro._receipt import KartReceipt
from kart_kedro.input_digest import data_digest
from kart_kedro.node_cache import KedroNodeRun, executing
from kart_kedro.node_records import OUTPUT_STATES
from kart_kedro.output_state import FileStamp, OutputState, current_state, file_stamp, holds_state
from kart_kedro.pickled_code import plain_data

__all__ = ["NodeResult", "NodeWork"]


@dataclasses.dataclass(frozen=True)
class NodeResult:
    """What became of one node.

    Attributes:
        status: ``ran``, ``cached`` (another worker completed the same node run first) or
            ``ran uncached``; for a to_pipeline kart node, what run_one did (``ran``/``cached``).
        states: the state of each persistent output right after the node wrote it.
        contents: when the node ran and committed its outputs itself, the content hash of each output
            by dataset name (``kart_core.committed_digests``, no manifest read); None otherwise.
        plain: the outputs (dataset names) whose values were plain data (``pickled_code.plain_data``): their
            pickles name no project code, so the runner need not read them to key their readers.
        changed: the inputs (dataset names) that another writer changed, by the time the node ran, since the
            digests or states in the node's key were taken (``NodeWork.watched``, ``held``, ``expected``): the node
            ran, its outputs were saved, and its result was not cached (status ``ran uncached``).
    """

    status: str
    states: dict[str, OutputState]
    contents: dict[str, str] | None = None
    plain: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()


class _InputChanged(Exception):
    """Raised inside ``run_one`` after the node ran when a watched input changed: nothing is committed."""

    def __init__(self, names: tuple[str, ...], states: dict[str, OutputState]) -> None:
        super().__init__(f"input(s) {', '.join(map(repr, names))} changed while the node ran")
        self.names, self.states = names, states


class _CapturingTask(Task):
    """Kedro's Task (hooks, async loads and saves), keeping the outputs the node returned and which ``watched``
    inputs changed by the time the node function returned (``_changed_inputs``).

    Checked there, before Kedro saves the outputs and confirms datasets: every read of the node (lazy partition
    loaders too) is done, and an IncrementalDataset's checkpoint, which its confirm writes into the input's
    folder, is not yet written (it is the node's own doing, not another writer's).
    """

    outputs: dict[str, Any] | None = None
    watched: dict[str, FileStamp] = {}  # noqa: RUF012 (set per instance by NodeWork._execute; read only here)
    held: dict[str, OutputState] = {}  # noqa: RUF012 (likewise)
    locations: tuple[str, ...] = ()  # NodeWork.locations: locked once the node returned, until the states are read
    locks: contextlib.ExitStack
    root: str | None = None
    expected: dict[str, str] = {}  # noqa: RUF012 (likewise)
    stamped: dict[str, str] = {}  # noqa: RUF012 (likewise)
    changed: tuple[str, ...] = ()
    loaded_other: tuple[str, ...] = ()  # ``expected`` inputs whose loaded data had another digest

    def _collect_inputs_from_hook(  # type: ignore[override]
        self,
        node: Any,
        catalog: Any,
        inputs: dict[str, Any],
        is_async: bool,
        hook_manager: Any,
        run_id: str | None = None,
    ) -> dict[str, Any]:
        # Task calls self._collect_inputs_from_hook (a staticmethod in Kedro 1.x) with the loaded inputs, before
        # the before_node_run hook and the node: what the node computes from, not yet mutated by it.
        if self.expected:
            self.loaded_other = tuple(
                name for name, digest in self.expected.items() if name in inputs and _digest(inputs[name]) != digest
            )
        return Task._collect_inputs_from_hook(node, catalog, inputs, is_async, hook_manager, run_id=run_id)

    def _call_node_run(  # type: ignore[override]
        self,
        node: Any,
        catalog: Any,
        inputs: dict[str, Any],
        is_async: bool,
        hook_manager: Any,
        run_id: str | None = None,
    ) -> dict[str, Any]:
        # Task calls self._call_node_run (a staticmethod in Kedro 1.x) between loading and saving.
        outputs = Task._call_node_run(node, catalog, inputs, is_async, hook_manager, run_id=run_id)
        self.outputs = outputs
        if self.watched:
            self.changed = _changed_inputs(catalog, self.watched, self.root, self.stamped)
        if self.held:
            self.changed += tuple(
                name for name, state in self.held.items() if not holds_state(catalog.get(name), state)
            )
        if self.locations:  # before Kedro saves the outputs; released by NodeWork once their states are read
            self.locks.enter_context(kart_core.hold_location_locks(self.locations))
        self.changed += self.loaded_other
        return outputs


@dataclasses.dataclass
class NodeWork:
    """Run ``node`` the Kedro way; through ``kart_core.run_one`` of ``task`` when it is cached.

    Attributes:
        node: the Kedro node.
        catalog: the run's catalog (a SharedMemoryDataCatalog under KartParallelRunner).
        task: the node's KedroNodeRun, or None for a node that is never cached.
        persistent: names of the node's persistent outputs, whose states are recorded.
        is_async: load and save with threads (Kedro's ``--async``).
        hook_manager: the session's hook manager; None in a worker process (Kedro builds one there).
        run_id: the Kedro session id.
        checked: the runner found ``task`` incomplete just before and runs this work at once
            (KartRunner): ``run_one`` does not check again (one completeness check per node).
        watched: the stamp (``output_state.file_stamp``) each raw input's digest in ``task``'s key was taken
            under, by dataset name. After the node ran each is stamped again; when one differs, another
            writer changed it between kart's digest and the node's own load (or while the node read it), so
            the node may have computed from other content than its key names: its result is not cached
            (``NodeResult.changed``). One ``stat`` per local file, one metadata request or listing on object
            storage, and only for nodes that run.
        root: the Kedro project root the stamps are taken relative to (``file_stamp``).
        held: the state (``output_state.current_state``) each persistent input a cached node of the run produced
            had when its md5 went into ``task``'s key (``PipelineRun.stored_content``), by dataset name. After the
            node ran each is checked again (``holds_state``: one ``stat`` per local file); when one differs, another
            session wrote it meanwhile, so the node may have read other content than its key names: its result is
            not cached (``NodeResult.changed``; attacker at17 H8). Inputs whose state is a digest of loaded data
            (no file path) are in ``expected`` instead.
        locations: ``output_state.lock_location`` of each of ``persistent``: their locks
            (``kart_core.hold_location_locks``) are taken once the node function returned and held through Kedro's
            saves, ``after_dataset_saved`` hooks and confirms until their states are read, so the states recorded
            are of the bytes this node saved, not of another session's save landing in between (attacker at17
            H7). A cached node's check and write-back hold them too (``PipelineRun.serve_if_fresh``).
        expected: the data digest (``input_digest.data_digest``) each raw input without a stamp (a database
            table, ``memory://``, a dataset without a file path) had in the load its key's digest came from, by
            dataset name (and each such persistent input a cached node produced, by its state's md5). What Kedro
            loads for the node is digested again before the node runs (and before a ``before_node_run`` hook may
            replace it): when it differs, the node's result is not cached either. One more digest of those
            inputs, for nodes that run only.
        stamped: the data digest (``input_digest.data_digest``) of the content each ``watched`` input's digest in
            ``task``'s key names, by dataset name. An input whose stamp moved only in its files' status-change times
            (a ``chmod``, ``chown`` or hard link: same modification times, sizes and inodes) is loaded again after
            the node ran and counts as changed only when its data digest differs (attacker at19 J3: a chmod made
            the node "ran uncached" with a warning that its input was written).
        code: for a worker process that imports the project's code anew (KartParallelRunner under spawn or
            forkserver): the fingerprint ``task``'s key was computed with in the runner's process, the node's code
            version tag and the project packages (``ModuleClassifier``). The worker fingerprints the function it
            unpickled before the node runs; code edited on disk since the runner imported it differs, and the node
            fails with ``StaleTaskError`` rather than cache the edited code's result under the old code's key
            (attacker at26 G5). None: the worker has the runner's modules (fork, threads, the runner itself).
    """

    node: Any
    catalog: Any
    task: KedroNodeRun | None
    persistent: tuple[str, ...]
    is_async: bool
    hook_manager: Any
    run_id: str | None
    checked: bool = False
    watched: dict[str, FileStamp] = dataclasses.field(default_factory=dict)
    root: str | None = None
    expected: dict[str, str] = dataclasses.field(default_factory=dict)
    held: dict[str, OutputState] = dataclasses.field(default_factory=dict)
    locations: tuple[str, ...] = ()
    stamped: dict[str, str] = dataclasses.field(default_factory=dict)
    plain: tuple[str, ...] = ()  # set by the run: NodeResult.plain
    code: tuple[kart_core.CodeFingerprint, str | None, tuple[str, ...]] | None = None
    _states: dict[str, OutputState] = dataclasses.field(default_factory=dict, repr=False)  # set by the run

    def __call__(self) -> NodeResult:
        """Run the node (and cache its outputs); return what happened."""
        if self.task is None:
            outputs = self._execute()
            receipts = [value.status for value in outputs.values() if isinstance(value, KartReceipt)]
            return NodeResult(receipts[0] if receipts else "ran uncached", {})
        task = self.task
        if self.code is not None:
            _check_code(self.node, *self.code)
        # The node run object is shared by every session of this process that runs the same key (luigi's instance
        # cache): this session's executor goes through a context variable (``executing``), and what its run
        # recorded is kept here, on this session's NodeWork, not read back from the shared task log (attacker at11 F5).
        self._states = {}
        with executing(task, self._execute_and_record):
            try:
                report = kart_core.run_one_reporting(task, checked=self.checked)
            except _InputChanged as changed:  # the node ran and saved its outputs; its run was not committed
                return NodeResult("ran uncached", changed.states, None, self.plain, changed.names)
        if report.status is kart_core.RunStatus.CACHED:
            return NodeResult(report.status.value, {})
        return NodeResult(report.status.value, self._states, _contents(task, report.committed), self.plain)

    def _execute_and_record(self) -> dict[str, Any]:
        """Run the node; note the state of each persistent output it saved in the run's task log.

        The task log is written by kart only after the run's outputs are committed, so the states
        are recorded exactly when the node run is (docs in node_records.py).

        Raises:
            _InputChanged: a ``watched`` input's stamp changed (the node's outputs were saved to the catalog).
        """
        if self.task is not None:  # called by run(), in this process's turn of the node run (run_one)
            self.task.task_log.pop(OUTPUT_STATES, None)  # one object per key: no states of an earlier run
        task = self._kedro_task()
        with task.locks:  # held from the saves through the state reads (``locations``)
            task.execute()
            states: dict[str, OutputState] = {}
            if self.task is not None and self.persistent:
                states = {name: current_state(self.catalog.get(name)) for name in self.persistent}
        outputs = task.outputs or {}
        self.plain = tuple(name for name, value in outputs.items() if plain_data(value))
        if states and self.task is not None:
            self.task.task_log[OUTPUT_STATES] = {name: dataclasses.astuple(state) for name, state in states.items()}
        self._states = states
        if task.changed:
            raise _InputChanged(task.changed, states)
        return outputs

    def _execute(self) -> dict[str, Any]:
        task = self._kedro_task()
        task.execute()
        return task.outputs or {}

    def _kedro_task(self) -> _CapturingTask:
        task = _CapturingTask(
            node=self.node,
            catalog=self.catalog,
            is_async=self.is_async,
            hook_manager=self.hook_manager,
            run_id=self.run_id,
            parallel=self.hook_manager is None,
        )
        task.watched, task.root, task.expected, task.held = self.watched, self.root, self.expected, self.held
        task.stamped = self.stamped
        task.locations, task.locks = self.locations, contextlib.ExitStack()
        return task


def _check_code(node: Any, expected: kart_core.CodeFingerprint, version: str | None, packages: tuple[str, ...]) -> None:
    """Raise ``StaleTaskError`` when ``node``'s function, as this worker imported it, fingerprints otherwise than
    ``expected`` (the runner's: the node's key), naming the pieces of project code that differ."""
    found = kart_core.CodeFingerprinter(kart_core.ModuleClassifier(packages)).fingerprint(node.func, version)
    if found.digest == expected.digest:
        return
    changed = sorted(
        name for name in set(found.items) | set(expected.items) if found.items.get(name) != expected.items.get(name)
    )
    if not changed and found.root != expected.root:
        changed = [getattr(node.func, "__qualname__", repr(node.func))]
    shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
    raise kart_core.StaleTaskError(
        f"kart: node {node.name!r}: its code changed on disk after the run began ({shown or 'its packages'}): this "
        "worker process imported the edited code, while the node's cache key was computed from the code the "
        "runner imported, so its result would be cached under the old code's key. Run the pipeline again (its key "
        "then names the code that runs); do not edit the project's code while KartParallelRunner runs with spawn "
        "or forkserver workers."
    )


def _digest(value: Any) -> str | None:
    """``data_digest(value)``; None when it cannot be digested now (then it differs from any digest)."""
    try:
        return data_digest(value)
    except kart_core.errors.UndigestableError:
        return None


def _changed_inputs(
    catalog: Any, watched: dict[str, FileStamp], root: str | None, stamped: Mapping[str, str]
) -> tuple[str, ...]:
    """The ``watched`` inputs whose stamp (``file_stamp`` relative to ``root``) now differs from the one their
    digest was taken under, or that are gone. One whose stamp moved only in status-change times (``FileStamp.written``
    the same) is loaded again and counts only when its data digest differs from ``stamped``'s (a write that set the
    modification time back); without a digest there, it counts."""
    changed = []
    for name, before in watched.items():
        now = file_stamp(catalog.get(name), root)
        if now is not None and now.key == before.key:
            continue
        metadata_only = now is not None and before.written and now.written == before.written
        if metadata_only and name in stamped and _loaded_digest(catalog, name) == stamped[name]:
            continue
        changed.append(name)
    return tuple(changed)


def _loaded_digest(catalog: Any, name: str) -> str | None:
    """``data_digest`` of dataset ``name`` loaded anew; None when it cannot be loaded or digested."""
    try:
        return _digest(catalog.load(name))
    except Exception:  # noqa: BLE001 - a load that fails now: the input counts as changed
        return None


def _contents(task: KedroNodeRun, committed: Mapping[str, str] | None) -> dict[str, str] | None:
    """The content hash of each output of the node run this session just committed, by dataset name; None when not
    its own commit. ``committed``: ``RunReport.committed`` (output path -> content hash)."""
    if committed is None:
        return None
    return dict(zip(task.output_names(), committed.values(), strict=True))  # both in output() order
