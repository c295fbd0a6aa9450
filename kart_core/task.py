"""TaskOnKart: a luigi.Task whose outputs are cached under a hash of its parameters.

The class keeps gokart 1.12.2's public API and delegates: identity to ``identity``, targets to
``task_targets``, loading and dumping to ``task_io``, run logs to ``runlog``, parameter resolution
to ``param_plan``, and running to ``runner.run_one`` (the one way a task runs, under any scheduler).
"""

from __future__ import annotations

import datetime
import functools
import logging
import random
from collections.abc import Callable, Generator, Sequence
from typing import Any, ClassVar, Final, Generic, TypeVar, cast, overload

import luigi
from luigi.task import task_id_str

from kart_core import (
    commit_marker,
    damage,
    identity,
    lineage,
    luigi_events,
    runlog,
    runner,
    side_record,
    target_config,
    task_io,
    task_targets,
    transaction,
    workspace,
)
from kart_core import rerun as rerun_state
from kart_core.conflict_prevention_lock.task_lock import make_task_lock_params, make_task_lock_params_for_run
from kart_core.conflict_prevention_lock.task_lock_wrappers import wrap_run_with_lock
from kart_core.contract import KartTarget, LuigiTask
from kart_core.errors import EmptyDumpError, OutputTypeError, ParameterTypeError, RequiresError, TaskDefinitionError
from kart_core.file_processor import FileProcessor, make_file_processor
from kart_core.hashing import short_id
from kart_core.manifest import OutputRecord
from kart_core.output_digests import SiblingOutputs, complete_from_scope
from kart_core.pandas_type_config import PandasTypeConfigMap
from kart_core.param_plan import (
    STORES_PLAINLY,
    ParameterPlan,
    check_resolved,
    config_frozen,
    last_resolution,
    stores_plainly,
)
from kart_core.parameter import ExplicitBoolParameter, ListTaskInstanceParameter, TaskInstanceParameter
from kart_core.rerun import Baseline, RerunState, arm_rerun
from kart_core.storage import storage_for
from kart_core.structure import flatten, map_flattenable_items
from kart_core.target import TargetOnKart
from kart_core.task_memo import UNSET, TaskMemo, memo_of
from kart_core.task_parameters import KartRegister, TaskParameters
from kart_core.task_targets import get_dataframe_type_from_task

logger = logging.getLogger(__name__)

__all__ = [
    "TaskOnKart",
    "config_frozen",
    # Names gokart's own gokart.task module holds (its imports), for `from gokart.task import ...` code.
    "EmptyDumpError",
    "ExplicitBoolParameter",
    "ListTaskInstanceParameter",
    "PandasTypeConfigMap",
    "TaskInstanceParameter",
    "get_dataframe_type_from_task",
    "make_file_processor",
    "make_task_lock_params",
    "make_task_lock_params_for_run",
    "map_flattenable_items",
    "wrap_run_with_lock",
]

T = TypeVar("T")
K = TypeVar("K")

_PLAIN_TYPES = frozenset({str, int, float, bool, bytes, type(None), dict})


# Conveniences that gokart 1.12.2 lacks: a parameter may take their name (kart never calls them itself).
_SHADOWABLE = frozenset({"load_data_frame"})
# What the memo keeps for the empty list TaskOnKart's own requires() returns (a task without task parameters: the
# leaves of most graphs): no list per task (about 70 bytes each in a 100,000-leaf build). Asked again, that
# requires() would return a new empty list, which is what kart_requires_structure() then returns.
_NO_TASK_PARAMETERS: Final = object()


