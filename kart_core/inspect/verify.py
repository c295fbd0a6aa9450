"""Check a whole workspace against its integrity records (``kart verify``), like ``git fsck`` for a cache.

Every manifest under ``{workspace}/log/manifest/`` names the outputs one task committed, with their
size and content hash (``kart_core.manifest``). ``verify_workspace`` reads each manifest and checks
each output it names: present, the committed size, and (unless ``hashes=False``) the committed
content hash; with signing on, also the manifest's and each output's signature. A build finds the
same faults only when a downstream task loads the damaged file; this finds them all at once, and
``remove_damaged`` deletes the damaged outputs so the next build runs their tasks again.

Side files (files a run dumps beside its outputs, listed under its manifest's ``side``) are checked too, as a
load checks them (``_side_problems``): against the run that wrote the path last (signing on: its signed record,
``kart_core.side_record``), or against the runs that list it (signing off).

Outputs that no manifest lists are found by walking the workspace's outputs by kart's layout
(``…_{unique id}{ext}`` outside ``log/``). With signing on a load refuses them (unsigned, or signed
for a commit no manifest records), so each one a load would refuse is a problem of kind "unrecorded".
Without signing they load unchecked; they are listed apart, as ``VerifyReport.notices`` (kind
"unrecorded"), each saying who wrote it as its task's run logs tell (gokart: legitimate in a
resources/ folder shared with gokart; kart, whose manifest was then removed; or no run at all: put
there by hand). They do not fail the check unless the caller asks (``kart verify --strict``), and
``remove_damaged`` deletes them only when asked (``unrecorded=True``).
"""

from __future__ import annotations

import dataclasses
import functools
import hmac
import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from kart_core import log_binding, side_record, target_config
from kart_core.commit_marker import (
    DIRECT,
    MARKER_SUFFIX,
    WRITING_SUFFIX,
    Marker,
    confined_moves,
    marker_beside,
    read_marker,
    workspace_key,
    writer_alive,
)
from kart_core.damage import local_change_note, unvouched_reason
from kart_core.errors import DamagedOutputError, IntegrityError
from kart_core.inspect import confined, writing
from kart_core.integrity import DEFAULT_ALGORITHM, available, digest_stream
from kart_core.lineage import Lineage
from kart_core.lock import canonical_location, hold_lock
from kart_core.manifest import Entry, OutputRecord, manifest_task, read_manifest, read_unverified
from kart_core.runlog_reader import load_log_value, one_line
from kart_core.safe_pickle import loads_plain_data
from kart_core.signing import (
    HEADER_SIZE,
    SIGNATURE_SUFFIX,
    Seal,
    Signer,
    is_sealed,
    read_seal,
    signature_path,
    signer_from_config,
)
from kart_core.storage import Storage, storage_for
from kart_core.storage.base import FileEntry, protocol_of
from kart_core.storage.stamp import stamp
from kart_core.workspace import (
    LOG_DIRECTORY,
    MANIFEST,
    PROCESSING_TIME,
    RANDOM_SEED,
    TASK_LOG,
    TASK_PARAMS,
    LogKind,
    join_url,
    list_files,
    log_relative_path,
    named_run,
    parse_log_name,
    parse_log_relative,
    require_workspace,
    run_logs,
)

__all__ = ["Problem", "ProblemKind", "VerifyReport", "remove_damaged", "verify_workspace"]

logger = logging.getLogger(__name__)

ProblemKind = Literal[
    "missing", "size", "hash", "signature", "manifest", "commit", "stale", "upstream", "unrecorded", "runlog"
]


@dataclasses.dataclass(frozen=True)
class Problem:
    """One fault found by ``verify_workspace``.

    Attributes:
        kind: "missing" (the output is gone), "size" or "hash" (it differs from what was committed),
            "signature" (signing is on and the output's signature is wrong or absent),
            "manifest" (the manifest itself cannot be read or, with signing on, is not signed by the key),
            "commit" (a commit replacing the task's outputs was interrupted between its renames, or is
            still running: the manifest is marked pending, ``kart_core.commit_marker``; or a run writing
            its outputs straight to their paths was killed, or is still running: its ``direct`` marker
            is there, ``kart_core.direct_write``, and ``direct_write`` is True),
            "stale" (the task was built from an upstream output committed again since with other content,
            or from an upstream stale itself, ``kart_core.lineage``; not deleted: a build reruns it),
            "upstream" (the task loaded a task of another workspace whose record is not where it was recorded
            nor in an ``upstreams`` workspace: whether it is stale is unknown; ``path`` is the record's path
            looked at; not deleted, and ``ok`` ignores it: give the upstream workspace's place now),
            "unrecorded" (signing is on and no signed manifest lists this output, which a load then
            refuses: written by gokart or before signing was turned on, or its manifest was removed),
            "runlog" (a run log under ``log/`` that a load refuses: with signing on, not signed or its
            signature does not hold; without signing, a ``.pkl`` log that is not whole plain data, so
            truncated, or naming code; never unpickled beyond plain data).
        path: the output's full path (the manifest's for kinds "manifest", "commit" and "stale"; the
            marker's for a direct writer's "commit"; the run log's for "runlog").
        task: the owning task's label ``Class[8-hex id]`` (the manifest's file name when unreadable).
        detail: one line saying what differs.
    """

    kind: ProblemKind
    path: str
    task: str
    detail: str
    # What ``remove_damaged`` checks again before it deletes (attacker at17 H2: a commit made after the scan found
    # the problem must not be deleted): the manifest recording ``path`` and its commit id as the scan read it
    # ("" and None when no manifest is involved), and ``path``'s stamp (``kart_core.storage.stamp``, with the
    # status-change time) when the scan reported it.
    manifest: str = dataclasses.field(default="", compare=False)
    seen_commit: str | None = dataclasses.field(default=None, compare=False)
    seen: tuple[object, ...] | None = dataclasses.field(default=None, compare=False)
    # A side file (a file a run dumps beside its outputs, its manifest's ``side`` section; ``kart_core.side_record``):
    # checked against the run that wrote the path last, so its damage is that file's, also on a shared path.
    side: bool = dataclasses.field(default=False, compare=False)

    @property
    def removable(self) -> bool:
        """Whether ``remove_damaged`` deletes ``path`` (a present but wrong output or manifest)."""
        return self.kind in ("size", "hash", "signature", "manifest", "commit", "unrecorded", "runlog")

    @property
    def direct_write(self) -> bool:
        """Whether this is a run writing outputs straight to their paths, killed or running (kind "commit"):
        ``remove_damaged`` undoes its writes (the old outputs moved aside go back), it deletes no kept output."""
        return self.kind == "commit" and self.path.endswith(MARKER_SUFFIX)

    @property
    def by_path_writer(self) -> bool:
        """Whether this is a by-path writer of an output without a record, killed or running (kind "commit", at its
        ``.kart-writing`` marker or the pointer to one): ``remove_damaged`` removes a killed one's file and marker."""
        return self.kind == "commit" and self.path.endswith(WRITING_SUFFIX)


