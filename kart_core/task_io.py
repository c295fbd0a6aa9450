"""What a task loads and dumps: resolving ``load(...)`` / ``dump(..., target)`` arguments to targets.

``TaskOnKart.load``, ``load_generator``, ``load_data_frame`` and ``dump`` delegate here, with
gokart 1.12.2's argument forms: None (all inputs / the one output), a ``requires()`` or
``output()`` key, a target, an upstream task, or a list of those.

Called from a thread that the task's ``run()`` started (which does not inherit the run's context),
each joins the run in progress (``kart_core.transaction.joined``): a dump is staged in it, a load is
recorded as its input and finds the run's staged outputs.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from typing import Any

import luigi

from kart_core import commit_marker, transaction
from kart_core.contract import KartTask, is_kart_task
from kart_core.errors import (
    DataFrameInputError,
    EmptyDumpError,
    InputKeyError,
    MissingColumnsError,
    OutputKeyError,
    RequiresError,
    TaskDefinitionError,
    UnrequiredTaskError,
)
from kart_core.pandas_type_config import check_pandas_types
from kart_core.structure import flatten, map_flattenable_items, map_structure
from kart_core.target import TargetOnKart
from kart_core.task_memo import memo_of

__all__ = [
    "dump",
    "input_targets",
    "inputs_of",
    "load",
    "load_data_frame",
    "load_generator",
    "map_structure",
    "output_target",
]


def inputs_of(task: KartTask) -> Any:
    """luigi's ``input()``: the outputs of ``requires()`` in its shape; a kart task's outputs are computed once.

    Follows luigi.task.getpaths: dicts, lists and tuples keep their type, other iterables become lists. Asked in the
    task's own run, each kart target is a view naming that run as its reader (``transaction.Transaction.input_view``):
    a load of it in a thread ``run()`` starts, or in a process it is sent to, counts for that run.

    Raises:
        RequiresError: (a TaskDefinitionError and ValueError) requires() holds something that is neither a task
            nor a container of tasks.
    """

    # In the task's own run, each target names the run as its reader (a load in a thread run() starts counts for it).
    running = transaction.current()
    view = running.input_view if running is not None and running.task is task else None

    def outputs(item: Any) -> Any:
        if is_kart_task(item):
            found = item.kart_outputs()
            return found if view is None else map_flattenable_items(view, found)
        if isinstance(item, luigi.Task):
            return item.output()
        if isinstance(item, dict):
            return type(item)((key, outputs(value)) for key, value in item.items())
        if isinstance(item, list | tuple):
            return type(item)(outputs(value) for value in item)
        if isinstance(item, Iterable):
            return [outputs(value) for value in item]
        raise RequiresError(
            f"{task.kart_label()}.requires() holds {type(item).__name__} {item!r}; return tasks (or a list/dict of tasks)."
        )

    return outputs(task.requires())


def load(task: KartTask, target: Any = None) -> Any:
    """Load inputs: all (None), one by requires() key (str), a target, a task, or a list of tasks.

    Raises:
        UnrequiredTaskError: (an AssertionError, as gokart's) the task is not among ``requires()``, or a
            key was given for a requires() that is not a dict; InputKeyError (also a KeyError): no such key.
        LoadError: an input cannot be read (MissingOutputError, a FileNotFoundError: it does not exist).
        ConcurrentCommitError: (a LoadError) another process's commit replaced an upstream's outputs
            while they were read, in two attempts (``kart_core.commit_marker``).
    """
    targets = input_targets(task, target)
    with transaction.joined(memo_of(task).run):
        return commit_marker.read_consistently(
            lambda: map_structure(lambda t: t.load(), targets), f"the inputs of {task.kart_label()}"
        )


def load_generator(task: KartTask, target: Any = None) -> Generator[Any, None, None]:
    """Like ``load``, yielding the loaded inputs one at a time (gokart 1.12.2: one per flattened target).

    Each load is checked and made again as ``load``'s are (``commit_marker.read_consistently``), so a
    rerun of an upstream committed while the caller works on an earlier item does not fail the run
    (gokart yields what it reads, too). Nothing stays set in the caller's context between items.

    Raises:
        ConcurrentCommitError: (a LoadError) commits kept replacing an input while it was read; or one
            task's outputs would be yielded from two commits (another process replaced them between two
            items: the earlier one cannot be loaded again).
        Exception: what ``load`` raises.
    """
    what = f"the inputs of {task.kart_label()}"
    earlier: dict[str, str] = {}  # manifest -> commit of what was yielded
    for item in flatten(input_targets(task, target)):
        with transaction.joined(memo_of(task).run):  # per item: the caller's context changes between yields
            loaded = commit_marker.read_consistently(item.load, what, earlier)
        yield loaded


def load_data_frame(
    task: KartTask, target: Any = None, required_columns: set[str] | None = None, drop_columns: bool = False
) -> Any:
    """A DataFrame (a list of them concatenated), checked to have ``required_columns``.

    The loaded inputs take gokart's last ``load_data_frame`` shapes (gokart 1.12.2 no longer has one): a
    DataFrame; a dict of one entry (one TaskInstanceParameter, ``requires() -> {"a": task}``) stands for its
    value; a list or tuple (nested ones too) of DataFrames is concatenated in order with ``pd.concat``
    (indexes kept). Each DataFrame is a leaf, never walked into.

    An input with no rows that lacks some of ``required_columns`` (e.g. an upstream that dumped
    ``pd.DataFrame()``) loads as an empty frame with exactly those columns, sorted by name: the
    behaviour gokart settled on in its PR #137, before 1.x dropped ``load_data_frame``.

    With ``drop_columns`` the frame keeps only ``required_columns``: in the frame's own column order when
    they are a set (the same in every process, whatever PYTHONHASHSEED), in their order when a list or tuple.

    Raises:
        MissingColumnsError: (a ValueError and AssertionError) a required column is missing; names the task and
            the columns.
        DataFrameInputError: (a TypeError, ValueError and AttributeError) the inputs are not of those shapes: a
            dict of several inputs (name one), an empty list, something other than a DataFrame.
    """
    import pandas as pd  # here: importing kart_core must not import pandas

    frame = _one_data_frame(task, target, load(task, target))
    missing = set(required_columns or ()) - set(frame.columns)
    if missing and len(frame.index) == 0:
        return pd.DataFrame(columns=sorted(required_columns or ()))
    if missing:
        raise MissingColumnsError(
            f"{task.kart_label()}: the loaded DataFrame lacks columns {sorted(missing)} (it has "
            f"{sorted(map(str, frame.columns))}). Check the upstream task's output or required_columns."
        )
    if drop_columns and required_columns:
        # A set's iteration order follows PYTHONHASHSEED, so list(required_columns) would give each process
        # its own column order, and the bytes a downstream task dumps (and its lineage) would differ per run.
        if isinstance(required_columns, (set, frozenset)):
            frame = frame.loc[:, frame.columns.isin(list(required_columns))]  # each column once, duplicates kept
        else:
            frame = frame[list(required_columns)]
    return frame


def _one_data_frame(task: KartTask, target: Any, data: Any) -> Any:
    """The DataFrame ``load_data_frame`` works on, from what ``load(target)`` returned (see there)."""
    import pandas as pd

    called = f"{task.kart_label()}.load_data_frame({'' if target is None else repr(target)})"
    if isinstance(data, dict) and len(data) == 1:
        data = next(iter(data.values()))
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, dict):
        raise DataFrameInputError(
            f"{called} loaded a dict of {len(data)} inputs (keys {sorted(map(str, data))}), not one DataFrame "
            "or a list of them. Name the input: load_data_frame('key'), or concatenate the frames yourself."
        )
    if not isinstance(data, list):
        raise DataFrameInputError(
            f"{called} loaded an object of type {_type_name(data)}, not a pandas DataFrame or a list of them. Check "
            "what the upstream task dumps, or use load() for other objects."
        )
    frames = _listed_frames(called, data)
    if not frames:
        raise DataFrameInputError(f"{called} has no input to load: requires() holds no task (an empty list).")
    return pd.concat(frames)


def _listed_frames(called: str, items: list[Any], place: str = "") -> list[Any]:
    """The DataFrames of ``items`` and of the lists in it, in order; anything else raises DataFrameInputError."""
    import pandas as pd

    frames: list[Any] = []
    for number, item in enumerate(items):
        where = f"{place}[{number}]"
        if isinstance(item, pd.DataFrame):
            frames.append(item)
        elif isinstance(item, list):
            frames.extend(_listed_frames(called, item, where))
        else:
            raise DataFrameInputError(
                f"{called} loaded a list whose item {where} is of type {_type_name(item)}, not a pandas DataFrame: "
                "only those (or lists of them) are concatenated. Load it with load(), or name the DataFrame inputs."
            )
    return frames


def _type_name(value: Any) -> str:
    """``value``'s class as a message names it: ``int``, ``polars.dataframe.frame.DataFrame``."""
    kind = type(value)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def dump(
    task: KartTask,
    obj: Any,
    target: Any = None,
    custom_labels: dict[Any, Any] | None = None,
    fail_on_empty_dump: bool = False,
) -> None:
    """Write ``obj`` to the task's output (or the output named ``target``), atomically.

    Raises:
        PandasTypeError: a column's type differs from the task namespace's PandasTypeConfig.
        EmptyDumpError: (an AssertionError) ``obj`` is an empty DataFrame and ``fail_on_empty_dump`` is set.
        OutputKeyError: (a KeyError and AssertionError) ``target`` names no output.
        DumpError: writing failed.
        RunWriteError: (a TaskDefinitionError) called from a child process of the one running the task,
            or from a thread after the task's ``run()`` returned (``kart_core.transaction.join``).
    """
    check_pandas_types(obj, getattr(task, "task_namespace", None))
    if fail_on_empty_dump and _is_empty_frame(obj):
        raise EmptyDumpError(
            f"{task.kart_label()} dumped an empty DataFrame while fail_on_empty_dump is set. "
            "Check the task's inputs, or set fail_on_empty_dump=False if empty is fine."
        )
    chosen = output_target(task, target)
    with transaction.joined(memo_of(task).run, writing=True, what=_dumped(target), label=task.kart_label()):
        chosen.dump(obj, custom_labels=custom_labels)


