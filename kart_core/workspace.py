"""The cache layout, owned in one place: where a task's outputs and run logs live, and how to list them.

gokart 1.12.2's layout (kart reads and writes the same bytes at the same names):

- default output: ``{workspace}/{module path}/{Class}_{unique_id}{ext}``;
  ``make_target(relative)``: ``{workspace}/{relative with _{unique_id} before the extension}``;
- run logs: ``{workspace}/log/{kind}/{Class}_{unique_id}{ext}`` for the five ``LOG_KINDS``, plus
  kart's integrity manifest (``MANIFEST``; ``KART_LOG_KINDS`` holds all six);
- files whose name ends with ``TEMPORARY_SUFFIX`` are writes in progress (or leftovers of
  killed writers), never outputs.

The default workspace is resolved here too (``default_workspace``), and a workspace is listed
through ``Storage.walk`` (``list_files``), on local disk and object storage alike.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import posixpath
import re
import sys
from collections.abc import Iterable
from datetime import datetime

from kart_core.contract import KartTask
from kart_core.dotted import module_name
from kart_core.errors import SettingValueError, WorkspaceNotFoundError, WorkspacePathError
from kart_core.storage.base import TEMPORARY_SUFFIX, FileEntry, is_temporary, protocol_of, storage_for

__all__ = [
    "BUILTIN_WORKSPACE",
    "DEFAULT_TEMP_AGE",
    "LOG_DIRECTORY",
    "KART_LOG_KINDS",
    "LOG_KINDS",
    "MANIFEST",
    "MODULE_VERSIONS",
    "PROCESSING_TIME",
    "RANDOM_SEED",
    "TASK_LOG",
    "TASK_PARAMS",
    "TEMPORARY_SUFFIX",
    "WORKSPACE_ENVIRONMENT_VARIABLE",
    "FileEntry",
    "LogKind",
    "default_output_path",
    "examine",
    "file_exists",
    "is_scratch_folder",
    "default_workspace",
    "environment_workspace",
    "is_kart_named",
    "is_temporary",
    "join_url",
    "list_files",
    "log_kind",
    "log_name",
    "log_path",
    "log_relative_path",
    "log_task_path",
    "logged_unique_ids",
    "named_run",
    "scratch_folders",
    "parse_log_name",
    "parse_log_relative",
    "relative_key",
    "run_logs",
    "with_unique_id",
    "workspace_path",
    "luigi_config_may_set",
    "missing_part",
    "require_workspace",
    "workspace_exists",
]

WORKSPACE_ENVIRONMENT_VARIABLE = "KART_WORKSPACE"
BUILTIN_WORKSPACE = "./resources/"
LOG_DIRECTORY = "log"
_CONFIG_SECTION = "TaskOnKart"


@dataclasses.dataclass(frozen=True)
class LogKind:
    """One kind of run log: its folder under ``log/`` and its file extension."""

    name: str
    extension: str


TASK_PARAMS = LogKind("task_params", ".pkl")  # significant parameters, written before run()
RANDOM_SEED = LogKind("random_seed", ".pkl")  # the seed and the seeded methods, before run()
MODULE_VERSIONS = LogKind("module_versions", ".txt")  # name==version lines, before run()
PROCESSING_TIME = LogKind("processing_time", ".pkl")  # seconds, after a successful run()
TASK_LOG = LogKind("task_log", ".pkl")  # the task_log dict with the output paths, after a successful run()
LOG_KINDS = (TASK_PARAMS, RANDOM_SEED, MODULE_VERSIONS, PROCESSING_TIME, TASK_LOG)
# kart's own record beside gokart's five (gokart ignores it): each committed output's size and content
# hash, written when run_one commits the task's outputs (kart_core.manifest).
MANIFEST = LogKind("manifest", ".json")
KART_LOG_KINDS = (*LOG_KINDS, MANIFEST)
_KIND_BY_NAME = {kind.name: kind for kind in KART_LOG_KINDS}

_UNIQUE_ID = r"[0-9a-f]{32}"
_LOG_NAME = re.compile(rf"^(?P<cls>.+)_(?P<uid>{_UNIQUE_ID})(?P<ext>\.[^./]+)$")
_KART_NAMED = re.compile(rf"(?:^|/)(?P<stem>[^/]*)_(?P<uid>{_UNIQUE_ID})(\.[^/]*)?$")
# Model targets unzip and save under {local_temporary_directory}/{md5 of the output path}/ (see
# kart_core.target.make_model_target); locks live in {local_temporary_directory}/locks/.
_SCRATCH_FOLDER = re.compile(r"^[0-9a-f]{32}$")
# A day, like git's grace period before pruning loose objects: a temporary file that nobody wrote
# for that long belongs to a writer that is gone (``kart gc --temp-age``). A task whose run() keeps
# a staged output unchanged for longer needs a larger --temp-age while it runs.
DEFAULT_TEMP_AGE = 24 * 3600.0


# --- the default workspace --------------------------------------------------------------------


def default_workspace(explicit: str | None = None) -> str:
    """The workspace to use: ``explicit``, else ``[TaskOnKart] workspace_directory`` in luigi's config,
    else the environment variable ``KART_WORKSPACE``, else ``./resources/`` (gokart's default).

    TaskOnKart's ``workspace_directory`` default and the ``kart`` commands both follow this order.
    """
    if explicit:
        return explicit
    if luigi_config_may_set("workspace_directory"):
        import luigi.configuration  # here: `kart runs` without a luigi config never imports luigi (~1 s)

        configured = luigi.configuration.get_config().get(_CONFIG_SECTION, "workspace_directory", None)
        if configured:
            return str(configured)
    return environment_workspace() or BUILTIN_WORKSPACE


def workspace_exists(workspace: str) -> bool:
    """Whether a workspace is at ``workspace``: a local folder (empty or not), or on object storage a
    prefix in a bucket that exists (empty or not).

    Object stores have no folders: a prefix nothing was written under yet is an empty workspace, as an
    empty local folder is (``kart run`` writes into it without creating anything first), while a missing
    bucket is no workspace (kart never creates buckets). One request remotely when objects are under the
    prefix, two when none are (the bucket is asked then).

    Raises:
        UnknownSchemeError: no storage for the URL's scheme; MissingExtraError: its extra is missing.
        Exception: the storage library's error when the store cannot be asked (credentials, endpoint).
    """
    return missing_part(workspace) is None


def missing_part(workspace: str) -> str | None:
    """What is missing of the workspace at ``workspace``, for a message: ``"the bucket 'b'"``, ``"the folder"``;
    None when it exists (``workspace_exists``).

    Raises:
        UnknownSchemeError: no storage for the URL's scheme; MissingExtraError: its extra is missing.
        Exception: the storage library's error when the store cannot be asked (credentials, endpoint).
    """
    if not protocol_of(workspace):
        _, sep, rest = workspace.partition("://")
        return None if os.path.isdir(rest if sep else workspace) else "the folder"
    storage = storage_for(workspace)
    from kart_core.storage.remote import FsspecStorage  # here: a local workspace never imports fsspec

    if not isinstance(storage, FsspecStorage):
        return None if storage.exists(workspace) else "the prefix"
    if storage.exists_or_prefix(workspace.rstrip("/")):
        return None
    bucket = storage.missing_bucket(workspace)  # None: it exists, or the store has no buckets (memory://)
    return None if bucket is None else f"the bucket {bucket!r}"


def require_workspace(workspace: str, consequence: str, whose: str = "") -> None:
    """Raise when nothing is at ``workspace`` (``missing_part``): a mistyped path or bucket must not read as
    an empty workspace. An empty local folder, or a prefix of an existing bucket with nothing under it, is
    an empty workspace (no error).

    Args:
        workspace: the workspace path or URL.
        consequence: what it means for the caller, e.g. "nothing is there to verify".
        whose: who uses it, put after the path, e.g. "the workspace of Train[3f2ac1e0]".

    Raises:
        WorkspaceNotFoundError: no local folder at ``workspace``, or no object under its URL.
        KartError: no storage for the URL's scheme (or its extra is missing).
    """
    missing = missing_part(workspace)
    if missing is not None:
        what = "" if missing == "the folder" else f" ({missing} does not exist)"
        raise WorkspaceNotFoundError(
            f"No workspace at {workspace!r}{f' ({whose})' if whose else ''}{what}: {consequence}. Check the path "
            "given with -w, KART_WORKSPACE or [TaskOnKart] workspace_directory."
        )


# luigi 3.8's config files (LuigiConfigParser, and LuigiTomlParser with LUIGI_CONFIG_PARSER=toml);
# LUIGI_CONFIG_PATH adds one more.
_LUIGI_CONFIG_FILES = (
    "/etc/luigi/client.cfg",
    "/etc/luigi/luigi.cfg",
    "client.cfg",
    "luigi.cfg",
    "/etc/luigi/luigi.toml",
    "luigi.toml",
)


def luigi_config_may_set(*options: str) -> bool:
    """Whether luigi's configuration may hold one of ``options``, found without importing luigi when it cannot.

    True once luigi's config is loaded in this process (a program or ``--config`` may have set any
    value), or when a file luigi reads mentions an option's name; False only when neither holds, so
    a caller may then skip luigi's import (about a second) and use its own default.
    """
    if "luigi.configuration" in sys.modules:
        return True
    paths = [*_LUIGI_CONFIG_FILES, os.environ.get("LUIGI_CONFIG_PATH", "")]
    for path in filter(None, paths):
        try:
            with open(path, encoding="utf-8", errors="replace") as file:
                text = file.read()
        except OSError:  # missing or unreadable: luigi skips it too
            continue
        if any(option in text for option in options):
            return True
    return False


def environment_workspace() -> str | None:
    """The workspace named by ``KART_WORKSPACE``, or None when it is unset or empty.

    A leading ``~`` or ``~user`` is expanded (``os.path.expanduser``): environments set without a shell
    (systemd ``Environment=``, Docker ``ENV``, Kubernetes and Airflow env lists, ``.env`` files) keep it
    literal, which would put the cache in a folder named ``~`` under each working directory.
    (``[TaskOnKart] workspace_directory`` stays literal, as gokart reads it.)

    Raises:
        SettingValueError: the value starts or ends with whitespace, or ``~name`` names no user.
    """
    value = os.environ.get(WORKSPACE_ENVIRONMENT_VARIABLE)
    if not value:
        return None
    if value[0].isspace() or value[-1].isspace():  # a quoting slip in an env file, not a folder name
        what = "is only whitespace" if not value.strip() else "starts or ends with whitespace"
        raise SettingValueError(
            f"{WORKSPACE_ENVIRONMENT_VARIABLE}={value!r} {what}: set it to the workspace folder or bucket URL "
            "without spaces around it (e.g. ./resources or s3://bucket/prefix), or unset it for the default ./resources/."
        )
    if value.startswith("~"):
        expanded = os.path.expanduser(value)
        if expanded.startswith("~"):  # ~name of no user: a folder named so in each working directory
            raise SettingValueError(
                f"{WORKSPACE_ENVIRONMENT_VARIABLE}={value!r} names a home folder of no user here: give the path "
                "without ~ or with an existing user's."
            )
        return expanded
    return value


# --- paths of one task ------------------------------------------------------------------------


def default_output_path(cls: type, extension: str) -> str:
    """gokart's default output path relative to the workspace: ``{module/path}/{Class}{extension}``.

    A class of the running script is in ``__main__/`` in a spawned child process too (``dotted.module_name``).
    """
    return posixpath.join(module_name(cls).replace(".", "/"), f"{cls.__name__}{extension}")


def workspace_path(workspace: str, relative: str, owner: str = "") -> str:
    """``relative`` joined to ``workspace`` as gokart joins them (``os.path.join``).

    Raises:
        WorkspacePathError: ``relative`` is absolute or climbs out with ``..``; the message names
            ``owner`` (e.g. the task class), the path and the workspace.
    """
    normalized = posixpath.normpath(relative.replace(os.sep, "/"))
    if posixpath.isabs(normalized) or normalized == ".." or normalized.startswith("../"):
        prefix = f"{owner}: " if owner else ""
        raise WorkspacePathError(
            f"{prefix}output path {relative!r} leaves the workspace {workspace!r}. "
            "Use a path relative to the workspace, without '..'."
        )
    return os.path.join(workspace, relative)


def with_unique_id(path: str, unique_id: str | None) -> str:
    """``path`` with ``_{unique_id}`` inserted before its extension (unchanged when ``unique_id`` is None)."""
    if unique_id is None:
        return path
    base, extension = os.path.splitext(path)
    return f"{base}_{unique_id}{extension}"


def log_relative_path(kind: LogKind, class_name: str, unique_id: str | None = None) -> str:
    """``log/{kind}/{Class}[_{unique_id}]{ext}``: a run log's path relative to the workspace."""
    return with_unique_id(f"{LOG_DIRECTORY}/{kind.name}/{class_name}{kind.extension}", unique_id)


