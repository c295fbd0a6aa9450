"""Every exception kart raises: a leaf module that any layer may import.

Messages name the task (class and unique id), the path or parameter, and what to do.
The gokart 1.12.2 names (GokartBuildError, HasLockedTaskException, PandasTypeError,
EmptyDumpError) are kept so `except gokart.errors.X` code keeps working.

Where gokart 1.12.2 raises a builtin exception for the same mistake (an ``assert``, a dict
lookup, an ``open()`` of a missing file), kart's error also derives from that builtin, so
``except AssertionError`` / ``KeyError`` / ``FileNotFoundError`` / ``TypeError`` code written for
gokart still catches it. docs/migration.md lists each error with the builtins it extends.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable
from typing import Any

__all__ = [
    "KartError",
    "GokartBuildError",
    "MissingInputBuildError",
    "HasLockedTaskException",
    "TaskLockException",
    "PandasTypeError",
    "EmptyDumpError",
    "LoadError",
    "LoadAssertionError",
    "LoadAttributeError",
    "LoadEOFError",
    "LoadImportError",
    "LoadIndexError",
    "LoadKeyError",
    "LoadOSError",
    "LoadRuntimeError",
    "LoadTypeError",
    "LoadValueError",
    "MissingOutputError",
    "DumpError",
    "NoSpaceError",
    "StagedOutputLostError",
    "OutputTypeError",
    "UnsupportedObjectError",
    "UnloadableObjectError",
    "UnknownFormatError",
    "TaskDefinitionError",
    "SourceUnavailableError",
    "RunWriteError",
    "TurnDeadlockError",
    "UnrequiredTaskError",
    "InputKeyError",
    "OutputKeyError",
    "RequiresError",
    "UnfulfilledDependencyError",
    "MissingColumnsError",
    "DataFrameInputError",
    "ParameterTypeError",
    "TaskParameterTooLargeError",
    "WorkspacePathError",
    "WorkspaceNotFoundError",
    "ConfigFormatError",
    "SettingValueError",
    "IntegrityError",
    "DamagedOutputError",
    "ForeignOutputError",
    "ConcurrentCommitError",
    "InputChangedError",
    "SigningKeyError",
    "StaleTaskError",
    "RoundLimitError",
    "PluginError",
    "CleanupError",
    "TaskSpecError",
    "AdapterError",
    "ProcessPoolFallbackWarning",
    "AmbiguousParameterWarning",
    "IgnoredSettingWarning",
    "UnsupportedFeatureError",
    "LockSettingError",
    "InMemoryKeyError",
    "MissingExtraError",
    "StorageConfigError",
    "UnknownSchemeError",
    "UndigestableError",
    "FingerprintError",
    "WorkerDiedError",
    "UnsendableTaskError",
    "LockUnavailableError",
    "MarkerLostError",
    "UnsafeFolderError",
]


class KartError(Exception):
    """Base class of every error kart raises on its own."""


class GokartBuildError(KartError):
    """A build failed; `raised_exceptions` maps each failed task's unique id to its exceptions."""

    def __init__(self, message: str, raised_exceptions: dict[str, list[Exception]]) -> None:
        super().__init__(message)
        self.raised_exceptions = raised_exceptions

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled with both arguments: the default passes the message only, so unpickling raised TypeError, and a
        # multiprocessing Pool whose job raised this (a build in a worker process) lost its result thread and
        # never answered .get() without a timeout.
        return (type(self), (str(self.args[0]) if self.args else "", self.raised_exceptions), self.__dict__)


class MissingInputBuildError(GokartBuildError, FileNotFoundError):
    """A build failed only because external inputs (``luigi.ExternalTask`` outputs) are missing.

    Also a ``FileNotFoundError``: gokart's ``build()`` finishes such a build and then fails to load the root's
    output that could not be made, with ``FileNotFoundError``.
    """

    def __new__(cls, message: str = "", raised_exceptions: dict[str, list[Exception]] | None = None) -> Any:
        # OSError's constructor reads two arguments as (errno, strerror): pass the message only.
        return super().__new__(cls, message)

    def __init__(self, message: str, raised_exceptions: dict[str, list[Exception]]) -> None:
        super().__init__(message, raised_exceptions)


