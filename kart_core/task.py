"""TaskOnKart: a luigi.Task whose outputs are cached under a hash of its parameters.

The class keeps gokart 1.12.2's public API. It delegates: ids to ``hashing``, outputs to
``target``, running to ``runner.run_one`` (the one way a task runs, under any scheduler).
"""

from __future__ import annotations

import inspect
import os
import posixpath
import random
from collections.abc import Callable, Generator, Iterable
from typing import Any, Generic, TypeVar, cast, overload

import luigi
import luigi.configuration
from luigi.parameter import (
    ParameterVisibility,
)
from luigi.task import flatten

from kart_core import runner
from kart_core.errors import (
    EmptyDumpError,
    ParameterTypeError,
    TaskDefinitionError,
    UnrequiredTaskError,
    WorkspacePathError,
)
from kart_core.file_processor import FileProcessor, make_file_processor
from kart_core.hashing import short_id, unique_id_from_parts
from kart_core.lock import LockParams
from kart_core.pandas_type_config import check_pandas_types
from kart_core.param_plan import (
    ParameterPlan,
    checked_params,
    config_frozen,
    last_resolution,
    parameter_plan,
    resolve,
    section_values,
    str_param_selection,
)
from kart_core.parameter import ExplicitBoolParameter, ListTaskInstanceParameter, TaskInstanceParameter
from kart_core.target import LargeDataFrameProcessor, TargetOnKart, make_model_target, make_target

__all__ = ["TaskOnKart", "config_frozen"]

T = TypeVar("T")
K = TypeVar("K")

_CONFIG_SECTION = "TaskOnKart"

_PLAIN_TYPES = frozenset({str, int, float, bool, bytes, type(None), dict})

# Conveniences that gokart 1.12.2 lacks: a parameter may take their name (kart never calls them itself).
_SHADOWABLE = frozenset({"load_data_frame"})


class _RunThroughKart:
    """Stands in for ``task.run`` on each instance, so luigi's worker and direct calls go through run_one.

    A picklable object rather than a closure: tasks travel to worker processes.
    """

    def __init__(self, task: TaskOnKart[Any]) -> None:
        self.task = task

    def __call__(self) -> None:
        runner.run_one(self.task)