def log_path(workspace: str, kind: LogKind, class_name: str, unique_id: str) -> str:
    """``{workspace}/log/{kind}/{Class}_{unique_id}{ext}``, joined as the task joins its outputs."""
    return os.path.join(workspace, log_relative_path(kind, class_name, unique_id))


def log_name(path: str) -> str | None:
    """The workspace-relative name ``log/{kind}/{Class}_{unique_id}{ext}`` of a run log's full path (local
    or URL), from its last three parts; None when they do not name a run log (``parse_log_relative``).

    What a run log's signature binds (``kart_core.signing``): it holds wherever the workspace lives.
    """
    relative = "/".join(path.replace(os.sep, "/").rsplit("/", 3)[-3:])
    return relative if parse_log_relative(relative) is not None else None


def log_workspace(path: str, kind: LogKind) -> str | None:
    """The workspace of a run log's full path ``{workspace}/log/{kind}/{file}`` (local or URL); None for other paths."""
    head, found, _ = path.replace(os.sep, "/").rpartition(f"/{LOG_DIRECTORY}/{kind.name}/")
    return head or None if found else None


def log_task_path(task: KartTask, kind: LogKind) -> str:
    """The path of ``task``'s run log of ``kind`` in its own workspace."""
    return log_path(str(task.workspace_directory), kind, type(task).__name__, task.make_unique_id())