class TaskLockException(KartError):
    """Another process holds the lock of a task's output."""


class HasLockedTaskException(KartError):
    """A build gave up waiting for tasks locked by another process."""


class PandasTypeError(KartError):
    """A dumped DataFrame's column has a type other than the one PandasTypeConfig declares."""


class EmptyDumpError(KartError, AssertionError):
    """A task dumped an empty DataFrame while fail_on_empty_dump is set.

    An AssertionError, as gokart 1.12.2's EmptyDumpError is (gokart/task.py).
    """


class LoadError(KartError):
    """An output could not be read back.

    gokart lets the reader's own exception through (pandas' ``ValueError`` for a ``.json`` it cannot
    parse, ``EOFError`` for a cut pickle), so ``LoadError(...)`` made while such an exception is being
    handled (``except ... as exc: raise LoadError(...) from exc``, as kart's targets do) is also that
    exception's builtin: an instance of ``LoadValueError``, ``LoadEOFError``, … (each a LoadError and the
    builtin), and ``except ValueError`` code written for gokart still catches it. A reader's error that is
    none of those builtins (``zipfile.BadZipFile``) gives a plain LoadError, as does one made outside a
    handler; subclasses (MissingOutputError, DamagedOutputError, …) are never swapped.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> LoadError:
        if cls is LoadError:
            cls = _load_error_class_of(sys.exc_info()[1])
        return super().__new__(cls, *args, **kwargs)  # type: ignore[no-any-return]


class LoadValueError(LoadError, ValueError):
    """A LoadError whose reader raised a ValueError (bad JSON, an Arrow file it cannot parse, bad text)."""


class LoadTypeError(LoadError, TypeError):
    """A LoadError whose reader raised a TypeError."""


class LoadKeyError(LoadError, KeyError):
    """A LoadError whose reader raised a KeyError."""

    __str__ = Exception.__str__  # KeyError would print the message in quotes


class LoadIndexError(LoadError, IndexError):
    """A LoadError whose reader raised an IndexError."""


class LoadAttributeError(LoadError, AttributeError):
    """A LoadError whose reader raised an AttributeError (a pickle of a class its module no longer has)."""


class LoadEOFError(LoadError, EOFError):
    """A LoadError whose reader raised an EOFError (a cut pickle)."""


class LoadOSError(LoadError, OSError):
    """A LoadError whose reader raised an OSError (other than a missing file: MissingOutputError)."""


class LoadImportError(LoadError, ImportError):
    """A LoadError whose reader raised an ImportError (a pickle of a class from a module not installed)."""


class LoadRuntimeError(LoadError, RuntimeError):
    """A LoadError whose reader raised a RuntimeError."""


class LoadAssertionError(LoadError, AssertionError):
    """A LoadError whose reader raised an AssertionError (an ``assert`` in a gokart processor)."""


# The builtin a reader's exception derives from (first in its MRO) -> the LoadError that is also it.
_LOAD_ERRORS_BY_BUILTIN: dict[type[BaseException], type[LoadError]] = {
    ValueError: LoadValueError,
    TypeError: LoadTypeError,
    KeyError: LoadKeyError,
    IndexError: LoadIndexError,
    AttributeError: LoadAttributeError,
    EOFError: LoadEOFError,
    OSError: LoadOSError,
    ImportError: LoadImportError,
    RuntimeError: LoadRuntimeError,
    AssertionError: LoadAssertionError,
}


def _load_error_class_of(cause: BaseException | None) -> type[LoadError]:
    """The LoadError subclass that is also the builtin ``cause`` derives from; LoadError when there is none."""
    for klass in type(cause).__mro__ if cause is not None else ():
        found = _LOAD_ERRORS_BY_BUILTIN.get(klass)
        if found is not None:
            return found
    return LoadError


class MissingOutputError(LoadError, FileNotFoundError):
    """An output to load does not exist (gokart lets ``open()`` raise FileNotFoundError)."""


class DumpError(KartError):
    """An object could not be written to an output."""


class NoSpaceError(DumpError, OSError):
    """A write ran out of room: the disk is full (``ENOSPC``) or the user's quota is used up (``EDQUOT``).

    Names the task and the file, and says to free space and build again; what the failed write
    created (a temporary file, a claimed manifest) is removed first. Also an ``OSError``, the
    builtin that a full disk raises in gokart.
    """

    @staticmethod
    def caused_by(exc: BaseException) -> bool:
        """Whether ``exc`` is an OSError of a full disk or a used-up quota."""
        return isinstance(exc, OSError) and exc.errno in _NO_SPACE_ERRNOS

    @staticmethod
    def raised_as(message: Callable[[OSError], str]) -> _RaisedAsNoSpace:
        """Within the body, a full disk or used-up quota raises ``NoSpaceError(message(exc))`` from it;
        other errors pass unchanged.

        Raises:
            NoSpaceError: the body raised an OSError of a full disk or quota (``caused_by``).
        """
        return _RaisedAsNoSpace(message)


class StagedOutputLostError(DumpError, FileNotFoundError):
    """A task's staged output (its ``.kart-tmp`` file, or the staged object on S3/GCS) vanished before the commit
    moved it into place: ``kart gc --temp-age`` shorter than the run, or another process removed it.

    Names the task, the staged file and the output; nothing of the task is committed, so building again runs it.
    Also a ``FileNotFoundError``, what the store raised.
    """


class _RaisedAsNoSpace:
    """``NoSpaceError.raised_as``'s context manager: a class, not a ``contextlib.contextmanager`` (every commit
    enters one per manifest it writes, where a generator-based one cost three times the calls)."""

    __slots__ = ("_message",)

    def __init__(self, message: Callable[[OSError], str]) -> None:
        self._message = message

    def __enter__(self) -> None:
        return None

    def __exit__(self, _type: object, exc: BaseException | None, _traceback: object) -> None:
        if isinstance(exc, OSError) and NoSpaceError.caused_by(exc):
            raise NoSpaceError(self._message(exc)) from exc


# EDQUOT is missing on some platforms (Windows).
_NO_SPACE_ERRNOS = frozenset(code for code in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if code is not None)


class UnsupportedObjectError(DumpError, TypeError, AssertionError):
    """The format of an output cannot hold the dumped object: a list to ``.csv``, a dict to ``.npz``, a
    DataFrame whose index is named "None" to ``.feather``.

    gokart 1.12.2 raises TypeError from its pandas processors and fails an ``assert`` in its xml, npz and
    feather processors; this error is both, so either ``except`` keeps working.
    """


class UnloadableObjectError(UnsupportedObjectError, ValueError):
    """The format would write the object but could not load it back (a pandas Series to ``.json``), so the dump is
    refused: a committed output that no load can read would count as complete. gokart 1.12.2 writes it and its
    load raises a ValueError; this error is also one, so an ``except ValueError`` around both keeps working."""


class UnknownFormatError(KartError, ValueError, AssertionError):
    """No FileProcessor is known for a file extension (gokart 1.12.2 fails an ``assert`` there)."""


class TaskDefinitionError(KartError, TypeError):
    """A task class is written in a way kart cannot run (e.g. requires() returns a non-task)."""


class SourceUnavailableError(TaskDefinitionError, OSError):
    """``serialized_task_definition_check`` needs the source of a task's own method and Python cannot read it
    (defined by ``exec``, ``python -``, ``python -c``, or shipped as ``.pyc`` only); an ``OSError`` as gokart's."""


