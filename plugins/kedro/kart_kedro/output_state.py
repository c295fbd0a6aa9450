"""What a persistent catalog output holds right now, cheaply: file size, modification time and md5.

KartRunner never serves a cached node over data it did not write itself (docs/kedro.md, "Fresher
data is never overwritten"). When a node runs, the state of each persistent output is recorded;
before a cached node is served, the outputs' current states are compared with that record:

- same content: the catalog already holds the cached result; nothing is written (so a versioned
  dataset gets no new version);
- missing: the cached result is written back;
- other content that kart wrote for another run of the node (switching parameters back and forth):
  the cached result replaces it;
- anything else was written outside kart (a plain ``kedro run``, a hand edit): the node reruns.

A dataset with a file path (``_filepath``/``filepath``/``path``, versioned or not, local or fsspec)
that holds its data (``path_holds_data``: not a query dataset's SQL file, not a read-only dataset's path)
is read as bytes — and only when its size or modification time (locally also its status-change time,
``st_ctime_ns``, which no ``utime`` call can set back: an edit that restores size and mtime, a copy
with ``cp -p``/``rsync -a``, is read; on object storage also the store's content tokens, ``ETag``:
S3 keeps modification times in whole seconds) differ from the record; any other
dataset is loaded and its data digested (partition loaders called); data that cannot be digested
(a LazyFrame) counts as missing, so the cached result is written back.

The state also names the dataset's catalog definition (``dataset_config``: its type and the
constructor arguments and ``_describe()`` items that shape the bytes it writes, credentials left out). A cached node whose output's definition
changed (a CSV's ``sep``, JsonDataset -> PickleDataset at the same path) writes the cached result
back through the new definition, as a plain ``kedro run`` would rewrite the file.
"""

from __future__ import annotations

import dataclasses
import dis
import functools
import hashlib
import inspect
import json
import os
import posixpath
import re
import types
from collections.abc import Iterable, Iterator, Mapping
from pathlib import PurePath
from stat import S_ISDIR
from typing import Any

import kart_core
from kart_kedro.input_digest import data_digest
from kart_kedro.object_stamp import modified_ns, object_files, object_stamp_parts

__all__ = [
    "MISSING",
    "FileStamp",
    "appending_save",
    "OutputState",
    "current_state",
    "dataset_config",
    "file_stamp",
    "holds_state",
    "is_persistent",
    "lock_location",
    "path_holds_data",
]

_CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class OutputState:
    """A dataset's content at one moment.

    Attributes:
        md5: md5 hex of the file bytes (all files of a folder, with their relative paths), or of the
            loaded data for datasets without a path; "" when missing.
        size: bytes on storage (-1 for loaded data).
        mtime_ns: modification time in nanoseconds (newest file of a folder; -1 when unknown).
        config: ``dataset_config`` of the catalog definition that wrote it; "" when unknown (recorded
            by kart before 2026-11-30, or missing).
        ctime_ns: local files: the newest status-change time in nanoseconds; -1 for object storage,
            loaded data and states recorded before 2026-12-01 (those are read once more).
        etag: object storage: the store's content tokens of the files (S3 ``ETag``, GCS ``md5Hash`` or
            ``generation``), which a rewrite changes even within the same second and at the same size
            (S3 modification times are whole seconds); "" where the store gives none, for local files and
            for states recorded before 2026-12-01 17:00 UTC (those are read once more).
        listing: md5 hex of the files' relative names (a folder's listing; one name "" for a file): a
            partition deleted or renamed changes it even when sizes and times do not (an empty
            partition that was not the newest file); "" for loaded data and for states recorded before
            2026-12-01 18:45 UTC (those are read once more).
    """

    md5: str
    size: int = -1
    mtime_ns: int = -1
    config: str = ""
    ctime_ns: int = -1
    etag: str = ""
    listing: str = ""

    @property
    def missing(self) -> bool:
        """Whether the dataset has no data."""
        return not self.md5


MISSING = OutputState("")

