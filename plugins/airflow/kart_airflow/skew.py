"""What a worker checks before it runs a kart task: can the class be imported, and is it the task the DAG planned.

Pure: no Airflow import. The operator fetches what the dag-processor recorded (the extra of the
task's output Assets, or of the DAG's kart record Asset for tasks whose outputs are not Assets)
and hands it to ``compare_with_parse`` / ``compare_with_record``.

Why Assets: every Airflow worker re-parses the DAG file with its *own* code, so a check between
the operator's stored unique id and the rebuilt task compares the worker with itself. What the
dag-processor parsed reaches a worker only through Airflow's database; the Assets that a task
declares as outlets are registered there by the dag-processor with their ``extra``
(``kart_unique_id``, ``kart_code``), and a worker can read the active ones through the task
execution API.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import kart_core

__all__ = [
    "check_importable",
    "asset_extra",
    "compare_with_parse",
    "record_uri",
    "record_extra",
    "compare_with_record",
    "missing_task_message",
    "WHAT_TO_DO",
]

WHAT_TO_DO = (
    "Deploy the same code (your task package and the DAG file) to the dag-processor and to every worker; "
    "then clear this task (or the whole run) so it runs with the code the DAG was parsed with."
)
_MANGLED_PREFIX = "unusual_prefix_"  # Airflow imports DAG files as modules named unusual_prefix_<sha1>_<file>


def check_importable(task_class: type) -> None:
    """Refuse a task class that a worker cannot import by a stable dotted name.

    A class defined inside a function has ``<locals>`` in its qualified name; a class defined in
    the DAG file lives in a module Airflow named after a hash of the file's path (and kart puts
    that name into the output path, so ``kart_core.build`` would never find those outputs).

    Raises:
        TaskDefinitionError: with where the class is and where to move it.
    """
    module, qualname = task_class.__module__, task_class.__qualname__
    where = f"{task_class.__name__} ({module}.{qualname})"
    if "<locals>" in qualname:
        raise kart_core.errors.TaskDefinitionError(
            f"{where} is defined inside a function, so an Airflow worker cannot import it by name. "
            "Move the class to the top level of a module in your task package (e.g. my_pipeline/tasks.py) "
            "and import it in the DAG file."
        )
    if module.startswith(_MANGLED_PREFIX) or module in ("__main__", "<run_path>"):
        raise kart_core.errors.TaskDefinitionError(
            f"{where} is defined in the DAG file, which Airflow imports under a generated module name: a worker "
            "could not import it by a stable name, and its cache path would carry that name. Move the class into "
            "your task package (e.g. my_pipeline/tasks.py, installed or on PYTHONPATH on every worker) and import "
            "it in the DAG file."
        )
    try:
        found = kart_core.import_object(f"{module}.{qualname}")
    except ImportError as exc:
        raise kart_core.errors.TaskDefinitionError(
            f"{where} cannot be imported by its name ({exc}). Put it in an importable module of your task package."
        ) from exc
    if found is not task_class:
        raise kart_core.errors.TaskDefinitionError(
            f"{where}: importing {module}.{qualname} gives another object. Give the class a unique name at the "
            "top level of its module."
        )


def asset_extra(task: Any, code: str) -> dict[str, str]:
    """What the DAG records on each output Asset at parse time: the task's unique id and code fingerprint."""
    return {"kart_unique_id": task.make_unique_id(), "kart_code": code}


def compare_with_parse(task: Any, code: str, uri: str, recorded: Mapping[str, Any] | None) -> None:
    """Fail when the rebuilt ``task`` (with code fingerprint ``code``) is not what the DAG recorded for ``uri``.

    Args:
        task: the task as this worker rebuilt it.
        code: ``kart_core.code_fingerprint(type(task))`` in this worker (transitive: helpers it calls count).
        uri: one of the task's output Asset URIs.
        recorded: that Asset's extra as the dag-processor registered it, or None when no parsed DAG
            declares an Asset with this URI (so the worker computes another unique id).

    Raises:
        StaleTaskError: naming the task, what differs and what to do.
    """
    label = task.kart_label()
    if recorded is None:
        local = (
            " If the workspace is a local path, check that it is absolute and the same on every machine: a relative "
            "one resolves against each process's current directory."
            if uri.startswith("file:")
            else ""
        )
        raise kart_core.StaleTaskError(
            f"{label}: this worker's code gives the task unique id {task.make_unique_id()} and the output {uri}, "
            "but the DAG as the dag-processor parsed it declares no such output: the task's parameters or code "
            f"differ between this worker and the dag-processor. {WHAT_TO_DO}{local}"
        )
    expected_id, expected_code = recorded.get("kart_unique_id"), recorded.get("kart_code")
    if expected_id is not None and expected_id != task.make_unique_id():
        raise kart_core.StaleTaskError(
            f"{label}: the DAG was parsed with unique id {expected_id} for this output, this worker computes "
            f"{task.make_unique_id()}. {WHAT_TO_DO}"
        )
    if expected_code is not None and expected_code != code:
        raise _code_differs(task, code, expected_code)


