"""What crosses to worker processes: the caller's plugins as a recipe, and tasks whose class can travel.

A process pool pickles each task and the function it runs. A pluggy manager does not pickle (it
holds hook callers and tracing closures), so the caller's manager is sent as a ``PluginRecipe``:
the plugin modules by import name, the other plugin objects pickled, the built-in ``RunLogPlugin``
as a marker the worker recreates, and the entry-point plugins as the ``(name, "module:attribute")``
pairs this process found (a worker imports them without reading every installed distribution's
metadata again: tens of milliseconds per worker process). Each worker process builds its
manager once per recipe and calls the plugins from its own copies (state a plugin object keeps in
memory stays in the worker; write to files or a service to gather it).

Each task is pickled by ``ship`` without what it computed and cached (its ``requires()`` list, its
targets: ``kart_core.task_memo.TaskMemo`` pickles empty): pickling those would carry every upstream task along, so a chain of n tasks would send
O(n) objects per task (quadratic, and a RecursionError beyond a few hundred links). The worker
computes them again for the one task it runs.

pickle finds a class by ``module`` + ``qualname``; a class defined inside a function (gokart's
helpers build such classes) cannot be found, so such tasks run on threads instead.

A task's exception travels back pickled. One that would not survive the trip (it does not pickle,
or its ``__init__`` refuses the arguments pickle calls it with) would break the whole pool in the
caller, so the worker checks the round trip and sends an ``UnsendableTaskError`` (type name,
message, formatted traceback) instead.

When a worker process dies (SIGKILL from the OOM killer, ``os._exit``), ``concurrent.futures``
fails every task of the pool with ``BrokenProcessPool`` without saying which one was in the dead
process. ``WorkerSlots`` says it: each worker process claims a slot in shared memory when it starts
(``claim_slot``, the pool's initializer) and writes there the token of the task it runs; the caller
reads the dead process's slot (``kart_core.executor``).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import multiprocessing
import multiprocessing.sharedctypes
import os
import pickle
import signal
import threading
import time
import traceback
import types
from typing import Any

import pluggy

from kart_core import child_loads
from kart_core.contract import LuigiTask
from kart_core.errors import PluginError, TaskDefinitionError, UnsendableTaskError
from kart_core.hooks import create_hook_manager
from kart_core.hooks.manager import declared_entry_points, entry_point_plugins
from kart_core.runlog import RunLogPlugin
from kart_core.runner import RunReport, run_one_reporting

__all__ = [
    "PluginRecipe",
    "WorkerSlots",
    "claim_slot",
    "plugin_recipe",
    "run_in_worker",
    "sendable_error",
    "ship",
    "unpicklable_classes",
    "worker_slots",
]


@dataclasses.dataclass(frozen=True)
class PluginRecipe:
    """How a worker process recreates a manager equal to the caller's.

    Attributes:
        modules: import names of plugin modules (e.g. ``kart_core.file_processor.builtin``).
        objects: the other plugin objects, each pickled (bytes).
        run_log: whether the caller's manager holds a ``RunLogPlugin`` (recreated fresh).
        entry_points: the entry-point plugins the caller's manager holds, as ``(name, "module:attribute")``
            (imported again in the worker; empty: none).
    """

    modules: tuple[str, ...] = ()
    objects: tuple[bytes, ...] = ()
    run_log: bool = False
    entry_points: tuple[tuple[str, str], ...] = ()


def plugin_recipe(manager: pluggy.PluginManager) -> PluginRecipe:
    """The recipe for ``manager``'s plugins, checked before any task runs.

    Raises:
        PluginError: a plugin is neither a module, a ``RunLogPlugin``, an entry-point plugin nor
            picklable; names it and says to use ``executor="thread"`` (or make it picklable).
    """
    declared = dict(declared_entry_points())
    entry_names = {name for name, _ in entry_point_plugins()}
    modules: list[str] = []
    objects: list[bytes] = []
    entry_points: list[tuple[str, str]] = []
    run_log = False
    for name, plugin in manager.list_name_plugin():
        if name in entry_names:
            entry_points.append((name, declared[name]))
        elif isinstance(plugin, RunLogPlugin) and type(plugin) is RunLogPlugin:
            run_log = True
        elif isinstance(plugin, types.ModuleType):
            modules.append(plugin.__name__)
        else:
            objects.append(_pickled(plugin))
    return PluginRecipe(tuple(modules), tuple(objects), run_log, tuple(entry_points))


def _pickled(plugin: object) -> bytes:
    try:
        return pickle.dumps(plugin)
    except Exception as exc:  # pickle raises PicklingError, AttributeError or TypeError
        label = f"{type(plugin).__module__}.{type(plugin).__qualname__}"
        raise PluginError(
            f"kart plugin {label} cannot be sent to worker processes ({type(exc).__name__}: {exc}). "
            'Build with executor="thread" (plugins are then called in the caller\'s process), or make the '
            "plugin picklable (a module-level class whose attributes pickle), or register it as an entry point."
        ) from exc


@functools.lru_cache(maxsize=8)
def _manager_for(recipe: PluginRecipe) -> pluggy.PluginManager:
    """One manager per recipe and worker process (plugins are created once, not per task)."""
    plugins: list[object] = [RunLogPlugin()] if recipe.run_log else []
    plugins += [importlib.import_module(name) for name in recipe.modules]
    plugins += [pickle.loads(data) for data in recipe.objects]
    return create_hook_manager(plugins, load_entry_points=bool(recipe.entry_points), entry_points=recipe.entry_points)


def ship(task: LuigiTask) -> bytes:
    """``task`` pickled for a worker process, without the upstreams and targets it cached.

    Raises:
        TaskDefinitionError: a parameter value or an attribute the task holds (a lock, a client or connection
            made in ``__init__``) cannot be pickled; names it and the ways out (the task then fails with it;
            luigi's workers fork, so gokart never pickles a task: attacker at14 N11).
    """
    try:
        return pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL)  # each task's memo pickles empty (TaskMemo)
    except Exception as exc:
        raise TaskDefinitionError(
            f'{_label(task)} cannot be sent to a worker process (with workers > 1 and executor="process" each '
            f"task is pickled to the process that runs it): {_culprit(task)}cannot be pickled: "
            f"{type(exc).__name__}: {exc}. Create such an object in run() (or a property) instead of __init__, "
            f'or build with executor="thread".'
        ) from exc


def _label(task: LuigiTask) -> str:
    label = getattr(task, "kart_label", None)
    return label() if callable(label) else str(task)


def _culprit(task: LuigiTask) -> str:
    """``its attribute '_lock' (a lock) `` for the first attribute of ``task`` that does not pickle, else ""."""
    for name, value in getattr(task, "__dict__", {}).items():
        try:
            pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:
            return f"its attribute {name!r} (a {type(value).__module__}.{type(value).__qualname__}) "
    return ""


@dataclasses.dataclass(frozen=True)
class WorkerSlots:
    """Shared memory telling which task each worker process of one pool runs.

    Attributes:
        pids: per slot, the pid of the worker process that claimed it (0: unclaimed); a ``RawArray('q')``.
        tokens: per slot, the token of the task that process runs now (0: idle); a ``RawArray('q')``.
        claim: the lock a starting worker holds while it claims a slot.

    Passed to the workers once, as the pool's ``initargs`` (shared memory travels only at process start).
    """

    pids: Any
    tokens: Any
    claim: Any

    def running(self) -> dict[int, int]:
        """``{pid: token}`` for each worker process that was running a task (read after the pool broke)."""
        return {pid: token for pid, token in zip(self.pids[:], self.tokens[:], strict=True) if pid and token}


def worker_slots(size: int) -> WorkerSlots:
    """Slots for a pool of ``size`` worker processes, all unclaimed."""
    return WorkerSlots(
        multiprocessing.sharedctypes.RawArray("q", size),
        multiprocessing.sharedctypes.RawArray("q", size),
        multiprocessing.Lock(),
    )


# This worker process's slot: (slots, index), set once by ``claim_slot`` when the process starts.
# Per-process state of a pool worker, never read in the caller's process.
_claimed: list[tuple[WorkerSlots, int]] = []


def claim_slot(slots: WorkerSlots) -> None:
    """The pool's initializer: this worker process takes the first unclaimed slot (none left: it reports nothing).

    It watches the building process: when that dies (SIGKILL, the OOM killer), the worker exits within
    ``_PARENT_POLL_S`` seconds, as a killed worker would (its task's run is abandoned, never committed), instead of
    living on with the memory of its task (attacker at15 F12). It also gives SIGTERM its default action back: a forked worker inherits the caller's handler (an
    Airflow task's, which raises instead of exiting, or one that ignores it), and a broken pool ends
    its other workers with SIGTERM; a worker that survived would go on running a task the build
    already counts as taken down.
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _exit_with_parent(os.getppid())
    child_loads.kart_worker()  # its loads outside its tasks' runs are no run's of the building process
    _claimed.clear()  # a forked worker of a build nested in a task inherits its parent's slot
    with slots.claim:
        for index in range(len(slots.pids)):
            if not slots.pids[index]:
                slots.pids[index] = os.getpid()
                _claimed[:] = [(slots, index)]
                return


_PARENT_POLL_S = 1.0  # how often a pool worker looks whether the building process still lives


def _exit_with_parent(parent: int) -> None:
    """Exit this process (status 1, no clean-up: as a kill) once its parent ``parent`` has died: the process is
    re-parented, so ``os.getppid()`` changes. Polled from a daemon thread; Linux's ``PR_SET_PDEATHSIG`` is not
    used: it fires when the forking *thread* ends, and a pool's workers may be forked from a thread that ends
    before the build does."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="kart-parent-watch", daemon=True).start()


def run_in_worker(shipped: bytes, recipe: PluginRecipe, lock: bool | None, token: int = 0) -> RunReport:
    """``run_one_reporting`` in a worker process on a task from ``ship``, with the plugins the recipe describes.

    Args:
        shipped: the task, from ``ship``.
        recipe: the caller's plugins.
        lock: passed to ``run_one_reporting``.
        token: written to this process's slot (``claim_slot``) while the task runs, so the caller can
            tell which task was in a worker process that died; 0: not reported.

    Raises:
        Exception: what the task raised when it survives pickling; else ``UnsendableTaskError``
            (``sendable_error``).
    """
    slot = _claimed[0] if _claimed and token else None
    if slot is not None:
        slot[0].tokens[slot[1]] = token
    try:
        task = pickle.loads(shipped)
        try:
            return run_one_reporting(task, hook_manager=_manager_for(recipe), lock=lock)
        except BaseException as exc:  # noqa: BLE001 - SystemExit from run() is the task's failure too
            sendable = sendable_error(exc, task)
            if sendable is exc:
                raise
            raise sendable from exc
    finally:
        if slot is not None:
            slot[0].tokens[slot[1]] = 0


def sendable_error(exc: BaseException, task: object = None) -> BaseException:
    """``exc`` when it survives a pickle round trip; else an ``UnsendableTaskError`` carrying it as text.

    Args:
        exc: what a task raised in a worker process.
        task: the task, named in the message (its ``kart_label()`` when it has one).

    Returns:
        ``exc`` itself, or an ``UnsendableTaskError`` whose message names the task, the original type
        (``module.qualname``), its message, why it cannot travel and what to do, followed by the
        original traceback (also in ``remote_traceback``).
    """
    try:
        pickle.loads(pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL))
        return exc
    except Exception as problem:  # pickle raises PicklingError, TypeError, AttributeError...
        why = f"{type(problem).__name__}: {problem}"
    kind = type(exc)
    type_name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    label = getattr(task, "kart_label", None)
    name = label() if callable(label) else type(task).__name__
    remote = "".join(traceback.format_exception(kind, exc, exc.__traceback__))
    return UnsendableTaskError(
        f"{name} raised {type_name}: {exc} (the exception itself cannot be sent back from the worker process, "
        f"{why}; to get it back whole, make it picklable: pass every __init__ argument on to "
        'super().__init__ and hold no locks or connections; or build with executor="thread"). '
        f"Its traceback in the worker process:\n{remote}",
        type_name=type_name,
        original_message=str(exc),
        remote_traceback=remote,
    )


def unpicklable_classes(tasks: list[LuigiTask]) -> list[str]:
    """``module.qualname`` of each distinct task class pickle cannot find by name (defined in a function).

    One check per class, not per task: the name lookup is what fails for local classes.
    """
    refused: list[str] = []
    seen: set[type] = set()
    for task in tasks:
        cls = type(task)
        if cls in seen:
            continue
        seen.add(cls)
        if not _findable(cls):
            refused.append(f"{cls.__module__}.{cls.__qualname__}")
    return refused


def _findable(cls: type) -> bool:
    if "<locals>" in cls.__qualname__:
        return False
    try:
        found: object = importlib.import_module(cls.__module__)
        for part in cls.__qualname__.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError):
        return False
    return found is cls
