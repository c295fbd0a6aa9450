"""What a worker checks before it runs a kart task: can the class be imported, is it the task the DAG
planned, and did its upstream tasks in this run produce the inputs it requires now.

Pure: no Airflow import. The operator fetches what the dag-processor recorded (the extra of the
DAG's kart record Asset) and what the upstream tasks pushed to XCom in this run, and hands them
to ``compare_with_record`` / ``compare_with_upstream``.

Why an Asset: every Airflow worker re-parses the DAG file with its *own* code, so a check between
the operator's stored unique id and the rebuilt task compares the worker with itself. What the
dag-processor parsed reaches a worker only through Airflow's database: the DAG's record Asset
(``x-kart-record://<dag_id>/``, one per DAG since dag ids are unique) is registered there by the
dag-processor with its ``extra`` (each task id's unique id and code fingerprint), and a worker can
read it through the task execution API. Output Assets are not used for the check: Airflow finds
an Asset by URI across all DAGs, so another DAG declaring the same output would vouch for it.

Why XCom: the record holds what the dag-processor parsed *last*. When the DAG file changes during
a run, the record follows the new file, and a task of the run may then be rebuilt, consistently
with the record, from other parameters than the upstream tasks of the same run were. Each kart
task pushes its unique id to XCom, so a task compares what its upstream tasks ran in this run
with the tasks it requires now.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import kart_core

__all__ = [
    "check_importable",
    "asset_extra",
    "record_uri",
    "record_extra",
    "recorded_settings",
    "task_key",
    "compare_with_record",
    "compare_with_upstream",
    "upstream_task_ids",
    "missing_task_message",
    "WHAT_TO_DO",
]

WHAT_TO_DO = (
    "Deploy the same code (your task package and the DAG file) to the dag-processor and to every worker; "
    "then clear this task (or the whole run) so it runs with the code the DAG was parsed with. If the same code "
    "is everywhere already (a helper module changed, the DAG file did not), the dag-processor has not parsed the "
    "DAG file since: run `airflow dags reserialize` (or wait for its next parse, min_file_process_interval), "
    "then clear the task."
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


def asset_extra(task: Any, code: str) -> dict[str, Any]:
    """What the DAG writes on each output Asset at parse time: the task's unique id and code fingerprint.

    For people and lineage tools only: the worker's skew check reads the DAG's record Asset
    (``compare_with_record``), never an output Asset, because an Asset is found by URI across every
    DAG, so another DAG that declares the same output would vouch for this DAG's task.
    """
    return {"kart_unique_id": task.make_unique_id(), "kart_code": code}


RECORD_SCHEME = "x-kart-record"  # Airflow leaves "x-" URI schemes as written (no normalizer)
_ID_CHARS = 16  # unique ids in the record are cut to 16 hex characters (64 bits): it stays small
_KEY_CHARS = 10  # task ids in the record are 10 hex characters of their SHA-1 (task_key)


def record_uri(dag_id: str, group_id: str | None = None) -> str:
    """The URI (and name) of the Asset that records what each kart task of ``dag_id`` must be.

    ``to_dag`` declares it once, as an inlet of the DAG's first task, so that the dag-processor
    registers it with its extra; a ``KartTaskGroup`` has its own (``group_id``). dag ids are unique
    in an Airflow installation, so a worker that reads this URI reads its own DAG's record.
    """
    return f"{RECORD_SCHEME}://{dag_id}/{group_id or ''}"


def task_key(task_id: str) -> str:
    """The key of an Airflow task id in the record: the first 10 hex characters of its SHA-1.

    Task ids name places and can be long (up to 250 characters); 40 bits keep the record small and
    make a collision among a DAG's tasks negligible (about 2e-6 for 2,000 tasks).
    """
    return hashlib.sha1(task_id.encode()).hexdigest()[:_KEY_CHARS]


def record_extra(
    entries: Iterable[tuple[str, Any, str]], met: Callable[[str], Any | None] | None = None
) -> dict[str, Any]:
    """The record Asset's extra: ``{"kart_tasks": {code fingerprint: "key=uid16 key=uid16 ..."}}``.

    Args:
        entries: ``(airflow task id, kart task, code fingerprint of its class)`` for every kart
            task of the DAG (or group).
        met: the task object a worker's one-task parse meets at an Airflow task id (``to_dag`` follows
            the place from the roots, ``kart_core.find_path``, as the worker does), or None where it
            meets none. Default: a copy of the task's class from its significant parameters only.

    Each task is recorded as ``task_key(task id)=`` its unique id (first 16 hex) under its class's
    code fingerprint (tasks of one class share the key): about 28 bytes per task. A task placed with
    ``rerun=True`` whose worker meets another copy (a task reached by two paths) is also recorded
    under ``kart_rerun``: the settings (insignificant parameters, as strings) in which the two copies
    differ, ``rerun`` among them. Only those: the others, e.g. a ``workspace_directory`` or
    ``redis_host`` this process read from its luigi config, are the worker's own, from its config.
    """
    by_code: dict[str, list[str]] = {}
    reruns: dict[str, dict[str, str]] = {}
    for task_id, task, code in entries:
        by_code.setdefault(code, []).append(f"{task_key(task_id)}={task.make_unique_id()[:_ID_CHARS]}")
        if getattr(task, "rerun", False):
            other = met(task_id) if met is not None else _plain_copy(task)
            differ = _differing_settings(task, other) if other is not None and other is not task else {}
            if differ:
                reruns[task_key(task_id)] = differ
    extra: dict[str, Any] = {"kart_tasks": {code: " ".join(ids) for code, ids in by_code.items()}}
    if reruns:
        extra["kart_rerun"] = reruns
    return extra


def _plain_copy(task: Any) -> Any:
    """``task``'s class made from its significant parameters only (its other ones from defaults and config)."""
    return type(task).from_str_params(task.to_str_params(only_significant=True))