def file_exists(path: str) -> bool:
    """Whether a file is at ``path`` (a local path or URL): one existence check, without making a target."""
    return storage_for(path).exists(path)


def log_kind(name: str) -> LogKind | None:
    """The log kind whose folder is ``name``, or None for a folder kart does not write."""
    return _KIND_BY_NAME.get(name)


def parse_log_name(name: str) -> tuple[str, str] | None:
    """``(Class, unique_id)`` from a run log's file name such as ``Load_0123…ef.pkl``; None for other names.

    The class part must be a Python identifier, so foreign files (and names with undecodable bytes) are not runs.
    """
    match = _LOG_NAME.match(name)
    return (match["cls"], match["uid"]) if match and match["cls"].isidentifier() else None


def parse_log_relative(relative: str) -> tuple[LogKind, str, str] | None:
    """``(kind, Class, unique_id)`` from a workspace-relative path ``log/{kind}/{Class}_{uid}{ext}``.

    None for anything else: other folders, unknown kinds, a wrong extension, temporary files.
    """
    parts = relative.split("/")
    if len(parts) != 3 or parts[0] != LOG_DIRECTORY:
        return None
    kind = log_kind(parts[1])
    match = _LOG_NAME.match(parts[2])
    if kind is None or match is None or match["ext"] != kind.extension or not match["cls"].isidentifier():
        return None
    return kind, match["cls"], match["uid"]