RECORD_SCHEME = "x-kart-record"  # Airflow leaves "x-" URI schemes as written (no normalizer)
_ID_CHARS = 16  # unique ids in the record are cut to 16 hex characters (64 bits): it stays small


def record_uri(dag_id: str, group_id: str | None = None) -> str:
    """The URI (and name) of the Asset that records the kart tasks of ``dag_id`` whose outputs are not Assets.

    ``to_dag(assets="final" | "none")`` declares it once, as an inlet of the DAG's first task; a
    ``KartTaskGroup`` has its own (``group_id``).
    """
    return f"{RECORD_SCHEME}://{dag_id}/{group_id or ''}"


def record_extra(tasks_and_codes: Iterable[tuple[Any, str]]) -> dict[str, dict[str, str]]:
    """The record Asset's extra: ``{"kart_tasks": {code fingerprint: "uid16 uid16 ..."}}``.

    Each task is its unique id (first 16 hex) under its class's code fingerprint; tasks of one
    class share the key, so a 2,000-task DAG of a few classes records about 34 KB.
    """
    by_code: dict[str, list[str]] = {}
    for task, code in tasks_and_codes:
        by_code.setdefault(code, []).append(task.make_unique_id()[:_ID_CHARS])
    return {"kart_tasks": {code: " ".join(ids) for code, ids in by_code.items()}}


def compare_with_record(task: Any, code: str, uri: str, recorded: Mapping[str, Any] | None) -> None:
    """Fail when the rebuilt ``task`` (code fingerprint ``code``) is not among the tasks the record ``uri`` lists.

    Args:
        task: the task as this worker rebuilt it.
        code: ``kart_core.code_fingerprint(type(task))`` in this worker.
        uri: the record Asset's URI (``record_uri``).
        recorded: its extra as the dag-processor registered it (``record_extra``), or None when no
            parsed DAG declares it (the dag-processor's DAG file declares all outputs as Assets, or another DAG).

    Raises:
        StaleTaskError: naming the task, what differs and what to do.
    """
    label = task.kart_label()
    if recorded is None:
        raise kart_core.StaleTaskError(
            f"{label}: this worker's DAG file records its kart tasks in the Asset {uri}, but the DAG as the "
            f"dag-processor parsed it declares no such Asset: the DAG file differs between this worker and the "
            f"dag-processor. {WHAT_TO_DO}"
        )
    by_code = recorded.get("kart_tasks") or {}
    unique_id = task.make_unique_id()
    for recorded_code, ids in by_code.items():
        if unique_id[:_ID_CHARS] in ids.split():
            if recorded_code != code:
                raise _code_differs(task, code, recorded_code)
            return
    raise kart_core.StaleTaskError(
        f"{label}: this worker's code gives the task unique id {unique_id}, but the DAG as the dag-processor parsed "
        f"it has no task with that id ({uri}): the task's parameters or code differ between this worker and the "
        f"dag-processor. {WHAT_TO_DO}"
    )


def _code_differs(task: Any, code: str, expected_code: str) -> kart_core.StaleTaskError:
    return kart_core.StaleTaskError(
        f"{task.kart_label()}: the code of {type(task).__module__}.{type(task).__qualname__} on this worker "
        f"(fingerprint {code}) differs from the code the DAG was parsed with (fingerprint {expected_code}): the "
        f"class, one of its base classes or project code it uses (a helper function, a module-level value) changed. "
        f"{WHAT_TO_DO}"
    )


def missing_task_message(dag_id: str, task_id: str) -> str:
    """Why a worker finds no kart task for ``task_id``: its code builds another graph than the dag-processor's."""
    return (
        f"DAG {dag_id!r}: Airflow asked this worker to run task {task_id!r}, but the kart graph this worker's code "
        "builds from the DAG file has no task at that place: the task classes or the DAG file differ between this "
        f"worker and the dag-processor. {WHAT_TO_DO}"
    )