def _routed(user_run: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Wrap a class's own ``run`` so that luigi's worker and direct calls go through ``run_one``.

    ``run_one`` runs the task inside its transaction, where this wrapper calls the user's code; so
    does a ``super().run()`` inside it. The original stays reachable as ``run.__wrapped__`` (and
    ``inspect.getsource`` reads it, so ``serialized_task_definition_check`` ids are unchanged).
    """

    @functools.wraps(user_run)
    def run(self: TaskOnKart[Any]) -> Any:
        if transaction.runs(self):
            return user_run(self)
        with luigi_events.fired_by_caller(self):  # luigi's worker fires the task's events around this call
            runner.run_one(self)
        return None

    run._kart_routed = True  # type: ignore[attr-defined]
    return run


class TaskOnKart(TaskParameters, luigi.Task, Generic[T], metaclass=KartRegister):
    """A luigi.Task with gokart's cached outputs, run logs and parameters.

    Key methods: ``make_target`` (an output path with the unique id), ``dump`` and ``load``.
    """

    # kart_core.runlog's switches (see there), off as gokart writes its run logs. Declared here so that a
    # run's asks (about five) find a value: a class without the attribute formats an AttributeError each time.
    kart_compact_run_logs: ClassVar[bool] = False
    kart_run_record_in_manifest: ClassVar[bool] = False

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
        # Once per class (not per instance): tasks stay plain picklable objects for process workers.
        if not getattr(cls.run, "_kart_routed", False):
            type.__setattr__(cls, "run", _routed(cls.run))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Set the parameters as luigi.Task.__init__ does (luigi 3.8.1), with ``task_id`` computed when first read.

        luigi's constructor serializes every significant public parameter into ``task_id`` for each
        new task; kart names tasks by unique id and reads ``task_id`` only for luigi's own uses
        (hashing, equality, its scheduler), so deferring it makes a cached check of a large graph
        a fifth cheaper. ``param_kwargs`` is built when read instead of kept as a second copy of
        the values (a dict per task: a fifth of a task's memory). The rest is luigi's.

        Raises:
            ParameterTypeError: a value has the wrong type for its parameter (naming the class).
            luigi.parameter.MissingParameterException / UnknownParameterException: as luigi.
        """
        self._kart_cache = TaskMemo()
        self.task_log: dict[str, Any] = {}
        self.task_unique_id: str | None = None
        last_resolution.initializing = True
        try:
            values = self.get_param_values(self.get_params(), args, kwargs)
            cls = type(self)
            plain = cls.__dict__.get(STORES_PLAINLY)  # stores_plainly's answer, kept on the class
            if plain is None:
                plain = stores_plainly(cls)
            if plain:
                self.__dict__.update(values)  # what each Parameter.__set__ does, without 20 Python calls
            else:
                for name, value in values:
                    setattr(self, name, value)
            if plain and cls._warn_on_wrong_param_types is TaskParameters._warn_on_wrong_param_types:
                cls.kart_warn_on_wrong_param_types(values)  # the same checks, on the values in hand
            else:
                self._warn_on_wrong_param_types()  # reads back what each __set__ stored, as luigi does
        except ParameterTypeError as exc:
            raise ParameterTypeError(f"{type(self).__name__}: {exc}") from None
        finally:
            last_resolution.initializing = False
        self.set_tracking_url = None
        self.set_status_message = None
        self.set_progress_percentage = None
        # Where a rerun stands and what made the task stale; a build works on its own copy (kart_core.rerun).
        self._kart_rerun = RerunState(bool(self.rerun))

    @classmethod
    def _kart_direct_initializer(cls) -> Callable[..., None] | None:
        """How ``KartRegister`` may make this class's new tasks without ``type.__call__``: ``_initialize``, when the
        class keeps what it replaces (this ``__init__``, ``object.__new__``, the parameter resolution and value
        checks of ``TaskParameters``, parameters stored under their names); None: it makes them luigi's way."""
        init, get_params, get_param_values, warn = _REPLACED  # as kart defines them (not as patched since)
        direct = (
            cls.__init__ is init
            and cls.__new__ is object.__new__
            and getattr(cls.get_params, "__func__", None) is get_params
            and getattr(cls.get_param_values, "__func__", None) is get_param_values
            and cls._warn_on_wrong_param_types is warn
            and stores_plainly(cls)
        )
        return _initialize if direct else None

    @property
    def param_kwargs(self) -> dict[str, Any]:
        """luigi's ``param_kwargs``: each parameter's value by name, in parameter order (a new dict per read)."""
        return {name: getattr(self, name) for name, _ in self.get_params()}

    def initialized(self) -> bool:
        """luigi's check that ``__init__`` ran (its worker refuses a task that says False): luigi's own looks for
        ``task_id``, which kart computes when first read, so here it is ``task_unique_id``, which ``__init__`` sets
        (to None) and only ``__init__`` does (the task memo is made on demand)."""
        return "task_unique_id" in self.__dict__

    @functools.cached_property
    def task_id(self) -> str:
        """luigi's task id (family and significant public parameters), computed on first use."""
        return str(task_id_str(self.get_task_family(), self.to_str_params(only_significant=True, only_public=True)))

    def __hash__(self) -> int:
        return hash(self.task_id)

    # --- identity (kart_core.identity) ---------------------------------------------------------

    def make_unique_id(self) -> str:
        """The md5 id of this task's parameters and upstream ids, identical to gokart's."""
        return self.task_unique_id if self.task_unique_id is not None else identity.compute_unique_id(self)

    def get_own_code(self) -> str:
        """The sorted source of the methods this class defines beyond TaskOnKart's."""
        return identity.own_code(type(self), TaskOnKart)

    @staticmethod
    def get_code(target_class: Any) -> set[str]:
        """The source texts of ``target_class``'s methods."""
        return identity.method_sources(target_class if isinstance(target_class, type) else type(target_class))

    def kart_label(self) -> str:
        """``Class[first 8 of unique id]``, how errors and logs name this task."""
        return f"{type(self).__name__}[{short_id(self.make_unique_id())}]"

    # --- dependencies, outputs and completeness -----------------------------------------------

    def requires(self) -> Any:
        """By default, the tasks given as TaskInstanceParameter / ListTaskInstanceParameter values."""
        return self.make_task_instance_dictionary() or []

    def make_task_instance_dictionary(self) -> dict[str, Any]:
        """The attributes of this task that are tasks or tuples of tasks, by name."""
        # Most attributes are plain values; skipping them by type keeps this cheap for wide graphs.
        return {k: v for k, v in vars(self).items() if type(v) not in _PLAIN_TYPES and self.is_task_on_kart(v)}

    @staticmethod
    def is_task_on_kart(value: Any) -> bool:
        """Whether ``value`` is a TaskOnKart or a non-empty tuple of them."""
        # A look at the type's MRO, not isinstance(): luigi's metaclass is an ABCMeta, whose
        # instance checks made this a quarter of the time spent building a wide graph.
        if TaskOnKart in type(value).__mro__:
            return True
        return isinstance(value, tuple) and bool(value) and all(TaskOnKart in type(v).__mro__ for v in value)

    def kart_requires_structure(self) -> Any:
        """``requires()`` as it returned (a task, list, dict or nesting of them), called once per task object.

        The unique id (``kart_requires``) and the graph's places (``kart_core.places``) both read it,
        so a graph walk calls each task's ``requires()`` once. With ``cache_unique_id`` off each call
        asks ``requires()`` again, as ``kart_requires`` does.
        """
        if not self.cache_unique_id:
            try:
                return self.requires()
            except Exception as exc:
                _name_the_task(exc, self)
                raise
        memo = memo_of(self)
        structure = memo.requires_structure
        if structure is UNSET:
            try:
                structure = self.requires()
            except Exception as exc:
                _name_the_task(exc, self)
                raise
            memo.requires_structure = _memo_form(self, structure)
            return structure
        return [] if structure is _NO_TASK_PARAMETERS else structure

    def kart_requires(self) -> list[LuigiTask]:
        """``requires()`` flattened to a list, checked to contain tasks only.

        Computed once per task object, unless ``cache_unique_id`` is off: then each call asks
        ``requires()`` again, so the unique id follows a requires() that changed (gokart recomputes both).

        Raises:
            RequiresError: (a TaskDefinitionError and a ValueError, as gokart raises) an item is not a task.
        """
        own = self.__dict__
        memo = own.get("_kart_cache")
        if type(memo) is not TaskMemo:
            memo = memo_of(self)
        cached = memo.requires
        if cached is None:
            # The parameter's value, read from the instance __dict__ where the class keeps it there (its __get__ is a
            # Python call; asked once per task of a graph's walk).
            caching = own.get("cache_unique_id", UNSET) if type(self).__dict__.get(STORES_PLAINLY) else UNSET
            if caching is UNSET:
                caching = self.cache_unique_id
            structure = memo.requires_structure if caching else UNSET  # kart_requires_structure(), inlined
            if structure is _NO_TASK_PARAMETERS:
                structure = []
            elif structure is UNSET:
                try:
                    structure = self.requires()
                except Exception as exc:
                    _name_the_task(exc, self)
                    raise
                if caching:
                    memo.requires_structure = _memo_form(self, structure) if type(structure) is list else structure
            flat = flatten(structure)  # _flat_tasks
            for item in flat:
                # The type's MRO first: isinstance() on luigi's ABC metaclass is a Python-level call.
                if luigi.Task not in type(item).__mro__ and not isinstance(item, luigi.Task):
                    raise RequiresError(
                        f"{type(self).__name__}.requires() returned {type(item).__name__} {item!r}; "
                        "it must return tasks (or a list/dict of tasks)."
                    )
            cached = tuple(flat)  # the empty tuple is one shared object: most tasks of a wide graph are leaves
            if caching:
                memo.requires = cached
        return list(cached)

    def output(self) -> Any:
        """By default one pickle: ``{workspace}/{module path}/{Class}_{unique_id}.pkl``."""
        return self.make_target()

    def kart_outputs(self) -> Any:
        """``output()`` computed once per task object, for kart's own reads (each call with cache_unique_id off)."""
        if not self.cache_unique_id:
            return _checked_outputs(self, self.output())
        memo = memo_of(self)
        outputs = memo.outputs
        if outputs is UNSET:  # read once into a local: another thread may release the memo meanwhile
            outputs = memo.outputs = _checked_outputs(self, self.output())
        return outputs

    def input(self) -> Any:
        """luigi's ``input()``: the outputs of ``requires()``, in its shape."""
        return task_io.inputs_of(self)

    def kart_rerun_state(self) -> RerunState:
        """Where this task's rerun stands for the current build (``kart_core.rerun.state_of``): two builds in
        threads share the task object (luigi's instance cache), not its rerun."""
        own = self.__dict__.get("_kart_rerun")
        if type(own) is not RerunState:  # a task made without __init__, or unpickled from an older kart
            own = self.__dict__["_kart_rerun"] = RerunState(bool(self.rerun))
        return rerun_state.state_of(own)

    @property
    def kart_stale(self) -> list[lineage.StaleInput]:
        """What ``complete()`` found replaced under the task (``kart_core.lineage``) in the current build, or
        outside a build in the latest one; [] when not stale."""
        return list(self.kart_rerun_state().stale)

    @kart_stale.setter
    def kart_stale(self, stale: list[lineage.StaleInput]) -> None:
        self.kart_rerun_state().stale = tuple(stale)

    def kart_stale_fix(self) -> str:
        """What the warning of ``complete()`` that finds this task stale says runs it again: by default that a build
        does, or by hand ``rerun=True`` / ``kart run --rerun`` (``lineage.STALE_FIX``). A class that an adapter
        makes for its own units (kart_kedro's node runs, which no user builds) says what reruns those instead."""
        return lineage.STALE_FIX

    def kart_reset_rerun(self) -> None:
        """Re-arm ``rerun`` for a new build: luigi hands back the same instance, whose rerun was spent.

        Only the current build's state is re-armed (``kart_core.rerun``); another build's stays as it is.
        """
        self.kart_rerun_state()  # the task's own state exists before the build takes its copy
        rerun_state.reset(self.__dict__["_kart_rerun"], bool(self.rerun))

    def kart_replacing(self) -> bool:
        """Whether a rerun of this task waits for its commit: its run must write every output anew
        (the old ones stay in place until the commit replaces them; ``kart_core.rerun``)."""
        return isinstance(self.kart_rerun_state().armed, Baseline)

    def kart_forget_upstreams(self) -> list[LuigiTask]:
        """Forget the cached requires(), outputs and unique id (the config changed); return the upstreams."""
        self.task_unique_id = None
        memo = memo_of(self)
        upstreams = memo.requires
        memo.release()
        memo.requires_structure, memo.requires = UNSET, None
        return list(upstreams or ())

    def kart_release(self) -> None:
        """Forget the outputs (targets) computed for a build that is done with this task.

        They are computed again when asked (``kart_outputs``); the unique id and the ``requires()``
        memo stay. A build calls it on each task it has walked or run, so a
        100,000-task graph does not keep 100,000 sets of targets until the end.
        """
        memo_of(self).release()

    @runner.kart_complete
    def complete(self) -> bool:
        """All outputs exist (and, with strict_check / modification_time_check, the inputs are sound).

        With ``rerun=True``: False until the rerun has committed new outputs. Unlike gokart, which
        deletes the outputs at this first check, kart keeps them until the rerun's commit replaces
        them, so a rerun that fails leaves the old outputs and their integrity record as they were
        (``kart_core.rerun``; outputs without an integrity record are deleted here, as gokart does).

        A commit replacing the outputs while this looks is waited for; one that was killed half way (its
        marker stayed, ``kart_core.commit_marker``) makes the task incomplete, so it runs again.

        A stale task (``kart_core.lineage``: an output it loaded when it ran was committed again since,
        with other content) is incomplete too, like a rerun: a warning names it, ``kart_stale`` holds
        what was replaced, and the old outputs stay until its run commits. One small read of its
        manifest (parsed only when it may record inputs: ``manifest.read_if_inputs``), and one JSON read
        per upstream manifest it recorded, when its outputs exist.

        Only committed outputs count, whoever asks: in a context kart never set (luigi's worker, for
        ``luigi.build([...], workers=N)`` in any thread, or a user's thread) the outputs are looked at detached
        (``transaction.detached``), as kart's own walk looks (``kart_core.orchestrate``). Such a thread, started
        after another thread's run of this task object began, would otherwise join that run as a thread its
        ``run()`` started does, and count its staged, uncommitted output as complete.
        """
        if transaction.unset():
            with transaction.detached():
                return self._complete()
        return self._complete()

    def _complete(self) -> bool:
        """``complete()`` in the transaction context the caller has (one kart set)."""
        outputs = flatten(self.kart_outputs())
        state = self.kart_rerun_state()  # this build's (kart_core.rerun), read once
        armed = state.armed
        if armed is True:
            armed = state.armed = arm_rerun(outputs)
            if armed.unrecorded:  # the rerun replaces files its task never committed: not another class's
                _refuse_claimed(self, [target.record for target in outputs if _unrecorded(target, armed)])
        if isinstance(armed, Baseline):
            if armed.pending():
                return False
            armed = state.armed = False
        if not outputs:
            # luigi's Task.complete: a task without outputs is never complete (it ran never, as all([]) said).
            logger.warning(
                "%s has no outputs (output() returned an empty list or dict) and no complete() of its own: it runs each time",
                self.kart_label(),
            )
            return False
        done = all(target.exists() for target in outputs) and _commits_settled(outputs)
        if done and armed is False:
            unvouched: list[OutputRecord] = []
            stale = lineage.stale_outputs(outputs, self.kart_requires, unvouched)
            if unvouched and _unfinished_run(self, unvouched):
                return False
            if stale:
                # Like a rerun: the old outputs stay until the new run's commit replaces them.
                state.stale = tuple(stale)
                logger.warning("%s", lineage.describe(self.kart_label(), stale, self.kart_stale_fix()))
                armed = state.armed = arm_rerun(outputs)
                return not armed.pending()
        if not done or not (self.strict_check or self.modification_time_check):
            return done
        inputs = flatten(self.input())
        if not all(task.complete() for task in self.kart_requires()) or not all(i.exists() for i in inputs):
            return False
        return not self.modification_time_check or _inputs_older_than_outputs(self, inputs, outputs)

    def kart_sibling_outputs_if_complete(
        self, unique_id: str, relative_paths: Sequence[str], run: bool = True
    ) -> SiblingOutputs:
        """``outputs_if_complete(sibling)`` for a sibling of this task, without making it, when that can be told so.

        The sibling: a task of this class with this task's parameters but for significant ones (so its settings:
        workspace, run logs, redis, rerun and checks are this task's), whose unique id is ``unique_id``, that
        requires nothing, and whose ``output()`` is a list of ``make_target(path)`` for ``relative_paths``, made as the
        sibling (``task_targets.sibling_target``; any format). For an adapter that keys many tasks of one class by
        strings (kart_kedro's node runs): checking a cached one costs neither luigi's construction of it nor its
        targets' (the check reads their paths and integrity records only).

        The check is ``complete()``'s, step by step: each output exists (committed: the view of a check outside any
        run), no commit of its manifest is half done and no output is being written by path, and the manifest's
        recorded inputs were not replaced since (``kart_core.lineage``); then the digests and run record come from
        that one read of the manifest, as ``outputs_if_complete`` takes them (``run``: with its run record;
        False: ``output_digests_if_complete``'s lighter parse, and ``CompleteOutputs.run`` is None).

        Returns:
            ``SiblingOutputs(True, None)`` when the sibling is not complete (an output is missing, a commit is
            unsettled or a by-path write unfinished: ``complete()`` would say False and change nothing);
            ``SiblingOutputs(True, outputs)`` when it is complete. ``SiblingOutputs(False, None)`` (ask the
            sibling itself) when this task reruns, checks its inputs (``strict_check``,
            ``modification_time_check``), requires something, writes no integrity records or caches no ids,
            signing is on (the manifest must be verified), the caller is inside a run, or the sibling is stale
            (its own ``complete()`` warns and arms its rerun) or its digests are not all in one settled manifest.

        Raises:
            As ``complete()`` (a storage error).
        """
        undecided = SiblingOutputs(False, None)
        if (
            not _sibling_checkable(self)
            or not transaction.unset()  # inside a run: the sibling's own check may see that run's staged outputs
            or target_config.current().signer is not None
        ):
            return undecided
        outputs = []
        for path in relative_paths:
            full = workspace.with_unique_id(task_targets.workspace_file(self, path), unique_id)
            # A target's exists() outside any run (no task memo: it joins none) asks its storage just this; asked
            # before any record is made, as a first run's check of every node finds none.
            if not storage_for(full).exists(full):
                return SiblingOutputs(True, None)
            outputs.append(_Placed(full, task_targets.sibling_record(self, unique_id, path)))
        with transaction.detached():
            if not _commits_settled(outputs):
                return SiblingOutputs(True, None)
            with lineage.walk_scope() as scope:
                scope.read_runs = run
                if lineage.stale_outputs(outputs, list):
                    return undecided
        found = complete_from_scope(outputs, scope)
        return undecided if found is None else SiblingOutputs(True, found)

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

    run = _routed(luigi.Task.run)

    # --- targets (kart_core.task_targets) -------------------------------------------------------

    def make_target(
        self,
        relative_file_path: str | None = None,
        use_unique_id: bool = True,
        processor: FileProcessor[Any] | None = None,
    ) -> TargetOnKart:
        """An output at ``{workspace}/{relative_file_path}`` with ``_{unique_id}`` before the extension."""
        return task_targets.make_target(self, relative_file_path, use_unique_id, processor)

    def make_large_data_frame_target(
        self, relative_file_path: str | None = None, use_unique_id: bool = True, max_byte: int = int(2**26)
    ) -> TargetOnKart:
        """A zip of pickled DataFrame chunks of about ``max_byte`` bytes each."""
        return task_targets.make_large_data_frame_target(self, relative_file_path, use_unique_id, max_byte)

    def make_model_target(
        self,
        relative_file_path: str,
        save_function: Callable[[Any, str], None],
        load_function: Callable[[str], Any],
        use_unique_id: bool = True,
    ) -> TargetOnKart:
        """A zip holding what ``save_function(model, path)`` wrote; ``load_function(path)`` reads it."""
        return task_targets.make_model_target(self, relative_file_path, save_function, load_function, use_unique_id)

    def kart_log_target(self, kind: str, extension: str = ".pkl") -> KartTarget:
        """The run log ``log/{kind}/{Class}_{unique_id}{extension}`` of this task."""
        return task_targets.log_target(self, workspace.LogKind(kind, extension))

    # --- load and dump (kart_core.task_io) -------------------------------------------------------

    @overload
    def load(self, target: None | str | TargetOnKart = None) -> Any: ...

    @overload
    def load(self, target: TaskOnKart[K]) -> K: ...

    @overload
    def load(self, target: list[TaskOnKart[K]]) -> list[K]: ...

    def load(self, target: Any = None) -> Any:
        """Load inputs: all (None), one by requires() key (str), a target, a task, or a list of tasks."""
        return task_io.load(self, target)

    def load_generator(self, target: Any = None) -> Generator[Any, None, None]:
        """Like ``load`` but yields the loaded inputs one at a time."""
        return task_io.load_generator(self, target)

    def load_data_frame(
        self, target: Any = None, required_columns: set[str] | None = None, drop_columns: bool = False
    ) -> Any:
        """Load a DataFrame (concatenating a list of them), checking that ``required_columns`` are present."""
        return task_io.load_data_frame(self, target, required_columns, drop_columns)

    @overload
    def dump(self, obj: T, target: None = None, custom_labels: dict[Any, Any] | None = None) -> None: ...

    @overload
    def dump(self, obj: Any, target: str | TargetOnKart, custom_labels: dict[Any, Any] | None = None) -> None: ...

    def dump(self, obj: Any, target: Any = None, custom_labels: dict[Any, Any] | None = None) -> None:
        """Write ``obj`` to the output (or the output named ``target``), atomically."""
        task_io.dump(self, obj, target, custom_labels, fail_on_empty_dump=self.fail_on_empty_dump)

    # --- run logs (kart_core.runlog) --------------------------------------------------------------

    def get_task_log(self) -> dict[str, Any]:
        """The task_log dict of this run, or the one stored by the last run."""
        return self.task_log or cast(dict[str, Any], runlog.read_log(self, workspace.TASK_LOG, {}))

    def get_task_params(self) -> dict[str, Any]:
        """The significant parameters stored by the last run (gokart read the task_log file here)."""
        return cast(dict[str, Any], runlog.read_log(self, workspace.TASK_PARAMS, {}))

    def get_processing_time(self) -> Any:
        """Seconds the last run took (from the task log for ``kart_compact_run_logs`` classes), or 'unknown'."""
        found = runlog.read_log(self, workspace.PROCESSING_TIME, None)
        if found is None:
            return runlog.compact_value(self.get_task_log(), workspace.PROCESSING_TIME, (int, float), "unknown")
        return found

    @classmethod
    def restore(cls, unique_id: str, workspace_directory: str | None = None) -> TaskOnKart[Any]:
        """Rebuild the task whose run stored its parameters under ``unique_id``."""
        base: TaskOnKart[Any] = (
            TaskOnKart() if workspace_directory is None else TaskOnKart(workspace_directory=workspace_directory)
        )
        params = runlog.stored_params(base.workspace_directory, cls.__name__, unique_id)
        return cast(TaskOnKart[Any], cls.from_str_params(params))

    # --- description ------------------------------------------------------------------------------

    def get_info(self, only_significant: bool = False) -> dict[str, str]:
        """Parameters as strings; a task parameter shows as ``Class-unique_id``."""
        return identity.info(self, only_significant)

    @staticmethod
    def try_set_seed(methods: list[str], random_seed: int) -> list[str]:
        """Call each dotted seed function that exists with ``random_seed``; return those that ran."""
        return runner.call_seed_methods(methods, random_seed)

    @property
    def priority(self) -> float:  # type: ignore[override]
        """A random priority, so luigi's scheduler spreads sibling tasks (as gokart does)."""
        return random.Random().random()

    def __repr__(self) -> str:
        return identity.describe(self, only_public=False)

    def __str__(self) -> str:
        return identity.describe(self, only_public=True)


# What a task made directly (``_initialize``) does instead of: TaskOnKart's __init__, TaskParameters' resolution and checks.
_REPLACED: Final = (
    TaskOnKart.__init__,
    vars(TaskParameters)["get_params"].__func__,
    vars(TaskParameters)["get_param_values"].__func__,
    TaskParameters._warn_on_wrong_param_types,
)


def _checked_outputs(task: TaskOnKart, outputs: Any) -> Any:
    """``outputs`` (what ``task.output()`` returned) when each leaf is a target (has ``exists``, as luigi asks).

    Raises:
        OutputTypeError: (a TaskDefinitionError and an AttributeError, as gokart raises) a leaf is something else (a
            path string, None), naming the task and the value, instead of a bare AttributeError of its first check.
    """
    if hasattr(outputs, "exists"):  # one target: the common case, no flatten
        return outputs
    _refuse_none(task, outputs)
    for leaf in flatten(outputs):
        if type(leaf) is str or not hasattr(leaf, "exists"):
            raise OutputTypeError(
                f"{task.kart_label()}: output() returned {type(leaf).__name__} {leaf!r} among its outputs; it must "
                "return targets: self.make_target('path/name.ext') (or a list or dict of them), not a path string."
            )
    return outputs


def _refuse_none(task: TaskOnKart, outputs: Any, where: str = "") -> None:
    """Raise OutputTypeError for a None among ``outputs`` (flattening drops None, so the task counted complete
    without ever running: attacker at24 F4), naming the key or index that holds it."""
    if outputs is None:
        at = f" at {where}" if where else ""
        raise OutputTypeError(
            f"{task.kart_label()}: output() returned None{at}; it must return targets: "
            "self.make_target('path/name.ext') (or a list or dict of them)."
        )
    if isinstance(outputs, dict):
        for key, value in outputs.items():
            _refuse_none(task, value, f"{where}[{key!r}]")
    elif isinstance(outputs, list | tuple):
        for index, value in enumerate(outputs):
            _refuse_none(task, value, f"{where}[{index}]")


_REQUIRES_NOTE = "kart: raised by requires() of "


def _name_the_task(exc: BaseException, task: TaskOnKart) -> None:
    """Add a note naming ``task`` (class and significant parameters) to an exception its ``requires()`` raised.

    The exception keeps its type; the note shows in its traceback, so a DAG file's import error or a Kedro
    pipeline's creation names the task among hundreds (build() names it in its summary too). The task's
    unique id is not shown: computing it calls the same ``requires()``. Only the innermost task is named.
    """
    if any(str(note).startswith(_REQUIRES_NOTE) for note in getattr(exc, "__notes__", ())):
        return
    try:
        params = ", ".join(f"{k}={v}" for k, v in task.to_str_params(only_significant=True).items())
    except Exception:  # a parameter whose serialization needs the same broken requires()
        params = "..."
    if len(params) > 200:
        params = params[:197] + "..."
    exc.add_note(f"{_REQUIRES_NOTE}{task.get_task_family()}({params}); fix it, or the parameters that reach it.")


def _flat_tasks(structure: Any) -> list[Any]:
    """luigi's ``flatten`` of what ``requires()`` returned, with one task (a chain link's case) handled at once.

    luigi's ``flatten`` learns that a task is not iterable by catching ``iter()``'s TypeError: the
    dearest step of a chain's cached check. ``kart_core.structure.flatten`` knows per class that it is
    not (asking the class each time for the ``__iter__`` it lacks, as this did, formatted an
    AttributeError); a task class that defines ``__iter__`` goes through luigi's ``flatten`` as before.
    """
    return flatten(structure)


def _initialize(
    task: TaskOnKart[Any], values: list[tuple[str, Any]], plan: ParameterPlan, args: Any, kwargs: Any
) -> None:
    """``TaskOnKart.__init__(task, *args, **kwargs)`` for a new task of a class ``_kart_direct_initializer`` allows,
    given ``values``, the parameters ``param_plan.resolve(cls, plan, args, kwargs)`` resolved for the instance cache's
    key: the same attributes, set in the same order, and luigi's value checks (only those that can warn).

    Raises:
        ParameterTypeError: a value has the wrong type for its parameter (naming the class).
    """
    try:
        check_resolved(plan, values, args, kwargs)
    except ParameterTypeError as exc:
        raise ParameterTypeError(f"{type(task).__name__}: {exc}") from None
    task._kart_cache = TaskMemo()
    task.task_log = {}
    task.task_unique_id = None
    attributes = task.__dict__
    attributes.update(values)  # what each Parameter.__set__ does (stores_plainly)
    task.set_tracking_url = None
    task.set_status_message = None
    task.set_progress_percentage = None
    rerun = attributes["rerun"] if "rerun" in attributes else task.rerun  # the parameter's value, without its __get__
    task._kart_rerun = RerunState(bool(rerun))


def _sibling_checkable(task: TaskOnKart[Any]) -> bool:
    """Whether ``task``'s settings let ``kart_sibling_outputs_if_complete`` check a sibling without making it: no rerun,
    no input checks, ids cached, integrity records written, nothing required. Told once per task object (kept in its
    ``__dict__``): its parameters never change after it is made, and ``kart_requires()`` is memoized on it."""
    known = task.__dict__.get("_kart_sibling_checkable")
    if known is None:
        known = task.__dict__["_kart_sibling_checkable"] = not (
            task.rerun
            or task.strict_check
            or task.modification_time_check
            or not task.cache_unique_id
            or not task.should_dump_supplementary_log_files
            or task.kart_requires()
        )
    return bool(known)


def _unfinished_run(task: TaskOnKart[Any], unvouched: list[OutputRecord]) -> bool:
    """Whether an output of ``task`` that no integrity record vouches for is what a killed or failed run left.

    A ``run()`` that writes its output itself, at a path its own code computes (not ``dump()``, not the
    path a target hands out), writes in place: killed half way, its partial file stands at the final path.
    Its run logs tell (``damage.unvouched_reason``: the start-of-run logs are there, the task log is not),
    as a load of the file does, which refuses it; so the task is incomplete and runs again. Outputs gokart
    wrote, or put there by hand, stay complete (they load unchecked, with a warning). Two to four stats, only
    for outputs without a manifest (attacker at24 F9: ``complete()`` was True and ``run_one`` said CACHED).

    Raises:
        OutputTypeError: an output no run of ``task`` recorded is another task class's committed output
            (``_refuse_claimed``).
    """
    for record in unvouched:
        origin, reason = damage.unvouched_reason(record)
        if origin == "unfinished":
            logger.warning("%s is incomplete: its output %r: %s; it runs again", task.kart_label(), record.key, reason)
            return True
        if origin == "none":
            _refuse_claimed(task, [record])
    return False


def _unrecorded(target: Any, baseline: Baseline) -> bool:
    record = getattr(target, "record", None)
    return isinstance(record, OutputRecord) and (record.manifest, record.key) in baseline.unrecorded


def _refuse_claimed(task: TaskOnKart[Any], records: list[OutputRecord]) -> None:
    """Refuse ``task`` when one of its outputs (``records``: files it never committed) is another task class's
    committed output (``side_record.claimant``): its run would overwrite that output, and each task's readers would
    be handed the other's value (attacker at25 F3: a ``make_target`` of another task's path, or a fixed path two
    classes write).

    Raises:
        OutputTypeError: naming both tasks, the path, and what to change.
    """
    for record in records:
        other = side_record.claimant(record)
        if other is not None:
            raise OutputTypeError(
                f"{task.kart_label()}: its output {record.key!r} is {other}'s committed output (that task's integrity "
                f"record lists the file), so kart neither counts it as {task.kart_label()}'s nor runs "
                f"{task.kart_label()} over it: each task's readers would be handed the other's value. Give "
                f"{type(task).__name__} or {other.split('[')[0]} a path of its own (make_target with another name, "
                f"or keep use_unique_id), or make one require the other and load its output."
            )


def _commits_settled(outputs: list[Any]) -> bool:
    """Whether no commit of the outputs' task is half done (one existence check of its marker per manifest), and
    no output is marked as being written by path (``commit_marker.writing_marker``: one more existence check per
    output; a by-path writer without an integrity record, or one killed while records were off, marks it so)."""
    seen: str | None = None
    for target in outputs:
        record = getattr(target, "record", None)
        # Whatever the setting now: a by-path writer killed while integrity records were off left its marker
        # beside a partial file that has no record, which a run with records on would otherwise take as complete.
        if _being_written(target):
            return False
        if record is not None and record.manifest != seen:
            seen = record.manifest
            if not commit_marker.settled(record, functools.partial(_own_keys, outputs, seen), _signer):
                return False
    return True


class _Placed:
    """An output of a sibling task for its completeness check (``kart_sibling_outputs_if_complete``): what the check
    reads of its target (``_path``, ``record``: ``_commits_settled``, ``lineage.stale_outputs``,
    ``output_digests.complete_from_scope``), without making the target (``task_targets.sibling_target``)."""

    __slots__ = ("_path", "record")

    def __init__(self, path: str, record: Any) -> None:
        self._path, self.record = path, record


def _being_written(target: Any) -> bool:
    """Whether a kart target without a record has a by-path writer's marker beside it (live, or killed)."""
    path = getattr(target, "_path", None)  # not path(): asked inside the task's run() it would hand the path out
    # _Placed first: TargetOnKart is an abstract class, whose isinstance() runs ABCMeta's check in Python.
    if not isinstance(path, str) or not (type(target) is _Placed or isinstance(target, TargetOnKart)):
        return False
    marker = commit_marker.writing_marker(path)
    if not storage_for(path).exists(marker):
        return False
    logger.info(
        "%r is being written by path, or its writer was killed (marker %r): its task is incomplete", path, marker
    )
    return True


def _own_keys(outputs: list[Any], manifest: str) -> set[str]:
    """The keys of the outputs recorded in the manifest at ``manifest``: all its marker may name (``commit_marker.settled``)."""
    return {
        record.key
        for record in (getattr(target, "record", None) for target in outputs)
        if record is not None and record.manifest == manifest
    }


def _signer() -> Any:
    """The signer markers must be signed by (None: signing off); asked only when a marker is found."""
    return target_config.current().signer


def _inputs_older_than_outputs(task: TaskOnKart[Any], inputs: list[Any], outputs: list[Any]) -> bool:
    """gokart's ``modification_time_check``: the newest input is not newer than the oldest output.

    Inputs may be plain luigi targets (``luigi.LocalTarget`` of a ``luigi.ExternalTask``): their ``path``
    is an attribute, and their time is read from the file (gokart calls ``path()`` and fails there).
    """
    shared = {_path_of(task, t) for t in inputs} & {_path_of(task, t) for t in outputs}
    inputs = [t for t in inputs if _path_of(task, t) not in shared]
    outputs = [t for t in outputs if _path_of(task, t) not in shared]
    if not inputs or not outputs:
        return True
    # "<=": a task may use an input target as one of its outputs.
    return max(_modified(task, t) for t in inputs) <= min(_modified(task, t) for t in outputs)


def _path_of(task: TaskOnKart[Any], target: Any) -> str:
    """A kart target's ``path()`` or a luigi file target's ``path`` attribute.

    Raises:
        TaskDefinitionError: the target has no path (it cannot be dated), naming the task and the target.
    """
    path = getattr(target, "path", None)
    if callable(path):
        path = path()
    if not isinstance(path, str):
        raise TaskDefinitionError(
            f"{task.kart_label()} sets modification_time_check = True, but the target {target!r} among its "
            "inputs and outputs has no file path, so its modification time cannot be read. Give it a file "
            "target (luigi.LocalTarget, or a kart task's output), or set modification_time_check = False."
        )
    return path


def _modified(task: TaskOnKart[Any], target: Any) -> datetime.datetime:
    """When ``target`` was last written (local naive time, as ``Storage.modification_time`` says)."""
    if isinstance(target, TargetOnKart):
        return target.last_modification_time()
    path = _path_of(task, target)
    try:
        return storage_for(path).modification_time(path)
    except FileNotFoundError:  # an in-memory target (luigi's MockTarget) names a path no storage holds
        raise TaskDefinitionError(
            f"{task.kart_label()} sets modification_time_check = True, but the target {target!r} among its "
            f"inputs and outputs has no file at {path!r}, so its modification time cannot be read. Give it a file "
            "target (luigi.LocalTarget, or a kart task's output), or set modification_time_check = False."
        ) from None


def _memo_form(task: TaskOnKart[Any], structure: Any) -> Any:
    """What the memo keeps for ``structure``, what ``task.requires()`` returned (see ``_NO_TASK_PARAMETERS``)."""
    if type(structure) is list and not structure and type(task).requires is TaskOnKart.requires:
        return _NO_TASK_PARAMETERS
    return structure