def is_kart_named(relative: str) -> bool:
    """Whether a file is named like a kart output or run log: ``…_{32-hex unique id}[.ext]``."""
    return _KART_NAMED.search(relative) is not None


def named_run(relative: str) -> tuple[str, str] | None:
    """``(stem, unique_id)`` of a kart-named file: ``pkg/Train_{uid}.pkl`` → ``("Train", uid)``.

    For default outputs, run logs (and their signatures) the stem is the task class; for
    ``make_target("a/b.csv")`` it is the file's own stem (``b``). None for other names.
    """
    match = _KART_NAMED.search(relative)
    return (match["stem"], match["uid"]) if match else None


# --- listing ----------------------------------------------------------------------------------


def join_url(root: str, relative: str) -> str:
    """``root/relative`` for a local path (``os.path.join``) or an URL (always ``/``)."""
    return root.rstrip("/") + "/" + relative if protocol_of(root) else os.path.join(root, relative)


def relative_key(path: str) -> str:
    """A relative path normalized for comparison (forward slashes, no ``./``, no leading ``/``)."""
    return posixpath.normpath(path.replace(os.sep, "/")).lstrip("/")


def list_files(root: str, include_temporary: bool = False) -> list[FileEntry]:
    """Every file under ``root`` (a workspace or a folder in one), sorted by relative path.

    Goes through the storage of ``root`` (``Storage.walk``): local disk or any fsspec URL.
    Nothing when ``root`` is missing; temporary files only when ``include_temporary`` is set.
    """
    return sorted(storage_for(root).walk(root, include_temporary=include_temporary), key=lambda f: f.relative)


