"""TaskOnKartDataset: a Kedro catalog entry whose data is a kart task's cached output."""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from typing import Any, NewType

from kedro.io import AbstractDataset, DatasetError

import kart_core
from kart_kedro._config import (
    TaskConfigError,
    import_task_class,
    params_mapping,
    project_root,
    task_from_config,
    undo_path_rewrite,
)
from kart_kedro._receipt import KartReceipt
from kart_kedro.task_text import describe, first_difference

__all__ = ["JSONPreview", "TaskOnKartDataset", "task_preview"]

# The keys a catalog entry of this dataset takes besides ``type`` (the constructor's arguments).
_ENTRY_KEYS = ("task", "params", "workspace_directory", "metadata")

# A mismatch may lie deep in nested tasks: its message shows them with their parameters down to this depth.
_MISMATCH_DEPTH = 4

# kedro-viz picks a preview renderer by the name of preview()'s return annotation (kedro-datasets' type).
JSONPreview = NewType("JSONPreview", dict)


def task_preview(task: kart_core.TaskOnKart[Any]) -> JSONPreview:
    """What kedro-viz shows for a kart dataset: class, readable label, parameters, unique id, outputs, state.

    All values are strings or lists and mappings of them (kedro-viz sends them as JSON).
    """
    description = describe(task)
    return JSONPreview(
        {
            "task": description["task"],
            "label": kart_core.task_text(task),
            "unique_id": task.make_unique_id(),
            "params": description["params"],
            "outputs": [str(target.path()) for target in _targets(task.output())],
            "complete": bool(task.complete()),
        }
    )


def _targets(item: Any) -> list[Any]:
    if isinstance(item, dict):
        return [leaf for value in item.values() for leaf in _targets(value)]
    if isinstance(item, list | tuple):
        return [leaf for value in item for leaf in _targets(value)]
    return [item]


