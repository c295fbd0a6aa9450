"""Small records KartRunner keeps beside its node cache, in the kart workspace.

- ``kedro/{project}/{node}/.kart/states_{unique id}.pkl``: the state (md5, size, mtime) of each
  persistent output right after that node run wrote it, so a later run can tell whether the
  catalog still holds it (output_state.py).
- ``kedro/{project}/.kart/written/{dataset}/{md5}.pkl``: one marker per content kart has written to a
  dataset; content with a marker may be replaced by another cached run of the node, other content
  is newer data from outside kart and makes the node rerun instead.
- ``kedro/{project}/.kart/last_runs.pkl``: per node, the parts of the key of its last run (code
  items, parameter and input digests, upstream ids), to say why a node reruns; read and written
  once per run.

All are written with kart's atomic targets, so a local folder and ``s3://`` work alike. None is
part of a node run's outputs: losing one costs at most one rerun.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import kart_core
from kart_kedro.node_cache import KedroNodeRun, safe_name
from kart_kedro.output_state import OutputState

__all__ = ["NodeRecords", "RunParts"]


@dataclasses.dataclass(frozen=True)
class RunParts:
    """What a node run's unique id is made of, kept in detail to explain the next rerun.

    Attributes:
        unique_id: the KedroNodeRun's unique id.
        code: the code fingerprint's items (``module.qualname`` → digest) and packages.
        parameters: digest per ``params:`` input.
        inputs: digest per input that no cached node of the run produced.
        upstream: unique id of the node run that produced each other input, by dataset name.
    """

    unique_id: str
    code: Mapping[str, str]
    parameters: Mapping[str, str]
    inputs: Mapping[str, str]
    upstream: Mapping[str, str]


class NodeRecords:
    """Reads and writes the records of one project's node runs in one workspace."""

    def __init__(self, workspace_directory: str | None, project: str) -> None:
        """Args:
        workspace_directory: the kart workspace; None for kart's default.
        project: the Kedro package name (the folder under ``kedro/``).
        """
        kwargs = {} if workspace_directory is None else {"workspace_directory": workspace_directory}
        self._base: kart_core.TaskOnKart[Any] = kart_core.TaskOnKart(**kwargs)
        self.project = safe_name(project or "_")
        self._last_runs: dict[str, Any] | None = None

    def _target(self, relative: str) -> Any:
        return self._base.make_target(relative, use_unique_id=False)

    # --- output states of one node run ----------------------------------------------------------

    def states(self, task: KedroNodeRun) -> dict[str, OutputState] | None:
        """The recorded output states of a node run, or None if none were recorded."""
        target = task.states_target()
        if not target.exists():
            return None
        return {name: OutputState(*values) for name, values in target.load().items()}

    def save_states(self, task: KedroNodeRun, states: Mapping[str, OutputState]) -> None:
        """Record the output states of a node run and mark each content as written by kart."""
        if not states:  # memory outputs only: nothing to compare later
            return
        plain = {name: dataclasses.astuple(state) for name, state in states.items()}
        task.states_target().dump(plain)
        for name, state in states.items():
            if not state.missing:
                self._written(name, state).dump(True)

    def written_by_kart(self, dataset: str, state: OutputState) -> bool:
        """Whether kart has written exactly this content to ``dataset`` before."""
        return not state.missing and bool(self._written(dataset, state).exists())

    def _written(self, dataset: str, state: OutputState) -> Any:
        return self._target(f"kedro/{self.project}/.kart/written/{safe_name(dataset)}/{state.md5}.pkl")

    # --- the last run of each node ---------------------------------------------------------------

    def last_run(self, node_name: str) -> RunParts | None:
        """The key parts of the node's last run here, or None if it never ran (one file read per run)."""
        if self._last_runs is None:
            target = self._last_runs_target()
            try:
                self._last_runs = dict(target.load()) if target.exists() else {}
            except (TypeError, ValueError, EOFError):  # written by another version: as if nothing ran
                self._last_runs = {}
        fields = self._last_runs.get(node_name)
        try:
            return RunParts(**fields) if fields else None
        except TypeError:
            return None

    def save_last_runs(self, parts: Mapping[str, RunParts]) -> None:
        """Remember the key parts of the nodes that just ran (one file write per run, merged)."""
        if not parts:
            return
        self._last_runs = None
        target = self._last_runs_target()
        try:
            stored = dict(target.load()) if target.exists() else {}
        except (TypeError, ValueError, EOFError):
            stored = {}
        for node_name, run in parts.items():
            stored[node_name] = {field.name: getattr(run, field.name) for field in dataclasses.fields(run)}
        target.dump(stored)

    def _last_runs_target(self) -> Any:
        return self._target(f"kedro/{self.project}/.kart/last_runs.pkl")
