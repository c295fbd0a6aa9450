"""Targets: one output of a task, read and written through a FileProcessor and a Storage.

Every dump is atomic (see ``kart_core.storage``), so an existing output is a whole output; inside
a task's run it is staged and committed by ``run_one`` (``kart_core.transaction``). Each dump is
hashed for the task's integrity record (``kart_core.manifest``) and sealed when signing is on
(``kart_core.signing``); each load checks what the record and the signature call for.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import logging
import os
import re
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import IO, Any

import luigi

from kart_core import child_loads, commit_marker, log_binding, side_record, target_config, transaction
from kart_core.conflict_prevention_lock import (  # gokart.target's names; kart locks whole runs (run_one)
    TaskLockParams,
    make_task_lock_params,
    wrap_dump_with_lock,
    wrap_load_with_lock,
    wrap_remove_with_lock,
)
from kart_core.damage import (
    Opened,
    before_unrecorded_load,
    file_stamp,
    loaded_unrecorded,
    local_file_stamp,
    not_committed_note,
    object_change_note,
    rewritten_siblings,
    settle_copied,
    settle_stamp,
    settle_tag,
    settle_unsafe,
    stamp_of,
    unvouched_reason,
)
from kart_core.errors import (
    DamagedOutputError,
    DumpError,
    ForeignOutputError,
    InputChangedError,
    IntegrityError,
    LoadError,
    LockUnavailableError,
    MissingOutputError,
    NoSpaceError,
    StaleTaskError,
    TaskLockException,
    UnsupportedObjectError,
    WorkspaceNotFoundError,
)
from kart_core.file_processor import DataFrameType, FileProcessor, make_file_processor, open_for_processor
from kart_core.file_processor.pickle_format import PickleFileProcessor
from kart_core.integrity import DEFAULT_ALGORITHM, available, digest_bytes, digest_stream
from kart_core.lock import canonical_location
from kart_core.manifest import SIGNING_ADVICE, Entry, Manifest, OutputRecord, new_commit_id, read_manifest
from kart_core.raw_content import raw_input_refusal
from kart_core.signing import HEADER_SIZE, MAGIC, MOVED_ADVICE, Signer, is_sealed, signature_path
from kart_core.storage import Storage, storage_for
from kart_core.storage.base import Spool, no_space_note, protocol_of
from kart_core.storage.stamp import current_tag, opened_tag, read_pinned
from kart_core.task_memo import RunSlot, TaskMemo
from kart_core.transaction import Staged
from kart_core.workspace import with_unique_id

__all__ = [
    "TargetOnKart",
    "SingleFileTarget",
    "ModelTarget",
    "LargeDataFrameProcessor",
    "make_target",
    "make_model_target",
    "TaskLockParams",
    "make_task_lock_params",
    "wrap_dump_with_lock",
    "wrap_load_with_lock",
    "wrap_remove_with_lock",
]


# How often a load reads the manifest again after waiting for a commit in progress; after that it
# goes on (the caller's kart_core.commit_marker.read_consistently sees the commits and loads again).
_COMMIT_WAITS = 5
# How often a load that met another process's commit reads again while what it finds changes (a signed commit not
# vouched for: ``_read_settled``; an output of another size than its entry: ``_reopened``): each read after the
# first met one more commit of the path.
_SETTLE_READS = 4

logger = logging.getLogger(__name__)


class _Unvouched(IntegrityError):
    """A signed file whose commit its record does not vouch for: an older version put back, or a file read across a
    commit (the manifest or the path's record read before it, the file after). ``TargetOnKart._read_settled`` reads
    again before refusing; never raised out of a load (an ``IntegrityError`` is)."""

    def __init__(self, message: str, *, commit: str) -> None:
        super().__init__(message)
        self.commit = commit


class TargetOnKart(luigi.Target):
    """One output file: exists / load / dump / remove / path / last_modification_time.

    ``signer`` None means "as configured": the signing key is read when the target loads or dumps
    (once per build, see ``kart_core.target_config``), not when it is made. ``record`` says where
    the output's integrity record lives (targets a task makes have one; bare targets do not).
    ``name`` is the workspace-relative path a signature binds when there is no record (a run log,
    ``log/{kind}/{file}``, or an output of a task that keeps no record); see ``signing_name``.
    ``task_memo`` is the memo of the task whose output this is (set by ``kart_core.task_targets``): its
    ``RunSlot`` lets a dump or path request from a thread that the task's ``run()`` started join the run
    (``kart_core.transaction.join``).
    """

    what = "output"  # what messages call the file; a run log's target says e.g. "task_log run log"

    def __init__(
        self,
        path: str,
        storage: Storage | None = None,
        owner: str | None = None,
        signer: Signer | None = None,
        record: OutputRecord | None = None,
        name: str | None = None,
    ) -> None:
        self._path = path
        self._storage = storage if storage is not None else storage_for(path)
        self.owner = owner
        self._signer = signer
        self.record = record
        self._name = name
        self.task_memo: TaskMemo | None = None

    def _run_slot(self) -> RunSlot | None:
        memo = self.task_memo
        return memo.run if memo is not None else None

    @property
    def signer(self) -> Signer | None:
        """The signer given to this target, else the configured one (None when signing is off)."""
        return self._signer if self._signer is not None else target_config.current().signer

    def exists(self) -> bool:
        """Whether the output is there (whole: writes are atomic), or staged by the running task, or written by its
        code under the private name ``path()`` handed out (asked from its run: ``kart_core.direct_write``)."""
        running = transaction.join(self._run_slot(), reading=True)
        if running is not None and running.lookup(self._path) is not None:
            return True
        private = _private_of(running, self._path)
        if private is not None and self._storage.exists(private):
            return True
        if not self._storage.exists(self._path):
            return False
        # With signing on only what kart signed counts: a folder at a file output's path (planted, or saved there by
        # path) is never signed or recorded, so it is not the output (attacker at15 F1; kart refuses to commit one).
        return self.signer is None or "://" in self._path or not os.path.isdir(self._path)

    def path(self) -> str:
        """Where the output lives.

        Asked by a task's own ``run()`` for one of its outputs, it marks the run as writing that path
        directly (``kart_core.direct_write``): a failure or a kill then undoes what was written there.
        So does a request from any thread of the process while that ``run()`` executes.

        Raises:
            RunWriteError: asked by a child process of the process running the task (what it writes there
                would escape the run), or, while a run of the task is in progress or after its last run in this
                process failed, by a thread that outlived an earlier run (one its ``run()`` started, or a pool's
                worker already running when it began: ``kart_core.transaction.join``).
        """
        slot = self._run_slot()
        what = f"the path of its output {self._path!r}" if slot is not None else ""
        running = transaction.join(slot, what=what, asking_path=True, label=self.owner)
        if running is not None and running.direct is not None:
            return running.direct.hand_out(self, self._path)  # a private name during run() (direct_write)
        if running is None and slot is not None:
            transaction.refuse_child(slot, what)
        return self._path

    def final_path(self) -> str:
        """The output's own path, also inside the task's ``run()``, where ``path()`` hands out a private name.

        For what outlives the run and must name the output where its commit puts it: a list of shard paths dumped
        as data, a manifest of files for another tool, a log line. Write the output by ``path()``; name it by this.
        kart's own name (gokart and luigi have no private names, so their ``path()`` is this).
        """
        return self._path

    def remove(self) -> None:
        """Delete the output (a folder saved at its path too), its integrity record entry and any signature file of
        kart's earlier format."""
        running = transaction.join(self._run_slot())
        if running is not None:
            running.drop(self._path)
            private = _private_of(running, self._path)
            if private is not None:  # what the running task wrote by the path it was handed
                commit_marker.remove_output(self._storage, private)
        commit_marker.remove_output(self._storage, self._path)  # a folder too (a file removal failed on it)
        self._storage.remove(signature_path(self._path))
        if self.record is not None:
            signer = self.signer
            siblings = _recorded_siblings if signer is None else None
            transaction.forget(storage_for(self.record.manifest), self.record, signer, siblings)

    def last_modification_time(self) -> datetime:
        """When the output was written."""
        return self._storage.modification_time(self._path)

    def load(self) -> Any:
        """Read the output back."""
        raise NotImplementedError

    def dump(self, obj: Any, lock_at_dump: bool = True, **_labels: Any) -> None:
        """Write ``obj`` as this output, atomically."""
        raise NotImplementedError

    def _describe_owner(self) -> str:
        return f"the {self.what} of {self.owner}" if self.owner else f"the {self.what}"

    def _through(self) -> str:
        """`` (made by {task}'s make_target)`` for a file that may be no output of the task whose target loads it (a
        side file, read through any task's target); "" for a bare target."""
        return f" (made by {self.owner}'s make_target)" if self.owner else ""

    def _require_existing(self) -> None:
        if not self.exists():
            writers = side_record.writers(self.record) if self.record is not None else []
            if writers:  # a side file: no task's completion looks at it, so "build the task first" does nothing
                names = ", ".join(writers)
                raise MissingOutputError(
                    f"Cannot load {self._path!r}{self._through()}: it does not exist. It is a side file that {names} "
                    "wrote beside its outputs (its manifest lists it under 'side': removed since, e.g. by `kart verify "
                    f"--delete`); no task counts it as its output, so a build does not write it again by itself. "
                    f"Build {writers[0]} again with rerun=True."
                )
            raise MissingOutputError(
                f"Cannot load {self._describe_owner()}: {self._path!r} does not exist. Build the task first "
                "(kart_core.build(task)), or check the workspace_directory."
            )

    @contextlib.contextmanager
    def _writing(self) -> Iterator[IO[bytes]]:
        """Yield the file to write; on success it becomes the output (see ``kart_core.transaction``).

        Inside a task's run the written file is staged and committed by ``run_one``; elsewhere it is
        put in place at once. Either way it is whole or absent, hashed for the integrity record, and
        sealed when signing is on. A dump from a thread that the task's ``run()`` started is staged in
        that run too (``kart_core.transaction.join``).

        Raises:
            RunWriteError: the dump cannot join the task's run (a child process of it, a thread still
                dumping after ``run()`` returned); nothing is written.
        """
        running = transaction.join(self._run_slot(), writing=True, what=f"its output {self._path!r}", label=self.owner)
        settings = target_config.current()
        signer = self._signer if self._signer is not None else settings.signer
        record = self.record if settings.record else None
        side: OutputRecord | None = None
        if running is not None and record is not None and running.side(record):
            # A side target of the run's task: committed with the run, not its output (N16), listed under its
            # manifest's ``side`` and sealed with the run's commit (at16 G4: kart_core.side_record).
            side, record = record, None
        commit = running.commit_id if running is not None else (new_commit_id() if record else None)
        if running is not None and record is not None:
            running.remember_base(storage_for(record.manifest), record)
        listed = record is not None or side is not None  # its entry is written into a manifest
        # Only a listed file needs the hash; a signed one is read back anyway (to seal it).
        spool = self._storage.spool(self._path, hashed=listed and signer is None)
        sealed: Spool | None = None
        try:
            yield spool.file
            spool.file.flush()
            known = spool.written()
            if known is not None:
                size, digest = known
                final = spool
            elif signer is None:
                # Read back from the page cache (a format that seeks back to patch a header, a storage
                # that does not hash while writing).
                size, digest = _read_back(spool.file) if listed else (0, "")
                final = spool
            else:
                length = spool.file.seek(0, os.SEEK_END)  # the file's size, wherever the writer left its position
                spool.file.seek(0)
                sealed = self._storage.spool(self._path)
                # Without an integrity record no manifest will hold the commit: seal without one, as a
                # bare target's, so the load checks the MAC only (it refused every such output before);
                # a run log the run commits is sealed as the run, which the manifest then names.
                seal_commit = commit if listed else self._log_commit(running, settings.record)
                mac = signer.begin(self.signing_name, seal_commit)
                size, digest = _seal(spool.file, sealed.file, mac, seal_commit, length)
                spool.discard()
                final = sealed
            owner = (record.owner or None) if record is not None else None
            entry = Entry(
                size=size, digest=f"{DEFAULT_ALGORITHM}:{digest}", commit=commit, sealed=signer is not None, owner=owner
            )
            if running is not None:
                staged = Staged(self._path, final.stage(), self._storage, record, entry, stamp=final.stamp)
                running.add(staged, side=side)
            else:
                final.publish()
                if record is not None:
                    if signer is None:  # the file it vouches for, now in place (``Entry.stamp``, ``Entry.tag``)
                        entry = dataclasses.replace(
                            entry, stamp=local_file_stamp(self._path), tag=_published_tag(self._path)
                        )
                    self._record_direct_dump(record, entry, signer)
        except OSError as exc:
            if not NoSpaceError.caused_by(exc):
                raise
            # A full disk is the workspace's, not the format's: say so, and that the spool goes (finally).
            raise NoSpaceError(
                f"No space left to write {self._describe_owner()} to {self._path!r} ({exc}"
                f"{no_space_note(self._path)}). Nothing was written: "
                "the temporary file is removed. Free space on that disk (or raise the quota), then build again."
            ) from exc
        finally:
            spool.discard()
            if sealed is not None:
                sealed.discard()

    def _log_commit(self, running: transaction.Transaction | None, records: bool) -> str | None:
        """The commit a signed run log staged by ``running`` is sealed as (``kart_core.log_binding``): the
        run's, when it is a log the run commits with its outputs and the commit writes the task's manifest
        (which then names the run, ``Manifest.logs``); else None (the MAC alone is checked)."""
        if running is None or not records:
            return None
        bound = log_binding.manifest_of(self._path, self._name)
        record = running.record_named(bound[1]) if bound is not None else None
        if record is None:
            return None
        running.logged.add(record.manifest)
        return running.commit_id

    def _record_direct_dump(self, record: OutputRecord, entry: Entry, signer: Signer | None) -> None:
        """Record a dump made outside any run (already in place) in its manifest.

        Raises:
            NoSpaceError: the manifest did not fit; the output just put in place is removed (its manifest
                would not describe it, so it would load as damaged).
        """
        try:
            siblings = _recorded_siblings if signer is None else None
            transaction.record_direct_dump(storage_for(record.manifest), record, entry, signer, siblings=siblings)
        except OSError as exc:
            if not NoSpaceError.caused_by(exc):
                raise
            self._storage.remove(self._path)
            raise NoSpaceError(
                f"No space left to record {self._describe_owner()} in its manifest {record.manifest!r} "
                f"({exc}{no_space_note(record.manifest)}). "
                f"The output just written to {self._path!r} is removed: its manifest does not describe it. Free "
                "space on that disk (or raise the quota), then build again."
            ) from exc

    @contextlib.contextmanager
    def _reading(self) -> Iterator[IO[bytes]]:
        """``_read_checked``, as a load of the run it belongs to when made outside every run's context (a thread that a
        ``run()`` started, a child of a pool made before it: ``transaction.off_context``)."""
        found = self.__dict__
        with (
            transaction.off_context(self.record, found.get("_kart_relay"), found.get("_kart_reader")),
            self._read_checked() as raw,
        ):
            yield raw

    def __getstate__(self) -> dict[str, Any]:
        # Pickled during a run (sent to a process pool, also one made before the run), the target carries the relay
        # its loads there are sent through (transaction.relay_for); a copy sent back leaves it behind.
        state = dict(self.__dict__)
        state.pop("_kart_relay", None)
        relay = transaction.relay_for(self.record, state.pop("_kart_reader", None))
        if relay is not None:
            state["_kart_relay"] = relay
        return state

    @contextlib.contextmanager
    def _read_checked(self) -> Iterator[IO[bytes]]:
        """Open the output for reading, after the checks its record and signing call for.

        The size is checked against the integrity record always; the content hash when verify is on
        (``[TaskOnKart] verify_outputs`` / ``KART_VERIFY_OUTPUTS``); the signature when signing is on.
        Checked content is read once and handed on from memory, so what was checked is what loads.
        On object storage (no modification time to compare) the task's marker is asked for too: while a
        run of the task writes its outputs by path or commits, the bytes read must hash to the commit.
        """
        running = transaction.join(self._run_slot(), reading=True)
        staged = running.lookup(self._path) if running is not None else None
        private = _private_of(running, self._path)
        if private is not None and self._storage.exists(private):
            # The running task's own file, written by the path it was handed (after a dump of it too, which the
            # path request copied there): not committed, so there is no record or signature to check.
            with self._storage.open_read(private) as raw:
                yield raw
            return
        settings = target_config.current()
        signer = self._signer if self._signer is not None else settings.signer
        entry = staged.entry if staged is not None else (self._committed_entry(signer) if settings.record else None)
        if staged is None and entry is not None:
            self._check_owner(entry)
        elif staged is None and signer is None and settings.record and self.record is not None:
            # Absent: the load's error is MissingOutputError (a FileNotFoundError, as gokart's), not a diagnosis of a
            # file that is not there (attacker at21 L2). One more stat (request) in this rare case only: no record.
            self._require_existing()
            self._warn_unvouched(self.record, settings.warned)
        recheck = False
        # A file no record vouches for, loaded by a running task: its stamp before the open, so what is recorded
        # for the load is the file the load read, not one put there meanwhile (attacker at16 G11).
        unrecorded, before = self._unrecorded_reader(staged, entry)
        with contextlib.ExitStack() as files:
            raw = files.enter_context(self._storage.open_read(staged.location if staged is not None else self._path))
            if signer is not None:
                data = raw.read()
                if staged is None and entry is None and not is_sealed(data) and transaction.admits_raw(self._path):
                    # A raw input of the running task (no run(), a data format): nothing to sign; the run records its
                    # content hash in its signed manifest (attacker at25 F11).
                    yield io.BytesIO(data)
                    self._note_unrecorded(unrecorded, before)
                    return
                # Records off: no manifest to hold a commit, so the MAC alone is checked.
                try:
                    self._check_signature(data, signer, entry, staged is not None or not settings.record)
                except _Unvouched as refused:  # read across a commit, or an older version put back
                    data, entry = self._read_settled(signer, entry, refused)
                self._note_load(staged, entry)
                if entry is not None:
                    self._check_size(len(data), entry)
                    if settings.verify:
                        self._check_hash(data, entry)
                yield io.BytesIO(data[HEADER_SIZE:])
                self._note_unrecorded(unrecorded, before)
                return
            if entry is not None:
                size, status = _stream_status(raw)
                if staged is None and size is not None and size != entry.size:
                    # The manifest read before another process's commit, the file opened after it?
                    entry, raw = self._reopened(entry, signer, raw, size, files)
                    size, status = _stream_status(raw)
                # Not the file kart recorded for its commit (another writer: gokart's rerun, an edit, a copy, a link)?
                rewritten = (
                    not_committed_note(status, entry, self.record.manifest)
                    if staged is None and self.record and status is not None
                    else None
                )
                # Object storage: the version tag sent with the bytes (no request of its own) against the commit's.
                tag, vouched = None, False
                if staged is None and status is None and self.record is not None and entry.tag is not None:
                    tag = opened_tag(raw)
                    if tag is not None and tag != entry.tag:
                        entry = self._entry_now(entry, signer)  # the manifest read before another process's commit?
                    # Vouched only for bytes all of that version (read_pinned: small objects, S3's If-Match, GCS's
                    # pinned generation; not gcsfs's own file, as before).
                    vouched = tag is not None and tag == entry.tag and read_pinned(raw)
                    rewritten = object_change_note(tag, entry)
                self._check_size(size, entry, rewritten)
                # Object storage without a tag has no modification time to compare: a marker tells a rewrite in
                # progress. The version the commit recorded (its tag) is the committed content, marker or not.
                remote = staged is None and status is None and not settings.verify and not rewritten and not vouched
                in_progress = self._marker() if remote else None
                if settings.verify or rewritten or in_progress is not None:
                    opened = _open_stamp(raw) if rewritten and not settings.verify else None
                    data = raw.read()
                    self._check_size(len(data), entry, rewritten)
                    adopted = None
                    if rewritten and not settings.verify:
                        if tag is not None and (marker := self._marker()) is not None:
                            # A run of the task committing or writing by path (on another host: no lock tells):
                            # served only when the bytes are the committed ones, as without a tag.
                            self._check_committed_bytes(data, entry, marker)
                        elif tag is None:
                            self._check_not_being_written(entry)
                        # The tag of bytes all of one version only (else the next load hashes, and records it then).
                        adopted = self._new_version(data, entry, status, tag if read_pinned(raw) else None)
                        if adopted is None and status is not None and self.record is not None:  # a copied workspace
                            if entry.stamp is not None:  # this file's stamp recorded: the next load is one fstat
                                settle_stamp(self.record.manifest, self._path, entry, status, self.record.lock_params())
                            elif opened is not None:
                                settle_copied(self.record.manifest, (self._path, opened))
                        elif adopted is None and tag is not None and self.record is not None:  # copied, or put again
                            settle_tag(self.record.manifest, self._path, entry, tag, self.record.lock_params())
                    elif in_progress is not None:
                        self._check_committed_bytes(data, entry, in_progress)
                    else:
                        entry = self._hash_checked(data, entry, rewritten, staged is None)
                    if adopted is None:
                        self._note_load(staged, entry)
                    yield io.BytesIO(data[HEADER_SIZE:] if entry.sealed else data)
                    # Whole per its format (it parsed): recorded, it is what the running task was built
                    # from. Not recorded (read-only workspace, a commit meanwhile): nothing vouches for it,
                    # and the running task records what it loaded, the commit it compared against with the
                    # content hash of the bytes it read, so a later commit of other content (or another
                    # rewrite) makes it stale and one of the same content does not (kart_core.lineage).
                    if adopted is not None and rewritten:
                        recorded = self._record_new_version(entry, adopted, rewritten)
                        self._note_load(
                            staged, adopted if recorded else dataclasses.replace(adopted, commit=entry.commit)
                        )
                    return
                # A large object is read in parts while it loads (a small one was read whole at the open, before
                # the marker was asked): a run that began writing it by path meanwhile put its marker first.
                recheck = remote and not isinstance(raw, io.BytesIO)
            self._note_load(staged, entry)
            head = raw.read(len(MAGIC))
            if is_sealed(head):  # signed while signing was on; signing is off now
                yield io.BytesIO((head + raw.read())[HEADER_SIZE:])
            else:
                raw.seek(0)
                yield raw
            if recheck and entry is not None and (marker := self._marker()) is not None:
                raise self._being_rewritten(entry, marker)  # its parts may come from two versions
        self._note_unrecorded(unrecorded, before)

    def _entry_now(self, entry: Entry, signer: Signer | None) -> Entry:
        """The output's entry read again when its task committed since ``entry`` was read: a load that read the
        manifest before another process's commit and opened the file after it holds that commit's file (attacker
        at18 I6's kind, without signing: refused as damage before). ``entry`` itself when the manifest still records
        it, or cannot be read again (the load's own check then decides).

        Raises:
            ForeignOutputError: the entry committed since is another class's.
        """
        try:
            found = self._committed_entry(signer)
        except (DamagedOutputError, IntegrityError):
            return entry
        if found is None or found.commit == entry.commit:
            return entry
        self._check_owner(found)
        return found

    def _reopened(
        self, entry: Entry, signer: Signer | None, raw: IO[bytes], size: int, files: contextlib.ExitStack
    ) -> tuple[Entry, IO[bytes]]:
        """For a committed output opened with another size than ``entry`` records: the entry its task committed since
        (``_entry_now``) and the file opened again when that differs, repeated while commits follow (at most
        ``_SETTLE_READS``); ``(entry, raw)`` as they were when the manifest still records ``entry`` (the size check then
        reports the damage). Files opened are closed with ``files``.

        Raises:
            ForeignOutputError: the entry committed since is another class's.
            FileNotFoundError: the output was removed meanwhile.
        """
        for _ in range(_SETTLE_READS):
            newer = self._entry_now(entry, signer)
            if newer is entry:
                break
            if newer.size != size:  # the file opened is not that commit's either: open what is there now
                raw = files.enter_context(self._storage.open_read(self._path))
                found = _stream_status(raw)[0]
                size = found if found is not None else newer.size
            entry = newer
            if entry.size == size:
                break
        return entry, raw

    def _hash_checked(self, data: bytes, entry: Entry, rewritten: str | None, committed: bool) -> Entry:
        """``_check_hash``; on a mismatch of a committed file (``committed``), once more against the entry its task
        committed since (``_entry_now``). The entry ``data`` matched.

        Raises:
            DamagedOutputError: ``data`` is not the content the task's manifest records (before or after).
        """
        try:
            self._check_hash(data, entry, rewritten)
        except DamagedOutputError:
            newer = self._entry_now(entry, None) if committed else entry
            if newer is entry:
                raise
            self._check_size(len(data), newer)
            self._check_hash(data, newer)
            return newer
        return entry

    def _read_settled(self, signer: Signer, entry: Entry | None, refused: _Unvouched) -> tuple[bytes, Entry | None]:
        """Read the output and its record again after its signed commit was not vouched for (``refused``): a load
        that met another process's commit (attacker at18 I6) reads what that commit left; an older version put back
        stays refused. ``(bytes, entry)`` of the file as checked.

        A side file (no entry: no manifest of the loading task lists it) is read again under the path's lock
        (``side_record.settled``), which a commit holds from its move to its record, so the file and its record are
        one commit's; a task's output after any commit of its task has finished (``_committed_entry``). The reads
        repeat while what they find changes (a commit after each, at most ``_SETTLE_READS``); a state found twice
        is refused.

        Raises:
            IntegrityError: the file is still not what its record vouches for (the refusal names what the record
                says and what to do), or a commit of the path held its lock for ``side_record.SETTLE_SECONDS``.
            DamagedOutputError: the task's manifest cannot be read, or a commit of it was killed half way.
            ForeignOutputError: the entry read again is another class's.
            FileNotFoundError: the file was removed meanwhile.
        """
        record = self.record
        assert record is not None  # a commit is checked only against a record
        seen = (entry.commit if entry is not None else None, refused.commit)
        side = entry is None
        for _ in range(_SETTLE_READS):
            try:
                with _settling(record) if side else contextlib.nullcontext():
                    entry = self._committed_entry(signer)
                    if entry is not None:
                        self._check_owner(entry)
                    data = self._storage.read_bytes(self._path)
                    try:
                        self._check_signature(data, signer, entry, False)
                    except _Unvouched as again:
                        refused = again
                    else:
                        return data, entry
            except TaskLockException:
                raise IntegrityError(
                    f"Cannot load {self._path!r}{self._through()} yet: a run committing this path "
                    f"held its lock for {side_record.SETTLE_SECONDS:g} s while this load waited for it (a stopped or "
                    "very slow run, whose file may be in place before its record names it). Load again once it has "
                    f"finished. Were no run committing it, the load would be refused: {refused}"
                ) from None
            found = (entry.commit if entry is not None else None, refused.commit)
            if found == seen:
                break
            seen = found
        raise IntegrityError(str(refused))

    def _marker(self) -> commit_marker.Marker | None:
        """The commit-in-progress or direct-write marker beside the task's manifest (one request), if any."""
        record = self.record
        if record is None:
            return None
        return commit_marker.read_marker(storage_for(record.manifest), commit_marker.marker_path(record))

    def _check_committed_bytes(self, data: bytes, entry: Entry, marker: commit_marker.Marker) -> None:
        """While a run of the task writes its outputs or commits (``marker``): serve ``data`` only when it is
        the committed content (its hash matches ``entry``), not a rewrite of the same size that has not committed.

        On object storage a load cannot tell a rewrite by its time (one-second steps, no local mtime), and a
        same-size rewrite passes the size check: the hash is checked whenever the marker is there, so the
        read of the whole output happens only then.

        Raises:
            DamagedOutputError: (kind "commit") the bytes differ from the commit: a build waits for that run
                under the task's lock (``kart_core.repair``) and loads what it commits.
        """
        algorithm, _, expected = entry.digest.partition(":")
        if not available(algorithm):
            return  # recorded by a process with another hash library: the size check held
        if digest_bytes(memoryview(data)[HEADER_SIZE:] if entry.sealed else data, algorithm) == expected:
            return
        raise self._being_rewritten(entry, marker)

    def _being_rewritten(self, entry: Entry, marker: commit_marker.Marker) -> DamagedOutputError:
        """The error of a load that met a run of its task writing or committing its outputs (``marker``)."""
        record = self.record
        assert record is not None  # a marker is read only beside a record's manifest
        how = (
            "is writing its outputs straight to their paths" if marker.kind == commit_marker.DIRECT else "is committing"
        )
        detail = (
            f"a run of {record.task} (process {marker.pid} on {marker.host}) {how} and has not finished (or was "
            "killed); the bytes there are not the committed ones"
        )
        return DamagedOutputError(
            f"The output of {record.task} (unique id {record.unique_id}) at {self._path!r} is being rewritten: "
            f"{detail}. A build waits for that run (it holds the task's lock) and loads what it commits; or load "
            "again when it has finished.",
            path=self._path,
            kind="commit",
            commit=entry.commit,
            detail=detail,
        )

    def _note_load(self, staged: Staged | None, entry: Entry | None) -> None:
        """Tell the running task which committed entry it loaded (``kart_core.lineage``: what it was built from).

        Outside any run inside a build nested in a run's ``run()`` (its roots' loads), the record goes to that run
        (``transaction.reader``). In a child process of the run (a task's or target's load in a child it was sent to:
        ``transaction.relayed``; a forked copy of its context; a worker of a pool made before the run) the record is
        sent to the run (``transaction.load_reader``, ``kart_core.child_loads``).

        Raises:
            LoadOSError: in a child process, the record could not be sent to the run.
        """
        if staged is not None or entry is None or self.record is None:
            return  # a load of a file no record vouches for is told after its read (``_note_unrecorded``)
        running = transaction.load_reader()
        if running is not None:
            running.note_load(self.record, entry)

    def _unrecorded_reader(
        self, staged: Staged | None, entry: Entry | None
    ) -> tuple[
        transaction.Transaction | child_loads.Relay | child_loads.Relays | transaction.Adopted | None, Opened | None
    ]:
        """For a load of a file no integrity record vouches for (a raw file dropped in by hand, gokart's output) by
        a running task other than its own: that run (or the relay to it, as ``_note_load``) and the file's stamp and
        content hash (``damage.before_unrecorded_load``), taken before the load opens it. ``(None, None)``
        otherwise, or when the store cannot be asked (nothing is recorded, as before)."""
        if staged is not None or entry is not None or self.record is None or not target_config.current().record:
            return None, None
        running = transaction.load_reader()
        if running is None or self.record.task == running.label:  # none, or the task's own file
            return None, None
        try:
            return running, before_unrecorded_load(self._path)
        except OSError:
            return None, None

    def _note_unrecorded(
        self,
        running: transaction.Transaction | child_loads.Relay | child_loads.Relays | transaction.Adopted | None,
        before: Opened | None,
    ) -> None:
        """After the load read a file no record vouches for: record its stamp and content hash as the running task's
        input (``_unrecorded_reader``), so a new file there makes the task stale (attacker N12), but only while the
        file stayed the one the load opened (``damage.loaded_unrecorded``).

        Raises:
            InputChangedError: the file was replaced or written while it loaded (a new data drop landing during the
                read): the value loaded cannot be told apart from what the file holds, so the run fails. Not for a
                metadata-only change (a chmod, chown or hard link with the same content).
            LoadOSError: in a child process, the record could not be sent to the run.
        """
        if running is None or self.record is None or before is None:
            return
        found = loaded_unrecorded(self._path, before)
        if found.changed:
            reader = running.label
            raise InputChangedError(
                f"{reader} loaded {self._path!r} (the output of {self.record.task}, which no integrity record "
                f"vouches for: a file put there by hand, or written by gokart), and {found.changed}. "
                f"What {reader} read may be the old file, the new one or a mix, "
                f"so its run fails instead of recording one beside the other's result. Build again once the new "
                f"file is complete (rerun {reader}): the run then loads what is there.",
                path=self._path,
            )
        if found.stamp is not None:
            running.note_unrecorded(self.record, found.stamp, found.digest)

    def _new_version(
        self, data: bytes, entry: Entry, status: os.stat_result | None = None, tag: str | None = None
    ) -> Entry | None:
        """The entry of a new version for a same-size output written after kart's commit with other
        content; None when its content is the committed one (touched, or copied with the workspace).
        ``status``: the ``fstat`` of the local file ``data`` was read from, before the read: its stamp is the new
        entry's (``Entry.stamp``) unless it changed too recently to be told from a write just after (then the old
        entry's stays, which it does not match: the next load hashes it again). ``tag``: on object storage, the
        version tag sent with ``data`` (``Entry.tag``), the new entry's.

        Another writer (gokart rerunning the task, say) replaced the file whole, or it was edited in place:
        kart cannot tell which without verify, and gokart would load it. So it is not served as the
        commit the manifest records: once the format has read it whole, ``_record_new_version`` records
        it with a new commit id, and tasks built from the old commit become stale (``kart_core.lineage``).
        With verify on, such a file is damage instead (``_check_hash``).
        """
        algorithm, _, expected = entry.digest.partition(":")
        if self.record is None or not available(algorithm):
            return None
        found = digest_bytes(memoryview(data)[HEADER_SIZE:] if entry.sealed else data, algorithm)
        if found == expected:
            return None
        stamp = entry.stamp if status is None or settle_unsafe(status) else file_stamp(status)
        return dataclasses.replace(
            entry,
            digest=f"{algorithm}:{found}",
            commit=new_commit_id(),
            sealed=False,
            stamp=stamp,
            tag=tag if tag is not None else entry.tag,
        )

    def _check_not_being_written(self, entry: Entry) -> None:
        """Before a rewritten file is taken for a new version: raise when a run of the task is writing its
        outputs straight to their paths (a ``direct`` marker, ``kart_core.direct_write``), so its half-written
        file is not recorded as the task's output.

        Raises:
            DamagedOutputError: (kind "commit") such a run has not committed (or was killed): a build
                waits for it under the task's lock (``kart_core.repair``) and loads what it commits.
        """
        marker = self._marker()
        if marker is not None and marker.kind == commit_marker.DIRECT:
            raise self._being_rewritten(entry, marker)

    def _record_new_version(self, entry: Entry, adopted: Entry, rewritten: str) -> bool:
        """Write ``adopted`` (``_new_version``) into the task's manifest, replacing ``entry``, and say so.

        Returns whether it was recorded: not when a run committed meanwhile, nor when the manifest cannot
        be written (``_unrecorded_version``: a reader without write access still gets the file).
        """
        record = self.record
        if record is None:
            return False
        try:
            # Only over the entry this load compared against: a run that committed meanwhile is what is there now.
            if not transaction.record_direct_dump(
                storage_for(record.manifest), record, adopted, None, replacing=entry.commit, siblings=_recorded_siblings
            ):
                return False
        except OSError as exc:
            self._unrecorded_version(record, rewritten, exc)
            return False
        logger.warning(
            "%s: the output at %r was rewritten outside kart (%s) with other content of the same size; kart "
            "records it as a new version (commit %s, was %s), so tasks built from the old content are stale and "
            "rerun. If it was not meant to change, rebuild %s with rerun=True.%s",
            record.task,
            self._path,
            rewritten,
            (adopted.commit or "")[:8],
            (entry.commit or "")[:8],
            record.task,
            # A path without the unique id is every parameter set's: another one's run may have written it.
            "" if record.unique_id in record.key else _SHARED_PATH_NOTE,
        )
        return True

    def _unrecorded_version(self, record: OutputRecord, rewritten: str, error: OSError) -> None:
        """Warn (once per path and build, as ``_warn_unvouched``) that a same-size rewrite loads unchecked
        because its new version cannot be recorded: the workspace is read-only for this process (a
        permission, a read-only mount or credential). The load goes on, as gokart's would; it does not
        fail after its read with the storage's error (nor as damage, which a build would try to repair
        by running the task again in a workspace it cannot write)."""
        warned = target_config.current().warned
        if f"unrecorded:{self._path}" in warned:
            return
        warned.add(f"unrecorded:{self._path}")
        logger.warning(
            "%s: the output at %r was rewritten outside kart (%s) with other content of the same size; it loads "
            "unchecked, as gokart would load it, since kart cannot record it as a new version in %r: %s. A task "
            "that loads it records the content it loaded, so it is stale once the output holds other content. A "
            "load with write access to the workspace records it; `kart verify` lists it; if it was not meant to "
            "change, rebuild %s with rerun=True.",
            record.task,
            self._path,
            rewritten,
            record.manifest,
            f"{type(error).__name__}: {error}",
            record.task,
        )

    def _warn_unvouched(self, record: OutputRecord, warned: set[str]) -> None:
        """Warn when no integrity record vouches for an output that gokart did not write either
        (``kart_core.damage.unvouched_reason``): it loads unchecked, as gokart would load it.

        Once per path and ``warned`` (the build's ``target_config`` scope: a long-lived process, e.g. an
        Airflow worker, says it again in each build's log; a load outside any build says it each time).

        Raises:
            DamagedOutputError: (kind "unfinished") a run of the task started and never finished (its
                start-of-run logs are there, its task log is not): the file may be partial (attacker at14 N7).
        """
        origin, reason = unvouched_reason(record) if self._path not in warned else ("", "")
        running = transaction.current()
        if origin == "unfinished" and running is not None and running.label == record.task:
            # The task's own run is the one in progress here, not a dead one: a file it reads through its own
            # make_target (a shared path another task wrote, attacker at16 G5) loads as gokart's would.
            return
        if origin == "unfinished":  # never served: a build rebuilds it (kart_core.repair), as damage
            raise self._unfinished(record, reason)
        if origin in ("", "gokart"):
            return  # a resources/ folder shared with gokart: its outputs load as gokart's do
        warned.add(self._path)
        if self._listed_as_side(record):
            return  # a side file (attacker at19 J8): a run listed it under 'side'; unchecked by design without signing
        logger.warning(
            "%s: the output at %r loads unchecked: %s. If it may be wrong, delete it (or rebuild %s with "
            "rerun=True); `kart verify` lists every such file.",
            record.task,
            self._path,
            reason,
            record.task,
        )

    def _listed_as_side(self, record: OutputRecord) -> bool:
        """Whether a manifest of the workspace lists the path under ``side`` (a run dumped it beside its outputs:
        ``kart_core.side_record``): the loading task's own manifest first, else every manifest (a task that never
        wrote the path). A manifest that cannot be read counts as not listing it (the warning stands).

        Without signing nothing tells which of the runs listing it wrote the file last, so such a file loads
        unchecked, as the docs say, and no warning claims its manifest is gone or that no run recorded it.
        """
        try:
            own = read_manifest(storage_for(record.manifest), record.manifest, record.manifest_name, None, run=False)
            if own is not None and record.key in own.side:
                return True
            return side_record.listed(record, None)
        except (OSError, DamagedOutputError, IntegrityError):
            return False

    def check_finished(self) -> None:
        """Raise when the output is what an unfinished run of its task left (no integrity record lists it, and
        its task has start-of-run logs but no task log), as a load of it would (``_warn_unvouched``).

        For a build that does not load its roots (``kart run``, ``gokart.run``, ``build(return_value=False)``):
        such a root is run again, not reported as cached (attacker at14 N7). One manifest read and up to four
        stats; nothing when records are off or signing is on (a load refuses an unsigned file anyway). An
        unreadable manifest is damage that only a load looks for (as ``check_signed``).

        Raises:
            DamagedOutputError: (kind "unfinished") naming the task, the file and the run logs found.
        """
        settings = target_config.current()
        record = self.record
        if record is None or not settings.record or (self._signer or settings.signer) is not None:
            return
        try:
            if self._committed_entry(None) is not None:
                return
        except DamagedOutputError:
            return
        origin, reason = unvouched_reason(record)
        if origin == "unfinished":
            raise self._unfinished(record, reason)

    def _unfinished(self, record: OutputRecord, reason: str) -> DamagedOutputError:
        return DamagedOutputError(
            f"Cannot load the {self.what} of {record.task} at {self._path!r}: {reason}. A build runs "
            f"{record.task} again when repairs are on (the default); else delete the file or rebuild "
            f"{record.task} with rerun=True.",
            path=self._path,
            kind="unfinished",
            detail=reason,
        )

    def check_load(self) -> None:
        """Make the checks a load of the output makes, without handing its bytes to the format.

        For a scheduler that hands the output on by path (``kart_core.runner.repair_if_damaged``: Airflow's XCom
        path and asset events, read by consumers that are not kart tasks): the size against the integrity record;
        the content hash when verify is on (``[TaskOnKart] verify_outputs`` / ``KART_VERIFY_OUTPUTS``) or when the
        file is not the one its commit recorded (``kart_core.damage.not_committed_note``: another stamp, or without
        one written after the manifest; with verify off a same-size file of other content is recorded as a new
        version, as a load records it); the signature when signing is on (the whole file is read, as a load reads
        it); on object storage, a run of the task writing or committing it. Without verify, signing or a rewrite,
        one open and a stat of the output (and of its manifest, for an entry without a stamp): no content read.

        A folder at the path (an output its run wrote by path as a folder: no integrity record lists it, and no format
        loads it) has nothing to check here.

        Raises:
            MissingOutputError: the file is not there.
            DamagedOutputError: as a load: another size or (as above) content than its commit, an unreadable
                manifest, a commit of the task cut short.
            IntegrityError: signing refuses the file or its manifest (never repaired: it may be tampering).
            ForeignOutputError: another task class of the same name committed it.
        """
        if "://" not in self._path and os.path.isdir(self._path):
            return
        try:
            with self._reading():
                pass
        except FileNotFoundError:
            self._require_existing()  # gone
            # There, yet no file to open: a folder (a prefix) on object storage.

    def _committed_entry(self, signer: Signer | None) -> Entry | None:
        """The output's entry in its task's manifest, read after any commit in progress has finished.

        Raises:
            DamagedOutputError: the manifest is unreadable, or (kind "commit") a commit that replaced
                the task's outputs was killed half way (``kart_core.commit_marker``).
            IntegrityError: signing refuses the manifest.
        """
        record = self.record
        if record is None:
            return None
        storage = storage_for(record.manifest)
        waits = 0
        while True:
            # Without its inputs: a load needs the entry and the pending state only (a fan-in of 100,000 records as
            # many inputs, 67 MiB parsed at the end of its first build for nothing).
            found = read_manifest(storage, record.manifest, record.manifest_name, signer, inputs=False)
            if found is None:
                return None
            waits += 1
            # False: a commit was in progress and has finished: read its manifest.
            if commit_marker.note_manifest(record, found) or waits >= _COMMIT_WAITS:
                return found.outputs.get(record.key)

    def _check_owner(self, entry: Entry) -> None:
        """Raise ``ForeignOutputError`` when another task class of the same name committed this output."""
        record = self.record
        if record is None or not record.owner or entry.owner is None or entry.owner == record.owner:
            return
        detail = f"it was committed by {entry.owner}, not by {record.owner}"
        message = (
            f"The output of {record.task} (unique id {record.unique_id}, class {record.owner}) at {self._path!r} "
            f"belongs to another task class of the same name: {detail} (integrity record {record.manifest!r}). "
            "Same-named classes with equal parameters share gokart's file names. Fix: build the task again with "
            "rerun=True (a build does so itself unless repairs are off), or rename one of the classes."
        )
        raise ForeignOutputError(message, path=self._path, kind="owner", commit=entry.commit, detail=detail)

    def _damage_behind(self, error: BaseException) -> DamagedOutputError | None:
        """After the format failed to parse the output: whether the file differs from its integrity record.

        A load without verify checks only the size, so same-size damage (flipped bytes) shows as a parse
        error. Hashing the file then tells damage (``DamagedOutputError``, kind "hash": a build rebuilds
        the task when repairs are on, ``kart_core.repair``) from a file kart committed as it is (None:
        the format itself cannot read it). None too when there is no record to compare with, the file
        is one staged by the running task, or the record cannot be read (the load's own error stands).
        """
        running = transaction.join(self._run_slot(), reading=True)
        if running is not None and running.lookup(self._path) is not None:
            return None
        settings = target_config.current()
        if self.record is None or not settings.record:
            return None
        signer = self._signer if self._signer is not None else settings.signer
        try:
            entry = self._committed_entry(signer)
            if entry is None:
                return None
            with self._storage.open_read(self._path) as raw:
                status = _stream_status(raw)[1]
                data = raw.read()
                rewritten = not_committed_note(status, entry, self.record.manifest) if status is not None else None
            self._check_size(len(data), entry, rewritten)
            self._check_hash(data, entry, rewritten)
        except DamagedOutputError as damage:
            return damage
        except Exception:  # noqa: BLE001 - the record or file cannot be read again: the load's own error says more
            return None
        return None

    def _next_step(self) -> str:
        """What to do when an output cannot be parsed and no damage against its record was found."""
        record = self.record
        who = f"{record.task} (unique id {record.unique_id})" if record else self._describe_owner()
        other_format = "If it was written by another format or tool, pass processor=... to make_target."
        if not self._has_integrity_entry():  # `kart verify` would find nothing to check, nor delete
            where = f" (none in {record.manifest!r})" if record else ""
            return (
                f"There is no integrity record for this file{where}: written by gokart, before kart kept records, "
                "or its record was removed, so `kart verify` cannot check it. If it is damaged, build "
                f"{who} again with rerun=True, or delete {self._path!r} so the next build runs it again. {other_format}"
            )
        return (
            f"Next step: `kart verify` checks every output of the workspace against its integrity record; if this "
            f"file is damaged, `kart verify --delete` removes it and the next build runs {who} again. {other_format}"
        )

    def _has_integrity_entry(self) -> bool:
        settings = target_config.current()
        if self.record is None or not settings.record:
            return False
        try:
            signer = self._signer if self._signer is not None else settings.signer
            return self._committed_entry(signer) is not None
        except Exception:  # noqa: BLE001 - a record that cannot be read is one verify reports
            return True

    def _check_size(self, size: int | None, entry: Entry, rewritten: str | None = None) -> None:
        if size is not None and size != entry.size:
            detail = f"{entry.size} bytes were committed, found {size} bytes"
            raise self._damaged("size", entry, detail, rewritten)

    def _check_hash(self, data: bytes, entry: Entry, rewritten: str | None = None) -> None:
        algorithm, _, expected = entry.digest.partition(":")
        if not available(algorithm):
            return  # recorded by a process with another hash library: the size check still held
        found = digest_bytes(memoryview(data)[HEADER_SIZE:] if entry.sealed else data, algorithm)
        if found != expected:
            detail = f"content hash {entry.digest} was committed, found {algorithm}:{found}"
            raise self._damaged("hash", entry, detail, rewritten)

    def _damaged(self, kind: str, entry: Entry, detail: str, rewritten: str | None = None) -> DamagedOutputError:
        """The error for an output that differs from its record; ``rewritten`` (``damage.not_committed_note``)
        says the file is newer than the commit: replaced by another writer, or changed in place."""
        record = self.record
        who = f"{record.task} (unique id {record.unique_id})" if record else self._describe_owner()
        manifest = record.manifest if record else "its manifest"
        if rewritten:
            # The detail travels with the error (a repair's warning, ``kart why``): it says so too.
            detail = f"{detail}; {rewritten} (another writer, such as gokart rerunning the task, or an edit)"
            cause = (
                f"It was rewritten after kart's commit ({rewritten}): by another writer (gokart rerunning the task "
                "writes the same path, or a copy) or changed in place (truncated). A build runs the task again and "
                f"replaces it. To keep the other writer's file instead, delete {manifest!r} (kart then loads it "
                "unchecked, as gokart's). Otherwise: `kart verify --delete` (the next build runs the task again), "
                f"build the task again with rerun=True, or delete {self._path!r}."
            )
        else:
            cause = (
                "It was truncated or changed after kart committed it. Fix: `kart verify --delete` (the next build "
                f"runs the task again), build the task again with rerun=True, or delete {self._path!r}."
            )
        message = f"The output of {who} at {self._path!r} is damaged: {detail} (integrity record {manifest!r}). {cause}"
        return DamagedOutputError(message, path=self._path, kind=kind, commit=entry.commit, detail=detail)

    def _check_signature(self, data: bytes, signer: Signer, entry: Entry | None, staged: bool) -> None:
        seal = signer.verify(data, self.signing_name)
        if seal is None and self.record is None and self._name is not None:
            # Signed by kart before run logs (and record-less outputs) bound their workspace-relative
            # name: the full path was bound, which holds where the file was written only.
            seal = signer.verify(data, canonical_location(self._path))
        if seal is None:
            raise IntegrityError(self._refusal(data, entry))
        if self.record is None and not staged:
            fault = log_binding.commit_fault(self._path, self._name, seal.commit, signer)
            if fault is not None:
                raise IntegrityError(
                    f"Refusing to load {self._describe_owner()} from {self._path!r}: {fault}. Fix: build the task "
                    "again with rerun=True (it writes its run logs anew), or `kart verify --delete` removes the log."
                )
        if staged or self.record is None:
            return
        if seal.commit is None and entry is None:
            if side_record.recorded(self.record) or side_record.listed(self.record, signer):
                raise IntegrityError(
                    f"Refusing to load {self._describe_owner()} from {self._path!r}: it is signed without a commit, "
                    f"but a run of this kart committed the path with its commit (the path's side-file record "
                    f"{side_record.name_for(self.record.key)!r} names it, or a signed manifest lists the path under "
                    "'side'): an older version copied back (written by an older kart, or while integrity records "
                    "were off). Fix: build the task that writes it again with rerun=True, or delete the file."
                )
            return  # sealed without a commit and no record of one: written while integrity records were off
        if entry is None and seal.commit is not None and side_record.vouched(self.record, seal.commit, signer):
            return  # a side file, as the run that wrote the path last committed it (whichever task's target loads it)
        # A file sealed without a commit where the manifest records one is not that commit's either: an older
        # version written while the task kept no record (or records were off), copied back.
        if entry is None and seal.commit is not None:
            record = self.record
            short = side_record.cut_short(record.workspace, record.key, seal.commit, signer)
            if short is not None:  # the task that wrote it runs again: named, not taken for a copy put back
                raise _Unvouched(
                    f"Refusing to load {self._path!r}{self._through()}: it is signed as commit {seal.commit}, but "
                    f"nothing vouches for it yet: {short.clause()}.",
                    commit=seal.commit,
                )
            if not side_record.recorded(record):  # no run committed the path as a side file: the task's output
                writer = side_record.listing_writer(record, seal.commit, signer)
                if writer is not None:  # a side file whose record alone is gone (attacker at20 K12)
                    raise _Unvouched(
                        f"Refusing to load {self._path!r}{self._through()}: it is signed as commit {seal.commit}, "
                        f"which {writer}'s manifest lists for this path under 'side', but the path's side-file record "
                        f"({side_record.name_for(record.key)!r}), which names the run that wrote the path last, is "
                        "missing (removed since): without it kart cannot tell that run's file from an older one of "
                        f"another writer put back. Fix: build {writer} again with rerun=True (it writes the file and "
                        f"its record anew). Deleting the file (`kart verify --delete`) leaves {writer} complete, so no "
                        "build writes it again by itself.",
                        commit=seal.commit,
                    )
                raise _Unvouched(
                    f"Refusing to load {self._describe_owner()} from {self._path!r}: it is signed as commit "
                    f"{seal.commit}, but the task's manifest {record.manifest!r} records no commit (its manifest has "
                    f"no entry), and no side-file record ({side_record.name_for(record.key)!r}) names the path (the "
                    "manifest was removed, or the file was copied here). Fix: `kart verify --delete` (the next build "
                    "runs the task again), or build the task again with rerun=True, or delete the file.",
                    commit=seal.commit,
                )
            # A side file, read through any task's make_target (seldom its writer's): the record names the writer.
            raise _Unvouched(
                f"Refusing to load {self._path!r}{self._through()}: it is signed as commit "
                f"{seal.commit}, but nothing vouches for that commit: {side_record.explain(record, seal.commit, signer)}.",
                commit=seal.commit,
            )
        if entry is None or entry.commit != seal.commit:
            committed = "no commit (its manifest has no entry)" if entry is None else f"commit {entry.commit}"
            signed = f"as commit {seal.commit}" if seal.commit is not None else "without a commit"
            message = (
                f"Refusing to load {self._describe_owner()} from {self._path!r}: it is signed {signed}, "
                f"but the task's manifest {self.record.manifest!r} records {committed} (an older version copied back, "
                "or the manifest was removed). Fix: `kart verify --delete` (the next build runs the task again), or build "
                "the task again with rerun=True."
            )
            if entry is not None and seal.commit is not None:  # maybe the file of a commit after the manifest's read
                raise _Unvouched(message, commit=seal.commit)
            raise IntegrityError(message)

    def _refusal(self, data: bytes, entry: Entry | None = None) -> str:
        where = f"{self._describe_owner()} from {self._path!r}"
        if not is_sealed(data):
            legacy = self._storage.exists(signature_path(self._path))
            why = (
                "it carries a signature file of an older kart, which is no longer trusted"
                if legacy
                else "kart did not sign this file"
            )
            raw = raw_input_refusal(self, transaction.load_reader() is not None) if not legacy else ""
            return (
                f"Refusing to load {where}: signing is on (KART_SIGNING_KEY / [TaskOnKart] signing_key) and {why}. "
                f"{raw or SIGNING_ADVICE}"
            )
        moved = f" {MOVED_ADVICE}" if self.record is None and self._name is not None else ""
        # A signed file of another size than its commit (attacker at20 K8): most often cut short or grown by a copy
        # or a disk, which the size tells the reader; refused all the same (the signature cannot tell it from an edit).
        size = "" if entry is None or len(data) == entry.size else f" {_size_clause(len(data), entry.size)}."
        return (
            f"Refusing to load {where}: its signature does not match (the file was changed after kart wrote it, "
            f"another output was copied over it, or it was signed with another key).{size} {SIGNING_ADVICE}{moved}"
        )

    @property
    def signing_name(self) -> str:
        """What a signature binds besides the content: a name that holds wherever the workspace lives.

        The output's workspace-relative path (its record's key, else the ``name`` it was made with: a run
        log's ``log/{kind}/{file}``); the full path (symlinks resolved, ``kart_core.lock.canonical_location``)
        only for a bare target, which knows no workspace.
        """
        if self.record is not None:
            return self.record.key
        if self._name is not None:
            return self._name
        return canonical_location(self._path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._path!r})"


