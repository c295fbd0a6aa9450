"""The integrity record of a task's outputs: ``log/manifest/{Class}_{unique_id}.json``.

Written when ``run_one`` commits a task's outputs (and updated by a direct ``dump`` of one of
them), it holds, per output (keyed by its workspace-relative path): the size in bytes, a content
hash (``kart_core.integrity``; prefixed by the algorithm's name), the commit id, whether the file carries
a signature header and the ``module.Class`` of the task that wrote it. Loading checks the owner and the
size always and the hash when verify is on. gokart
ignores the file; an output without a record (written by gokart, or by a bare ``make_target``)
loads unchecked. With signing on the manifest is itself sealed (``kart_core.signing``).

Format (JSON, UTF-8)::

    {"format": "kart-manifest/1", "task": "Class[8-hex id]", "commit": "<32 hex>",
     "outputs": {"a/b_<id>.pkl": {"size": 10, "digest": "xxh3_128:<hex>", "commit": "<32 hex>",
     "sealed": false, "owner": "pkg.module.Class", "stamp": [<inode>, <status-change time, ns>]}},
     "requirements": true}

(on object storage an entry carries ``"tag": "etag:<S3 ETag>"`` or ``"tag": "generation:<GCS generation>"`` instead
of ``"stamp"``)

Why the stamp (kart since 2026-12-03, unsigned local outputs; older kart ignores the key): it tells a load, from
one ``fstat`` of the file it opened, that this is the very file the commit (or a load that hashed it since) vouched
for. No copy (``cp -a``, ``rsync -a``, ``tar x``), rename, symlink swap or clock step reproduces a file's inode and
status-change time; the manifest's modification time, compared before, is copied with it (attacker at20 K14, K5,
K9). An entry without one (older kart, a signed commit, object storage) is judged by that time still
(``kart_core.damage``).

Why the tag (kart since 2026-12-03, unsigned outputs on S3 and GCS; older kart ignores the key): what the stamp is on
object storage, which has no inode or status-change time. The store gives every object version a tag (S3's ETag,
GCS's generation: ``kart_core.storage.stamp.object_tag``); the commit records the one its copy into place answered,
and a load compares it with the tag the store sends with the bytes it reads (no extra request). Another tag is
another version of the object (a same-size rewrite by gokart, another tool, a person or an interrupted ``aws s3
sync``: attacker at22 M2): its bytes are hashed, as a local file with another stamp is. A key of its own, not the
stamp's: an older kart decodes ``"stamp"`` as integers and would take a manifest holding a string there for damage.

Why the owner: gokart's layout names files by class name and unique id, and the id covers the class
name but not its module, so same-named classes of two modules with equal parameters share the
manifest file and any ``make_target`` output path. The owner tells their outputs apart without
changing those paths; an entry without one (kart before 2026-11-30) names no class and is not checked.

A class that keeps its run record in the manifest (``kart_core.runlog``: ``kart_run_record_in_manifest``,
kart's own classes that gokart never reads) adds ``"run": {"task_params": {...}, "task_log": {...}}``:
what its ``task_params`` and ``task_log`` run logs would hold, written in the same atomic write as the
integrity record, so its run costs one record file instead of three. It is written as the last key (every
other key sorted before it; kart before 2026-12-01 sorted it among them), so a reader that needs only the
integrity record (a completeness, lineage or content check: ``Manifest.from_bytes(..., run=False)``) parses
the part before it: the run record is most of the bytes (``task_log.module_versions`` alone ~1 kB) and parsing
it cost a cached Kedro node more than parsing the rest. Both orders are read.

With signing on, a commit that moves the run's ``task_log`` and ``processing_time`` run logs into place adds
``"logs": "<32 hex>"``, the run's commit id, which those logs are sealed with (``kart_core.log_binding``): an
older run's log copied back is refused. Every later write of the manifest keeps it; older kart ignores it.

A run that dumped files that are not its task's outputs (side files: ``self.make_target(...)`` not returned by
``output()``) adds ``"side": {"shared/lookup.pkl": {...}}``, entries as under ``outputs``: what it committed there.
They are not the task's outputs (no completion check, ``kart verify`` or ``kart gc`` looks at them); with signing on
a load of such a file checks its commit against the path's last writer (``kart_core.side_record``). Older kart
ignores the key.

A run that loaded outputs of other tasks through kart (``self.load``, a target's ``load``) adds
``"inputs": [{"task": "Up[1234abcd]", "manifest": "log/manifest/Up_<id>.json", "key": "...", "commit": "<32 hex>",
"digest": "xxh3_128:<hex>", "reader": "pkg.module.Down"}, ...]``: which committed output (and which content)
each load read (an output without a record, a raw file or gokart's, with ``"commit": null`` and its ``"stamp"``), so ``kart_core.lineage`` can tell when an upstream was committed again since with other content
(the task is then stale). ``manifest`` is workspace-relative when the upstream shares the workspace, else
its full path. ``reader`` is the ``module.Class`` of the task whose run loaded it: a manifest shared by
same-named classes of two modules (see the owner above) holds each one's inputs, and a commit of one keeps the
other's (attacker N1: it replaced them, so the other was never found stale). An input without ``reader`` (kart
before it, or an owner not known) counts for every owner and is replaced by the next commit. Older kart ignores
the key.

A run also records, as inputs, the outputs of the task's direct requirements (its ``requires()``, flattened) that
had a committed entry when its ``run()`` began, whether or not it loaded them through kart, each not loaded marked
``"required": true``: what it may have read by path, in a subprocess or through a memoized loader. Such a manifest
says so with ``"requirements": true`` (every manifest kart writes since 2026-12-03: a run's commit, a direct dump).
Without that key (older kart), a missing input is not evidence that nothing was required: ``kart_core.lineage``
finds such a task stale once when a requirement has a committed output its manifest does not record.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import os
import re
import secrets
import stat
from collections.abc import Callable
from typing import Any

from kart_core.errors import DamagedOutputError, IntegrityError
from kart_core.lock import LockParams, commit_lock_directory
from kart_core.signing import HEADER_SIZE, Signer, is_sealed
from kart_core.storage import Storage
from kart_core.storage.base import protocol_of

try:  # a dependency of kart (pyproject.toml); without it json parses and encodes alone (``_loads``, ``_dumps``)
    import msgspec

    _fast_decode: Callable[[bytes], Any] | None = msgspec.json.Decoder().decode
    _fast_encode: Callable[[Any], bytes] | None = msgspec.json.Encoder(order="sorted").encode
except ImportError:  # pragma: no cover - msgspec not installed
    _fast_decode = None
    _fast_encode = None

__all__ = [
    "FORMAT",
    "SIGNING_ADVICE",
    "Entry",
    "Input",
    "Manifest",
    "OutputRecord",
    "decoded",
    "manifest_bytes",
    "manifest_task",
    "new_commit_id",
    "read_manifest",
    "read_if_inputs",
    "read_quietly",
    "read_unverified",
    "refusal_reason",
    "restamp_at",
    "restamped",
    "write_manifest",
]

FORMAT = "kart-manifest/1"


def new_commit_id() -> str:
    """A fresh random commit id (32 hex characters)."""
    return secrets.token_hex(16)


@functools.lru_cache(maxsize=64)
def _joined(workspace: str, name: str) -> str:
    """``os.path.join(workspace, name)``; the same few paths are joined again and again while tasks run."""
    return os.path.join(workspace, name)


@dataclasses.dataclass(frozen=True, slots=True)  # one per output of every task a build walks
class OutputRecord:
    """Where an output's integrity record lives: the task's manifest and the output's key in it.

    Attributes:
        workspace: the owning task's workspace directory (local path or URL).
        manifest_name: the manifest's workspace-relative path (what its signature binds).
        key: the output's workspace-relative path (its key in the manifest, and what its signature binds).
        task: the owning task's label, ``Class[8-hex id]``.
        unique_id: the owning task's full unique id.
        redis: the owning task's ``(redis_host, redis_port, redis_timeout)``: updates of the manifest
            that race take a redis lock when host and port are set, else a local file lock.
        owner: the owning task's ``module.Class`` (qualified name); an entry committed by another
            owner is foreign (``ForeignOutputError``). "" when not known (not checked).
    """

    workspace: str
    manifest_name: str
    key: str
    task: str
    unique_id: str
    redis: tuple[str | None, int | None, int] = (None, None, 180)
    owner: str = ""

    @property
    def manifest(self) -> str:
        """The manifest's full path (local path or URL): ``manifest_name`` joined to the workspace as gokart joins.

        Computed when read: a 100,000-task graph keeps one record per output, and this string is
        the longest part of each. A run reads it about ten times per output (staging, the commit's
        grouping, settling, the lock): the join of the last few records is remembered.
        """
        return _joined(self.workspace, self.manifest_name)

    def lock_params(self) -> LockParams:
        """The lock that guards updates of the manifest (lock files in ``lock.commit_lock_directory()``, one
        folder per machine: a workspace, compared with gokart's file by file, should not fill with them)."""
        host, port, timeout = self.redis
        return LockParams(
            key=self.manifest + ".commit",
            redis_host=host,
            redis_port=port,
            redis_timeout=timeout,
            lock_directory=commit_lock_directory(),
            owner=self.task,
        )


@dataclasses.dataclass(frozen=True, slots=True)  # slots: one per output of every manifest read
class Entry:
    """One committed output.

    Attributes:
        size: the file's size in bytes (with any signature header).
        digest: ``{algorithm}:{hex}`` of the content after any signature header (``kart_core.integrity``).
        commit: the commit id of the run (or direct dump) that wrote it.
        sealed: whether the file starts with a signature header.
        owner: ``module.Class`` of the task that committed it; None when not recorded (kart before
            2026-11-30, a bare target).
        stamp: ``(inode, status-change time in ns)`` of the local file this entry vouches for
            (``kart_core.damage.file_stamp``): taken after the commit's last move into place, or when a load hashed
            the file there to this entry's content (``kart_core.damage.settle_stamp``). A load trusts the file it
            opened without reading it only while its stamp is this one. None: no stamp (object storage, a signed
            commit, kart before 2026-12-03): the manifest's modification time is compared instead.
        tag: on object storage, the version tag of the object this entry vouches for (``"etag:<hex>"`` on S3,
            ``"generation:<n>"`` on GCS: ``kart_core.storage.stamp.object_tag``), answered by the commit's copy into
            place or recorded by a load that hashed the object to this entry's content. A load trusts the bytes it
            read without hashing them only while the tag sent with them is this one. None: no tag (local disk, a
            signed commit, kart before 2026-12-03, a store that gives none): nothing compared, as before.
    """

    size: int
    digest: str
    commit: str | None
    sealed: bool
    owner: str | None = None
    stamp: tuple[int, ...] | None = None
    tag: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The entry's JSON object (``owner`` only when known, so older entries keep their bytes)."""
        document: dict[str, Any] = {
            "size": self.size,
            "digest": self.digest,
            "commit": self.commit,
            "sealed": self.sealed,
        }
        if self.owner is not None:
            document["owner"] = self.owner
        if self.stamp is not None:
            document["stamp"] = list(self.stamp)
        if self.tag is not None:
            document["tag"] = self.tag
        return document

    def with_stamp(self, stamp: tuple[int, ...]) -> Entry:
        """This entry stamped ``stamp``: ``dataclasses.replace(self, stamp=stamp)`` without its call per field (a
        first commit stamps each output it writes)."""
        return type(self)(self.size, self.digest, self.commit, self.sealed, self.owner, stamp, self.tag)

    def with_tag(self, tag: str) -> Entry:
        """This entry with the object tag ``tag`` (``Entry.tag``): ``dataclasses.replace(self, tag=tag)``."""
        return type(self)(self.size, self.digest, self.commit, self.sealed, self.owner, self.stamp, tag)


def restamped(data: bytes, old: tuple[int, ...], new: tuple[int, ...]) -> bytes | None:
    """The manifest JSON ``data`` with the entry stamped ``old`` stamped ``new`` instead, by writing ``new``'s digits
    over ``old``'s: the bytes ``Manifest.to_bytes`` gives for that manifest with the new stamp, without encoding it
    again. None when that cannot be done so: ``old`` and ``new`` are not two positive integers each with the same
    inode and as many digits (then every mix of their bytes, which a reader amid an in-place write or a kill leaves, is
    still a stamp of that inode: ``kart_core.storage.local.rewrite_claimed``), or ``old``'s text ``"stamp":[i,t]`` is
    not in ``data`` exactly once.

    Exact: the entry's stamp is encoded in ``data`` as that text (``to_json``, compact separators, an int as
    ``%d``), and a JSON string cannot hold it (its quotes would be escaped), so a text found once is the entry's own;
    one found twice (another entry, an input or the run record holding the same one) leaves it to the caller to
    encode the manifest anew.
    """
    found = restamp_at(data, old, new)
    if found is None:
        return None
    at, after = found
    view = memoryview(data)  # not sliced into copies: a manifest of 100,000 inputs is tens of MiB
    return b"".join((view[:at], after, view[at + len(after) :]))


def restamp_at(data: bytes, old: tuple[int, ...], new: tuple[int, ...]) -> tuple[int, bytes] | None:
    """Where and what ``restamped(data, old, new)`` writes over ``data``: the offset of ``old``'s stamp text and
    ``new``'s, as long; None where ``restamped`` gives None. For a writer that changes those bytes in place without
    a copy of the document (``kart_core.transaction``: a fan-in's manifest of 100,000 inputs is 30 MB)."""
    if len(old) != 2 or len(new) != 2:
        return None
    inode, was = old
    now = new[1]
    # Spelled out: a generator over the four numbers cost a fifth of the call.
    if new[0] != inode or type(inode) is not int or type(was) is not int or type(now) is not int:
        return None
    if inode <= 0 or was <= 0 or now <= 0:
        return None
    before = b'"stamp":[%d,%d]' % (inode, was)
    after = b'"stamp":[%d,%d]' % (inode, now)
    if len(after) != len(before):
        return None
    at = data.find(before)
    if at < 0 or data.find(before, at + len(before)) >= 0:
        return None
    return at, after


# slots: a task with 100,000 requirements records as many inputs, all parsed when its manifest is read (60 MiB of
# them; 81 MiB with an attribute dict each)
@dataclasses.dataclass(frozen=True, slots=True)
class Input:
    """One committed output of another task that the run which wrote a manifest loaded.

    Attributes:
        task: the upstream's label, ``Class[8-hex id]`` (for messages).
        manifest: the upstream's manifest: workspace-relative (same workspace as this manifest) or a full path/URL;
            "" for a file outside every workspace that a requirement outputs (a bare target's, a luigi
            ``LocalTarget``'s or ``S3Target``'s: no manifest vouches for it), whose ``key`` is then its full path or
            URL and whose ``stamp`` and ``digest`` are the file's as the run began (``kart_core.lineage``).
        key: the output's key in that manifest.
        commit: the commit id of the entry the load read.
        digest: the content hash of the entry the load read.
        reader: ``module.Class`` of the task whose run loaded it (the manifest's owner it belongs to); "" when not
            known (an older record): it then counts for every owner of the manifest.
        stamp: for an output no integrity record vouched for when it was loaded (a raw file dropped in by hand
            under a task without ``run()``, an output gokart wrote; ``commit`` is then None and ``digest`` the
            hash of the bytes loaded): the file's stamp then (``kart_core.storage.stamp``), so a check can tell it
            unchanged by one stat (``kart_core.damage.unrecorded_content``). None for a recorded output.
        built: the run built the upstream itself (a ``build()`` nested in its ``run()``, whose value is this load), so
            a check finds the task stale when that upstream is stale further up, not only when it was committed
            again (``kart_core.lineage``): nothing but the task's own run brings such an upstream up to date.
        required: the upstream is one of the task's requirements and the run did not load this output through
            kart (or loaded other content of it): the entry it held when ``run()`` began, recorded because the run
            may have read it otherwise (by path, in a subprocess, from a memoized loader). ``digest`` is "" when that
            entry's commit was still in progress (pending): any content committed since makes the task stale.
    """

    task: str
    manifest: str
    key: str
    commit: str | None
    digest: str
    reader: str = ""
    stamp: tuple[object, ...] | None = None
    built: bool = False
    required: bool = False

    def to_json(self) -> dict[str, Any]:
        """The input's JSON object (``reader``, ``stamp``, ``built`` and ``required`` only when known or set, so older
        records keep their bytes)."""
        document: dict[str, Any] = {
            "task": self.task,
            "manifest": self.manifest,
            "key": self.key,
            "commit": self.commit,
            "digest": self.digest,
        }
        if self.reader:
            document["reader"] = self.reader
        if self.stamp is not None:
            document["stamp"] = list(self.stamp)
        if self.built:
            document["built"] = True
        if self.required:
            document["required"] = True
        return document

    def read_by(self, owner: str | None) -> bool:
        """Whether this input counts for the task of ``owner`` (``module.Class``; None or "": any owner)."""
        return not owner or not self.reader or self.reader == owner

    @classmethod
    def from_json(cls, value: Any) -> Input:
        """Parse one input (KeyError/TypeError when it is not one)."""
        if not isinstance(value, dict):
            raise TypeError(f"an input is a JSON object, not {type(value).__name__}")
        commit = value.get("commit")
        # A manifest kart wrote has its inputs decoded by msgspec straight into Input objects (``decoded``); this
        # reads what msgspec refused (a missing key, a null reader, a stamp that is no array).
        return cls(
            str(value.get("task", "")),
            str(value["manifest"]),
            str(value["key"]),
            None if commit is None else str(commit),
            str(value.get("digest", "")),
            str(value.get("reader") or ""),
            tuple(stamp) if isinstance(stamp := value.get("stamp"), list) else None,
            value.get("built") is True,
            value.get("required") is True,
        )


@dataclasses.dataclass(frozen=True)
class Manifest:
    """A task's committed outputs by key; ``commit`` changes with every write of the manifest.

    ``pending``: written by a commit that replaces existing outputs before it moves them, and written
    again without it after the last move (``kart_core.commit_marker``): a load that reads a pending
    manifest waits for that commit, or finds it was killed half way. Only a pending manifest carries
    the key, so every other manifest's bytes are as before.

    ``requirements``: the run that wrote ``inputs`` recorded the outputs of its task's requirements among them
    (``Input.required``; True for every manifest kart writes since 2026-12-03, also a direct dump's, which claims
    nothing). False: parsed from a manifest an older kart wrote, where a requirement's missing input says nothing.
    """

    task: str
    commit: str
    outputs: dict[str, Entry] = dataclasses.field(default_factory=dict)
    run: dict[str, Any] | None = None  # the run record of a kart_run_record_in_manifest class (JSON data)
    pending: bool = False
    inputs: tuple[Input, ...] = ()  # what the run loaded from other tasks (kart_core.lineage)
    logs: str | None = None  # the commit id of the run whose signed task_log/processing_time are current
    # The run's side files (dumped in run(), not outputs; kart_core.side_record), by workspace-relative path.
    side: dict[str, Entry] = dataclasses.field(default_factory=dict)
    requirements: bool = True

    def to_bytes(self) -> bytes:
        """The JSON form (keys sorted, so equal manifests are equal bytes).

        Raises:
            TypeError: the run record holds a value JSON cannot hold (the commit then writes the manifest
                without it, ``kart_core.transaction``).
        """
        outputs = {key: entry.to_json() for key, entry in self.outputs.items()}
        document: dict[str, Any] = {"format": FORMAT, "task": self.task, "commit": self.commit, "outputs": outputs}
        if self.pending:
            document["pending"] = True
        many = len(self.inputs) > _INPUT_CHUNK  # spliced in below, a chunk at a time
        if self.inputs:
            document["inputs"] = [] if many else [item.to_json() for item in self.inputs]
        if self.logs is not None:
            document["logs"] = self.logs
        if self.side:
            document["side"] = {key: entry.to_json() for key, entry in self.side.items()}
        if self.requirements:
            document["requirements"] = True
        data = _dumps(document)
        if many:
            data = _with_inputs(data, self.inputs)
        if self.run is not None:  # the last key, after "}" is taken off: readers may stop before it (run=False)
            data = b"".join((data[:-1], _RUN_KEY, _dumps(self.run), b"}"))
        return data

    @classmethod
    def from_bytes(cls, data: bytes, *, run: bool = True, inputs: bool = True) -> Manifest:
        """Parse the JSON form.

        Args:
            data: the JSON bytes (after any signature header).
            run: parse the run record too. False: only the integrity record is needed (outputs, commit,
                pending, inputs): when the run record is the document's last key (as ``to_bytes`` writes it)
                the bytes before it are parsed and ``run`` is None; otherwise the whole document is parsed.
                Never for a manifest that is written back (its run record would be lost).
            inputs: build the recorded inputs too. False: the reader needs the outputs, commit and pending
                state only (a load of an output: ``kart_core.target``); ``inputs`` is then empty, whatever
                the document records (its JSON is still checked, only no ``Input`` is made: a task with
                100,000 requirements records as many, 67 MiB parsed). Never for a manifest that is written
                back, nor for a lineage check (its inputs would be lost, or found none). Not kept in the
                cache of parses below, which serves readers of the inputs.

        Raises:
            ValueError: not a kart manifest (json.JSONDecodeError is a ValueError too).

        The integrity record of bytes parsed before in this process (``run`` False) is handed back as it was
        parsed (``_PARSED``, for manifests up to 64 KiB): the bytes are read each time, only their parse is kept. A second KartRunner run in
        one process, or a build that checks its graph again, reads the same manifests: their parse was a fifth
        of a cached node's check. The object is shared, like the immutable parse it stands for: never change it.
        """
        if not inputs:
            return cls._parse(data, run=run, inputs=False)
        if not run and cls is Manifest and type(data) is bytes and len(data) <= _PARSED_MAX_BYTES:
            known = _PARSED.get(data)
            if known is not None:
                return known
            parsed = cls._parse(data, run=False)
            if len(_PARSED) >= _PARSED_LIMIT:
                _PARSED.clear()  # a graph of more manifests than kept: the next ones are kept instead
            _PARSED[data] = parsed
            return parsed
        return cls._parse(data, run=run)

    @classmethod
    def _parse(cls, data: bytes, *, run: bool, inputs: bool = True) -> Manifest:
        try:
            return cls._parse_document(data, run=run, inputs=inputs)
        except RecursionError:
            # A kart manifest is a few levels deep; JSON nested past the recursion limit (msgspec's or json's) is
            # damage like any other unreadable manifest, not a bare RecursionError at every build (attacker at20 K3).
            raise ValueError("its JSON is nested too deeply to be a kart manifest") from None

    @classmethod
    def _parse_document(cls, data: bytes, *, run: bool, inputs: bool) -> Manifest:
        found = decoded(cls, data, run, inputs)
        if found is not None:
            return found
        document: Any = None if run else _without_run(data)
        if document is None:
            document = _loads(data)
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} document")
        raw_outputs = document["outputs"]
        if not isinstance(raw_outputs, dict):  # dict([]) would read a list as no entries (attacker at20 K3)
            raise TypeError(f"its outputs are a JSON {type(raw_outputs).__name__}, not an object")
        outputs = _entries(raw_outputs)
        raw_side = document.get("side")
        side = _entries(raw_side) if isinstance(raw_side, dict) else {}
        record = document.get("run")
        raw_inputs = document.get("inputs") if inputs else None
        read = tuple(Input.from_json(item) for item in raw_inputs) if isinstance(raw_inputs, list) else ()
        logs = document.get("logs")
        return _made(  # type: ignore[no-any-return]
            cls,
            {
                "task": str(document.get("task", "")),
                "commit": str(document["commit"]),
                "outputs": outputs,
                "run": record if isinstance(record, dict) else None,
                "pending": bool(document.get("pending", False)),
                "inputs": read,
                "logs": None if logs is None else str(logs),
                "side": side,
                "requirements": document.get("requirements") is True,
            },
        )


