"""Outputs written straight to their paths: ``open(self.output().path(), "w")``, ``df.to_csv(path)``.

gokart code often writes an output by its path instead of ``dump``; such a write lands at the final
path at once, past the transaction (``kart_core.transaction``). So that it counts as complete only
when its run committed, as a dump does:

- The first time the running task's own ``run()`` asks for the path of one of its outputs
  (``TargetOnKart.path``), ``DirectWrites.hand_out`` resolves what a killed writer left there, notes
  what the path holds, writes a ``direct`` marker beside the task's manifest (``kart_core.commit_marker``:
  ``complete()`` is False while it is there) and, in a rerun on local disk, moves the old output aside
  (one rename), so a failure can put it back.
- After ``run()`` returns, each output written in place gets its integrity record entry (size and
  content hash) at the commit, like a dump; a later change is found as damage.
- A run that raises (or fails its outputs check): each output it asked the path of that appeared or
  changed is removed, an old output moved aside is put back (each logged with the task and the file),
  then the marker goes. A rerun's outputs that changed without their path being asked for are removed too.
- A kill: the marker stays. The next ``complete()`` on this host finds its process gone and undoes the
  writes; another host's marker counts as a run in progress (incomplete until a run of the task commits).
- After the commit: the old outputs moved aside are deleted and the marker is removed.

A task that only dumps never asks for a path: no file, marker or check is added for it. Two processes
writing one task's outputs by path at once overwrite each other's files; ``should_lock_run`` (or redis)
makes them take turns. Readers of a task whose rerun writes by path may find its output moved aside or
half written until the rerun commits (a dump keeps the old output readable until then).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Iterable, Iterator
from typing import Any

from kart_core import commit_marker, target_config
from kart_core.integrity import DEFAULT_ALGORITHM, digest_stream
from kart_core.manifest import Entry, OutputRecord
from kart_core.storage import storage_for
from kart_core.storage.base import temporary_name
from kart_core.transaction import Staged, Transaction

__all__ = ["DirectWrites", "version"]

logger = logging.getLogger(__name__)


def version(target: Any) -> object:
    """A stamp of what is at the output's path, equal only while the file is unchanged; None when it is missing.

    Local disk: (mtime in ns, size, inode): a rewrite within the clock's tick (about 4 ms) replaces the
    file (new inode) or changes its size. Object storage: (ETag or generation, size, modification
    time): the time alone has one-second steps on S3, so a rerun in the second of the last commit
    looked unchanged. Targets of other kinds: their modification time.
    """
    path = getattr(target, "_path", None)  # not path(): during run() that would hand the path out
    if not isinstance(path, str):
        try:
            return target.last_modification_time() if target.exists() else None
        except Exception:  # a target without modification times: nothing to compare
            return None
    if "://" not in path or path.startswith("file://"):
        try:
            stat = os.stat(path.removeprefix("file://"))
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)
    storage = storage_for(path)
    file_system = getattr(storage, "file_system", None)
    try:
        if file_system is None:
            return storage.modification_time(path) if storage.exists(path) else None
        file_system.invalidate_cache(path)  # a listing cached before the run would hide its write
        info = file_system.info(path)
    except (FileNotFoundError, OSError):
        return None
    tag = next((info[key] for key in ("ETag", "etag", "generation", "md5Hash") if info.get(key)), None)
    return (tag, info.get("size"), str(info.get("LastModified") or info.get("updated") or info.get("mtime")))


@dataclasses.dataclass
class _Handed:
    """An output whose path the task's code asked for: what was there before, and where the old one went."""

    target: Any
    before: object
    backup: str | None