def _differing_settings(task: Any, other: Any) -> dict[str, str]:
    """The insignificant parameters of ``task`` as strings (what the operator passes as ``kart_settings``)
    whose value differs in ``other``."""
    significant = task.to_str_params(only_significant=True)
    theirs = other.to_str_params()
    return {
        key: value for key, value in task.to_str_params().items() if key not in significant and theirs.get(key) != value
    }


def recorded_settings(task_id: str, recorded: object) -> dict[str, str]:
    """The settings (insignificant parameters as strings) the parse recorded for Airflow task ``task_id``
    when the task it placed there has ``rerun=True`` (``record_extra``: ``kart_rerun``), else ``{}``.

    A task reached by two paths is one Airflow task at the first path's place; the parse keeps the copy
    with ``rerun=True`` (``kart_core.place_graph``), but a worker's one-task parse follows the first path
    and finds the other copy. These settings (where the two copies differ, ``record_extra``) make it run
    the copy the DAG was parsed with; its other settings stay its own (its luigi config's).

    Args:
        task_id: the Airflow task id (with its task group prefix, if any).
        recorded: the record Asset's extra (``recorded_asset_extra``); anything else (no record, not
            available outside a task run) gives ``{}``.
    """
    reruns = recorded.get("kart_rerun") if isinstance(recorded, Mapping) else None
    found = reruns.get(task_key(task_id)) if isinstance(reruns, Mapping) else None
    return {str(key): str(value) for key, value in found.items()} if isinstance(found, Mapping) else {}


def compare_with_record(task: Any, task_id: str, code: str, uri: str, recorded: Mapping[str, Any] | None) -> None:
    """Fail unless the record ``uri`` lists Airflow task ``task_id`` with ``task``'s unique id and code fingerprint.

    The expectation is looked up for this task id in this DAG's record (what the dag-processor
    parsed for this very task), never by the task's output URI or unique id alone: another task,
    or another DAG, that has this unique id does not vouch for it.

    Args:
        task: the task as this worker rebuilt it.
        task_id: the Airflow task id it runs as (with its task group prefix, if any).
        code: ``kart_core.code_fingerprint(type(task))`` in this worker.
        uri: the record Asset's URI (``record_uri``).
        recorded: its extra as the dag-processor registered it (``record_extra``), or None when no
            parsed DAG declares it (the dag-processor parsed another DAG file).

    Raises:
        StaleTaskError: naming the task, the task id, both unique ids or fingerprints, and what to do.
    """
    label = task.kart_label()
    if recorded is None:
        raise kart_core.StaleTaskError(
            f"{label}: this worker's DAG file records its kart tasks in the Asset {uri}, but the DAG as the "
            f"dag-processor parsed it declares no such Asset: the DAG file differs between this worker and the "
            f"dag-processor. {WHAT_TO_DO}"
        )
    key, unique_id = task_key(task_id), task.make_unique_id()
    for recorded_code, entries in (recorded.get("kart_tasks") or {}).items():
        for entry in entries.split():
            entry_key, _, expected_id = entry.partition("=")
            if entry_key != key:
                continue
            if not unique_id.startswith(expected_id):
                if recorded_code == code:
                    # Same class code on both sides: a value the DAG file computes when parsed changed between the
                    # two parses (attacker at26 G4: days from the clock, around midnight), not the deployed code.
                    raise kart_core.StaleTaskError(
                        f"{label}: the dag-processor parsed task {task_id!r} with unique id {expected_id}… ({uri}); "
                        f"this worker computes {unique_id} with the same code of {type(task).__name__} (fingerprint "
                        f"{code[:12]}), so a parameter value computed when the DAG file is parsed changed between "
                        "its parse by the dag-processor and this worker's (a date from the clock, a folder listing, "
                        "an environment variable that differs between machines). Make the DAG file compute the same "
                        "values at every parse (see docs/airflow.md, 'Dates and partitions'); run `airflow dags "
                        "reserialize` (or wait for the next parse), then clear this task."
                    )
                raise kart_core.StaleTaskError(
                    f"{label}: the dag-processor parsed task {task_id!r} with unique id {expected_id}… ({uri}); this "
                    f"worker's code computes {unique_id}: the task's parameters or code differ between this worker "
                    f"and the dag-processor. {WHAT_TO_DO}"
                )
            if recorded_code != code:
                raise _code_differs(task, code, recorded_code)
            return
    raise kart_core.StaleTaskError(
        f"{label}: this worker's code gives task {task_id!r} the unique id {unique_id}, but the DAG as the "
        f"dag-processor parsed it has no task {task_id!r} ({uri}): the DAG file or task code differ between this "
        f"worker and the dag-processor. {WHAT_TO_DO}"
    )


