"""A task's identity: its unique id (gokart's recipe, applied to a task graph), its own code, its text.

``kart_core.hashing`` holds the pure recipe (md5 over upstream ids, significant parameters,
class name, optional source). This module applies it to task objects: which upstreams count
(significant kart tasks by id, plain luigi tasks by their significant parameters), in which order,
and which source counts as the class's own (``serialized_task_definition_check``). It is the one
place that assembles the recipe's parts; ``kart_core.inspect.why`` reuses ``upstream_parts`` to
recompute a cached id with other upstreams.
"""

from __future__ import annotations

import inspect
from typing import Any

import luigi
from luigi.parameter import ParameterVisibility

from kart_core.contract import KartTask, LuigiTask, is_kart_task
from kart_core.errors import SourceUnavailableError, TaskDefinitionError
from kart_core.hashing import unique_id_from_parts
from kart_core.param_plan import STORES_PLAINLY
from kart_core.parameter import ListTaskInstanceParameter, TaskInstanceParameter

__all__ = [
    "compute_unique_id",
    "describe",
    "info",
    "method_sources",
    "own_code",
    "unique_id_with_upstream",
    "upstream_parts",
]


def compute_unique_id(root: KartTask) -> str:
    """The unique id of ``root``, computing its upstreams' ids first, without recursion.

    A 10,000-deep chain needs no recursion. Each task with ``cache_unique_id`` keeps its id in
    ``task_unique_id`` (as gokart does), so later calls are free.

    The recipe's parts are those of ``upstream_parts`` and ``unique_id_with_upstream``, assembled inline (a cached
    check computes the id of every task of its graph once): the upstream ids in ``requires()`` order, an upstream
    kart task counted when significant, a plain luigi one by its significant parameters. TaskOnKart's own settings
    (``cache_unique_id``, ``significant``, ``serialized_task_definition_check``) are read from the task's
    ``__dict__`` where its class keeps its parameters there (``param_plan.stores_plainly``), not through each
    parameter's ``__get__``.

    Raises:
        TaskDefinitionError: a task depends on itself through ``requires()``.
    """
    ids: dict[int, str] = {}
    # (task, None) waits to be expanded; (task, its upstream tasks) waits for their ids.
    stack: list[tuple[KartTask, list[LuigiTask] | None]] = [(root, None)]
    on_path: set[int] = set()
    while stack:
        task, upstream = stack.pop()
        key = id(task)
        if key in ids:
            continue
        known = task.task_unique_id
        if known is not None:
            ids[key] = known
            continue
        if upstream is None:
            if key in on_path:
                raise TaskDefinitionError(
                    f"{type(task).__name__} depends on itself through requires(); remove the cycle."
                )
            on_path.add(key)
            upstream = task.kart_requires()  # asked once per task here (requires() is called once)
            stack.append((task, upstream))
            for dep in upstream:
                if id(dep) not in ids and is_kart_task(dep):
                    stack.append((dep, None))
            continue
        on_path.discard(key)
        parts: list[Any] = []
        for dep in upstream:
            found = ids.get(id(dep))  # only kart tasks have ids here
            if found is None and not is_kart_task(dep):
                parts.append(dep.to_str_params(only_significant=True))
                continue
            kart: Any = dep
            own = kart.__dict__  # the parameter's value without its __get__ where the class allows (see above)
            if (
                own["significant"]
                if "significant" in own and type(kart).__dict__.get(STORES_PLAINLY)
                else kart.significant
            ):
                parts.append(found or kart.make_unique_id())
        own = task.__dict__
        plain = type(task).__dict__.get(STORES_PLAINLY)
        checked = own.get("serialized_task_definition_check", _ASK) if plain else _ASK
        if checked is _ASK:
            checked = task.serialized_task_definition_check
        code = task.get_own_code() if checked else None
        unique_id = unique_id_from_parts(parts, task.to_str_params(only_significant=True), type(task).__name__, code)
        caching = own.get("cache_unique_id", _ASK) if plain else _ASK
        if caching is _ASK:
            caching = task.cache_unique_id
        if caching:
            task.task_unique_id = unique_id
        ids[key] = unique_id
    return ids[id(root)]


_ASK: Any = object()  # a setting not in the task's __dict__ (or not kept there plainly): read as an attribute


def upstream_parts(
    upstream: list[LuigiTask], known: dict[int, str] | None = None
) -> tuple[list[tuple[int, KartTask]], list[Any]]:
    """The upstream part of the recipe, and which of its positions hold kart tasks.

    Args:
        upstream: the task's ``kart_requires()``, in order.
        known: unique ids already computed, by ``id(task)`` (saves asking each upstream).

    Returns:
        ``(positions, parts)``: ``parts`` has one entry per significant kart upstream (its unique id)
        and per plain luigi upstream (its significant string parameters); insignificant kart
        upstreams are left out. ``positions`` pairs each kart entry's index in ``parts`` with its task.
    """
    positions: list[tuple[int, KartTask]] = []
    parts: list[Any] = []
    for dep in upstream:
        if is_kart_task(dep):
            if dep.significant:
                positions.append((len(parts), dep))
                parts.append((known or {}).get(id(dep)) or dep.make_unique_id())
        else:
            parts.append(dep.to_str_params(only_significant=True))
    return positions, parts


