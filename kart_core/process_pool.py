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
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import pickle
import types

import pluggy

from kart_core.contract import LuigiTask
from kart_core.errors import PluginError
from kart_core.hooks import create_hook_manager
from kart_core.hooks.manager import declared_entry_points, entry_point_plugins
from kart_core.runlog import RunLogPlugin
from kart_core.runner import RunReport, run_one_reporting

__all__ = ["PluginRecipe", "plugin_recipe", "run_in_worker", "ship", "unpicklable_classes"]


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
        pickle.PicklingError: a parameter value cannot be pickled (the task then fails with it).
    """
    return pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL)  # each task's memo pickles empty (TaskMemo)


def run_in_worker(shipped: bytes, recipe: PluginRecipe, lock: bool | None) -> RunReport:
    """``run_one_reporting`` in a worker process on a task from ``ship``, with the plugins the recipe describes."""
    return run_one_reporting(pickle.loads(shipped), hook_manager=_manager_for(recipe), lock=lock)


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