class RunWriteError(TaskDefinitionError):
    """A write of a task's output that cannot join the task's run in progress: made from a child process of
    the process running it, after ``run()`` returned, or while two runs of the same task object are open."""


class TurnDeadlockError(TaskDefinitionError):
    """A thread asked for a task's turn (to build or run it) while the thread holding that turn (the task's run)
    waits for it to finish (``Thread.join``, ``Future.result``, ...): each would wait for the other forever.

    Typically a task's ``run()`` starts a thread that builds the same task (or a task that needs it) and joins it.
    A ``TaskDefinitionError``: the task's code builds the task inside its own run.
    """


class UnrequiredTaskError(KartError, ValueError, AssertionError):
    """A task loaded the output of a task that is not in its requires() (gokart fails an ``assert``)."""


class InputKeyError(UnrequiredTaskError, KeyError):
    """``load('key')`` names no entry of a dict requires() (gokart's dict lookup raises KeyError)."""

    # KeyError would print the message in quotes, as the repr of a key.
    __str__ = Exception.__str__


class OutputKeyError(TaskDefinitionError, KeyError, AssertionError):
    """``dump(obj, key)`` cannot tell which output to write: the key is not in a dict output(), a key was
    given for a single output, or no key for a dict output() (gokart: KeyError or a failed ``assert``)."""

    __str__ = Exception.__str__


