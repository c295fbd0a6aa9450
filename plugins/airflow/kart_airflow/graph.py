"""Translate a kart task graph into Airflow operators and edges (kart_core.place_graph does the graph work).

Two modes. The dag-processor (and ``airflow dags test``) builds every task. A worker that
re-parses the DAG file to run one task (Airflow's parsing context names it) builds only that
task: its task id is its place in the graph, so the task is found by following the place's
path (or a compacted place's encoded steps) from the roots, one ``requires()`` call per step,
without walking the graph.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import logging
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, get_args

import luigi
from airflow.sdk import DAG, Asset, TaskGroup, get_parsing_context

import kart_core
from kart_airflow.operator import KartTaskOperator, MissingKartTaskOperator
from kart_airflow.outputs import DEFAULT_ASSET_NAMESPACE, asset_uris, check_asset_namespace
from kart_airflow.rebuild import refuse_lossy_parameters
from kart_airflow.skew import check_importable, missing_task_message, record_extra, record_uri

__all__ = ["add_kart_tasks", "AssetChoice", "ClassArgs", "wanted_task_id"]

_log = logging.getLogger(__name__)

ClassArgs = Mapping[Any, Mapping[str, Any]]
"""Operator arguments per kart class: keys are classes, bare class names or import paths."""

AssetChoice = Literal["all", "final", "none"]
"""Which outputs are Airflow Assets: every task's (default), the roots' only, or none (docs/airflow.md, "Assets")."""


def add_kart_tasks(
    task_or_tasks: Any,
    dag: DAG | None = None,
    task_group: TaskGroup | None = None,
    operator_args: Mapping[str, Any] | None = None,
    class_operator_args: ClassArgs | None = None,
    *,
    emit_cached_asset_events: bool = True,
    assets: AssetChoice = "all",
    asset_namespace: str = DEFAULT_ASSET_NAMESPACE,
    literal_templates: bool = False,
) -> dict[str, Any]:
    """Add one operator per kart task under ``task_or_tasks`` and the graph's edges; return them by node key.

    Args:
        task_or_tasks: a kart task or an iterable of them (shared upstreams are added once).
        dag: the DAG to add to (default: the one of ``with DAG(...)`` or of ``task_group``).
        task_group: the TaskGroup to add to, if any.
        operator_args: BaseOperator arguments for every task (retries, pool, queue, ...).
        class_operator_args: arguments for the tasks of one class (or its subclasses); they win.
        emit_cached_asset_events: False: a task that finds its outputs cached emits no Asset event.
        assets: which outputs are Airflow Assets (outlets, and inlets of the tasks that require
            them): ``"all"``, ``"final"`` (those of ``task_or_tasks`` only) or ``"none"``. Whatever
            the choice, every task is recorded (task id, unique id, code fingerprint) on one Asset
            of the DAG, ``skew.record_uri``, an inlet of the first task, which workers check.
        asset_namespace: the namespace of the Asset URIs of outputs in a local workspace,
            ``x-kart://<namespace>/<workspace-relative path>`` (``outputs.asset_uris``); give each
            workspace that one Airflow deployment schedules a namespace of its own (docs/airflow.md,
            "Asset URIs").
        literal_templates: True: parameter text holding ``{{ ... }}`` / ``{% ... %}`` is the tasks' own
            template, hashed as written; by default such a value is refused (``_refuse_templates``).

    Raises:
        TaskDefinitionError: a task class cannot be imported by a stable name on a worker.
        TypeError: a task in the graph is not a TaskOnKart.
        ValueError: ``assets`` is not one of the three choices.
        SettingValueError: ``asset_namespace`` is not a valid namespace (``outputs.check_asset_namespace``), or a
            ``class_operator_args`` key names no task class (on the full parse).
    """
    if assets not in get_args(AssetChoice):
        raise ValueError(f"kart_airflow: assets={assets!r}; choose one of {', '.join(get_args(AssetChoice))}.")
    check_asset_namespace(asset_namespace)
    # One look at luigi's config for the whole walk (as kart_core.build does), not one per new task.
    with kart_core.config_frozen(record_build=False):
        return _add_kart_tasks(
            task_or_tasks,
            dag,
            task_group,
            operator_args,
            class_operator_args,
            emit_cached_asset_events,
            assets,
            asset_namespace,
            literal_templates,
        )


def _add_kart_tasks(
    task_or_tasks: Any,
    dag: DAG | None,
    task_group: TaskGroup | None,
    operator_args: Mapping[str, Any] | None,
    class_operator_args: ClassArgs | None,
    emit_cached_asset_events: bool,
    assets: AssetChoice,
    asset_namespace: str,
    literal_templates: bool,
) -> dict[str, Any]:
    roots = _as_list(task_or_tasks)
    arguments = _ArgumentsByClass(operator_args or {}, class_operator_args or {})
    placement: dict[str, Any] = {k: v for k, v in (("dag", dag), ("task_group", task_group)) if v is not None}
    the_dag = dag or (task_group.dag if task_group is not None else None) or _current_dag()
    prefix = task_group.child_id("") if task_group is not None else ""
    wanted = wanted_task_id(getattr(the_dag, "dag_id", None))
    common = {
        "emit_cached_asset_events": emit_cached_asset_events,
        "asset_namespace": asset_namespace,
        "record": record_uri(str(getattr(the_dag, "dag_id", "")), prefix.rstrip(".")),
        **placement,
    }
    if wanted is not None:
        if not wanted.startswith(prefix):
            return {}  # the worker runs another task of this DAG
        started = time.perf_counter()
        added = _add_one(roots, wanted, prefix, the_dag, common, arguments, assets)
        # Shows in the task's log: the worker's parse built one task, and what it cost.
        _log.info(
            "kart_airflow: built only %s for this worker in %.1f ms", wanted, 1000 * (time.perf_counter() - started)
        )
        return added
    graph = kart_core.place_graph(roots)
    codes = _check_classes(graph.nodes.values())
    arguments.check_keys({type(task) for task in graph.nodes.values()})
    if not literal_templates:
        _refuse_templates(graph.nodes.values())
    refuse_lossy_parameters(graph.nodes.values())
    uris = _Uris(asset_namespace)
    # The graph holds one object per task, so the roots are known by identity.
    root_objects = {id(graph.nodes[kart_core.node_key(root)]) for root in roots}
    declared = _declared_by(assets, lambda task: id(task) in root_objects)
    operators = {
        key: KartTaskOperator.from_task(
            graph.nodes[key],
            task_id=graph.places[key],
            code=codes[type(graph.nodes[key])],
            upstream=[graph.nodes[dep] for dep in graph.upstream[key]],
            uris=uris,
            declared=declared,
            upstream_ids={dep: prefix + graph.places[dep] for dep in graph.upstream[key]},
            **common,
            **arguments.for_task(graph.nodes[key]),
        )
        for key in graph.order
    }
    _link(operators, graph.upstream)
    # Workers check each task against its entry in this one Asset (skew.compare_with_record),
    # declared as an inlet of the first task so that the dag-processor registers it with its extra.
    entries = [(operators[key].task_id, graph.nodes[key], codes[type(graph.nodes[key])]) for key in graph.order]
    if entries:
        extra = record_extra(entries, met=lambda task_id: _met_by_worker(roots, task_id[len(prefix) :]))
        operators[graph.order[0]].inlets.append(Asset(str(common["record"]), extra=extra))
    return operators


def wanted_task_id(dag_id: str | None) -> str | None:
    """The task id a worker parses this DAG for (Airflow's parsing context), or None for a full parse."""
    context = get_parsing_context()
    if context.task_id is None or (context.dag_id is not None and dag_id is not None and context.dag_id != dag_id):
        return None
    return str(context.task_id)


def _declared_by(assets: AssetChoice, is_root: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """Whether a task's outputs are Airflow Assets under the ``assets`` choice."""
    if assets == "all":
        return lambda task: True
    if assets == "final":
        return is_root
    return lambda task: False


def _add_one(
    roots: list[Any],
    wanted: str,
    prefix: str,
    dag: Any,
    common: dict[str, Any],
    arguments: _ArgumentsByClass,
    assets: AssetChoice,
) -> dict[str, Any]:
    """Only the operator for ``wanted`` (the place after ``prefix``), or one that fails with the skew message."""
    place = wanted[len(prefix) :]
    upstream_ids: dict[str, str] | None = None
    path = kart_core.find_path(roots, place)
    found = (path[0], list(path[0].kart_requires())) if path is not None else None
    if found is None:  # an unknown place, or one renamed on a clash: the whole graph decides
        graph = kart_core.place_graph(roots)
        keys = [key for key, value in graph.places.items() if value == place]
        if keys:
            found = graph.nodes[keys[0]], [graph.nodes[dep] for dep in graph.upstream[keys[0]]]
            upstream_ids = {dep: prefix + graph.places[dep] for dep in graph.upstream[keys[0]]}
    if found is None:
        message = missing_task_message(getattr(dag, "dag_id", "?"), wanted)
        placement = {k: v for k, v in common.items() if k in ("dag", "task_group")}
        return {wanted: MissingKartTaskOperator(task_id=place, message=message, **placement)}
    task, upstream = found
    codes = _check_classes([task])

    def exact_upstream_ids() -> dict[str, str]:
        graph = kart_core.place_graph(roots)
        return {dep: prefix + graph.places[dep] for dep in graph.upstream.get(kart_core.node_key(task), [])}

    if upstream_ids is None:  # guessed from the path (kart_core.requirement_places); exact ones on demand
        through = kart_core.requirement_places(task, path[1]) if path is not None else {}
        upstream_ids = {key: prefix + value for key, value in through.items()}
        lookup: Callable[[], Mapping[str, str]] | None = exact_upstream_ids
    else:
        lookup = None
    operator = KartTaskOperator.from_task(
        task,
        task_id=place,
        code=codes[type(task)],
        upstream=upstream,
        declared=_declared_by(assets, lambda other: _among(other, roots)),
        upstream_ids=upstream_ids,
        upstream_lookup=lookup,
        **common,
        **arguments.for_task(task),
    )
    return {kart_core.node_key(task): operator}


def _met_by_worker(roots: list[Any], place: str) -> Any:
    """The task object a worker's one-task parse meets at ``place`` (``_add_one``), or None when it walks the graph."""
    path = kart_core.find_path(roots, place)
    return path[0] if path is not None else None


def _among(task: Any, roots: Sequence[Any]) -> bool:
    # Equality (class and parameters), not the unique id: that would walk the roots' whole graphs.
    return any(task is root or task == root for root in roots)


class _Uris(dict):  # type: ignore[type-arg]
    """Asset URIs of the outputs by task, each computed once (a task's output() is asked once per dependant otherwise)."""

    def __init__(self, namespace: str) -> None:
        super().__init__()
        self.namespace = namespace

    def __missing__(self, task: Any) -> list[str]:
        self[task] = asset_uris(task, self.namespace)
        return self[task]


def _as_list(task_or_tasks: Any) -> list[Any]:
    """``task_or_tasks`` (a task, or an iterable of them) as a list.

    Raises:
        TypeError: something that is not a TaskOnKart instance, alone or in the list, naming it and the fix (a task
            class alone, or a plain luigi task, said only "object is not iterable": attacker at26 G7).
    """
    if isinstance(task_or_tasks, kart_core.TaskOnKart):
        return [task_or_tasks]
    if isinstance(task_or_tasks, type) or isinstance(task_or_tasks, luigi.Task):
        raise TypeError(_not_a_task(task_or_tasks))
    try:
        tasks = list(task_or_tasks)
    except TypeError:
        raise TypeError(_not_a_task(task_or_tasks)) from None
    for task in tasks:
        if not isinstance(task, kart_core.TaskOnKart):
            raise TypeError(_not_a_task(task))
    return tasks


def _not_a_task(value: Any) -> str:
    """Why ``value`` cannot be a kart task of a DAG, and what to pass instead."""
    if isinstance(value, type) and issubclass(value, luigi.Task):
        return (
            f"kart_airflow takes TaskOnKart tasks, got the task class {value.__module__}.{value.__qualname__}: call "
            f"it, to_dag({value.__qualname__}(...), ...) with its parameters, or pass a list of such tasks."
        )
    if isinstance(value, luigi.Task):
        return (
            f"kart_airflow takes TaskOnKart tasks, got {value!r}, a plain luigi.Task: it has no kart cache nor run "
            "logs. Make its class a TaskOnKart (gokart's base class), or run it with luigi."
        )
    return f"kart_airflow takes TaskOnKart tasks (one, or a list of them), got {type(value).__name__}: {value!r}."


def _check_classes(tasks: Any) -> dict[type, str]:
    """Each task class, checked once (importable by a stable name), with its code fingerprint."""
    codes: dict[type, str] = {}
    for task in tasks:
        cls = type(task)
        if cls in codes:
            continue
        if not isinstance(task, kart_core.TaskOnKart):
            raise TypeError(
                f"{task} is a plain luigi task in the graph of a kart DAG; Airflow runs TaskOnKart tasks only. "
                "Make it a TaskOnKart (an ExternalTask's output can be checked in the dependant's run())."
            )
        check_importable(cls)
        codes[cls] = kart_core.code_fingerprint(cls)
    return codes


def _refuse_templates(tasks: Any) -> None:
    """Refuse a parameter value with an Airflow template (``{{ ds }}``): Airflow never renders it here.

    kart computes each task's unique id and output path when the DAG file is parsed, from the
    values as written; a run-dependent value would hash as the literal text, so every run after
    the first would find the same output cached. Checked on the dag-processor's full parse only.

    Raises:
        TaskDefinitionError: naming the task, the parameter and what to do instead.
    """
    for task in tasks:
        params = dict(task.get_params())
        for name, value in task.param_kwargs.items():
            # The walk names where a template sits in a str, dict or list; the string form (what the unique id
            # covers) also catches values of other types that write one: a Path, a SerializableParameter's.
            where = _template_in(value, name)
            if where is None and _is_template(_string_form(task, name, params[name], value)):
                where = name
            if where is not None:
                raise kart_core.errors.TaskDefinitionError(
                    f"{task.kart_label()}: parameter {name}={value!r} "
                    f"{'is' if where == name else f'holds at {where}'} an Airflow template, but kart_airflow does "
                    "not render templates: the unique id and output path are computed from the text as written "
                    "when the DAG file is parsed, so every run after the first would find the same output cached. "
                    "Pass a real value computed in the DAG file, or one root per date "
                    "(to_dag([Daily(day=d) for d in days], ...)); if the text is the task's own template (a prompt, "
                    "a SQL template it renders itself), pass literal_templates=True. See docs/airflow.md, "
                    "'Dates and partitions'."
                )


def _string_form(task: Any, name: str, param: Any, value: Any) -> str:
    """``param.serialize(value)``, or "" for a value without one (``refuse_lossy_parameters`` names those)."""
    if isinstance(value, str):
        return value
    try:
        return str(kart_core.serialize_value(type(task).__name__, name, param, value))
    except Exception:  # a parameter whose serialize() raises: not a template's concern
        return ""


def _is_template(text: str) -> bool:
    """Whether ``text`` holds a Jinja expression or statement, as Airflow would render it."""
    return ("{{" in text and "}}" in text) or ("{%" in text and "%}" in text)


def _template_in(value: Any, where: str) -> str | None:
    """Where in ``value`` a Jinja template (``{{ ... }}`` or ``{% ... %}``) sits, e.g. ``cfg['day'][0]``; None if nowhere.

    Walks mappings (keys and values) and sequences at any depth, as luigi's frozen
    ``DictParameter`` / ``ListParameter`` values nest.
    """
    if isinstance(value, str):
        return where if _is_template(value) else None
    if isinstance(value, Mapping):
        for key, item in value.items():
            found = _template_in(key, f"{where} key {key!r}") or _template_in(item, f"{where}[{key!r}]")
            if found is not None:
                return found
    elif isinstance(value, (list, tuple)):
        for position, item in enumerate(value):
            found = _template_in(item, f"{where}[{position}]")
            if found is not None:
                return found
    return None


def _names_a_task_class(key: str) -> bool:
    """Whether ``key`` is the bare name or import path of a luigi task class this process knows, or an import path
    into a module not imported yet (a class of another DAG file) whose source defines or imports that name.

    The other module is read, not imported: importing it inside this DAG file's parse would run its code here
    (its own ``to_dag``, which Airflow 3 then files under this DAG file; its connections and heavy imports at every
    parse of this file). A module whose names cannot be read from its source (no source, ``from ... import *``, a
    module ``__getattr__``) cannot be checked: that is logged as a warning naming the key, and the key is accepted.
    """
    if _known_task_class(key):
        return True
    module, _, name = key.rpartition(".")
    if not module or module in sys.modules:
        return False
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return False
    if spec is None:
        return False
    names = _top_level_names(spec)
    if names is None:
        _log.warning(
            "kart_airflow: class_operator_args key %r could not be checked: the names of module %r cannot be read "
            "from its source; if the class name is misspelt, its arguments never apply.",
            key,
            module,
        )
        return True
    return name in names[0]


def _top_level_names(spec: Any) -> tuple[set[str], list[str]] | None:
    """The names a module's source binds at its top level (also inside top-level ``if``/``try``/``with``) and, of
    those, the classes it defines; None when they cannot be read (no source, a star import, a module ``__getattr__``).
    """
    try:
        source = spec.loader.get_source(spec.name) if spec.loader is not None else None
    except (ImportError, OSError, AttributeError):
        return None
    if source is None:
        return None
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    names: set[str] = set()
    classes: list[str] = []
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.ClassDef):
            names.add(node.name)
            classes.append(node.name)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if node.name == "__getattr__":
                return None
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                if alias.name == "*":
                    return None
                names.add(alias.asname or alias.name.partition(".")[0])
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for target in targets for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, ast.If | ast.Try | ast.With | ast.For | ast.While):
            for field in ("body", "orelse", "finalbody"):
                pending.extend(getattr(node, field, []))
            pending.extend(stmt for handler in getattr(node, "handlers", []) for stmt in handler.body)
    return names, sorted(classes)


