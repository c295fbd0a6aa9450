"""The targets a task makes: its outputs, model zips, large-DataFrame zips and run logs.

``TaskOnKart.make_target`` and friends delegate here. Where they live is the layout's business
(``kart_core.workspace``: the default relative path, the workspace join, ``_{unique_id}`` before
the extension, the run-log paths); this module picks formats and hands the task's settings on.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from kart_core import workspace
from kart_core.contract import KartTask
from kart_core.dotted import MAIN_MODULE, module_name
from kart_core.errors import WorkspacePathError
from kart_core.file_processor import DataFrameType, FileProcessor, make_file_processor
from kart_core.hashing import short_id
from kart_core.manifest import OutputRecord
from kart_core.target import LargeDataFrameProcessor, TargetOnKart
from kart_core.target import make_model_target as _model_target
from kart_core.target import make_target as _target
from kart_core.task_memo import memo_of

__all__ = [
    "TargetOwner",
    "dataframe_type",
    "get_dataframe_type_from_task",
    "log_target",
    "make_large_data_frame_target",
    "make_model_target",
    "make_target",
    "sibling_record",
    "sibling_target",
    "workspace_file",
]


class TargetOwner(KartTask, Protocol):
    """A kart task with gokart's feather setting: what making its targets reads."""

    store_index_in_feather: bool


def make_target(
    task: TargetOwner,
    relative_file_path: str | None = None,
    use_unique_id: bool = True,
    processor: FileProcessor[Any] | None = None,
    record: bool = True,
) -> TargetOnKart:
    """``{workspace}/{relative_file_path}`` (default: ``{module path}/{Class}.pkl``), id before the extension.

    The format follows the extension (a polars task's DataFrames stay polars) unless ``processor`` is
    given. With ``record`` the output's size and hash go into the task's manifest when written.

    Raises:
        WorkspacePathError: the path is absolute or leaves the workspace with ``..``.
        UnknownFormatError: no FileProcessor serves the extension.
    """
    relative = (
        relative_file_path if relative_file_path is not None else workspace.default_output_path(type(task), ".pkl")
    )
    file_path = _in_workspace(task, relative)
    label = task.kart_label()
    if processor is None and relative_file_path is not None:
        processor = make_file_processor(
            file_path,
            store_index_in_feather=task.store_index_in_feather,
            dataframe_type=dataframe_type(type(task)),
            task_label=label,
        )
    unique_id = task.make_unique_id() if use_unique_id else None
    found = _record(task, relative, unique_id, label) if record else None
    target = _target(
        file_path,
        unique_id=unique_id,
        processor=processor,
        store_index_in_feather=task.store_index_in_feather,
        owner=label,
        record=found,
        name=_signing_name(relative, unique_id) if found is None else None,
    )
    if record:  # an output (not a run log): a dump or path request from a thread of its run joins that run
        target.task_memo = memo_of(task)
    return target


def sibling_target(
    task: TargetOwner,
    unique_id: str,
    relative_file_path: str,
    processor: FileProcessor[Any],
    file_path: str | None = None,
) -> TargetOnKart:
    """``make_target(sibling, relative_file_path, processor=processor)`` of the sibling of ``task`` whose unique id is
    ``unique_id``, without making the sibling: a task of ``type(task)`` with ``task``'s settings (workspace, run logs,
    redis) that differs from it in significant parameters only. The same path, integrity record and owner label;
    no task memo, so the target joins no run (a completeness check's view, which reads committed outputs only).
    ``file_path``: ``workspace_file(task, relative_file_path)`` when the caller has it.

    Raises:
        WorkspacePathError: the path is absolute or leaves the workspace with ``..``.
    """
    found = sibling_record(task, unique_id, relative_file_path)
    label = f"{type(task).__name__}[{short_id(unique_id)}]"
    return _target(
        file_path if file_path is not None else workspace_file(task, relative_file_path),
        unique_id=unique_id,
        processor=processor,
        store_index_in_feather=task.store_index_in_feather,
        owner=label,
        record=found,
        name=_signing_name(relative_file_path, unique_id) if found is None else None,
    )