class UnfulfilledDependencyError(KartError, RuntimeError):
    """A task was about to run while one of its requirements, whose class overrides ``complete()`` (a quality gate:
    ``super().complete() and <a check of the output>``), says it is still incomplete after its run. luigi's worker
    refuses likewise (``RuntimeError: Unfulfilled dependency at run time``)."""


class OutputTypeError(TaskDefinitionError, AttributeError):
    """``output()`` returned something that is not a target (a path string, None): names the task and the value.

    Also an AttributeError, what gokart 1.12.2 raises at the first ``exists()`` of such a value."""


class RequiresError(TaskDefinitionError, ValueError):
    """requires() holds something that is not a task (gokart raises ValueError computing the unique id)."""


class MissingColumnsError(KartError, ValueError, AssertionError):
    """``load_data_frame(required_columns=...)`` loaded a DataFrame without some of those columns.

    Also an AssertionError: gokart's last ``load_data_frame`` asserted the columns."""


class DataFrameInputError(KartError, TypeError, ValueError, AttributeError):
    """``load_data_frame`` loaded neither a DataFrame, nor a dict of one entry holding one, nor a list of them.

    A TypeError; also a ValueError (pandas' error for concatenating an empty list of inputs) and an
    AttributeError (what gokart's last ``load_data_frame`` raised for a dict of several inputs)."""


class ParameterTypeError(KartError, TypeError):
    """A TaskInstanceParameter received a value of the wrong type, or a value has no string form
    for the unique id (a numpy scalar in a ``ListParameter``)."""


class TaskParameterTooLargeError(KartError, ValueError):
    """A TaskInstanceParameter's serialized value (part of the unique id) is over kart's size limit."""


class WorkspacePathError(KartError, ValueError):
    """A relative output path would leave the workspace directory."""


class WorkspaceNotFoundError(KartError, FileNotFoundError):
    """A command that inspects a workspace found nothing at its path (a mistyped ``-w`` must not read as
    a clean, empty workspace)."""


class ConfigFormatError(KartError, ValueError):
    """A luigi config file luigi would not read as written (a ``.toml`` file while luigi's parser is cfg)."""


class SettingValueError(KartError, ValueError):
    """A kart setting (an environment variable or a ``[TaskOnKart]`` option) holds a value kart cannot read,
    e.g. ``integrity_record = Ture``: a typo must not switch a safeguard off. Also a task parameter's value
    in luigi's config that the parameter cannot parse (``kart_core.param_plan``)."""


class IntegrityError(LoadError):
    """Signing is on and an output's signature is missing, wrong, or not the one its task committed:
    kart refuses to load it (nothing of it is deserialized)."""