def _known_task_class(key: str) -> bool:
    """Whether ``key`` is the bare name or import path of a luigi task class imported in this process."""
    pending = [luigi.Task]
    while pending:
        cls = pending.pop()
        if key in (cls.__name__, f"{cls.__module__}.{cls.__qualname__}"):
            return True
        pending.extend(cls.__subclasses__())
    return False


def _module_task_classes(key: str) -> list[str]:
    """Candidates for a misspelt import path ``key``: the task classes of its module when imported, else the
    classes its source defines (read, not imported: ``_names_a_task_class``)."""
    module_name = key.rpartition(".")[0]
    module = sys.modules.get(module_name)
    if module is None:
        try:
            spec = importlib.util.find_spec(module_name) if module_name else None
        except (ImportError, ValueError):
            spec = None
        names = _top_level_names(spec) if spec is not None else None
        return [f"{module_name}.{name}" for name in names[1]] if names is not None else []
    return sorted(
        f"{module_name}.{value.__qualname__}"
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, luigi.Task) and value.__module__ == module_name
    )


def _current_dag() -> Any:
    """The DAG of the enclosing ``with DAG(...)`` block, if any."""
    try:
        from airflow.sdk.definitions._internal.contextmanager import DagContext
    except ImportError:
        return None
    return DagContext.get_current()