class TaskOnKart(luigi.Task, Generic[T]):
    """A luigi.Task with gokart's cached outputs, run logs and parameters.

    Key methods: ``make_target`` (an output path with the unique id), ``dump`` and ``load``.
    """

    workspace_directory = luigi.Parameter(
        default="./resources/", description="Where outputs live (a path or an fsspec URL).", significant=False
    )
    local_temporary_directory = luigi.Parameter(
        default="./resources/tmp/", description="Scratch space for model targets and locks.", significant=False
    )
    rerun = luigi.BoolParameter(
        default=False, description="Run even if the outputs exist (they are deleted first).", significant=False
    )
    strict_check = luigi.BoolParameter(
        default=False, description="Complete only if the inputs exist too.", significant=False
    )
    modification_time_check = luigi.BoolParameter(
        default=False, description="Complete only if no input is newer than the outputs.", significant=False
    )
    serialized_task_definition_check = luigi.BoolParameter(
        default=False, description="Include the task's own source code in its unique id.", significant=False
    )
    delete_unnecessary_output_files = luigi.BoolParameter(
        default=False, description="Delete outputs not needed by the task tree.", significant=False
    )
    significant = luigi.BoolParameter(
        default=True, description="If false, this task is left out of its dependants' unique ids.", significant=False
    )
    fix_random_seed_methods = luigi.ListParameter(
        default=("random.seed", "numpy.random.seed"),
        description="Seed functions called before run().",
        significant=False,
    )
    FIX_RANDOM_SEED_VALUE_NONE_MAGIC_NUMBER = -42497368
    fix_random_seed_value = luigi.IntParameter(
        default=FIX_RANDOM_SEED_VALUE_NONE_MAGIC_NUMBER,
        description="Seed value (default: derived from the unique id).",
        significant=False,
    )
    redis_host = luigi.OptionalParameter(
        default=None, description="Redis host for locks; no redis lock when unset.", significant=False
    )
    redis_port = luigi.OptionalIntParameter(
        default=None, description="Redis port for locks; no redis lock when unset.", significant=False
    )
    redis_timeout = luigi.IntParameter(
        default=180, description="Seconds after which a redis lock expires.", significant=False
    )
    fail_on_empty_dump = ExplicitBoolParameter(
        default=False, description="Fail when the task dumps an empty DataFrame.", significant=False
    )
    store_index_in_feather = ExplicitBoolParameter(
        default=True, description="Keep the DataFrame index in feather files.", significant=False
    )
    cache_unique_id = ExplicitBoolParameter(
        default=True, description="Compute the unique id once per task object.", significant=False
    )
    should_dump_supplementary_log_files = ExplicitBoolParameter(
        default=True, description="Write the run logs under log/.", significant=False
    )
    complete_check_at_run = ExplicitBoolParameter(
        default=True, description="Skip run() when the outputs already exist.", significant=False
    )
    should_lock_run = ExplicitBoolParameter(
        default=False,
        description="Hold a lock (redis when configured, else a file lock) while running.",
        significant=False,
    )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, value in cls.__dict__.items():
            if (
                isinstance(value, luigi.Parameter)
                and name not in _SHADOWABLE
                and callable(getattr(TaskOnKart, name, None))
            ):
                raise TaskDefinitionError(
                    f"{cls.__name__}.{name} is a parameter but TaskOnKart.{name}() is a method it would hide; "
                    "rename the parameter."
                )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._kart_cache: dict[Any, Any] = {}
        self.task_log: dict[str, Any] = {}
        self.task_unique_id: str | None = None
        last_resolution.initializing = True
        try:
            super().__init__(*args, **kwargs)
        except ParameterTypeError as exc:
            raise ParameterTypeError(f"{type(self).__name__}: {exc}") from None
        finally:
            last_resolution.initializing = False
        self._rerun_state = self.rerun
        self.run = _RunThroughKart(self)  # type: ignore[method-assign]

    @classmethod
    def get_param_values(cls, params: Any, args: Any, kwargs: Any) -> list[tuple[str, Any]]:
        """Resolve parameter values as luigi does (args, kwargs, config, defaults), from a cached plan.

        luigi resolves every new task twice (for its instance cache, then in ``__init__``) and re-reads
        the config for every parameter each time, which dominated building large graphs.
        """
        repeated = last_resolution.repeat_of(cls, args, kwargs) if last_resolution.initializing else None
        if repeated is not None:
            return repeated
        if params != cls.get_params():
            kwargs = dict(kwargs)
            cls._add_configuration(kwargs, _CONFIG_SECTION)
            return cast(list[tuple[str, Any]], super().get_param_values(params, args, kwargs))
        resolved = resolve(cls, _parameter_plan(cls), args, kwargs)
        last_resolution.remember(cls, args, kwargs, resolved)
        return resolved

    @classmethod
    def get_params(cls) -> list[tuple[str, luigi.Parameter]]:
        """luigi's (name, Parameter) list, computed once per class (luigi scans dir() on every call)."""
        cached = cls.__dict__.get("_kart_params")
        if cached is None:
            cached = super().get_params()
            type.__setattr__(cls, "_kart_params", cached)
        return list(cached)

    @classmethod
    def _add_configuration(cls, kwargs: dict[str, Any], section: str) -> None:
        """Fill TaskOnKart's own parameters from the ``[TaskOnKart]`` config section."""
        for key, value in section_values(cls, section, _own_parameter_names()).items():
            kwargs.setdefault(key, value)

    # --- parameters and identity ---------------------------------------------------------

    def to_str_params(self, only_significant: bool = False, only_public: bool = False) -> dict[str, str]:
        """luigi's string form of the parameters, computed once per task object."""
        cache = self.__dict__.setdefault("_kart_cache", {})
        key = ("str_params", only_significant, only_public)
        if key not in cache:
            values = self.param_kwargs
            selected = str_param_selection(type(self), only_significant, only_public)
            cache[key] = {name: param.serialize(values[name]) for name, param in selected}
        return dict(cache[key])

    def _warn_on_wrong_param_types(self) -> None:
        # Only parameters that check their values (task parameters, plain luigi.Parameter) are visited.
        for name, param in checked_params(type(self)):
            param._warn_on_wrong_param_type(name, self.param_kwargs[name])

    def kart_requires(self) -> list[luigi.Task]:
        """``requires()`` flattened to a list, checked to contain tasks only (computed once)."""
        cached = self._kart_cache.get("requires")
        if cached is None:
            cached = flatten(self.requires())
            for item in cached:
                if not isinstance(item, luigi.Task):
                    raise TaskDefinitionError(
                        f"{type(self).__name__}.requires() returned {type(item).__name__} {item!r}; "
                        "it must return tasks (or a list/dict of tasks)."
                    )
            self._kart_cache["requires"] = cached
        return list(cached)

    def make_unique_id(self) -> str:
        """The md5 id of this task's parameters and upstream ids, identical to gokart's."""
        if self.task_unique_id is not None:
            return self.task_unique_id
        return _compute_unique_ids(self)

    def get_own_code(self) -> str:
        """The sorted source of the methods this class defines beyond TaskOnKart's."""
        return "".join(sorted(_method_sources(type(self)) - _method_sources(TaskOnKart)))

    @staticmethod
    def get_code(target_class: Any) -> set[str]:
        """The source texts of ``target_class``'s methods."""
        cls = target_class if isinstance(target_class, type) else type(target_class)
        return _method_sources(cls)

    def kart_label(self) -> str:
        """``Class[first 8 of unique id]``, how errors and logs name this task."""
        return f"{type(self).__name__}[{short_id(self.make_unique_id())}]"

    # --- dependencies and completeness ------------------------------------------------------

    def requires(self) -> Any:
        """By default, the tasks given as TaskInstanceParameter / ListTaskInstanceParameter values."""
        tasks = self.make_task_instance_dictionary()
        return tasks if tasks else []

    def make_task_instance_dictionary(self) -> dict[str, Any]:
        """The attributes of this task that are tasks or tuples of tasks, by name."""
        # Most attributes are plain values; skipping them by type keeps this cheap for wide graphs.
        return {
            key: value
            for key, value in vars(self).items()
            if type(value) not in _PLAIN_TYPES and self.is_task_on_kart(value)
        }

    @staticmethod
    def is_task_on_kart(value: Any) -> bool:
        """Whether ``value`` is a TaskOnKart or a non-empty tuple of them."""
        # A look at the type's MRO, not isinstance(): luigi's metaclass is an ABCMeta, whose
        # instance checks made this a quarter of the time spent building a wide graph.
        if TaskOnKart in type(value).__mro__:
            return True
        return isinstance(value, tuple) and bool(value) and all(TaskOnKart in type(v).__mro__ for v in value)

    def output(self) -> Any:
        """By default one pickle: ``{workspace}/{module path}/{Class}_{unique_id}.pkl``."""
        return self.make_target()

    def complete(self) -> bool:
        """All outputs exist (and, with strict_check / modification_time_check, the inputs are sound)."""
        if self._rerun_state:
            for target in flatten(self.output()):
                target.remove()
            self._rerun_state = False
            return False
        done = all(target.exists() for target in flatten(self.output()))
        if not done or not (self.strict_check or self.modification_time_check):
            return done
        inputs = flatten(self.input())
        if not all(task.complete() for task in self.kart_requires()) or not all(i.exists() for i in inputs):
            return False
        return not self.modification_time_check or _inputs_older_than_outputs(inputs, flatten(self.output()))

    def clone(self, cls: type[TaskOnKart[Any]] | None = None, **kwargs: Any) -> Any:
        """A task of ``cls`` (default: this class) with this task's parameters, overridden by ``kwargs``."""
        special = {"rerun", "strict_check", "modification_time_check"}
        cls = cls or type(self)
        values = {}
        for name, _ in cls.get_params():
            if name in kwargs:
                values[name] = kwargs[name]
            elif hasattr(self, name) and name not in special:
                values[name] = getattr(self, name)
        return cls(**values)

    # --- targets ----------------------------------------------------------------------------

    def make_target(
        self,
        relative_file_path: str | None = None,
        use_unique_id: bool = True,
        processor: FileProcessor[Any] | None = None,
    ) -> TargetOnKart:
        """An output at ``{workspace}/{relative_file_path}`` with ``_{unique_id}`` before the extension."""
        relative = relative_file_path if relative_file_path is not None else self._default_relative_path(".pkl")
        file_path = self._workspace_path(relative)
        unique_id = self.make_unique_id() if use_unique_id else None
        if processor is None and relative_file_path is not None:
            processor = make_file_processor(
                file_path,
                store_index_in_feather=self.store_index_in_feather,
                dataframe_type=_dataframe_type(type(self)),
                task_label=self._owner_label(),
            )
        return make_target(
            file_path,
            unique_id=unique_id,
            processor=processor,
            task_lock_params=self.kart_lock_params(file_path),
            store_index_in_feather=self.store_index_in_feather,
            owner=self._owner_label(),
        )

    def make_large_data_frame_target(
        self, relative_file_path: str | None = None, use_unique_id: bool = True, max_byte: int = int(2**26)
    ) -> TargetOnKart:
        """A zip of DataFrame chunks of about ``max_byte`` bytes, loaded back in the original row order."""
        relative = relative_file_path if relative_file_path is not None else self._default_relative_path(".zip")
        return make_model_target(
            self._workspace_path(relative),
            temporary_directory=self.local_temporary_directory,
            save_function=LargeDataFrameProcessor(max_byte=max_byte).save,
            load_function=LargeDataFrameProcessor.load,
            unique_id=self.make_unique_id() if use_unique_id else None,
            owner=self._owner_label(),
        )

    def make_model_target(
        self,
        relative_file_path: str,
        save_function: Callable[[Any, str], None],
        load_function: Callable[[str], Any],
        use_unique_id: bool = True,
    ) -> TargetOnKart:
        """A zip holding what ``save_function(model, path)`` wrote; ``load_function(path)`` reads it."""
        if not relative_file_path.endswith("zip"):
            raise WorkspacePathError(
                f"{type(self).__name__}.make_model_target: the path must end with .zip, got {relative_file_path!r}"
            )
        return make_model_target(
            self._workspace_path(relative_file_path),
            temporary_directory=self.local_temporary_directory,
            save_function=save_function,
            load_function=load_function,
            unique_id=self.make_unique_id() if use_unique_id else None,
            owner=self._owner_label(),
        )

    def _default_relative_path(self, extension: str) -> str:
        return posixpath.join(type(self).__module__.replace(".", "/"), f"{type(self).__name__}{extension}")

    def _workspace_path(self, relative: str) -> str:
        normalized = posixpath.normpath(relative.replace(os.sep, "/"))
        if posixpath.isabs(normalized) or normalized == ".." or normalized.startswith("../"):
            raise WorkspacePathError(
                f"{type(self).__name__}: output path {relative!r} leaves the workspace {self.workspace_directory!r}. "
                "Use a path relative to the workspace, without '..'."
            )
        return os.path.join(self.workspace_directory, relative)

    def _owner_label(self) -> str:
        return f"{type(self).__name__}[{short_id(self.make_unique_id())}]"

    def kart_lock_params(self, file_path: str) -> LockParams:
        """Lock settings for one output path of this task."""
        return LockParams(
            key=file_path,
            redis_host=self.redis_host,
            redis_port=self.redis_port,
            redis_timeout=self.redis_timeout,
            lock_directory=os.path.join(self.local_temporary_directory, "locks"),
        )

    # --- load and dump ----------------------------------------------------------------------

    @overload
    def load(self, target: None | str | TargetOnKart = None) -> Any: ...

    @overload
    def load(self, target: TaskOnKart[K]) -> K: ...

    @overload
    def load(self, target: list[TaskOnKart[K]]) -> list[K]: ...

    def load(self, target: Any = None) -> Any:
        """Load inputs: all (None), one by requires() key (str), a target, a task, or a list of tasks."""
        return _map_structure(lambda t: t.load(), self._get_input_targets(target))

    def load_generator(self, target: Any = None) -> Generator[Any, None, None]:
        """Like ``load`` but yields the loaded inputs one at a time."""
        for item in flatten(self._get_input_targets(target)):
            yield item.load()

    def load_data_frame(
        self, target: Any = None, required_columns: set[str] | None = None, drop_columns: bool = False
    ) -> Any:
        """Load a DataFrame (concatenating a list of them), checking that ``required_columns`` are present."""
        import pandas as pd

        data = self.load(target)
        frames = [data] if isinstance(data, pd.DataFrame) else [d for d in flatten(data)]
        frame = pd.concat(frames) if len(frames) != 1 else frames[0]
        missing = set(required_columns or ()) - set(frame.columns)
        if missing:
            raise ValueError(f"{self.kart_label()}: the loaded DataFrame lacks columns {sorted(missing)}")
        if drop_columns and required_columns:
            frame = frame[list(required_columns)]
        return frame

    @overload
    def dump(self, obj: T, target: None = None, custom_labels: dict[Any, Any] | None = None) -> None: ...

    @overload
    def dump(self, obj: Any, target: str | TargetOnKart, custom_labels: dict[Any, Any] | None = None) -> None: ...

    def dump(self, obj: Any, target: Any = None, custom_labels: dict[Any, Any] | None = None) -> None:
        """Write ``obj`` to the output (or the output named ``target``), atomically."""
        check_pandas_types(obj, self.task_namespace)
        if self.fail_on_empty_dump and _is_empty_frame(obj):
            raise EmptyDumpError(f"{self.kart_label()} dumped an empty DataFrame while fail_on_empty_dump is set.")
        self._get_output_target(target).dump(obj, custom_labels=custom_labels)

    def _get_input_targets(self, target: Any) -> Any:
        if target is None:
            return self.input()
        if isinstance(target, str):
            inputs = self.input()
            if not isinstance(inputs, dict) or target not in inputs:
                keys = sorted(inputs) if isinstance(inputs, dict) else []
                raise UnrequiredTaskError(
                    f"{self.kart_label()}.load({target!r}): requires() has no key {target!r}. Keys: {keys}."
                )
            return inputs[target]
        if isinstance(target, TaskOnKart):
            required = {t.make_unique_id() for t in self.kart_requires() if isinstance(t, TaskOnKart)}
            if target.make_unique_id() not in required:
                raise UnrequiredTaskError(
                    f"{self.kart_label()} loads {target.kart_label()}, which is not in its requires(). "
                    "Add it to requires() (or pass it as a TaskInstanceParameter)."
                )
            return target.output()
        if isinstance(target, TargetOnKart):
            return target
        if isinstance(target, Iterable):
            return [self._get_input_targets(t) for t in target]
        return target

    def _get_output_target(self, target: Any) -> TargetOnKart:
        if isinstance(target, TargetOnKart):
            return target
        output = self.output()
        if target is None:
            if not isinstance(output, TargetOnKart):
                raise TaskDefinitionError(
                    f"{self.kart_label()}.dump(obj): output() is a {type(output).__name__}; name one of its keys: dump(obj, 'key')."
                )
            return output
        if not isinstance(output, dict) or target not in output:
            raise TaskDefinitionError(f"{self.kart_label()}.dump(obj, {target!r}): output() has no key {target!r}.")
        return cast(TargetOnKart, output[target])

    # --- run logs -----------------------------------------------------------------------------

    def kart_log_target(self, kind: str, extension: str = ".pkl") -> TargetOnKart:
        """The run log ``log/{kind}/{Class}_{unique_id}{extension}`` of this task."""
        return self.make_target(f"log/{kind}/{type(self).__name__}{extension}")

    def get_task_log(self) -> dict[str, Any]:
        """The task_log dict of this run, or the one stored by the last run."""
        if self.task_log:
            return self.task_log
        target = self.kart_log_target("task_log")
        return cast(dict[str, Any], target.load()) if target.exists() else {}

    def get_task_params(self) -> dict[str, Any]:
        """The significant parameters stored by the last run (gokart read the task_log file here)."""
        target = self.kart_log_target("task_params")
        return cast(dict[str, Any], target.load()) if target.exists() else {}

    def get_processing_time(self) -> Any:
        """Seconds the last run took, or 'unknown'."""
        target = self.kart_log_target("processing_time")
        return target.load() if target.exists() else "unknown"

    def get_info(self, only_significant: bool = False) -> dict[str, str]:
        """Parameters as strings; a task parameter shows as ``Class-unique_id``."""
        params = dict(self.get_params())
        info = {}
        for name, value in self.param_kwargs.items():
            if only_significant and not params[name].significant:
                continue
            if isinstance(params[name], TaskInstanceParameter):
                info[name] = f"{type(value).__name__}-{value.make_unique_id()}"
            else:
                info[name] = params[name].serialize(value)
        return info

    @classmethod
    def restore(cls, unique_id: str, workspace_directory: str | None = None) -> TaskOnKart[Any]:
        """Rebuild the task whose run stored its parameters under ``unique_id``."""
        base: TaskOnKart[Any] = (
            TaskOnKart() if workspace_directory is None else TaskOnKart(workspace_directory=workspace_directory)
        )
        path = f"log/task_params/{cls.__name__}_{unique_id}.pkl"
        params = base.make_target(path, use_unique_id=False).load()
        return cast(TaskOnKart[Any], cls.from_str_params(params))

    @staticmethod
    def try_set_seed(methods: list[str], random_seed: int) -> list[str]:
        """Call each dotted seed function that exists with ``random_seed``; return those that ran."""
        return runner.call_seed_methods(methods, random_seed)

    @property
    def priority(self) -> float:  # type: ignore[override]
        """A random priority, so luigi's scheduler spreads sibling tasks (as gokart does)."""
        return random.Random().random()

    # --- representation -----------------------------------------------------------------

    def __repr__(self) -> str:
        return self._task_string(only_public=False)

    def __str__(self) -> str:
        return self._task_string(only_public=True)

    def _task_string(self, only_public: bool) -> str:
        params = dict(self.get_params())
        parts = []
        for name, value in self.param_kwargs.items():
            param = params[name]
            if param.significant and (not only_public or param.visibility == ParameterVisibility.PUBLIC):
                parts.append(f"{name}={_represent(param, value)}")
        return f"{self.get_task_family()}[{self.make_unique_id()}]({', '.join(parts)})"