# How a dataset is read: counts for its readers (``reading``), not for the bytes it writes (``open_args_load``:
# inside the ``fs_args`` a constructor takes, ``_constructor_arguments``).
_READING = frozenset({"load_args", "fs_open_args_load", "open_args_load"})
_SECRET = frozenset({"credentials"})
# Constructor arguments that are no part of a definition: ``metadata`` is free-form data for plugins and users
# (kedro-viz's layers and previews), which Kedro documents as ignored by Kedro (attacker at18 I11).
_NOT_DEFINITION = _SECRET | {"metadata"}
# _describe() items that do not shape the written bytes: where it is (the state is read there
# anyway; a checkout elsewhere must not count as a change), which version, and how it is read.
_NOT_WRITING = frozenset({"filepath", "path", "filename", "version"}) | _READING
# Attributes of kedro-datasets' file datasets (28 in 9.6.0: text, json, yaml, pillow, ...) that their
# _describe() leaves out: ``fs_args: {open_args_load: {encoding: ...}}`` decides the text a load
# returns, ``open_args_save`` the bytes a save writes.
_OPEN_ARGS = {"_fs_open_args_load": "fs_open_args_load", "_fs_open_args_save": "fs_open_args_save"}
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")  # reprs of objects without their own: not stable across runs


def dataset_config(dataset: Any, *, reading: bool = False) -> str:
    """md5 hex naming a catalog definition: the dataset's type, its constructor arguments
    (``_constructor_arguments``: what the catalog entry gave, credentials left out) and its ``_describe()``
    items (which win where both name one).

    For kedro-datasets' ``PartitionedDataset`` and ``IncrementalDataset``, whose ``_describe()`` (9.6.0)
    names only the path and the partition dataset, the options it leaves out count too
    (``_partitioned_options``): ``filename_suffix``, ``overwrite`` and ``filepath_arg`` (which files are
    written and read), and, as ``load_args``, the ``find()`` arguments and an IncrementalDataset's
    checkpoint (its type, its place inside the folder, ``force_checkpoint``, ``comparison_func``), which
    decide what a load returns. kart before 2026-12-01 17:00 UTC left them out: a changed
    ``filename_suffix`` kept a raw input's recorded digest and its readers cached over other partitions.
    Likewise a file dataset's ``fs_args`` ``open_args_load`` (for readers) and ``open_args_save``
    (``_OPEN_ARGS``): a changed ``encoding`` is other data.

    Args:
        dataset: a Kedro dataset.
        reading: also count ``load_args`` and ``open_args_load`` (what a node reading the dataset sees);
            without it, only what shapes the bytes the dataset writes (type, save args, format options).

    Paths and versions never count (see ``_NOT_WRITING``), at any depth of nested mappings: a
    dataset built from a nested definition (a wrapper's ``dataset: {type: ..., filepath: ...}``)
    often describes it as given, and Kedro makes such nested paths absolute too, so they would name
    the project's place, not its definition. A dataset whose ``_describe()`` raises is named by its
    type alone.
    """
    try:
        described = {**_constructor_arguments(dataset), **dict(dataset._describe())}
    except Exception:  # a third-party _describe that fails: the type and its constructor arguments still count
        described = _constructor_arguments(dataset)
    if _is_partitioned(dataset):
        described.update(_partitioned_options(dataset))
    for attribute, key in _OPEN_ARGS.items():
        value = getattr(dataset, attribute, None)
        if value is not None and key not in described:
            described[key] = value
    ignored = (_NOT_WRITING - _READING if reading else _NOT_WRITING) | _SECRET
    kept = {str(key): _without(value, ignored) for key, value in described.items() if str(key) not in ignored}
    kind = type(dataset)
    text = _CONFIG_JSON.encode([f"{kind.__module__}.{kind.__qualname__}", kept])
    return hashlib.md5(_ADDRESS.sub("", text).encode()).hexdigest()


# json.dumps(value, sort_keys=True, default=repr), without making an encoder per call (the same text: dumps makes
# this encoder and calls its encode).
_CONFIG_JSON = json.JSONEncoder(sort_keys=True, default=repr)


