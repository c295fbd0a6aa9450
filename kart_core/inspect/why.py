"""Why will a task run? Compare it with the nearest cached run of the same class.

The unique id is md5 over the upstream ids, the significant parameters and the class name, and
the run logs keep each run's parameters. So a task that is not cached either has a parameter
that differs from every cached run (the nearest one is shown), or the same parameters and a
different upstream: that upstream is found by recomputing the cached id with the cached
upstream ids, and explained in turn.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from kart_core import lineage, target_config
from kart_core.contract import KartTask, LuigiTask, is_kart_task, target_path
from kart_core.damage import describe_damage, size_mismatches
from kart_core.display import IdLookup, readable_params, task_params_text
from kart_core.hashing import short_id
from kart_core.identity import unique_id_with_upstream, upstream_parts
from kart_core.inspect.as_main import advice, outputs_as_main
from kart_core.inspect.runlogs import RunRecord, id_lookup, read_runs
from kart_core.refusal import FIX as REFUSAL_FIX
from kart_core.refusal import Refusal, describe_refusal, output_refusals
from kart_core.utils import flatten
from kart_core.workspace import FileEntry, list_files

__all__ = ["explain", "explain_each"]

_INDENT = "  "


@dataclasses.dataclass
class _Context:
    """Listings and run records read once per workspace and class."""

    files: dict[str, list[FileEntry]] = dataclasses.field(default_factory=dict)
    records: dict[tuple[str, str], list[RunRecord]] = dataclasses.field(default_factory=dict)
    lookups: dict[str, IdLookup] = dataclasses.field(default_factory=dict)
    explained: set[str] = dataclasses.field(default_factory=set)
    lines: list[str] = dataclasses.field(default_factory=list)
    main_hint_given: bool = False  # the __main__ explanation is said once, not for each task

    def runs_of(self, task: KartTask) -> list[RunRecord]:
        workspace, class_name = str(task.workspace_directory), type(task).__name__
        if workspace not in self.files:
            self.files[workspace] = list_files(workspace)
        if (workspace, class_name) not in self.records:
            self.records[workspace, class_name] = read_runs(workspace, self.files[workspace], class_name)
        return self.records[workspace, class_name]

    def lookup(self, workspace: str) -> IdLookup:
        """Unique ids of tasks stored inside parameters, found among every run of ``workspace``."""
        if workspace not in self.lookups:
            if workspace not in self.files:
                self.files[workspace] = list_files(workspace)
            self.lookups[workspace] = id_lookup(read_runs(workspace, self.files[workspace]))
        return self.lookups[workspace]

    def say(self, depth: int, text: str) -> None:
        self.lines.append(_INDENT * depth + text)


def explain(task: LuigiTask, max_depth: int = 6) -> list[str]:
    """Lines saying whether ``task`` will run and why: the parameter or upstream that differs from the cache."""
    context = _Context()
    with lineage.walk_scope():  # each manifest of the lineage read once for every task explained
        _explain(task, 0, None, context, max_depth)
    return context.lines


def explain_each(tasks: Sequence[LuigiTask], max_depth: int = 0) -> list[list[str]]:
    """``explain`` for each of ``tasks`` (one list of lines per task, in order), reading each
    workspace's listing and each class's run logs once for all of them.

    With the default ``max_depth=0`` each list holds that task's own reason only (the lines about
    its upstreams are left to their own entries), as a report shows it beside each task.
    """
    context = _Context()
    reasons = []
    with lineage.walk_scope():  # each manifest of the lineages read once for all of them
        for task in tasks:
            context.lines, context.explained = [], set()
            _explain(task, 0, None, context, max_depth)
            reasons.append(context.lines)
    return reasons


def _explain(task: LuigiTask, depth: int, against: RunRecord | None, context: _Context, max_depth: int) -> None:
    if not is_kart_task(task):
        state = "complete" if task.complete() else "incomplete: it will run"
        context.say(depth, f"{task.task_id} (a plain luigi task) is {state}.")
        return
    label = task.kart_label()
    if label in context.explained or depth > max_depth:
        return
    context.explained.add(label)
    targets = flatten(task.output())
    if task.rerun:
        context.say(
            depth,
            f"{label} has rerun=True: it runs every time (its new outputs replace the old ones when it commits; "
            "a rerun that fails keeps them).",
        )
        _explain_upstreams(task, depth, context, max_depth)
        return
    missing = [target_path(target) for target in targets if not target.exists()]
    if not missing:
        refused = _refusals(targets)
        if refused:
            context.say(depth, describe_refusal(label, refused))
            return
        damaged = size_mismatches(targets)
        if damaged:
            context.say(depth, describe_damage(label, damaged))
            return
        verdict = lineage.stale_verdict(targets, None, task.kart_requires)
        # What complete() finds: its own replaced inputs, and an upstream its run() built that is stale further up.
        direct = (verdict.direct or lineage.stale_outputs(targets, task.kart_requires)) if verdict is not None else []
        if direct:
            context.say(depth, f"{lineage.describe(label, direct)} It will run.")
            return
        if verdict is not None:
            context.say(depth, f"{label}'s own inputs are unchanged. {lineage.Lineage().describe(label, verdict)}")
            _explain_upstreams(task, depth, context, max_depth)
            return
        context.say(depth, f"{label} is cached: its outputs exist. It will not run.")
        return
    _explain_missing(task, label, missing, depth, against, context, max_depth)
    _explain_upstreams(task, depth, context, max_depth)


def _explain_upstreams(task: KartTask, depth: int, context: _Context, max_depth: int) -> None:
    """The upstreams of a task that will run (or be checked again): each incomplete one explained in turn,
    and each complete one built on stale content (the build brings it up to date first); each complete
    one whose output is damaged named (the run loads it, so the build runs it again first), at any depth."""
    for upstream in task.kart_requires():
        if not upstream.complete():
            _explain(upstream, depth + 1, None, context, max_depth)
        elif is_kart_task(upstream):
            refused = _refusals(flatten(upstream.output()))
            if refused:
                context.say(
                    depth + 1,
                    f"{upstream.kart_label()} is cached but signing refuses it: "
                    f"{'; '.join(r.describe() for r in refused)}. {task.kart_label()} loads it, so the build fails "
                    f"(IntegrityError): a refused file is not rebuilt by itself. {REFUSAL_FIX}",
                )
                continue
            damaged = size_mismatches(flatten(upstream.output()))
            if damaged:
                context.say(
                    depth + 1,
                    f"{upstream.kart_label()} is cached but damaged: {'; '.join(d.describe() for d in damaged)}. "
                    f"{task.kart_label()} loads it, so the build runs {upstream.kart_label()} again first "
                    "(its new output replaces the damaged one), unless repairs are off "
                    "([TaskOnKart] repair_damaged_outputs = false): then the build fails naming the file.",
                )
                continue
            if (
                lineage.stale_verdict(flatten(upstream.output()), None, upstream.kart_requires) is not None
            ):  # built on stale content further up
                _explain(upstream, depth + 1, None, context, max_depth)


def _refusals(targets: list[Any]) -> list[Refusal]:
    """What a load refuses among ``targets`` with signing on (``kart_core.refusal``); [] with signing off."""
    settings = target_config.current()
    return output_refusals(targets, settings.signer, settings.record) if settings.signer is not None else []


def _explain_missing(
    task: KartTask,
    label: str,
    missing: list[str],
    depth: int,
    against: RunRecord | None,
    context: _Context,
    max_depth: int,
) -> None:
    records = context.runs_of(task)
    own = next((r for r in records if r.unique_id == task.make_unique_id()), None)
    if own is not None:
        found = outputs_as_main(task, missing) if own.status != "unfinished" else []
        if found:
            context.say(depth, _built_as_main_reason(task, label, own, missing, found, context))
        else:
            context.say(depth, _rerun_reason(label, own, missing))
        return
    if against is None:
        against = _nearest(task, records)
    if against is None:
        context.say(
            depth, f"{label} will run: no run of {type(task).__name__} is cached in {task.workspace_directory}."
        )
        return
    diffs = _param_diffs(task, against.params, context.lookup(str(task.workspace_directory)))
    cached = f"{type(task).__name__}[{short_id(against.unique_id)}]"
    if diffs:
        context.say(depth, f"{label} will run: it differs from the nearest cached run {cached}{_when(against)} in:")
        for line in diffs:
            context.say(depth + 1, line)
        return
    _explain_upstream_change(task, label, cached, against, depth, context, max_depth)


def _rerun_reason(label: str, own: RunRecord, missing: list[str]) -> str:
    if own.status == "unfinished":
        return f"{label} will run: it started before but never finished (it failed or was interrupted)."
    return f"{label} will run: it ran before{_when(own)}, but its output(s) are gone: {', '.join(missing)}."


def _built_as_main_reason(
    task: KartTask, label: str, own: RunRecord, missing: list[str], found: list[str], context: _Context
) -> str:
    reason = (
        f"{label} will run: it was built{_when(own)} as __main__.{type(task).__name__}, by a script run with python: "
        f"its output(s) are {', '.join(found)}, not {', '.join(missing)}."
    )
    if context.main_hint_given:
        return reason
    context.main_hint_given = True
    return f"{reason} {advice(task)}"


def _when(record: RunRecord) -> str:
    finished: datetime | None = record.finished_at
    return f" (finished {finished:%Y-%m-%d %H:%M:%S})" if finished else ""


def _nearest(task: KartTask, records: list[RunRecord]) -> RunRecord | None:
    """The cached run with the fewest differing parameters; the latest one among equals."""
    params = task.to_str_params(only_significant=True)
    if not records:
        return None
    return min(records, key=lambda r: (len(_differing_names(params, r.params)), -_timestamp(r)))


def _timestamp(record: RunRecord) -> float:
    return record.finished_at.timestamp() if record.finished_at else 0.0


def _differing_names(now: dict[str, str], cached: dict[str, str]) -> list[str]:
    return [name for name in dict.fromkeys([*now, *cached]) if now.get(name) != cached.get(name)]


def _param_diffs(task: KartTask, cached: dict[str, str], lookup: IdLookup) -> list[str]:
    """One line per differing parameter; values as ``kart_core.display`` renders them (whole, not cut)."""
    now = task.to_str_params(only_significant=True)
    shown_now = task_params_text(task, max_value=None)  # live nested tasks: their exact ids
    shown_cached = readable_params(cached, lookup, max_value=None)
    lines = []
    for name in _differing_names(now, cached):
        if name not in cached:
            lines.append(f"parameter '{name}' = {shown_now[name]} (the cached run has no such parameter)")
        elif name not in now:
            lines.append(f"parameter '{name}' is gone (the cached run had {shown_cached[name]})")
        else:
            lines.append(f"parameter '{name}': now {shown_now[name]}, cached run {shown_cached[name]}")
    return lines


def _explain_upstream_change(
    task: KartTask, label: str, cached: str, against: RunRecord, depth: int, context: _Context, max_depth: int
) -> None:
    found = _changed_upstream(task, against, context)
    if found is None:
        context.say(
            depth,
            f"{label} will run: same parameters as the cached run {cached}, but its upstream tasks differ"
            + (
                " or its code changed (serialized_task_definition_check)."
                if task.serialized_task_definition_check
                else "."
            ),
        )
        return
    upstream, old = found
    context.say(
        depth,
        f"{label} will run: same parameters as the cached run {cached}, but upstream {type(upstream).__name__} "
        f"differs: now {upstream.kart_label()}, the cached run used {type(upstream).__name__}[{short_id(old.unique_id)}].",
    )
    _explain(upstream, depth + 1, old, context, max_depth)


def _changed_upstream(task: KartTask, against: RunRecord, context: _Context) -> tuple[KartTask, RunRecord] | None:
    """The upstream whose cached run, put in place of the current one, reproduces the cached unique id.

    The recipe is identity's: the same upstream parts, with one kart upstream's id swapped for a cached one.
    """
    deps, parts = upstream_parts(task.kart_requires())
    for position, dep in deps:
        for candidate in context.runs_of(dep):
            trial = [*parts[:position], candidate.unique_id, *parts[position + 1 :]]
            if unique_id_with_upstream(task, trial, against.params) == against.unique_id:
                return dep, candidate
    return None