class DirectWrites:
    """The outputs of one run whose paths the task's code asked for (``running.direct`` during that run).

    Args:
        running: the run's transaction (its commit id names the run in the marker).
        label: how messages name the task (``Class[8-hex id]``).
        outputs: the task's flattened outputs.
        replace: a rerun (or a repair): its old outputs are moved aside when their paths are asked for.
    """

    def __init__(self, running: Transaction, label: str, outputs: Iterable[Any], replace: bool) -> None:
        self._running = running
        self._label = label
        self._outputs = {target.path(): target for target in outputs}
        self._replace = replace
        self._records = target_config.current().record
        self.watching = False
        self.handed: dict[str, _Handed] = {}
        self._marked: dict[str, OutputRecord] = {}

    @contextlib.contextmanager
    def watch(self) -> Iterator[None]:
        """Count the path requests of the body (the task's own ``run()``), not kart's own afterwards."""
        self.watching = True
        try:
            yield
        finally:
            self.watching = False

    def hand_out(self, target: Any, path: str) -> None:
        """Called by ``TargetOnKart.path()``: mark ``path`` as written directly before the task's code gets it."""
        if not self.watching or path in self.handed or path not in self._outputs:
            return
        record = self._record(target)
        if record is not None and record.manifest not in self._marked:
            self._settle_leftovers(record)
        before = version(target)
        # Locally the old output is moved aside (a rename), so a failed rerun puts it back; on object
        # storage a move is a copy of the whole object, so a failed rerun there only removes the new file.
        backup = temporary_name(path) if self._replace and before is not None and "://" not in path else None
        self.handed[path] = _Handed(target, before, backup)
        if record is not None:
            self._marked[record.manifest] = record
            moves = tuple(
                (each, handed.backup)
                for each, handed in self.handed.items()
                if (self._record(handed.target) or record).manifest == record.manifest
            )
            commit_marker.put_direct(storage_for(record.manifest), record, self._running.commit_id, moves)
        if backup is not None:
            os.replace(path, backup)

    def _record(self, target: Any) -> OutputRecord | None:
        record = getattr(target, "record", None) if self._records else None
        return record if isinstance(record, OutputRecord) else None

    def _settle_leftovers(self, record: OutputRecord) -> None:
        """Before the first marker of this run: undo a killed direct writer's files; warn of a live one."""
        storage = storage_for(record.manifest)
        path = commit_marker.marker_path(record)
        if commit_marker.read_marker(storage, path) is None:
            return
        commit_marker.settled(record)  # waits for a commit in progress; undoes a killed writer's files
        live = commit_marker.read_marker(storage, path)
        if live is not None and live.kind == commit_marker.DIRECT:
            logger.warning(
                "%s: process %d on %s is writing this task's outputs straight to their paths too; the two runs "
                "overwrite each other's files. Set should_lock_run=True (or redis_host) so that they take turns.",
                self._label,
                live.pid,
                live.host,
            )

    def record_in_place(self, targets: Iterable[Any]) -> None:
        """Stage the integrity record entry of each output the run wrote straight to its path (hashed now)."""
        signer = target_config.current().signer
        for target in targets:
            record = self._record(target)
            if record is None:
                continue
            path = target.path()
            storage = storage_for(path)
            try:
                with storage.open_read(path) as file:
                    size, digest = digest_stream(file)
            except IsADirectoryError:
                continue  # a folder saved at the output's path: no single file to hash
            entry = Entry(
                size=size,
                digest=f"{DEFAULT_ALGORITHM}:{digest}",
                commit=self._running.commit_id,
                sealed=False,
                owner=record.owner or None,
            )
            if signer is not None:
                logger.warning(
                    "%s wrote %r straight to its path: it is not signed, so loads refuse it while signing is on. "
                    "Use self.dump(...) for signed outputs.",
                    self._label,
                    path,
                )
            self._running.add(Staged(path, path, storage, record, entry, in_place=True))

    def undo(self, why: str, changed: Iterable[str] = ()) -> None:
        """After a failed run: remove what it wrote at its outputs' paths, put the old outputs back, drop the markers.

        Args:
            why: what happened, for the log (``its run failed``).
            changed: outputs of a rerun that changed although their path was not asked for.
        """
        moves: list[tuple[str, str | None]] = []
        for path, handed in self.handed.items():
            # A rerun on object storage that asked for the path may have rewritten the old output with
            # bytes of the same size in the same second under an unchanged tag (a multipart upload
            # tags by parts): it is removed whatever the stamp says, so the task runs again.
            rewritten = self._replace and "://" in path and not path.startswith("file://")
            if handed.backup is not None or rewritten or _version_at(handed.target) != handed.before:
                moves.append((path, handed.backup))
        moves.extend((path, None) for path in changed if path not in self.handed)
        try:
            commit_marker.undo_direct(moves, self._label, why)
        except Exception:  # noqa: BLE001 - the run's own error is what the caller raises; the marker stays
            logger.exception("%s: %s, and undoing what it wrote at its outputs' paths failed", self._label, why)
            return  # the marker keeps the task incomplete; a later check on this host undoes it again
        self._clear_markers()

    def finish(self) -> None:
        """After the commit: delete the old outputs moved aside and remove the markers.

        When another process's commit won (``superseded``), the files this run wrote in place are its
        outputs' paths too and no longer match that commit's record: they are removed, so the task runs again.
        """
        if self._running.superseded:
            written = [
                path for path in self.handed if _version_at(self.handed[path].target) != self.handed[path].before
            ]
            self.undo("another process committed this task first, over the files this run wrote in place", written)
            return
        for path, handed in self.handed.items():
            if handed.backup is not None:
                storage_for(path).remove(handed.backup)
        self._clear_markers()

    def _clear_markers(self) -> None:
        for record in self._marked.values():
            commit_marker.clear(storage_for(record.manifest), record)
        self._marked.clear()


def _version_at(target: Any) -> object:
    """The stamp of the file at the output's path (``version``; a staged dump of it does not count)."""
    return version(target)