def _constructor_arguments(dataset: Any) -> dict[str, Any]:
    """The arguments the catalog built ``dataset`` with (Kedro 1.x: ``AbstractDataset.__init_subclass__`` keeps
    every argument of the class's ``__init__``, defaults included, as ``dataset._init_args``), without
    ``credentials`` (at any depth: a secret belongs in no key and no record), without ``metadata`` (at any depth:
    free-form data for plugins such as kedro-viz, ignored by Kedro; kart from 17:20 to 18:20 UTC on 2026-12-02
    counted it, so a metadata edit wrote outputs back) and without those left at None (an argument given as None
    and one not given are one definition).

    A hand-written dataset's ``_describe()`` often names its file only (Kedro's custom-dataset tutorial: path,
    version, protocol): kart before 2026-12-02 17:20 UTC keyed it by that, so ``key: a`` -> ``key: b`` on a dataset
    loading one key of a JSON file kept its readers cached on the old key's value (attacker at17 H9). Paths and
    versions are left out by ``dataset_config`` as for ``_describe()`` items.
    """
    arguments = getattr(dataset, "_init_args", None)
    if not isinstance(arguments, Mapping):
        return {}
    return {
        str(key): _without(value, _NOT_DEFINITION)
        for key, value in arguments.items()
        if value is not None and str(key) not in _NOT_DEFINITION
    }


def _is_partitioned(dataset: Any) -> bool:
    """Whether ``dataset`` is a kedro-datasets ``PartitionedDataset`` (``IncrementalDataset`` is one), by its classes'
    names: kart does not import kedro-datasets, which a project may not have installed."""
    return _partitioned_class(type(dataset))  # type: ignore[arg-type]  # a class is hashable (mypy: type[Any] is not)


@functools.lru_cache(maxsize=1024)
def _partitioned_class(kind: type) -> bool:
    """``_is_partitioned`` of an instance of ``kind``, asked once per class (each persistent output is asked per run,
    and its state several times); kept for the last 1,024 classes (a class defined again is a new key)."""
    return any(
        cls.__name__ == "PartitionedDataset" and cls.__module__.startswith("kedro_datasets.") for cls in kind.__mro__
    )


def _partitioned_options(dataset: Any) -> dict[str, Any]:
    """The options of a (kedro-datasets 9.x) PartitionedDataset or IncrementalDataset that its ``_describe()`` omits.

    ``load_args`` holds what decides which partitions a load returns and is not written: the ``find()``
    arguments and, for an IncrementalDataset, its checkpoint (the checkpoint's path relative to the
    folder, so the project's place does not count).
    """
    filepath_arg = str(getattr(dataset, "_filepath_arg", "filepath"))
    reading: dict[str, Any] = {"find": getattr(dataset, "_load_args", None)}
    checkpoint = getattr(dataset, "_checkpoint_config", None)
    if isinstance(checkpoint, Mapping):
        kept = {str(key): value for key, value in checkpoint.items() if key not in (filepath_arg, "credentials")}
        place = checkpoint.get(filepath_arg)
        base = str(getattr(dataset, "_normalized_path", getattr(dataset, "_path", "")))
        kept["place"] = posixpath.relpath(str(place), base) if place is not None and base else None
        comparison = getattr(dataset, "_comparison_func", None)
        reading["checkpoint"] = kept
        reading["force_checkpoint"] = getattr(dataset, "_force_checkpoint", None)
        reading["comparison_func"] = (
            f"{getattr(comparison, '__module__', '')}.{getattr(comparison, '__qualname__', '')}"
        )
    return {
        "filename_suffix": getattr(dataset, "_filename_suffix", ""),
        "overwrite": getattr(dataset, "_overwrite", None),
        "filepath_arg": filepath_arg,
        "load_args": reading,
    }


def _without(value: Any, ignored: frozenset[str]) -> Any:
    """``value`` with the ``ignored`` keys of every nested mapping left out (other values as they are)."""
    if not isinstance(value, Mapping):
        return value
    return {key: _without(item, ignored) for key, item in value.items() if str(key) not in ignored}


def is_persistent(dataset: Any) -> bool:
    """Whether a catalog entry keeps its data beyond the run (not a MemoryDataset and the like)."""
    return dataset is not None and not getattr(dataset, "_EPHEMERAL", False)