def _size_clause(found: int, committed: int) -> str:
    """``It is also {n} bytes short of its commit ({committed} bytes were committed, found {found}): ...`` (or
    ``longer than``): for a refusal of a signed file whose size differs from its integrity record."""
    difference = committed - found
    how = f"{difference} bytes short of" if difference > 0 else f"{-difference} bytes longer than"
    return (
        f"It is also {how} its commit ({committed} bytes were committed, found {found}): a file cut short or "
        "grown (a copy stopped half way, a full disk) looks so; its signature cannot tell that from an edit, so it "
        "is not rebuilt by itself"
    )


@contextlib.contextmanager
def _settling(record: OutputRecord) -> Iterator[None]:
    """``side_record.settled``; without it when its lock cannot be used here (a folder it cannot write, redis down):
    the reads are then only repeated while they change, as across hosts that share no lock.

    Raises:
        TaskLockException: a commit of the path held the lock for ``side_record.SETTLE_SECONDS``.
    """
    try:
        lock = side_record.settled(record)
        lock.__enter__()
    except LockUnavailableError:
        yield
        return
    with contextlib.ExitStack() as stack:
        stack.push(lock)
        yield


def _read_back(file: IO[bytes]) -> tuple[int, str]:
    """``(size, hex digest)`` of the whole of ``file``, read from its start (``kart_core.integrity.digest_stream``)."""
    length = file.seek(0, os.SEEK_END)  # the file's size, wherever the writer left its position
    file.seek(0)
    return digest_stream(file, length=length)