def decoded(cls: type[Manifest], data: bytes, run: bool, inputs: bool = True) -> Manifest | None:
    """``Manifest._parse(data, run=run, inputs=inputs)``, decoded by msgspec straight into its entries; None (the general parse
    decides, as before) when msgspec is missing or refuses the bytes: a value of another type than kart writes (a
    ``size`` in quotes, a ``commit`` number, an entry without ``commit``), json's extensions, a malformed document;
    or when the part before the run record lacks ``task`` (an older kart's key order: the whole document is read).

    What it returns is what the general parse builds from the same bytes: every field it reads is of the type the
    general parse converts it to, so each conversion is the value itself; unknown keys are ignored by both, the
    last of duplicate keys counts in both; the keys are checked (``_check_key``), the ``side`` entries and ``inputs``
    read, in the same order, with the same errors. A third of the instructions of building the dicts first.
    ``inputs`` False: a decoder without the ``inputs`` field, which msgspec skips as it skips an unknown key (its
    JSON checked, no object made); used for a document over ``_SKIP_INPUTS_FROM`` bytes only: a smaller one is decoded
    with the ``inputs`` decoder and its inputs left out (the same manifest; one decoder made per process, not two:
    a million instructions of a cached build's fixed cost). An ``inputs`` array msgspec refuses then sends the
    bytes to the general parse, which skips it as before.

    Public for ``kart_core.lineage``'s memoized read of a local manifest.
    """
    decode = _document_decoder(inputs or len(data) < _SKIP_INPUTS_FROM)
    if decode is None or (not data.isascii() and not _utf8(data)):  # msgspec skips an ignored key's bytes unread
        return None
    cut = -1 if run else data.find(_RUN_KEY)
    head = cut >= 0 and data.endswith(b"}}")  # what _without_run cuts
    if head and data[:1] != b"{":
        return None
    try:
        document = decode(data[:cut] + b"}" if head else data)
    except ValueError:  # msgspec.DecodeError (its ValidationError too), UnicodeDecodeError
        return None
    task = document.task
    if head and task is msgspec.UNSET:
        return None
    if document.format != FORMAT:
        raise ValueError(f"not a {FORMAT} document")
    for key in document.outputs:
        _check_key(key)
    raw_side, logs, record = document.side, document.logs, document.run
    raw_inputs = document.inputs if inputs else None
    return _made(  # type: ignore[no-any-return]
        cls,
        {
            "task": "" if task is msgspec.UNSET else task,
            "commit": document.commit,
            "outputs": document.outputs,
            "run": record if isinstance(record, dict) else None,
            "pending": document.pending,
            "inputs": () if raw_inputs is None else raw_inputs,
            "logs": None if logs is None else str(logs),
            "side": _entries(raw_side) if isinstance(raw_side, dict) else {},
            "requirements": document.requirements is True,
        },
    )