def appending_save(dataset: Any) -> str | None:
    """How ``dataset`` adds to what it holds on every save instead of replacing it (the words of a warning:
    ``appends to its file on every save (fs_args open_args_save mode 'a')``), or None.

    - a file dataset (kedro-datasets' text, json, yaml, ...) opened with ``fs_args: {open_args_save: {mode: a}}``
      appends what each save writes (pandas' CSVDataset writes through a buffer and replaces its file
      whatever its ``save_args`` ``mode``: not appending);
    - a table dataset saved with pandas' ``save_args: {if_exists: append}`` (kedro-datasets'
      ``pandas.SQLTableDataset``, ``pandas.GBQTableDataset``) adds the saved rows to the table.

    A node served from the cache would not append, so a cached run would leave the data unlike a plain
    ``kedro run`` (run the same day twice: Kedro's table holds its rows twice).

    A kedro-datasets ``PartitionedDataset`` (or ``IncrementalDataset``) appends to each partition file it
    saves when its partition dataset does (``dataset: {type: text.TextDataset, fs_args: {open_args_save:
    {mode: a}}}``): kart before 2026-12-01 18:45 UTC looked only at the folder dataset and served such a
    node, so the partition got no new line (attacker at6 D2).
    """
    if _is_partitioned(dataset):
        how = appending_save(_partition_dataset(dataset))
        return f"saves partitions with a dataset that {how}" if how else None
    open_args = getattr(dataset, "_fs_open_args_save", None)
    mode = open_args.get("mode") if isinstance(open_args, Mapping) else None
    if isinstance(mode, str) and mode.startswith("a"):
        return f"appends to its file on every save (fs_args open_args_save mode {mode!r})"
    save_args = getattr(dataset, "_save_args", None)
    if isinstance(save_args, Mapping) and save_args.get("if_exists") == "append":
        return "appends rows to its table on every save (save_args if_exists 'append')"
    return None


def _partition_dataset(dataset: Any) -> Any:
    """The dataset a PartitionedDataset saves one partition with (at a placeholder path in its folder), built
    as its ``save`` builds it; when that fails, a namespace holding the configured ``fs_args`` ``open_args_save``
    and ``save_args``."""
    config = dict(getattr(dataset, "_dataset_config", None) or {})
    try:
        config[str(getattr(dataset, "_filepath_arg", "filepath"))] = posixpath.join(str(dataset._path), "partition")
        return dataset._dataset_type(**config)
    except Exception:  # a partition dataset that needs more than its config to be built: its declared options
        fs_args = config.get("fs_args")
        open_args = fs_args.get("open_args_save") if isinstance(fs_args, Mapping) else None
        return types.SimpleNamespace(_fs_open_args_save=open_args, _save_args=config.get("save_args"))


def current_state(dataset: Any, recorded: OutputState | None = None) -> OutputState:
    """The state of ``dataset`` now; ``recorded`` is returned as is when size and times still match it.

    Args:
        dataset: a Kedro dataset (any AbstractDataset).
        recorded: the state recorded earlier, if any (saves reading the bytes when nothing changed).

    Raises:
        whatever the dataset's ``exists()``/``load()`` raise, for datasets without a path.
    """
    state = _content_state(dataset, recorded)
    return state if state.missing else dataclasses.replace(state, config=dataset_config(dataset))


def _content_state(dataset: Any, recorded: OutputState | None) -> OutputState:
    try:
        location = _location(dataset, newest=True)
    except _NoVersionYet:
        return MISSING
    if location is None:
        if not dataset.exists():
            return MISSING
        try:
            return OutputState(data_digest(dataset.load()))
        except (
            kart_core.errors.UndigestableError
        ):  # e.g. a LazyFrame: unknown content, so the cached result is written back
            return MISSING
    filesystem, path = location
    if filesystem is None:
        return _local_state(path, recorded)
    return _fsspec_state(filesystem, path, recorded, folder=_is_partitioned(dataset))


