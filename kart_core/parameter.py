"""gokart's parameter types: tasks as parameters, explicit booleans, serializable objects, zoned datetimes."""

from __future__ import annotations

import datetime
import json
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, Protocol, TypedDict, TypeVar

import luigi
from luigi.parameter import ConfigPath, ParameterVisibility, _no_value

from kart_core.contract import is_kart_task
from kart_core.errors import ParameterTypeError, TaskDefinitionError, TaskParameterTooLargeError
from kart_core.hashing import decode_task_reference, serialize_task_reference
from kart_core.task_family import task_class_of_family
from kart_core.task_memo import memo_of

__all__ = [
    "MAX_TASK_PARAMETER_BYTES",
    "ParameterKwargs",
    "TaskInstanceParameter",
    "ListTaskInstanceParameter",
    "ExplicitBoolParameter",
    "SerializableParameter",
    "ZonedDateSecondParameter",
    "serialize_value",
]

TaskT = TypeVar("TaskT")


class ParameterKwargs(TypedDict, total=False):
    """gokart's type of the keyword arguments luigi's ``Parameter`` takes (for ``**kwargs: Unpack[...]``)."""

    significant: bool
    description: str | None
    config_path: ConfigPath | None
    positional: bool
    always_in_help: bool
    batch_method: Callable[[Iterable[Any]], Any] | None
    visibility: ParameterVisibility


# gokart's recipe serializes a task parameter as the hex of its bz2-compressed parameters, and those
# include the task's own task parameters: each level of a chain of TaskInstanceParameters embeds the
# whole chain below it, so the string grows ~1.9% per level (26 KB at 50 deep, 2.5 MB at 300) and
# serializing costs time in proportion to the sum of the sizes. Up to this size (about 160 levels) a
# chain builds in seconds; beyond it kart stops with TaskParameterTooLargeError instead of running
# for minutes to hours (gokart fails first, from recursion).
MAX_TASK_PARAMETER_BYTES = 256 * 1024


def serialize_value(owner: str, name: str, param: luigi.Parameter, value: Any) -> str:
    """``param.serialize(value)``: the string form the unique id covers (luigi's ``to_str_params``).

    Args:
        owner: the task class's name, for the message.
        name: the parameter's name.

    Raises:
        ParameterTypeError: the value has no string form, e.g. a numpy scalar or a set inside a
            ``ListParameter`` / ``DictParameter`` (JSON cannot write them). A TypeError, as luigi's
            own (gokart raises it from the task's constructor), naming the class, the parameter, the
            value and what to pass instead.
    """
    try:
        return param.serialize(value)
    except TypeError as exc:
        if isinstance(exc, ParameterTypeError):
            raise
        raise ParameterTypeError(
            f"{owner}.{name}: the value {value!r} has no string form for the unique id ({exc}). Pass plain Python "
            "values: ints, floats, strings, lists and dicts of them (numpy: value.tolist() or .item(); a set: a "
            "sorted list)."
        ) from exc


def _accepts(expected: type | None, value: Any) -> bool:
    # No expected type: any kart task (told by the contract, so this module needs no TaskOnKart import).
    # A task class has a task's attributes too, so is_kart_task alone would take it.
    return (is_kart_task(value) and not isinstance(value, type)) if expected is None else isinstance(value, expected)


def _given(value: Any) -> str:
    """How a wrong value is named in a parameter's error: a task class is named as one, with the call it lacks."""
    if isinstance(value, type):
        return f"the class {value.__name__} itself, not a task object: call it, {value.__name__}(...)"
    return f"{type(value).__name__}: {value!r}"


def _type_name(expected: type | None) -> str:
    return "a kart task (TaskOnKart)" if expected is None else expected.__name__


def _task_from_reference(reference: dict[str, Any]) -> Any:
    task_class = task_class_of_family(reference["type"])  # an ambiguous family's error names its classes
    params = dict(reference.get("params", {}))
    kwargs = {name: param.parse(params[name]) for name, param in task_class.get_params() if name in params}
    return task_class(**kwargs)