class DamagedOutputError(LoadError):
    """An output's size (or, with verify on, content hash) differs from what its task committed, or its
    task's manifest cannot be read.

    Attributes:
        path: the damaged file's full path (the output's; the manifest's for kind "manifest"); None
            when not known.
        kind: "size", "hash", "manifest" or "owner" (``ForeignOutputError``) (what differs), or "unfinished" (an
            output without an integrity record that a run of its task left without finishing: its start-of-run
            logs are there, its task log is not); "" when not known.
        commit: the commit id the manifest recorded for the output (None for kind "manifest").
        detail: one line saying what differs (``15 bytes were committed, found 5 bytes``).

    The attributes let ``run_one`` rebuild a damaged upstream and tell whether another worker already
    did (``kart_core.repair``); they survive pickling (a process worker's error reaches the caller whole).
    """

    def __init__(
        self, message: str, *, path: str | None = None, kind: str = "", commit: str | None = None, detail: str = ""
    ) -> None:
        super().__init__(message)
        self.path = path
        self.kind = kind
        self.commit = commit
        self.detail = detail


class ForeignOutputError(DamagedOutputError):
    """The output was committed by another task class of the same name (``module.Class`` differs, kind
    "owner"): gokart's layout gives same-named classes with equal parameters the same unique id, output
    path (``make_target``) and manifest file. Handled as damage: a build rebuilds it for the class that
    asks (repairs on), so one class never loads the other's result."""


class ConcurrentCommitError(LoadError):
    """A task's outputs could not be read from one commit: another process's commit (a rerun, a repair), or a
    program outside kart writing to them, kept replacing them while they were read (``kart_core.commit_marker``)."""


class InputChangedError(LoadError):
    """A file no integrity record vouches for (a raw file dropped in by hand, gokart's output) was replaced or
    changed while a running task loaded it (a new data drop landing during the read): what the task loaded cannot
    be told from what the file holds, so the run fails instead of recording one beside the other's result.

    Attributes:
        path: the file's full path (local path or URL); None when not known (the default keeps the error
            picklable: a process worker's error reaches the caller whole).
    """

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class SigningKeyError(KartError, ValueError):
    """The configured signing key cannot be used (e.g. it is empty)."""


class StaleTaskError(KartError):
    """A task rebuilt from its import path and parameters has another unique id than expected."""


class RoundLimitError(KartError):
    """A build stopped at its round cap with a root still built on content its own commits replaced.

    Each round of ``kart_core.build`` committed other content for something another task had loaded, so
    the lineage never settled (tasks that load each other's outputs, or one whose output changes at every
    run). Each such root fails with it; the message names the cap, the roots and the tasks of the last round.
    """


class PluginError(KartError):
    """A kart plugin cannot be used: it implements an unknown hook or a hook with the wrong arguments."""


class CleanupError(KartError, ValueError):
    """A workspace clean-up (``kart gc``, ``delete_local_unnecessary_outputs``) was asked for something it cannot do."""


class TaskSpecError(KartError):
    """A task named on the command line (``kart run module.Class --param value``) cannot be found or created."""


class AdapterError(KartError, RuntimeError):
    """A scheduler adapter (kart_airflow, kart_kedro) cannot run or cache a task where it was called."""


class ProcessPoolFallbackWarning(UserWarning):
    """A build asked for worker processes runs on threads: a task class cannot be pickled."""


class AmbiguousParameterWarning(UserWarning):
    """A significant parameter holds a value whose string form (what the unique id covers) does not hold the whole
    value (a DataFrame, a large array): two different values can share one id, and so one cached output."""


class IgnoredSettingWarning(UserWarning):
    """A gokart setting kart has no equivalent for was set (e.g. a ``[gokart_worker]`` key); it names the key."""


class UnsupportedFeatureError(KartError, NotImplementedError):
    """A gokart name that kart keeps importable but cannot honour was used; the message says what to use instead."""