def input_targets(task: KartTask, target: Any) -> Any:
    """The targets ``load(target)`` reads, in the argument's shape (see ``load``)."""
    if target is None:
        return inputs_of(task)
    if isinstance(target, str):
        inputs = inputs_of(task)
        if not isinstance(inputs, dict):
            raise UnrequiredTaskError(
                f"{task.kart_label()}.load({target!r}): requires() returns a {type(inputs).__name__}, not a dict; "
                "load() without a key, or return a dict from requires()."
            )
        if target not in inputs:
            # A KeyError as well, as gokart's dict lookup raises.
            raise InputKeyError(
                f"{task.kart_label()}.load({target!r}): requires() has no key {target!r}. Keys: {sorted(inputs)}."
            )
        return inputs[target]
    if is_kart_task(target):
        required = {t.make_unique_id() for t in task.kart_requires() if is_kart_task(t)}
        if target.make_unique_id() not in required:
            raise UnrequiredTaskError(
                f"{task.kart_label()} loads {target.kart_label()}, which is not in its requires(). "
                "Add it to requires() (or pass it as a TaskInstanceParameter)."
            )
        return target.kart_outputs()
    if isinstance(target, TargetOnKart):
        return target
    if isinstance(target, Iterable):
        return [input_targets(task, t) for t in target]
    return target


