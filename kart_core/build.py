"""build(): gokart's entry point, on kart's own orchestration (no luigi scheduler).

``orchestrate`` walks the graph once and runs what is missing through ``run_one``, sequentially or
on a pool of threads or processes, gathering failures per task; build() turns them into one
``GokartBuildError`` and loads the outputs. No process-wide logging changes.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import inspect
import io
import logging
from typing import Any, Protocol

import pluggy
from luigi import task as luigi_task
from luigi import task_register
from luigi.interface import core as luigi_core
from luigi.parameter import UnknownParameterException
from luigi.worker import TaskException

from kart_core.contract import LuigiTask
from kart_core.errors import (
    GokartBuildError,
    HasLockedTaskException,
    KartError,
    MissingInputBuildError,
    TaskLockException,
)
from kart_core.executor import Executor, execute
from kart_core.info import make_tree_info
from kart_core.loading import load_output
from kart_core.orchestrate import orchestrate
from kart_core.outcome import BuildResult, is_external, uninitialized_message, unique_id_or_none
from kart_core.target import TargetOnKart, make_target
from kart_core.task import TaskOnKart
from kart_core.tree.task_info import make_task_info_as_table
from kart_core.worker import WorkerSchedulerFactory

__all__ = [
    "BuildResult",
    "Executor",
    "GokartBuildError",
    "HasLockedTaskException",
    "NotATaskError",
    "UninitializedTaskError",
    "TargetOnKart",
    "TaskLockException",
    "LoggerConfig",
    "TaskDumpConfig",
    "TaskDumpMode",
    "TaskDumpOutputType",
    "UnknownBuildParameterError",
    "WorkerProtocol",
    "WorkerSchedulerFactory",
    "build",
    "execute",
    "load_output",
    "process_task_info",
]

logger = logging.getLogger(__name__)


class LoggerConfig:
    """Set this module's logger to ``level`` inside a ``with`` block; restore it afterwards.

    gokart 1.12.2's name and use (``with LoggerConfig(level=logging.INFO): ...``). gokart also called
    ``logging.disable()`` for the whole process; kart changes only its own build logger.
    """

    def __init__(self, level: int) -> None:
        self.logger = logging.getLogger(__name__)
        self.default_level = self.logger.level
        self.level = level

    def __enter__(self) -> LoggerConfig:
        self.logger.setLevel(self.level)
        return self

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        self.logger.setLevel(self.default_level)


class WorkerProtocol(Protocol):
    """What ``WorkerSchedulerFactory.create_worker`` returns (gokart 1.12.2's name): luigi's worker interface."""

    def add(self, task: Any) -> bool:
        """Schedule ``task`` and its missing upstreams."""
        ...

    def run(self) -> bool:
        """Run what was scheduled; whether everything succeeded."""
        ...

    def __enter__(self) -> WorkerProtocol: ...

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> Any: ...


class TaskDumpMode(enum.Enum):
    """What ``build(task_dump_config=...)`` reports about the graph before it runs: the tree, the table, or nothing."""

    TREE = "tree"
    TABLE = "table"
    NONE = "none"


class TaskDumpOutputType(enum.Enum):
    """Where that report goes: the build logger (``PRINT``), a file in the workspace (``DUMP``), or nowhere."""

    PRINT = "print"
    DUMP = "dump"
    NONE = "none"


@dataclasses.dataclass
class TaskDumpConfig:
    """gokart 1.12.2's ``build(task_dump_config=...)``: report the task graph before the build (see ``process_task_info``)."""

    mode: TaskDumpMode = TaskDumpMode.NONE
    output_type: TaskDumpOutputType = TaskDumpOutputType.NONE


def process_task_info(task: Any, task_dump_config: TaskDumpConfig | None = None) -> None:
    """Report ``task``'s graph as ``task_dump_config`` says, as gokart 1.12.2's build does before running.

    - ``TREE`` + ``PRINT``: ``make_tree_info(task)`` logged at INFO on this module's logger;
    - ``TABLE`` + ``PRINT``: ``make_task_info_as_table(task)`` as tab-separated text, logged likewise;
    - ``TREE`` + ``DUMP``: the tree text in ``{workspace}/log/task_info/{Class}_{id}.txt``;
    - ``TABLE`` + ``DUMP``: the table (a pandas DataFrame) in ``{workspace}/log/task_info/{Class}_{id}.pkl``;

    where the workspace is ``[TaskOnKart] workspace_directory`` and the id that of a bare
    ``TaskOnKart()`` (gokart's layout, so the same file names).

    Raises:
        ValueError: any other combination (e.g. ``NONE`` with ``PRINT``), with gokart's message start.
    """
    config = task_dump_config if task_dump_config is not None else TaskDumpConfig()
    mode, output = config.mode, config.output_type
    if mode is TaskDumpMode.NONE and output is TaskDumpOutputType.NONE:
        return
    if mode is TaskDumpMode.NONE or output is TaskDumpOutputType.NONE:
        raise ValueError(f"Unsupported TaskDumpConfig: {config}. Set both mode and output_type, or neither.")
    if output is TaskDumpOutputType.PRINT:
        logger.info(make_tree_info(task) if mode is TaskDumpMode.TREE else _table_text(task))
        return
    anchor: TaskOnKart[Any] = TaskOnKart()
    extension = ".txt" if mode is TaskDumpMode.TREE else ".pkl"
    relative = f"log/task_info/{type(task).__name__}{extension}"
    target = make_target(f"{str(anchor.workspace_directory).rstrip('/')}/{relative}", anchor.make_unique_id())
    target.dump(make_tree_info(task) if mode is TaskDumpMode.TREE else make_task_info_as_table(task))


def _table_text(task: Any) -> str:
    text = io.StringIO()
    make_task_info_as_table(task).to_csv(text, index=False, sep="\t")
    return text.getvalue()


def _report_graph(task: Any, task_dump_config: TaskDumpConfig, log_level: int) -> None:
    """``process_task_info`` with the build logger at ``log_level`` and a stderr handler, as gokart's build."""
    handler = logging.StreamHandler()
    with LoggerConfig(level=log_level):
        logger.addHandler(handler)
        try:
            process_task_info(task, task_dump_config)
        finally:
            logger.removeHandler(handler)
            handler.close()


class UnknownBuildParameterError(KartError, UnknownParameterException, TypeError):
    """``build()`` was given a keyword argument it does not know (attacker at20 K1).

    gokart 1.12.2's ``build`` hands its extra keyword arguments to ``luigi.build``, whose ``core`` config raises
    ``luigi.parameter.UnknownParameterException`` for a name it does not know; kart raises this subclass of it, also a
    ``TypeError`` (what Python raises for an unknown keyword), so either ``except`` catches it. Defined here rather
    than in ``kart_core.errors``, which imports no luigi (``kart runs`` starts without it).
    """


class NotATaskError(KartError, TaskException, TypeError):
    """``build()`` was given something that is not a task instance: a task class (the parentheses forgotten), a
    task's name, None (attacker at21 L3).

    gokart 1.12.2's ``build`` hands its roots to luigi's worker, which raises ``luigi.worker.TaskException`` ("Can
    not schedule non-task ..."); kart raises this subclass of it, also a ``TypeError`` (a wrong argument type),
    before anything runs.
    """


class UninitializedTaskError(KartError, TaskException):
    """A task's class overrides ``__init__`` without calling ``super().__init__(...)``, so the task has no
    parameters or id (attacker at25 F6: a bare ``AttributeError: ... 'task_unique_id'``).

    luigi's worker checks ``task.initialized()`` before it schedules a task and raises ``luigi.worker.TaskException``
    (gokart 1.12.2's ``build`` raises that for such a root); kart raises this subclass of it for a root, before
    anything runs, and the same ``TaskException`` for a requirement (inside ``GokartBuildError``).
    """


def _check_roots(roots: list[LuigiTask]) -> None:
    """Refuse a root that is not a luigi task instance, or one whose ``__init__`` skipped luigi's, naming it and
    the fix.

    Raises:
        NotATaskError: the first such root; for a task class, how to make an instance of it.
        UninitializedTaskError: a root's ``__init__`` did not call ``super().__init__``.
    """
    for position, root in enumerate(roots):
        if isinstance(root, luigi_task.Task):
            if not root.initialized():
                raise UninitializedTaskError(uninitialized_message(root))
            continue
        where = f" (item {position} of the list)" if len(roots) > 1 else ""
        if isinstance(root, type) and issubclass(root, luigi_task.Task):
            name = f"{root.__module__}.{root.__qualname__}"
            fix = f"build() takes task instances: call the class, build({root.__qualname__}(...)) with its parameters."
            raise NotATaskError(f"build() got the task class {name}{where}, not a task. {fix}")
        raise NotATaskError(
            f"build() got {type(root).__name__} {root!r:.80}{where}, not a task: it takes a task instance (or a list "
            "of them), e.g. build(MyTask(param=1)); to build a task by its name, use `kart run module.MyTask`."
        )


# luigi.build's own keywords besides the ``core`` config's (luigi/interface.py), which gokart's build also takes.
_LUIGI_BUILD_KEYWORDS = frozenset({"worker_scheduler_factory", "detailed_summary"})


def _check_workers(workers: Any, executor: Any) -> None:
    """Refuse a ``workers`` or ``executor`` value build() would otherwise take silently (attacker at24 F12: a
    misspelt executor, ``"procs"``, ran every task in threads; ``workers="2"`` from an environment variable failed as
    a bare comparison TypeError).

    Raises:
        TypeError: ``workers`` is not an int, naming the value and what to pass.
        ValueError: ``executor`` is not ``"process"`` or ``"thread"``, naming the value.
    """
    if not isinstance(workers, int):
        raise TypeError(
            f"build(workers={workers!r}): workers must be an int, the number of tasks that may run at once."
        )
    if executor not in ("process", "thread"):
        raise ValueError(
            f"build(executor={executor!r}): executor must be 'process' (processes, for CPU-bound tasks) or 'thread' "
            "(threads of this process)."
        )


def _check_env_params(env_params: dict[str, Any], roots: list[LuigiTask]) -> None:
    """Refuse a keyword ``build()`` would otherwise ignore silently: any but luigi's ``core`` settings (its
    parameters in the installed luigi: ``local_scheduler``, ``no_lock``, ``scheduler_host``, ...) and luigi.build's own
    ``worker_scheduler_factory`` and ``detailed_summary``, which kart accepts and ignores.

    Raises:
        UnknownBuildParameterError: naming the keyword; when a root's class has a parameter of that name
            (``rerun``, ``workspace_directory``), how to set it on the task; else the closest names build() knows.
    """
    accepted = _LUIGI_BUILD_KEYWORDS | set(luigi_core.get_param_names(include_significant=True))
    unknown = [name for name in env_params if name not in accepted]
    if not unknown:
        return
    name = unknown[0]
    value = env_params[name]
    owner = next((root for root in roots if name in _param_names(root)), None)
    if owner is not None:
        cls = type(owner).__name__
        hint = (
            f" {name} is a parameter of {cls}, not of build(): set it on the task, build({cls}({name}={value!r}))"
            + (", which runs it again even when its output exists" if name == "rerun" else "")
            + "."
        )
    else:
        own = set(inspect.signature(build).parameters) - {"task", "env_params"}
        close = difflib.get_close_matches(name, sorted(own | accepted), n=2)
        hint = f" Did you mean {' or '.join(repr(match) for match in close)}?" if close else ""
    raise UnknownBuildParameterError(
        f"build() got an unknown keyword argument {name!r}{f' (and {unknown[1:]})' if len(unknown) > 1 else ''}: "
        "it takes its own arguments and luigi's [core] settings (local_scheduler, no_lock, scheduler_host, ...: gokart "
        f"hands them to luigi.build, which refuses any other name).{hint}"
    )


def _param_names(task: LuigiTask) -> set[str]:
    """The luigi parameter names of ``task``'s class; none for an object that is not a luigi task."""
    get_params = getattr(type(task), "get_params", None)
    try:
        return {name for name, _ in get_params()} if callable(get_params) else set()
    except Exception:  # noqa: BLE001 - only chooses a hint
        return set()


def build(
    task: LuigiTask | list[LuigiTask] | tuple[LuigiTask, ...],
    return_value: bool = True,
    reset_register: bool = True,
    log_level: int = logging.ERROR,
    task_lock_exception_max_tries: int = 10,
    task_lock_exception_max_wait_seconds: int = 600,
    *,
    workers: int = 1,
    executor: Executor = "process",
    keep_going: bool = False,
    hook_manager: pluggy.PluginManager | None = None,
    progress: bool | None = None,
    lock: bool | None = None,
    task_dump_config: TaskDumpConfig | None = None,
    **env_params: Any,
) -> Any:
    """Build ``task`` (or a list of tasks) and return its loaded output (a list of outputs for a list).

    Args:
        task: a TaskOnKart, or a list of them.
        return_value: load and return the output(s); None otherwise.
        reset_register: forget stale re-definitions of task classes (e.g. from notebooks).
        log_level: the level of the ``task_dump_config`` report (gokart's); kart never changes logging globally.
        task_lock_exception_max_tries: accepted for gokart compatibility (kart's locks wait).
        task_lock_exception_max_wait_seconds: accepted for gokart compatibility.
        workers: how many tasks may run at once.
        executor: "process" (default; CPU-bound work) or "thread", used when workers > 1.
        keep_going: after a failure, go on with the tasks that do not depend on it.
        hook_manager: plugins to call; default: run logs and entry-point plugins.
        progress: draw a live progress bar (rich) on stderr (default: when it is a terminal and CI is unset);
            a summary line is printed at the end either way.
        lock: hold each task's lock while it runs, so concurrent builders (other processes, Kedro
            workers, Airflow) run it once; None: as each task says (should_lock_run or redis set).
        task_dump_config: report the graph before building (gokart's ``TaskDumpConfig``; see
            ``process_task_info``); printed reports go to stderr when ``log_level`` is INFO or lower.
        env_params: luigi.build keyword arguments: luigi's ``[core]`` settings (``local_scheduler``, ``no_lock``,
            ``scheduler_host``, ...) and ``worker_scheduler_factory``, ``detailed_summary``; accepted and ignored.

    Raises:
        NotATaskError: a root is not a task instance (a task class, a name), naming it; before anything runs (gokart's
            luigi raises ``TaskException``, which it extends, as ``TypeError``).
        TypeError / ValueError: ``workers`` is not an int, or ``executor`` is neither "process" nor "thread"; before
            anything runs.
        UnknownBuildParameterError: a keyword argument that is none of the above (gokart's luigi raises
            ``UnknownParameterException``, which it extends, as ``TypeError``); before anything runs.
        GokartBuildError: listing every failed task with its label and unique id (the class name when
            the id cannot be computed); ``__cause__`` is the first failure. An exception, ``SystemExit``
            included, from a task's ``complete()``, ``output()``, ``requires()`` or ``run()`` ends here.
            MissingInputBuildError (also a ``FileNotFoundError``, as gokart's failed load of the root) when
            the only failures are missing external inputs (``luigi.ExternalTask`` outputs) and ``return_value``
            is True; with ``return_value=False`` such a build returns None, as gokart 1.12.2's. Either way the
            tasks that do not need the missing input were built (luigi's worker does so).
        KeyboardInterrupt: a task's ``run()`` was interrupted; raised after the summary line and the
            hooks, naming the task, with the original interrupt as ``__cause__``.
        DamagedOutputError: a root's output is damaged and repairs are off (see ``load_output``);
            raised after the summary line and the hooks.
        IntegrityError: signing refuses a root's output (never rebuilt); the summary counts it failed. Without
            ``return_value``, a root whose manifest signing refuses is a ``GokartBuildError`` naming it.
    """
    roots: list[LuigiTask] = list(task) if isinstance(task, list | tuple) else [task]
    _check_roots(roots)
    _check_env_params(env_params, roots)
    _check_workers(workers, executor)
    if reset_register:
        _drop_redefined_task_classes()
    if task_dump_config is not None:
        for root in roots:
            _report_graph(root, task_dump_config, log_level)
    # With return_value the roots are loaded inside the build, before its summary line, so a damaged
    # root rebuilt then counts as repaired. Without it nothing is loaded, so damage is not looked for
    # (as gokart): `kart verify` finds it; only a root an unfinished run left is run again (orchestrate).
    result = orchestrate(
        roots,
        workers=workers,
        executor=executor,
        keep_going=keep_going,
        hook_manager=hook_manager,
        progress=progress,
        lock=lock,
        load_roots=return_value,
    )
    if result.failed:
        if not return_value and _only_external_inputs_missing(result):
            # gokart's build: luigi's "missing data" is no failure, and nothing is loaded; its summary names them.
            logger.warning("%s", _build_error(result))
            return None
        raise _build_error(result)
    if not return_value:
        return None
    outputs = result.values if result.values is not None else []
    return outputs if isinstance(task, list | tuple) else outputs[0]


def _build_error(result: BuildResult) -> GokartBuildError:
    """One error for the whole build: each failure with its task's label and unique id; the first is the cause."""
    lines = [f"{len(result.failed)} task(s) failed; {len(result.not_run)} not run because of them:"]
    raised: dict[str, list[Exception]] = {}
    for key, exc in result.failed.items():
        when = " while the graph was walked (complete(), output() or requires() raised)"
        lines.append(f"- {result.describe(key)}{when if key in result.scheduling_failed else ''}: {_one_line(exc)}")
        task = result.nodes.get(key)
        unique_id = unique_id_or_none(task) if task is not None else None
        raised.setdefault(unique_id or key, []).append(exc if isinstance(exc, Exception) else Exception(repr(exc)))
    error_class = MissingInputBuildError if _only_external_inputs_missing(result) else GokartBuildError
    error = error_class("\n".join(lines), raised_exceptions=raised)
    error.__cause__ = next(iter(result.failed.values()))
    return error


def _only_external_inputs_missing(result: BuildResult) -> bool:
    """Every failure is an external task whose output is missing (luigi's "missing data", exit code 20)."""
    return not result.scheduling_failed and all(
        key in result.nodes and is_external(result.nodes[key]) for key in result.failed
    )


def _one_line(exc: BaseException) -> str:
    """``Type: message``, then each note added to ``exc`` (what to fix, the parameter that reached it) indented on a
    line of its own, as Python's traceback shows them."""
    notes = "".join(f"\n    {note}" for note in getattr(exc, "__notes__", ()) if isinstance(note, str))
    return f"{type(exc).__name__}: {exc}{notes}"


def _drop_redefined_task_classes() -> None:
    """Keep only the latest definition of a task class redefined under the same module and name.

    gokart empties luigi's registry instead, which breaks later lookups by name.
    """
    latest: dict[tuple[str, str], type] = {}
    for cls in task_register.Register._reg:
        latest[(cls.__module__, cls.__qualname__)] = cls
    keep = set(map(id, latest.values()))
    task_register.Register._reg = [cls for cls in task_register.Register._reg if id(cls) in keep]