class LockSettingError(KartError, AssertionError):
    """Task lock parameters that cannot work (``redis_timeout`` not above ``lock_extend_seconds``; gokart asserted),
    or a relative ``KART_LOCK_DIR``."""


class InMemoryKeyError(KartError, KeyError, AssertionError):
    """No in-memory output under a key: a ``KeyError`` as gokart's load, an ``AssertionError`` as gokart's remove."""

    def __str__(self) -> str:
        # KeyError's str() quotes its argument; the message reads better as plain text.
        return str(self.args[0]) if self.args else ""


class MissingExtraError(KartError, ImportError):
    """An optional dependency is missing (S3, GCS, ...): an ``ImportError`` naming the kart-suite extra to install."""


class StorageConfigError(KartError, ValueError):
    """A storage setting cannot be used (e.g. ``[GCSConfig]``'s credential variable holds neither a file path nor JSON)."""


class UnknownSchemeError(KartError, ValueError):
    """A path or URL (``workspace_directory``, an output path) whose scheme no storage serves: ``foo://x``.

    The message names the URL, the scheme and the schemes kart serves (``SUPPORTED``); ``whose`` adds who
    uses it (``the workspace of Train[3f2ac1e0]``). A ``ValueError``, as fsspec's "Protocol not known" is.

    Attributes:
        url: the path or URL as given.
        scheme: its scheme, e.g. ``"foo"``.
    """

    SUPPORTED = "local file paths (or file://), s3://, gs://, memory:// (and protocols of installed fsspec plugins)"

    def __init__(self, url: str, scheme: str, whose: str = "") -> None:
        self.url, self.scheme, self.whose = url, scheme, whose
        named = f"{whose} {url!r}" if whose else repr(url)
        super().__init__(f"No storage for {named}: the scheme '{scheme}://' is unknown. Supported: {self.SUPPORTED}.")

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled with its arguments, not the message (which ``__init__`` does not take): see GokartBuildError.
        return (type(self), (self.url, self.scheme, self.whose), self.__dict__)

    def of(self, whose: str) -> UnknownSchemeError:
        """The same error naming who uses the URL (``whose``, e.g. ``the workspace of Train[3f2ac1e0]``)."""
        return UnknownSchemeError(self.url, self.scheme, whose)


class UndigestableError(KartError, TypeError):
    """A value whose content ``content_digest`` cannot capture: a lazy or streaming object (a polars
    LazyFrame, a generator, an open file, a callable such as a partition loader) or one that cannot be
    pickled. Its pickle, if any, holds a recipe or a reference, not the data it stands for.

    Attributes:
        kind: what the value is, e.g. ``"a polars LazyFrame"``.
        path: where it sits inside the digested value, outermost first (``["['a.csv']"]``); empty at the top.
    """

    def __init__(self, kind: str, path: list[str] | None = None) -> None:
        super().__init__(kind)
        self.kind = kind
        self.path = path if path is not None else []

    def __str__(self) -> str:
        where = f" at {''.join(self.path)}" if self.path else ""
        return (
            f"kart cannot digest {self.kind}{where}: its content is read lazily or is not picklable, so no digest "
            "of it can tell old data from new. Pass the data itself (e.g. a collected DataFrame), or do not key a "
            "cache by this value."
        )


class FingerprintError(KartError, RecursionError):
    """Python's stack ran out while kart fingerprinted code (the caller was already deep, or a value
    is nested deeper than the stack allows): names the code fingerprinted and the piece it was reading.

    Attributes:
        root: ``module.qualname`` of the function or class fingerprinted.
        where: ``module.qualname`` (``module.NAME`` for a value) of the innermost piece being read; None if not known.
    """

    def __init__(self, root: str, where: str | None, limit: int) -> None:
        super().__init__(root, where, limit)
        self.root, self.where, self.limit = root, where, limit

    def __str__(self) -> str:
        inside = f" while reading {self.where}" if self.where and self.where != self.root else ""
        return (
            f"Fingerprinting the code of {self.root} ran out of Python's stack ({self.limit:,} frames){inside}. "
            "Call it from a shallower stack, raise sys.setrecursionlimit(), or pin the code with "
            "@kart_core.code_version('1') (Kedro: the node tag kart_code_version.1)."
        )