def output_target(task: KartTask, target: Any) -> TargetOnKart:
    """The target ``dump(obj, target)`` writes: the only output (None), the output named ``target``, or ``target``.

    Raises:
        OutputKeyError: (a TaskDefinitionError, KeyError and AssertionError) output() is not one target and
            no key was given, or has no such key.
        TaskDefinitionError: output()[key] is not a target.
    """
    if isinstance(target, TargetOnKart):
        return target
    output = task.kart_outputs()
    if isinstance(output, (list, tuple)):
        # A sequence has no keys: its targets are handed to dump themselves, as in gokart (attacker at25 F2).
        given = "" if target is None else f", {target!r}"
        raise OutputKeyError(
            f"{task.kart_label()}.dump(obj{given}): output() is a {type(output).__name__} of {len(output)} targets, "
            "which has no keys; pass the target itself: dump(obj, self.output()[0]), or return a dict from output() "
            "and name its key: dump(obj, 'key')."
        )
    if target is None:
        if not isinstance(output, TargetOnKart):
            raise OutputKeyError(
                f"{task.kart_label()}.dump(obj): output() is a {type(output).__name__}; name one of its keys: dump(obj, 'key')."
            )
        return output
    if not isinstance(output, dict) or target not in output:
        keys = sorted(output) if isinstance(output, dict) else []
        raise OutputKeyError(
            f"{task.kart_label()}.dump(obj, {target!r}): output() has no key {target!r}. Keys: {keys}."
        )
    found = output[target]
    if not isinstance(found, TargetOnKart):
        raise TaskDefinitionError(f"{task.kart_label()}.dump(obj, {target!r}): output()[{target!r}] is not a target.")
    return found


def _dumped(target: Any) -> str:
    """How a refused dump's message names what was dumped (``kart_core.transaction.join``)."""
    if target is None:
        return "its output (self.dump)"
    if isinstance(target, str):
        return f"its output {target!r} (self.dump)"
    return f"its output {getattr(target, '_path', target)!r} (self.dump)"


def _is_empty_frame(obj: Any) -> bool:
    empty = getattr(obj, "empty", None)
    return isinstance(empty, bool) and empty and hasattr(obj, "columns")