def sibling_record(task: TargetOwner, unique_id: str, relative_file_path: str) -> OutputRecord | None:
    """The integrity record of ``sibling_target(task, unique_id, relative_file_path, ...)``, without the target.

    The same record as ``_record`` makes for the sibling; what every sibling shares with ``task`` (its workspace,
    manifest folder, redis settings and owner; whether it writes records at all) is read from ``task`` once and kept
    on it (``_SiblingParts``): an adapter checking many siblings by one task (KartRunner's cached nodes) asked for
    them again per output, a fifth of checking a cached node in a new process. A task's parameters never change
    after it is made, and these are the settings its own targets take once too (``task_memo``).
    """
    parts = task.__dict__.get("_kart_sibling_parts")
    if parts is None:
        parts = task.__dict__["_kart_sibling_parts"] = _SiblingParts(task)
    if not parts.recorded:
        return None
    return OutputRecord(
        workspace=parts.workspace,
        manifest_name=f"{parts.manifest_base}_{unique_id}{parts.manifest_extension}",
        key=workspace.relative_key(workspace.with_unique_id(relative_file_path, unique_id)),
        task=f"{parts.class_name}[{short_id(unique_id)}]",
        unique_id=unique_id,
        redis=parts.redis,
        owner=parts.owner,
    )


class _SiblingParts:
    """What ``_record`` reads of a task that every sibling's record shares (``sibling_record``)."""

    __slots__ = ("class_name", "manifest_base", "manifest_extension", "owner", "recorded", "redis", "workspace")

    def __init__(self, task: Any) -> None:
        self.recorded = bool(task.should_dump_supplementary_log_files)
        self.class_name = type(task).__name__
        self.workspace = str(task.workspace_directory)
        # with_unique_id(log_relative_path(MANIFEST, Class), uid) is the part before the extension, "_", the id, then
        # the extension: split once here (``log_relative_path`` with the id splits it per call).
        self.manifest_base, self.manifest_extension = os.path.splitext(
            workspace.log_relative_path(workspace.MANIFEST, self.class_name)
        )
        self.redis = _redis_settings(task.redis_host, task.redis_port, task.redis_timeout)
        self.owner = owner_name(type(task))


def make_large_data_frame_target(
    task: KartTask, relative_file_path: str | None = None, use_unique_id: bool = True, max_byte: int = int(2**26)
) -> TargetOnKart:
    """A zip of pickled chunks of about ``max_byte`` bytes (default path ``{module path}/{Class}.zip``), recorded
    in the task's manifest as any output (none with ``should_dump_supplementary_log_files=False``)."""
    relative = (
        relative_file_path if relative_file_path is not None else workspace.default_output_path(type(task), ".zip")
    )
    unique_id = task.make_unique_id() if use_unique_id else None
    label = task.kart_label()
    # An integrity record as a model zip's: a signed zip binds the commit its manifest records, so an
    # older version copied back is refused (without one it verified: the MAC bound only name and content).
    found = _record(task, relative, unique_id, label)
    target = _model_target(
        _in_workspace(task, relative),
        temporary_directory=task.local_temporary_directory,
        save_function=LargeDataFrameProcessor(max_byte=max_byte).save,
        load_function=LargeDataFrameProcessor.load,
        unique_id=unique_id,
        owner=label,
        record=found,
        name=_signing_name(relative, unique_id) if found is None else None,
    )
    target.task_memo = memo_of(task)
    return target


def make_model_target(
    task: KartTask,
    relative_file_path: str,
    save_function: Callable[[Any, str], None],
    load_function: Callable[[str], Any],
    use_unique_id: bool = True,
) -> TargetOnKart:
    """A zip holding what ``save_function(model, path)`` wrote; ``load_function(path)`` reads it back.

    Raises:
        WorkspacePathError: the path does not end with ``.zip`` or leaves the workspace.
    """
    if not relative_file_path.endswith("zip"):
        raise WorkspacePathError(
            f"{type(task).__name__}.make_model_target: the path must end with .zip, got {relative_file_path!r}"
        )
    unique_id = task.make_unique_id() if use_unique_id else None
    label = task.kart_label()
    found = _record(task, relative_file_path, unique_id, label)
    target = _model_target(
        _in_workspace(task, relative_file_path),
        temporary_directory=task.local_temporary_directory,
        save_function=save_function,
        load_function=load_function,
        unique_id=unique_id,
        owner=label,
        record=found,
        name=_signing_name(relative_file_path, unique_id) if found is None else None,
    )
    target.task_memo = memo_of(task)
    return target


def log_target(task: TargetOwner, kind: workspace.LogKind) -> TargetOnKart:
    """The run log of ``kind`` of ``task`` (``workspace.log_relative_path``), with the task's unique id.

    Run logs are not outputs: they have no integrity record. With signing on they are signed under
    their workspace-relative path, as outputs are (``TargetOnKart.signing_name``).
    """
    target = make_target(task, workspace.log_relative_path(kind, type(task).__name__), record=False)
    target.what = f"{kind.name} run log"  # messages name it so: a refused or unreadable log is no output
    return target


def _signing_name(relative: str, unique_id: str | None) -> str:
    """The workspace-relative path a record-less target's signature binds: its record's key would be the same."""
    return workspace.relative_key(workspace.with_unique_id(relative, unique_id))