def _seal(source: IO[bytes], sealed: IO[bytes], mac: Any, commit: str | None, length: int) -> tuple[int, str]:
    """Copy ``source`` (``length`` bytes from its position) into ``sealed`` after a header holding its MAC;
    return (file size, content hash)."""
    sealed.write(bytes(HEADER_SIZE))
    size, digest = digest_stream(source, DEFAULT_ALGORITHM, mac, _Sink(sealed), length=length)
    sealed.seek(0)
    sealed.write(Signer.header(commit, mac))
    sealed.flush()
    return size + HEADER_SIZE, digest


class _Sink:
    """A file seen as a hasher: ``update`` writes (so one pass hashes, MACs and copies)."""

    def __init__(self, file: IO[bytes]) -> None:
        self.update = file.write


def _recorded_siblings(record: OutputRecord, current: Manifest) -> dict[str, Entry]:
    """``kart_core.damage.rewritten_siblings``, each one named in a warning: the manifest written with them moves
    past their change, so they are recorded as new versions now (attacker at17 H11)."""
    found = rewritten_siblings(record, current)
    for key in found:
        logger.warning(
            "%s: its output %r was rewritten outside kart after its commit with other content of the same size; kart "
            "records it as a new version (with %r), so tasks built from the old content are stale and rerun.",
            record.task,
            key,
            record.key,
        )
    return found


