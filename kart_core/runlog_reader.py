"""Reading other runs' logs without stopping on a bad one: what ``kart runs``, ``why``, ``tree`` and the report use.

Light on purpose (no luigi, no pandas at import): ``kart runs`` reads thousands of logs at start-up.
A ``.pkl`` log is read as plain data only (``kart_core.safe_pickle``; gokart writes plain dicts,
floats and lists with dill, whose bytes are standard pickles) unless signing is on: a workspace may
be shared, and listing it must never run code from a file in it. A log holding more (a lambda a
task put in its task_log) is skipped with a warning; with signing on, logs are verified, then read
in full through kart's target, as ``load()`` does.
"""

from __future__ import annotations

import logging
import os
import stat
from datetime import datetime
from typing import Any, TypeVar

from kart_core.safe_pickle import loads_plain_data
from kart_core.signing import ENVIRONMENT_VARIABLE as SIGNING_KEY_VARIABLE
from kart_core.signing import HEADER_SIZE, is_sealed
from kart_core.storage import storage_for
from kart_core.storage.base import protocol_of
from kart_core.workspace import LogKind, log_name, luigi_config_may_set

__all__ = [
    "BUILT_AT",
    "built_at",
    "compact_value",
    "load_log_value",
    "one_line",
    "plain_pickle_allowed",
    "read_log_safely",
]

logger = logging.getLogger("kart_core.runlog")  # the writer's logger: one name for messages about run logs
_T = TypeVar("_T")
# The compact task log's key of when the run finished (seconds since the epoch): written at the commit of a
# ``kart_compact_run_logs`` run by ``kart_core.runlog`` alone (kart_kedro's node runs too; the adapter reads it
# through ``built_at``, the facade's ``run_built_at``). The
# file times cannot tell it: a manifest holding the run record is written again after the run (a load recording
# a new version of an output), so ``kart runs`` and ``kedro kart list`` read this key.
BUILT_AT = "kart_built_at"


def read_log_safely(
    path: str, default: _T, expected: type | tuple[type, ...] = object, plain_pickle: bool | None = None
) -> Any:
    """The value stored in the run log at ``path``, for tools that read other runs' logs (``kart runs``, ``tree``).

    A workspace may hold files kart cannot read: foreign or damaged files with a log's name, a pickle
    of a class that no longer exists, a folder or a pipe named like a log. None of them may stop a
    listing, so this never raises: a missing log gives ``default``; an unreadable one, or a value that
    is not an instance of ``expected``, gives ``default`` and a one-line warning naming the path.

    ``plain_pickle``: whether signing is surely off (``plain_pickle_allowed()``; None: ask it now), so a
    ``.pkl`` is read as plain data without looking at luigi's config. A reader of thousands of logs asks once.
    """
    try:
        if not _is_file(path):
            return default
        value = load_log_value(path, plain_pickle)
    except Exception as exc:
        logger.warning("skipping unreadable run log %s: %s", path, one_line(exc))
        return default
    if not isinstance(value, expected):
        logger.warning("skipping run log %s: it holds a %s, not what kart writes there", path, type(value).__name__)
        return default
    return value


def compact_value(task_log: object, kind: LogKind, expected: type | tuple[type, ...], default: _T) -> Any:
    """The value of run log ``kind`` that a compact task log carries (``kart_core.runlog``: ``kart_compact_run_logs``).

    ``default`` when ``task_log`` is not a dict or holds no value of type ``expected`` under ``kind.name``.
    """
    value = task_log.get(kind.name) if isinstance(task_log, dict) else None
    if value is None or isinstance(value, bool) or not isinstance(value, expected):
        return default
    return value


def built_at(task_log: object) -> datetime | None:
    """When the run of a compact ``task_log`` finished (``BUILT_AT``), local time; None when it does not say
    (a task log of kart before 2026-12-02, whose node runs recorded it only since 2026-12-01, or not a dict)."""
    seconds = task_log.get(BUILT_AT) if isinstance(task_log, dict) else None
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return None
    try:
        return datetime.fromtimestamp(seconds)
    except (OverflowError, OSError, ValueError):  # a hand-edited record: no time rather than no listing
        return None


def load_log_value(path: str, plain_pickle: bool | None = None) -> Any:
    """The value in the run log at ``path``, loaded without running code from the file.

    Without signing a ``.pkl`` log is unpickled as plain data only (``kart_core.safe_pickle``: dicts,
    lists, strings, numbers, dates, numpy scalars; gokart's logs are that, whether pickle or dill
    wrote them), so a file planted in a shared workspace cannot run code when a tool lists it. With
    signing on, the file's signature is checked and the value loaded as any output is.
    ``plain_pickle``: ``plain_pickle_allowed()`` when the caller asked it already (None: ask now).

    Raises:
        pickle.UnpicklingError: signing is off and the pickle names more than plain data.
        FileNotFoundError: no file at ``path`` (signing off); kart's LoadError with signing on.
    """
    if path.endswith(".pkl"):
        signing_off = plain_pickle_allowed() if plain_pickle is None else plain_pickle
        if not signing_off:  # a config file may set a key: ask luigi's config itself
            from kart_core.signing import signer_from_config

            signing_off = signer_from_config() is None
        if signing_off:
            data = _read_bytes(path)
            # A log sealed while signing was on (off now): the pickle follows the header.
            return loads_plain_data(data[HEADER_SIZE:] if is_sealed(data) else data)
    from kart_core.target import make_target  # luigi and the file processors: only for text logs and signed ones

    target = make_target(path, name=log_name(path))  # signed under its workspace-relative name
    target.what = "run log"  # a refusal or a parse error names it so, not "the output"
    return target.load()


def _read_bytes(path: str) -> bytes:
    if protocol_of(path):
        with storage_for(path).open_read(path) as file:
            return file.read()
    with open(path[len("file://") :] if path.startswith("file://") else path, "rb") as file:
        return file.read()


def plain_pickle_allowed() -> bool:
    """Whether signing is surely off (no key in the environment, none possible in luigi's config files),
    so run logs are read as plain data without reading luigi's config.

    With a signing key (``KART_SIGNING_KEY`` or ``[TaskOnKart] signing_key``) every byte kart
    deserializes is verified first, which the target's load does.
    """
    return not os.environ.get(SIGNING_KEY_VARIABLE) and not luigi_config_may_set("signing_key")


def _is_file(path: str) -> bool:
    """Whether ``path`` holds a file to read; raises OSError for a local entry that is not a regular file."""
    if protocol_of(path):
        return storage_for(path).exists(path)
    local = path[len("file://") :] if path.startswith("file://") else path
    try:
        if stat.S_ISREG(os.stat(local).st_mode):  # one system call for the usual case (kart runs reads thousands)
            return True
    except OSError:
        if not os.path.lexists(local):
            return False
    # a folder, a pipe (reading it would block), a dangling link
    raise OSError(f"not a regular file ({_kind_of(local)})")


def _kind_of(local: str) -> str:
    if os.path.isdir(local):
        return "a folder"
    return "a dangling link" if os.path.islink(local) and not os.path.exists(local) else "a special file"


def one_line(exc: BaseException) -> str:
    """``Type: message`` of ``exc`` on one line (messages of chained load errors span several)."""
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