def _record(
    task: KartTask, relative: str, unique_id: str | None, label: str, task_id: str | None = None
) -> OutputRecord | None:
    """Where the integrity record of the output at ``relative`` lives: the task's manifest (``task_id``: the
    unique id of the task it belongs to, ``task``'s by default; ``sibling_target``'s sibling's otherwise).

    None when the task writes nothing under ``log/`` (``should_dump_supplementary_log_files=False``):
    its outputs then load unchecked, as gokart's do.
    """
    if not task.should_dump_supplementary_log_files:
        return None
    class_name = type(task).__name__
    if task_id is None:
        task_id = task.make_unique_id()
    return OutputRecord(
        workspace=str(task.workspace_directory),  # the manifest is log_task_path(task, MANIFEST)
        manifest_name=workspace.log_relative_path(workspace.MANIFEST, class_name, task_id),
        key=workspace.relative_key(workspace.with_unique_id(relative, unique_id)),
        task=label,  # the target's owner string, not a second copy
        unique_id=task_id,
        redis=_redis_settings(task.redis_host, task.redis_port, task.redis_timeout),
        owner=owner_name(type(task)),
    )


def owner_name(task_class: type) -> str:
    """``module.QualifiedName`` of a task class: what its manifest entries record as their owner.

    A class defined in the script Python runs (``__main__``) is named by the module that script is
    when imported (``main_module_name``): ``python pipeline.py`` and ``import pipeline`` define the
    same class, and an output one of them committed is not foreign to the other. Computed once per
    class (kept on the class, as ``dataframe_type``): a graph keeps one record per output.
    """
    cached = task_class.__dict__.get("_kart_owner_name")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    module = module_name(task_class)  # a spawned child's __mp_main__ is the parent's __main__
    if module == MAIN_MODULE:
        module = main_module_name() or module
    name = f"{module}.{task_class.__qualname__}"
    type.__setattr__(task_class, "_kart_owner_name", name)
    return name


def main_module_name() -> str | None:
    """The dotted name under which the running script (``__main__``) is imported elsewhere; None if unknown.

    ``python -m pkg.mod`` records it in ``__main__.__spec__``; ``python path/to/mod.py`` does not: the
    name is the file's, prefixed by the packages (folders with ``__init__.py``) that hold it, as
    ``python -m`` from the folder above them would import it. None for an interactive session or ``-c``.
    """
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name:
        return str(spec.name)  # ``-m pkg`` runs (and imports as) ``pkg.__main__``
    file = getattr(main, "__file__", None)
    if not file:
        return None
    script = Path(file).resolve()
    parts = [script.stem]
    folder = script.parent
    while (folder / "__init__.py").is_file() and folder.parent != folder:
        parts.insert(0, folder.name)
        folder = folder.parent
    return ".".join(parts) if all(part.isidentifier() for part in parts) else None


@functools.lru_cache(maxsize=64)
def _redis_settings(host: str | None, port: int | None, timeout: int) -> tuple[str | None, int | None, int]:
    """One shared tuple per distinct setting (every output record of a 100,000-task graph holds one)."""
    return (host, port, timeout)


def workspace_file(task: KartTask, relative: str) -> str:
    """Where ``task``'s output at ``relative`` lives, before ``_{unique_id}`` is added (``workspace.workspace_path``).

    Raises:
        WorkspacePathError: the path is absolute or leaves the workspace with ``..``.
    """
    return workspace.workspace_path(str(task.workspace_directory), relative, owner=type(task).__name__)


_in_workspace = workspace_file


def get_dataframe_type_from_task(task: Any) -> DataFrameType:
    """gokart's ``get_dataframe_type_from_task``: ``dataframe_type`` of a task instance or class."""
    return dataframe_type(task if isinstance(task, type) else type(task))


def dataframe_type(task_class: type) -> DataFrameType:
    """'polars' / 'polars-lazy' when the class is declared ``TaskOnKart[pl.DataFrame]`` / ``[pl.LazyFrame]``.

    Computed once per class (kept on the class as ``_kart_dataframe_type``).
    """
    cached = task_class.__dict__.get("_kart_dataframe_type")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    kind: DataFrameType = "pandas"
    for klass in task_class.__mro__:
        for base in getattr(klass, "__orig_bases__", ()):
            for arg in getattr(base, "__args__", ()):
                module = getattr(arg, "__module__", "") or ""
                if module.split(".")[0] == "polars":
                    kind = "polars-lazy" if getattr(arg, "__name__", "") == "LazyFrame" else "polars"
                    break
    type.__setattr__(task_class, "_kart_dataframe_type", kind)
    return kind
