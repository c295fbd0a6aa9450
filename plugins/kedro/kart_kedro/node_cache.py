"""KedroNodeRun: one cached run of a Kedro node, as a kart task (gokart paths, run logs, run_one).

Its unique id is kart's: md5 of the node's name, code digest, parameter digest, external-input
digest, input/output names and the content hashes of the inputs cached node runs produced (plain
strings, so luigi's instance cache and task_id see them too). So a change anywhere reruns exactly
that node and the dependants whose inputs it changed, as a kart graph would: a node run that runs
again (its cache deleted or damaged, its output written outside kart) and returns other content
reruns its readers, the same content keeps them cached. Before 2026-12-01 the key held the
producing node runs' unique ids instead, which the same node run keeps whatever it returns: a
reader stayed cached over its upstream's new content (AT4).
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import hashlib
import json
import pickle
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import luigi

import kart_core

_encode_string = json.encoder.encode_basestring_ascii  # json.dumps's encoder of a str with ensure_ascii (the default)

_layout = kart_core.workspace  # the cache layout: log kinds, log paths, listing

__all__ = ["CachedRun", "KedroNodeRun", "NodeKey", "cached_runs", "clear_run", "executing"]

_UNSAFE = re.compile(r"[^0-9A-Za-z_.-]+")
_STR = frozenset({str})  # ``_STR.issuperset(map(type, values))``: every item exactly a str, checked in C
_NO_OUTPUT = "__node_done__"
# The Kedro executor of each node run this context runs (``executing``), by ``id()`` of the node run object. Not an
# attribute of the node run: luigi's instance cache (``TaskOnKart.kart_by_values``) hands every session of the
# process one object per key, and kart before 2026-12-02 kept the executor on it, so two sessions in threads
# (two envs, two requests of a service) ran one session's node with the other's catalog, hooks and run id
# (attacker at11, F5). A context variable is per thread (and per asyncio task), and nests.
_EXECUTORS: contextvars.ContextVar[Mapping[int, Callable[[], dict[str, Any]]]] = contextvars.ContextVar(
    "kart_kedro_executors"
)


class executing:  # noqa: N801 - used as a function: ``with executing(task, execute):``
    """Within the block, ``task.run()`` in this context calls ``execute`` (the session's NodeWork) for the node.

    Only this thread (context) sees it: another session running the same node run (the same object, from
    luigi's instance cache) in another thread uses its own executor, and ``run_one`` lets one of them run
    at a time (``kart_core.runner._task_turn``). A class, not a ``contextlib.contextmanager``: every node that
    runs enters it.
    """

    __slots__ = ("_execute", "_task", "_token")

    def __init__(self, task: KedroNodeRun, execute: Callable[[], dict[str, Any]]) -> None:
        self._task, self._execute = task, execute

    def __enter__(self) -> None:
        self._token = _EXECUTORS.set({**_EXECUTORS.get({}), id(self._task): self._execute})

    def __exit__(self, *_exc: object) -> None:
        _EXECUTORS.reset(self._token)  # and the session's catalog is not kept alive by the executor


def safe_name(name: str) -> str:
    """A file-system-safe form of a node or dataset name."""
    return _UNSAFE.sub("_", name)[:120] or "_"


def _file_part(name: str) -> str:
    """``name`` as part of a node run's output file name, distinct for distinct names: kept as it is when it
    is safe and at most 100 characters, else its safe form cut to 100 characters plus ``-`` and 8 hex digits
    of its md5. ``safe_name`` maps ``x y`` and ``x_y`` (or two long names equal in their first 120 characters)
    to one name, and two outputs of one node then shared one file: the second dump replaced the first.
    Two parts of 100 + 9 characters keep ``{node}__{dataset}_{uid}.pkl`` under the usual 255-byte limit."""
    safe = _UNSAFE.sub("_", name)
    if safe == name and 0 < len(name) <= 100:
        return name
    return f"{safe[:100]}-{hashlib.md5(name.encode()).hexdigest()[:8]}"


class _Strings(luigi.ListParameter):  # type: ignore[type-arg]
    """A ListParameter whose values are lists of plain strings (dataset names, content hashes).

    ``normalize`` of a list or tuple of ``str`` is its tuple: what luigi 3.8.1's ``recursively_freeze``
    returns for it, without an ``isinstance(item, Mapping)`` ABC check per item (a cached Kedro node is
    keyed three such lists; freezing them was a third of creating its node run). Anything else (and a
    ``schema``) goes through ListParameter's own ``normalize``; parse and serialize are ListParameter's.
    """

    def normalize(self, x: Any) -> Any:
        """``tuple(x)`` for a list or tuple of ``str``; else ``ListParameter.normalize``."""
        if self.schema is None and type(x) in (list, tuple) and _STR.issuperset(map(type, x)):
            return tuple(x)
        return super().normalize(x)

    def serialize(self, x: Any) -> str:
        """``json.dumps`` of a tuple of ``str`` with json's default encoder: the same text as luigi 3.8.1's
        ``ListParameter.serialize`` (whose encoder class differs only for ``FrozenOrderedDict`` values), without
        creating an encoder per call (a node run's unique id serializes three such lists); else luigi's."""
        if type(x) is tuple and _STR.issuperset(map(type, x)):
            return _json_strings(x)
        return str(super().serialize(x))


class KedroNodeRun(kart_core.TaskOnKart[Any]):
    """The cached outputs of one Kedro node for one combination of code, parameters and inputs."""

    project = luigi.Parameter(default="", description="The Kedro package name.")
    node_name = luigi.Parameter(description="The Kedro node's full name.")
    code = luigi.Parameter(description="Code fingerprint of the node function and the project code it uses.")
    parameters = luigi.Parameter(description="Digest of the node's params: inputs.")
    data = luigi.Parameter(description="Digest of the inputs that no cached node of this run produced.")
    inputs = _Strings(default=(), description="The node's input dataset names.")
    outputs = _Strings(default=(), description="The node's output dataset names.")
    # No run log files: parameters, seed, module versions, run time and output states go into the run
    # record of the integrity manifest, written in the same atomic write when the outputs are committed
    # (kart_core.runlog). gokart never reads node runs; kart runs, why and the report read either form.
    kart_compact_run_logs = True
    kart_run_record_in_manifest = True
    upstream = _Strings(default=(), description="Content hashes of the inputs cached node runs produced, as committed.")

    @classmethod
    def keyed(cls, **fields: Any) -> KedroNodeRun:
        """``KedroNodeRun(**fields)`` with its unique id and significant string parameters computed directly.

        The same id and strings as ``make_unique_id()`` and ``to_str_params(only_significant=True)`` compute
        (gokart's recipe, ``kart_core.unique_id_from_parts`` with no upstream tasks),
        without luigi's walk over the parameters: a fifth of creating a node run (16 of 60 us measured).
        Only when every significant value is a ``str`` (a tuple of ``str`` for the string lists) and the id
        is the plain recipe (``cache_unique_id`` on, ``serialized_task_definition_check`` off);
        otherwise, and for an instance luigi's instance cache hands back, kart computes them as usual.
        The instance is looked up by ``fields`` as given (``TaskOnKart.kart_by_values``): pass the string lists
        as tuples, or it is luigi's look-up.

        Raises:
            As ``KedroNodeRun(**fields)``.
        """
        return cls._keyed(fields, None)

    @classmethod
    def _keyed(cls, fields: dict[str, Any], known: NodeKey | None) -> KedroNodeRun:
        """``keyed(**fields)``; ``known``: the NodeKey of ``fields``, whose strings and id are then not computed again."""
        task = cls.kart_by_values(**fields)  # luigi's instance for these values, found by them (tuples, not lists)
        if task.task_unique_id is not None or not task.cache_unique_id or task.serialized_task_definition_check:
            return task
        strings: dict[str, str] | None
        unique_id: str | None
        if known is not None and known.strings is not None and known.unique_id is not None:
            strings, unique_id = dict(known.strings), known.unique_id
        else:
            strings = _significant_strings(task)
            unique_id = None if strings is None else kart_core.unique_id_from_parts([], strings, cls.__name__)
        if strings is not None:
            task.__dict__["_kart_significant_str_params"] = strings
            task.task_unique_id = unique_id
        return task

    def to_str_params(self, only_significant: bool = False, only_public: bool = False) -> dict[str, str]:
        """kart's string form of the parameters; the significant ones serialized once per task object.

        The unique id reads them, and so does the run record committed with the outputs: a node run's
        parameters never change after it is created.
        """
        if not only_significant or only_public:
            return super().to_str_params(only_significant, only_public)
        cached = self.__dict__.get("_kart_significant_str_params")
        if cached is None:
            cached = self.__dict__["_kart_significant_str_params"] = super().to_str_params(True, False)
        return dict(cached)

    def requires(self) -> list[Any]:
        """None: a node run's upstream runs count by what they returned (``upstream``), not as tasks to build.

        What TaskOnKart's default returns for a class without task parameters, without looking for them.
        """
        return []

    def cache_folder(self) -> str:
        """``kedro/{project}``: where this project's node runs are cached, relative to the workspace."""
        return f"kedro/{safe_name(self.project or '_')}"

    def states_target(self) -> Any:
        """``{folder}/.kart/states/{node}_{uid}.pkl``: the states of the persistent outputs a session served this run
        into (node_records), at ``states_path()``.

        Made by a stand-in task, as the runner's other record files are (``NodeRecords``), not by this node run:
        the file is never an output of a run, and whichever session serves the run writes it, in any thread. A
        target of the node run joins its runs (``kart_core.transaction``), which refuses a write from a thread that
        was alive during an ended run of it: a session in a thread serving the run another session's thread had
        just built (two envs, two requests of a service) failed with RunWriteError (found with attacker at11's F5).
        """
        relative = _layout.with_unique_id(self._states_relative(), self.make_unique_id())
        return _records_task(str(self.workspace_directory)).make_target(
            relative, use_unique_id=False, processor=PlainRecordProcessor()
        )

    def states_path(self) -> str:
        """``states_target().path()``, without making the target: a cached node's check asks whether it exists."""
        full = _layout.workspace_path(str(self.workspace_directory), self._states_relative(), type(self).__name__)
        return _layout.with_unique_id(full, self.make_unique_id())

    def _states_relative(self) -> str:
        return _states_relative(self.project, self.node_name)

    def output(self) -> dict[str, Any]:
        """One pickle per output dataset: ``{ws}/kedro/{project}/{node}__{dataset}_{uid}.pkl``.

        All of a project's node runs share one folder. kart before 2026-11-30 23:30 UTC gave each node a folder
        of its own (``{node}/{dataset}_{uid}.pkl``); creating that folder on a node's first run was the
        slowest file-system call of the run on ext4 (docs/benchmarks.md, session 7). Runs cached there
        run once more and are then cached here.
        """
        names = self.output_names()
        paths = _output_paths(self.project, self.node_name, names)
        processor = _pickle_processor()  # every output is a .pkl: the registry is asked once per process
        return {name: self.make_target(path, processor=processor) for name, path in zip(names, paths, strict=True)}

    def output_names(self) -> tuple[str, ...]:
        """The keys of ``output()``, in its order: the output dataset names, or one placeholder for a node without outputs."""
        return tuple(self.outputs) or (_NO_OUTPUT,)

    def run(self) -> None:
        """Run the Kedro node through the session running this task in this thread (``executing``) and cache
        what it returned.

        Raises:
            AdapterError: no session runs it in this context (not inside ``kart_kedro.KartRunner``).
        """
        execute = _EXECUTORS.get({}).get(id(self))
        if execute is None:
            raise kart_core.errors.AdapterError(
                f"{self.kart_label()} caches the Kedro node {self.node_name!r}; it can only run inside "
                "kart_kedro.KartRunner (kedro run --runner kart_kedro.KartRunner)."
            )
        produced = execute()
        names: list[str] = list(map(str, self.outputs))
        for name in names:
            self._cache_output(name, produced[name])
        if not names:
            self._cache_output(_NO_OUTPUT, True)

    def kart_stale_fix(self) -> str:
        """What reruns a stale node run (``TaskOnKart.kart_stale_fix``): KartRunner's next run of its node, not a
        build or ``rerun=True`` (no user builds a node run: attacker at20 K6)."""
        return (
            f"It caches the Kedro node {self.node_name!r}: KartRunner runs the node again, and its new outputs replace "
            "these when that run commits; nothing to do by hand."
        )

    def _cache_output(self, name: str, value: Any) -> None:
        try:
            self.dump(value, name)
        except Exception as exc:
            raise kart_core.errors.AdapterError(
                f"{self.kart_label()}: output {name!r} of Kedro node {self.node_name!r} cannot be cached "
                f"({type(exc).__name__}: {exc}). Tag the node 'kart_no_cache' to run it every time."
            ) from exc


class PlainRecordProcessor(kart_core.file_processor.PickleFileProcessor):
    """The pickle format of KartRunner's record files, loaded as plain data only (``kart_core.loads_plain_data``).

    The records are kart's own bookkeeping (dicts, lists, tuples, sets, strings, numbers), read by listings
    (``kedro kart list``) and by every run: a pickle planted in a shared workspace must not run code there. A
    record naming anything else fails to load with ``pickle.UnpicklingError``, which the readers count as no
    record (a rerun, never a stale result). Written as ``PickleFileProcessor`` writes.
    """

    def load(self, file: Any) -> Any:
        """The record's value, built from plain data types only.

        Raises:
            pickle.UnpicklingError: the pickle names a global outside ``kart_core.safe_pickle.PLAIN_GLOBALS``.
            EOFError, ValueError: truncated or malformed.
        """
        return kart_core.loads_plain_data(file.read())


def _states_relative(project: str, node_name: str) -> str:
    """``states_target()``'s path relative to the workspace, before the unique id (``KedroNodeRun.cache_folder``)."""
    return f"kedro/{safe_name(project or '_')}/.kart/states/{safe_name(node_name)}.pkl"


@functools.lru_cache(maxsize=4096)
def _output_paths(project: str, node_name: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """The workspace-relative paths of a node run's outputs ``names`` (``KedroNodeRun.output``), in order.

    Kept per process for the last 4,096 (a pure function of the strings: three regular-expression passes per
    node otherwise, in each run's check of every cached node)."""
    folder, node = f"kedro/{safe_name(project or '_')}", _file_part(node_name)
    return tuple(f"{folder}/{node}__{_file_part(name)}.pkl" for name in names)


class NodeKey:
    """A KedroNodeRun named by the fields it would be made with (``KedroNodeRun.keyed``), its unique id computed from
    their strings: what a cached node's check needs (``PipelineRun.check``), without luigi's construction of the
    node run or its targets. The node run itself is made on first use of ``task`` (a node that runs, an output
    loaded, a record read), or found when this process made it before (``KedroNodeRun.kart_by_values_if_made``).

    Attributes:
        fields: ``KedroNodeRun.keyed``'s keyword arguments (the string lists as tuples).
    """

    __slots__ = ("_strings", "_task", "_unique_id", "fields")

    def __init__(self, fields: dict[str, Any]) -> None:
        """Name the node run of ``fields``; the one this process made for them already, if any, is taken."""
        self.fields = fields
        self._task: KedroNodeRun | None = KedroNodeRun.kart_by_values_if_made(**fields)
        self._strings: dict[str, str] | None = None
        self._unique_id: str | None = None

    @property
    def task(self) -> KedroNodeRun:
        """The node run (``KedroNodeRun.keyed(**fields)``), made once; its id and strings are the ones computed here."""
        task = self._task
        if task is None:
            task = self._task = KedroNodeRun._keyed(self.fields, self)
        return task

    @property
    def made(self) -> bool:
        """Whether the node run exists already (made by ``task``, or found when this key was made)."""
        return self._task is not None

    @property
    def strings(self) -> dict[str, str] | None:
        """The node run's significant strings (``to_str_params(only_significant=True)``), computed from ``fields``;
        None when a value is not of the plain form (``task`` tells them then). Shared with the process's other
        keys of the same fields (``_strings_and_id``): read it, never change it."""
        if self._strings is None:
            self._strings, self._unique_id = _strings_and_id(self.fields)
        return self._strings

    @property
    def unique_id(self) -> str | None:
        """The node run's unique id, computed from ``strings`` (gokart's recipe); None when they are None."""
        if self._unique_id is None:
            self._strings, self._unique_id = _strings_and_id(self.fields)
        return self._unique_id

    def make_unique_id(self) -> str:
        """The node run's unique id (``task.make_unique_id()``)."""
        if self._task is not None:
            return self._task.make_unique_id()
        unique_id = self.unique_id
        return unique_id if unique_id is not None else self.task.make_unique_id()

    def kart_label(self) -> str:
        """``task.kart_label()``: ``KedroNodeRun[{first 8 of the unique id}]``."""
        return f"{KedroNodeRun.__name__}[{kart_core.short_id(self.make_unique_id())}]"

    def output_names(self) -> tuple[str, ...]:
        """``task.output_names()``."""
        return tuple(self.fields.get("outputs", ())) or (_NO_OUTPUT,)

    def output_paths(self) -> tuple[str, ...]:
        """The workspace-relative paths of ``task.output()``'s targets, in its order."""
        return _output_paths(self.fields.get("project", ""), self.fields["node_name"], self.output_names())

    def record_paths(self, workspace: str) -> tuple[str, str] | None:
        """``(task.states_path(), the path of task's task log)`` for a node run in ``workspace``, without making it:
        what reading the output states its run recorded asks first (``NodeRecords.states``). None when the
        id is not computed from the fields (``unique_id``): the node run tells them then.

        Args:
            workspace: the node run's ``workspace_directory``: the run's template's (``PipelineRun.template``), whose
                settings every node run of the run shares.
        """
        unique_id = self.unique_id
        project, node_name = self.fields.get("project", ""), self.fields.get("node_name")
        if unique_id is None or type(project) is not str or type(node_name) is not str:
            return None
        name = KedroNodeRun.__name__
        states = _layout.workspace_path(workspace, _states_relative(project, node_name), name)
        return _layout.with_unique_id(states, unique_id), _layout.log_path(workspace, _layout.TASK_LOG, name, unique_id)


def _strings_and_id(fields: Mapping[str, Any]) -> tuple[dict[str, str] | None, str | None]:
    """``KedroNodeRun.keyed(**fields)``'s significant strings (``to_str_params(only_significant=True)``) and unique id,
    from ``fields`` alone; ``(None, None)`` unless every significant parameter is given in its plain form (a ``str``
    for a ``luigi.Parameter``, a tuple of ``str`` for a ``_Strings``; exactly these types: a ``str`` subclass
    serializes as its ``str()``), as only the node run can tell them then (one not given takes its value from the
    config or its default).

    Memoised per process by the significant values (``_ids_by_values``), once they are known to be of the plain
    form: a node keyed alike in an earlier run of this process (a second run after one that served every node by
    its id, made no node run and so left luigi's instance cache empty) is named without serializing and hashing its
    parameters again. Each string list's item types are checked in C (``_STR.issuperset``): a generator per list
    cost a third of the strings.
    """
    values = []
    for name, kind in _significant_kinds(KedroNodeRun):
        value = fields.get(name, _ABSENT)
        if kind is _Strings and type(value) is tuple:
            if not _STR.issuperset(map(type, value)):
                return None, None
        elif kind is not luigi.Parameter or type(value) is not str:
            return None, None
        values.append(value)
    return _ids_by_values(tuple(values))


@functools.lru_cache(maxsize=4096)
def _ids_by_values(values: tuple[str | tuple[str, ...], ...]) -> tuple[dict[str, str], str]:
    """The significant strings and unique id of a KedroNodeRun whose significant values (in ``_significant_kinds``
    order) are ``values``, of the plain form; kept for the last 4,096 (a few large pipelines' nodes).

    Safe to keep: the strings and id are a pure function of the values, which are the key and, being exact ``str``
    and tuples of exact ``str`` (``_strings_and_id`` checked), are equal only when they are the same text. Bounded,
    so a long-lived process keying ever new nodes does not grow with them. The dict is shared by every key of these
    values: never change it.
    """
    strings = {  # a tuple is a _Strings' value, a str a luigi.Parameter's (checked)
        name: _json_strings(value) if isinstance(value, tuple) else value
        for (name, _), value in zip(_significant_kinds(KedroNodeRun), values, strict=True)
    }
    return strings, kart_core.unique_id_from_parts([], strings, KedroNodeRun.__name__)


_ABSENT = object()


def _significant_kinds(cls: type[KedroNodeRun]) -> list[tuple[str, type]]:
    """``(name, type(parameter))`` of ``_significant_parameters(cls)`` (found once per class)."""
    found = cls.__dict__.get("_kart_kedro_kinds")
    if found is None:
        found = [(name, type(parameter)) for name, parameter in _significant_parameters(cls)]
        type.__setattr__(cls, "_kart_kedro_kinds", found)
    return found  # type: ignore[no-any-return]


def _records_task(workspace: str) -> kart_core.TaskOnKart[Any]:
    """A stand-in task of ``workspace`` that makes the targets of record files (its runs are never opened)."""
    return kart_core.TaskOnKart(workspace_directory=workspace)


def _significant_strings(task: KedroNodeRun) -> dict[str, str] | None:
    """``task.to_str_params(only_significant=True)`` from its values, without luigi's walk; None when a value is
    not of the plain form: a ``str`` for a ``luigi.Parameter``, a tuple of ``str`` for a ``_Strings``."""
    strings = {}
    for name, parameter in _significant_parameters(type(task)):
        value = getattr(task, name)
        if type(parameter) is _Strings and type(value) is tuple and all(type(item) is str for item in value):
            strings[name] = _json_strings(value)  # _Strings.serialize of a tuple of str
        elif type(parameter) is luigi.Parameter and type(value) is str:
            strings[name] = value  # luigi.Parameter.serialize: str(value)
        else:
            return None
    return strings


def _json_strings(values: tuple[str, ...]) -> str:
    """``json.dumps(values)`` for a tuple of ``str``, the same text (json's defaults: ``ensure_ascii``, ``", "`` between
    items), joined from the C string encoder json itself uses for each item: ``json.dumps`` builds an encoder object
    per call, and a node run's check in a new process serializes three such lists (its id's parameters)."""
    return "[" + ", ".join(map(_encode_string, values)) + "]"


def _significant_parameters(cls: type[KedroNodeRun]) -> list[tuple[str, luigi.Parameter]]:
    """The significant (name, Parameter) pairs of ``cls``, in luigi's parameter order (found once per class)."""
    found = cls.__dict__.get("_kart_kedro_significant")
    if found is None:
        found = [(name, parameter) for name, parameter in cls.get_params() if parameter.significant]
        type.__setattr__(cls, "_kart_kedro_significant", found)
    return found  # type: ignore[no-any-return]


@functools.cache
def _pickle_processor() -> Any:
    """The file processor of ``.pkl`` (kart's registry, plugins included), asked once per process."""
    return kart_core.file_processor.make_file_processor("output.pkl")


@dataclasses.dataclass
class CachedRun:
    """One node run found in a workspace's run logs.

    Attributes:
        task: the node run, rebuilt from its recorded parameters.
        unique_id: its unique id.
        created: when it was built (``built_time``), local time.
        complete: whether all its outputs exist.
    """

    task: KedroNodeRun
    unique_id: str
    created: datetime
    complete: bool

    @property
    def processing_time(self) -> Any:
        """Seconds the run took, or 'unknown'."""
        # As plain data (a listing reads logs of runs it did not start): the logs' pickles run no code. The time is
        # in its own log, else (kart_compact_run_logs) in the task log, as TaskOnKart.get_processing_time reads it.
        try:
            found = kart_core.read_run_log(self.task, _layout.PROCESSING_TIME, None, plain_data=True)
            if found is None:
                task_log = kart_core.read_run_log(self.task, _layout.TASK_LOG, None, plain_data=True)
                found = task_log.get(_layout.PROCESSING_TIME.name) if isinstance(task_log, dict) else None
        except (kart_core.errors.LoadError, TypeError, ValueError, EOFError, pickle.UnpicklingError):
            found = None
        return found if isinstance(found, int | float) and not isinstance(found, bool) else "unknown"


def cached_runs(workspace: str, project: str | None = None) -> list[CachedRun]:
    """Every KedroNodeRun logged in ``workspace`` (of ``project`` when given), oldest built first."""
    runs = []
    name = KedroNodeRun.__name__
    logged = set(_layout.logged_unique_ids(workspace, name))  # kart before the run record in the manifest
    recorded = set(_layout.logged_unique_ids(workspace, name, _layout.MANIFEST)) - logged
    for unique_id in sorted(logged | recorded):
        task = _restore(workspace, unique_id)
        if task is None or (project is not None and task.project != project):
            continue
        created = built_time(task, unique_id in logged)
        runs.append(CachedRun(task=task, unique_id=unique_id, created=created, complete=bool(task.complete())))
    return sorted(runs, key=lambda run: (run.created, run.unique_id))


def built_time(task: KedroNodeRun, logged: bool) -> datetime:
    """When ``task``'s run was built: the finish time its commit recorded in its task log (``kart_core.run_built_at``,
    written by kart_core alone).

    Not the manifest's modification time: the manifest is written again after the run (a load recording a
    new version of an output, a dropped entry), so a run built long ago could look newest. A run recorded
    by kart before 2026-12-01 has no finish time: its task_params log's time (``logged``: written before the
    run, never again), else the oldest of its output files' times (committed by the run), else its manifest's.
    """
    try:
        task_log = kart_core.read_run_log(task, _layout.TASK_LOG, None, plain_data=True)
    except (kart_core.errors.LoadError, TypeError, ValueError, EOFError, pickle.UnpicklingError):
        task_log = None  # unreadable: the times of its files below
    built = kart_core.run_built_at(task_log)
    if built is not None:
        return built
    if logged:
        return task.kart_log_target(_layout.TASK_PARAMS.name, _layout.TASK_PARAMS.extension).last_modification_time()
    times = _modification_times(task.output().values())
    if times:
        return min(times)
    return task.kart_log_target(_layout.MANIFEST.name, _layout.MANIFEST.extension).last_modification_time()


def _modification_times(targets: Iterable[Any]) -> list[datetime]:
    return [target.last_modification_time() for target in targets if target.exists()]


def clear_run(run: CachedRun) -> list[str]:
    """Delete a run's outputs, logs and output-state record; return the paths that existed."""
    targets = list(run.task.output().values()) + [
        run.task.kart_log_target(kind.name, kind.extension) for kind in _layout.KART_LOG_KINDS
    ]
    targets.append(run.task.states_target())
    removed = [str(target.path()) for target in targets if target.exists()]
    for target in targets:
        target.remove()
    return removed


def _restore(workspace: str, unique_id: str) -> KedroNodeRun | None:
    """The logged run, rebuilt from its task_params log (or its manifest's run record) in ``workspace``.

    None for a manifest without a run record (its run's parameters are unknown: not listed).
    """
    try:
        params = kart_core.stored_run_params(workspace, KedroNodeRun.__name__, unique_id)
    except kart_core.errors.LoadError:
        return None
    return KedroNodeRun.from_str_params({**params, "workspace_directory": workspace})
