"""RawFile: a kart task that stands for a raw input file, versioned by the md5 of its bytes.

A kart task that reads a file directly is never invalidated when the file changes: the file is
not a parameter. Make the file an upstream task instead::

    class MakeFeatures(kart_core.TaskOnKart[pd.DataFrame]):
        source = kart_core.TaskInstanceParameter(expected_type=RawFile)

        def run(self) -> None:
            frame = pd.read_csv(self.load("source"))   # RawFile's output is the file's path
            ...

    MakeFeatures(source=RawFile(path="data/01_raw/numbers.csv"))

or in a catalog entry ``source: {task: kart_kedro.RawFile, params: {path: data/01_raw/numbers.csv}}``.
``RawFile(path=...)`` reads the file when it is built and takes its md5 as the ``checksum``
parameter, so its unique id — and that of every task downstream — changes exactly when the file's
content changes; changing it back finds the earlier results cached. Its ``run()`` re-checks the
checksum, so a file changed between building the graph and running it fails loudly.

On object storage the checksum comes from the store's metadata where it holds the md5 (GCS
``md5Hash``); on S3 the object is read once per process and content token (``ETag``, ``VersionId``).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import stat as stat_module
import threading
import time
from typing import Any

import luigi

import kart_core
from kart_kedro.object_stamp import content_token

__all__ = ["RawFile", "file_checksum"]

_CHUNK = 1 << 20


class RawFile(kart_core.TaskOnKart[str]):
    """A raw input file as a task: ``load()`` gives its path; its id follows the file's content."""

    path = luigi.Parameter(
        description="The file: relative to the directory the run starts in (a Kedro project's root), absolute, "
        "or an fsspec URL."
    )
    checksum = luigi.Parameter(default="", description="md5 of the file's bytes; read from the file when left empty.")

    @classmethod
    def get_param_values(cls, params: Any, args: Any, kwargs: Any) -> list[tuple[str, Any]]:
        """luigi's resolution, with ``checksum`` read from the file when it is not given."""
        values = super().get_param_values(params, args, kwargs)
        resolved = dict(values)
        if resolved.get("checksum"):
            return values
        resolved["checksum"] = file_checksum(str(resolved["path"]))
        return [(name, resolved[name]) for name, _ in values]

    def output(self) -> Any:
        """The default pickle (``{workspace}/{module path}/RawFile_{unique_id}.pkl``, the file's path), loaded
        through ``CheckedPathProcessor``: whoever loads it gets the path only while the file has this task's
        content."""
        return self.make_target(processor=CheckedPathProcessor(str(self.path), str(self.checksum), self.kart_label()))

    def run(self) -> None:
        """Check that the file still has the content this task was built for; output its path.

        Raises:
            StaleTaskError: the file's md5 is not ``checksum`` any more.
        """
        check_unchanged(str(self.path), str(self.checksum), self.kart_label())
        self.dump(str(self.path))


class CheckedPathProcessor(kart_core.file_processor.PickleFileProcessor):
    """RawFile's output format: the pickled path, handed out on load only while the file's md5 is the checksum.

    RawFile's own ``run()`` checks the file too, but a RawFile cached by an earlier run never runs: a file
    edited after the graph was made (a daily upload landing during a long build, an Airflow DAG parsed minutes
    before its tasks run) would be read by the downstream under the old content's id, caching the new content's
    result where the old content's belongs. Checked where the file is handed over instead, the downstream fails
    with ``StaleTaskError`` (one stat per load while the file is unchanged: ``file_checksum``'s memo), and the
    check is made again when the downstream commits (``kart_core.check_before_commit``), so a write while it read
    the file fails it too; only a write undone before that commit is not seen.
    """

    def __init__(self, path: str, checksum: str, label: str) -> None:
        """Args:
        path: the file RawFile stands for.
        checksum: its md5 hex when the task was built (RawFile's parameter).
        label: the task as messages name it (``kart_label()``).
        """
        self.path = path
        self.checksum = checksum
        self.label = label

    def load(self, file: Any) -> Any:
        """The file's path, as RawFile's run dumped it.

        Raises:
            StaleTaskError: the file's md5 is not the checksum the task was built with, or the file is gone.
        """
        value = super().load(file)
        check_unchanged(self.path, self.checksum, self.label)
        # The reader reads the file later in its run(): checked again at its commit, so a write in between fails
        # the reader instead of caching what it read under this content's ids.
        kart_core.check_before_commit(functools.partial(check_unchanged, self.path, self.checksum, self.label))
        return value


def check_unchanged(path: str, checksum: str, label: str) -> None:
    """Raise StaleTaskError unless the md5 of ``path`` is ``checksum`` (``label`` names the RawFile task).

    Raises:
        StaleTaskError: the content changed since the task was built, or the file is gone.
    """
    try:
        current = file_checksum(path)
    except FileNotFoundError as missing:
        raise kart_core.errors.StaleTaskError(
            f"{label}: {path!r} is gone since this task was built (md5 {checksum} then; {missing}). Put the file "
            "back, or build the graph again."
        ) from missing
    if current != checksum:
        raise kart_core.errors.StaleTaskError(
            f"{label}: {path!r} changed since this task was built (md5 {checksum} then, {current} now). Build the "
            "graph again so that the tasks reading it get new ids."
        )


def file_checksum(path: str) -> str:
    """md5 hex of the bytes of ``path`` (a local path or an fsspec URL).

    Raises:
        FileNotFoundError: no such file, with the path and the working directory it was looked up from.
        IsADirectoryError: ``path`` is a folder (RawFile stands for one file).
    """
    if "://" in path:
        return _remote_checksum(path)
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        raise _missing_file(path) from None
    if stat_module.S_ISDIR(stat.st_mode):
        raise IsADirectoryError(
            f"RawFile: {path!r} is a folder (looked up from {os.getcwd()!r}); RawFile takes one file. Name a file "
            "in it, or make one RawFile per file."
        )
    return _local_checksum(os.path.abspath(path), stat)


