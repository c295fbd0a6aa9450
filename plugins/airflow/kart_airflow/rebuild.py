"""The kart task an Airflow worker runs, and the checks that it is the task the DAG described.

A worker runs the task object its own parse of the DAG file made (``task_for_worker``), with the
Python values the DAG file wrote: the same task ``kart_core.build`` runs for that line. Rebuilding
it from its string parameters (``from_str_params``, what versions before 2026-12-01 did) hands ``run()``
``parse(serialize(value))`` under the same unique id: an int given to an untyped
``luigi.Parameter()`` ran as ``'5'``, and Airflow cached another output than ``build()`` under
that id. ``refuse_lossy_parameters`` refuses such values when the DAG is parsed, since every other
way of making the task from strings (luigi's command line, a Kedro catalog entry) would still
disagree with ``build()``.

Pure: no Airflow import, so it is tested (and usable) without a scheduler.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import kart_core

__all__ = ["resolve_class", "task_for_worker", "current_code", "refuse_lossy_parameters"]


def resolve_class(import_path: str) -> type:
    """Import ``package.module.Class`` (a nested class too: ``package.module.Outer.Inner``)."""
    try:
        obj = kart_core.import_object(import_path)
    except ImportError:
        obj = None
    if isinstance(obj, type):
        return obj
    raise kart_core.StaleTaskError(
        f"Cannot import the kart task class {import_path!r}: the module or class was renamed or removed since "
        "the DAG was parsed, or the package is not installed where this Airflow task runs."
    )


def task_for_worker(parsed: Any, settings: Mapping[str, str], expected_unique_id: str) -> Any:
    """The task a worker runs: ``parsed`` (its own parse of the DAG file), with ``settings`` applied.

    The values are the DAG file's own Python values, never re-parsed from strings, so ``run()``
    sees what ``kart_core.build`` of the same task sees. Whether ``parsed`` is the task the
    dag-processor planned is checked by the caller (``skew.compare_with_record``: unique id and
    code fingerprint for this task id).

    Args:
        parsed: the kart task the operator was made for in this process.
        settings: insignificant parameters as strings that the DAG's record gives this task id
            (``skew.recorded_settings``: the ``rerun=True`` copy of a task reached by two paths);
            each is parsed by its parameter. Empty: ``parsed`` itself is returned.
        expected_unique_id: the unique id the task had when the operator was made.

    Raises:
        StaleTaskError: the task with the settings applied has another unique id.
    """
    params = dict(parsed.get_params())
    changed = {
        name: params[name].parse(text)
        for name, text in settings.items()
        if name in params and params[name].serialize(parsed.param_kwargs[name]) != text
    }
    task = type(parsed)(**{**parsed.param_kwargs, **changed}) if changed else parsed
    unique_id = task.make_unique_id()
    if unique_id != expected_unique_id:
        raise kart_core.StaleTaskError(
            f"{type(parsed).__name__}[{kart_core.short_id(expected_unique_id)}]: with the settings the DAG "
            f"recorded for it ({kart_core.params_text(settings)}) the task is {kart_core.task_text(task)} with unique "
            f"id {unique_id} instead of {expected_unique_id}. Let Airflow re-parse the DAG file and trigger a new run."
        )
    return task


def current_code(task: Any, import_path: str, parsed_code: str) -> str:
    """The code fingerprint of ``task``'s class as this process imports it now, to compare with the DAG's record.

    ``parsed_code`` (computed when this process parsed the DAG file), unless the module was imported
    again since (``importlib.reload``, an operator made earlier in a long-lived process): the class
    at ``import_path`` is then another object whose code, and the helpers ``task``'s methods look up
    in that module, may differ; its fingerprint decides.

    Raises:
        StaleTaskError: ``import_path`` no longer names a class.
    """
    now = resolve_class(import_path)
    return parsed_code if now is type(task) else kart_core.code_fingerprint(now)


def refuse_lossy_parameters(tasks: Iterable[Any]) -> None:
    """Refuse a significant parameter value that its own string form gives back changed (``kart_core.lossy_parameters``).

    The unique id covers ``serialize(value)`` only: a task made from strings (luigi's command line,
    ``[Class]`` config, a Kedro catalog entry, ``TaskOnKart.restore``) runs with ``parse(serialize(value))``
    under the same id, and writes another output than ``build()`` of the DAG file's task: whichever
    builds first decides what every scheduler then loads. gokart and luigi only warn.

    Raises:
        TaskDefinitionError: naming the task, the parameter, both values and the parameter type to declare.
    """
    for task in tasks:
        lossy = kart_core.lossy_parameters(task)
        if lossy:
            raise kart_core.errors.TaskDefinitionError(_lossy_message(task, lossy[0]))


def _lossy_message(task: Any, found: kart_core.LossyParameter) -> str:
    declared = f"{found.declared.__module__.replace('luigi.parameter', 'luigi')}.{found.declared.__name__}"
    back = (
        f"cannot be parsed back ({type(found.parsed).__name__}: {found.parsed})"
        if isinstance(found.parsed, Exception)
        else f"parses back as {found.parsed!r} ({type(found.parsed).__name__})"
    )
    fix = (
        f"Declare {found.name} = {found.suggestion}(...) in {type(task).__name__} (the unique id stays the same when "
        f"that type writes the same string, {found.serialized!r}), or pass the value as the parameter parses it."
        if found.suggestion is not None
        else "Pass a value that the parameter gives back unchanged, or declare a parameter type whose parse() does."
    )
    return (
        f"{task.kart_label()}: parameter {found.name}={found.value!r} ({type(found.value).__name__}) is a {declared}, "
        f"whose string form {found.serialized!r} {back}. The unique id covers only that string, so this task and "
        f"one made from strings (luigi's command line, a [{type(task).__name__}] config section, a Kedro catalog entry) "
        f"would share one cache entry with different outputs. {fix} See docs/airflow.md, 'Parameter values'."
    )