def _published_tag(path: str) -> str | None:
    """The version tag (``Entry.tag``) of the object a dump outside any run just put at ``path`` (one HEAD; the put's
    own answer is not kept by the upload); None on local disk, or when the store gives none or cannot be asked (the
    entry is then trusted by its size, as before tags)."""
    if not protocol_of(path):
        return None
    try:
        return current_tag(path, listed=False)  # never a listing taken before the put
    except OSError:
        return None


def _open_stamp(raw: IO[bytes]) -> tuple[int, ...] | None:
    """``damage.stamp_of`` the open local file ``raw``, taken before it is read; None when it has no descriptor."""
    try:
        return stamp_of(os.fstat(raw.fileno()))
    except (OSError, AttributeError, io.UnsupportedOperation):
        return None


def _stream_status(raw: IO[bytes]) -> tuple[int | None, os.stat_result | None]:
    """The size of an open file and, for a local one, its status (one ``fstat``: its stamp and times are compared
    with its record, ``kart_core.damage.not_committed_note``): fsspec files know their size (nothing else of them is
    compared); None for what cannot be told."""
    size = getattr(raw, "size", None)
    if isinstance(size, int):
        return size, None
    try:
        found = os.fstat(raw.fileno())
    except (OSError, AttributeError, io.UnsupportedOperation):
        return None, None
    return found.st_size, found