def _missing_file(path: str) -> FileNotFoundError:
    """The error for a local ``path`` that is no file: where it was looked up; started inside a Kedro project but not
    in its root (``kedro run`` in ``src/``: Kedro finds the project from any sub-folder), where to start instead."""
    cwd = os.getcwd()
    message = (
        f"RawFile: no file {path!r} (looked up from {cwd!r}); a relative path is taken from the directory the run "
        "starts in."
    )
    root = None if os.path.isabs(path) else _kedro_root_above(cwd)
    if root is not None:
        there = f": {os.path.join(root, path)!r} is there" if os.path.isfile(os.path.join(root, path)) else ""
        message += f" Start `kedro run` in the Kedro project's root {root!r} (the folder of its pyproject.toml){there}."
    return FileNotFoundError(message)


def _kedro_root_above(folder: str) -> str | None:
    """The nearest folder above ``folder`` (not itself) that is a Kedro project's root, else None: its
    pyproject.toml names ``[tool.kedro]`` (Kedro 1.7.0's own test, ``kedro.utils.is_kedro_project``)."""
    current = os.path.abspath(folder)
    while (parent := os.path.dirname(current)) != current:
        current = parent
        try:
            with open(os.path.join(current, "pyproject.toml"), encoding="utf-8") as handle:
                if "[tool.kedro]" in handle.read():
                    return current
        except (OSError, UnicodeDecodeError):  # none there, or not one Kedro could read either
            continue
    return None


def _local_checksum(path: str, stat: os.stat_result) -> str:
    """md5 hex of the local file ``path`` whose status is ``stat``, read once per file version in this process.

    luigi resolves a new task's parameters twice, and a notebook builds again and again: the md5 is memoised by
    the file's stamp as KartRunner stamps raw inputs (output_state.file_stamp): path, inode, size, modification
    and status-change times. A rewrite that keeps size and modification time (``cp -p``, ``rsync -t``,
    ``touch -r``) changes the status-change time, which no call sets back; a replaced file has a new inode. A file
    changed within ``_RACY_NS`` of its read is not memoised (the racy rule: a second write in the same clock tick
    keeps the times), so it is read again next time.
    """
    key = (path, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    with _LOCAL_LOCK:
        known = _LOCAL_CHECKSUMS.get(key)
    if known is not None:
        return known
    read_at = time.time_ns()
    with open(path, "rb") as handle:
        checksum = _md5(handle)
    if read_at - max(stat.st_mtime_ns, stat.st_ctime_ns) >= _RACY_NS:
        with _LOCAL_LOCK:
            if len(_LOCAL_CHECKSUMS) >= _LOCAL_MEMO_SIZE:
                del _LOCAL_CHECKSUMS[next(iter(_LOCAL_CHECKSUMS))]
            _LOCAL_CHECKSUMS[key] = checksum
    return checksum


# (absolute path, inode, size, mtime ns, ctime ns) -> md5 hex, the oldest dropped first past _LOCAL_MEMO_SIZE.
_LOCAL_CHECKSUMS: dict[tuple[str, int, int, int, int], str] = {}
_LOCAL_MEMO_SIZE = 256
_LOCAL_LOCK = threading.Lock()
# A file whose times are this close to its read may be written again within the same times (git's "racy" rule).
_RACY_NS = 2_000_000_000


def _remote_checksum(url: str) -> str:
    """md5 hex of the object at ``url``, from its metadata where the store keeps the md5 (GCS ``md5Hash``), else
    read once per content token in this process (S3's ETag is the md5 only for some uploads: not used as one).

    Raises:
        FileNotFoundError: no such object.
        IsADirectoryError: ``url`` is a folder.
    """
    import fsspec.core

    filesystem, path = fsspec.core.url_to_fs(url)
    filesystem.invalidate_cache(path)  # another client may have written since this process last looked
    try:
        info = filesystem.info(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"RawFile: no object {url!r}.") from None
    if info.get("type") == "directory":
        raise IsADirectoryError(
            f"RawFile: {url!r} is a folder; RawFile takes one file. Name a file in it, or make one RawFile per file."
        )
    stored = info.get("md5Hash") if content_token(filesystem, info).startswith("gs:") else None
    if stored:  # GCS: the md5 of the object's bytes, computed by the store on upload
        return base64.b64decode(str(stored)).hex()
    token = content_token(filesystem, info)
    if not token:
        with filesystem.open(path, "rb") as handle:
            return _md5(handle)
    key = (url, token, int(info.get("size") or 0))
    if key not in _TOKEN_CHECKSUMS:
        with filesystem.open(path, "rb") as handle:
            digest = _md5(handle)
        filesystem.invalidate_cache(path)
        if content_token(filesystem, filesystem.info(path)) != token:
            return digest  # uploaded again during the read: these bytes may not be the token's
        if len(_TOKEN_CHECKSUMS) >= 256:
            del _TOKEN_CHECKSUMS[next(iter(_TOKEN_CHECKSUMS))]
        _TOKEN_CHECKSUMS[key] = digest
    return _TOKEN_CHECKSUMS[key]


# (url, content token, size) -> md5 hex: luigi resolves a new task's parameters twice, and a graph may name
# one object in many tasks; each content is read once per process.
_TOKEN_CHECKSUMS: dict[tuple[str, str, int], str] = {}


def _md5(handle: Any) -> str:
    hasher = hashlib.md5()
    for chunk in iter(lambda: handle.read(_CHUNK), b""):
        hasher.update(chunk)
    return hasher.hexdigest()