def lock_location(dataset: Any) -> str:
    """Where ``dataset`` keeps its data, as the key of the lock held while it is written and its state read
    (``kart_core.hold_location_locks``): a file or folder dataset's path (a versioned dataset's base path, shared
    by its versions: its newest one is its state), with its protocol on object storage; for any other dataset
    (a table, a query) ``kedro-dataset://`` and its definition (``dataset_config``), which names the table.
    """
    if _is_partitioned(dataset):
        text = str(dataset._path)
    else:
        path = next(_path_attributes(dataset), None) if path_holds_data(type(dataset)) else None
        if path is None:
            return "kedro-dataset://" + dataset_config(dataset)
        text = str(path)
        protocol = getattr(dataset, "_protocol", None)
        if protocol not in (None, "file", "local") and "://" not in text:
            text = f"{protocol}://{text}"
    return text[len("file://") :] if text.startswith("file://") else text


def holds_state(dataset: Any, state: OutputState) -> bool | None:
    """Whether a file dataset's files still have the sizes, times, names (and, on object storage, content tokens)
    they had when ``state`` was taken: no write since (a write sets the status-change time to now, which nothing
    sets back). None for a dataset without a file path (its state is a digest of its loaded data).

    One ``stat`` per local file, one metadata request or listing on object storage; the bytes are read only when
    they differ, or on a store that gives no modification times (then the content decides).
    """
    try:
        location = _location(dataset, newest=True)
    except _NoVersionYet:
        return False
    if location is None:
        return None
    filesystem, path = location
    if filesystem is None:
        now = _local_state(path, state)
    else:
        now = _fsspec_state(filesystem, path, state, folder=_is_partitioned(dataset))
    return now is state or (now.mtime_ns < 0 and now.md5 == state.md5)


class _NoVersionYet(Exception):
    """A versioned dataset with no saved version."""


def _location(dataset: Any, *, newest: bool = False) -> tuple[Any, str] | None:
    """(fsspec filesystem or None for local, path) of a file-based dataset, or None.

    Args:
        dataset: a Kedro dataset.
        newest: for a versioned dataset, the newest saved version even when a load version is pinned
            (``kedro run --load-versions model:V``): an output's state is what its producer saved last,
            not the version its readers load. Without it (raw inputs), the version a load reads.

    Raises:
        _NoVersionYet: for a versioned dataset that has no version yet.
    """
    if _is_partitioned(dataset):
        return _partitioned_location(dataset)
    if not path_holds_data(type(dataset)):
        return None
    if hasattr(dataset, "_get_load_path") and getattr(dataset, "_version", None):
        try:
            path: Any = _newest_path(dataset) if newest else None
            if path is None:
                path = dataset._get_load_path()  # the version a load reads: the pinned one, else the latest
        except Exception as exc:  # kedro's VersionNotFoundError (a DatasetError)
            raise _NoVersionYet(str(exc)) from exc
    else:
        path = next(_path_attributes(dataset), None)
    if path is None:
        return None
    filesystem = getattr(dataset, "_fs", None)
    protocol = getattr(dataset, "_protocol", None)
    if filesystem is None or protocol in (None, "file", "local"):
        text = str(path)
        return (None, text[len("file://") :] if text.startswith("file://") else text)
    from kedro.io.core import get_filepath_str

    return (filesystem, get_filepath_str(PurePath(str(path)), protocol))


def _newest_path(dataset: Any) -> Any:
    """The path of a versioned dataset's newest saved version when a load version is pinned, else None (the
    load path is that version then). kart before 2026-12-01 18:45 UTC compared a cached producer's record with
    the pinned version, an older one: the node reran ("holds data written outside kart") and, unpinned
    again, wrote another version from the cache (attacker at6 D6).

    Raises:
        kedro's VersionNotFoundError: no version saved yet.
    """
    if getattr(getattr(dataset, "_version", None), "load", None) is None:
        return None
    if not (hasattr(dataset, "_fetch_latest_load_version") and hasattr(dataset, "_get_versioned_path")):
        return None
    return dataset._get_versioned_path(dataset._fetch_latest_load_version())


