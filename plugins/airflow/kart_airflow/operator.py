"""KartTaskOperator: one Airflow task that runs one kart task through ``kart_core.run_one``."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from airflow.sdk import Asset, BaseOperator
from airflow.sdk.exceptions import AirflowFailException

import kart_core
from kart_airflow.naming import display_name_for, import_path_of
from kart_airflow.outputs import DEFAULT_ASSET_NAMESPACE, asset_uris, output_paths, output_uris, xcom_path
from kart_airflow.rebuild import current_code, task_for_worker
from kart_airflow.skew import (
    asset_extra,
    compare_with_record,
    compare_with_upstream,
    recorded_settings,
    upstream_task_ids,
)

__all__ = ["KartTaskOperator", "MissingKartTaskOperator", "recorded_asset_extra"]


class KartTaskOperator(BaseOperator):
    """Runs the kart task the DAG file's parse made for it, once checked to be the planned task.

    Made by ``from_task`` (``to_dag`` and ``KartTaskGroup`` call it). Before running, the worker
    compares the task it runs with what the dag-processor recorded for this task id (the DAG's
    kart record Asset), and the unique ids its upstream tasks pushed to XCom in this run with the
    tasks it requires now (``kart_airflow.skew``); it fails at once, without retries, on a
    difference (``kart_core.StaleTaskError``). A task whose outputs exist ends as success and logs
    ``cached: <path>``, unless a load of an output would find it damaged: then it is rebuilt first
    (``kart_core.repair_if_damaged``: a load's checks without the format), so XCom's path and the asset event never
    name a damaged file; an output signing refuses fails the task (``IntegrityError``), not rebuilt. XCom gets
    ``{"status": "cached" | "ran", "path": ..., "unique_id": ..., "repaired": [...]}`` (the node keys of damaged
    upstreams its run rebuilt, ``kart_core.run_one_reporting``, and its own when it was rebuilt so).
    An exception from ``run()`` is re-raised with a note (and an error log line) naming the kart
    task, its unique id and the Airflow task. Nothing here is Jinja-rendered (``to_dag`` refuses
    parameters holding templates).
    """

    template_fields = ()
    # No ui_color of its own: Airflow serializes a colour only when it differs from BaseOperator's,
    # and that is 23 bytes per task of every DAG's stored JSON (issue 14's size goal).
    # No __init__ of its own: Airflow wraps every operator class's __init__ in apply_defaults, so an
    # own __init__ would merge default_args twice per task at parse time (from_task sets ``kart``).
    kart: _KartSpec

    @classmethod
    def from_task(
        cls,
        task: Any,
        *,
        task_id: str,
        code: str | None = None,
        upstream: Sequence[Any] = (),
        uris: Mapping[Any, Sequence[str]] | None = None,
        declared: Callable[[Any], bool] | None = None,
        record: str | None = None,
        emit_cached_asset_events: bool = True,
        upstream_ids: Mapping[str, str] | None = None,
        upstream_lookup: Callable[[], Mapping[str, str]] | None = None,
        asset_namespace: str = DEFAULT_ASSET_NAMESPACE,
        **kwargs: Any,
    ) -> KartTaskOperator:
        """An operator for ``task``.

        Args:
            task: the kart task.
            task_id: its Airflow task id (``naming.task_ids``).
            code: ``kart_core.code_fingerprint`` of its class (computed here when None).
            upstream: the tasks it requires; their outputs that are Assets become the operator's inlets.
            uris: Asset URIs of the outputs by task (``outputs.asset_uris``), when the caller has them
                (``output()`` is not free).
            declared: which tasks' outputs are Airflow Assets (default: every task's).
            record: the URI of the DAG's kart record Asset (``skew.record_uri``), where the worker
                looks up what the dag-processor parsed for this task id (None: no check).
            emit_cached_asset_events: False to emit no Asset event when the task was cached.
            upstream_ids: the Airflow task id of each task it requires, by ``kart_core.node_key``;
                the worker compares their XCom unique ids in the run with the tasks it requires now.
            upstream_lookup: when ``upstream_ids`` are guesses (a worker's one-task parse, see
                ``kart_core.requirement_places``), computes the exact ids for those without XCom.
            asset_namespace: the Asset namespace of outputs in a local workspace, when ``uris`` is
                None (``outputs.asset_uris``; ``x-kart://<namespace>/…``).
            kwargs: BaseOperator arguments (retries, pool, queue, ...); ``outlets`` and ``inlets`` given here
                are added after kart's own Assets.
        """
        code = code if code is not None else kart_core.code_fingerprint(type(task))
        declared = declared or _every_task
        own = declared(task)
        if own or any(declared(dep) for dep in upstream):
            uris = uris if uris is not None else {t: asset_uris(t, asset_namespace) for t in [task, *upstream]}
        kwargs.setdefault("task_display_name", display_name_for(task))
        # Given here, so a DAG's default_args cannot turn it off: downstream workers compare the unique id
        # each task pushes (skew.compare_with_upstream); without it they would load whatever they found.
        kwargs["do_xcom_push"] = True
        # Assets the caller gives (operator_args) are added to kart's, never put in their place: `outlets=[...]`
        # replacing them left a DAG scheduled on asset_uris(task) never running (attacker at17 low note).
        outlets = [Asset(uri, extra=asset_extra(task, code)) for uri in uris[task]] if own else []  # type: ignore[index]
        outlets += _as_list(kwargs.pop("outlets", None))
        if outlets:
            kwargs["outlets"] = outlets
        inlets = [Asset.ref(uri=uri) for dep in upstream if declared(dep) for uri in uris[dep]]  # type: ignore[index]
        inlets += _as_list(kwargs.pop("inlets", None))
        if inlets:
            kwargs["inlets"] = inlets
        operator = cls(task_id=task_id, **kwargs)
        # Bypasses BaseOperator.__setattr__ (no converter, template field or init kwarg is named kart).
        operator.__dict__["kart"] = _KartSpec(task, code, record, emit_cached_asset_events)
        operator.kart.upstream_ids = dict(upstream_ids or {})
        operator.kart.upstream_lookup = upstream_lookup
        return operator

    # What the operator stores, read from the kart task it was made for (computed on first use:
    # a full parse never needs the parameters as strings, the worker's one task does).

    @property
    def kart_class(self) -> str:
        """``package.module.Class`` of the task, from which the worker re-imports it."""
        return import_path_of(self.kart.task)

    @property
    def kart_params(self) -> dict[str, str]:
        """The significant parameters as strings (``to_str_params(only_significant=True)``)."""
        return dict(self.kart.task.to_str_params(only_significant=True))

    @property
    def kart_settings(self) -> dict[str, str]:
        """The insignificant parameters as given at parse time (e.g. ``workspace_directory``), as strings."""
        significant = self.kart.task.to_str_params(only_significant=True)
        return {k: v for k, v in self.kart.task.to_str_params().items() if k not in significant}

    @property
    def kart_unique_id(self) -> str:
        """The task's unique id at parse time."""
        return str(self.kart.task.make_unique_id())

    @property
    def kart_code(self) -> str:
        """The code fingerprint of the task's class at parse time."""
        return self.kart.code

    @property
    def emit_cached_asset_events(self) -> bool:
        """False: a cached run emits no Asset event."""
        return self.kart.emit_cached_asset_events

    def _say_conf_unread(self, context: Any) -> None:
        """Warn when the DAG run carries a conf (``airflow dags trigger -c``, the UI's trigger form): kart tasks take
        their parameters from the DAG file, never from a run's conf or ``params`` (docs/airflow.md, "Dates and
        partitions"), so a user who set one must hear that it reached nothing (attacker at17 H6)."""
        dag_run = context.get("dag_run") if hasattr(context, "get") else None
        conf = getattr(dag_run, "conf", None)
        if conf:
            self.log.warning(
                "this DAG run's conf %s is not read by kart tasks: %s's parameters come from the DAG file (as "
                "parsed: %s). Make a DAG per parameter set, or pass values the file reads; see docs/airflow.md, "
                "'Dates and partitions'.",
                dict(conf),
                self.kart_class,
                self.kart_unique_id,
            )

    def execute(self, context: Any) -> dict[str, Any]:
        """Check the task against the parsed DAG, run it unless cached; return ``{"status", "path", "unique_id", "repaired"}``."""
        try:
            extra = self._record()
            # The parse's rerun=True copy of a task reached by two paths, which a one-task parse may not meet.
            # The task object this process's parse of the DAG file made, with its Python values: the
            # same task build() runs (re-parsing its string parameters could hand run() other values).
            task = task_for_worker(self.kart.task, recorded_settings(self.task_id, extra), self.kart_unique_id)
            self.log.info(
                "running %s (%s, as parsed in this process %d)", task.kart_label(), self.kart_class, os.getpid()
            )
            recorded = self._check_against_parse(task, current_code(task, self.kart_class, self.kart.code), extra)
            self._check_upstream_run(task, context, recorded)
            self._say_conf_unread(context)
        except kart_core.StaleTaskError as exc:
            # A retry would run the same code again: fail now, with kart's message.
            self.log.error("%s", exc)
            raise AirflowFailException(f"StaleTaskError: {exc}") from exc
        behind = kart_core.stale_upstreams(task)
        if behind:
            # A task cleared alone (or a DAG holding part of the graph): its upstream's Airflow task does not run
            # first, so this one would serve, or be built on, what kart itself calls stale (attacker at23 A2).
            self.log.warning(
                "%s is built on (or about to read) %s, stale: an upstream of it was committed again since with other "
                "content, and its Airflow task has not run again in this DAG run. This task's result is not current. "
                "Clear %s with its downstream tasks (or the whole run) to bring them up to date.",
                task.kart_label(),
                ", ".join(behind),
                "it" if len(behind) == 1 else "them",
            )
        try:
            report = kart_core.run_one_reporting(task)
        except Exception as exc:
            # Airflow shows the bare exception; say which kart task raised it (label and full unique id).
            where = f"kart task {task.kart_label()} (unique id {task.make_unique_id()}, Airflow task {self.task_id})"
            self.log.error("%s failed: %s: %s", where, type(exc).__name__, exc)
            exc.add_note(f"in {where}")
            raise
        status, repaired = report.status, list(report.repaired)
        if status is kart_core.RunStatus.CACHED:
            # Its path goes to XCom and its asset event to consumers that may not be kart tasks (a damaged
            # output would reach them as "cached": at17 low note, at20 K2, K8): check it as a load of it would.
            rebuilt = kart_core.repair_if_damaged(task)
            if rebuilt:
                status, repaired = kart_core.RunStatus.RAN, [*repaired, *rebuilt]
        self.kart.status = status.value
        paths = output_paths(task)
        self.log.info("%s: %s", status.value, ", ".join(paths))
        if repaired:
            self.log.warning("repaired (damaged, rebuilt during this run): %s", ", ".join(repaired))
        if status is kart_core.RunStatus.CACHED and not self.emit_cached_asset_events:
            self.outlets = []  # Airflow builds the asset events from the outlets after execute()
        else:
            _label_asset_events(context, self.outlets, status)
        return {
            "status": status.value,
            "path": xcom_path(paths),
            "unique_id": task.make_unique_id(),
            "repaired": repaired,
        }

    @property
    def kart_status(self) -> str | None:
        """``ran`` / ``cached`` once this operator's execute() ran the task, else None."""
        return self.kart.status

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Lineage for the OpenLineage provider: the task's inputs and outputs as datasets, and the ``kart`` run facet.

        The provider's DefaultExtractor calls this when the task instance ends (success or
        failure). Inputs are the outputs of the tasks it requires, outputs its own, whether or not
        they are declared as Airflow Assets (``to_dag(assets=...)``) and whether or not a cached run
        emitted Asset events. The facet holds the unique id, the significant parameters and whether
        the task ran or was cached (``kart_airflow.lineage``); the status is this operator's, or the
        task's XCom when another copy of the operator ran, or ``failed``.
        """
        from kart_airflow.lineage import kart_lineage

        task = self.kart.task
        return kart_lineage(
            unique_id=self.kart_unique_id,
            task_class=self.kart_class,
            parameters=self.kart_params,
            status=self.kart_status or _status_from_xcom(task_instance, self.task_id),
            input_uris=[uri for dep in task.kart_requires() for uri in output_uris(dep)],
            output_uris=output_uris(task),
        )

    def _record(self) -> Mapping[str, Any] | None | object:
        """The DAG's record Asset's extra (``recorded_asset_extra``): ``_UNAVAILABLE`` without a record or outside a run."""
        return recorded_asset_extra(self.kart.record) if self.kart.record is not None else _UNAVAILABLE

    def _check_against_parse(self, task: Any, code: str, recorded: Any) -> Mapping[str, Any] | None:
        """This task id's entry in the DAG's record Asset (what the dag-processor parsed, ``recorded``: its
        extra, read by ``_record``) against ``task``.

        Returns the record's extra once checked (the upstream check reads it too), else None.
        """
        if self.kart.record is None or recorded is _UNAVAILABLE:
            return None
        compare_with_record(task, self.task_id, code, self.kart.record, recorded)
        return recorded  # type: ignore[no-any-return]

    def _check_upstream_run(self, task: Any, context: Any, recorded: Mapping[str, Any] | None = None) -> None:
        """What each upstream task pushed to XCom in this run against the task ``task`` requires now.

        One XCom read per requirement. On a worker's one-task parse the upstream task ids are
        guesses (the place through this task); a requirement reached by a shorter path has no XCom
        there, and then the exact ids come, once, from the record (``recorded``) and the run's
        finished task ids (``skew.upstream_task_ids``), or, if Airflow cannot list those or the
        record does not name every requirement, from walking the graph (``upstream_lookup``).
        """
        ti = context.get("ti") if isinstance(context, Mapping) else None
        if ti is None or not hasattr(ti, "xcom_pull"):
            return  # execute() called outside a task run: no run to compare with
        exact: Mapping[str, str] | None = None
        compared: list[str] = []
        for dependency in task.kart_requires():
            key = kart_core.node_key(dependency)
            upstream_id = self.kart.upstream_ids.get(key)
            pushed = ti.xcom_pull(task_ids=upstream_id) if upstream_id is not None else None
            if pushed is None and self.kart.upstream_lookup is not None:
                if exact is None:
                    exact = self._exact_upstream_ids(task, ti, recorded)
                upstream_id = exact.get(key)
                pushed = ti.xcom_pull(task_ids=upstream_id) if upstream_id is not None else None
            if upstream_id is not None:
                compare_with_upstream(task, dependency, upstream_id, pushed, str(ti.run_id))
                compared.append(f"{upstream_id}={_pushed_id(pushed)}")
        if compared:
            # Which upstream task instances vouched for the inputs (an operator reading this log can follow them).
            self.log.info("kart_airflow: upstream unique ids in this run's XCom: %s", ", ".join(compared))

    def _exact_upstream_ids(self, task: Any, ti: Any, recorded: Mapping[str, Any] | None) -> Mapping[str, str]:
        """The task ids of ``task``'s requirements in the DAG: from the record and the run's task ids, else by a walk."""
        finished = _finished_task_ids(ti) if recorded is not None else None
        if finished is not None:
            dependencies = list(task.kart_requires())
            found = upstream_task_ids(dependencies, recorded, finished)  # type: ignore[arg-type]
            # A dependency the record does not name (its unique id differs from the parse's) is found by
            # the walk, so that its XCom is still compared (and the skew reported), never skipped.
            if len(found) == len({kart_core.node_key(dep) for dep in dependencies}):
                self.log.info("kart_airflow: found the upstream task ids of %s in the DAG's record", self.task_id)
                return found
        if self.kart.upstream_lookup is None:
            return {}
        self.log.info("kart_airflow: walked the graph for the upstream task ids of %s", self.task_id)
        return self.kart.upstream_lookup()


def _every_task(task: Any) -> bool:
    return True


def _pushed_id(pushed: Any) -> str:
    """The short unique id an upstream task pushed to XCom, or ``none`` (it pushed nothing: not compared)."""
    if isinstance(pushed, Mapping) and "unique_id" in pushed:
        return kart_core.short_id(str(pushed["unique_id"]))
    return "none"


def _finished_task_ids(ti: Any) -> list[str] | None:
    """The task ids of the run's finished task instances (Airflow's task breadcrumbs), or None if unavailable.

    One call to Airflow's task execution API (``GET /task-instances/breadcrumbs``, Airflow 3.1+):
    an upstream task that pushed XCom has finished. None when this Airflow cannot list them.
    """
    breadcrumbs = getattr(ti, "get_task_breadcrumbs", None)
    if breadcrumbs is None:
        return None
    try:
        return [str(crumb["task_id"]) for crumb in breadcrumbs(dag_id=ti.dag_id, run_id=ti.run_id)]
    except Exception:  # an API server without the route: the walk (upstream_lookup) is always right
        return None


class _KartSpec:
    """The kart side of one operator: the task, its class's code fingerprint, where the worker finds
    what the dag-processor recorded, the cached-event option and the upstream task ids. Copied by reference: Airflow
    deep-copies operators (e.g. ``dag.partial_subset``), and the task is immutable."""

    __slots__ = ("task", "code", "record", "emit_cached_asset_events", "status", "upstream_ids", "upstream_lookup")

    def __init__(self, task: Any, code: str, record: str | None, emit_cached_asset_events: bool) -> None:
        self.task, self.code, self.record = task, code, record
        self.emit_cached_asset_events = emit_cached_asset_events
        self.status: str | None = None  # set by execute(); read by the OpenLineage hook
        self.upstream_ids: dict[str, str] = {}  # node key of each requirement -> its Airflow task id
        self.upstream_lookup: Callable[[], Mapping[str, str]] | None = None

    def __copy__(self) -> _KartSpec:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _KartSpec:
        return self


class MissingKartTaskOperator(BaseOperator):
    """Stands in for a task id that this worker's kart graph lacks; fails at once with ``message``."""

    template_fields = ()
    ui_color = "#fde8e8"

    def __init__(self, *, message: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.message = message

    def execute(self, context: Any) -> None:
        """Fail without retries (Airflow's own "Task not found" would reschedule the task instead)."""
        raise AirflowFailException(f"StaleTaskError: {self.message}") from kart_core.StaleTaskError(self.message)


_UNAVAILABLE = object()


def recorded_asset_extra(uri: str) -> Mapping[str, Any] | None | object:
    """The extra of the active Asset ``uri`` as the dag-processor registered it; None if no DAG declares it.

    Asks Airflow's task execution API through the task SDK's channel to its supervisor (what
    ``outlet_events[...]`` uses in Airflow 3). Returns ``_UNAVAILABLE`` outside a task run (e.g.
    ``operator.execute()`` called directly), where there is nothing to compare with.
    """
    try:
        from airflow.sdk.execution_time import task_runner
        from airflow.sdk.execution_time.comms import ErrorResponse, GetAssetByUri
    except ImportError:  # another Airflow 3 layout: skip the check rather than fail every task
        return _UNAVAILABLE
    comms = getattr(task_runner, "SUPERVISOR_COMMS", None)  # set only while a task runs
    if comms is None:
        return _UNAVAILABLE
    response = comms.send(GetAssetByUri(uri=uri))
    if isinstance(response, ErrorResponse):
        if getattr(response.error, "value", response.error) == "ASSET_NOT_FOUND":
            return None
        raise kart_core.StaleTaskError(f"Airflow could not tell which output the DAG declares at {uri}: {response}")
    return dict(getattr(response, "extra", None) or {})


def _status_from_xcom(task_instance: Any, task_id: str) -> str:
    """``ran`` / ``cached`` from the task's XCom value, ``failed`` when it has none."""
    try:
        value = task_instance.xcom_pull(task_ids=task_id)
    except Exception:  # no XCom backend reachable here: the run's outcome is unknown to kart
        value = None
    return str(value["status"]) if isinstance(value, Mapping) and "status" in value else "failed"


def _as_list(value: Any) -> list[Any]:
    """An operator's ``outlets`` / ``inlets`` argument as a list (Airflow takes one object or an iterable)."""
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple | set) else [value]


def _label_asset_events(context: Any, outlets: list[Any], status: kart_core.RunStatus) -> None:
    """Mark each output's asset event as cached or ran (Airflow emits one either way on success)."""
    events = context.get("outlet_events") if isinstance(context, Mapping) else None
    if events is None:
        return
    for outlet in outlets:
        if isinstance(outlet, Asset):
            events[outlet].extra["kart_status"] = status.value