@dataclasses.dataclass(frozen=True)
class VerifyReport:
    """What ``verify_workspace`` checked and found.

    Attributes:
        workspace: the workspace root as given.
        manifests: how many manifests were read.
        outputs: how many outputs they name (each checked).
        hashes: whether content hashes were compared (else only presence and size).
        problems: the faults, sorted by path.
        unrecorded: with signing on, how many outputs no signed manifest lists were checked (0 without signing).
        notices: without signing, the outputs no manifest lists (kind "unrecorded"; they load unchecked),
            sorted by path; not problems: ``ok`` ignores them, ``strict_ok`` does not.
        runlogs: how many run logs were checked (each one with signing on; without signing the ``.pkl``
            ones, unless ``hashes`` is False).
        sides: how many side files (files runs dumped beside their outputs, listed under their manifests'
            ``side``) were checked (``_side_problems``).
    """

    workspace: str
    manifests: int
    outputs: int
    hashes: bool
    problems: tuple[Problem, ...]
    unrecorded: int = 0
    notices: tuple[Problem, ...] = ()
    runlogs: int = 0
    # How many side files were checked (``_side_problems``).
    sides: int = 0
    # Workspace-relative key -> the manifests (full paths) that record the file there as it is now: ``remove_damaged``
    # never deletes such a file on behalf of another manifest (attacker N16).
    intact: Mapping[str, frozenset[str]] = dataclasses.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no output or manifest is wrong; missing outputs do not count (a build reruns their
        task when needed, and deleting an output is how a gokart user forces a rerun)."""
        return all(problem.kind in ("missing", "upstream") for problem in self.problems)

    @property
    def strict_ok(self) -> bool:
        """``ok``, and no output without an integrity record either, nor an upstream record of another workspace
        that could not be found (kind "upstream": freshness unknown) (``kart verify --strict``)."""
        return self.ok and not self.notices and not any(problem.kind == "upstream" for problem in self.problems)


def verify_workspace(
    workspace: str, *, hashes: bool = True, signer: Signer | None = None, upstreams: Iterable[str] = ()
) -> VerifyReport:
    """Check every output named by an integrity record under ``workspace`` (local path or fsspec URL).

    Run logs (``log/{kind}/``) have no integrity record; each one a load would refuse is a problem of kind
    "runlog" (``_run_log_fault``), unless its task has a "manifest" or "unrecorded" problem (``remove_damaged``
    removes its manifest or outputs, and its next run writes the logs anew: turning signing on for a
    workspace gives one line per task, not six). A run writing its outputs straight to their paths that was killed (or
    still runs) is a problem of kind "commit" at its marker, and the outputs it names are not checked
    against the manifest (they may be partial, and the old ones moved aside: ``kart_core.direct_write``).

    Args:
        workspace: the workspace root (gokart's ``workspace_directory``).
        hashes: compare content hashes (reads every output); False checks presence and size only
            (one listing, no output read; without signing, run logs are not read either).
        signer: the signer to check signatures with; default: the configured key (None: signing off).
        upstreams: workspaces (local paths or URLs) where upstream tasks in other workspaces are now: a
            recorded input from another workspace whose manifest's workspace-relative name one of them
            holds (listed once each) is read there, not at its recorded full path (a workspace moved or
            copied since, ``kart_core.lineage.resolve``); the first listed wins.

    Returns:
        A ``VerifyReport``; nothing is changed.

    Raises:
        WorkspaceNotFoundError: no folder at a local ``workspace``, or no object under a remote one.
        OSError: the workspace cannot be listed or read (e.g. storage credentials).
    """
    signer = signer if signer is not None else signer_from_config()
    manifest_folder = join_url(workspace, f"{LOG_DIRECTORY}/{MANIFEST.name}")
    files = {entry.relative: entry for entry in list_files(workspace)}
    if not files:  # a mistyped path must not read as a clean workspace
        require_workspace(workspace, "nothing is there to verify")
    manifest_prefix = f"{LOG_DIRECTORY}/{MANIFEST.name}/"
    manifest_names = sorted(
        name for name in files if name.startswith(manifest_prefix) and name.endswith(MANIFEST.extension)
    )
    storage = storage_for(manifest_folder)
    problems, in_flux = _direct_writes(workspace, files, storage, signer)
    for writer in writing.find(
        workspace, files, signer
    ):  # by-path writers of outputs without a record (killed, or running)
        problems.append(Problem("commit", writer.path, writer.task, writer.detail))
        in_flux.update([writer.relative] if writer.relative else [])
    in_flux.update(name for name in files if name.endswith(WRITING_SUFFIX))  # the markers: not outputs
    outputs = 0
    lineage = Lineage()
    for upstream in upstreams:
        _note_current(lineage, upstream)
    # Outputs a manifest lists (checked against it, or removed with a refused one), and those a direct
    # writer's marker names (reported with it: partial, or an old output moved aside, while it runs).
    listed: set[str] = set(in_flux)
    # Outputs that differ from their record, with the problem (``claims``), and those that match one (``intact``).
    claims: list[tuple[str, Problem]] = []
    intact: dict[str, set[str]] = {}  # workspace-relative key -> the manifests (full paths) whose entry it matches
    sides: dict[str, list[_Listing]] = {}  # side file key -> the manifests that list it under ``side``
    for name in _folder_manifests(manifest_folder, manifest_prefix):
        path = join_url(workspace, name)
        problems.append(
            Problem(
                "manifest",
                path,
                manifest_task(name),
                "its manifest is a folder, not a file (--delete removes it only when empty)",
            )
        )
        owned = set(_outputs_logged_for(workspace, path, list(files.values())))
        listed.update(entry.relative for entry in files.values() if entry.path in owned)  # reported with it
    for name in manifest_names:
        path = join_url(workspace, name)
        try:
            manifest = read_manifest(storage, path, name, signer)
        except (DamagedOutputError, IntegrityError) as exc:
            problems.append(Problem("manifest", path, manifest_task(name), _first_sentence(exc)))
            listed.update(_own_listing(storage, path))
            continue
        if manifest is None:  # removed while we listed
            continue
        lineage.known(path, manifest)
        listed.update(manifest.outputs)
        listed.update(manifest.side)  # a run's side files: no task's outputs, checked apart (_side_problems)
        for key, entry in manifest.side.items():
            sides.setdefault(key, []).append(_Listing(name, path, manifest.task, manifest.commit, entry))
        if manifest.pending:
            marker = read_marker(storage, marker_beside(path)) if marker_beside(name) in files else None
            who = f" (process {marker.pid} on {marker.host})" if marker is not None and marker.host else ""
            detail = (
                f"commit {manifest.commit}{who} was interrupted while it replaced the outputs, or is still running: "
                "they may be from two runs"
            )
            problems.append(Problem("commit", path, manifest.task, detail, path, manifest.commit))
        for key, entry in sorted(manifest.outputs.items()):
            outputs += 1
            found = files.get(key)
            output = join_url(workspace, key)
            if key in in_flux:  # being written in place, or left so by a kill: its marker's problem says so
                continue
            if found is None:
                problems.append(
                    Problem("missing", output, manifest.task, "named by its manifest, not in the workspace")
                )
                continue
            if found.size != entry.size:
                detail = f"{entry.size} bytes were committed, found {found.size}{_rewritten(output, path, entry)}"
                claims.append((key, Problem("size", output, manifest.task, detail, path, manifest.commit)))
                continue
            problem = None
            if hashes or (signer is not None and entry.sealed):
                problem = _check_content(storage_for(output), output, key, entry, manifest.task, hashes, signer)
                if problem is not None and problem.kind == "hash":
                    problem = dataclasses.replace(problem, detail=problem.detail + _rewritten(output, path, entry))
            if problem is not None:
                claims.append((key, dataclasses.replace(problem, manifest=path, seen_commit=manifest.commit)))
            else:
                intact.setdefault(key, set()).add(path)
    # A file another manifest records as it is now is that task's committed output: an older claim on it (a
    # side target kart recorded as an output before attacker N16's fix, or a path two tasks both write) is not
    # damage to delete; deleting it would destroy the other task's good output.
    problems += [problem for key, problem in claims if key not in intact]
    side_count, side_faults = _side_problems(workspace, files, sides, signer, hashes, set(in_flux) | set(intact))
    problems += side_faults
    problems += _stale(workspace, manifest_names, lineage)
    unlisted = [entry for entry in _layout_outputs(files.values()) if entry.relative not in listed]
    notices: list[Problem] = []
    if signer is not None:
        commits = target_config.current().record  # records off: loads check the MAC only
        # With signing on a folder at an output's path is never signed or recorded (kart refuses to commit one): its
        # files are reported too, so a planted folder is not a clean workspace (attacker at15 F1).
        unlisted += [entry for entry in _in_output_folders(files.values()) if entry.relative not in listed]
        problems += _unrecorded(unlisted, _class_names(files.values()), signer, commits)
    else:
        notices = _unvouched(workspace, unlisted, files)
        notices += _unrecorded_folders(workspace, files.values(), listed)
    runlogs, faults = _run_log_problems(files.values(), signer, hashes)
    # A task whose manifest or outputs --delete removes runs again, and that run writes its logs anew.
    rerun = {problem.task for problem in problems if problem.kind in ("manifest", "unrecorded")}
    problems += [fault for fault in faults if fault.task not in rerun]
    ordered = tuple(sorted(map(_as_seen, problems), key=_order))
    notices = list(map(_as_seen, notices))
    return VerifyReport(
        workspace,
        len(manifest_names),
        outputs,
        hashes,
        ordered,
        len(unlisted) if signer is not None else 0,
        tuple(sorted(notices, key=_order)),
        runlogs,
        side_count,
        {key: frozenset(paths) for key, paths in intact.items()},
    )


# --- side files: what runs dumped beside their outputs (kart_core.side_record) --------------------------------------


@dataclasses.dataclass(frozen=True)
class _Listing:
    """A manifest that lists a side file under ``side``: its workspace-relative name, full path, task, commit (the
    manifest's) and the side file's entry."""

    name: str
    path: str
    task: str
    commit: str | None
    entry: Entry


def _side_problems(
    workspace: str,
    files: Mapping[str, FileEntry],
    sides: Mapping[str, list[_Listing]],
    signer: Signer | None,
    hashes: bool,
    skipped: set[str],
) -> tuple[int, list[Problem]]:
    """Check each side file present in ``workspace`` (``sides``: key -> the manifests listing it) as a load checks it:
    ``(how many were checked, their problems)``, each problem with ``side`` set.

    With signing on, against the run that wrote the path last, which the path's signed record names
    (``kart_core.side_record``): no valid record, or one naming a manifest that does not list the path with its
    commit, is "unrecorded" (a load refuses the file); otherwise the file is checked against that manifest's entry
    as an output is against its own ("size", "hash", "signature": an older version copied back is signed as another
    commit). Without signing there is no record of which run wrote last: the file must hold what one of the runs that
    list it committed ("size" or "hash" otherwise: rewritten outside kart). ``skipped``: keys checked as outputs
    or being written (their own problems say so). A side file that is gone is no problem (nothing rebuilds it; its
    loads say it is missing).
    """
    checked = 0
    problems: list[Problem] = []
    for key, listings in sorted(sides.items()):
        found = files.get(key)
        if found is None or key in skipped:
            continue
        checked += 1
        output = join_url(workspace, key)
        if signer is None:
            problem = _unsigned_side_problem(output, key, found, listings, hashes)
        else:
            problem = _signed_side_problem(workspace, output, key, found, listings, hashes, signer)
        if problem is not None:
            problems.append(dataclasses.replace(problem, side=True))
    return checked, problems


def _signed_side_problem(
    workspace: str,
    output: str,
    key: str,
    found: FileEntry,
    listings: list[_Listing],
    hashes: bool,
    signer: Signer,
) -> Problem | None:
    """``_signed_side_fault``; a file it refuses that a commit cut short left (``side_record.cut_short``: its task is
    incomplete, the next build runs it again) is reported naming that task (attacker at19 J5)."""
    problem = _signed_side_fault(workspace, output, key, found, listings, hashes, signer)
    if problem is None or problem.kind not in ("unrecorded", "signature"):
        return problem
    with storage_for(output).open_read(output) as file:
        seal = read_seal(file.read(HEADER_SIZE))
    commit = seal.commit if seal is not None else None
    short = side_record.cut_short(workspace, key, commit, signer) if commit is not None else None
    if short is None:
        return problem
    return Problem("unrecorded", output, short.task, f"a side file signed as commit {commit}: {short.clause()}")


def _signed_side_fault(
    workspace: str,
    output: str,
    key: str,
    found: FileEntry,
    listings: list[_Listing],
    hashes: bool,
    signer: Signer,
) -> Problem | None:
    record = side_record.read_record(workspace, key, signer)
    writers = ", ".join(sorted({listing.task for listing in listings}))
    fix = f"a load refuses it. Build the task that writes it ({writers}) again with rerun=True, or delete it"
    if record is None:
        detail = (
            f"a side file ({writers} {'list' if ', ' in writers else 'lists'} it under 'side') that no valid "
            "side-file record vouches for (the path's "
            f"record {side_record.name_for(key)!r} is missing or not signed with this key): {fix}"
        )
        return Problem("unrecorded", output, writers, detail)
    writer = next(
        (listing for listing in listings if listing.name == record.manifest and listing.entry.commit == record.commit),
        None,
    )
    if writer is None:
        detail = (
            f"a side file whose record {side_record.name_for(key)!r} names commit {record.commit} of "
            f"{record.manifest!r}, which does not list it with that commit (removed or rewritten): {fix}"
        )
        return Problem("unrecorded", output, writers, detail)
    entry = writer.entry
    fix = f"a load refuses it. Build {writer.task} (the path's last writer) again with rerun=True, or delete it"
    with storage_for(output).open_read(output) as file:
        seal = read_seal(file.read(HEADER_SIZE))
    if seal is not None and seal.commit != entry.commit:
        detail = (
            f"a side file signed as commit {seal.commit}, but its record names commit {entry.commit} of its last "
            f"writer: an older version copied back; {fix}"
        )
        return Problem("signature", output, writer.task, detail, writer.path, writer.commit)
    if found.size != entry.size:
        detail = f"a side file: {entry.size} bytes were committed by its last writer, found {found.size}; {fix}"
        return Problem("size", output, writer.task, detail, writer.path, writer.commit)
    problem = _check_content(storage_for(output), output, key, entry, writer.task, hashes, signer)
    if problem is None:
        return None
    detail = f"a side file: {problem.detail} (its last writer's commit); {fix}"
    return dataclasses.replace(problem, detail=detail, manifest=writer.path, seen_commit=writer.commit)


def _unsigned_side_problem(
    output: str, key: str, found: FileEntry, listings: list[_Listing], hashes: bool
) -> Problem | None:
    writers = ", ".join(sorted({listing.task for listing in listings}))
    fix = f"Build the task that writes it ({writers}) again with rerun=True, or delete it"
    sizes = {listing.entry.size for listing in listings}
    if found.size not in sizes:
        committed = " or ".join(str(size) for size in sorted(sizes))
        detail = f"a side file: {committed} bytes were committed by the runs that list it, found {found.size}. {fix}"
        return Problem("size", output, writers, detail)
    if not hashes:
        return None
    faults = []
    for listing in listings:
        if listing.entry.size != found.size:
            continue
        problem = _check_content(storage_for(output), output, key, listing.entry, listing.task, True, None)
        if problem is None:
            return None  # what one of its writers committed
        faults.append(problem)
    detail = (
        f"a side file holding content none of the runs that list it committed ({faults[0].detail}): rewritten "
        f"outside kart. {fix}"
    )
    return Problem("hash", output, writers, detail)


def _direct_writes(
    workspace: str, files: dict[str, FileEntry], storage: Storage, signer: Signer | None
) -> tuple[list[Problem], set[str]]:
    """A "commit" problem per ``direct`` marker (a run writing outputs by path, killed or running), and the
    workspace-relative outputs those markers name (not checked against their manifest meanwhile)."""
    problems: list[Problem] = []
    in_flux: set[str] = set()
    prefix = f"{LOG_DIRECTORY}/{MANIFEST.name}/"
    for name in sorted(files):
        if not (name.startswith(prefix) and name.endswith(MARKER_SUFFIX)):
            continue
        path = join_url(workspace, name)
        marker = read_marker(storage, path, name, signer)
        label = manifest_task(name.removesuffix(MARKER_SUFFIX) + MANIFEST.extension)
        refused = marker.refused if marker is not None else ""
        if marker is None or (marker.kind != DIRECT and not refused):
            continue  # a replacing commit's marker: its pending manifest is what tells (below)
        moves: tuple[tuple[str, str | None], ...] = ()
        if not refused:
            moves, refused = _resolved_moves(workspace, name, marker, files)
            refused = refused or confined.refusal(workspace, [key for key, _ in moves])
        if refused:
            problems.append(Problem("commit", path, label, _refused_detail(refused)))
            continue
        in_flux.update(key for key, _ in moves)
        problems.append(Problem("commit", path, label, _direct_detail(workspace, marker, moves)))
    return problems, in_flux


def _refused_detail(why: str) -> str:
    return (
        f"the marker is refused as damaged or forged metadata: {why}. Nothing it names is touched (nor by "
        "`kart verify --delete`); the task counts as incomplete until a run of it commits (build it again, "
        "rerun=True), which replaces the marker"
    )


def _resolved_moves(
    workspace: str, marker_name: str, marker: Marker, files: dict[str, FileEntry]
) -> tuple[tuple[tuple[str, str | None], ...], str]:
    """The marker's ``(output, old output moved aside)`` pairs as workspace-relative keys, or () and why the
    marker is refused (``commit_marker.confined_moves``).

    The task's own outputs, for this view: the keys of its manifest (read unverified) and the files outside
    ``log/`` named with its unique id (a first run's outputs, which no manifest lists yet).
    """
    manifest_path = join_url(workspace, marker_name.removesuffix(MARKER_SUFFIX) + MANIFEST.extension)
    manifest = read_unverified(storage_for(manifest_path), manifest_path)
    own = set(manifest.outputs) if manifest is not None else set()
    parsed = parse_log_name(marker_name.rsplit("/", 1)[-1].removesuffix(MARKER_SUFFIX) + MANIFEST.extension)
    if parsed is not None:
        suffix = f"_{parsed[1]}"
        own.update(
            relative
            for relative in files
            if not relative.startswith(f"{LOG_DIRECTORY}/")
            and relative.rsplit("/", 1)[-1].split(".", 1)[0].endswith(suffix)
        )
    return confined_moves(workspace, marker, own)


def _direct_detail(workspace: str, marker: Marker, moves: tuple[tuple[str, str | None], ...]) -> str:
    """What a ``direct`` marker means for the task's outputs, and what puts them right."""
    who = f"process {marker.pid} on {marker.host}"
    written = ", ".join(key for key, _ in moves) or "its outputs"
    aside = [
        join_url(workspace, backup)
        for _, backup in moves
        if backup is not None and storage_for(join_url(workspace, backup)).exists(join_url(workspace, backup))
    ]
    kept = f"; the old output(s) are kept, moved aside to {', '.join(aside)}" if aside else ""
    if writer_alive(marker):
        return (
            f"a run writing its outputs straight to their paths ({who}) is still running, or was killed on another "
            f"host: {written} may be partial{kept}. The task counts as incomplete until a run of it commits; if that "
            "process is gone, build the task again (rerun=True)"
        )
    restored = (
        "the next complete(), load or build of the task on this host puts them back, or `kart verify --delete` now"
        if aside
        else "the next complete() or build of the task on this host removes them and runs the task again, or "
        "`kart verify --delete` now"
    )
    return f"a run that wrote its outputs straight to their paths ({who}) was killed: {written} may be partial{kept}; {restored}"


def _undo_direct_write(workspace: str, problem: Problem, signer: Signer | None) -> list[str]:
    """Undo a killed direct writer's files (as ``complete()`` does), under the task's commit lock.

    Returns the marker and the removed files no old output replaced; [] when the writer may still run.
    """
    storage = storage_for(problem.path)
    relative = problem.path[len(workspace.rstrip("/")) :].lstrip("/").replace(os.sep, "/")
    marker = read_marker(storage, problem.path, relative, signer)
    if marker is None or marker.refused or marker.kind != DIRECT or writer_alive(marker):
        return []
    manifest_name = relative.removesuffix(MARKER_SUFFIX) + MANIFEST.extension
    parsed = parse_log_name(manifest_name.rsplit("/", 1)[-1])
    record = OutputRecord(workspace, manifest_name, "", problem.task, parsed[1] if parsed else "")
    with hold_lock(record.lock_params()):
        marker = read_marker(storage, problem.path, relative, signer)
        if marker is None or marker.refused or marker.kind != DIRECT or writer_alive(marker):
            return []
        keys, refused = _resolved_moves(
            workspace, relative, marker, {entry.relative: entry for entry in list_files(workspace)}
        )
        if refused:
            return []  # damaged or forged: nothing it names is touched
        why = f"`kart verify --delete` undid the run that wrote its outputs straight to their paths (process {marker.pid} on {marker.host}, killed)"
        try:
            removed = confined.undo_within(workspace, keys, problem.task, why)
        except confined.Refused as refusal:
            logger.warning(
                "%s: `kart verify --delete` left the marker %r and every path it names alone: %s",
                problem.task,
                problem.path,
                refusal,
            )
            return []
        confined.remove_files_within(workspace, [relative])  # its folder checked by undo_within's walk too
    return [problem.path, *removed]


# --- run logs -------------------------------------------------------------------------------------

# What kart writes in each pickled run log (``kart_core.runlog``): anything else is not its log.
_LOG_TYPES: dict[LogKind, type | tuple[type, ...]] = {
    TASK_PARAMS: dict,
    RANDOM_SEED: dict,
    PROCESSING_TIME: (int, float),
    TASK_LOG: dict,
}

# How a task's code reads each run log (``TaskOnKart``); "" for a log only views read.
_GETTERS = {
    TASK_LOG: "task.get_task_log()",
    TASK_PARAMS: "task.get_task_params()",
    PROCESSING_TIME: "task.get_processing_time()",
}


def _run_log_fix(kind: LogKind) -> str:
    """What puts a refused run log right: a rerun writes it anew; deleting it leaves the outputs."""
    after = " and `kart runs` shows the run as unfinished" if kind == TASK_LOG else ""
    return (
        "Fix: build the task again with rerun=True (it writes its run logs anew); `kart verify --delete` removes "
        f"this log only (the task's outputs stay{after})"
    )


def _run_log_problems(files: Iterable[FileEntry], signer: Signer | None, hashes: bool) -> tuple[int, list[Problem]]:
    """How many run logs were checked, and a "runlog" problem per one a load refuses (``_run_log_fault``).

    With signing on every run log is read (its MAC); without, the ``.pkl`` ones unless ``hashes`` is
    False (a text log has nothing to check: kart records no size or hash of run logs).
    """
    checked = 0
    problems = []
    for entry in files:
        parsed = parse_log_relative(entry.relative)
        if parsed is None or parsed[0] == MANIFEST:
            continue
        kind, class_name, unique_id = parsed
        if signer is None and (not hashes or kind not in _LOG_TYPES):
            continue
        checked += 1
        detail = _run_log_fault(entry, kind, signer)
        if detail is not None:
            problems.append(Problem("runlog", entry.path, f"{class_name}[{unique_id[:8]}]", detail))
    return checked, problems


def _run_log_fault(entry: FileEntry, kind: LogKind, signer: Signer | None) -> str | None:
    """Why a load of the run log ``entry`` fails, with the fix; None when it loads. Never runs code from it.

    With signing on: its MAC, as the loader checks it (the log's workspace-relative name, the content; no
    unpickling).
    Without: a ``.pkl`` log is unpickled as plain data only (``kart_core.safe_pickle``), as ``kart runs``
    reads it: truncated, not a pickle, naming code, or of another type than kart writes there is a fault.
    """
    try:
        with storage_for(entry.path).open_read(entry.path) as file:
            data = file.read()
    except FileNotFoundError:  # removed since the listing
        return None
    what = f"the {kind.name} run log"
    reading = _GETTERS.get(kind, "kart")
    if signer is not None:
        if not is_sealed(data):
            why = "is not signed (written by gokart or before signing was turned on, or replaced since)"
        # Its workspace-relative name; an older kart's full path holds only where it was written (kart_core.signing).
        elif (seal := _log_seal(data, entry, signer)) is None:
            why = (
                "has a signature that does not hold for its content and name (changed after kart wrote it, another "
                "log copied over it, signed with another key, or signed by an older kart with its full path and the "
                "workspace moved or copied since)"
            )
        elif (fault := _log_commit_fault(entry, seal.commit, signer)) is not None:
            why = f"is not the one its task's manifest names: {fault}"
        else:
            return None
        refused = "`kart runs` shows the run as refused and " if kind == TASK_LOG else ""
        return f"{what} {why}: signing refuses it ({refused}{reading} raises IntegrityError). {_run_log_fix(kind)}"
    value = _plain_value(data)
    if isinstance(value, BaseException):
        named = _named_global(value)
        if named is not None:
            return (
                f"{what} is not plain data: it names {named}, which loading it in full ({reading}, signing off) "
                f"would call; kart's views read only plain data from a log they cannot verify. {_run_log_fix(kind)}"
            )
        return f"{what} is damaged: it cannot be read ({one_line(value)}). {_run_log_fix(kind)}"
    if not isinstance(value, _LOG_TYPES[kind]):
        return f"{what} holds a {type(value).__name__}, not what kart writes there. {_run_log_fix(kind)}"
    return None


def _log_seal(data: bytes, entry: FileEntry, signer: Signer) -> Seal | None:
    """The seal of a run log when its MAC holds for its workspace-relative name (or an older kart's full path)."""
    for name in (entry.relative, canonical_location(entry.path)):
        seal = signer.verify(data, name)
        if seal is not None:
            return seal
    return None


def _log_commit_fault(entry: FileEntry, commit: str | None, signer: Signer) -> str | None:
    """``log_binding.commit_fault`` as a load checks it; None when the manifest cannot be read (removed since
    the listing, or its own problem, which verify reports)."""
    try:
        return log_binding.commit_fault(entry.path, entry.relative, commit, signer)
    except OSError:
        return None


def _named_global(error: BaseException) -> str | None:
    """``module.name`` that a refused pickle named (``kart_core.safe_pickle``'s message), else None."""
    text = str(error)
    if not text.startswith("it names "):
        return None
    return text.removeprefix("it names ").split(",", 1)[0].split(" ", 1)[0]


def _plain_value(data: bytes) -> Any:
    """The plain data pickled in a run log (after a signature header of when signing was on), or the error."""
    try:
        return loads_plain_data(data[HEADER_SIZE:] if is_sealed(data) else data)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the finding
        return exc


def _unvouched(workspace: str, outputs: list[FileEntry], files: dict[str, FileEntry]) -> list[Problem]:
    """Without signing: a notice (kind "unrecorded") per output no manifest lists, saying who wrote it
    as its task's run logs tell (``kart_core.damage.unvouched_reason``, from the listing's sizes)."""
    classes = _class_names(files.values())
    sizes = {relative: entry.size for relative, entry in files.items() if relative.startswith(f"{LOG_DIRECTORY}/")}
    notices = []
    for entry in outputs:
        stem, unique_id = named_run(entry.relative) or ("", "")
        cls = classes.get(unique_id, stem)
        record = OutputRecord(
            workspace=workspace,
            manifest_name=log_relative_path(MANIFEST, cls, unique_id),
            key=entry.relative,
            task=f"{cls}[{unique_id[:8]}]",
            unique_id=unique_id,
        )
        _, reason = unvouched_reason(record, sizes)
        notices.append(Problem("unrecorded", entry.path, record.task, reason))
    return notices


FOLDER_NOTE = (
    "a folder at an output's path (model.save(path), a partitioned write): kart records files, not folders, so "
    "nothing vouches for the files in it (a truncated or replaced file is not seen, here or by a load). To have it "
    "checked, save one file there instead (an archive, or a format that writes one file)"
)


def _unrecorded_folders(workspace: str, files: Iterable[FileEntry], listed: set[str]) -> list[Problem]:
    """Without signing: a notice (kind "unrecorded") per folder named as an output by kart's layout whose files no
    manifest lists (attacker at17 H4: a run that saved a folder at its output's path left a workspace that verified
    clean, even under ``--strict``, with a file in the folder truncated). ``remove_damaged`` never deletes one."""
    classes = _class_names(files)
    folders: dict[str, tuple[str, str]] = {}
    for entry in _in_output_folders(files):
        if entry.relative in listed:
            continue
        found = _output_folder_path(entry.relative)
        if found is not None:
            folders.setdefault(found[0], found[1])
    return [
        Problem(
            "unrecorded", join_url(workspace, relative), f"{classes.get(unique_id, stem)}[{unique_id[:8]}]", FOLDER_NOTE
        )
        for relative, (stem, unique_id) in sorted(folders.items())
    ]


def _rewritten(output: str, manifest: str, entry: Entry) -> str:
    """``; it is not the file kart recorded for its commit (...)`` (or, for an entry without a stamp, ``; it was
    modified at .., after kart recorded its commit at ..``) for a damaged local output
    (``kart_core.damage.local_change_note``: another writer, a copy or an edit), else ""."""
    note = local_change_note(output, manifest, entry)
    return f"; {note} (another writer, such as gokart rerunning the task, or an edit)" if note else ""


def _note_current(lineage: Lineage, workspace: str) -> None:
    """Take the manifests listed under ``workspace`` as the current place of their tasks (``Lineage.current``).

    Raises:
        WorkspaceNotFoundError: nothing is at ``workspace`` (a mistyped upstream must not read as none moved).
    """
    prefix = f"{LOG_DIRECTORY}/{MANIFEST.name}/"
    names = [entry.relative for entry in list_files(workspace)]
    if not names:
        require_workspace(workspace, "no upstream manifest can be read there")
    for name in names:
        if name.startswith(prefix) and name.endswith(MANIFEST.extension):
            lineage.current.setdefault(name, join_url(workspace, name))


def _stale(workspace: str, manifest_names: list[str], lineage: Lineage) -> list[Problem]:
    """A "stale" problem per manifest whose task was built on replaced or stale content (``kart_core.lineage``),
    and an "upstream" one per input of another workspace whose record cannot be found (stale or not: unknown)."""
    found = []
    for name in manifest_names:
        path = join_url(workspace, name)
        manifest = lineage.manifest(path)
        if manifest is None or not manifest.inputs:
            continue
        verdict = lineage.check(path, workspace)
        if verdict.stale:
            found.append(Problem("stale", path, manifest.task, lineage.describe(manifest.task, verdict)))
        for item, upstream in lineage.unknown_upstreams(path, workspace):
            found.append(Problem("upstream", upstream, manifest.task, _unknown_upstream(item.task, upstream)))
    return found


def _unknown_upstream(task: str, upstream: str) -> str:
    who = task or "an upstream task"
    return (
        f"built from {who} of another workspace, whose record is not at {upstream!r} (that workspace was moved, "
        "copied or deleted since): whether this task is stale is unknown. Pass --upstream-workspace <where that "
        "workspace is now> to check it there (a build, which has the task graph, finds it itself)"
    )


def _as_seen(problem: Problem) -> Problem:
    """``problem`` with the stamp of its path now, when ``remove_damaged`` may delete it (else as it is)."""
    if not problem.removable or problem.direct_write or problem.by_path_writer or problem.seen is not None:
        return problem
    found = stamp(problem.path, status_change=True)
    return dataclasses.replace(problem, seen=tuple(found) if found is not None else ())


def _changed_since_scan(problem: Problem) -> str | None:
    """What changed since ``verify_workspace`` reported ``problem`` (its file's stamp, its manifest's commit), so
    that the problem may no longer hold (a rerun committed the task again, a load recorded a new version); None
    when both are as the scan saw them. A store that cannot be asked counts as changed: nothing is deleted blind."""
    try:
        if problem.seen is not None:
            found = stamp(problem.path, status_change=True)
            if (tuple(found) if found is not None else ()) != problem.seen:
                return "the file changed since the scan"
        if problem.manifest and problem.seen_commit is not None:
            current = read_unverified(storage_for(problem.manifest), problem.manifest)
            if current is None or current.commit != problem.seen_commit:
                return "its task was committed again since the scan"
    except OSError as exc:
        return f"it could not be examined again ({exc})"
    return None


def remove_damaged(report: VerifyReport, *, unrecorded: bool = False, signer: Signer | None = None) -> list[str]:
    """Delete what ``report`` found present but wrong, so the next build runs the owning tasks again.

    A run that wrote its outputs straight to their paths and was killed (kind "commit" at its ``direct``
    marker; its process is gone from this host) is undone as the task's next ``complete()`` undoes it:
    each old output it moved aside goes back to its path, the files it wrote there are removed, then
    its marker (the paths returned are the marker and the removed files that no old output replaced);
    one of a live process, or of another host, is left alone. A killed by-path writer of an output without a
    record (its ``.kart-writing`` marker, or the pointer to one outside the workspace) loses its file, marker and
    pointer when the marker is kart's and names a file it may touch (``kart_core.inspect.writing.undo``). A run log a load refuses (kind "runlog")
    is deleted; the task's outputs stay. A damaged output (size, hash, signature) is deleted. An interrupted commit's manifest is deleted
    with every output it lists and its marker (the outputs may be from two runs). An unreadable manifest is deleted together
    with its task's outputs, found through the task's ``task_log`` run log (read as plain data,
    ``kart_core.safe_pickle``), which lists them: without them the task would stay complete, its
    outputs unverifiable (outputs a refused manifest lists count only when it records the task its name
    says: another task's manifest copied over it names that task's outputs, which stay). An unrecorded
    output (signing on, no signed manifest lists it) is deleted with any signature file of kart's
    earlier format beside it. Missing outputs are left alone (a build reruns their task when needed).
    Outputs without a record when signing is off (``report.notices``) are deleted only with
    ``unrecorded`` (gokart's among them: a gokart workspace shared with kart holds only such outputs).
    A marker refused as damaged or forged metadata (signing on and not signed by ``signer``, default the
    configured key; or naming a path that is not one of its task's outputs in this workspace) is left alone,
    and so is every path it names. A problem whose file or manifest changed since the scan (a commit made
    meanwhile: a rerun, a build's own repair, a new version a load recorded) is left alone with a warning (attacker
    at17 H2). Returns the deleted paths, each once.
    """
    signer = signer if signer is not None else signer_from_config()
    deleted: list[str] = []
    files: list[FileEntry] | None = None
    for problem in report.problems + (report.notices if unrecorded else ()):
        if problem.by_path_writer:
            deleted += writing.undo(report.workspace, problem.path, signer)
            continue
        if problem.direct_write:
            deleted += _undo_direct_write(report.workspace, problem, signer)
            continue
        if problem.detail == FOLDER_NOTE:  # a whole folder: never deleted on a notice
            logger.warning("%s: `kart verify` left the folder %r alone: delete it by hand", problem.task, problem.path)
            continue
        changed = _changed_since_scan(problem)
        if changed is not None:
            logger.warning(
                "%s: `kart verify --delete` left %r alone: %s, so the problem it found may no longer hold. "
                "Run `kart verify` again.",
                problem.task,
                problem.path,
                changed,
            )
            continue
        if problem.kind == "manifest" and files is None:
            files = list_files(report.workspace)
        try:
            deleted += _remove_problem(report.workspace, problem, files or [], report.intact)
        except confined.Refused as refusal:
            logger.warning(
                "%s: `kart verify --delete` left %r alone: %s",
                problem.task,
                problem.path,
                refusal,
            )
    return list(dict.fromkeys(deleted))


def _remove_problem(
    workspace: str, problem: Problem, files: list[FileEntry], intact: Mapping[str, frozenset[str]] | None = None
) -> list[str]:
    """``remove_damaged``'s removals for one problem other than a writer's marker; every one through
    ``confined`` (a descriptor of the file's folder opened from the workspace without following symlinks), so a
    folder swapped for a symlink after ``verify_workspace`` looked removes nothing outside the workspace.

    A file the unreadable, refused or interrupted manifest lists that another manifest records as it is now
    (``intact``: a path two tasks write, or a side file an older kart recorded as an output) is that task's
    committed output: it stays (attacker N16).

    Returns the removed paths. Raises ``confined.Refused`` when a folder on the way is a symlink or a file.
    """
    key = _workspace_key(workspace, problem.path)
    if key is None:  # not a path of this workspace (never kart's to remove here)
        return []
    intact = intact or {}

    def others(each: str) -> bool:  # another manifest records the file at ``each`` as it is now
        return bool(intact.get(each, frozenset()) - {problem.path})

    deleted: list[str] = []
    if problem.kind == "manifest":
        logged = _outputs_logged_for(workspace, problem.path, files)
        keys = [each for each in map(functools.partial(_workspace_key, workspace), logged) if each is not None]
        keys = [each for each in keys if not others(each)]
        confined.check_within(workspace, [*keys, key])  # nothing goes unless all of them may
        deleted += confined.remove_files_within(workspace, keys)
        if confined.remove_empty_folder_within(workspace, key):
            return [*deleted, problem.path]
    if problem.kind == "commit":
        manifest = read_unverified(storage_for(problem.path), problem.path)
        # Not a workspace-relative key (read_manifest refuses such a manifest): never followed.
        keys = [each for each in sorted(manifest.outputs) if workspace_key(workspace, each) == each] if manifest else []
        keys = [each for each in keys if not others(each)]
        marker = _workspace_key(workspace, marker_beside(problem.path))
        confined.check_within(workspace, [*keys, key, *([marker] if marker else [])])
        deleted += confined.remove_within(workspace, keys)
        confined.remove_files_within(workspace, [marker] if marker else [])
        deleted.append(marker_beside(problem.path))
    if problem.kind == "unrecorded":
        signature = _workspace_key(workspace, signature_path(problem.path))
        deleted += confined.remove_files_within(workspace, [signature] if signature else [])
    if problem.kind in ("size", "hash") and not problem.side and not _named_by_its_task(problem):
        # A path without its task's unique id (make_target(..., use_unique_id=False)) is shared: every parameter set
        # of the task writes it, and so may other tasks' runs (a side file, which no record names since 994f1a0). A
        # record that no longer matches it may be the stale one (attacker at16 G3): the file stays.
        logger.warning(
            "%s: `kart verify --delete` left %r alone: its path is shared (no unique id in it), so the file may be "
            "another run's good one. Build %s with rerun=True to write it anew, or delete it by hand.",
            problem.task,
            problem.path,
            problem.task,
        )
        return deleted
    if problem.removable:
        deleted += confined.remove_files_within(workspace, [key])
    return deleted


def _named_by_its_task(problem: Problem) -> bool:
    """Whether the output ``problem`` names carries its task's unique id in its file name (``_{id}``, the 8-hex id
    of ``problem.task`` as its start): not a shared path."""
    short = problem.task.rsplit("[", 1)[-1].rstrip("]")
    return f"_{short}" in problem.path.rsplit("/", 1)[-1]


def _workspace_key(workspace: str, path: str) -> str | None:
    """``path`` (joined to ``workspace`` by ``join_url``) relative to it; None when it is not in it."""
    root = workspace.rstrip("/")
    if not path.startswith(root + "/") and not path.startswith(root + os.sep):
        return None
    return path[len(root) :].lstrip("/").replace(os.sep, "/")


def _folder_manifests(folder: str, prefix: str) -> list[str]:
    """Workspace-relative names of the local folders named like manifests in the manifest folder
    ``folder`` (a listing of files never shows them, and every load of their task fails)."""
    if protocol_of(folder) != "":
        return []
    try:
        with os.scandir(folder[len("file://") :] if folder.startswith("file://") else folder) as entries:
            found = [e.name for e in entries if e.name.endswith(MANIFEST.extension) and e.is_dir(follow_symlinks=False)]
    except OSError:  # no manifest folder
        return []
    return [prefix + name for name in sorted(found)]


def _own_listing(storage: Storage, manifest: str) -> list[str]:
    """The outputs an unverified manifest lists, when it records the task its name says (else none:
    another task's manifest copied over this one names that task's outputs, not this one's)."""
    unverified = read_unverified(storage, manifest)
    if unverified is None or unverified.task != manifest_task(manifest):
        return []
    return list(unverified.outputs)


def _layout_outputs(files: Iterable[FileEntry]) -> list[FileEntry]:
    """The files that are outputs by kart's layout: named ``…_{unique id}[.ext]``, outside ``log/``,
    not a signature file of kart's earlier format. Other files (input data, notes) are never touched."""
    return [
        entry
        for entry in files
        if not entry.relative.startswith(f"{LOG_DIRECTORY}/")
        and not entry.relative.endswith(SIGNATURE_SUFFIX)
        and named_run(entry.relative) is not None
    ]


def _in_output_folders(files: Iterable[FileEntry]) -> list[FileEntry]:
    """The files inside a folder named as an output by kart's layout (``…_{unique id}[.ext]/…``), outside ``log/``."""
    return [
        entry
        for entry in files
        if not entry.relative.startswith(f"{LOG_DIRECTORY}/")
        and named_run(entry.relative) is None
        and _output_folder(entry.relative) is not None
    ]


def _output_folder(relative: str) -> tuple[str, str] | None:
    """``named_run`` of the innermost folder of ``relative`` named as an output, if any."""
    found = _output_folder_path(relative)
    return found[1] if found is not None else None


def _output_folder_path(relative: str) -> tuple[str, tuple[str, str]] | None:
    """The innermost folder of ``relative`` named as an output (its workspace-relative path) and its ``named_run``."""
    parts = relative.split("/")[:-1]
    for end in range(len(parts), 0, -1):
        folder = "/".join(parts[:end])
        found = named_run(folder)
        if found is not None:
            return folder, found
    return None


def _class_names(files: Iterable[FileEntry]) -> dict[str, str]:
    """Task class by unique id, from the run-log file names (``log/{kind}/{Class}_{unique id}{ext}``)."""
    return {unique_id: cls for cls, unique_id in run_logs(files)}


def _unrecorded(outputs: list[FileEntry], classes: dict[str, str], signer: Signer, commits: bool) -> list[Problem]:
    """With signing on: the ``outputs`` (no signed manifest lists them) that a load refuses (``commits``:
    whether loads compare a signed commit with a manifest, i.e. integrity records are on)."""
    problems = []
    for entry in outputs:
        detail = _refusal(entry, signer, commits)
        if detail is not None:
            stem, unique_id = named_run(entry.relative) or _output_folder(entry.relative) or ("", "")
            task = f"{classes.get(unique_id, stem)}[{unique_id[:8]}]"
            problems.append(Problem("unrecorded", entry.path, task, detail))
    return problems


def _refusal(entry: FileEntry, signer: Signer, commits: bool) -> str | None:
    """Why a load refuses an output that no manifest records (as ``TargetOnKart`` checks it), or None.

    Unsigned: refused. Signed as a commit: refused (no manifest records that commit), unless
    integrity records are off (``commits`` False). Otherwise it loads when its MAC holds for its
    workspace-relative path (a task's output) or its full path (a bare ``make_target``).
    """
    try:
        with storage_for(entry.path).open_read(entry.path) as file:
            head = file.read(HEADER_SIZE)
            seal = read_seal(head)
            if seal is None:
                return (
                    "not signed, and no signed manifest records it (written by gokart, or before signing was turned on)"
                )
            if commits and seal.commit is not None:
                return (
                    f"signed as commit {seal.commit}, but no signed manifest records it (its manifest was removed "
                    "or is refused, or this is an older version copied back)"
                )
            data = head + file.read()
    except FileNotFoundError:  # removed since the listing
        return None
    if any(signer.verify(data, name) is not None for name in (entry.relative, canonical_location(entry.path))):
        return None
    return "its signature does not match its content and path, and no signed manifest records it"


def _outputs_logged_for(workspace: str, manifest: str, files: list[FileEntry]) -> list[str]:
    """The workspace files that the task owning ``manifest`` listed as its outputs: in the manifest
    itself (its JSON read unverified: a manifest refused by signing, e.g. after a key change, still
    names them) and in its task_log."""
    logged = _own_listing(storage_for(manifest), manifest)
    parsed = parse_log_name(manifest.rsplit("/", 1)[-1])
    if parsed is not None:
        class_name, unique_id = parsed
        log = join_url(workspace, log_relative_path(TASK_LOG, class_name, unique_id))
        try:
            task_log = load_log_value(log)  # plain data only unless signing is on (then verified)
            logged += [str(path).replace("\\", "/") for path in task_log.get("file_path", [])]
        except Exception:  # no log (a run record kept in the damaged manifest itself), not plain data, or refused
            if not logged:  # by signing; the manifest's own list stands, else kart's layout names them
                return _outputs_named_for(unique_id, files)
    if not logged:
        return []
    # The task wrote its paths as it saw the workspace ("./resources/a/b.pkl", an absolute path, a URL):
    # a file of this workspace is one of them when its relative path ends one of those paths.
    return [entry.path for entry in files if any(_ends_with(path, entry.relative) for path in logged)]


def _outputs_named_for(unique_id: str, files: list[FileEntry]) -> list[str]:
    """The workspace files outside ``log/`` named ``{name}_{unique_id}{ext}``: the task's outputs by kart's layout.

    For a task without a task_log file (``kart_run_record_in_manifest`` classes keep it in the
    manifest, which is the damaged file here); outputs at paths without the id stay (none of kart's).
    """
    suffix = f"_{unique_id}"
    found = []
    for entry in files:
        if entry.relative.startswith(f"{LOG_DIRECTORY}/"):
            continue
        stem = entry.relative.rsplit("/", 1)[-1].split(".", 1)[0]
        if stem.endswith(suffix):
            found.append(entry.path)
    return found


def _ends_with(path: str, relative: str) -> bool:
    return path == relative or path.endswith("/" + relative)


def _check_content(
    storage: Storage, path: str, key: str, entry: Entry, task: str, hashes: bool, signer: Signer | None
) -> Problem | None:
    algorithm, _, expected = entry.digest.partition(":")
    # A hash recorded by a process with another hash library cannot be checked here; the size was.
    check_hash = hashes and available(algorithm)
    with storage.open_read(path) as file:
        head = file.read(HEADER_SIZE) if entry.sealed else b""
        seal = read_seal(head) if entry.sealed else None
        if signer is not None and entry.sealed and seal is None:
            return Problem("signature", path, task, "its signature header is missing")
        # Under the signing key and each old key (rotation: KART_SIGNING_OLD_KEYS).
        macs = signer.begin_all(key, seal.commit) if signer is not None and seal is not None else []
        # One pass feeds the hash and the MACs (kart_core.integrity's reader, as at commit).
        _, found = digest_stream(file, algorithm if check_hash else DEFAULT_ALGORITHM, *macs)
    if check_hash and found != expected:
        return Problem("hash", path, task, f"content hash {entry.digest} was committed, found {algorithm}:{found}")
    if macs and seal is not None:
        if not any(hmac.compare_digest(mac.digest(), seal.mac) for mac in macs) or seal.commit != entry.commit:
            return Problem("signature", path, task, "its signature does not match its content, path and commit")
    return None


def _first_sentence(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text.split(". ", 1)[0]


def _order(problem: Problem) -> tuple[str, str]:
    return (problem.path, problem.kind)