class WorkerDiedError(KartError):
    """The worker process running a task died (a signal such as SIGKILL from the OOM killer, or ``os._exit``).

    Raised for that task only: the process pool is recreated and the tasks that merely shared the
    broken pool are run again. Nothing the dead task staged was committed (luigi fails a task whose
    worker process died the same way).

    Attributes:
        pid: the dead worker process's id; None when not known.
        exitcode: its exit code as ``multiprocessing`` reports it (``-9``: killed by signal 9); None when not known.
    """

    def __init__(self, message: str, *, pid: int | None = None, exitcode: int | None = None) -> None:
        super().__init__(message)
        self.pid = pid
        self.exitcode = exitcode


class UnsendableTaskError(KartError):
    """A task failed in a worker process with an exception that cannot travel back to the caller.

    The exception does not pickle (an attribute holds a lock, a socket...) or does not unpickle (its
    ``__init__`` takes other arguments than it passes to ``Exception.__init__``), so the worker sends
    this error instead, built from it.

    Attributes:
        type_name: the original exception's ``module.qualname`` (``mypkg.tasks.QuotaError``).
        original_message: ``str()`` of the original exception.
        remote_traceback: its traceback in the worker process, formatted (``traceback.format_exception``).
    """

    def __init__(
        self, message: str, *, type_name: str = "", original_message: str = "", remote_traceback: str = ""
    ) -> None:
        super().__init__(message)
        self.type_name = type_name
        self.original_message = original_message
        self.remote_traceback = remote_traceback


class MarkerLostError(KartError):
    """A run could not keep its marker its own: the heartbeat that rewrites it (a by-path writer's, or a commit's in
    progress) failed for two beats in a row, or another process removed or replaced it (``kart_core.commit_marker.Pulse``).

    A marker left to age is taken for a dead writer's by a run on another host, which then undoes this run's files
    and writes the task itself: the run fails instead of committing over it. Names the task, the marker and the cause.
    """


class UnsafeFolderError(KartError, PermissionError):
    """A folder on the way to a file that kart would remove or move (a killed run's files undone by ``complete()``,
    ``kart verify --delete``) is a symbolic link owned by another user than this process's (and not root), or
    leads to a folder owned by one: kart does not act through it (``kart_core.confine``).

    Attributes:
        folder: the folder as walked from the workspace (workspace-relative, e.g. ``sub`` or ``a/b``).
        owner: the uid that owns the link (``what`` "link") or the folder it leads to (``what`` "target").
    """

    def __init__(self, folder: str, owner: int, what: str, doing: str = "") -> None:
        self.folder = folder
        self.owner = owner
        self.what = what
        whose = "a symbolic link" if what == "link" else "a symbolic link to a folder"
        super().__init__(
            f"{doing + ': its path goes through ' if doing else ''}{folder!r}, {whose} owned by user {owner} (not this process's user {os.geteuid()}, nor root): kart "
            "follows a symlinked folder of a workspace only when the link and the folder it leads to are yours or "
            "root's. If you made it (a folder on a bigger disk), give it to yourself: `chown -h` the link and "
            "`chown` its target; otherwise remove the link (another user may have planted it)"
        )


class LockUnavailableError(KartError, ConnectionError):
    """A task's lock service (redis at ``redis_host``/``redis_port``) cannot be reached, or a file lock's
    folder cannot be used (a file in its place, no permission: ``kart_core.lock``).

    A ``ConnectionError`` as the redis client's own error is, so ``except ConnectionError`` keeps working.
    """