class TaskOnKartDataset(AbstractDataset[Any, Any]):
    """Loads a kart task's output, building the task (and its upstreams) through kart_core when missing.

    Example ``conf/base/catalog.yml`` entry::

        features:
          type: kart_kedro.TaskOnKartDataset
          task: mypipeline.tasks.MakeFeatures
          params: {window: 7, source: {task: mypipeline.tasks.LoadData, params: {day: 2024-01-01}}}
          workspace_directory: data/kart   # optional; s3:// works
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> TaskOnKartDataset:
        """Refuse an entry key the constructor does not take, before Python's own words for it.

        Kedro's ``AbstractDataset.from_config`` calls the class with the entry's keys and answers a ``TypeError``
        with "unexpected keyword argument 'param'"; this names the key, the closest key it takes (``param`` ->
        ``params``), or, for a parameter of the task written beside ``task``, says to put it under ``params``.
        Pickle and copy call it with no arguments (nothing is checked then).

        Raises:
            DatasetError: an unknown key, or no ``task`` (Kedro adds the entry's name).
        """
        unknown = [key for key in kwargs if key not in _ENTRY_KEYS]
        if unknown:
            raise DatasetError(_unknown_keys(unknown, kwargs.get("task")))
        if kwargs and not args and "task" not in kwargs:
            raise DatasetError(
                "TaskOnKartDataset: the entry has no 'task' key; give it the dotted path of a TaskOnKart class "
                "(task: mypipeline.tasks.MakeFeatures)"
            )
        return super().__new__(cls)

    def __init__(
        self,
        task: str,
        params: Mapping[str, Any] | None = None,
        workspace_directory: str | os.PathLike[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Build the task object now, so a bad entry fails when the catalog creates it.

        Args:
            task: dotted path of a TaskOnKart subclass.
            params: its parameters, a mapping of parameter name to value; a task parameter is ``{task: ...,
                params: {...}}``. Values under keys ``path``/``filepath``/``filename`` that Kedro made absolute are
                taken relative to the project root again, so the task is the same from any checkout directory.
            workspace_directory: where outputs live, a folder path or URL (``str`` or ``os.PathLike``); default: the
                task's (luigi config or ./resources/).
            metadata: free-form information for plugins such as kedro-viz.

        Raises:
            DatasetError: a bad entry (unknown module, class or parameter, a value of the wrong type, ``params``
                not a mapping, ``workspace_directory`` not a path); Kedro adds the entry's name.
        """
        self._task_path = task
        try:
            self._params = undo_path_rewrite(params_mapping(task, params), project_root())
            self._workspace_directory = _workspace(workspace_directory)
            self.metadata = metadata
            self._task = task_from_config(task, self._params, self._workspace_directory)
        except TaskConfigError as exc:
            # Kedro adds "." and the entry's name after this message.
            raise DatasetError(f"TaskOnKartDataset: {str(exc).rstrip('.')}") from exc

    @property
    def task(self) -> kart_core.TaskOnKart[Any]:
        """The kart task whose output this dataset is, made from the entry again at each access.

        Not the task made when the catalog was created: a parameter its construction reads from outside (a
        ``RawFile``'s checksum of a file a node of this very run writes, a download) may have changed since, and
        the task made then would hand out the output of the content before (attacker at15 F6). Made again, it
        is the same task object (luigi's instance cache) while nothing changed.

        Raises:
            DatasetError: the entry no longer makes a task (a file it reads is gone).
        """
        try:
            self._task = task_from_config(self._task_path, self._params, self._workspace_directory)
        except (TaskConfigError, FileNotFoundError) as exc:
            raise DatasetError(f"TaskOnKartDataset: {str(exc).rstrip('.')}") from exc
        return self._task

    def load(self) -> Any:
        """The task's cached output; the task and its missing upstreams are built first if needed.

        The output's content hash is checked against its integrity record (as with ``verify_outputs``
        on), in whichever process loads it (a KartParallelRunner worker too): KartRunner keys a node
        reading this entry by that recorded hash, so the bytes handed to the node must be those. A
        damaged output is rebuilt under the task's lock and loaded again, as ``build()`` does for its
        roots.

        Raises:
            kart_core.errors.DamagedOutputError: the output differs from its record and repairs are off.
            kart_core.errors.IntegrityError: signing is on and refuses the output (never rebuilt).
        """
        task = self.ensure_built()
        with kart_core.verify_loads():
            return kart_core.load_output(task, repair=True)

    def ensure_built(self) -> kart_core.TaskOnKart[Any]:
        """Build the task (and its missing or stale upstreams) unless it is complete and built on a current lineage,
        so its output can be read; return it (``task``: made from the entry now).

        ``complete()`` judges the task's own inputs; an upstream stale further up (its own input committed again
        since) leaves it complete, so the lineage is asked too (``kart_core.stale_upstreams``) and a build brings
        it up to date first, as ``kart_core.build(task)`` returns (attacker at23 A1)."""
        task = self.task
        if not task.complete() or kart_core.stale_upstreams(task):
            self._build(task)
        return task

    def _build(self, task: kart_core.TaskOnKart[Any]) -> None:
        # Parallel Kedro workers may load datasets sharing an upstream: with each task's lock held while
        # it runs, one worker builds it and the others find it cached.
        kart_core.build(task, return_value=False, reset_register=False, lock=True)
        if not task.complete():
            # build(return_value=False) returns None, as gokart's, when only missing external inputs stopped it.
            missing = ", ".join(str(task) for task in _missing_inputs(task)) or "an external input"
            raise DatasetError(
                f"TaskOnKartDataset({task.kart_label()}) could not be built: {missing} is missing (a "
                "luigi.ExternalTask output nothing here can make); the tasks that do not need it were built. Put "
                "the input in place, then load again."
            )

    def save(self, data: Any) -> None:
        """Accept only the receipt of a kart node that built this very task; anything else is refused.

        Raises:
            DatasetError: for data (the entry is read-only), or for the receipt of another task,
                naming the first parameter in which the pipeline's task differs from this entry's.
        """
        if isinstance(data, KartReceipt):
            task = self.task  # made now: the receipt's task was made from the same values at this point of the run
            if data.node_key == kart_core.node_key(task):
                if task.complete():
                    return
                raise DatasetError(self._not_here(data))
            raise DatasetError(self._mismatch(data))
        raise DatasetError(
            f"TaskOnKartDataset({self._task.kart_label()}) is read-only: its data is the output of the kart task "
            f"{self._task_path}, written only by the task's run() so that the cache stays keyed by the task's "
            "parameters. Change 'params' (or the task's code) to get other data, or save to another dataset."
        )

    def _not_here(self, receipt: KartReceipt) -> str:
        """The pipeline's node built this very task, but this entry does not find its outputs: they went elsewhere
        (another workspace_directory: the unique id does not cover it)."""
        expected = [str(target.path()) for target in kart_core.utils.flatten(self._task.output())]
        written = list(receipt.paths)
        if written and written != expected:
            return (
                f"TaskOnKartDataset({self._task.kart_label()}): the pipeline's node wrote the task's output to "
                f"{', '.join(written)}, but this catalog entry reads {', '.join(expected)}: they are in two "
                "workspaces. Give the entry and the pipeline's tasks one workspace_directory (set it once in "
                "luigi.cfg's [TaskOnKart] section, or pass the same value to both), see docs/kedro.md."
            )
        return (
            f"TaskOnKartDataset({self._task.kart_label()}) got a receipt but the task is not complete: its outputs "
            f"{', '.join(expected)} are missing (deleted while the pipeline ran?). Run the pipeline again."
        )

    def _mismatch(self, receipt: KartReceipt) -> str:
        difference = first_difference(describe(self._task), receipt.task) if receipt.task else None
        where = ""
        if difference is not None:
            place, here, there = difference
            what = "the task class" if place == "task" else f"parameter {place!r}"
            where = f" They differ in {what}: {here!r} in the catalog, {there!r} in the pipeline."
        return (
            f"TaskOnKartDataset: the pipeline's task {receipt.label} is not this entry's task "
            f"{kart_core.task_text(self._task, max_depth=_MISMATCH_DEPTH)}.{where} Make the entry's params match the task "
            "given to to_pipeline(..., names=...), or give that edge another name."
        )

    def _exists(self) -> bool:
        return bool(self.task.complete())

    def preview(self) -> JSONPreview:
        """kedro-viz's preview panel: the task's class, label, parameters, unique id, output paths and state."""
        return task_preview(self._task)

    def _describe(self) -> dict[str, Any]:
        return {
            "task": self._task_path,
            "params": describe(self._task)["params"],
            "label": kart_core.task_text(self._task),
            "unique_id": self._task.make_unique_id(),
            "workspace_directory": str(self._task.workspace_directory),
            "filepath": ", ".join(str(target.path()) for target in _targets(self._task.output())),
        }


def _workspace(value: Any) -> str | None:
    """The entry's ``workspace_directory`` as a string (an ``os.PathLike`` turned into its path).

    Raises:
        TaskConfigError: neither None, a string nor a path-like object giving a string (a YAML number
            would otherwise become a folder named after it in the working directory).
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, os.PathLike):
        path = os.fspath(value)
        if isinstance(path, str):
            return path
    raise TaskConfigError(
        f"'workspace_directory' takes a folder path or URL as a string (data/kart, s3://bucket/kart); got "
        f"{type(value).__name__} {value!r}. Quote it in YAML if it is meant as a name"
    )


def _unknown_keys(unknown: list[str], task: Any) -> str:
    """What ``DatasetError`` says of entry keys TaskOnKartDataset does not take (``unknown``, in entry order)."""
    key = str(unknown[0])
    declared: set[str] = set()
    if isinstance(task, str):
        try:
            declared = set(import_task_class(task).get_param_names(include_significant=True))
        except TaskConfigError:
            pass  # the unknown key is the error named; a bad task is named once the key is fixed
    if key in declared:
        hint = f"; {key!r} is a parameter of task {task!r}: put it under 'params' (params: {{{key}: ...}})"
    else:
        close = difflib.get_close_matches(key, _ENTRY_KEYS, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
    more = f" (and {', '.join(map(repr, unknown[1:]))})" if len(unknown) > 1 else ""
    return (
        f"TaskOnKartDataset: the entry has no key {key!r}{hint}{more}. Its keys: type, {', '.join(_ENTRY_KEYS)}; "
        "the task's parameters go under 'params'"
    )


def _missing_inputs(task: Any) -> list[Any]:
    """The incomplete external tasks (no ``run()``: ``luigi.ExternalTask``) under ``task``'s incomplete requires."""
    import luigi.task

    found: list[Any] = []
    seen: set[str] = set()
    stack = [task]
    while stack:
        current = stack.pop()
        if current.task_id in seen or current.complete():
            continue
        seen.add(current.task_id)
        if getattr(current, "run", None) is None:
            found.append(current)
        else:
            stack.extend(luigi.task.flatten(current.requires()))
    return found