def upstream_task_ids(
    dependencies: Iterable[Any], recorded: Mapping[str, Any], task_ids: Iterable[str]
) -> dict[str, str]:
    """The Airflow task id of each dependency among ``task_ids``, by ``kart_core.node_key``, found through the record.

    A worker's one-task parse knows its upstream task ids only as guesses (the place through
    this task); when one is wrong, the upstream is reached from the roots by a shorter path.
    The record (``record_extra``, what the dag-processor parsed) holds every task id's key with
    its unique id, so a dependency's unique id gives its task id's key, and the task id is the
    one of ``task_ids`` (e.g. the run's finished tasks) with that key: no graph walk, a pass over
    the record and one SHA-1 per task id.

    Args:
        dependencies: the tasks the task requires, as this worker builds them.
        recorded: the record Asset's extra as the dag-processor registered it.
        task_ids: Airflow task ids to look among (with their task group prefix).

    Returns:
        The task id of each dependency found; a dependency missing from the record (its unique
        id differs from what the dag-processor parsed) or from ``task_ids`` is left out.
    """
    keys_by_id: dict[str, str] = {}
    for entries in (recorded.get("kart_tasks") or {}).values():
        for entry in entries.split():
            key, _, unique_id = entry.partition("=")
            keys_by_id[unique_id] = key
    wanted: dict[str, str] = {}
    for dependency in dependencies:
        key = keys_by_id.get(dependency.make_unique_id()[:_ID_CHARS])
        if key is not None:
            wanted[key] = kart_core.node_key(dependency)
    found: dict[str, str] = {}
    for task_id in task_ids:
        node = wanted.get(task_key(task_id))
        if node is not None:
            found[node] = task_id
    return found


def compare_with_upstream(
    task: Any, dependency: Any, upstream_task_id: str, pushed: Mapping[str, Any] | None, run_id: str
) -> None:
    """Fail when the upstream task of this run pushed another unique id than the ``dependency`` the task requires now.

    Args:
        task: the task as this worker rebuilt it.
        dependency: one task that ``task`` requires, as this worker builds it.
        upstream_task_id: the Airflow task id that ran ``dependency``'s place in this run.
        pushed: that task's XCom value in this run (``{"status", "path", "unique_id"}``); None
            when it pushed none (it did not succeed, e.g. under a custom trigger rule): nothing to compare.
        run_id: the DAG run, for the message.

    Raises:
        StaleTaskError: naming the task, the upstream task, both unique ids and what to do.
    """
    if not isinstance(pushed, Mapping) or "unique_id" not in pushed:
        return
    ran, wanted = str(pushed["unique_id"]), dependency.make_unique_id()
    if ran == wanted:
        return
    raise kart_core.StaleTaskError(
        f"{task.kart_label()}: it requires {dependency.kart_label()} (unique id {wanted}), but in this run "
        f"({run_id}) the upstream task {upstream_task_id!r} ran {type(dependency).__name__}[{kart_core.short_id(ran)}] "
        f"(unique id {ran}): the DAG file or the task code changed during the run, so this task would use "
        "(or find cached) an output that was not computed from this run's upstream outputs. Clear the whole run "
        "(every task then runs with the current code); if the dag-processor and the workers differ, deploy the "
        "same code everywhere first."
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
