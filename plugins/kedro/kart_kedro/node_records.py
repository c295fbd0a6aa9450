"""Small records KartRunner keeps beside its node cache, in the kart workspace.

- the state (md5, size, mtime) of each persistent output right after a node run wrote it, so a
  later run can tell whether the catalog still holds it (output_state.py): kept in the node run's
  own task log (key ``OUTPUT_STATES``), which kart commits with the run's outputs, in the run record
  of its integrity manifest (``log/manifest/KedroNodeRun_{unique id}.json``; kart before
  2026-11-30 15:00 UTC wrote ``log/task_log/KedroNodeRun_{unique id}.pkl``, still read), so
  recording it costs no file of its own.
  When a later run finds the same content with a newer modification time, the new state goes to
  ``kedro/{project}/.kart/states/{node}_{unique id}.pkl``, which takes precedence (kart before
  2026-11-30 15:00 UTC kept every state in such a file; until 23:30 UTC it was in
  ``kedro/{project}/{node}/.kart/``).
- ``kedro/{project}/.kart/written.pkl``: per dataset, the md5 of every content kart has written to
  it; content kart wrote may be replaced by another cached run of the node, other content is newer
  data from outside kart and makes the node rerun instead. Read once and written once per run.
  (Kart before 2026-11-30 kept one marker file per content, ``.kart/written/{dataset}/{md5}.pkl``;
  those are still honoured.)
- ``kedro/{project}/.kart/last_runs.pkl``: per node, the parts of the key of its last run (code
  items, parameter and input digests, upstream contents), to say why a node reruns; read and written
  once per run.
- ``kedro/{project}/.kart/input_digests.pkl``: per raw input (a local file dataset no node of the
  run produces), the content digest of its loaded data with the file stamp (``FileStamp``) and
  catalog definition it was read with, so a run whose raw inputs are unchanged does not load them
  to compute its keys. A digest is used only while the stamp and definition are the same and the
  files' newest time was more than ``RACY_NS`` before the digest was recorded (git's "racy" rule:
  a write in the same timestamp tick as the read could leave the stamp unchanged). Read and
  written once per run.
- ``kedro/{project}/.kart/code_names.pkl``: per output dataset of a cached node, its last content hash
  with the classes and functions its pickle names (``pickled_code``), so a run whose producer is served
  keys that output's readers by their code without reading the pickle. Read and written once per run.

All are written with kart's atomic targets, so a local folder and ``s3://`` work alike. None is
part of a node run's outputs: losing one (a run killed before it wrote them) costs at most one
rerun, never a stale result: an output whose state or origin is unknown makes its node rerun.
"""

from __future__ import annotations

import dataclasses
import logging
import pickle
import time
from collections.abc import Mapping
from typing import Any

import kart_core
from kart_kedro.node_cache import KedroNodeRun, NodeKey, PlainRecordProcessor, safe_name
from kart_kedro.output_state import FileStamp, OutputState

TASK_LOG = kart_core.workspace.TASK_LOG

__all__ = ["OUTPUT_STATES", "NodeRecords", "RunParts", "states_from_log"]

OUTPUT_STATES = "kart_output_states"  # the task log key: {dataset: (md5, size, mtime_ns)}

logger = logging.getLogger(__name__)

# What reading a record file may raise when it is not one this kart can use: another version's layout, bytes that
# are no pickle, a torn or truncated copy (DamagedOutputError: size or hash differs from its manifest). A record is
# bookkeeping: unreadable counts as nothing recorded, which costs reruns or re-reads, never a stale result. A
# signature refused with signing on (IntegrityError) is not in the list: a forged record is reported, not skipped.
_UNREADABLE = (TypeError, ValueError, EOFError, pickle.UnpicklingError, kart_core.errors.DamagedOutputError)


def _stored(target: Any) -> dict[Any, Any]:
    """A record file's mapping, or ``{}`` when it is missing or unreadable (with one warning naming the file)."""
    try:
        return dict(target.load()) if target.exists() else {}
    except kart_core.errors.IntegrityError:
        raise
    except (*_UNREADABLE, kart_core.errors.LoadError) as exc:  # LoadError: kart's wrapping of the same causes
        logger.warning(
            "kart: the KartRunner record %s cannot be read (%s: %s); it counts as empty and is written anew",
            target.path(),
            type(exc).__name__,
            exc,
        )
        return {}