def _own_parameter_names() -> frozenset[str]:
    """The parameters TaskOnKart itself declares (those a ``[TaskOnKart]`` config section may set)."""
    return frozenset(name for name, _ in TaskOnKart.get_params())


def _parameter_plan(cls: type[TaskOnKart[Any]]) -> ParameterPlan:
    return parameter_plan(cls, _CONFIG_SECTION, _own_parameter_names(), str(TaskOnKart.workspace_directory._default))


def _represent(param: luigi.Parameter, value: Any) -> str:
    if isinstance(param, TaskInstanceParameter):
        return f"{value.get_task_family()}({value.make_unique_id()})"
    if isinstance(param, ListTaskInstanceParameter):
        return f"[{', '.join(f'{v.get_task_family()}({v.make_unique_id()})' for v in value)}]"
    return str(param.serialize(value))


def _method_sources(cls: type) -> set[str]:
    def has_source(obj: Any) -> bool:
        return inspect.ismethod(obj) or inspect.isfunction(obj)

    sources = set()
    for _, member in inspect.getmembers(cls, has_source):
        try:
            sources.add(inspect.getsource(member))
        except (OSError, TypeError):
            continue
    return sources


def _compute_unique_ids(root: TaskOnKart[Any]) -> str:
    """Unique ids for ``root`` and its upstreams, iteratively (a 10,000-deep chain needs no recursion)."""
    ids: dict[int, str] = {}
    stack: list[tuple[TaskOnKart[Any], bool]] = [(root, False)]
    on_path: set[int] = set()
    while stack:
        task, expanded = stack.pop()
        if id(task) in ids:
            continue
        if task.task_unique_id is not None:
            ids[id(task)] = task.task_unique_id
            continue
        upstream = task.kart_requires()
        if not expanded:
            if id(task) in on_path:
                raise TaskDefinitionError(f"{type(task).__name__} depends on itself through requires()")
            on_path.add(id(task))
            stack.append((task, True))
            stack.extend((dep, False) for dep in upstream if isinstance(dep, TaskOnKart) and id(dep) not in ids)
            continue
        on_path.discard(id(task))
        ids[id(task)] = _unique_id_of(task, upstream, ids)
    return ids[id(root)]