def _link(operators: Mapping[str, KartTaskOperator], upstream: Mapping[str, list[str]]) -> None:
    """Set each operator's upstream ids in bulk.

    Airflow's set_upstream hashes the whole DAG (all its task ids) for every edge, so a
    20,000-task DAG spends most of its parse time there. The operators are all in one DAG
    already, so the id sets that set_upstream would fill are filled directly.
    """
    for key, operator in operators.items():
        upstream_ids = [operators[dep].task_id for dep in upstream[key]]
        operator.upstream_task_ids.update(upstream_ids)
        for dep in upstream[key]:
            operators[dep].downstream_task_ids.add(operator.task_id)


class _ArgumentsByClass:
    """Operator arguments for one task: the common ones, then those of its classes (base classes first)."""

    def __init__(self, common: Mapping[str, Any], by_class: ClassArgs) -> None:
        if "task_id" in common or any("task_id" in args for args in by_class.values()):
            raise ValueError(
                "kart_airflow names the Airflow tasks itself (by their place in the graph); do not pass task_id."
            )
        if any(args.get("do_xcom_push", True) is not True for args in [common, *by_class.values()]):
            raise ValueError(
                "kart_airflow: do_xcom_push=False would turn off the check that a task's upstream tasks ran, in this "
                "run, the tasks it requires (each pushes its unique id to XCom; docs/airflow.md, 'A DAG file edited "
                "during a run'). Leave do_xcom_push out of operator_args and class_operator_args."
            )
        self.common = dict(common)
        self.by_class = by_class
        self.cache: dict[type, dict[str, Any]] = {}

    def check_keys(self, classes: Iterable[type]) -> None:
        """Refuse a ``class_operator_args`` key that names no task class: a misspelt or moved name.

        A key matching no class of this graph (``classes``) is fine when it names another task class
        this process knows (one ``class_operator_args`` shared by several DAGs), or a name the source of
        the module of an import path not imported yet defines or imports (read, not imported); a module
        whose names cannot be read is a warning that the key could not be checked. Anything else would leave that class's pool, queue or
        retries silently unapplied, while a misspelt argument name is refused by Airflow.

        Raises:
            SettingValueError: naming the key and the graph's closest class names.
        """
        classes = list(classes)
        here: set[Any] = set()
        for cls in classes:
            for klass in cls.__mro__:
                here |= {klass, klass.__name__, f"{klass.__module__}.{klass.__qualname__}"}
        for key in self.by_class:
            if key in here or isinstance(key, type) or (isinstance(key, str) and _names_a_task_class(key)):
                continue
            # The graph's own classes (not their bases: object, Task, TaskOnKart) by name and import path.
            names = sorted({name for cls in classes for name in (cls.__name__, f"{cls.__module__}.{cls.__qualname__}")})
            # An import path into another module: that module's task classes are candidates too.
            candidates = names + _module_task_classes(str(key))
            close = difflib.get_close_matches(str(key), candidates, n=3, cutoff=0.5)
            raise kart_core.errors.SettingValueError(
                f"kart_airflow: class_operator_args key {key!r} names no task class (a misspelt name, or a class "
                f"moved or renamed?), so its arguments would never apply. "
                + (f"Did you mean {', '.join(map(repr, close))}? " if close else "")
                + f"The graph's classes: {', '.join(names) or 'none'}."
            )

    def for_task(self, task: Any) -> dict[str, Any]:
        """The merged arguments for ``task``'s class."""
        cls = type(task)
        if cls not in self.cache:
            merged = dict(self.common)
            for klass in reversed(cls.__mro__):
                for key in (klass, klass.__name__, f"{klass.__module__}.{klass.__qualname__}"):
                    merged.update(self.by_class.get(key, {}))
            self.cache[cls] = merged
        return dict(self.cache[cls])