def unique_id_with_upstream(task: KartTask, parts: list[Any], str_params: dict[str, str] | None = None) -> str:
    """``task``'s unique id with the upstream ``parts`` given (and, optionally, other parameters).

    Args:
        task: the task whose class name, own code and (by default) significant parameters count.
        parts: the upstream part, as ``upstream_parts`` returns it (possibly with an entry replaced).
        str_params: significant string parameters to use instead of the task's own (e.g. a cached run's).
    """
    params = task.to_str_params(only_significant=True) if str_params is None else str_params
    code = task.get_own_code() if task.serialized_task_definition_check else None
    return unique_id_from_parts(parts, params, type(task).__name__, code)


def own_code(cls: type, base: type) -> str:
    """The sorted source of the methods ``cls`` has beyond those of ``base`` (gokart's get_own_code).

    Raises:
        SourceUnavailableError: (an ``OSError``, as gokart's ``inspect.getsource`` raises) a method of
            ``cls`` that ``base`` lacks has no readable source; leaving it out would keep the id when that
            method changes.
    """
    return "".join(sorted(method_sources(cls, beyond=base) - method_sources(base)))


def method_sources(cls: type, beyond: type | None = None) -> set[str]:
    """The source texts of ``cls``'s functions and methods (a wrapped method counts as what it wraps).

    A method whose source cannot be read (defined by ``exec``, in ``python -`` or ``-c``, shipped as
    ``.pyc`` only) is left out, unless ``beyond`` is given and lacks that very method: then it is part of
    a task's own code (``serialized_task_definition_check``) and ``SourceUnavailableError`` is raised.
    """

    def has_source(obj: Any) -> bool:
        return inspect.ismethod(obj) or inspect.isfunction(obj)

    sources = set()
    for name, member in inspect.getmembers(cls, has_source):
        try:
            sources.add(inspect.getsource(inspect.unwrap(member)))
        except (OSError, TypeError) as exc:
            if beyond is not None and not _inherited(member, beyond, name):
                raise SourceUnavailableError(
                    f"{cls.__name__}.{name}: serialized_task_definition_check puts the source of the task's own "
                    f"methods into its unique id, and Python cannot read the source of this one ({exc}: the class "
                    "was defined in code run through exec, `python -` or `python -c`, or shipped without its .py "
                    "files). Define the task in a module file, or set serialized_task_definition_check = False."
                ) from exc
    return sources


def _inherited(member: Any, base: type, name: str) -> bool:
    """Whether ``member`` (of a subclass) is ``base``'s own attribute ``name``, not a new definition."""
    theirs = getattr(base, name, None)
    return theirs is not None and getattr(theirs, "__func__", theirs) is getattr(member, "__func__", member)


def describe(task: KartTask, only_public: bool) -> str:
    """gokart's ``repr`` / ``str`` of a task: ``Family[unique_id](name=value, ...)``, significant parameters only.

    A task parameter shows as ``Family(unique_id)``; ``only_public`` leaves out non-public parameters.
    """
    params = dict(type(task).get_params())  # type: ignore[attr-defined]
    parts = []
    for name, value in task.param_kwargs.items():
        param = params[name]
        if param.significant and (not only_public or param.visibility == ParameterVisibility.PUBLIC):
            parts.append(f"{name}={_represent(param, value)}")
    return f"{type(task).get_task_family()}[{task.make_unique_id()}]({', '.join(parts)})"  # type: ignore[attr-defined]


def info(task: KartTask, only_significant: bool = False) -> dict[str, str]:
    """gokart's ``get_info``: parameters as strings; a task parameter shows as ``Class-unique_id``."""
    params = dict(type(task).get_params())  # type: ignore[attr-defined]
    result = {}
    for name, value in task.param_kwargs.items():
        if only_significant and not params[name].significant:
            continue
        if isinstance(params[name], TaskInstanceParameter):
            result[name] = f"{type(value).__name__}-{value.make_unique_id()}"
        else:
            result[name] = params[name].serialize(value)
    return result


def _represent(param: luigi.Parameter, value: Any) -> str:
    if isinstance(param, TaskInstanceParameter):
        return f"{value.get_task_family()}({value.make_unique_id()})"
    if isinstance(param, ListTaskInstanceParameter):
        return f"[{', '.join(f'{v.get_task_family()}({v.make_unique_id()})' for v in value)}]"
    return str(param.serialize(value))
