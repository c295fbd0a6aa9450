"""Stale outputs: a task built from an upstream commit that has since been replaced with other content.

A run's loads of other tasks' committed outputs are recorded in the manifest its commit writes
(``Manifest.inputs``, ``kart_core.transaction``): per loaded output, the upstream's manifest, the
output's key, the entry's commit id and content hash. So is the run's *input floor*: each committed
output of the task's direct requirements (its ``requires()``, flattened) as it was when ``run()`` began,
whether or not the run loaded it through kart (``Input.required`` where it did not: a file read by path,
a subprocess, a memoized loader another run filled; attackers at21 L5, at20 K15). A recorded input is
*replaced* when the upstream's manifest now holds another commit for that key with another content hash
(a rerun, a repair or a direct dump wrote something else); the downstream task is then *stale*: its
outputs were computed from content that is no longer there. A task reruns when what it loaded or requires
changed; a requirement committed again with equal content changes nothing.

A manifest an older kart wrote (``Manifest.requirements`` False: before 2026-12-03) records loads at most
(nothing at all before lineage, 2026-11-30): a committed output of a requirement it does not record makes its
task stale once (``unrecorded_requirements``; attacker at21 L1), and its run then records its floor. Only the
checked task's own manifest is judged so (its requirements are at hand); an older manifest further up a
lineage counts by what it records.

A load of an output no integrity record vouches for (a raw file dropped in by hand under a task without
``run()``, an output gokart wrote) is recorded too, without a commit, with the content hash of the file
and its stamp (``Input.stamp``): it is replaced when another file with other content is there
(``_replaced_file``: one stat while the stamp holds, attacker N12). So is a file outside every workspace that
a requirement outputs (a bare target, a luigi ``LocalTarget`` or ``S3Target``), as ``run()`` began: with no
manifest (``Input.manifest`` ""), by its full path or URL (``_replaced_outside``; attacker at25 F7, F8). A manifest shared by same-named
classes of two modules holds each one's inputs (``Input.reader``): a task is judged by its own (attacker N1).

Only what can be read is claimed: an upstream manifest that is pending while its committer works, an entry
that went (a recorded output's), a file that went, a manifest without ``inputs`` written by this kart (a task that
requires and loads nothing, a direct dump) and a recommit with equal content are never stale. Loads kart
does not see of a task that is not required (a file opened by its path, a load in a thread the run
started or in a subprocess) are not recorded. An upstream manifest left pending by a commit whose committer is
gone, or there but unreadable (``interrupted``), is not an end of the lineage: its readers are stale (attacker
at21 L7), so a build runs it again before it judges them.

An input from another workspace is recorded by its manifest's full path (or URL), which ends in the
manifest's workspace-relative name. A check that has the upstream tasks at hand (``complete()``: the
task's ``requires()``; a walk, ``kart why``/``tree``: the graph under the task) reads it where the
upstream task's workspace is now (``current_manifests``, ``resolve``), so a workspace moved or copied
since still propagates its reruns; the recorded path is read when no current upstream has that name.

``stale_inputs`` is the direct check (one small JSON read per upstream manifest); ``Lineage`` adds
the transitive one (a task built from a stale upstream is stale too), reading each manifest of the
lineage once. A build's walk opens a ``walk_scope``: while it is open, ``stale_outputs`` (what
``complete()`` calls) and ``stale_verdict`` share one ``Lineage``, so each manifest is read once per
walk, whichever task's check reaches it first. Manifests are read without their signature checked:
a claim of staleness leads to a rebuild, never to trusting an output; and without their run record
(``Manifest.from_bytes(..., run=False)``: ``run`` is None in the manifests a ``Lineage`` keeps), unless
``Lineage.read_runs`` asks for it for the checked tasks' own manifests (``output_digests.outputs_if_complete``).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from kart_core.commit_marker import foreign_left, host_identity, marker_beside, read_marker, writer_alive
from kart_core.damage import (
    file_size,
    local_change_note,
    maybe_rewritten,
    rewritten_digest,
    unrecorded_content,
)
from kart_core.manifest import Entry, Input, Manifest, OutputRecord, decoded, read_if_inputs, read_unverified
from kart_core.signing import HEADER_SIZE, MAGIC
from kart_core.storage import storage_for
from kart_core.structure import flatten
from kart_core.workspace import LOG_DIRECTORY, MANIFEST, join_url, log_workspace

__all__ = [
    "Lineage",
    "LineageMemo",
    "StaleInput",
    "STALE_FIX",
    "Verdict",
    "describe",
    "current_manifests",
    "interrupted",
    "legacy_reference",
    "resolve",
    "stale_inputs",
    "stale_outputs",
    "stale_verdict",
    "unrecorded_requirements",
    "stale_upstreams",
    "walk_scope",
]


@dataclasses.dataclass(frozen=True)
class StaleInput:
    """A recorded input whose upstream entry was replaced with other content.

    Attributes:
        input: what the run recorded (the upstream's label, manifest, key, commit and content hash).
        manifest: the upstream manifest's full path (local path or URL).
        now: the commit id the upstream's entry holds now.
    """

    input: Input
    manifest: str
    now: str | None
    rewritten: str = ""  # the output was rewritten outside kart after its commit (kart_core.damage.local_change_note)
    # For an input the run built itself (``Input.built``) whose upstream is stale further up: why it is (its message).
    behind: str = ""
    # The task's manifest was written by a kart that did not record its requirements (``Manifest.requirements``
    # False) and names no input for this committed output of a requirement: ``input`` stands for that output
    # (``commit`` None), ``now`` is the commit its upstream holds (``unrecorded_requirements``).
    unrecorded: bool = False
    # The upstream's manifest is there but cannot be read (damaged): what it holds now cannot be told (``interrupted``).
    unreadable: bool = False
    # The task's own manifest is missing (removed to keep a hand correction, a lost object, gokart wrote the output)
    # and ``input``'s committed output was written after the task's output (``unrecorded_requirements``).
    unvouched: bool = False

    def describe(self, label: str) -> str:
        """``Down[..] was built from Up[..]'s commit 1a2b3c4d; Up[..] was committed again since (...)``; for an
        input its run did not load (``Input.required``): ``Down[..] requires Up[..] and was built while it held
        commit 1a2b3c4d (output ...); Up[..], which it requires, was committed again since (...)``."""
        upstream = self.input.task or self.manifest
        if self.unvouched:
            unknown = (
                f"{label}'s outputs have no integrity record (its manifest was removed, or gokart or a person wrote "
                "them), so what they were built from cannot be told"
            )
            if self.behind:
                return f"{unknown}; {upstream}, which it requires, is stale itself ({self.behind})"
            return (
                f"{unknown}; {upstream}'s output {self.input.key}, which it requires (commit {_short(self.now)}), was "
                "written after them"
            )
        if self.behind:
            return (
                f"{label}'s run() built {upstream} (a build() nested in it) and loaded its commit "
                f"{_short(self.input.commit)} (output {self.input.key}); {self.behind}; only {label}'s run builds it "
                f"again"
            )
        if self.unrecorded:
            return (
                f"{label} was built by a kart that did not record what a task requires (before 2026-12-03), and its "
                f"record does not name {upstream}'s output {self.input.key} (now commit {_short(self.now)}): "
                f"whether {upstream}, which it requires, changed since {label} ran cannot be told, so it runs once "
                "to record it"
            )
        if self.unreadable:
            return (
                f"{label} was built from {upstream}'s commit {_short(self.input.commit)} (output {self.input.key}); "
                f"{upstream}'s integrity record ({self.manifest}) cannot be read now (damaged: a cut write, a disk "
                "error), so what it holds cannot be told"
            )
        if not self.input.manifest:
            return (
                f"{label} requires {upstream}, whose output is the file {self.input.key!r}, which no integrity record "
                f"vouches for (outside the workspace, or of a task that keeps no record: kart recorded its content as "
                f"{label}'s run began); {self.rewritten} (a new data drop, or a rerun outside kart)"
            )
        if self.input.stamp is not None and self.now is None:
            return (
                f"{label} was built from {upstream}'s output {self.input.key}, which no integrity record vouches for "
                f"(a file put there by hand, or written by gokart); {self.rewritten} (a new data drop, or a rerun "
                "outside kart)"
            )
        required = self.input.required
        if required and not self.input.digest and not self.rewritten:
            return (
                f"{label} requires {upstream} and was built while its commit {_short(self.input.commit)} (output "
                f"{self.input.key}) was still in progress; {upstream}, which it requires, holds commit "
                f"{_short(self.now)} since, which {label} may not have read"
            )
        built_from = (
            f"{label} requires {upstream} and was built while it held commit {_short(self.input.commit)} (output "
            f"{self.input.key}, which its run did not load through kart)"
            if required
            else f"{label} was built from {upstream}'s commit {_short(self.input.commit)} (output {self.input.key})"
        )
        if self.rewritten:
            return (
                f"{built_from}; that output was rewritten outside kart since ({self.rewritten}, other content: "
                "another writer such as gokart rerunning the task, or an edit)"
            )
        which = ", which it requires," if required else ""
        return f"{built_from}; {upstream}{which} was committed again since (commit {_short(self.now)}, other content)"

    def reason(self) -> str:
        """Why the task that recorded this input runs again, as a clause without its name (for a scheduler's summary
        of a cached unit that reruns, e.g. kart_kedro's node runs): ``Up[64d0687e], which it built, was committed
        again with other content``; ``... which it loaded, ...``; ``... which it requires, ...`` (``Input.required``:
        not loaded through kart); ``the output of Up[..] it loaded was rewritten outside kart``; ``Up[..], which it
        built, is stale further up``; ``kart before 2026-12-03 did not record whether Up[..], which it requires,
        changed since it ran``."""
        upstream = self.input.task or self.manifest
        how = "requires" if self.input.required else "built" if self.input.built else "loaded"
        if self.unvouched and self.behind:
            return f"{upstream}, which it requires, is stale itself and its outputs have no integrity record"
        if self.unvouched:
            return (
                f"{upstream}, which it requires, was written after its outputs, which no integrity record vouches for"
            )
        if self.behind:
            return f"{upstream}, which it built, is stale further up"
        if self.unrecorded:
            return f"kart before 2026-12-03 did not record whether {upstream}, which it requires, changed since it ran"
        if self.unreadable:
            return f"the integrity record of {upstream}, which it {how}, cannot be read"
        if not self.input.manifest:
            return f"the file {self.input.key} of {upstream}, which it requires, changed (no integrity record vouches for it)"
        if self.input.stamp is not None and self.now is None:
            return f"the file {self.input.key} it loaded changed (no integrity record vouches for it)"
        if self.rewritten:
            return f"the output of {upstream} it {how} was rewritten outside kart"
        return f"{upstream}, which it {how}, was committed again with other content"


def resolve(reference: str, workspace: str, current: Mapping[str, str] | None = None) -> str:
    """An ``Input.manifest`` as a full path: a workspace-relative one (``log/manifest/{file}``) joined to
    ``workspace``; a full path or URL (an input from another workspace) as recorded, unless ``current``
    (the manifests of the upstream tasks the checker has at hand, ``current_manifests``) holds its
    workspace-relative name (``log/manifest/{Class}_{id}.json``): then that task's manifest where its
    workspace is now. The upstream's workspace may have moved or been copied since the record was
    written (``mv ws1 ws1b``, a new checkout): the old path then holds no manifest, or the old copy's.

    Another relative path is a manifest in another workspace given by a relative path: kart before
    session 9 recorded it as the writer spelled it, relative to the writer's working directory, which the
    manifest does not say. It is read from a base the manifest's own place gives, never from the checker's
    working directory (a check from another folder, an Airflow worker, ``kart why`` elsewhere would read
    another file or none): ``legacy_reference``.
    """
    if "://" in reference or os.path.isabs(reference):
        if current:
            return current.get(_manifest_key(reference), reference)
        return reference
    if not _workspace_relative(reference):
        return legacy_reference(reference, workspace)
    return _joined(workspace, reference)


def legacy_reference(reference: str, workspace: str) -> str:
    """The full path of ``reference``, a manifest path relative to the (unknown) working directory of
    the writer of a manifest in ``workspace``: the first that exists of ``reference`` joined to the
    workspace's folder and then to each of its parents, nearest first (a writer's workspace given
    relative to its working directory, as gokart's default ``./resources/``, lies inside it); when none
    exists, joined to the workspace's parent. The file name carries the upstream's class and unique id,
    so a file found this way is that task's manifest. A workspace on object storage: joined to its
    parent (a local path from another machine cannot be told; a missing manifest is never stale).
    """
    local = workspace[len("file://") :] if workspace.startswith("file://") else workspace
    if "://" in local:
        return join_url(local.rstrip("/").rpartition("/")[0] or local, reference)
    folder = os.path.abspath(local)
    base = folder
    while True:
        candidate = os.path.normpath(os.path.join(base, reference))
        if os.path.isfile(candidate):
            return candidate
        parent = os.path.dirname(base)
        if parent == base:
            return os.path.normpath(os.path.join(os.path.dirname(folder), reference))
        base = parent


def _manifest_key(path: str) -> str:
    """The workspace-relative name (``log/manifest/{file}``) of the manifest at full path ``path``
    (a name no ``current_manifests`` key has when ``path`` is not in a manifest folder)."""
    head, _, name = path.replace(os.sep, "/").rpartition("/")
    if not head.endswith(f"/{LOG_DIRECTORY}/{MANIFEST.name}"):
        return ""
    return f"{LOG_DIRECTORY}/{MANIFEST.name}/{name}"


def current_manifests(
    tasks: Iterable[object], found: dict[str, str] | None = None, *, transitive: bool = True
) -> dict[str, str]:
    """The manifests of ``tasks`` (kart tasks, others skipped) and (``transitive``) of every kart task they
    require, as they are now: workspace-relative name (``log/manifest/{Class}_{id}.json``) -> full
    path, in each task's current ``workspace_directory``. ``found`` is filled in (shared across calls);
    a task whose name is already there is not walked again. No read: the paths come from the tasks'
    output records. For ``resolve``: a recorded input from another workspace is read where its task's
    workspace is now. The unique id in the name does not hold ``workspace_directory`` (not significant,
    as in gokart), so a task whose workspace moved keeps its name.
    """
    found = {} if found is None else found
    stack = list(tasks)
    while stack:
        task = stack.pop()
        outputs = getattr(task, "kart_outputs", None)
        if outputs is None:
            continue
        new = False
        for target in flatten(outputs()):
            record = getattr(target, "record", None)
            if isinstance(record, OutputRecord) and record.manifest_name not in found:
                found[record.manifest_name] = record.manifest
                new = True
        if new and transitive:
            stack.extend(task.kart_requires())  # type: ignore[attr-defined]
    return found


def _cross_workspace(manifest: Manifest) -> bool:
    """Whether ``manifest`` records an input from another workspace (a full path or URL)."""
    return any(item.manifest and not _workspace_relative(item.manifest) for item in manifest.inputs)


def _workspace_relative(reference: str) -> bool:
    """Whether ``reference`` is a manifest's workspace-relative name (``log/manifest/{file}``)."""
    if os.sep != "/":
        reference = reference.replace(os.sep, "/")
    # A prefix test, not a split: asked per recorded input of each manifest a lineage walk reads.
    return (
        reference.startswith(_RELATIVE) and len(reference) > len(_RELATIVE) and "/" not in reference[len(_RELATIVE) :]
    )


_RELATIVE = f"{LOG_DIRECTORY}/{MANIFEST.name}/"


def _joined(workspace: str, relative: str) -> str:
    """``join_url(workspace, relative)``: a local workspace's and a relative path's without ``os.path.join``'s work."""
    if "://" in workspace or relative.startswith(os.sep):
        return join_url(workspace, relative)
    if not workspace or workspace.endswith("/"):
        return workspace + relative
    return f"{workspace}/{relative}"


def canonical(path: str) -> str:
    """One spelling of a manifest's full path, to compare paths spelled otherwise: a local path (or a
    ``file://`` URL) absolute with symlinks resolved, no ``./``, ``..`` or trailing slash; another URL as given."""
    if path.startswith("file://"):
        path = path[len("file://") :]
    elif "://" in path:
        return path
    return os.path.realpath(path)


def stale_inputs(
    manifest: Manifest,
    workspace: str,
    found: dict[str, Manifest | None] | None = None,
    current: Mapping[str, str] | None = None,
    reader: str | None = None,
    read: Callable[[str], Manifest | None] | None = None,
) -> list[StaleInput]:
    """The inputs of ``manifest`` (a task's manifest in ``workspace``) whose upstream entry was replaced.

    Args:
        manifest: the downstream task's manifest.
        workspace: its workspace directory (what relative ``Input.manifest`` paths are joined to).
        found: upstream manifests already read, by full path (filled in; shared across calls).
        current: the upstream tasks' manifests as they are now (``current_manifests``): an input from
            another workspace is read there (``resolve``).
        reader: the checked task's ``module.Class``: only the inputs its runs recorded count (``Input.read_by``: a
            manifest shared by same-named classes of two modules holds both one's); None: every input.
        read: reads an upstream manifest not in ``found`` (``Lineage.manifest``: a walk's, which takes an unchanged
            one from its ``LineageMemo``); None: ``read_unverified``.

    Returns:
        One ``StaleInput`` per replaced input, in recorded order; empty when nothing is known to be
        replaced (see the module docstring for what is never claimed).
    """
    found = {} if found is None else found
    stale = []
    for item in manifest.inputs:
        if not item.read_by(reader):
            continue
        if not item.manifest:  # a file outside every workspace, by its full path or URL
            replaced = _replaced_outside(item)
            if replaced is not None:
                stale.append(replaced)
            continue
        path = resolve(item.manifest, workspace, current)
        if path not in found:
            found[path] = read(path) if read is not None else read_unverified(storage_for(path), path, run=False)
        upstream = found[path]
        if _workspace_relative(item.manifest) and _kept(item, path, upstream, workspace):
            continue
        replaced = _replaced(item, path, upstream)
        if replaced is not None:
            stale.append(replaced)
    return stale


def _replaced(item: Input, path: str, upstream: Manifest | None, workspace: str | None = None) -> StaleInput | None:
    """``item`` as a ``StaleInput`` when ``upstream`` (its manifest, read at ``path``; ``workspace``: the
    upstream's, when the caller knows it) replaced the entry it recorded with other content, or the file
    of that entry was rewritten outside kart since (``_rewritten_since``), or no longer holds what a load
    that could not record its new version read (``_unrecorded_since``); None when it did not or
    nothing can be told (missing, pending, entry gone)."""
    if upstream is not None and upstream.pending:
        return None
    entry = upstream.outputs.get(item.key) if upstream is not None else None
    if upstream is None and item.commit is not None and interrupted(path, None):  # there, but cannot be read
        return StaleInput(item, path, None, unreadable=True)
    if item.required and not item.digest:  # its commit was in progress when the run began: any content counts
        return None if entry is None or entry.commit is None else StaleInput(item, path, entry.commit)
    if entry is None and (item.stamp is not None or item.digest):
        # No record of it now: its manifest deleted to keep a hand correction (faq.md), or gokart rewrote the file
        # and the record went with the damage advice. The file itself tells (attacker at16 G14).
        return _replaced_file(item, path, workspace)
    if upstream is None:
        return None
    if entry is not None and entry.commit == item.commit:
        if item.digest != entry.digest:
            return _unrecorded_since(item, path, entry, workspace)
        return _rewritten_since(item, path, entry, workspace)
    if entry is None or entry.digest == item.digest:
        return None
    return StaleInput(item, path, entry.commit)


def _kept(item: Input, path: str, upstream: Manifest | None, workspace: str | None) -> bool:
    """True when ``_replaced(item, path, upstream, workspace)`` is None by its most common way: the entry the input
    recorded is still there with its commit and content, and its file was not rewritten since (one stat while its
    stamp holds, ``maybe_rewritten``); False when ``_replaced`` must tell. A lineage walk asks it per link."""
    if upstream is None or upstream.pending or workspace is None or not item.digest:
        return False
    entry = upstream.outputs.get(item.key)
    if entry is None or entry.commit != item.commit or entry.digest != item.digest:
        return False
    return not maybe_rewritten(_joined(workspace, item.key), path, entry)


def _replaced_file(item: Input, path: str, workspace: str | None = None) -> StaleInput | None:
    """``item``, a load of an output no integrity record vouched for (``Input.stamp``; its upstream's manifest at
    ``path`` still has no entry for it), or of a committed output whose record is gone since (no manifest at
    ``path``, or no entry in it), as a ``StaleInput`` when the file there now holds other content: a new
    data drop, gokart rerunning the upstream, an edit, a hand correction kept by deleting the record (attacker N12,
    at16 G14). One stat while its stamp is the recorded one;
    else its content is hashed (once per stamp in this process, ``kart_core.damage.unrecorded_content``). None when
    it is unchanged or gone (a missing input is the upstream's to rebuild, not a staleness)."""
    workspace = workspace if workspace is not None else log_workspace(path, MANIFEST)
    if workspace is None:
        return None
    output = join_url(workspace, item.key)
    found = unrecorded_content(output, item.stamp)
    if found is None or not found[1] or found[1] == item.digest:
        return None
    if item.stamp is None:  # a committed output whose record is gone since
        return StaleInput(item, path, None, "its integrity record is gone and the file there holds other content")
    return StaleInput(item, path, None, "another file with other content is there since it was loaded")


def _replaced_outside(item: Input) -> StaleInput | None:
    """``item``, a file outside every workspace that a requirement outputs (``Input.manifest`` "", ``key`` its full
    path or URL: a bare target's, a ``luigi.LocalTarget``'s or ``S3Target``'s; attacker at25 F7, F8), as a
    ``StaleInput`` when another file with other content is there now (a new data drop). One stat while its stamp is
    the recorded one, else its content hashed (once per stamp in this process). None when it is unchanged, or gone (a
    missing input is its task's to provide)."""
    found = unrecorded_content(item.key, item.stamp)
    if found is None or not found[1] or found[1] == item.digest:
        return None
    return StaleInput(item, item.key, None, "another file with other content is there since that run began")


def _file_there(item: Input, path: str) -> bool:
    """Whether ``item`` is a load of an output without a record (``Input.stamp``) whose file is beside the upstream
    manifest's place ``path`` (its workspace is there: the file itself tells whether it changed)."""
    workspace = log_workspace(path, MANIFEST) if item.stamp is not None else None
    return workspace is not None and file_size(join_url(workspace, item.key)) is not None


def _rewritten_since(item: Input, path: str, entry: Entry, workspace: str | None = None) -> StaleInput | None:
    """``item`` as a ``StaleInput`` when the upstream output its record still names was rewritten outside
    kart after that commit with other content of the same size (local storage: two stats, and a hash
    only when the file is newer than its manifest; ``kart_core.damage.rewritten_digest``). The next load
    of that output records it as a new version (``kart_core.target``)."""
    workspace = workspace if workspace is not None else log_workspace(path, MANIFEST)
    if workspace is None:
        return None
    output = _joined(workspace, item.key)
    if not maybe_rewritten(output, path, entry):
        return None  # the common case, told by one stat (two for an entry without a stamp)
    digest = rewritten_digest(output, path, entry)
    if digest is None or digest == item.digest:
        return None
    return StaleInput(item, path, None, local_change_note(output, path, entry) or "modified after its commit")


def _unrecorded_since(item: Input, path: str, entry: Entry, workspace: str | None = None) -> StaleInput | None:
    """``item`` as a ``StaleInput`` unless the upstream output still holds what its load read: the record
    of a load of a same-size rewrite outside kart that the loader could not record as a new version (a
    workspace it cannot write, ``kart_core.target``), so ``item`` names the commit ``entry`` still holds
    with the content hash of the bytes loaded. Fresh while the file, newer than its manifest, hashes to
    that (a read of the file at each check, as long as no load with write access records the version);
    stale when it holds other content, its committed content again, or cannot be read."""
    workspace = workspace if workspace is not None else log_workspace(path, MANIFEST)
    if workspace is None:
        return None
    output = join_url(workspace, item.key)
    # None: not newer than its manifest, the committed content, another size or unreadable; none is what loaded.
    current = rewritten_digest(output, path, entry) if maybe_rewritten(output, path, entry) else None
    if current == item.digest:
        return None
    note = local_change_note(output, path, entry) or "it no longer holds what was loaded"
    return StaleInput(item, path, None, f"{note}; the content loaded was never recorded as a version")


def stale_outputs(
    targets: Iterable[object],
    upstreams: Callable[[], Iterable[object]] | None = None,
    unvouched: list[OutputRecord] | None = None,
) -> list[StaleInput]:
    """The direct check for a task whose flattened ``output()`` is ``targets``: its manifests' replaced inputs.

    ``upstreams`` gives the task's required tasks (its ``requires()``, flattened): asked only when a
    manifest records an input from another workspace, which is then read where its task's workspace is
    now (``current_manifests``, ``resolve``), not only where it was when the record was written.

    One read per manifest of the task (one; outside a ``walk_scope`` parsed only when it may record
    inputs, ``manifest.read_if_inputs``) and one JSON read per upstream manifest it recorded, none for
    a manifest already read in the open ``walk_scope``; nothing for outputs without an integrity record.

    ``unvouched`` (when given) gets the record of each output whose manifest was not found (in a
    ``walk_scope``: not found or unreadable), so the caller can ask the run logs why
    (``damage.unvouched_reason``) at no cost when every manifest is there.
    """
    seen: set[str] = set()
    stale: list[StaleInput] = []
    scoped = _scope.get()
    found: dict[str, Manifest | None] = scoped.manifests if scoped is not None else {}
    for target in targets:
        record = getattr(target, "record", None)
        if not isinstance(record, OutputRecord):
            continue
        path = record.manifest  # joined on each read (OutputRecord.manifest): once per output here
        if path in seen:
            continue
        seen.add(path)
        if path in found:
            manifest = found[path]
        else:
            # A walk keeps the manifest, parsed whole, for the lineage checks that follow; alone (run_one, a
            # KartRunner node) one that records no inputs is not parsed, and None then means just that.
            missing: list[str] | None = [] if unvouched is not None else None
            if scoped is not None and not scoped.read_runs:
                manifest = scoped.manifest(path)
            elif scoped is not None:
                manifest = found[path] = read_unverified(storage_for(path), path, run=True)
            else:
                manifest = found[path] = read_if_inputs(storage_for(path), path, missing)
            if unvouched is not None and (missing or (manifest is None and scoped is not None)):
                unvouched.append(record)
        if manifest is not None and manifest.inputs and not manifest.pending:
            current: Mapping[str, str] | None = None
            if scoped is not None:  # judged once for the walk: its lineage check takes the same judgement
                direct = scoped.judged(manifest, path, record.workspace, record.owner or None, upstreams)
            else:
                if upstreams is not None and _cross_workspace(manifest):  # same-workspace inputs: requires() not asked
                    current = current_manifests(upstreams(), transitive=False)  # the direct check reads direct inputs
                direct = stale_inputs(manifest, record.workspace, found, current, record.owner or None)
            stale.extend(direct)
            if any(item.built for item in manifest.inputs):
                stale.extend(
                    _built_behind(manifest, record.workspace, scoped, current, record.owner or None, direct, upstreams)
                )
            if scoped is not None:  # a walk's check after its round asks what any task it judged had loaded
                scoped.note_inputs(manifest, record.workspace)
        if upstreams is not None and (manifest is None or not manifest.requirements):
            stale.extend(unrecorded_requirements(path, manifest, record, upstreams, found))
    return stale


def unrecorded_requirements(
    path: str,
    manifest: Manifest | None,
    record: OutputRecord,
    upstreams: Callable[[], Iterable[object]],
    found: dict[str, Manifest | None],
) -> list[StaleInput]:
    """For a task's manifest that an older kart wrote (``Manifest.requirements`` False): each committed output of a
    direct requirement it records no input for, as a ``StaleInput`` (``unrecorded``); [] otherwise.

    Since 2026-12-03 a run records the outputs of its task's requirements as inputs whether or not it loaded them
    (``transaction.Transaction.note_required``), and says so (``requirements``). A manifest written before says
    nothing about what its run read besides its loads through kart (none at all before lineage, 2026-11-30): its
    requirement may have been committed again with other content since, unseen (attacker at21 L1). Such a task is
    stale once; its run then records its requirements. A requirement with no committed entry now (never committed by
    kart, a commit in progress) makes nothing stale, nor does a manifest that is pending or cannot be read.

    Args:
        path: the task's manifest (full path).
        manifest: it, parsed; None when not parsed (``manifest.read_if_inputs`` found no inputs) or missing: read
            here when the task requires anything (the run record not parsed).
        record: the record of one of the task's outputs in that manifest (its workspace and owner).
        upstreams: the task's requirements (``kart_requires``), asked first: nothing more is read without any.
        found: upstream manifests already read, by full path (filled in; shared with the caller's checks).
    """
    required = upstreams()
    if not required:
        return []
    if manifest is None:
        manifest = read_unverified(storage_for(path), path, run=False)
        if manifest is None:
            return _written_after(path, record, required, found)
    if manifest.requirements or manifest.pending:
        return []
    owner = record.owner or None
    covered = {(_name_of(item.manifest), item.key) for item in manifest.inputs if item.read_by(owner)}
    stale = []
    for _, source, where, entry in _committed_requirements(required, path, found):
        if (source.manifest_name, source.key) in covered:
            continue
        reference = source.manifest_name if source.workspace == record.workspace else where
        item = Input(source.task, reference, source.key, None, "", record.owner, required=True)
        stale.append(StaleInput(item, where, entry.commit, unrecorded=True))
    return stale


def _committed_requirements(
    required: Iterable[object], path: str, found: dict[str, Manifest | None]
) -> Iterator[tuple[object, OutputRecord, str, Entry]]:
    """Each output of the tasks ``required`` that kart committed (a settled entry in its manifest, read into
    ``found`` once), with its task and its manifest's full path; outputs recorded in ``path`` itself are left out."""
    for upstream in required:
        outputs = getattr(upstream, "kart_outputs", None)
        if outputs is None:
            continue  # a plain luigi task: no integrity record
        for target in flatten(outputs()):
            source = getattr(target, "record", None)
            if not isinstance(source, OutputRecord):
                continue
            where = source.manifest
            if where == path:
                continue
            if where not in found:
                found[where] = read_unverified(storage_for(where), where, run=False)
            held = found[where]
            entry = held.outputs.get(source.key) if held is not None and not held.pending else None
            if entry is not None and entry.commit is not None:
                yield upstream, source, where, entry


def _tasks_by_manifest(tasks: Iterable[object]) -> dict[str, object]:
    """``tasks`` and every kart task they require (transitively), by the full path of each one's manifest."""
    found: dict[str, object] = {}
    seen: set[int] = set()
    stack = list(tasks)
    while stack:
        task = stack.pop()
        outputs = getattr(task, "kart_outputs", None)
        if outputs is None or id(task) in seen:
            continue
        seen.add(id(task))
        for target in flatten(outputs()):
            record = getattr(target, "record", None)
            if isinstance(record, OutputRecord):
                found.setdefault(record.manifest, task)
        stack.extend(task.kart_requires())  # type: ignore[attr-defined]
    return found


def _written_after(
    path: str, record: OutputRecord, required: Iterable[object], found: dict[str, Manifest | None]
) -> list[StaleInput]:
    """For a task whose manifest ``path`` is missing while its output (``record``) is there: each committed output of
    a requirement written after that output, as a ``StaleInput`` (``unvouched``); [] otherwise.

    Without its manifest nothing says what the task was built from (its manifest removed to keep a hand correction,
    as faq.md advises; a lost object; gokart wrote it), so a change further up was hidden behind it for good (attacker
    at22 M3). The files' modification times tell what make tells: an input written after the output is newer than
    what built it. A requirement without a kart commit (gokart's, a file put by hand) is not judged; neither is a
    manifest that is there but cannot be read (``interrupted`` says so). One stat per output compared.
    """
    storage = storage_for(path)
    output = _joined(record.workspace, record.key)
    try:
        if storage.exists(path):
            return []
        built = storage_for(output).modification_time(output).timestamp()
    except (OSError, ValueError):
        return []
    stale = []
    judged: dict[int, str] = {}  # per requirement task: why it is stale itself ("" when it is not)
    for upstream, source, where, entry in _committed_requirements(required, path, found):
        written_path = _joined(source.workspace, source.key)
        try:
            written = storage_for(written_path).modification_time(written_path).timestamp()
        except (OSError, ValueError):
            continue
        behind = ""
        if written <= built:
            # Older than the output, but maybe stale itself further up: what it holds is not current either.
            if id(upstream) not in judged:
                judged[id(upstream)] = _stale_itself(upstream)
            behind = judged[id(upstream)]
            if not behind:
                continue
        reference = source.manifest_name if source.workspace == record.workspace else where
        item = Input(source.task, reference, source.key, None, "", record.owner, required=True)
        stale.append(StaleInput(item, where, entry.commit, behind=behind, unvouched=True))
    return stale


def _stale_itself(task: Any) -> str:
    """Why the kart ``task`` is stale by its own lineage check (``stale_verdict`` in a ``Lineage`` of its own: this
    may run inside another check's walk), as a clause; "" when it is current."""
    outputs = getattr(task, "kart_outputs", None)
    if outputs is None:
        return ""
    verdict = stale_verdict(flatten(outputs()), Lineage(), task.kart_requires)
    if verdict is None:
        return ""
    if verdict.direct:
        return verdict.direct[0].reason()
    return f"it is built on {', '.join(verdict.behind)}, stale itself"


def _name_of(reference: str) -> str:
    """The workspace-relative name (``log/manifest/{file}``) of an ``Input.manifest`` (already one, or a full path)."""
    return reference if _workspace_relative(reference) else _manifest_key(reference)


def _built_behind(
    manifest: Manifest,
    workspace: str,
    checked: Lineage | None,
    current: Mapping[str, str] | None,
    reader: str | None,
    direct: list[StaleInput],
    upstreams: Callable[[], Iterable[object]] | None = None,
) -> list[StaleInput]:
    """The inputs of ``manifest`` (a task's in ``workspace``) that its run built (``Input.built``: a ``build()`` nested
    in its ``run()``) and whose upstream is stale further up (``Lineage.check``), but for those ``direct`` (replaced)
    names already and those of a task it requires (``upstreams``: a build of the task, or the scheduler's graph,
    brings such an upstream up to date first, then the task runs again if what it loaded changed): each as a
    ``StaleInput`` saying why.

    Such an upstream is not among what the task requires, so no build of the task reaches it: the task itself is
    stale, and its run's nested build brings the upstream up to date (/tmp/nested_stale.py: after Inner reran, Top,
    whose run() builds Mid, was served its old value though Mid was stale). ``checked``: the open walk's
    ``Lineage`` (its reads shared), else a new one; the upstreams' lineage is read only for such inputs, and
    ``upstreams`` asked only when one is stale.
    """
    lineage = checked if checked is not None else Lineage()
    if current:
        lineage.current.update((name, path) for name, path in current.items() if name not in lineage.current)
    replaced = {(item.input.manifest, item.input.key) for item in direct}
    required: set[str] | None = None  # the workspace-relative names of the required tasks' manifests, once asked
    stale = []
    for item in manifest.inputs:
        if not item.built or not item.read_by(reader) or (item.manifest, item.key) in replaced:
            continue
        _, upstream, upstream_workspace, owner = lineage._located(item, workspace)
        if upstream_workspace is None:
            continue
        verdict = lineage.check(upstream, upstream_workspace, None, owner)
        if verdict.stale:
            if required is None:
                required = set(current_manifests(upstreams(), transitive=False)) if upstreams is not None else set()
            if _manifest_key(upstream) in required:
                continue
            label = item.task or upstream
            why = (
                "; ".join(found.describe(label) for found in verdict.direct)
                if verdict.direct
                else f"{label} was built from {', '.join(verdict.behind)}, stale itself"
            )
            stale.append(StaleInput(item, upstream, item.commit, behind=f"{why}: {label} is stale"))
    return stale


STALE_FIX = "A build runs it again (a stale task counts as incomplete); by hand: rerun=True, or `kart run <module.Class> --rerun`."


def describe(label: str, stale: list[StaleInput], fix: str = STALE_FIX) -> str:
    """The message for a stale task: what it was built from, what replaced it, and the fix (``fix``: what runs it
    again; ``TaskOnKart.kart_stale_fix`` for a task's own check)."""
    what = "; ".join(item.describe(label) for item in stale)
    return f"{what}: {label} is stale. {fix}"


@dataclasses.dataclass(frozen=True)
class Verdict:
    """Whether one manifest's task is stale.

    Attributes:
        direct: its own recorded inputs that were replaced.
        behind: labels of upstreams (by recorded input) that are stale themselves, so this task is
            built on stale content though its own inputs are unchanged.
        built: those of ``behind`` that the task's run built (``Input.built``: a nested ``build()``).
    """

    direct: list[StaleInput]
    behind: list[str]
    built: tuple[str, ...] = ()

    @property
    def stale(self) -> bool:
        """Whether the task is stale (directly or through an upstream)."""
        return bool(self.direct or self.behind)


_FRESH = Verdict([], [])
# An upstream whose commit was interrupted (``interrupted``): the tasks built on it are stale until it ran again.
_INTERRUPTED = Verdict([], ["its own commit, interrupted"])


def interrupted(path: str, manifest: Manifest | None) -> bool:
    """Whether the upstream manifest at ``path`` (``manifest``: as read, None when missing or unreadable) is what an
    interrupted commit left: marked pending while no live committer is at it (the commit marker beside it is gone,
    or names a process of this host that is dead: ``commit_marker.writer_alive``), or there but unreadable.

    Such a state lasts until the upstream runs again, which no build of its readers would do while the lineage walk
    stops there: a change further up stayed hidden behind it, and its readers were served stale (attacker at21 L7).
    A marker of another host (no process to ask) counts as left by a killed commit once the storage's own time of
    its last write is older than three leases (``commit_marker.foreign_left``; attacker at22 M5: a worker preempted mid-commit on a
    shared workspace hid every change above its task for good). A commit in progress (its committer alive, or
    another host's marker rewritten within that) and a manifest that is simply missing (a hand correction kept by
    deleting it) are not: nothing is claimed, as before. One stat for a missing manifest; one small read for a
    pending one (and a stat of another host's marker).
    """
    storage = storage_for(path)
    try:
        if manifest is None:
            return storage.exists(path)
        if not manifest.pending:
            return False
        marker_path = marker_beside(path)
        marker = read_marker(storage, marker_path)
        if marker is None or not writer_alive(marker):
            return True
        return marker.host not in ("", host_identity()) and foreign_left(storage, marker_path)
    except OSError:
        return False


class LineageMemo:
    """The manifests that lineage checks in this process read, each kept with the stat of its file taken before
    the read, so a later check (the next build over the same graph, ``kart tree`` after a build) takes a
    manifest whose file is unchanged from one ``stat`` instead of a read and a parse.

    A cached chain of 1,000 links is checked up its whole lineage at each build (a change anywhere up it makes
    the root stale, ``Lineage.check``): without it a second build in the process read and parsed every manifest
    again. It holds no verdict: each check judges every link anew, each recorded input against its upstream's
    manifest as the memo gives it and its output's file by one ``stat`` (``kart_core.damage.maybe_rewritten``).

    Owned by what the builds share: the roots' task objects (``TaskMemo.lineage``, kept by luigi's instance
    cache), so a build of the same root finds what the previous one read; never a module-level registry.

    A manifest is taken from the memo only while its file's ``(device, inode, size, modification time, status
    change time)`` are what they were: a rerun's commit renames a new file into place (another inode), a write in
    place moves both times, a copy or ``touch -d`` moves the status change time, which nothing sets back but the
    clock. The stat is taken on the open file before its bytes are read, so bytes newer than the stat only cost
    a read at the next check. A file changed within ``_SETTLE_NS`` of that stat is not kept: file times tick
    coarsely (a kernel tick), and a second write in the tick of the first would leave them as they were. Local
    files only (object storage: read each time); at most ``_MEMO_LIMIT`` manifests (past that it starts again), each
    of at most ``_MEMO_MAX_BYTES`` (a larger one is read each time).

    ``clock``: the time now, in ns since the epoch, as file times count it (``time.time_ns``; a test passes one ahead
    to keep what it just wrote).
    """

    __slots__ = ("_manifests", "_clock")

    def __init__(self, clock: Callable[[], int] = time.time_ns) -> None:
        # full path -> (stat key, the manifest parsed from the bytes read after that stat)
        self._manifests: dict[str, tuple[tuple[int, ...], Manifest]] = {}
        self._clock = clock

    def __len__(self) -> int:
        """How many manifests it keeps."""
        return len(self._manifests)

    def read(self, path: str) -> Manifest | None:
        """``read_unverified(storage, path, run=False)`` for the local manifest at ``path``: the kept one while its
        file's stat is unchanged, else read (and kept when settled); None when missing or unreadable."""
        known = self._manifests.get(path)
        if known is not None:
            try:
                found = os.stat(path)
            except OSError:
                return None
            if (found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns) == known[0]:
                return known[1]
        try:
            descriptor = os.open(path, _READ_FLAGS)
        except OSError:
            return None
        try:
            found = os.fstat(descriptor)
            wanted = found.st_size + 4096
            data = os.read(descriptor, wanted)
            if len(data) == wanted:  # grown since the stat: read to the end (a short read of a file is its end)
                chunks = [data]
                while chunk := os.read(descriptor, 65536):
                    chunks.append(chunk)
                data = b"".join(chunks)
        except OSError:
            return None
        finally:
            os.close(descriptor)
        try:
            # Parsed, not through from_bytes' cache of parses by bytes (``manifest._PARSED``): the memo keeps the parse
            # itself, and hashing and holding each link's bytes there cost a walk of a cached chain ~2 % of its work.
            # ``Manifest._parse(body, run=False)`` by its msgspec decode first (one call, not three: asked per link).
            body = data[HEADER_SIZE:] if data.startswith(MAGIC) else data  # signing.is_sealed
            manifest = decoded(Manifest, body, False) or Manifest._parse(body, run=False)
        except (ValueError, KeyError, TypeError, RecursionError):  # not a manifest (read_unverified's refusals)
            return read_unverified(storage_for(path), path, run=False)
        changed = found.st_mtime_ns if found.st_mtime_ns > found.st_ctime_ns else found.st_ctime_ns
        if found.st_size <= _MEMO_MAX_BYTES and changed < self._clock() - _SETTLE_NS:
            if len(self._manifests) >= _MEMO_LIMIT:
                self._manifests.clear()
            self._manifests[path] = (
                (found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns),  # _stat_key
                manifest,
            )
        return manifest


_READ_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
# A file time within this of the stat may be shared by a second write in the same tick (Linux: 1-10 ms a tick).
_SETTLE_NS = 1_000_000_000
_MEMO_LIMIT = 4_096  # manifests a LineageMemo keeps: about 12 MB of a chain's small manifests, held after the build
# A larger manifest (a task with thousands of requirements: ~300 bytes per input) is not kept: one of 100,000 inputs
# held 60 MiB of parsed inputs for the life of its root task, also while the build's load of that root parsed it again.
_MEMO_MAX_BYTES = 64 * 1024


class Lineage:
    """Transitive staleness (a build's walk, inspection views), each manifest read once (memoized by full path).

    ``memo``: what earlier checks in this process read (``LineageMemo``); None: every manifest is read.
    """

    def __init__(self, memo: LineageMemo | None = None) -> None:
        self.memo = memo
        self.manifests: dict[str, Manifest | None] = {}  # by full path, None: missing or unreadable
        # Whether ``stale_outputs`` (a checked task's own manifests) reads with the run record: for a caller that
        # needs it from the same read (``output_digests.outputs_if_complete``); upstream manifests never are.
        self.read_runs = False
        # By (manifest path, owner whose recorded inputs count; None: every input's, ``Input.read_by``).
        self._verdicts: dict[tuple[str, str | None], Verdict] = {}
        self._inputs: set[str] = set()  # full paths some checked manifest recorded as an input
        self._canonical: dict[str, str] = {}  # _inputs' canonical forms (records_any), by full path
        self._known: frozenset[str] = frozenset()  # the values of _canonical
        self._names: frozenset[str] = frozenset()  # the file names of _canonical's keys (``recorded``)
        self._upstreams: dict[str, tuple[str, ...]] = {}  # each checked manifest's recorded inputs, full paths
        # The direct check's judgement of a checked manifest (``judged``) until ``check`` explores it, by the same key
        # as the verdicts: its replaced inputs, and per input (item, upstream manifest, its workspace, owner).
        self._judged: dict[
            tuple[str, str | None], tuple[list[StaleInput], list[tuple[Input, str, str | None, str | None]]]
        ] = {}
        # The graph's tasks' manifests as they are now (``current_manifests``): inputs from another workspace
        # are read there. Filled only when a checked manifest records one (``check``'s ``upstreams``).
        self.current: dict[str, str] = {}
        # The graph's kart tasks by their manifests' full paths: filled (``_tasks_by_manifest``) only when a manifest
        # of the lineage is missing, to judge that upstream by its requirements (``_written_after``).
        self._by_manifest: dict[str, object] | None = None

    def known(self, path: str, manifest: Manifest) -> None:
        """Take ``manifest``, already read at ``path``, instead of reading it again."""
        self.manifests.setdefault(path, manifest)

    def note_inputs(self, manifest: Manifest, workspace: str) -> None:
        """Count the inputs ``manifest`` (of a task in ``workspace``) records as recorded (``records_any``,
        ``recorded``), though its lineage was not checked (an incomplete task's ``complete()`` read it)."""
        self._inputs.update(
            resolve(item.manifest, workspace, self.current) for item in manifest.inputs if item.manifest
        )

    def manifest(self, path: str) -> Manifest | None:
        """The manifest at ``path`` (unverified JSON), or None."""
        manifests = self.manifests
        if path in manifests:
            return manifests[path]
        memo = self.memo
        if memo is not None and "://" not in path:
            manifest = manifests[path] = memo.read(path)
        else:
            manifest = manifests[path] = read_unverified(storage_for(path), path, run=False)
        return manifest

    def check(
        self,
        path: str,
        workspace: str,
        upstreams: Callable[[], Iterable[object]] | None = None,
        reader: str | None = None,
    ) -> Verdict:
        """The verdict for the manifest at ``path`` in ``workspace`` (a cycle of records counts as fresh).

        Depth first without recursion (a lineage may be a chain of 100,000 tasks); each recorded
        input resolved once and each manifest read once. ``upstreams`` gives the task's required tasks:
        asked once, when a manifest of the lineage records an input from another workspace, so it is
        read where its task's workspace is now (``current_manifests``).

        ``reader``: the checked task's ``module.Class``: only the inputs its runs recorded count (None: every
        input of the manifest). A manifest may hold the outputs and inputs of same-named classes of two modules
        (``kart_core.manifest``); an upstream is judged by the inputs of the owner of the entry that was loaded
        (the entry at the recorded key, as the upstream manifest holds it now), not by the other owner's.
        """
        node = (path, reader or None)
        verdicts = self._verdicts
        if node in verdicts:
            return verdicts[node]
        # Per explored manifest until its upstreams' verdicts are known: its replaced inputs (judged when explored,
        # with the upstream manifests then read) and per input (item, upstream manifest, its workspace, owner).
        located: dict[
            tuple[str, str | None], tuple[list[StaleInput], list[tuple[Input, str, str | None, str | None]]]
        ] = {}
        inputs, recorded, manifest_of, manifests = self._inputs, self._upstreams, self.manifest, self.manifests
        # The manifests this check read first: each dropped once explored (its readers judged against it before),
        # so a chain of 100,000 links does not hold every parsed manifest of it until the end (160 MiB). One asked
        # for again is read again (``manifest``: one stat while the LineageMemo keeps it).
        first: set[str] = set()
        graph = upstreams  # kept: ``upstreams`` is cleared once the graph's current manifests are known
        stack: list[tuple[str, str | None, str, bool]] = [(path, reader or None, workspace, False)]
        while stack:
            current, current_reader, current_workspace, explored = stack.pop()
            key = (current, current_reader)
            if explored:
                direct, found = located.pop(key)
                if not direct:
                    # _settle's common answer without its call: no replaced input, every upstream fresh (asked per link)
                    for _, upstream, _, upstream_reader in found:
                        verdict = verdicts.get((upstream, upstream_reader), _FRESH)
                        if verdict is not _FRESH and verdict.stale:
                            break
                    else:
                        verdicts[key] = _FRESH
                        continue
                verdicts[key] = self._settle(direct, found)
                continue
            if key in verdicts:
                continue
            verdicts[key] = _FRESH  # guards a cycle while it is explored
            judged = self._judged.pop(key, None) if self._judged else None  # the direct check's (stale_outputs)
            if judged is not None:
                direct, found = judged
            else:
                manifest = manifests[current] if current in manifests else manifest_of(current)  # read as an upstream
                if current in first:
                    first.discard(current)
                    manifests.pop(current, None)
                if manifest is None or manifest.pending:
                    if current != path:
                        if interrupted(current, manifest):
                            verdicts[key] = _INTERRUPTED  # its readers are built on what its rerun may change
                        elif manifest is None and graph is not None:  # removed: an input may be newer than its output
                            unvouched = self._unvouched(current, graph)
                            if unvouched:
                                verdicts[key] = Verdict(unvouched, [])
                    continue
                if not manifest.inputs:
                    continue
                direct, found, upstreams = self._judge(
                    manifest, current, current_reader, current_workspace, upstreams, path, first
                )
            located[key] = (direct, found)
            known = recorded.get(current)
            if known is None:
                recorded[current] = (found[0][1],) if len(found) == 1 else tuple(dict.fromkeys(f[1] for f in found))
            else:
                recorded[current] = known + tuple(upstream for _, upstream, _, _ in found if upstream not in known)
            stack.append((current, current_reader, current_workspace, True))
            for _, upstream, upstream_workspace, upstream_reader in found:
                inputs.add(upstream)
                if upstream_workspace is not None and (upstream, upstream_reader) not in verdicts:
                    stack.append((upstream, upstream_reader, upstream_workspace, False))
                elif upstream in first:  # judged already, or outside any workspace: not explored from here
                    first.discard(upstream)
                    manifests.pop(upstream, None)
        return verdicts[node]

    def _unvouched(self, path: str, graph: Callable[[], Iterable[object]]) -> list[StaleInput]:
        """For an upstream whose manifest ``path`` is missing: its requirements' committed outputs written after its
        output (``_written_after``), found through the checked task's graph (``graph``: its requirements); [] when
        no task of the graph has that manifest."""
        if self._by_manifest is None:
            self._by_manifest = _tasks_by_manifest(graph())
        task = self._by_manifest.get(path)
        requires = getattr(task, "kart_requires", None)
        if task is None or requires is None:
            return []
        for target in flatten(task.kart_outputs()):  # type: ignore[attr-defined]
            record = getattr(target, "record", None)
            if isinstance(record, OutputRecord) and record.manifest == path:
                return unrecorded_requirements(path, None, record, requires, self.manifests)
        return []

    def _located(self, item: Input, workspace: str) -> tuple[Input, str, str | None, str | None]:
        """``_located``'s triple for ``item`` (an input of a manifest in ``workspace``), with the owner of the
        entry it loaded as the upstream manifest holds it now (None: not known, or no such entry)."""
        item, upstream, upstream_workspace = _located(item, workspace, self.current)
        if upstream_workspace is None:
            return item, upstream, None, None
        manifest = self.manifest(upstream)
        entry = manifest.outputs.get(item.key) if manifest is not None else None
        return item, upstream, upstream_workspace, entry.owner if entry is not None else None

    def unknown_upstreams(self, path: str, workspace: str) -> list[tuple[Input, str]]:
        """The inputs from another workspace that the manifest at ``path`` (a task's in ``workspace``) records and
        whose manifest cannot be read where they resolve (``resolve`` with ``current``): each with that path.

        Whether the task is stale on such an input cannot be told: ``check`` counts it as fresh, which a build
        may (its graph names where each upstream task's workspace is now, ``current_manifests``), but a check
        without the graph (``kart verify``) reports it as unknown: the upstream workspace was moved, copied
        or deleted since, and only the caller can say where it is now. Inputs of ``workspace`` itself are not
        listed (a manifest removed there is a task to run again, not a place to name).
        """
        manifest = self.manifest(path)
        if manifest is None or manifest.pending:
            return []
        unknown = []
        for item in manifest.inputs:
            if not item.manifest or _workspace_relative(item.manifest):
                continue  # a file outside every workspace (``_replaced_outside``) has no record to find
            upstream = resolve(item.manifest, workspace, self.current)
            if self.manifest(upstream) is None and not _file_there(item, upstream):
                unknown.append((item, upstream))
        return unknown

    @property
    def records_inputs(self) -> bool:
        """Whether a manifest checked so far recorded any input."""
        return bool(self._inputs)

    def records_any(self, manifests: Iterable[str]) -> bool:
        """Whether a manifest checked so far recorded one of ``manifests`` (full paths) as an input.

        Compared in ``canonical`` form: a workspace spelled relative by one task and absolute (or with
        ``./``, a trailing slash, a symlink, ``file://``) by another is one folder. The recorded paths are
        made canonical here, not while checking (a walk of 100,000 tasks would pay a ``realpath`` each),
        once per growth of the set.
        """
        return not self._canonical_inputs().isdisjoint(map(canonical, manifests))

    def _canonical_inputs(self) -> frozenset[str]:
        """The canonical forms of the recorded inputs (each path made canonical once, when first asked for)."""
        if len(self._canonical) != len(self._inputs):
            for path in self._inputs.difference(self._canonical):
                self._canonical[path] = canonical(path)
            self._known = frozenset(self._canonical.values())
        return self._known

    def recorded(self, manifests: Iterable[str]) -> set[str]:
        """Those of ``manifests`` (full paths) that a manifest checked so far recorded as an input, compared
        in ``canonical`` form (as ``records_any``). Only a path whose file name some recorded input has is
        made canonical (a file name is the same however its folder is spelled): a build that runs 100,000
        tasks pays no ``realpath`` for those nobody recorded."""
        known = self._canonical_inputs()
        if not known:
            return set()
        names = self._names
        if len(names) != len(self._canonical):
            names = self._names = frozenset(path.replace(os.sep, "/").rpartition("/")[2] for path in self._canonical)
        return {
            path
            for path in manifests
            if path.replace(os.sep, "/").rpartition("/")[2] in names and canonical(path) in known
        }

    def built_on(self, manifests: Iterable[str]) -> set[str]:
        """The checked manifests (full paths, as checked) whose lineage records one of ``manifests`` (full
        paths, compared in ``canonical`` form), directly or through other checked manifests.

        For a build about to run the tasks of ``manifests``: a task found complete whose manifest is
        returned may be stale once they commit. Linear in the recorded inputs; no read.
        """
        wanted = set(map(canonical, manifests))
        if self._canonical_inputs().isdisjoint(wanted):
            return set()
        readers: dict[str, list[str]] = {}
        for reader, upstreams in self._upstreams.items():
            for upstream in upstreams:
                readers.setdefault(upstream, []).append(reader)
        stack = [path for path, form in self._canonical.items() if form in wanted]
        found: set[str] = set()
        while stack:
            for reader in readers.get(stack.pop(), ()):
                if reader not in found:
                    found.add(reader)
                    stack.append(reader)
        return found

    def release(self, targets: Iterable[object]) -> None:
        """Forget the manifests of a task whose flattened ``output()`` is ``targets``, once checked (their
        verdicts stay), unless a checked manifest recorded one as an input (it may be needed again).

        For a walk that visits many complete tasks (100,000 cached upstreams of a task that runs): each
        kept manifest costs about 1.5 KB until the walk ends.
        """
        for target in targets:
            record = getattr(target, "record", None)
            if isinstance(record, OutputRecord):
                self._judged.pop((record.manifest, record.owner or None), None)
                if record.manifest not in self._inputs:
                    self.manifests.pop(record.manifest, None)

    def _judge(
        self,
        manifest: Manifest,
        path: str,
        reader: str | None,
        workspace: str,
        upstreams: Callable[[], Iterable[object]] | None,
        root: str,
        first: set[str] | None,
    ) -> tuple[
        list[StaleInput], list[tuple[Input, str, str | None, str | None]], Callable[[], Iterable[object]] | None
    ]:
        """The one judgement of the recorded inputs of ``manifest`` (read at ``path``, a task's in ``workspace``) that
        count for ``reader`` (``Input.read_by``): those whose upstream replaced what they recorded (``_replaced``,
        judged against the upstream manifests as read now); per input, the item, its upstream's full manifest path,
        that manifest's workspace (None: outside any workspace) and the owner of the entry it loaded there; and
        ``upstreams``, None once asked (an input from another workspace: the graph's current manifests are then known,
        ``current_manifests``).

        An upstream manifest read first here that records no input and is settled (not pending) has the verdict fresh
        for any reader (``check`` finds nothing to explore in it): that verdict is kept and the manifest is not (a
        task with 100,000 cached requirements held each one's parsed manifest until its walk ended: 150 MB). Another
        upstream read first here is added to ``first`` (``check``'s; None: kept, as any read of a walk), but for
        ``root``.
        """
        manifests, verdicts = self.manifests, self._verdicts
        memo_read = self.memo.read if self.memo is not None else None
        relative, sep_is_slash = _RELATIVE, os.sep == "/"
        prefix = _joined(workspace, "")
        local = sep_is_slash and "://" not in workspace  # prefix + key is _joined(workspace, key), a local path
        direct: list[StaleInput] = []
        found: list[tuple[Input, str, str | None, str | None]] = []
        for item in manifest.inputs:
            if reader and item.reader and item.reader != reader:  # not Input.read_by
                continue
            reference = item.manifest
            # _workspace_relative(reference), spelled out: asked per link of a walk
            if not (
                sep_is_slash
                and reference.startswith(relative)
                and len(reference) > len(relative)
                and "/" not in reference[len(relative) :]
            ) and not _workspace_relative(reference):  # from another workspace: read where it is now, when known
                if not reference:  # a file outside every workspace: no manifest, no upstream to explore
                    replaced = _replaced_outside(item)
                    if replaced is not None:
                        direct.append(replaced)
                    continue
                if upstreams is not None:
                    current_manifests(upstreams(), self.current)
                    upstreams = None  # the whole graph under the task is in self.current now
                located = self._located(item, workspace)
                found.append(located)
                upstream, upstream_workspace = located[1], located[2]
                held = manifests[upstream] if upstream in manifests else self.manifest(upstream)
            else:
                upstream_workspace = workspace
                upstream = prefix + reference  # _joined(workspace, reference): a relative name
                if upstream in manifests:
                    held = manifests[upstream]
                    entry = held.outputs.get(item.key) if held is not None else None
                    owner = entry.owner if entry is not None else None
                else:
                    # Lineage.manifest(upstream), its memo's read inline (asked per link)
                    if memo_read is not None and "://" not in upstream:
                        held = memo_read(upstream)
                    else:
                        held = read_unverified(storage_for(upstream), upstream, run=False)
                    entry = held.outputs.get(item.key) if held is not None else None
                    owner = entry.owner if entry is not None else None
                    if held is not None and not held.inputs and not held.pending and upstream != root:
                        # Not kept: judged below from ``held``; another input of it reads it again (a stat: the memo).
                        verdicts.setdefault((upstream, owner), _FRESH)
                    else:
                        manifests[upstream] = held
                        if first is not None and upstream != root:
                            first.add(upstream)
                found.append((item, upstream, workspace, owner))
                # _kept(item, upstream, held, workspace) spelled out for a local output whose entry has a stamp (asked
                # per link): the recorded entry unchanged and its file's stamp the recorded one (maybe_rewritten's
                # stat), or the file gone (maybe_rewritten: False).
                if (
                    local
                    and entry is not None
                    and entry.stamp is not None
                    and held is not None
                    and not held.pending
                    and item.digest
                    and entry.commit == item.commit
                    and entry.digest == item.digest
                ):
                    try:
                        now = os.stat(prefix + item.key)
                    except OSError:
                        continue
                    if (now.st_ino, now.st_ctime_ns) == tuple(entry.stamp):
                        continue
            if not _kept(item, upstream, held, upstream_workspace):
                replaced = _replaced(item, upstream, held, upstream_workspace)
                if replaced is not None:
                    direct.append(replaced)
        return direct, found, upstreams

    def judged(
        self,
        manifest: Manifest,
        path: str,
        workspace: str,
        reader: str | None = None,
        upstreams: Callable[[], Iterable[object]] | None = None,
    ) -> list[StaleInput]:
        """The direct check of a walk (``stale_outputs`` in a ``walk_scope``): the recorded inputs of ``manifest``
        (read at ``path``, a task's in ``workspace``; ``reader``: as ``check``'s) whose upstream replaced what they
        recorded, judged once (``_judge``): ``check`` takes the same judgement when it explores that manifest, so each
        input is judged (an upstream manifest read, its output's file stat'ed) once per walk.

        ``upstreams``: the task's required tasks, asked when an input is from another workspace (the graph's current
        manifests: ``current_manifests``, kept in ``current``)."""
        key = (path, reader or None)
        known = self._judged.get(key)
        if known is None:
            direct, found, _ = self._judge(manifest, path, reader or None, workspace, upstreams, path, None)
            known = self._judged[key] = (direct, found)
            # Recorded (``records_any``) by the strings the verdicts hold: ``note_inputs`` then adds only what other
            # readers' inputs the manifest holds (equal paths made again are dropped, not kept twice: 11 MiB for
            # 100,000 inputs).
            self._inputs.update(upstream for _, upstream, _, _ in found)
        return known[0]

    def _settle(self, direct: list[StaleInput], upstreams: list[tuple[Input, str, str | None, str | None]]) -> Verdict:
        """The verdict of a manifest whose replaced inputs are ``direct`` and whose recorded inputs are ``upstreams``
        (``_judge``'s: the item, its upstream's full manifest path, that manifest's workspace, the owner of the entry it
        loaded), once their own verdicts are known (an upstream without one, outside any workspace, is fresh)."""
        behind: list[str] = []
        built: list[str] = []
        verdicts = self._verdicts
        for item, upstream, _, upstream_reader in upstreams:
            verdict = verdicts.get((upstream, upstream_reader), _FRESH)
            if verdict is not _FRESH and verdict.stale:
                label, was_built = item.task or upstream, item.built
                if label not in behind:
                    behind.append(label)
                if was_built and label not in built:
                    built.append(label)
        return Verdict(direct, behind, tuple(built)) if direct or behind else _FRESH

    def describe(self, label: str, verdict: Verdict, left: bool = False) -> str:
        """The message for a stale verdict (``describe`` for the direct part, then the stale upstreams).

        ``left``: the task is a root a build just left built on stale content (``orchestrate``): the build did not
        bring those upstreams up to date, so the message says so rather than that a build would."""
        if verdict.direct:
            return describe(label, verdict.direct)
        upstreams = ", ".join(verdict.behind)
        built = (
            f"{label} was built from {upstreams}, stale itself (an output it loaded or requires was committed again "
            f"since, with other content, its own commit was interrupted, an input is newer than its unrecorded outputs, "
            f"or it is built on such a task): {label} is built on stale content."
        )
        if verdict.built and not left:
            nested = ", ".join(verdict.built)
            return (
                f"{built} {label}'s run() built {nested} (a build() nested in it): a build of {label} brings "
                f"{upstreams} up to date, first when {label} requires them, else by running {label} again."
            )
        if left:
            return (
                f"{built} This build did not bring {upstreams} up to date: not among what {label} requires (an "
                f"output loaded by path or from a task it does not require; a task its run() built before kart "
                f"recorded such builds), or its rebuild failed. Build {upstreams}, then {label} runs again if what "
                f"it loaded or requires changed; or rerun {label} (rerun=True)."
            )
        return (
            f"{built} A build of {label} first brings {upstreams} up to date, then runs {label} again if what it loaded "
            "or requires changed."
        )


def _located(item: Input, workspace: str, current: Mapping[str, str] | None = None) -> tuple[Input, str, str | None]:
    """``item`` with its manifest's full path (``resolve``, with ``current``) and that manifest's workspace
    (a relative reference shares ``workspace``; another is told from the path; None outside any workspace)."""
    reference = item.manifest
    if _workspace_relative(reference):
        return item, _joined(workspace, reference), workspace
    upstream = resolve(reference, workspace, current)
    return item, upstream, log_workspace(upstream, MANIFEST)


def stale_verdict(
    targets: Iterable[object],
    checked: Lineage | None = None,
    upstreams: Callable[[], Iterable[object]] | None = None,
) -> Verdict | None:
    """The first stale ``Verdict`` (transitive) among the manifests of a task whose flattened ``output()``
    is ``targets``; None when none is stale. ``checked`` shares reads across tasks (default: the open
    ``walk_scope``'s, else a new one). ``upstreams``: the task's required tasks (``Lineage.check``; and, for a
    manifest an older kart wrote, ``unrecorded_requirements``)."""
    checked = checked if checked is not None else (_scope.get() or Lineage())
    seen: set[str] = set()
    for target in targets:
        record = getattr(target, "record", None)
        if not isinstance(record, OutputRecord) or record.manifest in seen:
            continue
        seen.add(record.manifest)
        verdict = checked.check(record.manifest, record.workspace, upstreams, record.owner or None)
        if verdict.stale:
            return verdict
        if upstreams is not None:  # an older kart's manifest: what its task requires was not recorded
            manifest = checked.manifest(record.manifest)
            if manifest is None or not manifest.requirements:  # None: removed; its output may be older than its inputs
                unrecorded = unrecorded_requirements(record.manifest, manifest, record, upstreams, checked.manifests)
                if unrecorded:
                    return Verdict(unrecorded, [])
    return None


def stale_upstreams(task: Any) -> list[str]:
    """The labels (``Class[8-hex id]``) of the tasks upstream of ``task`` that are stale, in the order found: those
    its committed outputs are built on (its recorded inputs, followed up the lineage) that are stale themselves, and
    each of its requirements whose own lineage check finds it stale (its inputs, or an upstream of it, committed
    again since with other content; an interrupted commit). [] when everything upstream is current.

    ``task.complete()`` judges the task's own inputs only (luigi's contract: a build walks the rest). A caller that
    serves or runs one task without a build (a Kedro catalog entry, an Airflow task cleared alone) asks this too, so
    an output built on, or about to be built on, an upstream whose own inputs changed is not taken as current
    (attacker at23 A1, A2). A requirement whose outputs are missing is not stale (it is incomplete). One read per
    manifest of the lineages, shared inside one ``walk_scope``.
    """
    found: list[str] = []
    with walk_scope():
        verdict = stale_verdict(flatten(task.kart_outputs()), None, task.kart_requires)
        if verdict is not None:
            found.extend(verdict.behind)
        for upstream in task.kart_requires():
            outputs = getattr(upstream, "kart_outputs", None)
            if outputs is None:
                continue  # a plain luigi task: no integrity record
            label = upstream.kart_label()
            if label in found:
                continue
            if stale_verdict(flatten(outputs()), None, upstream.kart_requires) is not None:
                found.append(label)
    return found


_scope: contextvars.ContextVar[Lineage | None] = contextvars.ContextVar("kart_lineage_scope", default=None)


def walk_scope(memo: LineageMemo | None = None) -> contextlib.AbstractContextManager[Lineage]:
    """Share one ``Lineage`` (its manifests and verdicts) between the stale checks made inside the block.

    ``memo``: what earlier walks in this process read (``LineageMemo``), to take unchanged manifests from.

    For a build's walk, or an inspection view over a graph (``kart tree``, ``kart why``), that commits
    nothing inside the block: what it read stays as read, so a commit made inside it (a task's run)
    would not be seen; the executor runs tasks after the block, and their checks read afresh.
    ``with walk_scope() as checked:`` binds the ``Lineage``.
    """
    return _WalkScope(memo)


class _WalkScope:
    """``walk_scope``'s context manager: a class, not a generator (``output_digests_if_complete`` opens one
    per cached KartRunner node: a generator-based one cost twice as much to enter and leave)."""

    __slots__ = ("_token", "_memo")

    def __init__(self, memo: LineageMemo | None = None) -> None:
        self._memo = memo

    def __enter__(self) -> Lineage:
        checked = Lineage(self._memo)
        self._token = _scope.set(checked)
        return checked

    def __exit__(self, *exc_info: object) -> None:
        _scope.reset(self._token)


def _short(commit: str | None) -> str:
    return commit[:8] if commit else "(none)"