def path_holds_data(kind: type) -> bool:
    """Whether a dataset class's file path (``_filepath``/``filepath``/``path``) is where its data lives.

    Not for a query dataset (a class named ``*QueryDataset``: kedro-datasets' ``pandas.SQLQueryDataset``,
    ``pandas.GBQQueryDataset``, ``spark.GBQQueryDataset``), whose ``filepath`` holds the query's text while
    the rows live in a database, nor for any read-only dataset, whose ``save`` (or legacy ``_save``) can only
    raise (``DatasetError("'save' is not supported ...")``, ``NotImplementedError``: its bytecode has no
    return): kart cannot tell what such a path stands for. Those are loaded and digested on every run, as
    datasets without a path are. kart before 2026-12-01 18:30 UTC stamped a SQLQueryDataset's query file,
    so rows added to the database left its readers cached (attacker at6 D5).

    Args:
        kind: the dataset's class (the answer is kept per class).
    """
    return _path_holds_data(kind)


@functools.lru_cache(maxsize=256)
def _path_holds_data(kind: Any) -> bool:
    if any(cls.__name__.endswith("QueryDataset") for cls in kind.__mro__):
        return False
    save = getattr(kind, "_save", None) or getattr(kind, "save", None)
    code = getattr(inspect.unwrap(save), "__code__", None) if callable(save) else None
    if code is None:
        return True
    return any(instruction.opname.startswith("RETURN") for instruction in dis.get_instructions(code))


def _partitioned_location(dataset: Any) -> tuple[Any, str]:
    """(fsspec filesystem or None for local, folder) of a PartitionedDataset: its ``path`` keeps the protocol
    (``s3://bucket/parts``), and its file system is ``_filesystem``, not ``_fs``. kart before 2026-12-01
    17:00 UTC took an ``s3://`` folder for a local path that never exists: a cached node's partitions on
    object storage counted as missing, so every cached run wrote them all again, over any written outside kart.
    """
    path = str(dataset._path)
    if getattr(dataset, "_protocol", "file") in (None, "file", "local"):
        return (None, path[len("file://") :] if path.startswith("file://") else path)
    filesystem = dataset._filesystem
    return (filesystem, filesystem._strip_protocol(str(getattr(dataset, "_normalized_path", path))))


@dataclasses.dataclass(frozen=True)
class FileStamp:
    """What the file system says of a file dataset's files, without reading them.

    Attributes:
        key: md5 hex of the path (relative to the project root when inside it, see ``file_stamp``) and,
            per file, its relative name, inode, size, modification and status-change times in
            nanoseconds (any write, rename, replace or ``utime`` changes it); on object storage of the URL
            and, per object, its relative name, size, modification time and content token
            (``object_stamp``: S3 ``ETag``/``VersionId``, GCS ``generation``/``md5Hash``/``crc32c``).
        newest_ns: the newest modification or status-change time among the files, in nanoseconds
            since the epoch (what a "racy" check compares with the time a digest was recorded); on object
            storage the newest modification time the store reports (its clock).
        written: md5 hex as ``key`` without the status-change times (local files): two stamps whose ``key`` differs
            and whose ``written`` is the same differ only by a ``chmod``, ``chown`` or hard link, or by a write
            that set the modification time back (only the content tells which); ``key`` on object storage.
    """

    key: str
    newest_ns: int
    written: str = ""