class TaskInstanceParameter(luigi.Parameter, Generic[TaskT]):
    """A task used as a parameter; it also becomes a dependency through the default ``requires()``."""

    # A str given to the constructor stays a str (and fails the type check by name): see param_plan.reads_given_strings.
    kart_reads_given_strings = False

    def __init__(self, expected_type: type | None = None, default: Any = _no_value, **kwargs: Any) -> None:
        if expected_type is not None and not isinstance(expected_type, type):
            raise TaskDefinitionError(
                f"TaskInstanceParameter(expected_type=...) must be a task class, not {type(expected_type).__name__}"
            )
        # None: any kart task (gokart stores TaskOnKart here).
        self.expected_type: type | None = expected_type
        super().__init__(default=default, **kwargs)

    def parse(self, x: Any) -> Any:
        """Rebuild the task from its serialized form (a JSON string or an already decoded mapping).

        Raises:
            ValueError: (json's JSONDecodeError) ``x`` is not JSON; a note gives the form it takes.
        """
        try:
            reference = decode_task_reference(x) if isinstance(x, str) else dict(x)
        except ValueError as exc:
            exc.add_note(_REFERENCE_FORM)
            raise
        return _task_from_reference(reference)

    def serialize(self, x: Any) -> str:
        """Serialize as gokart does: family plus the hex of the bz2-compressed significant params.

        Computed once per task object (luigi's ``task_id`` and kart's unique id both ask for it).

        Raises:
            TaskParameterTooLargeError: the result is longer than ``MAX_TASK_PARAMETER_BYTES``
                (a deep chain of task parameters); the owning task's ``to_str_params`` adds its name.
        """
        memo = memo_of(x) if is_kart_task(x) else None
        cached = memo.task_reference if memo is not None else None
        if cached is not None:
            return cached
        text = serialize_task_reference(x.get_task_family(), x.to_str_params(only_significant=True))
        if len(text) > MAX_TASK_PARAMETER_BYTES:
            label = x.kart_label() if hasattr(x, "kart_label") else x.get_task_family()
            raise TaskParameterTooLargeError(
                f"its value {label} serializes to {len(text):,} bytes, over kart's limit of "
                f"{MAX_TASK_PARAMETER_BYTES:,} bytes: gokart's id recipe embeds every task parameter below it "
                "(a chain of task parameters grows ~1.9% per level, about 160 levels to the limit). Pass the "
                "upstream through requires() with plain parameters instead, e.g. "
                "`def requires(self): return Link(n=self.n - 1)`."
            )
        if memo is not None:
            memo.task_reference = text
        return text

    def _warn_on_wrong_param_type(self, param_name: str, param_value: Any) -> None:
        if not _accepts(self.expected_type, param_value):
            raise ParameterTypeError(
                f"parameter {param_name!r} expects an instance of {_type_name(self.expected_type)}, "
                f"got {_given(param_value)}. Pass a task object, e.g. {param_name}=SomeTask(...)."
            )


_REFERENCE_FORM = (
    "A task parameter's value is written as JSON naming the task's class and its parameters as strings: "
    '{"type": "MyTask", "params": {"n": "1"}} (a list of them for a ListTaskInstanceParameter).'
)


