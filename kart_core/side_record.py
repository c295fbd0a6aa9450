"""Which run vouches for a side file: the run that committed the path last (attacker at16 G4).

A side file is one a run dumps that is not one of its task's outputs (``self.make_target(...)`` not returned by
``output()``: a lookup table several tasks share, a checkpoint). It is not the task's output, so the task's
manifest lists it apart, under ``side`` (``kart_core.manifest``), where the completion check, ``kart verify`` and
``kart gc`` do not look. With signing on it is sealed with its run's commit id, as an output is, and the commit
writes a small signed record for the path (``log/side/{sha256 of the key}.json``)::

    {"format": "kart-side/1", "key": "shared/lookup.pkl", "commit": "<32 hex>",
     "manifest": "log/manifest/SideWriter_<id>.json"}

naming the run that wrote it last and the manifest that lists it. Several tasks may write one shared path; the
record always names the last one's run, so a load (through any task's ``make_target``) accepts the file only when it
is sealed as that run's commit and that manifest still lists it under ``side`` with that commit: an older signed
copy put back (a backup, a rollback) is refused, as an output's older version is. Not detected: the file restored
together with its older record (as an output restored with its older manifest).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
from collections.abc import Iterator

from kart_core.errors import DamagedOutputError, IntegrityError
from kart_core.lock import LockParams, commit_lock_directory, hold_lock
from kart_core.manifest import OutputRecord, manifest_task, read_manifest, read_unverified
from kart_core.signing import HEADER_SIZE, MAGIC, Signer
from kart_core.storage import storage_for
from kart_core.workspace import LOG_DIRECTORY, MANIFEST, join_url

__all__ = [
    "FOLDER",
    "FORMAT",
    "SETTLE_SECONDS",
    "CutShort",
    "Record",
    "claimant",
    "cut_short",
    "explain",
    "listed",
    "listing_writer",
    "name_for",
    "read_record",
    "recorded",
    "settled",
    "vouched",
    "writers",
    "writing",
    "write_record",
]

FORMAT = "kart-side/1"
FOLDER = "log/side"
MANIFEST_FOLDER = f"{LOG_DIRECTORY}/{MANIFEST.name}"
# How long a load that met a commit of the path waits for its lock (``settled``): a commit holds it from its move to
# its record, milliseconds; longer means a committer stopped (or killed on another host's redis lease).
SETTLE_SECONDS = 30.0


def name_for(key: str) -> str:
    """The workspace-relative name of the record of the side file at ``key`` (workspace-relative path): a hash of
    the key, so no file name of the layout (``{Class}_{unique id}``) is ever made there and any key fits."""
    return f"{FOLDER}/{hashlib.sha256(key.encode('utf-8')).hexdigest()}.json"


@contextlib.contextmanager
def writing(record: OutputRecord, wait_seconds: float | None = None) -> Iterator[None]:
    """Held while a commit moves the side file ``record`` names into place and writes its record, so two runs
    writing one shared path leave the record naming the run whose file is there (a file lock per machine, or the
    task's redis when it uses one). Waits for it up to ``wait_seconds`` (None: as long as it takes).

    Raises:
        TaskLockException: another process held it for longer than ``wait_seconds``.
        LockUnavailableError: the lock's folder (or redis) cannot be used.
    """
    host, port, timeout = record.redis
    key = join_url(record.workspace, name_for(record.key))
    params = LockParams(
        key=key + ".commit",
        redis_host=host,
        redis_port=port,
        redis_timeout=timeout,
        lock_directory=commit_lock_directory(),
        owner=record.task,
    )
    with hold_lock(params, wait_seconds):
        yield


def settled(record: OutputRecord) -> contextlib.AbstractContextManager[None]:
    """For a load whose side file was not vouched for (``vouched``): the path's lock (``writing``), held while the
    load reads the file and its record again, so a commit that moved the file and has not written its record yet
    (attacker at18 I6: 4 % of loads in a tight loop) is over, and no other starts, before the load decides. Waits up
    to ``SETTLE_SECONDS``.

    Raises:
        TaskLockException: a commit of the path held the lock for longer (a stopped run).
        LockUnavailableError: the lock's folder (or redis) cannot be used.
    """
    return writing(record, SETTLE_SECONDS)


def write_record(record: OutputRecord, commit: str, signer: Signer) -> None:
    """Record that the run ``commit`` of the task ``record`` names committed the side file ``record.key`` last.

    Raises:
        OSError: the record could not be written (the load of that file is then refused until a run writes it
            again: never an older version served).
    """
    name = name_for(record.key)
    body = json.dumps(
        {"format": FORMAT, "key": record.key, "commit": commit, "manifest": record.manifest_name},
        sort_keys=True,
        separators=(",", ":"),
    ).encode("utf-8")
    mac = signer.begin(name, commit)
    mac.update(body)
    path = join_url(record.workspace, name)
    with storage_for(path).atomic_write(path) as file:
        file.write(Signer.header(commit, mac) + body)


def recorded(record: OutputRecord) -> bool:
    """Whether the side file at ``record.key`` has a record (``write_record``): a run of this kart wrote the path
    with signing on, so a copy sealed without a commit (written before, or while records were off) is an older one.

    Raises:
        OSError: the store could not be asked.
    """
    path = join_url(record.workspace, name_for(record.key))
    return storage_for(path).exists(path)


def listing_writer(record: OutputRecord, commit: str, signer: Signer) -> str | None:
    """A task (``Class[1234abcd]``) whose signed manifest lists ``record.key`` under ``side`` as commit ``commit``: a
    run that committed the side file sealed so, for the refusal of one whose record is missing (attacker at20 K12: the
    manifest is there, only the record is gone). The task of ``record`` when its own manifest lists it, else the first
    other manifest of the workspace that does (read only then: an error path); None when none does. A manifest that
    cannot be read or verified names nothing.

    Raises:
        OSError: the store could not be asked.
    """
    folder = join_url(record.workspace, MANIFEST_FOLDER)
    storage = storage_for(folder)
    own = record.manifest_name.rsplit("/", 1)[-1]

    def lists(name: str) -> bool:
        try:
            manifest = read_manifest(storage, join_url(folder, name), f"{MANIFEST_FOLDER}/{name}", signer)
        except (DamagedOutputError, IntegrityError):
            return False
        entry = manifest.side.get(record.key) if manifest is not None else None
        return entry is not None and entry.commit == commit

    others = (name for name in sorted(storage.list_dir(folder)) if name != own and name.endswith(MANIFEST.extension))
    found = next((name for name in [own, *others] if lists(name)), None)
    return manifest_task(f"{MANIFEST_FOLDER}/{found}") if found is not None else None


def listed(record: OutputRecord, signer: Signer | None) -> bool:
    """Whether a signed manifest of ``record``'s workspace lists ``record.key`` under ``side``: a run of this kart
    committed the path with signing on, so its record was there, and a copy sealed without a commit is an older one
    even when the record is gone (deleted with the copy put back: attacker at18 I12). Reads the workspace's
    manifests: only for a side file sealed without a commit and without a record, which no run of this kart leaves
    with records on. A manifest that cannot be read or verified is skipped (its own loads refuse it). With
    ``signer`` None (signing off), whether any manifest lists it: a side file, whose unsigned load is not warned
    as one no record vouches for (``kart_core.target``).

    Raises:
        OSError: the store could not be asked.
    """
    folder = join_url(record.workspace, MANIFEST_FOLDER)
    storage = storage_for(folder)
    for name in storage.list_dir(folder):
        if not name.endswith(MANIFEST.extension):
            continue
        try:
            manifest = read_manifest(storage, join_url(folder, name), f"{MANIFEST_FOLDER}/{name}", signer)
        except (DamagedOutputError, IntegrityError):
            continue
        if manifest is not None and record.key in manifest.side:
            return True
    return False


def claimant(record: OutputRecord) -> str | None:
    """The task of another class whose manifest in ``record``'s workspace lists ``record.key`` as its committed
    output, as ``Class[1234abcd]``; None when no manifest does, or only the record's own, or one of the record's
    class (a path shared by the parameter sets of one class, ``make_target(..., use_unique_id=False)``, is
    gokart's "latest" idiom and stays allowed).

    Two task classes naming one file (another task's default output path, or one fixed path) overwrite each
    other's committed output, and each reader is handed the other's value (attacker at25 F3). Reads the
    workspace's manifests (each parsed only when its bytes hold the key): asked only for an output that exists with
    no record of its own task, whose task has no run logs, or that a rerun is about to replace. Unverified: a
    forged manifest can only make kart refuse, naming it.

    Raises:
        OSError: the store could not be asked.
    """
    folder = join_url(record.workspace, MANIFEST_FOLDER)
    storage = storage_for(folder)
    own = record.manifest_name.rsplit("/", 1)[-1]
    own_class = own.rpartition("_")[0]
    needle = json.dumps(record.key, ensure_ascii=False)[1:-1].encode()
    for name in sorted(storage.list_dir(folder)):
        if name == own or not name.endswith(MANIFEST.extension) or name.rpartition("_")[0] == own_class:
            continue
        path = join_url(folder, name)
        try:
            data = storage.read_bytes(path)
            if needle not in data and b"\\u" not in data:
                continue
            manifest = read_unverified(storage, path, run=False)
        except (OSError, ValueError):  # gone meanwhile, or not a manifest: it names nothing
            continue
        entry = manifest.outputs.get(record.key) if manifest is not None else None
        if entry is None or (entry.owner is not None and record.owner and entry.owner == record.owner):
            continue
        return manifest_task(f"{MANIFEST_FOLDER}/{name}")
    return None


@dataclasses.dataclass(frozen=True)
class CutShort:
    """A commit that moved a side file into place and never finished (``cut_short``).

    Attributes:
        task: the task of that commit, as ``Class[1234abcd]``: it is incomplete, so a build runs it again.
        manifest: its manifest's workspace-relative name.
        state: why the task counts as incomplete (its manifest pending, or an output missing), as a clause.
    """

    task: str
    manifest: str
    state: str

    def clause(self) -> str:
        """What happened and what to do, as a clause for a refusal or a ``kart verify`` problem."""
        return (
            f"the path's last commit, by a run of {self.task}, was cut short (killed, or failed) before it finished "
            f"({self.state}; manifest {self.manifest!r}), so {self.task} is incomplete: the next build that needs it "
            f"runs it again and records the path (or build {self.task} with rerun=True now)"
        )


def cut_short(workspace: str, key: str, commit: str, signer: Signer) -> CutShort | None:
    """The commit cut short (killed, or failed, before its task's outputs were in place) that left the side file at
    ``key`` (workspace-relative) in ``workspace``, sealed as ``commit``, unvouched for; None when there is none.

    A commit moves its side files and writes their records before it moves its task's outputs
    (``kart_core.transaction``), so one cut short after a side file's move leaves its task incomplete: the signed
    manifest that lists ``key`` under ``side`` with ``commit`` is pending, or an output it lists is missing. A
    replacing commit cut short before the move leaves the file its earlier run committed, which its pending manifest
    no longer lists (``_stopped_before_the_move``). A complete task's listing is neither (an older version copied
    back: ``explain``). Reads the workspace's manifests: only for a side file a load or ``kart verify`` refuses. An
    unreadable manifest is skipped.

    Raises:
        OSError: the store could not be asked.
    """
    folder = join_url(workspace, MANIFEST_FOLDER)
    storage = storage_for(folder)
    for name in storage.list_dir(folder):
        if not name.endswith(MANIFEST.extension):
            continue
        relative = f"{MANIFEST_FOLDER}/{name}"
        try:
            manifest = read_manifest(storage, join_url(folder, name), relative, signer, run=False)
        except (DamagedOutputError, IntegrityError):
            continue
        entry = manifest.side.get(key) if manifest is not None else None
        if manifest is None or entry is None or entry.commit != commit:
            continue
        missing = sorted(output for output in manifest.outputs if not storage.exists(join_url(workspace, output)))
        if not manifest.pending and not missing:
            return None
        state = "its manifest is still pending" if manifest.pending else f"its output {missing[0]!r} is missing"
        return CutShort(manifest.task or manifest_task(relative), relative, f"the file is that run's; {state}")
    return _stopped_before_the_move(workspace, key, commit, signer)


def _stopped_before_the_move(workspace: str, key: str, commit: str, signer: Signer) -> CutShort | None:
    """A replacing commit of the path's last writer cut short before it moved its side file: the path's record still
    names ``commit`` (the file there), but that task's manifest is pending and lists the key with the new commit (or
    not at all), so nothing lists ``commit`` any more. None for anything else.

    Raises:
        OSError: the store could not be read.
    """
    found = read_record(workspace, key, signer)
    if found is None or found.commit != commit:
        return None
    path = join_url(workspace, found.manifest)
    try:
        manifest = read_manifest(storage_for(path), path, found.manifest, signer, run=False)
    except (DamagedOutputError, IntegrityError):
        return None
    if manifest is None or not manifest.pending:
        return None
    state = "its manifest is still pending; it stopped before it moved this file, which its earlier run committed"
    return CutShort(manifest.task or manifest_task(found.manifest), found.manifest, state)


def writers(record: OutputRecord) -> list[str]:
    """The tasks (``Class[1234abcd]``) that wrote ``record.key`` as a side file, for a message about that path (a side
    file gone): the path's last writer when its record (signing on) names a manifest listing the key under ``side``,
    then the task of ``record`` when its own manifest lists it. Nothing is verified (a message, never a decision); at
    most two small reads and two manifests, so a missing output's error stays cheap. Empty when neither lists it (an
    output, or a side file read through another task's target without signing: the plain message stands)."""
    found: list[str] = []
    for name in dict.fromkeys((_named_manifest(record), record.manifest_name)):
        if name is None:
            continue
        path = join_url(record.workspace, name)
        try:
            manifest = read_manifest(storage_for(path), path, name, None, run=False)
        except Exception:  # noqa: BLE001 - unreadable: it names nothing here
            continue
        if manifest is not None and record.key in manifest.side:
            found.append(manifest_task(name))
    return found


def _named_manifest(record: OutputRecord) -> str | None:
    """The manifest the path's record names, unverified (for a message only); None when there is none."""
    path = join_url(record.workspace, name_for(record.key))
    try:
        data = storage_for(path).read_bytes(path)
        document = json.loads(bytes(data[HEADER_SIZE:] if data.startswith(MAGIC) else data).decode("utf-8"))
        return str(document["manifest"])
    except Exception:  # noqa: BLE001 - no record, or not one kart wrote: nothing named
        return None


def explain(record: OutputRecord, commit: str, signer: Signer) -> str:
    """Why the path's record does not vouch for the side file at ``record.key`` sealed as ``commit`` (``vouched``
    said no), as a clause for a refusal: what the record names (the commit and manifest of the path's last writer:
    the task to build again), or that it is missing, not signed with this key, or names a manifest that no longer
    lists the path with that commit. Never raises: an unreadable record says so."""
    name = name_for(record.key)
    path = join_url(record.workspace, name)
    try:
        data = storage_for(path).read_bytes(path)
    except FileNotFoundError:
        return (
            f"the path has no side-file record ({name!r}: removed, or the file was copied here from elsewhere), so "
            "no run of this workspace vouches for that commit. Build the task that writes it again with rerun=True, "
            "or delete the file"
        )
    except OSError as exc:
        return f"the path's side-file record {name!r} cannot be read ({exc})"
    named: str | None = None
    manifest = ""
    if signer.verify(data, name) is not None:
        try:
            document = json.loads(bytes(data[HEADER_SIZE:]).decode("utf-8"))
            named, manifest = str(document["commit"]), str(document["manifest"])
        except Exception:  # noqa: BLE001 - not a record kart wrote: said as such
            named = None
    if named is None:
        return (
            f"the path's side-file record {name!r} is not one kart signed with this key (changed, or written with "
            "another key), so it vouches for no commit. Build the task that writes it again with rerun=True, or "
            "delete the file"
        )
    if named != commit:
        return (
            f"the path's side-file record {name!r} names commit {named} of the run of {manifest_task(manifest)} that "
            f"committed the path last (manifest {manifest!r}): an older version copied back. Build "
            f"{manifest_task(manifest)} again with rerun=True (it writes the file anew), or delete the file"
        )
    task = manifest_task(manifest)
    return (
        f"the path's side-file record {name!r} names that commit, but its manifest {manifest!r} no longer lists the "
        f"path under 'side' with it (the manifest was removed or rewritten): an older version copied back, or the "
        f"run of {task} is gone. Build {task} (or another task that writes the path) again with rerun=True, or "
        "delete the file"
    )


@dataclasses.dataclass(frozen=True)
class Record:
    """A path's signed side-file record as a commit wrote it (``write_record``).

    Attributes:
        commit: the commit id of the run that committed the path last (32 hex).
        manifest: the workspace-relative name of that run's task's manifest (``log/manifest/{Class}_{id}.json``).
    """

    commit: str
    manifest: str


def read_record(workspace: str, key: str, signer: Signer) -> Record | None:
    """The record of the side file at ``key`` (workspace-relative) in ``workspace``, when it is one kart signed with
    ``signer``'s key for that key; None when it is missing, not signed so, or not such a record.

    Raises:
        OSError: the store could not be read (other than the record missing).
    """
    name = name_for(key)
    path = join_url(workspace, name)
    try:
        data = storage_for(path).read_bytes(path)
    except FileNotFoundError:
        return None
    seal = signer.verify(data, name)
    if seal is None or seal.commit is None:
        return None
    try:
        document = json.loads(bytes(data[HEADER_SIZE:]).decode("utf-8"))
        found = Record(commit=str(document["commit"]), manifest=str(document["manifest"]))
        if document.get("format") != FORMAT or document.get("key") != key or found.commit != seal.commit:
            return None
    except Exception:  # noqa: BLE001 - not a record kart wrote
        return None
    return found


def vouched(record: OutputRecord, commit: str, signer: Signer) -> bool:
    """Whether the signed side file at ``record.key`` sealed as ``commit`` is what the path's last writer committed:
    its signed record names ``commit`` and a manifest that lists the key under ``side`` with that commit.

    False when the record is missing, unsigned or not for this key, or names another commit (an older version put
    back), or its manifest does not list it so (rewritten by a later run of that task). An unreadable record or
    manifest counts as not vouching (the load is refused; never served unchecked).
    """
    try:
        found = read_record(record.workspace, record.key, signer)
        if found is None or found.commit != commit:
            return False
        manifest_path = join_url(record.workspace, found.manifest)
        manifest = read_manifest(storage_for(manifest_path), manifest_path, found.manifest, signer, run=False)
    except Exception:  # noqa: BLE001 - a record or manifest unreadable or refused: no vouching
        return False
    entry = manifest.side.get(record.key) if manifest is not None else None
    return entry is not None and entry.commit == commit