@dataclasses.dataclass(frozen=True)
class RunParts:
    """What a node run's unique id is made of, kept in detail to explain the next rerun.

    Attributes:
        unique_id: the KedroNodeRun's unique id.
        code: the code fingerprint's items (``module.qualname`` → digest) and packages.
        parameters: digest per ``params:`` input.
        inputs: digest per input that no cached node of the run produced.
        upstream: content hash of each other input (what a cached node run of the run returned, as its
            manifest records it), by dataset name; the producer's unique id before 2026-12-01.
    """

    unique_id: str
    code: Mapping[str, str]
    parameters: Mapping[str, str]
    inputs: Mapping[str, str]
    upstream: Mapping[str, str]


_RUN_PARTS_FIELDS = frozenset(field.name for field in dataclasses.fields(RunParts))
_RUN_PARTS_NAMES = tuple(field.name for field in dataclasses.fields(RunParts))  # in their order


class NodeRecords:
    """Reads and writes the records of one project's node runs in one workspace."""

    # A recorded input digest counts only for files last changed this long before it was recorded:
    # two seconds covers the coarsest timestamps of common file systems (FAT's modification times).
    RACY_NS = 2_000_000_000

    def __init__(self, workspace_directory: str | None, project: str) -> None:
        """Args:
        workspace_directory: the kart workspace; None for kart's default.
        project: the Kedro package name (the folder under ``kedro/``).
        """
        kwargs = {} if workspace_directory is None else {"workspace_directory": workspace_directory}
        self._base: kart_core.TaskOnKart[Any] = kart_core.TaskOnKart(**kwargs)
        self.project = safe_name(project or "_")
        self._last_runs: dict[str, Any] | None = None
        self._written: dict[str, set[str]] | None = None  # dataset -> md5s kart wrote (file read once)
        self._new_written: dict[str, set[str]] = {}  # what this run wrote, saved with save_written()
        self._input_digests: dict[str, tuple[str, str, int, int, str]] | None = None  # the file, read once
        self._new_input_digests: dict[str, tuple[str, str, int, int, str]] = {}  # saved by save_input_digests()
        self._code_names: dict[str, tuple[str, tuple[str, ...]]] | None = None  # the file, read once
        self._new_code_names: dict[str, tuple[str, tuple[str, ...]]] = {}  # saved by save_code_names()

    def _target(self, relative: str) -> Any:
        target = self._base.make_target(relative, use_unique_id=False, processor=PlainRecordProcessor())
        # Messages (a refused signature, a damaged file) name the runner's record, not the stand-in task.
        target.what = "KartRunner record file"
        target.owner = f"Kedro project {self.project!r}"
        return target

    # --- output states of one node run ----------------------------------------------------------

    def states(
        self, task: KedroNodeRun | NodeKey, run: Mapping[str, Any] | None = None, paths: tuple[str, str] | None = None
    ) -> dict[str, OutputState] | None:
        """The recorded output states of a node run, or None if none were recorded.

        A states file (a later check's update, or kart's earlier layout) wins over the run's task log.

        Args:
            task: the node run, or its key (the node run is made only when a states file or a task log file exists,
                or no ``run`` is given: a cached node checked by its id in a new process makes none, as for its check).
            run: the run record of its manifest when the caller read it already (``kart_core.outputs_if_complete``,
                with the check that found the run complete): its task log is not read again. None: read it
                (``read_run_log``: a task log file of kart before 2026-11-30, else the manifest's run record).
            paths: ``(task.states_path(), its task log's path)`` when the caller has them (``NodeKey.record_paths``).
        """
        if paths is None:
            task = task.task if isinstance(task, NodeKey) else task
            paths = (task.states_path(), "")  # most runs have no such file: one existence check, no target made
        if kart_core.workspace.file_exists(paths[0]):
            task = task.task if isinstance(task, NodeKey) else task
            stored = _stored(task.states_target())  # unreadable (or planted, naming code): as if none were recorded
            return {name: OutputState(*values) for name, values in stored.items()} if stored else None
        if run is not None:
            log = paths[1] or kart_core.workspace.log_task_path(
                task.task if isinstance(task, NodeKey) else task, TASK_LOG
            )
            if not kart_core.workspace.file_exists(log):
                return states_from_log(run.get(TASK_LOG.name))  # what read_run_log finds without a task log file
        task = task.task if isinstance(task, NodeKey) else task
        try:  # the run's task log file, or the run record in its manifest (kart_run_record_in_manifest)
            return states_from_log(kart_core.read_run_log(task, TASK_LOG, None, plain_data=True))
        except (*_UNREADABLE, kart_core.errors.LoadError):
            return None  # unreadable: as if none were recorded

    def save_states(self, task: KedroNodeRun, states: Mapping[str, OutputState]) -> None:
        """Record newer output states of a served node run (file ``states_{uid}.pkl``) and mark each content as kart's."""
        if not states:  # memory outputs only: nothing to compare later
            return
        plain = {name: dataclasses.astuple(state) for name, state in states.items()}
        task.states_target().dump(plain)
        self.mark_written(states)

    def mark_written(self, states: Mapping[str, OutputState]) -> None:
        """Remember that kart wrote each of these contents (saved by ``save_written``, once per run)."""
        for name, state in states.items():
            if not state.missing:
                self._new_written.setdefault(name, set()).add(state.md5)

    def written_by_kart(self, dataset: str, state: OutputState) -> bool:
        """Whether kart has written exactly this content to ``dataset`` before."""
        if state.missing:
            return False
        if state.md5 in self._new_written.get(dataset, ()) or state.md5 in self._load_written().get(dataset, ()):
            return True
        return bool(self._legacy_marker(dataset, state).exists())

    def save_written(self) -> None:
        """Merge the contents this run wrote into ``.kart/written.pkl`` (one read and one write per run)."""
        if not self._new_written:
            return
        self._written = None  # another run may have added its own meanwhile: merge with what is stored now
        stored = self._load_written()
        for dataset, md5s in self._new_written.items():
            stored.setdefault(dataset, set()).update(md5s)
        self._written_target().dump({dataset: sorted(md5s) for dataset, md5s in stored.items()})
        self._new_written = {}

    def _load_written(self) -> dict[str, set[str]]:
        if self._written is None:
            try:
                self._written = {str(dataset): set(md5s) for dataset, md5s in _stored(self._written_target()).items()}
            except TypeError:  # another version's layout: start anew
                self._written = {}
        return self._written

    def _written_target(self) -> Any:
        return self._target(f"kedro/{self.project}/.kart/written.pkl")

    def _legacy_marker(self, dataset: str, state: OutputState) -> Any:
        return self._target(f"kedro/{self.project}/.kart/written/{safe_name(dataset)}/{state.md5}.pkl")

    # --- digests of raw inputs ------------------------------------------------------------------

    def known_input_digest(self, dataset: str, config: str, stamp: FileStamp) -> str | None:
        """The digest recorded for raw input ``dataset`` when it had this stamp and definition, if it may be trusted.

        Args:
            dataset: the catalog name.
            config: ``dataset_config(dataset, reading=True)`` of its definition now.
            stamp: its ``file_stamp`` now.
        """
        entry = self._new_input_digests.get(dataset) or self._load_input_digests().get(dataset)
        if entry is None:
            return None
        recorded_config, key, newest_ns, recorded_ns, digest = entry
        if (recorded_config, key) != (config, stamp.key) or newest_ns > recorded_ns - self.RACY_NS:
            return None
        return digest

    def note_input_digest(self, dataset: str, config: str, stamp: FileStamp, digest: str) -> None:
        """Remember the digest of raw input ``dataset`` read with ``stamp`` (saved by ``save_input_digests``)."""
        self._new_input_digests[dataset] = (config, stamp.key, stamp.newest_ns, time.time_ns(), digest)

    def save_input_digests(self) -> None:
        """Merge this run's raw input digests into ``.kart/input_digests.pkl`` (one read and one write per run)."""
        if not self._new_input_digests:
            return
        self._input_digests = None  # another run may have added its own meanwhile
        stored = {**self._load_input_digests(), **self._new_input_digests}
        self._input_digests_target().dump(stored)
        self._new_input_digests = {}

    def _load_input_digests(self) -> dict[str, tuple[str, str, int, int, str]]:
        if self._input_digests is None:
            stored = _stored(self._input_digests_target())
            self._input_digests = {
                str(name): tuple(entry)  # type: ignore[misc]
                for name, entry in stored.items()
                if isinstance(entry, tuple | list) and len(entry) == 5
            }
        return self._input_digests

    def _input_digests_target(self) -> Any:
        return self._target(f"kedro/{self.project}/.kart/input_digests.pkl")

    # --- the code each output's pickle names ------------------------------------------------------

    def known_code_names(self, dataset: str, content: str) -> tuple[str, ...] | None:
        """The ``module:qualname`` names recorded for output ``dataset`` holding ``content`` (its content
        hash as committed), or None when none were recorded for that content."""
        entry = self._new_code_names.get(dataset) or self._load_code_names().get(dataset)
        return entry[1] if entry is not None and entry[0] == content else None

    def note_code_names(self, dataset: str, content: str, names: tuple[str, ...]) -> None:
        """Remember the names output ``dataset`` holding ``content`` names (saved by ``save_code_names``)."""
        if self.known_code_names(dataset, content) != names:
            self._new_code_names[dataset] = (content, names)

    def save_code_names(self) -> None:
        """Merge this run's names into ``.kart/code_names.pkl`` (one read and one write per run that noted any)."""
        if not self._new_code_names:
            return
        self._code_names = None  # another run may have added its own meanwhile
        stored = {**self._load_code_names(), **self._new_code_names}
        self._code_names_target().dump(stored)
        self._new_code_names = {}

    def _load_code_names(self) -> dict[str, tuple[str, tuple[str, ...]]]:
        if self._code_names is None:
            stored = _stored(self._code_names_target())
            self._code_names = {
                str(name): (str(entry[0]), tuple(map(str, entry[1])))
                for name, entry in stored.items()
                if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], tuple)
            }
        return self._code_names

    def _code_names_target(self) -> Any:
        return self._target(f"kedro/{self.project}/.kart/code_names.pkl")

    # --- the last run of each node ---------------------------------------------------------------

    def last_run(self, node_name: str) -> RunParts | None:
        """The key parts of the node's last run here, or None if it never ran (one file read per run)."""
        if self._last_runs is None:
            self._last_runs = _stored(self._last_runs_target())
        fields = self._last_runs.get(node_name)
        try:
            return RunParts(**fields) if fields else None
        except TypeError:
            return None

    def last_unique_id(self, node_name: str) -> str | None:
        """``last_run(node_name).unique_id`` (None when that is None), without making the RunParts: asked for every
        node a cached run served, where only the id is compared (``PipelineRun.served_parts``)."""
        if self._last_runs is None:
            self._last_runs = _stored(self._last_runs_target())
        fields = self._last_runs.get(node_name)
        # RunParts(**fields) is made exactly when the keys are its fields' names (it checks no value).
        if type(fields) is not dict or fields.keys() != _RUN_PARTS_FIELDS:
            return None
        return fields["unique_id"]  # type: ignore[no-any-return]

    def save_last_runs(self, parts: Mapping[str, RunParts]) -> None:
        """Remember the key parts of the nodes that just ran (one file write per run, merged)."""
        if not parts:
            return
        self._last_runs = None
        target = self._last_runs_target()
        stored = _stored(target)
        for node_name, run in parts.items():
            stored[node_name] = {name: getattr(run, name) for name in _RUN_PARTS_NAMES}
        target.dump(stored)

    def _last_runs_target(self) -> Any:
        return self._target(f"kedro/{self.project}/.kart/last_runs.pkl")


def states_from_log(task_log: Any) -> dict[str, OutputState] | None:
    """The output states a node run's task log records, or None (a run without persistent outputs, or an older kart)."""
    values = task_log.get(OUTPUT_STATES) if isinstance(task_log, dict) else None
    if not isinstance(values, dict):
        return None
    return {str(name): OutputState(*state) for name, state in values.items()}