class ListTaskInstanceParameter(luigi.Parameter, Generic[TaskT]):
    """A list of tasks used as a parameter; each becomes a dependency through the default ``requires()``."""

    kart_reads_given_strings = False  # as TaskInstanceParameter's

    def __init__(self, expected_elements_type: type | None = None, default: Any = _no_value, **kwargs: Any) -> None:
        if expected_elements_type is not None and not isinstance(expected_elements_type, type):
            raise TaskDefinitionError(
                "ListTaskInstanceParameter(expected_elements_type=...) must be a task class, "
                f"not {type(expected_elements_type).__name__}"
            )
        # None: any kart task (gokart stores TaskOnKart here).
        self.expected_elements_type: type | None = expected_elements_type
        super().__init__(default=default, **kwargs)

    def normalize(self, x: Any) -> Any:
        """A list or tuple of tasks as given; any other iterable of them (a generator, ``map``, ``iter``, a dict's
        values) read once, into a tuple.

        The unique id iterates the value to serialize it, and ``requires()`` and ``run()`` iterate it again: a
        generator was empty by then, so the task ran with no upstream under the id of ``tasks=[]``, an entry that
        every other generator-valued task then shared (attacker at24 F7; gokart 1.12.2 raises a TypeError when it
        serializes one). A task, a str or a mapping is left for the type check to name.

        Raises:
            ParameterTypeError: a set or frozenset of tasks: its order, and so the unique id, follows the
                process's hashing (another id in each process, and on an Airflow worker).
        """
        if isinstance(x, list | tuple | str | bytes | Mapping) or is_kart_task(x):
            return x
        if isinstance(x, set | frozenset):
            raise ParameterTypeError(
                f"a ListTaskInstanceParameter got a {type(x).__name__} of {len(x)} tasks, whose order, and so the "
                "unique id, changes from one process to the next: pass a list in the order you want, e.g. "
                "sorted(tasks, key=lambda task: task.make_unique_id())."
            )
        return tuple(x) if isinstance(x, Iterable) else x

    def parse(self, x: Any) -> list[Any]:
        """Rebuild the tasks from a JSON list of serialized tasks.

        Raises:
            ValueError: (json's JSONDecodeError) ``x`` is not JSON; a note gives the form it takes.
        """
        try:
            items = json.loads(x) if isinstance(x, str) else list(x)
        except ValueError as exc:
            exc.add_note(_REFERENCE_FORM)
            raise
        return [TaskInstanceParameter().parse(item) for item in items]

    def serialize(self, x: Any) -> str:
        """A JSON list whose items are each task's TaskInstanceParameter serialization."""
        return json.dumps([TaskInstanceParameter().serialize(task) for task in x])

    def _warn_on_wrong_param_type(self, param_name: str, param_value: Any) -> None:
        # A TypeError as gokart's (which fails iterating the value), with what to do instead.
        if is_kart_task(param_value) or not isinstance(param_value, Iterable) or isinstance(param_value, str):
            given = f"one task, {param_value!r}" if is_kart_task(param_value) else type(param_value).__name__
            raise ParameterTypeError(
                f"parameter {param_name!r} is a ListTaskInstanceParameter and expects a list whose items are each "
                f"{_type_name(self.expected_elements_type)}, but got {given}: pass a list, "
                f"{param_name}=[...]."
            )
        for item in param_value:
            if not _accepts(self.expected_elements_type, item):
                raise ParameterTypeError(
                    f"parameter {param_name!r} expects a list whose items are each {_type_name(self.expected_elements_type)}, "
                    f"but one item is {_given(item)}."
                )


class ExplicitBoolParameter(luigi.BoolParameter):
    """A boolean that takes its value on the command line (``--flag true`` / ``--flag False``).

    As gokart 1.12.2's: a bare ``--flag`` is an argparse error (exit 2), values parse as
    BoolParameter's (``true``/``false``, any case; anything else is a ValueError), and without a
    ``default`` the parameter is required (luigi.BoolParameter would default to False).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # BoolParameter.__init__ is skipped on purpose: it would make False the default.
        luigi.Parameter.__init__(self, *args, **kwargs)

    def _parser_kwargs(self, *args: Any, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]  # as BoolParameter
        # A plain "store" option: argparse then demands a value after --flag.
        return dict(luigi.Parameter._parser_kwargs(*args, **kwargs))


class Serializable(Protocol):
    """What SerializableParameter needs from a value's class."""

    def gokart_serialize(self) -> str:
        """Return the string that identifies the value (leave out what should not change ids)."""
        ...

    @classmethod
    def gokart_deserialize(cls, s: str) -> Any:
        """Rebuild a value from ``gokart_serialize``'s string."""
        ...


S = TypeVar("S")


class SerializableParameter(luigi.Parameter, Generic[S]):
    """Any object whose class implements ``gokart_serialize`` / ``gokart_deserialize``."""

    def __init__(self, object_type: type, *args: Any, **kwargs: Any) -> None:
        self._object_type = object_type
        super().__init__(*args, **kwargs)

    def parse(self, x: str) -> Any:
        """Rebuild the object."""
        return self._object_type.gokart_deserialize(x)  # type: ignore[attr-defined]

    def serialize(self, x: Any) -> str:
        """The object's own string."""
        return str(x.gokart_serialize())


class ZonedDateSecondParameter(luigi.Parameter):
    """A timezone-aware datetime in ISO 8601 (``2024-07-10T19:07:38+09:00``), to the second."""

    def parse(self, x: str) -> datetime.datetime:
        """Parse ISO 8601; a trailing ``Z`` means UTC."""
        if x.endswith("Z"):
            x = x[:-1] + "+00:00"
        value = datetime.datetime.fromisoformat(x)
        if value.tzinfo is None:
            warnings.warn(f"{x!r} has no timezone; use luigi.DateSecondParameter for naive datetimes", stacklevel=2)
        return value

    def serialize(self, x: datetime.datetime) -> str:
        """ISO 8601 with the offset."""
        return x.isoformat()

    def normalize(self, x: Any) -> Any:
        """Drop microseconds, which would make ids depend on clock precision."""
        return x.replace(microsecond=0) if isinstance(x, datetime.datetime) else x
