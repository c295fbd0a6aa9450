"""Damage an inspection view can see cheaply: a present output whose size differs from its integrity
record, or an integrity record (manifest) that is present but unreadable.

``kart why``, ``kart tree`` and ``kart runs`` show what a build would do, and a build takes an
existing output as cached (``complete()`` checks existence only, as gokart's does); loading it then
fails with ``DamagedOutputError``. These views compare each output's size with its manifest entry
(``kart_core.manifest``: one small JSON read per task and one stat per output, no output read) and
show the damage with its fix. Content hashes are ``kart verify``'s job (it reads every output).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterable

from kart_core.errors import TaskLockException
from kart_core.lock import LockParams, commit_lock_directory, hold_lock
from kart_core.manifest import (
    Entry,
    Manifest,
    OutputRecord,
    manifest_bytes,
    manifest_task,
    new_commit_id,
    read_unverified,
    write_manifest,
)
from kart_core.raw_content import unrecorded_content
from kart_core.signing import HEADER_SIZE, is_sealed
from kart_core.storage import storage_for
from kart_core.storage.base import protocol_of
from kart_core.storage.conditional import replace_if
from kart_core.storage.local import local_path
from kart_core.storage.stamp import changed_ns, current_tag, file_stamp, local_file_stamp, opened_tag
from kart_core.workspace import (
    MANIFEST,
    MODULE_VERSIONS,
    RANDOM_SEED,
    TASK_LOG,
    TASK_PARAMS,
    join_url,
    log_relative_path,
    log_workspace,
    parse_log_name,
)

__all__ = [
    "EFFECT",
    "FIX",
    "UNREADABLE_MANIFEST",
    "SizeMismatch",
    "describe_damage",
    "file_size",
    "file_stamp",
    "local_file_stamp",
    "not_committed_note",
    "object_change_note",
    "local_change_note",
    "local_changed_ns",
    "maybe_rewritten",
    "rewritten_digest",
    "rewritten_note",
    "rewritten_siblings",
    "settle_copied",
    "settle_stamp",
    "settle_tag",
    "settle_unsafe",
    "stamp_of",
    "size_mismatches",
    "LoadedFile",
    "Opened",
    "before_unrecorded_load",
    "loaded_unrecorded",
    "unrecorded_content",
    "unrecorded_stamp",
    "unvouched_reason",
]

FIX = "Run `kart verify --delete` (the next build runs its task again), or rerun the task (--rerun)."

# What a build does with a cached task whose output is damaged (kart_core.repair, kart_core.runner).
EFFECT = (
    "A build that needs only it takes it as cached and loading it fails (DamagedOutputError); a task that "
    "must run and loads it runs it again first (unless repairs are off)."
)


@dataclasses.dataclass(frozen=True)
class SizeMismatch:
    """A present output whose size is not the committed one.

    Attributes:
        path: the output's full path (local path or URL); the manifest's when ``problem`` says it is unreadable.
        committed: bytes recorded in its manifest (0 with ``problem``).
        found: bytes it has now (the manifest's size with ``problem``).
        problem: empty for a size mismatch; else what is wrong (``UNREADABLE_MANIFEST``).
        commit: the commit id the manifest entry holds (None with ``problem``): a repair checks that the
            output is still that commit's before it rebuilds (``kart_core.repair.still_damaged``).
    """

    path: str
    committed: int
    found: int
    problem: str = ""
    commit: str | None = None

    def describe(self) -> str:
        """``{path}: {committed} bytes were committed, found {found}`` (as ``kart verify`` says it), or
        ``{path}: {problem}`` for damage other than a size (``problem`` set: the manifest itself)."""
        if self.problem:
            return f"{self.path}: {self.problem}"
        return f"{self.path}: {self.committed} bytes were committed, found {self.found}"


UNREADABLE_MANIFEST = "its integrity record (manifest) cannot be read, so its outputs cannot be checked"


def describe_damage(label: str, found: list[SizeMismatch]) -> str:
    """``{label} is cached but damaged: {path}: {committed} bytes were committed, found {found}; ...``,
    what a build does about it and the fix (one line, as ``kart why`` and ``kart report`` say it)."""
    return f"{label} is cached but damaged: {'; '.join(d.describe() for d in found)}. {EFFECT} {FIX}"


def size_mismatches(targets: Iterable[object]) -> list[SizeMismatch]:
    """The outputs among ``targets`` (a task's flattened ``output()``) present with a size other than
    their integrity record's, in order.

    Targets without a record (plain luigi targets, bare ``make_target``), missing outputs and outputs
    their manifest does not list are not damage here. A manifest that is present but cannot be read
    is (once, as a ``SizeMismatch`` of the manifest with ``problem`` set): loading the outputs fails
    with ``DamagedOutputError`` as ``kart verify`` reports it. The manifest's signature is not checked:
    this only chooses what to show.
    """
    manifests: dict[str, Manifest | None] = {}
    found = []
    for target in targets:
        record = getattr(target, "record", None)
        if not isinstance(record, OutputRecord):
            continue
        if record.manifest not in manifests:
            manifests[record.manifest] = read_unverified(storage_for(record.manifest), record.manifest)
            present = file_size(record.manifest) if manifests[record.manifest] is None else None
            if present is not None:
                found.append(SizeMismatch(record.manifest, 0, present, UNREADABLE_MANIFEST))
        manifest = manifests[record.manifest]
        entry = manifest.outputs.get(record.key) if manifest is not None else None
        path = str(target.path())  # type: ignore[attr-defined]  # a target with a record is kart's
        size = file_size(path) if entry is not None else None
        if entry is not None and size is not None and size != entry.size:
            found.append(SizeMismatch(path, entry.size, size, commit=entry.commit))
    return found


def file_size(path: str) -> int | None:
    """Bytes of the file at ``path``; None when it is missing or cannot be examined."""
    try:
        if not protocol_of(path):
            return os.stat(local_path(path)).st_size
        with storage_for(path).open_read(path) as file:  # fsspec files seek to the end without reading
            return int(file.seek(0, 2))
    except OSError:  # missing, or not examinable here: nothing to show
        return None


# --- outputs rewritten after kart's commit, and outputs no record vouches for ---------------------
#
# An unsigned local output's manifest entry holds its stamp (``Entry.stamp``: inode and status-change time), taken
# after the commit's last move into place (a rename moves the status-change time on Linux file systems, so it is
# taken after it). A load compares it with the ``fstat`` of the file it opened: the same stamp is the file the commit
# vouched for. Any other file has another one: a copy (``cp -a``, ``rsync -a``, ``tar x`` set a file's times, never
# its inode or status-change time), a file renamed or linked (``ln -s``: the opened file is the link's target) into
# its place, a write in place (even with its times set back), also under a clock that was stepped back (attacker at20
# K14, K5, K9). Such a file is hashed: other content is a new version written outside kart (or damage, with verify
# on), the committed content is recorded as the entry's new stamp (``settle_stamp``), so the next load is one fstat
# again. No device number: one file shows another on each NFS client and in a container's overlay view, and two
# hosts sharing a workspace would each find the other's stamp foreign and hash for good.
#
# An entry without a stamp (kart before 2026-12-03, a signed commit, whose seal binds the commit and which no check
# without the key could record a stamp into) is judged by the older rule: a commit moves each output into place
# before it writes the task's manifest (a first commit writes it first and sets its time again once its outputs are
# in place), so a kart-committed output never changed after its manifest's modification time. One that did was
# written after the commit by someone else: gokart rerunning the task (it writes the same path), a copy, or an edit
# in place. "Changed" is the later of the file's modification and status-change times: ``cp -p``, ``rsync -t``,
# ``tar x`` and ``touch -r`` set the modification time back, never the status-change time (attacker at17 H3). That
# rule trusts a manifest's time, which ``cp -a``, ``rsync -a`` and ``tar x`` copy too: a manifest copied in over an
# older output of the same size vouches for it (K14), and a symlink's target keeps its own older times (K5). Object
# storage sets an object's time when it is copied into place (after a first commit's manifest), so there neither
# rule is applied.
#
# On object storage an entry holds the object's version tag instead (``Entry.tag``: S3's ETag, GCS's generation), the
# one the commit's copy into place answered. A load compares it with the tag the store sent with the bytes it read (no
# request of its own); a lineage check with the object's tag now (one HEAD, or none inside a build's walk: its
# directory listing carries each object's tag). Another tag is another version of the object: a same-size rewrite by
# gokart, another tool or a person, or an interrupted ``aws s3 sync`` that copied the manifests before the outputs
# (attacker at22 M2, at20 K14). Its bytes are hashed: other content is a new version written outside kart (damage with
# verify on), as on local disk; the committed content (a workspace copied to another bucket, a GCS rewrite of the same
# bytes) gets its tag recorded (``settle_tag``), so the next load is trusted without a hash again. An entry without a
# tag (kart before 2026-12-03, a signed commit, a direct dump) is trusted by its size, as before.


def local_change_note(path: str, manifest: str, entry: Entry) -> str | None:
    """``not_committed_note`` of the local file at ``path`` (one stat); on object storage ``object_change_note`` of the
    object's tag now (one HEAD; None for an entry without a tag); None when it cannot be examined."""
    if protocol_of(path):
        if entry.tag is None:
            return None
        try:
            return object_change_note(current_tag(path), entry)
        except OSError:
            return None
    try:
        found = os.stat(path.removeprefix("file://"))
    except OSError:
        return None
    return not_committed_note(found, entry, manifest)


def not_committed_note(found: os.stat_result, entry: Entry, manifest: str) -> str | None:
    """Whether the local file with status ``found`` (of the file a load opened) may not be what ``entry`` committed:
    a clause saying why, or None (the cheap path: it is that file).

    With a stamp (``Entry.stamp``): None while the file's stamp is the recorded one; else ``it is not the file kart
    recorded for its commit (...)``. Without one (older kart, a signed commit): ``rewritten_note`` of its change time
    against ``manifest``'s modification time (a stat of the manifest).
    """
    if entry.stamp is None:
        return rewritten_note(changed_ns(found), manifest)
    if (found.st_ino, found.st_ctime_ns) == tuple(entry.stamp):
        return None
    recorded = tuple(entry.stamp)
    if len(recorded) != 2:
        return "its record holds a stamp this kart does not read, so the file's stamp cannot show it unchanged"
    inode, committed = recorded
    if found.st_ino != inode:
        return (
            f"another file is in its place (inode {found.st_ino}, changed at {_clock(found.st_ctime_ns)}) than the one "
            f"kart recorded for its commit (inode {inode}, changed at {_clock(committed)}): a copy, or a file moved or "
            "linked there"
        )
    if found.st_ctime_ns > committed:
        return f"it was modified at {_clock(found.st_ctime_ns)}, after kart recorded its commit at {_clock(committed)}"
    return (
        f"it was modified at {_clock(found.st_ctime_ns)}, not at {_clock(committed)} as kart recorded at its commit "
        "(this machine's clock was stepped back since)"
    )


def local_changed_ns(path: str) -> int | None:
    """When a local file last changed (``changed_ns``, ns); None on object storage or when it cannot be examined."""
    if protocol_of(path):
        return None
    try:
        return changed_ns(os.stat(path.removeprefix("file://")))
    except OSError:
        return None


def _local_mtime_ns(manifest: str) -> int | None:
    """A local manifest's modification time (ns): only kart sets it (its writes, ``stamp.touch_after_moves``). Not
    its status-change time, which a ``chmod`` or a hard link (``cp -al``) moves past a foreign output's (attacker
    at18 I10); None on object storage or when it cannot be examined."""
    if protocol_of(manifest):
        return None
    try:
        return os.stat(manifest.removeprefix("file://")).st_mtime_ns
    except OSError:
        return None


# A manifest whose time is ahead of this machine's clock vouches for nothing: a commit made while the clock was ahead
# (then stepped back by NTP, a VM resumed with a fast clock) or a workspace copied with its times from such a machine
# (``rsync -a``, ``cp -a``, ``tar``) would hide every rewrite of its outputs until the clock reaches that time
# (attacker at19 J2). Its outputs are hashed instead, until a hash that finds the committed content settles the
# manifest's time back to theirs (``settle_copied``) or the clock passes it. No margin: a file's time comes from the
# kernel's coarse clock, which lags ``time.time_ns()``, never leads it.


def _ahead_of_clock(mtime_ns: int) -> bool:
    """Whether a local file's time ``mtime_ns`` is later than this machine's clock now."""
    return mtime_ns > time.time_ns()


def rewritten_note(output_changed_ns: int | None, manifest: str) -> str | None:
    """When an output that last changed at ``output_changed_ns`` (``changed_ns``) is newer than its ``manifest``
    (local storage): the clause ``it was modified at .., after kart recorded its commit at ..``; when the
    manifest's time is ahead of the clock, a clause saying so (the file's time cannot show it unchanged); else
    None (the cheap path)."""
    if output_changed_ns is None:
        return None
    committed = _local_mtime_ns(manifest)
    if committed is None:
        return None
    if _ahead_of_clock(committed):
        return (
            f"it was modified at {_clock(output_changed_ns)}; kart's record of its commit carries {_clock(committed)}, "
            "ahead of this machine's clock, so the file's time cannot show it unchanged"
        )
    if output_changed_ns <= committed:
        return None
    return f"it was modified at {_clock(output_changed_ns)}, after kart recorded its commit at {_clock(committed)}"


def object_change_note(found: str | None, entry: Entry) -> str | None:
    """Whether the object whose version tag is ``found`` (``kart_core.storage.stamp.object_tag``; None: the store sent
    none) may not be what ``entry`` committed: a clause saying why, or None (the cheap path: the tag is the recorded
    one, or either is unknown, which vouches for nothing and, as before tags, is not judged)."""
    if entry.tag is None or found is None or found == entry.tag:
        return None
    return (
        f"the object there is another version ({found}) than the one kart recorded for its commit ({entry.tag}): "
        "rewritten since, or copied there"
    )


def maybe_rewritten(path: str, manifest: str, entry: Entry | None = None) -> bool:
    """False when ``rewritten_digest(path, manifest, entry)`` is None for sure; True otherwise (ask it).

    ``entry``: the output's entry in ``manifest``; when not given it is read from the manifest (its key is ``path``
    relative to the manifest's workspace). An entry with a stamp: one stat, False while the file's stamp is the
    recorded one (``not_committed_note``). Without one: two stats, False when both are local, the output is not newer
    than its manifest and the manifest's time is not ahead of the clock. False when either file is missing. On
    object storage an entry with a tag (``Entry.tag``): False while the object's tag now is the recorded one
    (``kart_core.storage.stamp.current_tag``: from the listing inside ``listing_scope()``, else one HEAD).
    """
    if "://" in path or "://" in manifest:
        if entry is not None and entry.tag is not None and protocol_of(path):
            try:
                return current_tag(path) != entry.tag
            except OSError:
                return True
        return True  # file:// URLs, or object storage without a tag (where rewritten_digest says None itself)
    if entry is None:
        entry = _entry_of(path, manifest)
    try:
        found = os.stat(path)
        if entry is not None and entry.stamp is not None:
            return (found.st_ino, found.st_ctime_ns) != tuple(entry.stamp)
        committed = os.stat(manifest).st_mtime_ns
        return changed_ns(found) > committed or _ahead_of_clock(committed)
    except OSError:
        return False


def _entry_of(path: str, manifest: str) -> Entry | None:
    """The entry of the local output ``path`` in the local ``manifest`` (outputs, then side files); None when the
    manifest cannot be read, ``path`` is not in its workspace or it has no entry for it."""
    workspace = log_workspace(manifest, MANIFEST)
    if workspace is None:
        return None
    key = os.path.relpath(path, workspace).replace(os.sep, "/")
    current = read_unverified(storage_for(manifest), manifest, run=False)
    if current is None:
        return None
    return current.outputs.get(key) or current.side.get(key)


def rewritten_digest(path: str, manifest: str, entry: Entry, settle: bool = True) -> str | None:
    """The content hash ``{algorithm}:{hex}`` of the local output at ``path`` when it may not be the file
    ``manifest`` recorded ``entry`` for (``not_committed_note``: another stamp, or without one newer than the
    manifest) and holds the same size and other content: a new version written outside kart. None otherwise; a
    stat when its stamp is the recorded one (two for an entry without one), a read only else.

    The hash is what the manifest's is (``Entry.digest``): of the content after the signature header
    when ``entry`` is sealed (the header's MAC binds the commit: a copy of the same content is no new
    version), of the whole file otherwise; the same bytes a load deserializes. A file that holds the committed
    content (a copied workspace) is settled unless ``settle`` is False: its stamp recorded in the entry
    (``settle_stamp``), or for an entry without one the manifest's time moved up (``settle_copied``), so the next
    check of it is one stat (two) again.

    On object storage (``object_rewritten_digest``): for an entry with a tag whose object now has another one, a read
    of the object; None for an entry without a tag.
    """
    if protocol_of(path):
        return object_rewritten_digest(path, manifest, entry, settle)
    path = path.removeprefix("file://")
    try:
        found = os.stat(path)
    except OSError:
        return None
    if not_committed_note(found, entry, manifest) is None or found.st_size != entry.size:
        return None  # unchanged, or a changed size, which every load already reports as damage
    digest = _content_digest(path, entry)
    algorithm, _, expected = entry.digest.partition(":")
    if digest is None or digest == expected:
        if digest is not None and settle and entry.stamp is not None:
            settle_stamp(manifest, path, entry, found)
        elif digest is not None and settle:
            settle_copied(manifest, (path, stamp_of(found)))
        return None
    return f"{algorithm}:{digest}"


def object_rewritten_digest(path: str, manifest: str, entry: Entry, settle: bool = True) -> str | None:
    """``rewritten_digest`` of the object at ``path`` (object storage): the content hash ``{algorithm}:{hex}`` when it
    is another version than ``entry`` (a tag other than ``Entry.tag``, sent with the bytes read: one GET) of the same
    size and other content; None when ``entry`` has no tag, the object is that version, is missing, has another size
    (which every load reports as damage), cannot be read or hashed here, or holds the committed content (whose tag is
    then recorded in the entry, unless ``settle`` is False: ``settle_tag``)."""
    from kart_core.integrity import available, digest_stream

    algorithm, _, expected = entry.digest.partition(":")
    if entry.tag is None or not available(algorithm):
        return None
    try:
        with storage_for(path).open_read(path) as file:
            found = opened_tag(file)
            size = getattr(file, "size", None)
            if found is None or found == entry.tag or (isinstance(size, int) and size != entry.size):
                return None
            if entry.sealed:
                file.seek(HEADER_SIZE)
            read, digest = digest_stream(file, algorithm)
    except (OSError, ValueError):
        return None
    if read + (HEADER_SIZE if entry.sealed else 0) != entry.size:
        return None
    if digest == expected:
        if settle:
            settle_tag(manifest, path, entry, found)
        return None
    return f"{algorithm}:{digest}"


def settle_tag(manifest: str, path: str, entry: Entry, found: str, lock: LockParams | None = None) -> bool:
    """Record ``found`` as the tag of ``entry`` (``Entry.tag``), the entry of the object at ``path`` in ``manifest``
    (object storage), after the caller hashed the version of that tag to ``entry``'s content; whether it did.

    A workspace copied to another bucket (each object a new GCS generation; on S3 a new ETag for an object copied in
    parts or under KMS encryption) or an object rewritten with the same bytes has another tag than its commit
    recorded, so its loads would hash it for good. Once a hash found the committed content, that version's tag is
    recorded, so the next load is trusted again without a hash; any other version has another tag still.

    The manifest is written again under its commit lock (``lock``: the task's ``OutputRecord.lock_params()``; None:
    the machine's file lock of it), with the same commit id and only the tag changed: read, then written only while it
    still records ``entry``'s content and commit for the path, is not pending and not signed, and only over the bytes
    read (``kart_core.storage.conditional.replace_if``: S3's ``If-Match``; elsewhere a read and a compare first), so a
    commit of a host that shares no lock (no redis) landing meanwhile stays; on GCS within a window of one request,
    where the older record put back over it makes its outputs' loads hash them and record them as a new version
    (never served as the old one). Not settled (False): as above, a lock that is busy, a manifest that cannot be
    read or written. Never raises.
    """
    if not protocol_of(manifest) or not protocol_of(path) or entry.tag is None:
        return False
    workspace = log_workspace(manifest, MANIFEST)
    if workspace is None or not path.startswith(workspace.rstrip("/") + "/"):
        return False
    key = path[len(workspace.rstrip("/")) + 1 :]

    def tagged(current: Manifest, now: Entry) -> Entry | None:
        return None if now.tag is None or now.tag == found else now.with_tag(found)

    return _settle_entry(manifest, workspace, key, entry, lock, tagged, conditional=True)


def _settle_entry(
    manifest: str,
    workspace: str,
    key: str,
    entry: Entry,
    lock: LockParams | None,
    settled: Callable[[Manifest, Entry], Entry | None],
    conditional: bool,
) -> bool:
    """Write ``manifest`` again with its entry at ``key`` replaced by ``settled(manifest now, entry now)``, under the
    manifest's commit lock (``lock``; None: the machine's file lock of it): only while the manifest is not signed, not
    pending and still records ``entry``'s content and commit there, and ``settled`` gives an entry (None: nothing to
    write). ``conditional``: written only over the very bytes read (``conditional.replace_if``: an object store's
    If-Match), else by ``write_manifest``. The same commit id: a settle is no commit. Whether it wrote; never raises
    (a busy or unreachable lock, a read-only workspace, a manifest damaged or gone meanwhile: False)."""
    params = lock or LockParams(
        key=manifest + ".commit", lock_directory=commit_lock_directory(), owner=manifest_task(manifest)
    )
    storage = storage_for(manifest)
    try:
        with hold_lock(params, wait_seconds=_SETTLE_LOCK_SECONDS):
            data = storage.read_bytes(manifest)
            if is_sealed(data):
                return False
            current = Manifest.from_bytes(data)
            now = current.outputs.get(key)
            if current.pending or now is None:
                return False
            if (now.size, now.digest, now.commit, now.sealed) != (entry.size, entry.digest, entry.commit, entry.sealed):
                return False  # another commit, or a new version recorded, since the caller read it
            new = settled(current, now)
            if new is None:
                return False
            outputs = dict(current.outputs)
            outputs[key] = new
            name = manifest[len(workspace) :].lstrip("/")
            document = dataclasses.replace(current, outputs=outputs)
            if conditional:
                return replace_if(storage, manifest, data, manifest_bytes(document, name, None))
            write_manifest(storage, manifest, name, document, None)
    except (OSError, ValueError, KeyError, TypeError, TaskLockException):  # busy or unreachable lock (a redis
        return False  # error is a ConnectionError), a read-only workspace, a manifest damaged or gone meanwhile
    return True


def _content_digest(path: str, entry: Entry) -> str | None:
    """The hex hash of the local file at ``path`` as ``entry`` records its (after the signature header when sealed,
    with the entry's algorithm); None when that algorithm is not available here or the file cannot be read."""
    from kart_core.integrity import available, digest_stream

    algorithm = entry.digest.partition(":")[0]
    if not available(algorithm):
        return None
    try:
        with open(path, "rb") as file:
            if entry.sealed:
                file.seek(HEADER_SIZE)
            return digest_stream(file, algorithm)[1]
    except OSError:
        return None


def stamp_of(found: os.stat_result) -> tuple[int, ...]:
    """What tells a local file apart from any later one at its path: (device, inode, size, modification and
    status-change times in ns). Any write, replacement, ``utime`` or ``chmod`` moves one of them."""
    return (found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns)


# An output changed this recently is not settled: a file's times come from a clock that steps a few ms at a time, so
# a write right after the check could carry the time the check saw (and hide under the manifest's new time).
_SETTLE_MARGIN_NS = 50_000_000


def settle_copied(manifest: str, confirmed: tuple[str, tuple[int, ...]] | None = None) -> bool:
    """Move a local ``manifest``'s modification time up to its outputs' change time once each output newer than
    it was found to hold its committed content; whether it did.

    A copied workspace (``cp -a``, ``rsync -a``, ``chmod -R``, ``cp -al``) leaves every output's status-change time
    after its manifest's modification time, so every load and check hashed it again, for good (the rewrite check
    above). Once a hash found the committed content, that is settled here: the manifest's time is set to the latest
    change time of its outputs, so later checks (this process or any other) take two stats again. Still caught: a
    file written after the settle (its status-change time is later, and no call sets that back). Not settled (False,
    nothing changed; the next check hashes again): an output of the manifest with another size or other content
    (a sibling rewritten outside kart, which its own load records: attacker at17 H11), one that changed while it
    was hashed or less than ``_SETTLE_MARGIN_NS`` ago, a manifest another commit replaced meanwhile, object storage,
    a manifest that cannot be read or touched (a read-only copy: its loads keep hashing).

    A manifest whose time is ahead of the clock (see ``_ahead_of_clock``) has each of its outputs checked so, and
    its time set back to their latest change time; not while that time is itself ahead of the clock (outputs
    copied with their times from a machine whose clock was ahead: their loads hash until the clock passes it).

    ``confirmed``: ``(path, stamp_of(...))`` of an output the caller just hashed to its committed content; it is
    not hashed again while its stamp is still that one. Never raises.
    """
    if protocol_of(manifest):
        return False
    manifest = manifest.removeprefix("file://")
    if confirmed is not None:
        confirmed = (confirmed[0].removeprefix("file://"), confirmed[1])
    try:
        before = os.stat(manifest)
        current = read_unverified(storage_for(manifest), manifest)
        workspace = log_workspace(manifest, MANIFEST)
        if current is None or workspace is None:
            return False
        # A time ahead of the clock vouches for none of the outputs: each is checked, and the time set back to theirs.
        ahead = _ahead_of_clock(before.st_mtime_ns)
        latest: int | None = None if ahead else before.st_mtime_ns
        for key, entry in sorted(current.outputs.items()):
            output = join_url(workspace, key).removeprefix("file://")
            try:
                found = os.stat(output)
            except FileNotFoundError:
                continue  # a file put there later is newer than any settled time
            if entry.stamp is not None or (not ahead and changed_ns(found) <= before.st_mtime_ns):
                continue  # a stamped entry is judged by its stamp, not by the manifest's time
            stamp = stamp_of(found)
            if found.st_size != entry.size:
                return False
            if confirmed != (output, stamp):
                if _content_digest(output, entry) != entry.digest.partition(":")[2]:
                    return False
                if stamp_of(os.stat(output)) != stamp:
                    return False  # written while it was hashed
            latest = changed_ns(found) if latest is None else max(latest, changed_ns(found))
        if latest is None or latest == before.st_mtime_ns or time.time_ns() - latest < _SETTLE_MARGIN_NS:
            return False  # nothing to settle, or an output changed too recently (or ahead of the clock itself)
        descriptor = os.open(manifest, os.O_RDONLY)
        try:
            now = os.fstat(descriptor)
            if stamp_of(now)[:4] != stamp_of(before)[:4]:
                return False  # another commit wrote it meanwhile (a new file): its own time stands
            os.utime(descriptor, ns=(now.st_atime_ns, latest))  # the file checked, not one renamed over it since
        finally:
            os.close(descriptor)
    except (OSError, ValueError):
        return False
    return True


def settle_stamp(manifest: str, path: str, entry: Entry, found: os.stat_result, lock: LockParams | None = None) -> bool:
    """Record ``found``'s stamp (``file_stamp``) as the stamp of ``entry``, the entry of the local output ``path`` in
    the local ``manifest``, after the caller hashed that file (its status ``found``, taken before the hash) to
    ``entry``'s content; whether it did.

    A copied workspace (``cp -a``, ``rsync -a``), ``chmod -R``, a hard-link snapshot (``cp -al``), or a symlink
    checkout of the same content leaves each output with another stamp than its commit recorded, so its loads would
    hash it for good. Once a hash found the committed content, the stamp of the file hashed is recorded, so the next
    load (this process or any other) is one ``fstat`` again; a file written after it has another stamp still.

    The manifest is written again under its commit lock (``lock``: the task's ``OutputRecord.lock_params()``; None:
    the machine's file lock of it, as ``kart verify`` takes; a task locked in redis then only excludes this machine's
    commits, each of which this write could only lose), with the same commit id (a settle is no commit: a run that
    began before it is not superseded) and only the stamp changed. Not settled (False, nothing written; the next check
    hashes again): the file changed since ``found`` or less than ``_SETTLE_MARGIN_NS`` ago (a write right after the
    hash could carry the same status-change time), the manifest meanwhile names another commit or content for it, is
    pending, signed (its seal would need the key), holds an entry without a stamp whose file looks changed (writing
    the manifest would move its time past that change: attacker at17 H11), cannot be read or written (a read-only
    workspace: its loads keep hashing), the lock is busy, or either is on object storage. Never raises.
    """
    if protocol_of(manifest) or protocol_of(path) or entry.stamp is None:
        return False
    manifest, path = manifest.removeprefix("file://"), path.removeprefix("file://")
    if settle_unsafe(found):
        return False
    workspace = log_workspace(manifest, MANIFEST)
    if workspace is None:
        return False
    key = os.path.relpath(path, workspace).replace(os.sep, "/")

    def stamped(current: Manifest, now: Entry) -> Entry | None:
        if now.stamp is None or stamp_of(os.stat(path)) != stamp_of(found):
            return None  # no stamp recorded, or the file changed since it was hashed
        for other, item in current.outputs.items():
            if other != key and item.stamp is None and maybe_rewritten(join_url(workspace, other), manifest, item):
                return None
        return dataclasses.replace(now, stamp=file_stamp(found))

    return _settle_entry(manifest, workspace, key, entry, lock, stamped, conditional=False)


def settle_unsafe(found: os.stat_result) -> bool:
    """Whether a local file with status ``found`` changed too recently for its stamp to be recorded as that of
    content just hashed: less than ``_SETTLE_MARGIN_NS`` ago, so a write right after the hash could carry the same
    status-change time. A time ahead of the clock (a clock stepped back since) is no such risk: a write now carries
    another time."""
    return 0 <= time.time_ns() - found.st_ctime_ns < _SETTLE_MARGIN_NS


# How long a settle waits for the manifest's commit lock (a commit holds it while it moves outputs): a settle that
# does not get it is only put off to the next load.
_SETTLE_LOCK_SECONDS = 1.0


def rewritten_siblings(record: OutputRecord, current: Manifest) -> dict[str, Entry]:
    """The outputs of ``current`` (``record``'s manifest, other than ``record.key``) that were rewritten outside kart
    after it with other content of the same size (``rewritten_digest``), each as a new version: the entry to write
    beside ``record``'s when the manifest is written again outside a commit (a load recording a new version, a dump
    or a removal outside a run). Writing the manifest moves its time past their change, so a rewrite not recorded
    then would never be seen again by the cheap check (attacker at17 H11). Local storage only: on object storage a
    tag does not depend on the manifest's time, so a sibling's rewrite stays seen (and no request is made here).
    """
    found: dict[str, Entry] = {}
    if protocol_of(record.manifest):
        return found
    for key, entry in sorted(current.outputs.items()):
        output = join_url(record.workspace, key)
        if key == record.key or not maybe_rewritten(output, record.manifest, entry):
            continue
        digest = rewritten_digest(output, record.manifest, entry, settle=False)  # the manifest is written anew
        if digest is not None:
            found[key] = dataclasses.replace(entry, digest=digest, commit=new_commit_id(), sealed=False)
    return found


# --- inputs no integrity record vouches for (a raw file dropped in by hand, a gokart-written upstream) ------------


def unrecorded_stamp(path: str) -> tuple[object, ...] | None:
    """The stamp ``unrecorded_content`` compares (``kart_core.storage.stamp`` with the status-change time), as a
    tuple; None when nothing is at ``path``.

    Raises:
        OSError: the store could not be asked.
    """
    from kart_core.storage.stamp import stamp

    found = stamp(path, status_change=True)
    return None if found is None else tuple(found)


@dataclasses.dataclass(frozen=True)
class Opened:
    """A file without a record as a load is about to open it (``before_unrecorded_load``).

    Attributes:
        stamp: its stamp (``unrecorded_stamp``); None when nothing is at the path.
        digest: ``{algorithm}:{hex}`` of its content at that stamp; "" when it cannot be hashed here.
    """

    stamp: tuple[object, ...] | None
    digest: str = ""


@dataclasses.dataclass(frozen=True)
class LoadedFile:
    """What ``loaded_unrecorded`` found for a file a load read.

    Attributes:
        stamp: the file's stamp while it was read; None when there is nothing to record (it cannot be hashed here).
        digest: ``{algorithm}:{hex}`` of its content ("" with ``stamp`` None).
        changed: "" while the file stayed the one opened; else one clause saying how it changed during the load.
    """

    stamp: tuple[object, ...] | None
    digest: str
    changed: str = ""


def before_unrecorded_load(path: str) -> Opened:
    """The stamp and content hash of the file at ``path``, which has no integrity record, for a load about to open it
    (``loaded_unrecorded`` after it). The hash is the one remembered for the stamp (``unrecorded_content``), or read
    now: the read the load's record needs anyway, taken first so that a metadata-only change during the load (a
    ``chmod``, a ``chown``, a hard link: only the status-change time moves) can be told from a write by content.

    Raises:
        OSError: the store could not be asked.
    """
    found = unrecorded_content(path)
    if found is not None:
        return Opened(found[0], found[1])
    return Opened(unrecorded_stamp(path))


def loaded_unrecorded(path: str, before: Opened) -> LoadedFile:
    """The stamp and content hash of the file at ``path``, which has no integrity record, for a load that took
    ``before`` (``before_unrecorded_load``) right before it opened the file and has read it since (attacker at16 G11).

    The hash is the file's only while its stamp stayed ``before``'s from before the hash until after the load: a
    new drop (an atomic replace: another inode, an ETag) or a write in place (its size or modification time) landing
    in between moves it. Then what the load read may be the old file, the new one or a mix, and ``changed`` says
    what moved: recording the new file's stamp and hash beside the old file's result would leave the reader fresh
    for good. When only the status-change time moved (local disk: a ``chmod``, ``chown`` or new hard link, also
    ``cp -al`` and backup tools' snapshots; attacker at19 J3) the file is hashed again: the same content is the file
    the load read, recorded with its new stamp; other content was written in place with its modification time set
    back, and ``changed`` says so. One stat when nothing moved.
    """
    try:
        now = unrecorded_stamp(path)
    except OSError:
        return LoadedFile(None, "")
    if now == before.stamp:
        return LoadedFile(now, before.digest) if now is not None and before.digest else LoadedFile(None, "")
    if not _status_change_only(before.stamp, now):
        return LoadedFile(None, "", _moved(before.stamp, now))
    found = unrecorded_content(path)
    if found is None or not before.digest:
        return LoadedFile(None, "", _moved(before.stamp, now))
    if found[1] != before.digest:
        return LoadedFile(
            None,
            "",
            "its content changed while its modification time, size and inode did not (written in place with its "
            "modification time set back)",
        )
    return LoadedFile(found[0], found[1])


def _status_change_only(before: tuple[object, ...] | None, now: tuple[object, ...] | None) -> bool:
    """Whether two local stamps (``unrecorded_stamp``: mtime, size, inode, status-change time) differ only in the
    status-change time."""
    return before is not None and now is not None and len(before) == len(now) == 4 and before[:3] == now[:3]


def _moved(before: tuple[object, ...] | None, now: tuple[object, ...] | None) -> str:
    """One clause saying how the stamp of a file without a record moved between ``before`` and ``now``."""
    if before is None:
        return "there was no file when the load began and there is one now"
    if now is None:
        return "it was removed while the load read it"
    if len(before) == len(now) == 4:  # local disk: mtime, size, inode, status-change time
        if before[2] != now[2]:
            return "another file was put in its place while the load read it (a new inode)"
        if before[:2] != now[:2]:
            return "it was written to while the load read it (its modification time or size moved)"
    return f"it changed while the load read it (stamp {list(before)} before, {list(now)} after)"


def unvouched_reason(record: OutputRecord, sizes: dict[str, int] | None = None) -> tuple[str, str]:
    """Why no integrity record vouches for the output of ``record`` (its manifest has no entry for it),
    told from the task's run logs, as ``(origin, clause)``: origin "gokart" (gokart's run logs:
    ``module_versions`` empty; legitimate in a resources/ folder shared with gokart), "kart" (kart's
    run logs, which list the modules: the manifest was removed since), "unfinished" (the start-of-run logs
    of a run of the task are there, its task log is not: gokart and kart write ``task_params`` and
    ``random_seed`` before ``run()`` and the task log only after it succeeded, so the file is what a run
    that was killed or failed left, maybe partial, written by a path kart did not hand out) or "none" (no
    run logs: the file was put there by hand or another tool). Two to four stats, or none with ``sizes``
    (run-log sizes by workspace-relative path, from a listing).
    """
    parsed = parse_log_name(record.manifest_name.rsplit("/", 1)[-1])
    if parsed is None:
        return "none", "no integrity record lists it"
    class_name, unique_id = parsed

    def size(relative: str) -> int | None:
        if sizes is not None:
            return sizes.get(relative)
        return file_size(join_url(record.workspace, relative))

    task_log = size(log_relative_path(TASK_LOG, class_name, unique_id))
    versions = size(log_relative_path(MODULE_VERSIONS, class_name, unique_id))
    shared = "" if record.unique_id in record.key else _SHARED_PATH
    if task_log is None:
        started = [
            kind.name
            for kind in (TASK_PARAMS, RANDOM_SEED)
            if size(log_relative_path(kind, class_name, unique_id)) is not None
        ]
        if started and sizes is None and _older_than_run(record, class_name, unique_id):
            return "none", (
                f"no finished run of {record.task} recorded it: its last run started after the file was last "
                f"changed and never finished, and left it as it was; there is neither kart's integrity record "
                f"nor a task log, so it was put there by hand or by another tool{shared}"
            )
        if started:
            return "unfinished", (
                f"a run of {record.task} started ({' and '.join(started)} logs are there) but never finished: it "
                f"wrote no task log and no integrity record, so the file is what a killed or failed run left, "
                f"maybe partial{shared}"
            )
        return "none", (
            f"no run of {record.task} recorded it: there is neither kart's integrity record nor a task log "
            f"(gokart writes one too), so it was put there by hand or by another tool{shared}"
        )
    if versions:  # gokart writes this log empty; kart lists the modules
        # kart before 2026-12-01 kept no record of a large-DataFrame zip (kart_core.task_targets).
        older = (
            ", or this zip was written by a kart that recorded no large-DataFrame zip"
            if record.key.endswith(".zip")
            else ""
        )
        return "kart", (
            f"kart ran {record.task} (its run logs are kart's) but its integrity record {record.manifest_name!r} "
            f"is gone: it was removed since{older}, so nothing vouches for this file{shared}"
        )
    return (
        "gokart",
        f"written by gokart (its run logs are gokart's): it loads unchecked, as gokart's outputs do{shared}",
    )


def _older_than_run(record: OutputRecord, class_name: str, unique_id: str) -> bool:
    """Whether the output of ``record`` was last changed before the start-of-run log (``task_params``, written
    before ``run()``) of the task's run that never finished: that run left it as it was (a killed rerun over a file
    gokart or a person put there writes a private name, never the output's path), so it is not that run's partial
    file. Local files count the later of the modification and status-change times (the latter cannot be set back:
    attacker at17 H3); objects their store's modification time. False when either cannot be examined."""
    output = join_url(record.workspace, record.key)
    started = join_url(record.workspace, log_relative_path(TASK_PARAMS, class_name, unique_id))
    try:
        if not protocol_of(output) and not protocol_of(started):
            found, log = os.stat(local_path(output)), os.stat(local_path(started))
            return max(found.st_mtime_ns, found.st_ctime_ns) < log.st_mtime_ns
        return storage_for(output).modification_time(output) < storage_for(started).modification_time(started)
    except (OSError, ValueError, TypeError):  # gone meanwhile, or a store without times: the file may be partial
        return False


_SHARED_PATH = (
    "; its path carries no unique id (make_target(..., use_unique_id=False)), so every parameter set of "
    "the task shares it: it may be another parameter set's output"
)


def _clock(mtime_ns: int) -> str:
    import datetime

    moment = datetime.datetime.fromtimestamp(mtime_ns / 1e9, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"