def file_stamp(dataset: Any, root: str | os.PathLike[str] | None = None) -> FileStamp | None:
    """The stamp of a local file (or folder) dataset as it is now; None for any other dataset or a missing file.

    Args:
        dataset: a Kedro dataset.
        root: the Kedro project root. A path inside it is stamped relative to it, so a project moved
            or renamed as a whole (``mv``, the same folder mounted elsewhere, another user's path to
            it) keeps its stamps; a path outside it (or every path, with no root) by its absolute path.

    Dropping the project's place costs no trust: the stamp still holds each file's inode and its
    status-change time, which the kernel sets to "now" on every write, rename or ``utime`` and which
    no call sets back; another file with the same relative name elsewhere (a clone, a copy, another
    checkout) differs in them, so its content is read, never assumed.

    Versioned datasets are stamped at the version a load would read.

    On object storage (``s3://``, ``gs://``) the stamp is what the store's metadata says of each object
    (``object_stamp``: S3 ``ETag`` and ``VersionId``, GCS ``generation``, ``md5Hash`` and ``crc32c``, with
    sizes and modification times), from one listing per folder or one request per file, so a cached run
    downloads no raw input. None where that metadata cannot identify the content (another file system, an
    object without a token): the caller reads the data. kart before 2026-12-01 20:30 UTC stamped no object
    storage: every run downloaded every raw input on it to digest it.
    """
    try:
        location = _location(dataset)
    except _NoVersionYet:
        return None
    if location is None:
        return None
    if location[0] is not None:
        return _object_stamp(location[0], location[1], folder=_is_partitioned(dataset))
    path = location[1]
    try:
        files = sorted(_local_files(path))
    except FileNotFoundError:
        return None
    if not files:
        return None
    parts = [(relative, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns) for relative, _, stat in files]
    newest = max(max(stat.st_mtime_ns, stat.st_ctime_ns) for _, _, stat in files)
    place = _stamped_path(path, root)
    written = hashlib.md5(repr((place, [part[:4] for part in parts])).encode()).hexdigest()
    return FileStamp(hashlib.md5(repr((place, parts)).encode()).hexdigest(), newest, written)


def _object_stamp(filesystem: Any, path: str, *, folder: bool) -> FileStamp | None:
    """The stamp of objects at ``path`` on ``filesystem``: its URL and, per object, the store's metadata.

    The racy rule still applies (``NodeRecords.RACY_NS`` against the newest modification time): an object
    rewritten back to earlier bytes during a read (S3 gives such a rewrite the same ETag) is read again next run.
    """
    found = object_stamp_parts(filesystem, path, folder=folder)
    if found is None:
        return None
    parts, newest = found
    protocol = filesystem.protocol if isinstance(filesystem.protocol, str) else filesystem.protocol[0]
    key = hashlib.md5(repr((f"{protocol}://{path}", parts)).encode()).hexdigest()
    return FileStamp(key, newest, key)


def _stamped_path(path: str, root: str | os.PathLike[str] | None) -> str:
    """``path`` relative to ``root`` (POSIX separators) when inside it, else absolute."""
    absolute = os.path.abspath(path)
    if root is None:
        return absolute
    base = os.path.abspath(root)
    if os.path.commonpath([absolute, base]) != base:
        return absolute
    return PurePath(os.path.relpath(absolute, base)).as_posix()


def _path_attributes(dataset: Any) -> Iterator[Any]:
    for name in ("_filepath", "filepath", "_path", "path"):
        value = getattr(dataset, name, None)
        if isinstance(value, str | PurePath) and str(value):
            yield value


def _local_state(path: str, recorded: OutputState | None) -> OutputState:
    try:
        files = sorted(_local_files(path))
    except FileNotFoundError:
        return MISSING
    if not files:
        return MISSING
    size = sum(stat.st_size for _, _, stat in files)
    mtime = max(stat.st_mtime_ns for _, _, stat in files)
    # ctime too: restoring a hand edit's mtime (os.utime with nanoseconds, touch -r) sets ctime to now.
    ctime = max(stat.st_ctime_ns for _, _, stat in files)
    # The names too: deleting an empty file that is not the newest one leaves size and times as they were.
    listing = _listing(relative for relative, _, _ in files)
    current = (size, mtime, ctime, listing)
    if recorded is not None and (recorded.size, recorded.mtime_ns, recorded.ctime_ns, recorded.listing) == current:
        return recorded
    hasher = hashlib.md5()
    for relative, full, _ in files:
        hasher.update(relative.encode() + b"\0")
        with open(full, "rb") as handle:
            for chunk in iter(lambda: handle.read(_CHUNK), b""):
                hasher.update(chunk)
    return OutputState(hasher.hexdigest(), size, mtime, ctime_ns=ctime, listing=listing)