_SHARED_PATH_NOTE = (
    " Its path carries no unique id (make_target(..., use_unique_id=False)): another parameter set of the task "
    "(kart's run or gokart's) may have written it, as in gokart."
)


class SingleFileTarget(TargetOnKart):
    """An output stored as one file in one format."""

    def __init__(
        self,
        path: str,
        processor: FileProcessor[Any],
        storage: Storage | None = None,
        owner: str | None = None,
        signer: Signer | None = None,
        record: OutputRecord | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(path, storage, owner, signer, record, name)
        self.processor = processor

    def load(self) -> Any:
        """Read the output; a clear LoadError names the task, path, processor, cause and what to do.

        Raises:
            LoadError: unreadable (MissingOutputError, a FileNotFoundError: missing; DamagedOutputError: it
                differs from its integrity record;
                IntegrityError: signing is on and the signature is wrong).
        """
        # No exists() first: on object storage that is one more request per load.
        try:
            with self._reading() as raw, open_for_processor(self.processor, raw, "r") as file:
                return self.processor.load(file)
        except (LoadError, StaleTaskError):  # StaleTaskError: a processor that checks what it hands out (RawFile's)
            raise
        except Exception as exc:
            if isinstance(exc, FileNotFoundError):
                self._require_existing()
            damage = self._damage_behind(exc)
            if damage is not None:
                raise damage from exc
            raise LoadError(
                f"Failed to load {self._describe_owner()} from {self._path!r} with {self.processor!r}.\n"
                f"{type(exc).__name__}: {exc}\n"
                f"{self._next_step()}"
            ) from exc

    def dump(self, obj: Any, lock_at_dump: bool = True, **_labels: Any) -> None:
        """Write ``obj`` atomically; a failure leaves no file at the path.

        Raises:
            DumpError: the processor could not write ``obj`` (nothing is left at the path);
                UnsupportedObjectError (a TypeError and an AssertionError, as gokart raises) when the
                processor refused the object's type.
            WorkspaceNotFoundError: the output's bucket does not exist (kart makes no buckets).
        """
        try:
            with self._writing() as raw:
                with open_for_processor(self.processor, raw, "w") as file:
                    self.processor.dump(obj, file)
        except (WorkspaceNotFoundError, NoSpaceError):
            raise  # names the bucket (the full disk) and what to do; the dump's own wording would say "folder"
        except Exception as exc:
            # Processors refuse an object they cannot hold with TypeError or AssertionError (gokart's); kart's own
            # refusal keeps its class (an UnloadableObjectError is also the ValueError of gokart's later load).
            if isinstance(exc, UnsupportedObjectError):
                error: type[DumpError] = type(exc)
            else:
                error = UnsupportedObjectError if isinstance(exc, TypeError | AssertionError) else DumpError
            raise error(
                f"Failed to dump {self._describe_owner()} to {self._path!r} with {self.processor!r}.\n"
                f"{type(exc).__name__}: {exc}\n"
                f"Nothing was written. {_DUMP_FIX_OS if isinstance(exc, OSError) else _DUMP_FIX_FORMAT}"
            ) from exc


# An OSError is the folder's (a missing or read-only workspace, a full disk), not the format's.
_DUMP_FIX_OS = "Check that the workspace folder exists or can be created, is writable and has free space."
_DUMP_FIX_FORMAT = "Check that the object suits the format of the extension, or pass processor=..."


class ModelTarget(TargetOnKart):
    """A zip holding what ``save_function(obj, path)`` wrote and the pickled ``load_function`` (gokart's layout)."""

    MODEL_FILE = "model.pkl"
    LOAD_FUNCTION_FILE = "load_function.pkl"

    def __init__(
        self,
        path: str,
        temporary_directory: str,
        save_function: Callable[[Any, str], None],
        load_function: Callable[[str], Any] | None,
        storage: Storage | None = None,
        owner: str | None = None,
        signer: Signer | None = None,
        record: OutputRecord | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(path, storage, owner, signer, record, name)
        self._temporary_directory = temporary_directory
        self._save_function = save_function
        self._load_function = load_function

    def dump(self, obj: Any, lock_at_dump: bool = True, **_labels: Any) -> None:
        """Save the model into a scratch directory, zip it and write the zip atomically."""
        with self._scratch() as scratch:
            try:
                self._save_function(obj, os.path.join(scratch, self.MODEL_FILE))
                with open(os.path.join(scratch, self.LOAD_FUNCTION_FILE), "wb") as file:
                    PickleFileProcessor().dump(self._load_function, file)
            except Exception as exc:
                raise DumpError(
                    f"Failed to save {self._describe_owner()} to {self._path!r}: {type(exc).__name__}: {exc}"
                ) from exc
            with self._writing() as raw:
                with zipfile.ZipFile(raw, "w") as archive:
                    for name in sorted(os.listdir(scratch)):
                        _add_tree(archive, scratch, name)

    def load(self) -> Any:
        """Unzip into a scratch directory and call the load function on the model path."""
        self._require_existing()
        with self._scratch() as scratch:
            with self._reading() as raw:
                data = raw.read()
            try:
                with zipfile.ZipFile(io.BytesIO(data)) as archive:
                    archive.extractall(scratch)
                load_function = self._load_function or _load_pickled(os.path.join(scratch, self.LOAD_FUNCTION_FILE))
                return load_function(os.path.join(scratch, self.MODEL_FILE))
            except Exception as exc:
                damage = self._damage_behind(exc)
                if damage is not None:
                    raise damage from exc
                raise LoadError(
                    f"Failed to load {self._describe_owner()} from {self._path!r} as a model zip.\n"
                    f"{type(exc).__name__}: {exc}\n{self._next_step()}"
                ) from exc

    def _scratch(self) -> tempfile.TemporaryDirectory[str]:
        os.makedirs(self._temporary_directory, exist_ok=True)
        return tempfile.TemporaryDirectory(dir=self._temporary_directory)


def _add_tree(archive: zipfile.ZipFile, root: str, name: str) -> None:
    full = os.path.join(root, name)
    if os.path.isdir(full):
        for child in sorted(os.listdir(full)):
            _add_tree(archive, root, os.path.join(name, child))
    else:
        archive.write(full, name)


def _load_pickled(path: str) -> Any:
    with open(path, "rb") as file:
        return PickleFileProcessor().load(file)


class LargeDataFrameProcessor:
    """Save a DataFrame as pickled chunks of about ``max_byte`` bytes; load them back in order."""

    def __init__(self, max_byte: int) -> None:
        self.max_byte = int(max_byte)

    def save(self, df: Any, file_path: str) -> None:
        """Write ``data_{i}.pkl`` chunks beside ``file_path``."""
        import numpy as np

        directory = os.path.dirname(file_path)
        os.makedirs(directory, exist_ok=True)
        if df.empty:
            df.to_pickle(os.path.join(directory, "data_0.pkl"))
            return
        chunks = int(df.memory_usage(deep=False).sum()) // self.max_byte + 1
        for i, rows in enumerate(np.array_split(np.arange(len(df)), chunks)):
            if len(rows):
                df.iloc[rows[0] : rows[-1] + 1].to_pickle(os.path.join(directory, f"data_{i}.pkl"))

    @staticmethod
    def load(file_path: str) -> Any:
        """Concatenate the chunks in their original order (gokart's glob order is arbitrary)."""
        import pandas as pd

        directory = os.path.dirname(file_path)
        names = [n for n in os.listdir(directory) if re.fullmatch(r"data_\d+\.pkl", n)]
        names.sort(key=lambda n: int(n[5:-4]))
        return pd.concat([pd.read_pickle(os.path.join(directory, n)) for n in names])


def make_target(
    file_path: str,
    unique_id: str | None = None,
    processor: FileProcessor[Any] | None = None,
    task_lock_params: object = None,
    store_index_in_feather: bool = True,
    owner: str | None = None,
    *,
    dataframe_type: DataFrameType = "pandas",
    signer: Signer | None = None,
    record: OutputRecord | None = None,
    name: str | None = None,
) -> SingleFileTarget:
    """Return the target for ``file_path`` (with ``_{unique_id}`` added), its format chosen by extension.

    gokart 1.12.2's signature. ``task_lock_params`` is accepted and ignored: kart locks a whole
    task run (``run_one``), never a single dump. ``signer`` defaults to the configured signing key
    (``KART_SIGNING_KEY``), read when the target is used. ``name``: the workspace-relative path
    (with the unique id) a signature binds when ``record`` is None (``TargetOnKart.signing_name``;
    None: the full path).

    Raises:
        UnknownFormatError: no FileProcessor serves the extension and none was given.
    """
    path = with_unique_id(file_path, unique_id)
    if processor is None:
        processor = make_file_processor(
            path, store_index_in_feather=store_index_in_feather, dataframe_type=dataframe_type, task_label=owner
        )
    return SingleFileTarget(path, processor, owner=owner, signer=signer, record=record, name=name)


def make_model_target(
    file_path: str,
    temporary_directory: str,
    save_function: Callable[[Any, str], None],
    load_function: Callable[[str], Any] | None,
    unique_id: str | None = None,
    task_lock_params: object = None,
    owner: str | None = None,
    *,
    signer: Signer | None = None,
    record: OutputRecord | None = None,
    name: str | None = None,
) -> ModelTarget:
    """Return a zip target for models saved by ``save_function`` and read by ``load_function``.

    gokart 1.12.2's signature; ``task_lock_params`` is accepted and ignored and ``name`` means what it
    means in ``make_target``.
    """
    path = with_unique_id(file_path, unique_id)
    scratch_root = os.path.join(temporary_directory, hashlib.md5(path.encode()).hexdigest())
    return ModelTarget(
        path, scratch_root, save_function, load_function, owner=owner, signer=signer, record=record, name=name
    )


def _private_of(running: transaction.Transaction | None, path: str) -> str | None:
    """The private name the running task's code was handed for its output at ``path`` (``kart_core.direct_write``),
    while its file is not staged yet; None outside such a run."""
    direct = running.direct if running is not None else None
    return direct.private_of(path) if direct is not None else None