def _unique_id_of(task: TaskOnKart[Any], upstream: list[luigi.Task], ids: dict[int, str]) -> str:
    parts: list[Any] = []
    for dep in upstream:
        if isinstance(dep, TaskOnKart):
            if dep.significant:
                parts.append(ids.get(id(dep)) or dep.make_unique_id())
        else:
            parts.append(dep.to_str_params(only_significant=True))
    own_code = task.get_own_code() if task.serialized_task_definition_check else None
    unique_id = unique_id_from_parts(parts, task.to_str_params(only_significant=True), type(task).__name__, own_code)
    if task.cache_unique_id:
        task.task_unique_id = unique_id
    return unique_id


def _inputs_older_than_outputs(inputs: list[Any], outputs: list[Any]) -> bool:
    shared = {t.path() for t in inputs} & {t.path() for t in outputs}
    inputs = [t for t in inputs if t.path() not in shared]
    outputs = [t for t in outputs if t.path() not in shared]
    if not inputs or not outputs:
        return True
    # "<=": a task may use an input target as one of its outputs.
    return max(t.last_modification_time() for t in inputs) <= min(t.last_modification_time() for t in outputs)


def _map_structure(func: Callable[[Any], Any], items: Any) -> Any:
    if isinstance(items, dict):
        return {key: _map_structure(func, value) for key, value in items.items()}
    if isinstance(items, list | tuple):
        return [_map_structure(func, value) for value in items]
    return func(items)


def _is_empty_frame(obj: Any) -> bool:
    empty = getattr(obj, "empty", None)
    return isinstance(empty, bool) and empty and hasattr(obj, "columns")


def _dataframe_type(task_class: type) -> Any:
    """'polars' / 'polars-lazy' when the class is declared ``TaskOnKart[pl.DataFrame]`` / ``[pl.LazyFrame]``."""
    cached = task_class.__dict__.get("_kart_dataframe_type")
    if cached is not None:
        return cached
    kind = "pandas"
    for klass in task_class.__mro__:
        for base in getattr(klass, "__orig_bases__", ()):
            for arg in getattr(base, "__args__", ()):
                module = getattr(arg, "__module__", "") or ""
                if module.split(".")[0] == "polars":
                    kind = "polars-lazy" if getattr(arg, "__name__", "") == "LazyFrame" else "polars"
                    break
    type.__setattr__(task_class, "_kart_dataframe_type", kind)
    return kind
