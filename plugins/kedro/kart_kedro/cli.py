"""``kedro kart``: list and clear the kart cache of a project's Kedro node runs.

Registered through the ``kedro.project_commands`` entry point (``kart = kart_kedro.cli:commands``).
"""

from __future__ import annotations

import difflib
from typing import Any

import click

import kart_core
from kart_kedro.node_cache import CachedRun, cached_runs, clear_run
from kart_kedro.node_records import NodeRecords

__all__ = ["commands"]

_WORKSPACE_HELP = "Cache workspace; default: kart's ([TaskOnKart] workspace_directory in luigi.cfg, else ./resources/)."


@click.group(name="kart-kedro")
def commands() -> None:
    """kart's Kedro project commands."""


@commands.group(name="kart")
def kart() -> None:
    """Inspect and clear kart's cache of Kedro node runs (kedro run --runner kart_kedro.KartRunner)."""


@kart.command(name="list")
@click.option("--workspace", default=None, help=_WORKSPACE_HELP)
@click.option("--all-projects", is_flag=True, help="Also list runs cached by other Kedro projects.")
@click.pass_obj
def list_command(metadata: Any, workspace: str | None, all_projects: bool) -> None:
    """List the cached node runs of this project, oldest built first; 'last used' marks the run of each node
    that the project's last kedro run served or ran."""
    runs = _runs(metadata, workspace, all_projects)
    if not runs:
        click.echo(f"No cached Kedro node runs in {_workspace(workspace)}.")
        return
    used = _last_used(runs, workspace)
    for run in runs:
        click.echo(_describe(run) + ("  last used" if _key(run) in used else ""))
    click.echo(f"{len(runs)} cached run(s) in {_workspace(workspace)}.")


@kart.command(name="clear")
@click.option("--workspace", default=None, help=_WORKSPACE_HELP)
@click.option(
    "--node", "nodes", multiple=True, help="Runs of this node and of every node downstream of it (repeatable)."
)
@click.option("--only", is_flag=True, help="With --node: clear only the named nodes, not what is downstream.")
@click.option("--pipeline", "pipeline_name", default="__default__", help="Pipeline in which to find downstream nodes.")
@click.option(
    "--keep-latest",
    is_flag=True,
    help="Keep the newest built run of each node and the one the last kedro run used; clear the others.",
)
@click.option("--dry-run", is_flag=True, help="Only say what would be deleted.")
@click.pass_obj
def clear_command(
    metadata: Any,
    workspace: str | None,
    nodes: tuple[str, ...],
    only: bool,
    pipeline_name: str,
    keep_latest: bool,
    dry_run: bool,
) -> None:
    """Delete cached node runs (outputs, run logs and records) of this project.

    ``--node X`` clears X and everything downstream of it in the pipeline (their cached results
    were computed from X's), unless ``--only`` is given. ``--keep-latest`` keeps, per node, the run built
    last (the build time its run record holds, not a file's modification time) and the run the project's
    last ``kedro run`` served or ran (what the current catalog and parameters resolved to then).
    """
    names = set(nodes) if only or not nodes else _with_downstream(nodes, pipeline_name)
    runs = [run for run in _runs(metadata, workspace, False) if not names or run.task.node_name in names]
    if keep_latest:
        kept = _kept(runs, workspace)
        runs = [run for run in runs if _key(run) not in kept]
    for run in runs:
        click.echo(f"{'would clear' if dry_run else 'cleared'} {_describe(run)}")
        if not dry_run:
            clear_run(run)
    click.echo(f"{len(runs)} run(s) {'to clear' if dry_run else 'cleared'}.")


def _with_downstream(nodes: tuple[str, ...], pipeline_name: str) -> set[str]:
    """The named nodes and every node downstream of them in the project's pipeline ``pipeline_name``."""
    from kedro.framework.project import pipelines

    try:
        pipeline = pipelines[pipeline_name]
    except Exception as exc:  # no project configured, or no such pipeline
        raise click.UsageError(
            f"cannot load pipeline {pipeline_name!r} to find the nodes downstream of {', '.join(nodes)} "
            f"({type(exc).__name__}: {exc}). Run inside the Kedro project, name another --pipeline, "
            "or pass --only to clear just the named nodes."
        ) from exc
    known = {node.name for node in pipeline.nodes}
    for name in nodes:
        if name not in known:
            raise click.UsageError(f"pipeline {pipeline_name!r} has no node {name!r}. {_node_hint(name, known)}")
    return {node.name for node in pipeline.from_nodes(*nodes).nodes}


def _node_hint(name: str, known: set[str]) -> str:
    """What to pass instead of the unknown node ``name``: the close names, else the pipeline's nodes (the first
    ten) and the other ways out (another ``--pipeline``; ``--only`` needs no pipeline)."""
    close = difflib.get_close_matches(name, sorted(known), n=3)
    if close:
        return f"Did you mean {', '.join(repr(c) for c in close)}?"
    names = sorted(known)
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    return (
        f"Its nodes: {shown or 'none'}. Name a node of it, another --pipeline, or pass --only to clear the runs "
        "of the named node whatever the pipeline."
    )


def _key(run: CachedRun) -> tuple[str, str, str]:
    return run.task.project, run.task.node_name, run.unique_id


def _kept(runs: list[CachedRun], workspace: str | None) -> set[tuple[str, str, str]]:
    """(project, node name, unique id) of the runs ``--keep-latest`` keeps: per node, the newest built and the
    last used."""
    newest = {(run.task.project, run.task.node_name): run.unique_id for run in runs}  # runs are oldest built first
    return {(project, node_name, unique_id) for (project, node_name), unique_id in newest.items()} | _last_used(
        runs, workspace
    )


def _last_used(runs: list[CachedRun], workspace: str | None) -> set[tuple[str, str, str]]:
    """(project, node name, unique id) of each node's run that its project's last kedro run served or ran (the
    ``last_runs`` record, ``NodeRecords.last_run``)."""
    records: dict[str, NodeRecords] = {}
    used = set()
    for project, node_name in {(run.task.project, run.task.node_name) for run in runs}:
        if project not in records:
            records[project] = NodeRecords(_workspace(workspace), project)
        last = records[project].last_run(node_name)
        if last is not None:
            used.add((project, node_name, last.unique_id))
    return used


def _workspace(workspace: str | None) -> str:
    return kart_core.workspace.default_workspace(workspace)


def _runs(metadata: Any, workspace: str | None, all_projects: bool) -> list[CachedRun]:
    project = None if all_projects else getattr(metadata, "package_name", None)
    return cached_runs(_workspace(workspace), project=project)


def _describe(run: CachedRun) -> str:
    seconds = run.processing_time
    took = f"{seconds:.2f}s" if isinstance(seconds, float) else str(seconds)
    state = "complete" if run.complete else "incomplete"
    return f"{run.created:%Y-%m-%d %H:%M:%S}  {run.task.node_name}  {run.unique_id[:8]}  {state}  took {took}"
