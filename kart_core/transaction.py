"""Transactional task runs: a task's dumps are staged, and committed only when its run succeeds.

``run_one`` opens a ``Transaction`` around the task's own ``run()``. Inside it, every ``dump``
writes a staged file beside its final path (same directory or bucket prefix, a hidden name ending
in the workspace's temporary suffix, so ``kart gc`` can sweep what a killed run left); the task
may load and check its staged outputs as if they were in place. After ``run()`` returns and the
outputs check passes, ``commit()`` writes each affected task's integrity manifest
(``kart_core.manifest``) and moves the staged files to their final paths; anything else (an
exception, ``sys.exit``, a kill) leaves no output at a final path.

The transaction lives in a ``contextvars.ContextVar``: each thread worker and each process
worker has its own, and a build started inside a ``run()`` (``detached()``) stages nothing into
the outer run. A thread that ``run()`` starts (a ``ThreadPoolExecutor``, joblib threads) does not
inherit that context, so while ``run()`` executes the run is also held by the task's ``RunSlot``
(``kart_core.task_memo``), which its output targets reach: ``join`` finds it there, and a dump or
path request of the task's output from any thread of the process belongs to the run, as gokart's
plain writes would have been the run's; one from a thread that was alive when an ended run's ``run()``
returned (one it started, or a pool's worker that was already running: either may be running work
``run()`` handed it; not the run's own thread nor the main thread) belongs to no run and is refused
(``RunSlot.strays``), also when a later run of the task is open (a retry in the same process). A read (``exists()``, a load) from a thread that was already
running when ``run()`` began (``Transaction.outsiders``: a monitor polling ``complete()``, not a thread
``run()`` started) sees the committed outputs only, as another process would. A write from a child process of the run (fork or spawn)
cannot join it (its staged file would never be committed): ``RunWriteError`` says to return the
values to the parent and dump them there. A load there is the run's input all the same: the child sends its record
to the run (``kart_core.child_loads``), which merges it before its commit writes the manifests; a forked child finds
the run in its copy of the context or of the task's ``RunSlot``, a spawned one in the task it was sent. TaskOnKart's routed ``run`` also asks ``runs(task)`` to tell luigi's call (route it
through ``run_one``) from ``run_one``'s own call or a ``super().run()`` inside it (the user's code).

Concurrent writers of one task (without ``should_lock_run``) are settled at commit, under a lock
keyed by the manifest: a writer that finds another commit since it began discards its staging (its
outputs and its run logs, which are staged too) and keeps the other's outputs, so a manifest, the
outputs it describes and the run logs always come from one run. "Since it began" means since its
``remember_base``, which ``run_one`` calls before it decides to run (the task's ``complete()`` read
after the base, when a manifest was there): a commit that landed between an earlier check and the
base would otherwise count as the state this run replaces.

A first commit on local disk creates the manifest exclusively and holds a claim on it
(``Storage.claim_new``, an ``flock`` the kernel drops when the process dies) until its outputs are
in place; a writer that finds the manifest waits for that claim (``Storage.wait_claim``) before it
looks at the outputs, so it never takes a first commit still moving its files for an incomplete task. The claimed
manifest holds the staged files' stamps; after the moves their new stamps are written over it in place
(``_stamp_claimed``): a first commit creates one file per manifest, not two.
Side files (``kart_core.side_record``) are moved, and their records written, before any output: a first
commit killed in between has moved no output yet, so its task is incomplete and runs again.

A commit that replaces existing outputs moves them one by one, so it holds the manifest's lock, puts
a commit-in-progress marker (``kart_core.commit_marker``), writes the manifest marked pending, moves
the outputs and run logs, writes the manifest again without the mark and removes the marker:
readers wait for it, and a commit killed in between leaves the marker and the pending manifest,
which make the task incomplete (it runs again) instead of a mix of two runs. Until the marker is removed a
heartbeat thread rewrites it every third of the lease (``commit_marker.lease_seconds``): another host, which
cannot ask the lock, counts a marker as a live commit only that long after its last rewrite. A first commit
removes a marker refused as damaged metadata, or a killed by-path writer's, that it finds beside the manifest
it created (``commit_marker.clear_refused``), as a replacing commit replaces it with its own.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from multiprocessing import process as _mp
from typing import Any

from kart_core import child_loads, commit_marker, side_record
from kart_core.errors import MarkerLostError, NoSpaceError, RunWriteError, StagedOutputLostError
from kart_core.lock import hold_lock
from kart_core.manifest import (
    Entry,
    Input,
    Manifest,
    OutputRecord,
    manifest_bytes,
    new_commit_id,
    read_quietly,
    read_unverified,
    refuse_folder,
    restamp_at,
    write_manifest,
)
from kart_core.outcome import task_label
from kart_core.raw_content import loads_data_only, readable_file, unrecorded_content, without_run
from kart_core.signing import Signer
from kart_core.storage import Storage, storage_for
from kart_core.storage.base import no_space_note
from kart_core.storage.local import HeldClaim, rewrite_claimed
from kart_core.storage.stamp import current_tag, local_file_stamp, touch_after_moves
from kart_core.structure import flatten
from kart_core.task_memo import RunSlot, memo_of, shared_threads

__all__ = [
    "Adopted",
    "Staged",
    "Transaction",
    "begin",
    "check_process",
    "current",
    "detached",
    "forget",
    "join",
    "joined",
    "load_reader",
    "nesting_run",
    "off_context",
    "read_base",
    "relay_for",
    "record_direct_dump",
    "refuse_child",
    "relayed",
    "runs",
    "unset",
]

logger = logging.getLogger(__name__)

# How often a commit that lost its marker to another run's commit looks whether that commit finished (seconds).
_YIELD_POLL_SECONDS = 0.1


class _Process:
    """This process's id, read once and again in a forked child (``os.register_at_fork``).

    Every dump and path request compares the run's process with this one (a forked child's writes
    cannot join its parent's run); ``os.getpid()`` is a system call each time (glibc keeps no copy).
    """

    pid = os.getpid()

    @classmethod
    def refresh(cls) -> None:
        cls.pid = os.getpid()


os.register_at_fork(after_in_child=_Process.refresh)


def _this_process() -> int:
    return _Process.pid


@dataclasses.dataclass(frozen=True)
class Staged:
    """One staged file: its final path, where it is now, and its integrity record.

    ``in_place``: the task's code wrote it straight to its final path (``kart_core.direct_write``): the
    commit records it and moves nothing, and a discarded run leaves it to the runner to undo. ``stamp``: the
    staged file's ``file_stamp`` as its writer's last ``fstat`` found it (``Spool.stamp``), None when not known.
    """

    path: str
    location: str
    storage: Storage
    record: OutputRecord | None
    entry: Entry
    in_place: bool = False
    stamp: tuple[int, int] | None = None


@dataclasses.dataclass(eq=False)
class Transaction:
    """One task's run in progress.

    Attributes:
        task: the task object whose ``run()`` body executes.
        label: how messages name the task (``Class[8-hex id]``).
        signer: seals the manifests written at commit (None: signing off).
        commit_id: written into every manifest entry (and signature header) of this run.
        pid: the process that runs it (a forked child sees a copy: its writes cannot join it).
        open: ``run()`` is executing: writes from other threads of the process join the run (``join``).
        outsiders: the threads of the process that were alive when ``run()`` began: they were not started by it,
            so their reads see committed outputs only (``join``; their writes join the run while it is open).
        slot: the task's ``RunSlot`` (None: a run no thread can join): when ``run()`` returns, the other threads
            that still run are noted there (``RunSlot.outlived``), and their later writes join no run.
        ended: the run is over (committed, failed or interrupted). Only a copy of the run's context can still
            name it (an asyncio callback that ``run()`` scheduled, ``contextvars.copy_context()``): a write from
            there is refused (``join``), and reads there see the committed state.
        relay_folder: where child processes of the run send the loads they make (``kart_core.child_loads``;
            made by the run when a child may get it: before this process forks, or when the run's task or a target
            is pickled for another process (``relay_ready``); merged at the commit, removed when the run ends).
    """

    task: object
    label: str
    signer: Signer | None = None
    commit_id: str = dataclasses.field(default_factory=new_commit_id)
    pid: int = dataclasses.field(default_factory=_this_process)
    open: bool = False
    outsiders: frozenset[threading.Thread] = frozenset()
    # The thread its run() executes in, while it does (``opened``): runs in one thread are nested (``_innermost``).
    thread: threading.Thread | None = None
    slot: RunSlot | None = None
    ended: bool = False
    # ``relay_folder``'s name, drawn when first asked: most runs never hand one out (no child process), and the
    # name's random bits, process id and temporary directory were a system call or three per run.
    _relay_name: str | None = dataclasses.field(default=None, repr=False)
    # Whether ``relay_folder`` was made (``relay_ready``), or why it could not be: a child then fails its load.
    relay_made: bool = False
    relay_error: str | None = None
    staged: dict[str, Staged] = dataclasses.field(default_factory=dict)
    bases: dict[str, str | None] = dataclasses.field(default_factory=dict)
    committed: bool = False
    superseded: bool = False
    # Whether a manifest's recorded inputs are all current (none committed again since; manifest, its workspace, the
    # reader's ``module.Class``): set by the runner, as the transaction sits below ``kart_core.lineage``. None: a
    # commit another run beat is always superseded (``_on_newer_inputs``).
    inputs_current: Callable[[Manifest, str, str | None], bool] | None = None
    # The run record (``kart_core.runlog.run_record``) to write into the manifest of the task with
    # unique id ``run_record_id``, and whether a commit wrote it (or kept another run's in its place).
    run_record: dict[str, Any] | None = None
    run_record_id: str | None = None
    run_recorded: bool = False
    # The outputs whose paths the task's code asked for (kart_core.direct_write.DirectWrites), if any.
    direct: Any = None
    # Held while a marker beside a manifest is written or removed: the commit's own and a direct writer's
    # heartbeat (which rewrites the commit's marker while the commit runs, never after it removed it).
    marker_guard: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    # How the heartbeats of this run's markers fare (by-path writes and the commit): checked before each move.
    pulse: commit_marker.Pulse = dataclasses.field(default_factory=commit_marker.Pulse)
    # The manifests (full paths) whose task's committed run logs this run staged sealed as its commit: the
    # commit names the run there as the one whose logs are current (``Manifest.logs``, kart_core.log_binding).
    logged: set[str] = dataclasses.field(default_factory=set)
    # What the run loaded from committed outputs: (manifest path, key) -> (its record, the entry read).
    loaded: dict[tuple[str, str], tuple[OutputRecord, Entry]] = dataclasses.field(default_factory=dict)
    # Of those, the outputs no integrity record vouched for: their stamp when loaded (``note_unrecorded``).
    stamps: dict[tuple[str, str], tuple[object, ...]] = dataclasses.field(default_factory=dict)
    # Other versions of an output the run also loaded (another content than ``loaded`` holds for it: the upstream was
    # committed again between two loads): recorded too, so the task is stale, never fresh with a mixed value
    # (attacker at18 I5). Each with its stamp (None for a recorded output).
    also_loaded: list[tuple[OutputRecord, Entry, tuple[object, ...] | None]] | None = None  # made on first use
    # The manifests (full paths) of the roots of builds nested in the run's ``run()`` (``note_built``): their loads are
    # recorded as built inputs (``Input.built``).
    built: set[str] = dataclasses.field(default_factory=set)
    # Checks the run's loads asked for (``check_before_commit``), called first thing in ``commit``.
    commit_checks: list[Callable[[], object]] = dataclasses.field(default_factory=list)
    # After a commit of this run's own outputs: final path -> the content hash its manifest entry records.
    digests: dict[str, str] = dataclasses.field(default_factory=dict)
    # The task's outputs, (manifest path, key) of each recorded one: read from ``output()`` when first asked (``side``).
    outputs: frozenset[tuple[str, str]] | None = None
    # What the run was warned about (``_warn_once``): kinds of loads or builds outside its context not recorded for it.
    warned: set[str] = dataclasses.field(default_factory=set)
    # The manifests of the outputs of the task's requirements (its ``input()``): read when a load made outside every
    # run's context first asks whether it is one of this run's inputs (``off_context``).
    upstream: frozenset[str] | None = None
    # The outputs of the task's requirements as their manifests held them when ``run()`` began (``note_required``):
    # (manifest path, key) -> (the output's record, the entry's commit then, its content hash then or "" when that
    # commit was in progress). None until then. Not the entry itself: a fan-in of 100,000 keeps one per requirement.
    required: dict[tuple[str, str], tuple[OutputRecord, str | None, str]] | None = None
    # The stamps of those outputs no integrity record vouched for (no commit: a raw file, gokart's output), by the
    # same key: the record of such an input is its stamp and hash (``Input.stamp``).
    required_stamps: dict[tuple[str, str], tuple[object, ...]] | None = None
    # The files outside every workspace that the task's requirements output (a bare target's, a luigi target's), by
    # full path or URL (``raw_content.readable_file``): the requirement's label and the file's stamp and content hash
    # as ``run()`` began (``note_required``); recorded as inputs keyed by that path (``Input.manifest`` ""). None until then.
    required_files: dict[str, tuple[str, tuple[object, ...], str]] | None = None
    # The paths of those requirement outputs (in the workspace or outside it) whose task is a raw input (no ``run()``)
    # and whose format loads no code: signing lets the run load them unsigned (``admits_raw``). None until then.
    raw_admitted: set[str] | None = None
    # The targets ``input()`` handed out in the run (``input_view``): id of the upstream's target -> (it, the view).
    views: dict[int, tuple[Any, Any]] = dataclasses.field(default_factory=dict)
    # The run's side files by final path: the record of the target dumped and the entry its manifest's ``side``
    # section gets at the commit (``kart_core.side_record``).
    sides: dict[str, tuple[OutputRecord, Entry]] = dataclasses.field(default_factory=dict)
    # The bytes a first commit wrote into each manifest it claimed (``_settle``), until ``_stamp_claimed``.
    claimed: dict[str, bytes] = dataclasses.field(default_factory=dict)
    # The claims of those a local storage holds (``LocalStorage.claim_new``): ``_stamp_claimed`` writes through them.
    held_claims: dict[str, HeldClaim] = dataclasses.field(default_factory=dict)
    # The inputs the commit records in each of the task's own manifests (``inputs_for``), by its full path, once the
    # input floor (``required``) went into them: the floor is then let go before the manifest is encoded (a fan-in of
    # 100,000 kept both, and every key's manifest path, through its commit). None until the first is built.
    floor_inputs: dict[str, tuple[Input, ...]] | None = None

    def side(self, record: OutputRecord) -> bool:
        """Whether ``record`` names a target of this run's task that is not one of its outputs (a "side target":
        ``self.make_target(...)`` dumped inside ``run()`` but not returned by ``output()``).

        Such a file is committed with the run (moved into place with its outputs) and listed apart in the task's
        manifest (``side``; ``kart_core.side_record``), never as an output: it is not the task's output, so its
        content must not count in the task's completion
        check, damage report or lineage, nor be deleted on the task's behalf (``kart verify --delete``) when
        another task writes the same path later (attacker N16). A target of another task (an upstream's output
        the run dumps to) is that task's output: False.
        """
        outputs = self.outputs
        if outputs is None:
            outputs = self.outputs = _recorded_outputs(self.task)
        if (record.manifest, record.key) in outputs:
            return False
        unique_id = getattr(self.task, "make_unique_id", None)
        return record.task == self.label and unique_id is not None and record.unique_id == unique_id()

    def note_load(self, record: OutputRecord, entry: Entry) -> None:
        """Remember that the run loaded the committed output ``record`` as ``entry`` describes it.

        Written into the manifests this run commits (``Manifest.inputs``), so ``kart_core.lineage`` can
        tell later that the upstream was committed again with other content. The latest load of an
        output wins (a repaired upstream is loaded again). In a child process of the run (a forked copy of it)
        the record is sent to the run instead (``relay``).

        Raises:
            LoadOSError: (in a child process) the record cannot be sent (``child_loads.Relay.note_load``).
        """
        if self.pid != _Process.pid:
            self._child_relays().note_load(record, entry, record.manifest in self.built)
            return
        self._keep_other_version(record, entry)
        self.loaded[(record.manifest, record.key)] = (record, entry)
        self.stamps.pop((record.manifest, record.key), None)

    def note_built(self, manifests: Iterable[str]) -> None:
        """Remember that a ``build()`` nested in the run's ``run()`` built the tasks of ``manifests`` (full paths): the
        run's loads of their outputs are recorded as built (``Input.built``), so the task is found stale when one of
        them is stale further up (``kart_core.lineage``): only the task's own run builds them again. In a forked child
        of the run (its copy of the run) they are noted in the copy, and its loads of them are sent to the run as
        built (``child_loads.Relay.note_load``)."""
        self.built.update(manifests)

    def note_unrecorded(self, record: OutputRecord, stamp: tuple[object, ...], digest: str) -> None:
        """Remember that the run loaded the output ``record`` names while no integrity record vouched for it (a raw
        file dropped in by hand, gokart's output), its content hash ``digest`` and ``stamp`` (``kart_core.storage
        .stamp``) as it was: recorded as an input without a commit, so ``kart_core.lineage`` finds the task stale
        once another file is there (attacker N12: a new data drop did not rerun its readers). In a child process
        of the run the record is sent to the run instead (``relay``).

        Raises:
            LoadOSError: (in a child process) the record cannot be sent (``child_loads.Relay.note_unrecorded``).
        """
        if self.pid != _Process.pid:
            self._child_relays().note_unrecorded(record, stamp, digest)
            return
        entry = Entry(size=0, digest=digest, commit=None, sealed=False)
        self._keep_other_version(record, entry)
        self.loaded[(record.manifest, record.key)] = (record, entry)
        self.stamps[(record.manifest, record.key)] = stamp

    def keep_load(self, record: OutputRecord, entry: Entry, stamp: tuple[object, ...] | None) -> None:
        """Note a load made outside the run's context that kart took for the run's (``Adopted``): unless the run
        noted a load of that output already (its own, or an earlier such one), which stays, as in ``take_relayed``."""
        key = (record.manifest, record.key)
        if key in self.loaded:
            self._keep_other_version(record, entry, stamp, earlier=False)
            return
        self.loaded[key] = (record, entry)
        if stamp is not None:
            self.stamps[key] = stamp

    def _keep_other_version(
        self, record: OutputRecord, entry: Entry, stamp: tuple[object, ...] | None = None, *, earlier: bool = True
    ) -> None:
        """When ``loaded`` holds another content of ``record``'s output than ``entry``, keep the one about to be
        replaced (``earlier``: ``entry`` is the newer load) or ``entry`` itself in ``also_loaded``."""
        key = (record.manifest, record.key)
        previous = self.loaded.get(key)
        if previous is None or previous[1].digest == entry.digest:
            return
        if self.also_loaded is None:
            self.also_loaded = []
        if earlier:
            self.also_loaded.append((previous[0], previous[1], self.stamps.get(key)))
        else:
            self.also_loaded.append((record, entry, stamp))

    def note_required(self) -> None:
        """Note, as ``run()`` begins, each committed output of the task's direct requirements (its ``requires()``,
        flattened; kart tasks whose output has an integrity record with an entry): the run's "input floor".

        The commit records each as an input of the run (``Input.required`` where the run did not load that content
        through kart), so ``kart_core.lineage`` finds the task stale once a requirement is committed again with other
        content, whatever way the run read it: a load kart saw, a file opened by its path, a subprocess, a memoized
        loader another task's run filled (attackers at21 L5, at20 K15). Read before ``run()``, not at the commit: a
        requirement committed again while the run works then makes the task stale (it may have read either version).
        An entry whose commit is still in progress (a pending manifest) is noted with no content hash: whatever that
        commit leaves makes the task stale. One read per requirement's manifest (run record not parsed), kept only while
        that requirement's outputs are noted; of each output its record and the entry's commit and content hash are
        kept (``required``); nothing for a task that requires nothing. Once per run, in the run's own process.

        Raises:
            Exception: what the task's ``requires()`` or a requirement's ``output()`` raises (the user's code).
        """
        if self.required is not None or self.pid != _Process.pid:
            return
        found: dict[tuple[str, str], tuple[OutputRecord, str | None, str]] = {}
        self.required = found
        requires = getattr(self.task, "kart_requires", None)
        upstreams = requires() if requires is not None else ()
        if not upstreams:
            return
        unwatched: list[str] = []
        for upstream in upstreams:
            outputs = getattr(upstream, "kart_outputs", None)
            if outputs is None:  # a plain luigi task (an ExternalTask): no integrity record; its files are watched
                for target in flatten(upstream.output()):
                    self._note_required_file(upstream, target, unwatched)
                continue
            # The manifests read for this requirement only (its outputs share one or a few): kept for the whole
            # loop, a fan-in of 100,000 held every parsed manifest until the last was read (130 MiB).
            read: dict[str, Manifest | None] = {}
            for target in flatten(outputs()):
                record = getattr(target, "record", None)
                if not isinstance(record, OutputRecord):
                    self._note_required_file(upstream, target, unwatched)  # a bare target: outside the workspace
                    continue
                path = record.manifest
                if path not in read:
                    read[path] = read_unverified(storage_for(path), path, run=False)
                manifest = read[path]
                entry = manifest.outputs.get(record.key) if manifest is not None else None
                if entry is None and not (manifest is not None and manifest.pending):
                    self._note_unrecorded_requirement(record, target, found, upstream)
                    continue
                if manifest is None or entry is None or entry.commit is None:
                    continue
                digest = "" if manifest.pending else _kept_digest(upstream, entry.digest)
                found[(path, record.key)] = (record, entry.commit, digest)
        if unwatched:
            _warn_once(
                self,
                "unwatched requirement",
                "%s: kart cannot read %s, so a change there does not make %s stale (its file is not recorded as an "
                "input). After a change there, build %s again with rerun=True; or give that requirement an output kart "
                "can read: a luigi.LocalTarget, an S3Target, a kart target.",
                self.label,
                "; ".join(unwatched),
                self.label,
                self.label,
            )

    def _note_required_file(self, upstream: Any, target: Any, unwatched: list[str]) -> None:
        """A requirement's output that is a file outside every workspace (``raw_content.readable_file``: a bare kart
        target, a ``luigi.LocalTarget`` or ``S3Target`` of a luigi task such as an ``ExternalTask``): its stamp and
        content hash as ``run()`` begins (``required_files``), recorded as an input of the run keyed by its path or
        URL (``Input.manifest`` ""), so a new data drop there makes the task stale however the run read it (attacker at25
        F7, F8). Hashed once per stamp in this process. Nothing for a file that is missing (a missing input is the
        requirement's to provide); a target kart cannot read, or a folder, is added to ``unwatched``."""
        path = readable_file(target)
        if path is None:
            unwatched.append(f"the output {target!r} ({type(target).__name__}) of {task_label(upstream)}")
            return
        content = unrecorded_content(path)
        if content is None:
            if _present(path):  # a folder (a partitioned data set, luigi's flag folder) or a file it cannot read
                unwatched.append(f"{path!r}, the output of {task_label(upstream)} (a folder, or not readable here)")
            return
        if self.required_files is None:
            self.required_files = {}
        self.required_files[path] = (task_label(upstream), content[0], content[1])
        self._admit_raw(upstream, target, getattr(target, "_path", path))

    def _admit_raw(self, upstream: Any, target: Any, path: str) -> None:
        """Let the run load ``target`` (at ``path``) unsigned when signing is on (``admits_raw``) if ``upstream`` is a
        raw input (``raw_content.without_run``: nothing here produces it, so kart never signed it) and its format
        loads no code (``raw_content.loads_data_only``; attacker at25 F11)."""
        if upstream is not None and without_run(upstream) and loads_data_only(target):
            if self.raw_admitted is None:
                self.raw_admitted = set()
            self.raw_admitted.add(path)

    def admits_raw(self, path: str) -> bool:
        """Whether signing lets this run load the file at ``path`` although kart did not sign it: the output of a
        raw input among the task's requirements (a task with no ``run()``, a ``luigi.ExternalTask``: it has no
        commit to sign), in a format that loads no code, noted as ``run()`` began (``note_required``). What vouches
        for it is what the run records of it: its content hash and stamp, in the task's signed manifest, so a new
        drop there makes the task stale; a file kart should have signed (any task with a ``run()``) is still
        refused."""
        return self.raw_admitted is not None and path in self.raw_admitted

    def _note_unrecorded_requirement(
        self,
        record: OutputRecord,
        target: Any,
        found: dict[tuple[str, str], tuple[OutputRecord, str | None, str]],
        upstream: Any = None,
    ) -> None:
        """A requirement's output that no integrity record vouches for (a raw file dropped in by hand under a task
        without ``run()``, gokart's output): its content hash (into ``found``, the floor, with no commit) and stamp
        (``required_stamps``) as ``run()`` begins, recorded as an input of the run unless the run loads it through
        kart (whose record stands, as a load's does for a committed output), so a new data drop there makes the task
        stale however the run read it: by path (``pd.read_csv(self.input().path())``), in a subprocess (attacker at25
        F9). Hashed once per stamp in this process, so a load of it in the run reads it once more only to parse it.
        Nothing when the file is missing, a folder or cannot be read (a missing input is the requirement's to
        provide)."""
        path = getattr(target, "_path", None)  # not path(): that may hand out a run's private name
        if not isinstance(path, str):
            return
        content = unrecorded_content(path)
        if content is None:
            return
        key = (record.manifest, record.key)
        found[key] = (record, None, content[1])
        if self.required_stamps is None:
            self.required_stamps = {}
        self.required_stamps[key] = content[0]
        self._admit_raw(upstream, target, path)

    def upstream_manifests(self) -> frozenset[str]:
        """The manifests (full paths) of the outputs of the task's requirements (``input()``), read once per run; none
        when ``input()`` raises."""
        found = self.upstream
        if found is None:
            found = self.upstream = _input_manifests(self.task)
        return found

    def input_view(self, target: Any) -> Any:
        """``target`` (an upstream's output) as the task's ``input()`` hands it out in this run: a copy that names the
        run's task as its reader (``_kart_reader``: its ``RunSlot``), so a load of it in a thread that ``run()``
        starts, or in a process it is sent to, counts for this run without a guess (``off_context``), also while
        another running task requires the same upstream. The same copy for the same target for the whole run; a
        target without an integrity record, or a run no thread can join, is handed out as it is."""
        if self.slot is None or not isinstance(getattr(target, "record", None), OutputRecord):
            return target
        found = self.views.get(id(target))
        if found is not None and found[0] is target:
            return found[1]
        view = object.__new__(type(target))
        view.__dict__.update(target.__dict__)
        view.__dict__["_kart_reader"] = self.slot
        self.views[id(target)] = (target, view)  # the target is held: its id stays its own
        return view

    @property
    def relay_folder(self) -> str:
        """Where child processes of the run send what they load (see the class's attributes), named when first
        asked: before the process forks or the task is pickled (``relay_ready``), so a child's copy holds the name."""
        name = self._relay_name
        if name is None:
            name = self._relay_name = child_loads.new_folder()
        return name

    def relay(self) -> child_loads.Relay:
        """Where a child process of this run sends the loads it makes (``kart_core.child_loads``)."""
        inherited = self.pid != _Process.pid  # this process's copy of the run: it was forked while the run went on
        return child_loads.Relay(self.label, self.pid, self.relay_folder, self.relay_error, inherited)

    def _child_relays(self) -> child_loads.Relays:
        """In a process forked while this run was in progress (this object is its copy): where a load made here in
        this run's context is sent. The run that forked the process is not always the one whose work it does now: a
        worker of a pool kept past that run (a module-level ``ProcessPoolExecutor`` forked lazily by its first
        ``submit``) runs later tasks' jobs in that same copied context (attacker at20 K10). So the runs of the parent
        whose ``run()`` executes now decide (``child_loads.for_child``), this one as the hint."""
        found = child_loads.for_child(self.relay())
        assert found is not None  # a hint is given: never None
        return found

    def publish(self) -> None:
        """While the run's ``run()`` executes in this process and its folder is made, say so in the folder
        (``child_loads.publish``): a child process that finds no run in its own context (a worker of a pool made
        before the run, or forked during an earlier run) finds this one there."""
        if self.relay_made and self.open and self.thread is not None and self.pid == _Process.pid:
            child_loads.publish(self.relay_folder, self.label, self.thread.ident or 0)

    def relay_ready(self) -> child_loads.Relay:
        """``relay``, its folder made first (in the running process): a child never makes it, so one it finds missing
        belongs to a run that is over. A folder that cannot be made is noted (``relay_error``): the child's load that
        would send to it fails, naming why."""
        if self.pid == _Process.pid and not self.relay_made and self.relay_error is None and not self.ended:
            try:
                child_loads.make_folder(self.relay_folder)
                self.relay_made = True
            except OSError as exc:
                self.relay_error = f"{type(exc).__name__}: {exc}"
            else:
                self.publish()
        return self.relay()

    def take_relayed(self) -> None:
        """Merge the loads that child processes of the run sent (``kart_core.child_loads``) into ``loaded``.

        Called by the commit before it writes the manifests. An output the run's own process loaded keeps
        that record; of several children's loads of one output, the earliest is kept: when an upstream was
        committed again while the run worked, the older record makes the task stale (it runs again) rather
        than fresh with a value built partly from the older content. Nothing is looked for when the run never
        made its folder (``relay_made``): a child never makes it, so none can have sent anything.
        """
        if not self.relay_made:
            return
        for found in child_loads.collect(self.relay_folder):
            if found.built:
                self.built.add(found.record.manifest)
            key = (found.record.manifest, found.record.key)
            if key in self.loaded:
                self._keep_other_version(found.record, found.entry, found.stamp, earlier=False)
                continue
            self.loaded[key] = (found.record, found.entry)
            if found.stamp is not None:
                self.stamps[key] = found.stamp

    def inputs_for(self, record: OutputRecord) -> tuple[Input, ...]:
        """The inputs to record in ``record``'s manifest: every committed output the run loaded from
        another manifest, its reference workspace-relative when it shares ``record``'s workspace, else
        its full path (a local one absolute: a relative one would be read from the workspace's folder);
        then, in a manifest of the task's own outputs, each output of a requirement as it was when ``run()``
        began (``note_required``) that the run did not load (``Input.required``). A load's record stands for its
        output: it may name a newer entry than the floor's, a rewrite the load recorded as a new version (the file
        the run could read by path already held it), which the floor's entry would make stale at once. There too,
        each file outside every workspace that a requirement outputs (``required_files``), as an input with no
        manifest (``Input.manifest`` "") keyed by its full path or URL."""
        if self.floor_inputs is not None and record.manifest in self.floor_inputs:
            return self.floor_inputs[record.manifest]  # asked again (a claim lost to another writer): the same inputs
        found: list[Input] = []
        loads = [
            (source, entry.commit, entry.digest, self.stamps.get(where), False)
            for where, (source, entry) in sorted(self.loaded.items())
        ]
        other = [(source, entry.commit, entry.digest, stamp, False) for source, entry, stamp in self.also_loaded or ()]
        floor: Iterable[tuple[OutputRecord, str | None, str, tuple[object, ...] | None, bool]] = ()
        noted = self.required
        own = bool(noted) and record.manifest in self._own_manifests()
        if noted and own:
            stamps = self.required_stamps or {}
            floor = (  # one at a time: a fan-in's floor is 100,000 requirements (keys sorted: no item pairs made)
                (*noted[output], stamps.get(output), True) for output in sorted(noted) if output not in self.loaded
            )
        if self.required_files and record.manifest in self._own_manifests():
            found.extend(
                Input(task=label, manifest="", key=path, commit=None, digest=digest, reader=record.owner, stamp=stamp)
                for path, (label, stamp, digest) in sorted(self.required_files.items())
            )
        for source, commit, digest, stamp, required in itertools.chain(loads, other, floor):
            if source.manifest == record.manifest:
                continue  # the task's own earlier output: not an upstream
            where = source.manifest_name if source.workspace == record.workspace else _full(source.manifest)
            found.append(
                Input(
                    task=source.task,
                    manifest=where,
                    key=source.key,
                    commit=commit,
                    digest=digest,
                    reader=record.owner,
                    stamp=stamp,
                    built=source.manifest in self.built,
                    required=required,
                )
            )
        inputs = tuple(found)
        if own:
            self._floor_used(record.manifest, inputs)
        return inputs

    def _floor_used(self, manifest: str, inputs: tuple[Input, ...]) -> None:
        """Keep ``inputs`` as what ``manifest`` (one of the task's own) records; once each own manifest has its inputs,
        let the floor go (``required`` emptied: noted, and nothing left to record)."""
        built = self.floor_inputs
        if built is None:
            built = self.floor_inputs = {}
        built[manifest] = inputs
        if self._own_manifests().issubset(built):
            self.required, self.required_stamps = {}, None

    def _own_manifests(self) -> set[str]:
        """The manifests (full paths) of the task's recorded outputs (``_recorded_outputs``, read once per run)."""
        outputs = self.outputs
        if outputs is None:
            outputs = self.outputs = _recorded_outputs(self.task)
        return {manifest for manifest, _ in outputs}

    def inputs_beside(self, record: OutputRecord, current: Manifest | None) -> tuple[Input, ...]:
        """The inputs ``record``'s manifest records after this commit: this run's loads (``inputs_for``), after
        those ``current`` (the manifest replaced) records for another owner of the same manifest (a same-named
        class of another module: its loads stay its record, attacker N1)."""
        return _kept_inputs(current, record) + self.inputs_for(record)

    def remember_base(self, storage: Storage, record: OutputRecord) -> str | None:
        """Note (and return) the commit id of ``record``'s manifest as it is before this run writes to it.

        A manifest found there may be a first commit still moving its outputs: its claim is waited for
        (``Storage.wait_claim``), so a ``complete()`` after this call sees that commit whole.
        """
        if record.manifest not in self.bases:
            self.bases[record.manifest] = read_base(storage, record, self.signer)
        return self.bases[record.manifest]

    def opened(self) -> _Opened:
        """While the body (the task's ``run()``) executes, writes of the task's outputs from any thread join this run,
        and reads from threads started meanwhile (those ``run()`` starts) see its staged outputs.

        When the body ends (returns or raises), every other thread that still runs is noted in the task's
        ``RunSlot``: those started meanwhile, and those already running when it began (a worker of a pool made
        before the run, which may be running a job ``run()`` submitted and gave up on). What they write of the
        task's output later is refused (``join``), neither published nor put into a later run of the task (a
        retry in the same process). The main thread is not noted: when it is not the run's own, it is the one
        that called ``build()`` and waited in it (a script's dump after a threaded build writes as before).
        """
        return _Opened(self)

    def add(self, staged: Staged, side: OutputRecord | None = None) -> None:
        """Take ``staged`` into the run (a second dump to the same path replaces the first). A side target of the
        task (``side``, or ``staged.record`` when ``Transaction.side`` says so) is taken as a file that is not the
        task's output: committed with the run, listed under the manifest's ``side`` (``kart_core.side_record``)."""
        if side is None and staged.record is not None and self.side(staged.record):
            side = staged.record
        if side is not None:
            staged = dataclasses.replace(staged, record=None, entry=dataclasses.replace(staged.entry, owner=None))
            self.sides[staged.path] = (side, staged.entry)
        else:
            self.sides.pop(staged.path, None)
        previous = self.staged.pop(staged.path, None)
        if previous is not None:
            _remove_quietly(previous.storage, previous.location)
        self.staged[staged.path] = staged

    def record_named(self, manifest_name: str) -> OutputRecord | None:
        """The record of a staged output whose manifest has the workspace-relative name ``manifest_name``
        (so this run's commit writes that manifest), else None."""
        for staged in self.staged.values():
            if staged.record is not None and staged.record.manifest_name == manifest_name:
                return staged.record
        return None

    def lookup(self, path: str) -> Staged | None:
        """The staged file for ``path``, if this run dumped it."""
        return self.staged.get(path)

    def drop(self, path: str) -> None:
        """Forget and delete the staged file for ``path`` (the task removed that output)."""
        self.sides.pop(path, None)
        previous = self.staged.pop(path, None)
        if previous is not None:
            _remove_quietly(previous.storage, previous.location)

    def commit(self) -> None:
        """Record and move every staged file to its final path; see the module docstring for races.

        A run whose commit another writer's commit beat (``superseded``) commits nothing: its staged
        outputs and run logs are deleted, and the other run's stay.

        Raises:
            Exception: what a check of ``check_before_commit`` raised (nothing was moved or recorded); a
                ``LoadError`` when a check a child process sent cannot be read back.
        """
        # Checks that child processes of the run sent (a RawFile read in a pool) are made with the run's own; none
        # when the run never made its relay folder (``relay_made``: a child never makes it).
        if self.relay_made:
            self.commit_checks.extend(child_loads.collect_checks(self.relay_folder, self.label))
        for check in self.commit_checks:  # an input the run read must still be what it loaded
            check()
        # A marker of the run's by-path writes that could not be kept its own: nothing moves.
        if self.direct is not None:
            self.direct.check_heartbeat()
        self.pulse.check()
        self.take_relayed()
        by_manifest: dict[str, list[Staged]] = {}
        for staged in self.staged.values():
            if staged.record is not None:
                by_manifest.setdefault(staged.record.manifest, []).append(staged)
        created: list[tuple[list[Staged], Manifest]] = []
        replacing: list[tuple[OutputRecord, Manifest | None]] = []
        tags: dict[str, str] = {}  # what the object store answered for each output it moved (``Entry.tag``)
        try:
            self._commit_held(by_manifest, created, replacing, tags)
            if self.superseded:  # another run committed first: discarded there
                return
        except MarkerLostError:
            # Another run's commit of the task put its marker over this one's (two hosts without a shared lock, both
            # committing a first build at once: attacker at26 G1): wait for it, and keep its outputs as any commit
            # beaten to the manifest does, rather than fail a build whose task the other run has just made whole.
            if not replacing or not self._yielded([record for record, _ in replacing], tags):
                raise
            self.superseded = True
            self.discard()
            self.committed = True
            return
        for items, _ in created:  # the claims are released: a refused marker left beside a new manifest goes
            record = _record_of(items)
            commit_marker.clear_refused(storage_for(record.manifest), record, set(_entries(items)), self.signer)
        self.digests = {
            staged.path: staged.entry.digest for staged in self.staged.values() if staged.record is not None
        }
        self.staged.clear()
        self.committed = True

    def _commit_held(
        self,
        by_manifest: dict[str, list[Staged]],
        created: list[tuple[list[Staged], Manifest]],
        replacing: list[tuple[OutputRecord, Manifest | None]],
        tags: dict[str, str],
    ) -> None:
        """``commit``'s settling, markers and moves, under the locks and claims it takes (released on return);
        fills ``created``, ``replacing`` and ``tags`` as it goes, which ``commit`` reads after a ``MarkerLostError``.
        A superseded run is discarded here (``self.superseded``)."""
        with contextlib.ExitStack() as held:
            finals: list[Manifest] = []
            # One order of locks and claims for every writer (a run may write to several manifests).
            for _, items in sorted(by_manifest.items()):
                outcome, current = self._settle(items, held)
                if outcome is _SUPERSEDED:
                    self.superseded = True
                    # The other run's record (if any) stays with its outputs: no run log files for this run.
                    self.run_recorded = self.run_recorded or self._run_for(_record_of(items)) is not None
                    self.discard()
                    self.committed = True
                    return
                if outcome is _REPLACING:
                    replacing.append((_record_of(items), current))
                else:
                    assert current is not None  # the manifest a first commit claimed
                    created.append((items, current))
            # A first build (nothing replaced) puts no marker: no heartbeat to set up (most commits).
            put: set[str] = set()  # the markers this commit has put (its heartbeat keeps only those)
            beat = held.enter_context(self._heartbeat([record for record, _ in replacing], put)) if replacing else None
            for record, current in replacing:
                # The marker first: from here until it is removed, readers wait for this commit or (if it
                # is killed) see that the task's outputs may be from two runs (kart_core.commit_marker).
                storage = storage_for(record.manifest)
                with self._room(commit_marker.marker_path(record)), self.marker_guard:
                    # A by-path writer's marker there is handed over only while it is still this run's: one
                    # another host put while this commit waited for the lock fails it (attacker at9 J9).
                    if self.direct is None or not self.direct.hand_over(record):
                        commit_marker.put(storage, record, self.commit_id, self.signer)
                    self.pulse.wrote(commit_marker.marker_path(record))
                    put.add(commit_marker.marker_path(record))
                items = by_manifest[record.manifest]
                side = self._sides_for(record, current)
                # A key this run wrote as a side file is no output of the task (an older kart recorded it as one).
                outputs = {key: entry for key, entry in (current.outputs if current else {}).items() if key not in side}
                outputs.update(_entries(items))
                kept = current.run if current is not None else None
                run = self._run_for(record) or kept
                manifest = Manifest(
                    task=record.task,
                    commit=self.commit_id,
                    outputs=outputs,
                    run=run,
                    pending=True,
                    inputs=self.inputs_beside(record, current),
                    logs=self._logs_for(record, current),
                    side=side,
                )
                data, run = self._encoded(manifest, record.manifest_name)
                try:
                    with self._room(record.manifest), storage.atomic_write(record.manifest) as file:
                        file.write(data)
                except NoSpaceError:
                    # Nothing of this task moved yet and its old manifest is whole: no marker to leave.
                    with contextlib.suppress(Exception), self.marker_guard:
                        self._clear(storage, record)
                    raise
                finals.append(dataclasses.replace(manifest, run=run, pending=False))
            # Side files (and their signed records) before the outputs: a commit killed in between leaves its task
            # incomplete (an output missing, or the pending manifest and marker), so the next build runs it again
            # and records the path; moved after the outputs, a first commit killed before the record left the task
            # complete and its side file refused for good (attacker at19 J5).
            fences = {manifest: self._fence(_record_of(items), put) for manifest, items in by_manifest.items()}
            for staged in self.staged.values():
                if staged.record is None and staged.path in self.sides:
                    self.pulse.check()
                    owner_fence = fences.get(self.sides[staged.path][0].manifest)
                    if owner_fence is not None:  # a replacing commit: its marker must still be its own (taken over?)
                        owner_fence.check()
                    self._commit_side(staged)
            for manifest_path, items in by_manifest.items():
                fence = fences[manifest_path]
                for staged in items:
                    if not staged.in_place:
                        # A marker left to age may be taken over by another host: stop, the marker stays.
                        self.pulse.check()
                        tag = self._move(staged, fence)
                        if tag is not None:
                            tags[staged.path] = tag
                if fence is not None:
                    fence.finish()
            # Run logs and other unrecorded files: with the outputs, by the run whose outputs are kept. One written
            # in place by its path is there already.
            for staged in self.staged.values():
                if staged.record is None and staged.path not in self.sides and not staged.in_place:
                    self._move(staged, None)
            for items, claimed in created:  # written before the moves: now with the stamps of the files moved
                self._stamp_claimed(items, claimed)
            self.pulse.check()
            lost: MarkerLostError | None = None
            for (record, _), final in zip(replacing, finals, strict=True):
                storage = storage_for(record.manifest)
                final = self._stamped(final, by_manifest[record.manifest], tags) or final
                data, run = self._encoded(final, record.manifest_name)
                # A full disk here leaves the pending manifest and the marker: the task runs again.
                with self._room(record.manifest), storage.atomic_write(record.manifest) as file:
                    file.write(data)
                with self.marker_guard:
                    lost = self._clear(storage, record) or lost
                self.run_recorded = self.run_recorded or (run is not None and self._run_for(record) is not None)
            if beat is not None:
                beat.close()
            if lost is not None:  # a marker another process put in this commit's place: named, the run fails
                raise lost

    def _yielded(self, records: list[OutputRecord], tags: dict[str, str]) -> bool:
        """After this replacing commit lost its marker beside each of ``records``' manifests: whether another run's
        commit took its place and finished, so this run is superseded (its outputs are the other's now).

        Waits while a marker of another commit stands there and keeps changing (its committer's heartbeat), until it
        is removed; one that stands unchanged for ``commit_marker.foreign_seconds()`` is a killed committer's: False.
        Then the manifest must hold a finished commit (not pending) other than this run's and its base. An output
        this commit moved on object storage that still holds the version it moved (``tags``: its copy landed after
        the other's, over that commit's file) is removed, so the task counts as incomplete and runs again: False.
        False also when the marker is still this commit's (the heartbeat could not write it) or a by-path writer's,
        and when this run read newer inputs than the other (``_on_newer_inputs``: that commit is stale, and the next
        build runs the task again). The caller then raises the ``MarkerLostError``.
        """
        seen = commit_marker.Sightings()
        for record in records:
            storage = storage_for(record.manifest)
            path = commit_marker.marker_path(record)
            while True:
                marker = commit_marker.read_marker(storage, path)
                if marker is None:
                    break
                if (
                    commit_marker.mine(marker, self.commit_id)
                    or marker.kind != "commit"
                    or seen.age(path, marker) >= commit_marker.foreign_seconds()
                ):
                    return False
                seen.once(
                    path,
                    dataclasses.replace(marker, written=0.0),
                    "%s: process %d on %s is committing %s over this run's commit; waiting for it to finish",
                    self.label,
                    marker.pid,
                    marker.host or "an unknown host",
                    record.task,
                )
                time.sleep(_YIELD_POLL_SECONDS)
            current = read_quietly(storage, record.manifest, record.manifest_name, self.signer)
            if (
                current is None
                or current.pending
                or current.commit in (self.commit_id, self.bases.get(record.manifest))
            ):
                return False
            if self._on_newer_inputs(record, current):  # the other read older inputs: not this run's equal
                return False
        late = [path for path, tag in tags.items() if current_tag(path, listed=False) == tag]
        for path in late:
            _remove_quietly(storage_for(path), path)
        if late:
            return False
        logger.info("%s: another run committed the task while this run committed; keeping its outputs", self.label)
        return True

    def _stamped(self, manifest: Manifest, items: list[Staged], tags: dict[str, str] | None = None) -> Manifest | None:
        """``manifest`` with the entry of each of ``items`` (one manifest's outputs, in place now) stamped with the
        file at its path (``Entry.stamp``: inode and status-change time, which the move into place set), or on object
        storage tagged with the version its move put there (``tags``: by path, what ``Storage.commit`` answered;
        ``Entry.tag``); None when nothing was stamped: signing on (the seal binds each output to its commit, and a
        stamp recorded later would need the key), a store that answered no tag.

        Taken after the last move: a stamp taken before it would never match (a rename moves the status-change
        time). A file another writer put there between the move and this stat is stamped as the commit's, as the
        manifest's time (taken after the moves) vouched for it before (attacker at20 K14).
        """
        if self.signer is None:
            outputs = dict(manifest.outputs)
            if self._stamp_into(outputs, items, before_moves=False, tags=tags):
                return dataclasses.replace(manifest, outputs=outputs)
        return None

    def _stamp_into(
        self, outputs: dict[str, Entry], items: list[Staged], before_moves: bool, tags: dict[str, str] | None = None
    ) -> bool:
        """Stamp, in ``outputs`` (a manifest's entries by key), the entry of each of ``items`` that this commit wrote
        with the file at its path (``before_moves``: the staged file, where it is until its move: a first commit's
        claimed manifest, whose stamps ``_stamp_claimed`` writes again over the same bytes), or with its object's tag
        in ``tags``; whether one was. One ``stat`` per local output, no request; signing off (``_stamped``)."""
        stamped = False
        for staged in items:
            if staged.record is None:
                continue
            key = staged.record.key
            found = outputs.get(key)
            if found is None or found.commit != self.commit_id:
                continue
            tag = tags.get(staged.path) if tags else None
            if tag is not None:
                outputs[key] = found.with_tag(tag)
                stamped = True
                continue
            if before_moves and not staged.in_place:
                # The staged file's stamp as its dump's fstat found it (nothing changes its status until the move):
                # no stat by path. Only the claim holds it, a placeholder of the right widths that ``_restamped``
                # overwrites with a stat of the moved file (a rename moves the status-change time).
                stamp = staged.stamp or local_file_stamp(staged.location)
            else:
                stamp = local_file_stamp(staged.path)
            if stamp is not None:
                outputs[key] = found.with_stamp(stamp)
                stamped = True
        return stamped

    def _restamped(
        self, items: list[Staged], claimed: Manifest, written: bytes
    ) -> tuple[list[tuple[int, bytes]] | None, bool]:
        """Where the bytes ``written`` (the manifest a first commit claimed: ``claimed``, stamped with the staged files)
        change when each output of ``items`` is stamped with its file now, in place (``kart_core.manifest.restamp_at``:
        only digits of stamps change): (offset, new text) of each, none when every stamp is the claim's; and whether
        any output was stamped. None for the places when a stamp cannot be written so (another inode, another number
        of digits, an output stamped now but not in the claim): the caller encodes the manifest anew (``_stamped``).
        Places, not the changed document: a fan-in's manifest of 100,000 inputs is 30 MB, copied for one stamp. One
        ``stat`` per output."""
        places: list[tuple[int, bytes]] = []
        stamped = False
        for staged in items:
            if staged.record is None:
                continue
            found = claimed.outputs.get(staged.record.key)
            if found is None or found.commit != self.commit_id:
                continue
            stamp = local_file_stamp(staged.path)
            if stamp is None:
                continue
            stamped = True
            if found.stamp is None:
                return None, True
            if stamp != found.stamp:
                # Each found once in ``written`` and of another inode: the places never overlap, and no new text is
                # another output's old one.
                place = restamp_at(written, found.stamp, stamp)
                if place is None:
                    return None, True
                places.append(place)
        return places, stamped

    def _stamp_claimed(self, items: list[Staged], claimed: Manifest) -> None:
        """After a first commit moved ``items`` into place: write the manifest it claimed before the moves
        (``claimed``, stamped with the staged files) again with their stamps now. In place, over the claimed file
        (``rewrite_claimed``, ``HeldClaim.rewrite_at``): the moves kept each inode and gave a status-change time of
        as many digits, so only digits of stamps differ, and a reader (or a kill) amid the write finds the claimed
        manifest with some stamps old or mixed, which only makes a load hash that output once; no file is created
        (on an ext4 without a journal each creation costs 18-833 us, docs/benchmarks.md). Only those digits are
        written, at their places in the claimed bytes (``_restamped``): the manifest is neither encoded nor copied
        again where the claim is held. Else (another inode or width: encoded anew, ``_stamped``) atomically, a new
        file renamed over it.
        Unstamped (signing, object storage) or when the write fails (a full disk), the manifest's time is set after
        the moves instead (``touch_after_moves``), as kart before 2026-12-03 did: an output must not look changed
        after it."""
        record = _record_of(items)
        written = self.claimed.pop(record.manifest, None)
        held = self.held_claims.pop(record.manifest, None)
        if self.signer is None:
            try:
                places, stamped = self._restamped(items, claimed, written) if written is not None else (None, True)
                if places is not None:
                    assert written is not None  # places are found in it
                    if stamped and not places:  # the stamps it claimed with are the files' (outputs written in place)
                        return
                    if places:
                        # Through the claim's descriptor where it is held (no second open of the manifest by path), only
                        # the digits that changed: no copy of the document.
                        if held is not None and held.rewrite_at(places):
                            return
                        data = _placed(written, places)
                        if held is None and rewrite_claimed(record.manifest, written, data):
                            return
                        self._write_whole(record, data)
                        return
                else:
                    again = self._stamped(claimed, items)
                    anew = self._encoded(again, record.manifest_name)[0] if again is not None else None
                    if stamped and anew is not None:
                        if (
                            written is not None
                            and len(anew) == len(written)
                            and (
                                held.rewrite(written, anew)
                                if held is not None
                                else rewrite_claimed(record.manifest, written, anew)
                            )
                        ):
                            return
                        self._write_whole(record, anew)
                        return
            except OSError:
                logger.warning(
                    "%s: could not record its outputs' stamps in %r; its loads hash them once",
                    self.label,
                    record.manifest,
                    exc_info=True,
                )
        touch_after_moves(record.manifest)

    @staticmethod
    def _write_whole(record: OutputRecord, data: bytes) -> None:
        """Write ``data`` as ``record``'s manifest atomically: a new file renamed over the claimed one."""
        with storage_for(record.manifest).atomic_write(record.manifest) as file:
            file.write(data)

    def _fence(self, record: OutputRecord, put: set[str]) -> commit_marker.FencedMoves | None:
        """The fenced moves of a replacing commit into ``record``'s manifest (it put a marker there), else None."""
        if not put:  # a first commit puts no marker (its path not even named: most commits)
            return None
        path = commit_marker.marker_path(record)
        if path not in put:
            return None

        def lost(other: commit_marker.Marker | None) -> MarkerLostError:
            error = _replaced(self.label, path, other)
            self.pulse.fail(error)
            return error

        return commit_marker.FencedMoves(storage_for(record.manifest), record, self.commit_id, lost)

    def _clear(self, storage: Storage, record: OutputRecord) -> MarkerLostError | None:
        """Remove this commit's marker beside ``record``'s manifest while it is still its own (under the marker
        guard); one another process put in its place stays: returns the error naming it (also kept in the pulse)."""
        path = commit_marker.marker_path(record)
        other = commit_marker.clear_own(storage, record, self.commit_id)
        self.pulse.cleared.add(path)
        if other is None:
            return None
        error = _replaced(self.label, path, other)
        self.pulse.fail(error)
        return error

    @contextlib.contextmanager
    def _heartbeat(self, records: list[OutputRecord], put: set[str]) -> Iterator[contextlib.ExitStack]:
        """Rewrite the markers of ``records`` (this commit's, once put) every third of the lease while the body runs.

        A marker's time is how another host without a shared lock tells a live commit from a killed one
        (``commit_marker.foreign_seconds``): copying large outputs on object storage may take longer than that.
        Yields a stack whose ``close()`` stops the beat early (after the last marker is removed); it stops at the
        end of the body at the latest. Nothing is started when no marker is to be put.

        Raises:
            ValueError: ``KART_DIRECT_LEASE_SECONDS`` is not a positive number (before any marker is put).
        """
        with contextlib.ExitStack() as stack:
            if records:
                interval = commit_marker.lease_seconds() / 3
                stop = threading.Event()
                beat = threading.Thread(
                    target=self._beat,
                    args=(stop, records, interval, put),
                    name=f"kart-heartbeat {self.label}",
                    daemon=True,
                )
                beat.start()
                stack.callback(beat.join)
                stack.callback(stop.set)
            yield stack

    def _beat(self, stop: threading.Event, records: list[OutputRecord], interval: float, put: set[str]) -> None:
        """Rewrite each marker of ``records`` this commit has put (``put``) every ``interval`` seconds until ``stop``.

        A marker gone that the commit did not remove, or replaced by another process's, fails the commit before
        its next move (it used to be left unnoticed: attacker at9 J9).
        """
        while not stop.wait(interval):
            with self.marker_guard:  # the commit's put and clear take turns with it
                if stop.is_set():
                    return
                for record in records:
                    path = commit_marker.marker_path(record)
                    if path not in put or path in self.pulse.cleared:
                        continue
                    storage = storage_for(record.manifest)
                    try:
                        if commit_marker.refresh(storage, record, self.commit_id, (), self.signer, kind="commit"):
                            self.pulse.wrote(path)
                            continue
                        current = commit_marker.read_marker(storage, path)
                        if current is None or not commit_marker.mine(current, self.commit_id):
                            self.pulse.fail(_replaced(self.label, path, current))
                    except Exception as exc:  # noqa: BLE001 - one missed beat is survived; two fail the commit
                        if not self.pulse.overdue(path):
                            logger.warning("%s: could not refresh its commit marker", self.label, exc_info=True)
                        else:
                            self.pulse.fail(_lost(self.label, path, exc))

    def _settle(self, items: list[Staged], held: contextlib.ExitStack) -> tuple[object, Manifest | None]:
        """Decide how ``items`` (one manifest's outputs) are committed: created, replacing, or superseded.

        ``_CREATED``: a first build created the manifest (exclusively, no lock; its claim is held until
        ``held`` closes): its outputs only need moving. ``_REPLACING``: the manifest's commit lock is now
        held (until ``held`` closes) and no other writer committed since this run began: the caller
        writes the marker and the manifest.
        ``_SUPERSEDED``: another run committed meanwhile (see the module docstring); its outputs are
        kept. With the outcome comes the manifest found under the lock (None when absent), or the one a first
        build created (as written: ``_stamp_claimed`` writes it again with its outputs' stamps).
        """
        record = _record_of(items)
        storage = storage_for(record.manifest)
        if record.manifest in self.bases and self.bases[record.manifest] is None:
            # The common case, a first build: create the manifest only if still absent. No lock and no
            # marker needed: the task is complete only when all its outputs exist, and none existed.
            # The claim makes a writer that finds this manifest wait until the outputs are in place.
            # A manifest found there (another writer, or a damaged leftover) is settled below.
            outputs = _entries(items)
            # Stamped with the staged files (the same inodes, status-change times as wide as the moves will give them)
            # so that ``_stamp_claimed`` can write the stamps after the moves over these bytes in place.
            if self.signer is None:
                self._stamp_into(outputs, items, before_moves=True)
            fresh = Manifest(
                task=record.task,
                commit=self.commit_id,
                outputs=outputs,
                run=self._run_for(record),
                inputs=self.inputs_for(record),
                logs=self._logs_for(record, None),
                side=self._sides_for(record, None),
            )
            data, run = self._encoded(fresh, record.manifest_name)
            with self._room(record.manifest):  # a claim that fails removes its partial file (claim_new)
                claimed = held.enter_context(storage.claim_new(record.manifest, data))
            if claimed:
                self.run_recorded = self.run_recorded or run is not None
                self.claimed[record.manifest] = data
                if isinstance(claimed, HeldClaim):
                    self.held_claims[record.manifest] = claimed
                # As written (``_stamp_claimed`` writes its stamps again): without the run record JSON cannot hold.
                return _CREATED, fresh if run is fresh.run else dataclasses.replace(fresh, run=run)
        held.enter_context(_manifest_lock(record))
        storage.wait_claim(record.manifest)  # a first commit still moving its outputs into place
        refuse_folder(record.manifest)  # a folder in the manifest's place (damaged): removed when empty, else refused
        current = read_quietly(storage, record.manifest, record.manifest_name, self.signer)
        found = current.commit if current is not None else None
        if record.manifest in self.bases and found != self.bases[record.manifest]:
            if current is not None and self._on_newer_inputs(record, current):
                logger.warning(
                    "%s: another run committed %s first, built from inputs committed again since, which this run "
                    "read; this run's outputs replace it",
                    self.label,
                    record.task,
                )
                return _REPLACING, current
            logger.info(
                "%s: another run committed %s first; keeping its outputs and run logs, discarding this run's",
                self.label,
                record.task,
            )
            return _SUPERSEDED, current
        return _REPLACING, current

    def newer_than_committed(self, record: OutputRecord) -> bool:
        """Whether this run read newer inputs than the run whose commit of ``record``'s manifest is there now
        (``_on_newer_inputs``; False when it cannot be read): a by-path writer that waited for the task's lock while
        that run committed goes on instead of stopping (``kart_core.direct_write``), and its commit replaces it."""
        current = read_quietly(storage_for(record.manifest), record.manifest, record.manifest_name, self.signer)
        return current is not None and self._on_newer_inputs(record, current)

    def _on_newer_inputs(self, record: OutputRecord, winner: Manifest) -> bool:
        """Whether this run, beaten to its commit by ``winner`` (another run's commit of ``record``'s manifest since
        this run read its base), read newer inputs than that run: none of this run's inputs (loads and its
        requirements' outputs as ``run()`` began, ``inputs_for``) was committed again since, and some of the winner's
        were. Two runs of one task are interchangeable only when they read the same inputs: a run that read an
        upstream's newer commit must not be dropped for one that read the older (attacker at22 M1: two Airflow DAG
        runs at once, the upstream rerun between them; the later run's result was discarded and the task left stale,
        its downstream served the older value as cached). When neither or both are current, the winner stays (as
        before): a stale task then runs again at its next build."""
        if self.inputs_current is None:
            return False
        reader = record.owner or None
        mine = dataclasses.replace(winner, inputs=self.inputs_for(record))
        return self.inputs_current(mine, record.workspace, reader) and not self.inputs_current(
            winner, record.workspace, reader
        )

    def _room(self, path: str) -> contextlib.AbstractContextManager[None]:
        """Turn a full disk (or quota) while the commit writes ``path`` into a ``NoSpaceError`` naming both.

        The run's staged files are then deleted (``begin`` discards an uncommitted run), and the
        task counts as not built: its manifest is absent, the old one, or marked pending.
        """
        return NoSpaceError.raised_as(
            lambda exc: (
                f"No space left to commit {self.label}: writing {path!r} failed ({exc}{no_space_note(path)}). "
                "The run's outputs "
                "were not committed and its temporary files are removed. Free space on that disk (or raise the quota), "
                "then build again."
            )
        )

    def _sides_for(self, record: OutputRecord, current: Manifest | None) -> dict[str, Entry]:
        """The ``side`` section ``record``'s manifest gets: the side files this run dumped (keys of that manifest's
        task), over those an earlier run listed (still there unless another run rewrote them)."""
        side = dict(current.side) if current is not None else {}
        for owner, entry in self.sides.values():
            if owner.manifest == record.manifest:
                side[owner.key] = entry
        return side

    def _move(self, staged: Staged, fence: commit_marker.FencedMoves | None) -> str | None:
        """Move ``staged`` into place (through the commit marker's ``fence`` when there is one), naming the cause
        when its staged file vanished first (``kart gc --temp-age`` shorter than the run, or another process); the
        object store's tag of the version put there, when it answered one (``Storage.commit``).

        Raises:
            StagedOutputLostError: (a FileNotFoundError) the staged file of ``staged.path`` is gone; nothing moved.
        """
        try:
            if fence is None:
                return staged.storage.commit(staged.location, staged.path)
            return fence.move(staged.storage, staged.location, staged.path)
        except FileNotFoundError as exc:
            if isinstance(exc, StagedOutputLostError) or _still_there(staged):
                raise
            raise StagedOutputLostError(
                f"{self.label}: its staged output {staged.location!r} (to become {staged.path!r}) disappeared "
                "before the commit: removed by `kart gc` with a --temp-age shorter than the run, or by another "
                "process. Nothing was committed for this task; build it again, and give `kart gc --temp-age` more "
                "than your longest run."
            ) from exc

    def _commit_side(self, staged: Staged) -> None:
        """Move the side file ``staged`` into place (one written in place by its path is there already) and, with
        signing on, record this run as the path's last writer (``kart_core.side_record``) under the path's lock, so
        the record names the run whose file is there also when two runs write one shared path."""
        owner, entry = self.sides[staged.path]
        if self.signer is None or not entry.sealed or entry.commit is None:
            if not staged.in_place:
                self._move(staged, None)
            return
        with side_record.writing(owner):
            if not staged.in_place:
                self._move(staged, None)
            with self._room(side_record.name_for(owner.key)):
                side_record.write_record(owner, entry.commit, self.signer)

    def _logs_for(self, record: OutputRecord, current: Manifest | None) -> str | None:
        """Which run's committed run logs ``record``'s manifest names: this run's when it staged them sealed
        (``logged``), else the ones the manifest named (they stay in place)."""
        if record.manifest in self.logged:
            return self.commit_id
        return current.logs if current is not None else None

    def _run_for(self, record: OutputRecord) -> dict[str, Any] | None:
        """The run record this commit writes into ``record``'s manifest (None: not that task's, or none)."""
        return self.run_record if self.run_record is not None and record.unique_id == self.run_record_id else None

    def _encoded(self, manifest: Manifest, name: str) -> tuple[bytes, dict[str, Any] | None]:
        """The manifest's bytes and the run record they hold: without it when JSON cannot hold it
        (the run logs then go to their files, ``kart_core.runlog``)."""
        try:
            return manifest_bytes(manifest, name, self.signer), manifest.run
        except (TypeError, ValueError):
            if manifest.run is None:
                raise
            plain = dataclasses.replace(manifest, run=None)
            return manifest_bytes(plain, name, self.signer), None

    def discard(self) -> None:
        """Delete every staged file (the run failed or was interrupted)."""
        for staged in self.staged.values():
            if not staged.in_place:
                _remove_quietly(staged.storage, staged.location)
        self.staged.clear()


class _Opened:
    """``Transaction.opened``'s context manager: a class, not a ``contextlib.contextmanager`` (every run enters it)."""

    __slots__ = ("_running",)

    def __init__(self, running: Transaction) -> None:
        self._running = running

    def __enter__(self) -> None:
        running = self._running
        running.note_required()  # what its requirements hold as run() begins: the run's input floor
        # A thread already running now (a monitor polling complete(), a server's request thread) cannot be one
        # that run() starts: it must see the committed state, as it would from another process.
        running.outsiders = shared_threads()
        running.thread = threading.current_thread()
        running.open = True
        # A child process that may do this run's work without being sent its task (a worker of a pool made before the
        # run, or forked during an earlier one) finds the run through its folder (``child_loads.for_child``).
        if running.relay_made:
            running.publish()
        elif _children_possible():
            running.relay_ready()

    def __exit__(self, *_exc: object) -> None:
        running = self._running
        running.open = False
        running.thread = None
        if running.relay_made and running.pid == _Process.pid:
            child_loads.unpublish(running.relay_folder)
        try:
            if running.slot is not None:
                running.slot.outlived(shared_threads(), running.outsiders, threading.current_thread())
        finally:
            running.outsiders = frozenset()


def read_base(storage: Storage, record: OutputRecord, signer: Signer | None) -> str | None:
    """The commit id of ``record``'s manifest now (None: absent, damaged or refused), a first commit's claim waited for.

    What ``Transaction.remember_base`` notes; a caller that must decide on the same state its commit
    replaces (the repair of a damaged output, ``kart_core.runner``) reads it before deciding and hands
    it to ``begin``.
    """
    found = read_quietly(storage, record.manifest, record.manifest_name, signer)
    if found is not None:
        storage.wait_claim(record.manifest)
    return found.commit if found is not None else None


# What else a manifest written outside a commit records: the entries of its other outputs rewritten outside kart
# since it was written (``kart_core.damage.rewritten_siblings``), given by the caller (this layer reads no content).
Siblings = Callable[[OutputRecord, Manifest], Mapping[str, Entry]]


def record_direct_dump(
    storage: Storage,
    record: OutputRecord,
    entry: Entry,
    signer: Signer | None,
    *,
    replacing: str | None = None,
    siblings: Siblings | None = None,
) -> bool:
    """Update ``record``'s manifest entry after a dump outside any run (a gokart-style script).

    ``replacing``: the commit id of the entry this one replaces (a load recording a file rewritten
    outside kart); when the manifest meanwhile names another commit for it (a run committed since, its
    record names what is there now), nothing is written. ``siblings``: the new versions of the task's other
    outputs to write with it (``Siblings``). Returns whether the entry was written.
    """
    with _manifest_lock(record):
        current = read_quietly(storage, record.manifest, record.manifest_name, signer)
        if replacing is not None:
            found = current.outputs.get(record.key) if current is not None else None
            if found is None or found.commit != replacing or current is None or current.pending:
                return False
        outputs = dict(current.outputs) if current is not None else {}
        if siblings is not None and current is not None:
            outputs.update(siblings(record, current))
        outputs[record.key] = entry
        run = current.run if current is not None else None
        logs = current.logs if current is not None else None  # the run logs in place stay current
        # No inputs of its own: the dumped object did not come from what the last run loaded (nothing claimed);
        # another owner's of the same manifest stay its record.
        inputs = _kept_inputs(current, record)
        # Dumped as the task's output now: no longer one of its run's side files (kart_core.side_record).
        side = {key: item for key, item in current.side.items() if key != record.key} if current is not None else {}
        manifest = Manifest(
            task=record.task, commit=new_commit_id(), outputs=outputs, run=run, logs=logs, inputs=inputs, side=side
        )
        write_manifest(storage, record.manifest, record.manifest_name, manifest, signer)
        return True


def forget(storage: Storage, record: OutputRecord, signer: Signer | None, siblings: Siblings | None = None) -> None:
    """Drop ``record``'s entry from its manifest (the output was removed); delete an emptied manifest.
    ``siblings``: the new versions of the task's other outputs to write with it (``Siblings``)."""
    with _manifest_lock(record):
        current = read_quietly(storage, record.manifest, record.manifest_name, signer)
        if current is None or record.key not in current.outputs:
            return
        outputs = {key: entry for key, entry in current.outputs.items() if key != record.key}
        if siblings is not None:
            outputs.update({key: found for key, found in siblings(record, current).items() if key in outputs})
        if not outputs:
            storage.remove(record.manifest)
            return
        changed = dataclasses.replace(current, commit=new_commit_id(), outputs=outputs, pending=False)
        write_manifest(storage, record.manifest, record.manifest_name, changed, signer)


class _Outside:
    """The type of ``_OUTSIDE``: a context kart put outside any run (``detached``), unlike one it never set
    (a thread that ``run()`` started), whose reads of a running task's outputs join that run."""

    __slots__ = ()


_OUTSIDE = _Outside()
_current: contextvars.ContextVar[Transaction | _Outside | None] = contextvars.ContextVar(
    "kart_transaction", default=None
)
# In a child process of a run that the context does not name: where a task's loads are sent (``joined``).
_relayed: contextvars.ContextVar[child_loads.Relay | Adopted | None] = contextvars.ContextVar(
    "kart_relay", default=None
)


@contextlib.contextmanager
def begin(
    task: object,
    label: str,
    signer: Signer | None = None,
    bases: dict[str, str | None] | None = None,
    slot: RunSlot | None = None,
) -> Iterator[Transaction]:
    """Run the body as ``task``'s transaction; staged files not committed by the end are deleted.

    ``bases``: manifest path → commit id (``read_base``) read by the caller before it decided to run;
    a commit of those manifests since then supersedes this run's (see the module docstring).
    ``slot``: the task's ``RunSlot``: it holds the run until the end, so writes of the task's outputs
    from other threads join it while it is ``open`` and are refused after (``join``).
    """
    transaction = Transaction(task=task, label=label, signer=signer, bases=dict(bases or {}), slot=slot)
    token = _current.set(transaction)
    if slot is not None:
        slot.enter(transaction)
    _InProgress.add(transaction)
    try:
        yield transaction
    finally:
        transaction.ended = True
        _InProgress.remove(transaction)
        _current.reset(token)
        # Not in a forked child that unwinds a copy of the run; nothing to remove when the run never made the folder.
        if transaction.pid == _Process.pid and transaction.relay_made:
            child_loads.remove(transaction.relay_folder)
        if slot is not None:
            slot.leave(transaction)
            # A stray's path request after a failed run is refused (RunSlot.failed); a commit lifts that.
            slot.failed = not transaction.committed
        if not transaction.committed:
            transaction.discard()
        # The run's DirectWrites refers back to it: unlinked once the run is over (no ``join`` hands out an ended
        # run), so both, and the ~25 objects they hold, are freed when the caller drops them instead of waiting as
        # cyclic garbage for the collector (which then ran a third more often in a KartRunner first run).
        transaction.direct = None


class detached:  # noqa: N801 - used as a function: ``with transaction.detached():``
    """Run the body outside any transaction (a build inside a task's run() commits on its own).

    A class, not a ``contextlib.contextmanager``: a task run enters it three times (``run_one`` and its hooks),
    and a generator-based context manager costs three times a plain one's calls (a KartRunner first run's per-node
    overhead, docs/benchmarks.md, session 18).
    """

    __slots__ = ("_token",)

    def __enter__(self) -> None:
        self._token = _current.set(_OUTSIDE)

    def __exit__(self, *_exc: object) -> None:
        _current.reset(self._token)


def unset() -> bool:
    """Whether this thread or task context is one kart never set: neither in a run nor ``detached`` (luigi's worker
    thread, a user's thread, a thread a ``run()`` started)."""
    return _current.get() is None


# The run a build nested in its run() hands its roots to (``loads_noted_by``): their loads are that run's inputs.
_reader: contextvars.ContextVar[Transaction | child_loads.Relays | None] = contextvars.ContextVar(
    "kart_nested_build_reader", default=None
)


@contextlib.contextmanager
def loads_noted_by(running: Transaction | child_loads.Relays | None) -> Iterator[None]:
    """Inside the body, a load made outside any run (a build nested in ``running``'s ``run()`` loading the roots it
    returns, ``detached``) is noted as ``running``'s input (``reader``), as ``self.load()`` of them would be: the
    value ``build()`` returns inside a run is what the run was built from (attacker at15 F11)."""
    token = _reader.set(running)
    try:
        yield
    finally:
        _reader.reset(token)


def reader() -> Transaction | child_loads.Relays | None:
    """The run a load here counts for: the innermost transaction (``current``), else the run a nested build
    loads its roots for (``loads_noted_by``) while that run is in progress. In a forked child of that run (a
    ``build()`` in a fork pool ``run()`` made) it is the forked copy, whose ``note_load`` sends the record to the run
    (attacker at18 I4), or to the parent's run executing now (``Transaction._child_relays``); in a child process with
    no run in its context (a pool made before the run), the parent's runs that ``nesting_run`` found."""
    found = current()
    if found is not None:
        return found
    outer = _reader.get()
    return outer if outer is not None and not outer.ended else None


def nesting_run(what: Callable[[], str]) -> Transaction | child_loads.Relays | None:
    """The run a ``build()`` here is nested in, whose inputs the roots it returns are (``loads_noted_by``).

    The innermost transaction (``current``); else, in a context kart never set (``unset``: a thread that a ``run()``
    started, which Python does not hand the run's context), the one run of this process whose ``run()`` is executing
    and that this thread may belong to: it was started after that ``run()`` began (not one of its ``outsiders``).
    A thread alive before every executing run began (a worker of a pool made before the run, which ``run()`` hands the
    build: attacker at18 I1) is the one executing run's, as a load there is (``_adopter``): any work it does while
    that run executes may be the run's, and an extra input makes a task run once more than needed, never stale.
    With two or more such runs (a build with ``workers=2`` threads) kart cannot tell which one started the thread (or
    handed it the build): none is taken, and each is warned once (``what()`` names the build) rather than record
    another run's input. Runs nested in one thread count as one, the innermost (``_innermost``).

    In a child process with no run in its context (a worker of a pool made before the run; spawn, forkserver) and
    none of its own executing: the parent's runs whose ``run()`` executes now (``child_loads.for_child``: all of them
    when kart cannot tell which one handed out the work, so none is served stale; attacker at20 K10).
    """
    found = current()
    if found is not None or not unset():
        return found
    thread = threading.current_thread()
    executing = _InProgress.executing()
    if not executing:
        return child_loads.for_child(None)
    # Not started by any of them (a pool made before): the work is handed over, not started, by the run it is for.
    candidates = _innermost([run for run in executing if thread not in run.outsiders]) or _innermost(executing)
    if len(candidates) == 1:
        return candidates[0]
    labels = ", ".join(run.label for run in candidates)
    described = what() if candidates else ""
    for run in candidates:
        _warn_once(
            run,
            "build",
            "%s: %s was called in thread %r, which is not run()'s own, while runs of %s are in progress in this "
            "process: kart cannot tell which run() started that thread (or handed it the build), so what the build returns is recorded as "
            "no run's input, and %s will not be found stale when it changes. Call build() in run()'s own thread, or "
            "hand the thread a copy of run()'s context: pool.submit(contextvars.copy_context().run, gokart.build, "
            "task) made in run().",
            run.label,
            described,
            thread.name,
            labels,
            run.label,
        )
    return None


def _warn_once(run: Transaction, kind: str, message: str, *args: object) -> None:
    """Log ``message`` (a logging format with ``args``) as a warning, once per ``run`` and ``kind``."""
    if kind in run.warned:
        return
    run.warned.add(kind)
    logger.warning(message, *args)


class _InProgress:
    """The runs begun in this process and not yet ended (``begin`` adds and removes each), oldest first.

    Code running outside every run's context finds here the run it may belong to: a thread that a ``run()`` started
    does not inherit the run's context (``nesting_run``). Holds a run only while it is in progress; a forked child
    starts with none (its copies of its parent's runs are not its own).
    """

    runs: tuple[Transaction, ...] = ()
    change = threading.Lock()

    @classmethod
    def add(cls, run: Transaction) -> None:
        with cls.change:
            cls.runs = (*cls.runs, run)

    @classmethod
    def remove(cls, run: Transaction) -> None:
        with cls.change:
            cls.runs = tuple(found for found in cls.runs if found is not run)

    @classmethod
    def executing(cls) -> list[Transaction]:
        """The runs of this process whose ``run()`` is executing now."""
        return [run for run in cls.runs if run.open and not run.ended and run.pid == _Process.pid]

    @classmethod
    def forked(cls) -> None:
        # The child may do work for the parent's runs in progress (``child_loads.parent_pids``).
        child_loads.forked(os.getppid() if cls.runs else None)
        cls.runs = ()
        cls.change = threading.Lock()  # a fork while another thread held it would leave the child's copy held


def _children_possible() -> bool:
    """Whether a child process of this one may be doing work for a run beginning now: it has live ``multiprocessing``
    children (a worker of a pool made before the run, or forked during an earlier one; any start method). A child
    forked by ``os.fork`` itself is not seen (its parent's runs in progress when it was forked are: ``_before_fork``).
    One look at ``multiprocessing``'s own list per run: a run's folder is made and published (a few system calls)
    only in a process that has such children."""
    return bool(_mp.active_children())


def _before_fork() -> None:
    """Make the relay folders of this process's runs in progress: the child may send their loads there."""
    for run in _InProgress.runs:
        if run.pid == _Process.pid and not run.ended:
            run.relay_ready()


os.register_at_fork(before=_before_fork, after_in_child=_InProgress.forked)


def check_before_commit(check: Callable[[], object]) -> bool:
    """Call ``check`` when the run a load here counts for commits, before anything is moved or recorded: an exception
    from it fails the run, which commits nothing. For a reader whose input can change after it was loaded and before
    the run is done with it (a ``RawFile``'s file, read by path in ``run()``).

    The run is the one a load's record goes to (``reader``, ``relayed``): in a thread that ``run()`` started, the
    one ``off_context`` found; in a child process of the run, ``check`` is pickled and sent to it
    (``kart_core.child_loads``), and the run calls it at its commit.

    Returns:
        Whether a run took the check (False when the load counts for no run).

    Raises:
        TaskDefinitionError: (in a child process) ``check`` cannot be pickled.
        LoadOSError: (in a child process) it cannot be sent to the run.
    """
    found = load_reader()
    if found is None:
        return False
    running = found.run if isinstance(found, Adopted) else found  # Adopted: a load in a thread that run() started
    if not isinstance(running, Transaction):  # a child process of the run: sent to it
        running.note_check(check)
        return True
    if running.pid != _Process.pid:  # a forked child's copy of the run
        running._child_relays().note_check(check)
        return True
    running.commit_checks.append(check)
    return True


def load_reader() -> Transaction | child_loads.Relay | child_loads.Relays | Adopted | None:
    """The run a load here counts for: the one a task or target this process was sent carries (``relayed``: it came
    pickled from that run, so it wins over a copy of an earlier run's context that a forked pool worker holds, attacker
    at20 K10), else ``reader``, else, in a child process outside every run, the parent's runs whose ``run()`` executes
    now (``child_loads.for_child``); None: a load outside any run."""
    found = _relayed.get() or reader()
    return found if found is not None else child_loads.for_child(None)


def _present(path: str) -> bool:
    """Whether something is at ``path`` (a local path or URL); False when the store cannot be asked."""
    try:
        return storage_for(path).exists(path)
    except (OSError, ValueError):
        return False


def admits_raw(path: str) -> bool:
    """Whether the run a load here counts for (``load_reader``), in this process, lets signing load the unsigned file
    at ``path``: the output of a raw input it requires (``Transaction.admits_raw``). False outside a run, and in a
    child process of a run (its load is refused as before)."""
    found = load_reader()
    return isinstance(found, Transaction) and found.admits_raw(path)


def current() -> Transaction | None:
    """The innermost transaction of this thread or task context, if any (an ended run's, which only a copy of
    its context can name, counts as none: see ``Transaction.ended``)."""
    found = _current.get()
    return found if isinstance(found, Transaction) and not found.ended else None


def runs(task: object) -> bool:
    """Whether the innermost transaction is ``task``'s own (its ``run()`` body is executing)."""
    transaction = current()
    return transaction is not None and transaction.task is task


def join(
    slot: RunSlot | None,
    writing: bool = False,
    what: str = "",
    reading: bool = False,
    asking_path: bool = False,
    label: str | None = None,
) -> Transaction | None:
    """The run a read or write of a task's output belongs to: this context's transaction, else the task's run
    whose ``run()`` is executing in this process (found through ``slot``, from whatever thread asks).

    A context that kart put outside any run (``detached``: its own complete() checks) reads committed
    outputs only. A read never raises: None when no run of the task is open in this process.
    ``reading``: the caller only looks at the output (``exists()``, a load): from a thread that was alive when
    the run's ``run()`` began (``Transaction.outsiders``: not one that ``run()`` started) it gets None, so it
    sees the committed state; a write or path request from such a thread (a pool made before) joins while the
    run is open. A thread that was alive when an ended run's ``run()`` returned, other than its own and the main
    thread (``RunSlot.stray_run``: one ``run()`` started, an un-awaited future, an executor shut down with
    ``wait=False``; or a worker of a pool made before the run that may still run a job ``run()`` submitted) joins
    no run: its write is refused, not published as a dump outside any run nor staged into a later run of the
    task (a retry in the same process).

    Args:
        slot: the output's task's ``RunSlot`` (None: a target no task made, or a run log).
        writing: a dump, which must not be lost: the errors below are raised instead of writing the
            output outside the run (a manifest of its own would make the run's commit count as beaten).
        what: the written output, for the error messages.
        reading: see above.
        asking_path: a path request (``TargetOnKart.path``): refused from such an outliving thread while another
            run of the task is in progress (it would write into that run) or when the task's last run in this
            process failed (what it writes there would make the task complete), else answered outside any run.
        label: how the messages of the refusals below name the output's task (its ``kart_label()``; the slot
            keeps no label per task). None: "the task".

    Raises:
        RunWriteError: (writing) from a child process of the process running the task (its staged
            file would never be committed), after its ``run()`` returned (a thread still running, or one
            that outlived an ended run: ``asking_path`` too while a run is in progress or after a failed
            one; code that the run scheduled in a copy of its context, e.g. an asyncio callback, that runs
            after the run ended), or while two runs
            of the same task object are open in this process (which one is unknown).
    """
    found = _current.get()
    if isinstance(found, Transaction):
        if found.ended:
            _refuse_ended(found, writing, asking_path and _busy(slot), what)
            return None
        if writing:
            # Named by the written task's run first (a forked worker may hold another's context), unless the run here
            # is this process's own run of that task: a build's process-pool worker running the task it was sent,
            # whose slot was pickled while the parent's run of the same task object was in progress (its ``elsewhere``).
            own = found.pid == _Process.pid and found.slot is slot
            if slot is not None and not own:
                refuse_child(slot, what)
            check_process(found, what)
        return found
    if slot is None or (found is _OUTSIDE and not writing):
        return None
    if writing:
        refuse_child(slot, what)
    if slot.strays is not None and _refuse_stray(slot, writing, asking_path, what, label):
        return None
    open_runs = list(slot.runs)  # a copy: another thread's run may end meanwhile
    if not open_runs:
        return None
    running = open_runs[0]
    if len(open_runs) == 1 and running.open and running.pid == _Process.pid:
        if reading and threading.current_thread() in running.outsiders:
            return None
        return running
    if not writing:
        return None
    if len(open_runs) > 1:
        raise RunWriteError(
            f"{running.label}: {what} was written from a thread outside the task's run while {len(open_runs)} runs "
            "of this task object are in progress in this process, so kart cannot tell which run it belongs to. "
            "Dump from the thread that runs run(), or return the value to it."
        )
    raise RunWriteError(
        f"{running.label}: {what} was written from another thread after the task's run() returned (its outputs "
        "are being committed). Wait for the threads that run() starts (e.g. `with ThreadPoolExecutor() as pool:`) "
        "before run() returns."
    )


def _busy(slot: RunSlot | None) -> bool:
    """Whether a run of ``slot``'s task is in progress in this process, or its last one failed (a path handed out
    then would be written into that run, or make the failed task look complete)."""
    return slot is not None and (bool(slot.runs) or slot.failed)


def _refuse_ended(found: Transaction, writing: bool, asking_path: bool, what: str) -> None:
    """Raise for a write, or a path request while another run is in progress or after a failed one (``_busy``),
    from a context that still names the ended run ``found`` (as for a thread that outlived the run); its reads
    see the committed state.

    Raises:
        RunWriteError: ``writing`` or ``asking_path``, from code that the run handed a copy of its context and
            that ran after the run was over (an asyncio callback or task scheduled by ``run()``); a dump would be
            lost in the ended run.
    """
    if not (writing or asking_path):
        return
    raise RunWriteError(
        f"{found.label}: {what} was {'written' if writing else 'asked for'} after the task's run was over "
        "(committed, or failed and undone), by code that run() left to run later in its context: an asyncio callback "
        "or task it scheduled (loop.call_soon, call_soon_threadsafe, call_later, create_task) or a "
        "contextvars.copy_context() it handed on. Nothing was written or handed out: the run's outputs are the ones it "
        "committed. Finish that work inside run() (wait for it there) and dump its result before run() returns."
    )


def _refuse_stray(slot: RunSlot, writing: bool, asking_path: bool, what: str, label: str | None) -> bool:
    """Whether this thread outlived an ended run of the task (then it joins no run); raise when it writes.
    ``label`` names the task in the messages (see ``join``).

    Raises:
        RunWriteError: it writes the task's output, or asks for its path while a run of the task is in progress
            or after the task's last run in this process failed.
    """
    outsider = slot.stray_run(threading.current_thread())
    if outsider is None:
        return False
    label = label or "the task"
    if outsider:
        who = (
            "a thread that was already running when the task's run() began (a worker of a pool made before the "
            "run, e.g. a module-level ThreadPoolExecutor) and was still running when run() returned"
        )
        fix = (
            "Create the pool inside run() (`with ThreadPoolExecutor() as pool:`), or return the values to "
            "run()'s own thread and dump them there."
        )
    else:
        who = (
            "a thread that the task's run() started and that was still running after run() had returned (an "
            "un-awaited future, an executor shut down with wait=False)"
        )
        fix = (
            "Wait for the threads that run() starts before it returns (e.g. `with ThreadPoolExecutor() as pool:`, "
            "`thread.join()`). A worker of a pool kept for the process counts as such a thread too: create the "
            "pool inside run(), or return the values to run()'s own thread and dump them there."
        )
    if writing:
        raise RunWriteError(
            f"{label}: {what} was written from {who}. That run is over (committed, or failed and undone), so the "
            f"write belongs to no run: nothing was written, and it is not put into a later run of the task. {fix}"
        )
    if asking_path and (slot.runs or slot.failed):
        when = (
            "while another run of the task is in progress: what it writes there would be taken for that run's output"
            if slot.runs
            else "after the task's run failed: what it writes there would make the failed task look complete"
        )
        raise RunWriteError(f"{label}: {what} was asked from {who}, {when}. Nothing was handed out. {fix}")
    return True


class joined:  # noqa: N801 - used as a function: ``with transaction.joined(slot) as running:``
    """Run the body in the run that ``join`` finds for ``slot`` (a task's own ``load``/``dump`` from a thread
    that its ``run()`` started: its loads are recorded as the run's inputs, its dumps are staged in it).
    ``label`` names the task in ``join``'s refusals.

    In a child process of the task's run (a spawned one sent the task, a forked one from a thread that ``run()``
    started) what the body loads is sent to the run (``kart_core.child_loads``). A class, not a
    ``contextlib.contextmanager``: every load and dump of a task's output enters it.

    Raises:
        RunWriteError: as ``join``, when ``writing``.
    """

    __slots__ = ("_label", "_slot", "_token", "_variable", "_what", "_writing")
    _token: contextvars.Token[Any]

    def __init__(self, slot: RunSlot | None, writing: bool = False, what: str = "", label: str | None = None) -> None:
        self._slot, self._writing, self._what, self._label = slot, writing, what, label
        self._variable: contextvars.ContextVar[Any] | None = None

    def __enter__(self) -> Transaction | None:
        slot = self._slot
        found = _current.get()
        if isinstance(found, Transaction):
            running = join(slot, self._writing, self._what, label=self._label)
            if found.pid != _Process.pid and slot is not None and _relayed.get() is None:
                # A forked child holding a copy of some run's context (a pool worker forked during an earlier task's
                # run): the task's own run, which its slot names, is the one its loads count for (attacker at20 K10).
                relay = _relay_of(slot)
                if relay is not None:
                    self._variable, self._token = _relayed, _relayed.set(relay)
            return running
        running = join(slot, self._writing, self._what, label=self._label)
        if running is None:
            relay = _relay_of(slot) if slot is not None and _relayed.get() is None else None
            if relay is not None:
                self._variable, self._token = _relayed, _relayed.set(relay)
            return None
        self._variable, self._token = _current, _current.set(running)
        return running

    def __exit__(self, *_exc: object) -> None:
        if self._variable is not None:
            self._variable.reset(self._token)


def relayed() -> child_loads.Relay | Adopted | None:
    """Where this context's loads go when it is a child process of a task's run that found the run only through
    the task's ``RunSlot`` (``joined``: a task's ``load`` in a spawned child it was sent to), or when a target is read
    outside every run's context and kart can tell which run it belongs to (``off_context``); else None."""
    return _relayed.get()


@dataclasses.dataclass(frozen=True)
class Adopted:
    """A run of this process that a load made outside every run's context counts for (``off_context``: a thread that
    its ``run()`` started). Such a load's record does not replace one the run noted before (``Transaction.keep_load``).
    """

    run: Transaction

    @property
    def label(self) -> str:
        """The run's task, as messages name it."""
        return self.run.label

    def note_load(self, record: OutputRecord, entry: Entry) -> None:
        """As ``Transaction.note_load``, keeping an earlier record of the output."""
        self.run.keep_load(record, entry, None)

    def note_unrecorded(self, record: OutputRecord, stamp: tuple[object, ...], digest: str) -> None:
        """As ``Transaction.note_unrecorded``, keeping an earlier record of the output."""
        self.run.keep_load(record, Entry(size=0, digest=digest, commit=None, sealed=False), stamp)


@contextlib.contextmanager
def off_context(
    record: OutputRecord | None, carried: child_loads.Relay | None = None, reader_slot: RunSlot | None = None
) -> Iterator[None]:
    """Read a target of ``record`` (the body) in the run it belongs to when this context is one kart never set (``unset``):
    its loads are noted there (``relayed``), and the checks they ask for are made at its commit (``check_before_commit``).

    In this process (a thread that a ``run()`` started: Python does not hand it the run's context) that is the one run
    whose ``run()`` is executing and whose task requires ``record``'s task (its ``input()`` holds the target); of two
    or more (a build with ``workers=2`` threads over siblings of one upstream) the one this thread was started after
    (not one of its ``outsiders``), if only one. Else no run: each run that may have started the thread is warned once,
    naming the target and the way out, rather than record another run's input. In another process, ``carried``: the
    relay a target pickled while such a run was in progress carries (``relay_for``; a pool made before the run).

    A target that the task's ``input()`` handed out in its run (``reader_slot``: ``Transaction.input_view``) counts
    for that run while its ``run()`` executes; after, as any other target (a view kept in a cache past its run and
    loaded in another run's thread counts for that run, attacker at18 I13).
    """
    if record is None or not (unset() or _inherited()) or _relayed.get() is not None:
        yield
        return
    found: child_loads.Relay | Adopted | None = _reader_of(reader_slot) if reader_slot is not None else None
    if found is None:  # no view, or its run is over (a view kept past its run, loaded by another's thread: at18 I13)
        found = _adopter(record)
        if found is None and carried is not None and carried.pid != _Process.pid:
            found = carried
    if found is None:
        yield
        return
    token = _relayed.set(found)
    try:
        yield
    finally:
        _relayed.reset(token)


def _inherited() -> bool:
    """Whether this context names a run of another process: this process was forked while that run was in progress
    (a pool worker forked lazily during it). What a target carries names its run better (``off_context``)."""
    found = _current.get()
    return isinstance(found, Transaction) and found.pid != _Process.pid


def _reader_of(slot: RunSlot) -> child_loads.Relay | Adopted | None:
    """The run of ``slot``'s task a load of a target its ``input()`` handed out counts for: the one executing in this
    process, or (in a child process holding a copy of it) the relay to it; None when that run is over."""
    runs = [run for run in slot.runs if run.open and not run.ended]
    if len(runs) != 1:
        return None
    return Adopted(runs[0]) if runs[0].pid == _Process.pid else runs[0].relay()


def relay_for(record: OutputRecord | None, reader_slot: RunSlot | None = None) -> child_loads.Relay | None:
    """The relay a target of ``record`` pickled here carries to another process (``off_context``): that of the run a
    load here would count for (``reader``, else ``off_context``'s choice, without a warning); None outside any run.
    ``reader_slot``: the target is a view ``input()`` handed out (``Transaction.input_view``): its run's relay."""
    if reader_slot is not None:
        tagged = _reader_of(reader_slot)
        if isinstance(tagged, Adopted):
            return tagged.run.relay_ready()
        return tagged
    if record is None or not _InProgress.runs:
        return None
    found = reader()
    if found is None and unset():
        adopted = _adopter(record, warn=False)
        found = adopted.run if adopted is not None else None
    if isinstance(found, child_loads.Relays):  # a build nested in a child for its parent's run(s): one relay carries
        return found.relays[0] if len(found.relays) == 1 else None
    return found.relay_ready() if found is not None else None


def _adopter(record: OutputRecord, warn: bool = True) -> Adopted | None:
    """The run of this process a load of ``record`` outside every run's context belongs to (``off_context``)."""
    runs = _InProgress.executing()
    if not runs:
        return None
    thread = threading.current_thread()
    matching = [run for run in runs if record.manifest in run.upstream_manifests()]
    if len(matching) > 1:
        matching = _innermost([run for run in matching if thread not in run.outsiders]) or matching
    if len(matching) == 1:
        return Adopted(matching[0])
    if warn:
        others = [run for run in runs if run.label != record.task]
        # A thread alive before every run began (a pool made before: run() hands it work) may be any of them's.
        suspects = matching or [run for run in others if thread not in run.outsiders] or _innermost(others)
        _warn_unattributed(suspects, record, thread, bool(matching))
    return None


def _innermost(runs: list[Transaction]) -> list[Transaction]:
    """``runs`` (oldest first), or only the newest when all execute their ``run()`` in one thread: each began inside
    the one before it (a build nested in a run's ``run()``), so a thread started after all of them began was started
    by the innermost one's code, the others being blocked in their nested build (attacker at18 I8)."""
    if len(runs) > 1 and runs[-1].thread is not None and all(run.thread is runs[-1].thread for run in runs):
        return [runs[-1]]
    return runs


def _warn_unattributed(runs: list[Transaction], record: OutputRecord, thread: threading.Thread, shared: bool) -> None:
    """Warn each of ``runs`` once that a load of ``record`` in ``thread`` is recorded as no run's input."""
    labels = ", ".join(run.label for run in runs)
    why = (
        f"the tasks of runs {labels} all require {record.task}, and kart cannot tell which run() started that thread"
        if shared
        else f"no running task requires {record.task} (runs in progress: {labels})"
    )
    for run in runs:
        _warn_once(
            run,
            "load",
            "%s: %s's output %r was loaded in thread %r, which is not run()'s own, and is recorded as no run's input: "
            "%s. If %s uses it, it will not be found stale when that output changes. Load it through self.load() "
            "(which finds the task's run from any thread) or in run()'s own thread, or hand the thread a copy of "
            "run()'s context (pool.submit(contextvars.copy_context().run, fn, ...), the copy made in run()).",
            run.label,
            record.task,
            record.key,
            thread.name,
            why,
            run.label,
        )


def _relay_of(slot: RunSlot) -> child_loads.Relay | None:
    """The relay of the run of ``slot``'s task in progress in another process, of which this one is a child (the
    slot came in a pickle, or is a forked copy); None when this process runs it, or no run was in progress."""
    if slot.elsewhere is not None:
        pid, label, folder, error = slot.elsewhere
        return child_loads.Relay(label, pid, folder, error) if pid != _Process.pid and folder is not None else None
    open_runs = list(slot.runs)
    if len(open_runs) == 1 and open_runs[0].pid != _Process.pid and not open_runs[0].ended:
        return open_runs[0].relay()
    return None


def refuse_child(slot: RunSlot, what: str) -> None:
    """Raise when this process is a child of the one whose run of the task ``slot`` belongs to is in progress.

    Raises:
        RunWriteError: ``slot`` came from such a run (a forked copy, or a pickle sent to a spawned child).
    """
    if slot.elsewhere is not None and slot.elsewhere[0] != _Process.pid:
        raise _child_error(slot.elsewhere[1], slot.elsewhere[0], what)
    for running in list(slot.runs):
        check_process(running, what)


def check_process(running: Transaction, what: str) -> None:
    """Raise unless this process runs ``running`` (a forked child holds a copy of its parent's runs).

    Raises:
        RunWriteError: this is a child process of the one running it; ``what`` was written.
    """
    if running.pid != _Process.pid:
        raise _child_error(running.label, running.pid, what)


def _child_error(label: str, pid: int, what: str) -> RunWriteError:
    return RunWriteError(
        f"{label}: {what} was written from process {os.getpid()}, a child of process {pid}, which runs the task's "
        "run(): a child process's writes cannot join that run (only the running process commits the task's "
        "outputs). Return the values to the parent process (e.g. as the results of a multiprocessing Pool or "
        "ProcessPoolExecutor) and dump them there."
    )


def _manifest_lock(record: OutputRecord) -> contextlib.AbstractContextManager[None]:
    # Keyed by the manifest (not the output: run_one may hold the output's lock already).
    return hold_lock(record.lock_params())


_CREATED, _REPLACING, _SUPERSEDED = object(), object(), object()


def _placed(data: bytes, places: list[tuple[int, bytes]]) -> bytes:
    """``data`` with each (offset, text) of ``places`` written over it (``Transaction._restamped``: none overlap)."""
    view, at = memoryview(data), 0
    parts: list[bytes | memoryview] = []
    for offset, text in sorted(places):
        parts += (view[at:offset], text)
        at = offset + len(text)
    parts.append(view[at:])
    return b"".join(parts)


def _record_of(items: list[Staged]) -> OutputRecord:
    record = items[0].record
    assert record is not None  # grouped by record
    return record


def _entries(items: list[Staged]) -> dict[str, Entry]:
    return {staged.record.key: staged.entry for staged in items if staged.record is not None}


def _lost(label: str, path: str, exc: BaseException) -> MarkerLostError:
    """The error of a commit whose marker at ``path`` its heartbeat could not rewrite for two beats in a row."""
    error = MarkerLostError(
        f"{label}: could not refresh the marker of its commit in progress for two thirds of the lease "
        f"({commit_marker.lease_seconds():g} s): writing {path!r} failed ({type(exc).__name__}: {exc}). A run on "
        "another host would soon take the commit for a killed one and run the task over it, so the commit stops "
        "before its next move; the marker and the pending manifest keep the task incomplete, and its next build "
        "runs it again. Make the marker's folder writable (or the object store reachable), then build again."
    )
    error.__cause__ = exc
    return error


def _replaced(label: str, path: str, other: commit_marker.Marker | None) -> MarkerLostError:
    """The error of a commit whose marker at ``path`` another process removed, or replaced with ``other``."""
    who = (
        "another process removed it"
        if other is None
        else f"process {other.pid} on {other.host or 'an unknown host'} replaced it with its own (it takes the task over)"
    )
    return MarkerLostError(
        f"{label}: the marker of its commit in progress {path!r} is no longer its own: {who}. A run on another "
        "host that takes a commit for a killed one runs the task over it, so this commit stops before its next "
        "move (its files and the other process's marker are left as they are; the task counts as incomplete "
        "until that process's run has finished). Set redis_host so that runs on different machines take turns "
        "through one lock, then build again."
    )


def _remove_quietly(storage: Storage, location: str) -> None:
    # A staged file that cannot be deleted is an orphaned temporary file: kart gc sweeps those.
    with contextlib.suppress(Exception):
        storage.remove(location)


def _kept_inputs(current: Manifest | None, record: OutputRecord) -> tuple[Input, ...]:
    """The inputs ``current`` records for an owner other than ``record``'s (a same-named class of another module
    sharing the manifest); none when ``record``'s owner is not known or an input names no reader."""
    if current is None or not record.owner:
        return ()
    return tuple(item for item in current.inputs if item.reader and item.reader != record.owner)


def _kept_digest(upstream: object, digest: str) -> str:
    """``digest``, or the equal string ``upstream`` keeps from its run's commit in this process (``TaskMemo.committed``):
    a fan-in's floor then holds no second copy of each requirement's hash (100,000 of them: 9 MiB)."""
    committed = memo_of(upstream).committed
    if committed:
        for kept in committed.values():
            if kept == digest:
                return kept
    return digest


def _input_manifests(task: object) -> frozenset[str]:
    """The manifest of each output of ``task``'s requirements that has an integrity record (its flattened ``input()``)."""
    inputs = getattr(task, "input", None)
    if inputs is None:
        return frozenset()
    try:
        targets = flatten(inputs())
    except Exception:  # noqa: BLE001 - the user's requires(): then no load outside the run's context is taken for it
        return frozenset()
    return frozenset(
        record.manifest for target in targets if isinstance(record := getattr(target, "record", None), OutputRecord)
    )


def _recorded_outputs(task: object) -> frozenset[tuple[str, str]]:
    """(manifest path, key) of each output of ``task`` (its flattened ``output()``) that has an integrity record."""
    outputs = getattr(task, "kart_outputs", None)
    if outputs is None:
        return frozenset()
    found = set()
    for target in flatten(outputs()):
        record = getattr(target, "record", None)
        if isinstance(record, OutputRecord):
            found.add((record.manifest, record.key))
    return frozenset(found)


def _full(path: str) -> str:
    """``path`` (a manifest's local path or URL) with a relative local path made absolute."""
    return path if "://" in path or os.path.isabs(path) else os.path.abspath(path)


def _still_there(staged: Staged) -> bool:
    """Whether ``staged``'s file is still at its staged location (True when the store cannot tell)."""
    try:
        return bool(staged.storage.exists(staged.location))
    except Exception:  # the store is failing too: keep its own error
        return True