def _utf8(data: bytes) -> bool:
    """Whether ``data`` is UTF-8 (what ``json.loads(data.decode("utf-8"))`` requires of all of it)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@functools.cache
def _document_decoder(inputs: bool = True) -> Callable[[bytes], Any] | None:
    """msgspec's decoder of a manifest document into ``Entry`` objects and its other fields as JSON (``decoded``);
    None without msgspec. Made on first use: the types it checks are read from ``Entry``'s annotations.
    ``inputs`` False: one that leaves the ``inputs`` array unbuilt (``inputs`` is then None)."""
    if _fast_decode is None:
        return None

    class _Document(msgspec.Struct):
        """The keys of a manifest ``_parse`` reads, of the types kart writes them (the rest: JSON as parsed)."""

        format: str
        commit: str
        outputs: dict[str, Entry]
        task: str | msgspec.UnsetType = msgspec.UNSET
        pending: bool = False
        # Straight into Input objects, of the types kart writes (a parse of JSON dicts first held 150 MiB of them
        # at once for a manifest of 100,000 inputs, beside the inputs made of them).
        inputs: tuple[Input, ...] | None = None
        logs: Any = None
        side: Any = None
        requirements: Any = None
        run: Any = None

    if inputs:
        return msgspec.json.Decoder(_Document).decode

    class _Outputs(msgspec.Struct):
        """``_Document`` without ``inputs``: msgspec skips that key's value as it skips an unknown key's (its JSON
        checked, nothing built)."""

        format: str
        commit: str
        outputs: dict[str, Entry]
        task: str | msgspec.UnsetType = msgspec.UNSET
        pending: bool = False
        logs: Any = None
        side: Any = None
        requirements: Any = None
        run: Any = None

    return msgspec.json.Decoder(_Outputs).decode


def _entries(value: Any) -> dict[str, Entry]:
    """The entries of an ``outputs`` (or ``side``) object by key (KeyError/TypeError/ValueError when malformed)."""
    entries = {}
    for key, item in dict(value).items():
        commit, owner, stamp, tag = item.get("commit"), item.get("owner"), item.get("stamp"), item.get("tag")
        entries[str(key)] = Entry(
            int(item["size"]),
            str(item["digest"]),
            None if commit is None else str(commit),
            bool(item.get("sealed", False)),
            None if owner is None else str(owner),
            None if stamp is None else _stamp(stamp),
            None if tag is None else str(tag),
        )
    for key in entries:
        _check_key(key)
    return entries


def _stamp(value: Any) -> tuple[int, ...]:
    """An entry's ``stamp`` as msgspec decodes it (``tuple[int, ...]``) from a JSON array of integers.

    Raises:
        TypeError: it is not an array (msgspec refuses it too).
        ValueError: an item is not an integer (the same conversion ``size`` gets).
    """
    if not isinstance(value, list):
        raise TypeError(f"an output's stamp is a JSON array, not {type(value).__name__}")
    return tuple(int(item) for item in value)


def _made(cls: type, fields: dict[str, Any]) -> Any:
    """``cls(**fields)`` for a frozen dataclass with an attribute dict and without ``__post_init__`` given every field
    (``Manifest``): the same object, its attributes set in one call where the generated ``__init__`` makes one
    ``object.__setattr__`` per field. A manifest is parsed per cached KartRunner node, and building its frozen
    objects cost a fifth of the parse (``Entry`` and ``Input``, which have slots, msgspec makes itself)."""
    made: Any = object.__new__(cls)
    made.__dict__.update(fields)
    return made


def _check_key(key: str) -> None:
    """Raise ValueError unless ``key`` is a normalised workspace-relative path (as kart writes every key): a key
    that is absolute or climbs out with ``..`` would name a file outside the workspace, and nothing may follow it."""
    # Cheap enough for every manifest read: ".." is looked for as a part only when the text holds it.
    if key.startswith("/") or "://" in key or (".." in key and ".." in key.split("/")):
        raise ValueError(f"output key {key!r} is not a path inside the workspace")


# The integrity records parsed from manifest bytes (``from_bytes(..., run=False)``), by those bytes.
_PARSED: dict[bytes, Manifest] = {}
_PARSED_LIMIT = 2048  # about 5 MB of bytes and records at most
# A larger manifest (a task with thousands of requirements: 300 bytes per input) is parsed each time: kept, one of
# 100,000 inputs held its 30 MB and some 100 MB of parsed inputs for the life of the process (an Airflow worker's).
_PARSED_MAX_BYTES = 64 * 1024

# A manifest of fewer bytes is decoded with its inputs even when they are not asked for (``decoded``): a few inputs.
_SKIP_INPUTS_FROM = 16 * 1024

_RUN_KEY = b',"run":'
_INPUT_CHUNK = 1024  # inputs encoded at once by ``Manifest.to_bytes`` (``_with_inputs``)
_NO_INPUTS = b'"inputs":[]'


def _with_inputs(data: bytes, inputs: tuple[Input, ...]) -> bytes:
    """``data``, a manifest's JSON encoded with an empty ``inputs`` array, with ``inputs`` in that array: the bytes
    ``_dumps`` gives for the document holding them all (json encodes each item of an array alone, and so does msgspec;
    ``_dumps`` picks the same bytes for a chunk as for the whole), encoded ``_INPUT_CHUNK`` inputs at a time.

    Why: a task with 100,000 requirements records as many inputs (``Input.required``); their JSON objects, all made
    before the encoding, cost about as much as the inputs themselves (tens of MiB at its commit). The array's key is
    found once: only the top-level key can be spelled ``"inputs":[`` (a quote inside a JSON string is escaped, and no
    other object of a manifest holds that key).

    Raises:
        TypeError: an input holds a value JSON cannot hold (``_dumps``).
    """
    at = data.index(_NO_INPUTS) + len(_NO_INPUTS) - 1
    out = io.BytesIO()  # getvalue() hands its buffer over: the document is not copied again
    out.write(memoryview(data)[:at])
    for start in range(0, len(inputs), _INPUT_CHUNK):
        if start:
            out.write(b",")
        chunk = _dumps([item.to_json() for item in inputs[start : start + _INPUT_CHUNK]])
        out.write(memoryview(chunk)[1:-1])
    out.write(memoryview(data)[at:])
    return out.getvalue()


_HEAD_KEYS = frozenset({"task", "outputs", "commit"})  # what a manifest's part before its run record holds
# What ``json.dumps(..., sort_keys=True, separators=(",", ":"))`` builds per call: one encoder (it keeps no state
# between calls) instead of two new ones per manifest written.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def _dumps(value: Any) -> bytes:
    """``json.dumps(value, sort_keys=True, separators=(",", ":")).encode("utf-8")``: the same bytes, the same errors.

    Encoded by msgspec when ``value`` is plain JSON data (``_plain``) and msgspec's bytes are ASCII without DEL: for
    such a value they are json's (tests/core/test_manifest_encoding.py compares the two), made in about a seventh of
    json's instructions (a KartRunner node's manifest: 187k by json, its run record's module versions alone 31k; a
    first run encodes one per node). Anything else (another type, a float json writes with an exponent or as
    ``NaN``, a character json escapes and msgspec does not, a structure nested deeper than ``_PLAIN_DEPTH``, e.g.
    one that holds itself) is json's to encode or refuse, as before.

    Raises:
        TypeError: a value JSON cannot hold (json's error).
        ValueError: a structure that holds itself (json's error).
    """
    if _fast_encode is not None and _plain(value, 0):
        try:
            data = _fast_encode(value)
        except (TypeError, ValueError, OverflowError):  # e.g. a lone surrogate, which json escapes
            pass
        else:
            if data.isascii() and b"\x7f" not in data:  # what json escapes and msgspec writes as it is (ensure_ascii)
                return data
    # Compact and without indent: json's C encoder (an indented dump runs in pure Python).
    return _ENCODER.encode(value).encode("utf-8")


_PLAIN_DEPTH = 32  # deeper than any record kart writes; a structure that holds itself is found too deep
_STR_TYPE = frozenset({str})
_SCALAR_TYPES = frozenset({str, int, bool, type(None)})  # exactly these types: what _plain takes as they are


def _plain(value: Any, depth: int) -> bool:
    """Whether ``value`` is made of exactly ``dict`` (``str`` keys), ``list``, ``tuple``, ``str``, ``int``, ``bool``,
    None and ``float`` values that ``repr`` writes without an exponent (0 or 1e-4 <= abs < 1e16: json writes
    ``repr``, msgspec as much there, ``1e-05`` as ``0.00001``), nested at most ``_PLAIN_DEPTH`` deep. Subclasses
    (an ``IntEnum``, a ``str`` subclass) are not: json and msgspec may write them differently. Scalars are looked
    at in their container's loop (a call each cost more than msgspec's encoding of them)."""
    kind = type(value)
    if kind is dict:
        items: Any = value.values()
        if not _STR_TYPE.issuperset(map(type, value)):  # every key exactly a str (the types compared in C)
            return False
    elif kind is list or kind is tuple:
        items = value
    elif kind is float:
        return value == 0.0 or 1e-4 <= abs(value) < 1e16  # NaN and the infinities compare False
    else:
        return kind is str or kind is int or kind is bool or value is None
    if depth >= _PLAIN_DEPTH:
        return False
    if _SCALAR_TYPES.issuperset(map(type, items)):  # no float, no container: plain (a manifest's most items)
        return True
    for item in items:
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue
        if kind is float:
            if item == 0.0 or 1e-4 <= abs(item) < 1e16:
                continue
            return False
        if not _plain(item, depth + 1):
            return False
    return True


_SCAN = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # what json.loads scans with (its decoder made with the same defaults)


def _loads(data: bytes) -> Any:
    """``json.loads(data.decode("utf-8"))``: the same objects, the same errors.

    Parsed by msgspec's JSON decoder when it accepts the bytes (about a quarter of json's instructions for a
    node run's manifest: a cached KartRunner node reads one, and its parse was a tenth of the node's check in a
    new process). For a document both accept they build equal objects (RFC 8259 JSON: dicts in document order,
    the last of duplicate keys, ints of any size, floats correctly rounded). Whatever msgspec refuses (json's
    extensions: ``NaN``, ``Infinity``, a float beyond range read as ``inf``, a lone surrogate escape; and every
    malformed document) is left to json, which then reads it or raises as it always did.
    """
    if _fast_decode is not None:
        try:
            return _fast_decode(data)
        except ValueError:  # msgspec.DecodeError (and its ValidationError) is one; so is UnicodeDecodeError
            pass
    return json.loads(data.decode("utf-8"))


def _without_run(data: bytes) -> dict[str, Any] | None:
    """The manifest document without its run record when that is its last key (``to_bytes``); else None.

    ``,"run":`` can only be a key there (inside a JSON string a quote is escaped), and the first one
    is the top-level key: the objects before it (entries, inputs) have no such key, and a cut inside a
    nested object leaves brackets open, which fails to parse. The document of an older kart (keys
    sorted: ``"task"`` after ``"run"``) has no ``task`` before it: None, so it is parsed whole. So is one
    that does not end as an object value does (``}}``: cut short, or another key last) or lacks
    ``outputs`` or ``commit`` before it. Exact for what kart writes, in either order; a document written
    otherwise, with ``inputs`` or ``pending`` after its run record and an object last, is read without them.
    """
    cut = data.find(_RUN_KEY)
    if cut < 0 or not data.endswith(b"}}"):
        return None
    if _fast_decode is not None and data[:1] == b"{":  # as json's scan: nothing before the document
        try:
            head: Any = _fast_decode(data[:cut] + b"}")  # the whole text as one document: nothing after it either
        except ValueError:  # refused (see _loads): json's scan below decides, as before
            pass
        else:
            return head if isinstance(head, dict) and _HEAD_KEYS <= head.keys() else None
    text = data[:cut].decode("utf-8") + "}"
    try:  # json.loads without its two white-space matches: kart writes none before or after the document
        head, end = _SCAN(text, 0)
    except (ValueError, StopIteration):  # a cut inside a nested object, or not JSON at all (or white space first)
        return None
    if end != len(text):
        return None
    if isinstance(head, dict) and "task" in head and "outputs" in head and "commit" in head:
        return head
    return None


def read_manifest(
    storage: Storage, path: str, name: str, signer: Signer | None, *, run: bool = True, inputs: bool = True
) -> Manifest | None:
    """The manifest at ``path``, or None when there is none (``run``, ``inputs``: as ``Manifest.from_bytes``).

    Raises:
        IntegrityError: signing is on and the manifest is unsigned or its signature is wrong.
        DamagedOutputError: the file is not a readable manifest.
    """
    try:
        data = storage.read_bytes(path)
    except FileNotFoundError:
        return None
    except IsADirectoryError as exc:  # a local folder in its place: damaged metadata, not a storage fault
        raise folder_error(path) from exc
    if signer is not None:
        if signer.verify(data, name) is None:
            raise IntegrityError(
                f"Refusing to trust the manifest of {manifest_task(path)} at {path!r}: signing is on and "
                f"{refusal_reason(data, path)}. {SIGNING_ADVICE}"
            )
        data = data[HEADER_SIZE:]
    elif is_sealed(data):
        data = data[HEADER_SIZE:]
    try:
        return Manifest.from_bytes(data, run=run, inputs=inputs)
    except (ValueError, KeyError, TypeError) as exc:
        detail = f"{type(exc).__name__}: {exc}"
        raise DamagedOutputError(
            f"The manifest {path!r} is damaged ({detail}). Fix: `kart verify --delete` (deletes it and the "
            "outputs it listed; the next build runs the task again), or rebuild the task with rerun=True.",
            path=path,
            kind="manifest",
            detail=f"its manifest cannot be read ({detail})",
        ) from exc


SIGNING_ADVICE = (
    "If the signing key was changed, list the old key in KART_SIGNING_OLD_KEYS (or [TaskOnKart] signing_old_keys) "
    "so what it signed still loads while new outputs are signed with the new key. If signing was just turned on, or "
    "you trust neither the file's origin nor its content: `kart verify --delete` removes every refused file of the "
    "workspace at once, and the next build runs those tasks again (docs/faq.md, signing keys)."
)


def manifest_task(path: str) -> str:
    """The task whose manifest lives at ``path``, as ``Class[1234abcd]``, from the file name
    (``{Class}_{unique id}.json``: the name is the task's, whatever the file holds); ``the task`` when
    the name is not kart's."""
    stem = path.replace("\\", "/").rsplit("/", 1)[-1].removesuffix(".json")
    cls, _, unique_id = stem.rpartition("_")
    return f"{cls}[{unique_id[:8]}]" if cls and len(unique_id) == 32 else "the task"


def refusal_reason(data: bytes, path: str) -> str:
    """Why signing refuses the manifest bytes ``data`` read at ``path`` (which did not verify): one clause.

    Names the task the file records when that is not the task of ``path``'s name (another task's
    manifest copied over this one: its signature binds the other name). The JSON is only parsed for
    the message; nothing in it is trusted.
    """
    why = "it is not signed" if not is_sealed(data) else "its signature is wrong"
    try:
        claimed = Manifest.from_bytes(data[HEADER_SIZE:] if is_sealed(data) else data).task
    except (ValueError, KeyError, TypeError):
        claimed = ""
    if claimed and claimed != manifest_task(path):
        return f"{why}: it holds the record of {claimed}, another task (its manifest was copied over this one)"
    return f"{why} (written before signing was turned on, signed with another key, or changed after kart wrote it)"


def read_unverified(storage: Storage, path: str, *, run: bool = True, inputs: bool = True) -> Manifest | None:
    """The manifest at ``path`` as evidence for inspection views, its signature not checked (JSON only:
    nothing is unpickled); None when it is missing or not a readable manifest. ``run``, ``inputs``: as
    ``Manifest.from_bytes``.

    For what a view shows or which files it attributes to a run; never for deciding that an output
    can be trusted (``read_manifest`` with the signer does that).
    """
    try:
        return Manifest.from_bytes(_unsealed(storage.read_bytes(path)), run=run, inputs=inputs)
    except (OSError, ValueError, KeyError, TypeError):  # gone meanwhile, or not a manifest
        return None


def read_if_inputs(storage: Storage, path: str, missing: list[str] | None = None) -> Manifest | None:
    """``read_unverified(..., run=False)``, but None without parsing when the bytes cannot hold a manifest
    with ``inputs``; ``path`` is appended to ``missing`` (when given) when no file is there, so a caller can
    tell a manifest that records no inputs from none at all.

    A task's completeness check asks its manifest for recorded inputs (``kart_core.lineage``); most
    manifests record none (nothing loaded through kart), and parsing one costs as much as reading it.
    The shortcut is exact: a manifest's ``inputs`` are non-empty only under a top-level key
    ``"inputs"`` holding a JSON array, and without a ``\\u`` escape that key can only be spelled
    literally, followed by optional white space, a colon and ``[`` (``_INPUTS_ARRAY``). A match
    elsewhere (a run record's ``inputs`` parameter holding an array) only costs the parse.
    """
    try:
        data = _unsealed(storage.read_bytes(path))
    except FileNotFoundError:
        if missing is not None:
            missing.append(path)
        return None
    except (OSError, ValueError):  # unreadable: a folder there, a storage error
        return None
    try:
        if b"\\u" not in data and _INPUTS_ARRAY.search(data) is None:
            return None
        return Manifest.from_bytes(data, run=False)
    except (OSError, ValueError, KeyError, TypeError):  # gone meanwhile, or not a manifest
        return None


_INPUTS_ARRAY = re.compile(rb'"inputs"\s*:\s*\[')


def _unsealed(data: bytes) -> bytes:
    """The JSON of manifest bytes, after the signature header when there is one (not checked here)."""
    return data[HEADER_SIZE:] if is_sealed(data) else data


def manifest_bytes(manifest: Manifest, name: str, signer: Signer | None) -> bytes:
    """The file content: the JSON, after a signature header over ``name`` when signing."""
    body = manifest.to_bytes()
    if signer is None:
        return body
    mac = signer.begin(name, manifest.commit)
    mac.update(body)
    return Signer.header(manifest.commit, mac) + body


def folder_error(path: str) -> DamagedOutputError:
    """The error for a local folder standing where the manifest ``path`` belongs (kind "manifest")."""
    return DamagedOutputError(
        f"The manifest {path!r} is a folder, not a file. Fix: `kart verify --delete` (removes it when it is "
        "empty, with the outputs it stood for; the next build runs the task again), or remove the folder "
        "and what is in it yourself.",
        path=path,
        kind="manifest",
        detail="its manifest is a folder, not a file",
    )


def clear_folder(path: str) -> bool:
    """Remove an empty local folder that stands where the manifest ``path`` belongs (so a commit or
    ``kart verify --delete`` can put or remove the file); True when one was removed.

    A folder with something in it, a symlink, a file or a remote path is left as it is (False): what is
    in a folder there is not kart's to delete.
    """
    if protocol_of(path) != "":
        return False
    local = path[len("file://") :] if path.startswith("file://") else path
    try:
        if not stat.S_ISDIR(os.lstat(local).st_mode):
            return False
        os.rmdir(local)
    except OSError:  # not empty, or gone meanwhile
        return False
    return True


def refuse_folder(path: str) -> None:
    """Remove an empty local folder at the manifest ``path`` (``clear_folder``); raise when one with files stays.

    Raises:
        DamagedOutputError: a folder with something in it is there (``folder_error``): a commit would fail at
            its last rename, after moving the outputs.
    """
    if not clear_folder(path) and protocol_of(path) == "" and os.path.isdir(path.removeprefix("file://")):
        raise folder_error(path)


def write_manifest(storage: Storage, path: str, name: str, manifest: Manifest, signer: Signer | None) -> None:
    """Write ``manifest`` at ``path`` atomically (sealed under ``name`` when signing)."""
    with storage.atomic_write(path) as file:
        file.write(manifest_bytes(manifest, name, signer))


def read_quietly(storage: Storage, path: str, name: str, signer: Signer | None) -> Manifest | None:
    """Like ``read_manifest`` but None for a damaged or refused manifest (a committer replaces it)."""
    try:
        return read_manifest(storage, path, name, signer)
    except (IntegrityError, DamagedOutputError):
        return None
