"""Reading other runs' logs without stopping on a bad one: what ``kart runs``, ``why``, ``tree`` and the report use.

Light on purpose (no luigi, no pandas at import): ``kart runs`` reads thousands of logs at start-up.
A local ``.pkl`` log is read with ``pickle`` (gokart writes plain dicts, floats and lists with
dill, whose bytes are standard pickles); anything else, and any pickle that ``pickle`` cannot
load (a lambda stored in a task log by dill), is read through kart's target, as ``load()`` does.
"""

from __future__ import annotations

import logging
import os
import pickle
import stat
from typing import Any, TypeVar

from kart_core.signing import ENVIRONMENT_VARIABLE as SIGNING_KEY_VARIABLE
from kart_core.storage import storage_for
from kart_core.storage.base import protocol_of
from kart_core.workspace import luigi_config_may_set

__all__ = ["one_line", "plain_pickle_allowed", "read_log_safely"]

logger = logging.getLogger("kart_core.runlog")  # the writer's logger: one name for messages about run logs
_T = TypeVar("_T")


def read_log_safely(
    path: str, default: _T, expected: type | tuple[type, ...] = object, plain_pickle: bool | None = None
) -> Any:
    """The value stored in the run log at ``path``, for tools that read other runs' logs (``kart runs``, ``tree``).

    A workspace may hold files kart cannot read: foreign or damaged files with a log's name, a pickle
    of a class that no longer exists, a folder or a pipe named like a log. None of them may stop a
    listing, so this never raises: a missing log gives ``default``; an unreadable one, or a value that
    is not an instance of ``expected``, gives ``default`` and a one-line warning naming the path.

    ``plain_pickle``: whether a local ``.pkl`` may be read with ``pickle`` (``plain_pickle_allowed()``;
    None: ask it now). A reader of thousands of logs asks once.
    """
    try:
        if not _is_file(path):
            return default
        value = _load(path, plain_pickle_allowed() if plain_pickle is None else plain_pickle)
    except Exception as exc:
        logger.warning("skipping unreadable run log %s: %s", path, one_line(exc))
        return default
    if not isinstance(value, expected):
        logger.warning("skipping run log %s: it holds a %s, not what kart writes there", path, type(value).__name__)
        return default
    return value


def _load(path: str, plain_pickle: bool) -> Any:
    """The value in the log at ``path``: plain pickle for a local ``.pkl`` when allowed, else (or if that fails) kart's target."""
    local = path[len("file://") :] if path.startswith("file://") else path
    if plain_pickle and not protocol_of(path) and local.endswith(".pkl"):
        try:
            with open(local, "rb") as file:
                return pickle.load(file)
        except Exception:  # dill-only objects, or a damaged file: the target says which (and warns)
            pass
    from kart_core.target import make_target  # luigi and the file processors, only for what pickle cannot read

    return make_target(path).load()


def plain_pickle_allowed() -> bool:
    """Whether run logs may be read with plain ``pickle``: only when signing is surely off.

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
