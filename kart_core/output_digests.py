"""What a task's committed outputs hold, named cheaply: each output's content hash.

An adapter that caches work derived from a kart task's output (kart_kedro's KartRunner keys a
Kedro node by its inputs) must key it by the output's content, not only by the task's unique id:
the same unique id can be rebuilt with other content (its outputs deleted and built again after an
edit of code the id does not cover). The content hash is already in the task's integrity record
(``kart_core.manifest``), so naming the content costs one small JSON read per task (its run record is not
parsed); only an output without a record (written by gokart, or with ``integrity_record`` off) is read and
hashed.

With signing on (``kart_core.signing``) the manifest is trusted only with the right signature, as a
load trusts it: a name read from a forged record would let a cache keyed by it hand back stale work.

A commit that replaces the outputs (a rerun, a repair) is honoured as loads honour it
(``kart_core.commit_marker.read_consistently``): a manifest marked pending is waited for and read
again, the manifests are read again at the end, and a commit that moved meanwhile makes the digests
be read once more: the names are never those of a half-moved commit, nor a mix of two commits.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from kart_core import commit_marker, lineage, target_config
from kart_core.contract import target_path
from kart_core.errors import DamagedOutputError
from kart_core.integrity import digest_stream
from kart_core.manifest import Manifest, OutputRecord, read_manifest
from kart_core.signing import Signer
from kart_core.storage import storage_for
from kart_core.structure import leaves
from kart_core.task_memo import memo_of

__all__ = [
    "CompleteOutputs",
    "SiblingOutputs",
    "committed_digests",
    "output_digests",
    "output_digests_if_complete",
    "outputs_if_complete",
]


def output_digests(task: Any) -> dict[str, str]:
    """Each output of ``task`` (its flattened ``output()``, in order) mapped to its content hash.

    Args:
        task: a kart task (its ``kart_outputs()``) or a luigi task (its ``output()``).

    Returns:
        output path → ``{algorithm}:{hex}`` as its manifest records it; for an output the manifest
        does not list, the hash of its bytes read now (``kart_core.integrity``'s default algorithm);
        ``""`` for a missing output. With signing on, the manifest's signature is checked (the signer
        of the enclosing ``target_config.frozen()`` scope, else the configured key); the outputs'
        own signatures are checked when they are loaded. A damaged (unreadable) manifest names
        nothing: its outputs are hashed from their bytes (their load raises ``DamagedOutputError``).

    A commit replacing the outputs meanwhile is waited for (see the module docstring).

    Raises:
        IntegrityError: signing is on and a manifest is unsigned or its signature is wrong (the
            message names the manifest and the fix), as a load of the output would raise.
        DamagedOutputError: (kind "commit") a commit replacing the outputs was killed half way: they
            may be from two runs (the message names the task and the fix), as a load would raise.
        ConcurrentCommitError: commits kept replacing the outputs while they were named twice.
        OSError: an output without a record exists but cannot be read.
    """
    outputs = leaves(task.kart_outputs() if hasattr(task, "kart_outputs") else task.output())
    signer = target_config.current().signer
    named = _from_one_manifest(outputs, signer)
    if named is not None:
        return named
    label = task.kart_label() if hasattr(task, "kart_label") else str(task)
    return commit_marker.read_consistently(lambda: _digests(outputs, signer), f"the output digests of {label}")


def output_digests_if_complete(task: Any) -> dict[str, str] | None:
    """``output_digests(task)`` when ``task.complete()``, else None: for a cache keyed by a complete task's content.

    One read of the task's manifest instead of two when signing is off: ``complete()`` reads it for its
    staleness check (``kart_core.lineage``), here inside a ``lineage.walk_scope`` that keeps it parsed, and its
    digests are taken from that read when it names every output and is not pending (``complete()`` waited
    for any commit in progress before reading it, as ``output_digests`` waits). Otherwise (signing on: the
    manifest must be verified; outputs without a record; another manifest) ``output_digests`` reads again.

    Args:
        task: a kart task (its ``complete()`` and ``kart_outputs()``).

    Returns:
        As ``output_digests``; None when the task is not complete.

    Raises:
        As ``task.complete()`` and ``output_digests``.
    """
    found = _if_complete(task, run=False)
    return None if found is None else found.digests


class CompleteOutputs(NamedTuple):
    """What ``outputs_if_complete`` names of a complete task.

    Attributes:
        digests: as ``output_digests(task)``: output path -> content hash.
        run: the run record of the manifest those digests were read from (a ``kart_run_record_in_manifest``
            class's ``{"task_params": {...}, "task_log": {...}}``, ``kart_core.runlog``), read unverified with
            them when signing is off; None when none was read with them (the manifest holds none, signing is
            on, or the outputs are not all named by one manifest): then ``read_run_log`` reads it as before.
    """

    digests: dict[str, str]
    run: dict[str, Any] | None


def outputs_if_complete(task: Any) -> CompleteOutputs | None:
    """``output_digests_if_complete(task)`` with the run record of the same read of the task's manifest.

    For a caller that needs both (KartRunner's check of a cached node with persistent outputs reads the
    output states its run recorded): one read of the manifest instead of two, the whole manifest parsed
    (``Manifest.from_bytes(..., run=True)``) where ``output_digests_if_complete`` parses the part before
    its run record. The run record is trusted as ``read_run_log`` trusts it with signing off (the JSON
    read unverified); with signing on ``run`` is None and ``read_run_log`` reads it verified.

    Args:
        task: a kart task (its ``complete()`` and ``kart_outputs()``).

    Returns:
        None when the task is not complete; else its digests (as ``output_digests``) and run record.

    Raises:
        As ``output_digests_if_complete``.
    """
    return _if_complete(task, run=True)


def _if_complete(task: Any, run: bool) -> CompleteOutputs | None:
    """``outputs_if_complete``; ``run``: read the run record too (else ``CompleteOutputs.run`` is None)."""
    with lineage.walk_scope() as scope:  # nothing is committed inside: complete() only reads
        scope.read_runs = run
        if not task.complete():
            return None
    if target_config.current().signer is None:
        found = complete_from_scope(leaves(task.kart_outputs()), scope)
        if found is not None:
            return found
    return CompleteOutputs(output_digests(task), None)


class SiblingOutputs(NamedTuple):
    """What ``TaskOnKart.kart_sibling_outputs_if_complete`` could tell of a sibling task without making it.

    Attributes:
        decided: False when only the sibling task itself can tell (ask ``outputs_if_complete(sibling)``).
        found: when decided, what ``outputs_if_complete(sibling)`` returns: None (not complete) or its outputs.
    """

    decided: bool
    found: CompleteOutputs | None


def complete_from_scope(outputs: list[Any], scope: lineage.Lineage) -> CompleteOutputs | None:
    """The digests and run record of complete ``outputs`` (flattened, in order) from the one manifest that a
    ``complete()`` check just read in ``scope`` (``lineage.walk_scope``) when it names every output and is settled;
    None otherwise (read them with ``output_digests``). With signing off only: that read is unverified."""
    records = _records_in_one_manifest(outputs)
    if records is None:
        return None
    manifest = scope.manifests.get(records[0].manifest)
    named = _named(outputs, records, manifest)
    if named is None or manifest is None:
        return None
    return CompleteOutputs(named, manifest.run)


def committed_digests(task: Any) -> dict[str, str] | None:
    """What ``output_digests(task)`` named right after this process's run of ``task`` committed, without a read.

    For an adapter that keys later work by what a task it just ran returned (kart_kedro's KartRunner
    keys a node by its upstream nodes' outputs): the hashes the commit itself recorded in the manifest,
    kept on the task object by ``run_one`` (``TaskMemo.committed``).

    Args:
        task: a kart task object that ``run_one`` ran in this process.

    Returns:
        output path -> ``{algorithm}:{hex}`` for each output (flattened ``kart_outputs()``, in order), when
        the latest run of this task object in this process committed every one of them itself; None
        otherwise (no run here yet, the run failed, or another process's commit was kept): read them
        with ``output_digests``. A later commit by another process is not seen: ask right after the run.
    """
    committed = memo_of(task).committed
    if committed is None:
        return None
    found = {}
    for target in leaves(task.kart_outputs()):
        path = _path_of(target)
        digest = committed.get(path)
        if digest is None:  # an output this run did not write (kept from an earlier commit)
            return None
        found[path] = digest
    return found


def _from_one_manifest(outputs: list[Any], signer: Signer | None) -> dict[str, str] | None:
    """The digests when one manifest names every output and is read settled; else None (the general path).

    One settled read of one manifest is one commit's names (a manifest is replaced whole), so the
    second read ``read_consistently`` makes to see whether a commit moved while output bytes were
    read is not needed: no output is read. Half the cost of a cached Kedro node's upstream check.
    """
    records = _records_in_one_manifest(outputs)
    if records is None:
        return None
    first = records[0]
    try:
        manifest = read_manifest(storage_for(first.manifest), first.manifest, first.manifest_name, signer, run=False)
    except DamagedOutputError:
        return None
    return _named(outputs, records, manifest)


def _records_in_one_manifest(outputs: list[Any]) -> list[OutputRecord] | None:
    """Each output's integrity record when every output has one and all are in one manifest; else None."""
    records = [record for target in outputs if isinstance(record := getattr(target, "record", None), OutputRecord)]
    if not records or len(records) != len(outputs):
        return None
    if any(record.manifest != records[0].manifest for record in records[1:]):
        return None
    return records


def _named(outputs: list[Any], records: list[OutputRecord], manifest: Manifest | None) -> dict[str, str] | None:
    """``{output path: digest}`` from ``manifest`` (settled, naming every record); else None."""
    if manifest is None or manifest.pending:
        return None
    found = {}
    for target, record in zip(outputs, records, strict=True):
        entry = manifest.outputs.get(record.key)
        if entry is None:
            return None
        found[_path_of(target)] = entry.digest
    return found


def _path_of(target: Any) -> str:
    """Where ``target`` lives, without asking kart's target for it: a kart target keeps it as ``_path``, and its
    ``path()`` marks a direct write when the task's run asks (what naming digests must not do) and costs a
    look for the task's run on every call (a third of naming a cached KartRunner node's one output); a luigi
    target's ``path`` is an attribute (or a method)."""
    path = getattr(target, "_path", None)
    if type(path) is str:
        return path
    return target_path(target)


def _digests(outputs: list[Any], signer: Signer | None) -> dict[str, str]:
    """One attempt of ``output_digests`` (inside ``read_consistently``)."""
    manifests: dict[str, Manifest | None] = {}
    found: dict[str, str] = {}
    for target in outputs:
        path = _path_of(target)
        record = getattr(target, "record", None)
        entry = None
        if isinstance(record, OutputRecord):
            if record.manifest not in manifests:
                manifests[record.manifest] = _read(record, signer)
            manifest = manifests[record.manifest]
            entry = manifest.outputs.get(record.key) if manifest is not None else None
        found[path] = entry.digest if entry is not None else _read_digest(path)
    return found


def _read(record: OutputRecord, signer: Signer | None) -> Manifest | None:
    """``record``'s manifest, once no commit of it is in progress (``commit_marker.note_manifest``).

    Raises:
        IntegrityError, DamagedOutputError: as ``output_digests``.
    """
    storage = storage_for(record.manifest)
    for _ in range(_COMMIT_WAITS):
        try:
            manifest = read_manifest(storage, record.manifest, record.manifest_name, signer, run=False)
        except DamagedOutputError:  # unreadable: hashed from the bytes, and the load names the damage
            return None
        # False: it was pending and that commit has finished (waited for): read what it wrote.
        if manifest is None or commit_marker.note_manifest(record, manifest):
            return manifest
    return manifest  # still pending after as many commits: read_consistently reads it all again, then gives up


_COMMIT_WAITS = 5  # commits waited for per manifest before the attempt ends (as a load: kart_core.target)


def _read_digest(path: str) -> str:
    storage = storage_for(path)
    if not storage.exists(path):
        return ""
    with storage.open_read(path) as file:
        return "read:" + digest_stream(file)[1]