def scratch_folders(temporary_directory: str) -> list[FileEntry]:
    """The model scratch under a task's ``local_temporary_directory`` (a local folder), sorted.

    One entry per ``{md5}/{child}`` left by a model save or load (``size``: bytes inside; ``mtime``:
    the newest write inside), and one per empty ``{md5}`` folder. ``locks/`` and anything not named
    like kart's scratch are never listed.
    """
    entries = []
    for folder in filter(is_scratch_folder, _subfolders(temporary_directory)):
        with contextlib.suppress(OSError):  # removed meanwhile: nothing to sweep
            children = sorted(os.listdir(folder))
            entries += [examine(temporary_directory, os.path.join(folder, child)) for child in children]
            if not children:
                entries.append(examine(temporary_directory, folder))
    return sorted(entries, key=lambda entry: entry.relative)


def is_scratch_folder(path: str) -> bool:
    """Whether ``path`` is named like a model-scratch folder (``{local_temporary_directory}/{md5}``)."""
    return _SCRATCH_FOLDER.match(os.path.basename(path.rstrip("/"))) is not None


def _subfolders(directory: str) -> list[str]:
    try:
        return [entry.path for entry in os.scandir(directory) if entry.is_dir(follow_symlinks=False)]
    except OSError:  # missing or unreadable: nothing to sweep
        return []


def examine(root: str, path: str, deep: bool = True) -> FileEntry:
    """A local file or folder under ``root`` as one entry: total size in bytes and newest mtime inside.

    With ``deep=False`` a folder's own mtime only. Raises OSError when ``path`` is gone.
    """
    status = os.lstat(path)
    size, newest = status.st_size, status.st_mtime
    if deep and os.path.isdir(path) and not os.path.islink(path):
        size = 0
        for directory, folders, names in os.walk(path):
            for name in [*folders, *names]:
                with contextlib.suppress(OSError):  # removed meanwhile
                    inner = os.lstat(os.path.join(directory, name))
                    size += inner.st_size if name in names else 0
                    newest = max(newest, inner.st_mtime)
    relative = os.path.relpath(path, root).replace(os.sep, "/")
    return FileEntry(path, relative, size, datetime.fromtimestamp(newest))


def run_logs(files: Iterable[FileEntry]) -> dict[tuple[str, str], dict[LogKind, FileEntry]]:
    """The run-log files among ``files`` (relative to a workspace), grouped by ``(Class, unique_id)``."""
    runs: dict[tuple[str, str], dict[LogKind, FileEntry]] = {}
    for entry in files:
        parsed = parse_log_relative(entry.relative)
        if parsed is not None:
            kind, cls, uid = parsed
            runs.setdefault((cls, uid), {})[kind] = entry
    return runs


def logged_unique_ids(workspace: str, class_name: str, kind: LogKind = TASK_PARAMS) -> list[str]:
    """Unique ids of the runs of ``class_name`` with a ``kind`` log in ``workspace`` (one folder listed), sorted."""
    folder = join_url(workspace, f"{LOG_DIRECTORY}/{kind.name}")
    ids = []
    for entry in list_files(folder):
        parsed = parse_log_relative(f"{LOG_DIRECTORY}/{kind.name}/{entry.relative}")
        if parsed is not None and parsed[1] == class_name:
            ids.append(parsed[2])
    return sorted(ids)