def _local_files(path: str) -> Iterator[tuple[str, str, os.stat_result]]:
    """(name relative to ``path``, full path, ``os.stat``) of each file of a file or folder, symlinked
    sub-folders followed (``_walk``): pyarrow's dataset discovery (``pandas.ParquetDataset`` on a folder)
    reads their files, so their stamp counts. kart before 2026-12-02 did not follow them: an edit of a linked
    file kept the stamp and the node was served the old result (attacker at10 K4).

    Raises:
        FileNotFoundError: ``path`` does not exist, or a file in it is a broken link.
    """
    stat = os.stat(path)
    if not S_ISDIR(stat.st_mode):  # os.path.isdir's answer from this stat (it would stat the path again)
        yield ("", path, stat)
        return
    yield from _walk(path, "", {(stat.st_dev, stat.st_ino)})


def _walk(folder: str, relative: str, ancestors: set[tuple[int, int]]) -> Iterator[tuple[str, str, os.stat_result]]:
    """The files under ``folder`` (named ``relative`` under the walked path), links followed; one ``scandir``
    per folder walked, so O(files + folders). ``ancestors``: ``(st_dev, st_ino)`` of the real folders on the
    current path, ``folder``'s included. A link to one of them is a loop and is skipped; a link to a folder
    walked elsewhere is walked again under its own name, as the loader reads its files under that name too
    (kart before 2026-12-02 01:30 UTC skipped a link whose target held a folder walked before, depending on the
    listing order, and compared each link with every earlier one: attacker at12 A2, A8). A folder that cannot
    be listed is skipped, as ``os.walk`` does."""
    try:
        with os.scandir(folder) as listing:
            entries = list(listing)
    except OSError:
        return
    for entry in entries:
        name = os.path.join(relative, entry.name)
        if not entry.is_dir():  # a file, a link to one, or a broken link (its os.stat raises FileNotFoundError)
            yield (name, entry.path, os.stat(entry.path))
            continue
        stat = entry.stat()  # the real folder's (entry.stat follows a link)
        real = (stat.st_dev, stat.st_ino)
        if real in ancestors:
            continue
        ancestors.add(real)
        yield from _walk(entry.path, name, ancestors)
        ancestors.discard(real)


def _fsspec_state(filesystem: Any, path: str, recorded: OutputState | None, *, folder: bool) -> OutputState:
    # object_files drops the file system's listing cache (s3fs and gcsfs keep listings: a write by another client
    # since, a hand edit, must be seen) and asks once: one metadata request for a file, one listing for a folder
    # (kart before 2026-12-01 20:45 UTC asked exists, then find, which for a file lists and then asks again).
    files = [(relative or ".", info) for relative, info in object_files(filesystem, path, folder=folder)]
    if not files:
        return MISSING
    size = sum(int(info.get("size") or 0) for _, info in files)
    mtime = max(modified_ns(info) for _, info in files)
    etag = _etags(files)
    listing = _listing(relative for relative, _ in files)
    # S3 modification times are whole seconds: a rewrite of the same size within the second keeps both,
    # so where the store gives content tokens they must match too; the names, for an empty file deleted.
    current = (size, mtime, etag, listing)
    if (
        recorded is not None
        and mtime >= 0
        and (recorded.size, recorded.mtime_ns, recorded.etag, recorded.listing) == current
    ):
        return recorded
    hasher = hashlib.md5()
    for relative, _ in files:
        hasher.update(relative.encode() + b"\0")
        with filesystem.open(posixpath.join(path, relative) if relative != "." else path, "rb") as handle:
            for chunk in iter(lambda: handle.read(_CHUNK), b""):
                hasher.update(chunk)
    return OutputState(hasher.hexdigest(), size, mtime, etag=etag, listing=listing)


def _listing(names: Iterable[str]) -> str:
    """md5 hex of the relative file names, in the order given (sorted by the callers)."""
    return hashlib.md5("\0".join(names).encode()).hexdigest()


_TOKEN_KEYS = ("ETag", "etag", "md5Hash", "generation")  # s3fs, adlfs, gcsfs: set anew by every write


def _etags(files: list[tuple[str, dict[str, Any]]]) -> str:
    """The stores' content tokens of ``files`` (name, info), one per file in order; "" when the store gives none."""
    tokens = [next((str(info[key]) for key in _TOKEN_KEYS if info.get(key)), "") for _, info in files]
    return "|".join(tokens) if any(tokens) else ""
