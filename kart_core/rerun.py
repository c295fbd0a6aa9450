"""``rerun=True`` without losing the old outputs: they are replaced when the rerun commits, not before.

gokart deletes a task's outputs at the first ``complete()`` check of a rerun, so a rerun whose
``run()`` then fails leaves the task with no output at all. kart keeps them: ``arm_rerun`` notes the
commit id each output's integrity record (``kart_core.manifest``) holds now, and the task counts as
incomplete while those records are unchanged. The rerun stages its dumps (``kart_core.transaction``)
and its commit replaces the outputs and their records in one step, which changes the commit ids:
from then on the task is complete again, in every process that looks (a luigi worker process or a
process-pool worker checks the records, not an in-memory flag). A failed rerun commits nothing, so
the old outputs and their manifest stay as they were.

Outputs without an integrity record (a gokart-written output without a manifest, integrity records
turned off, a bare ``make_target`` outside the workspace) are kept too: their stamp
(``kart_core.storage.stamp``: modification time, size and inode; ETag, size and time on object
storage) tells when the rerun's commit has replaced them (a killed or failed rerun must not cost a good
old output; gokart deletes them at once). Only outputs kart cannot stamp (a plain luigi target) are
deleted at once, as gokart does.

Where a rerun stands (``RerunState``: armed, waiting for its commit, done; and what made the task stale)
belongs to one build. luigi's instance cache gives every build of the process the same task object, so
two builds in threads (a notebook, a web service) would otherwise re-arm, spend and read each other's
state. A build (``kart_core.orchestrate``) opens ``build_states()``: inside it, and in the worker threads
and processes it hands tasks to, ``state_of`` answers the build's own copy; outside any build (luigi's
worker, a user's ``complete()``) the task object's own state, which each build sets to what it found
when it ends.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Iterable, Iterator
from typing import Any

from kart_core.manifest import OutputRecord, read_unverified
from kart_core.storage import storage_for
from kart_core.storage.stamp import stamp

__all__ = ["Baseline", "RerunState", "arm_rerun", "build_states", "reset", "state_of"]


@dataclasses.dataclass(frozen=True)
class Baseline:
    """What a task's outputs were when its rerun was armed.

    Attributes:
        commits: per recorded output, ``(manifest path, output key)`` → the commit id its entry held.
        stamps: per output kept without an entry in its manifest, its path → its stamp then
            (``kart_core.storage.stamp``).
        unrecorded: ``(manifest path, output key)`` of each such output that a manifest may record (in the
            workspace, records on): an entry for it appearing ends the wait too (a commit of the same bytes within
            the store's time step leaves the stamp as it was).
    """

    commits: dict[tuple[str, str], str | None]
    stamps: dict[str, tuple[object, ...]] = dataclasses.field(default_factory=dict)
    unrecorded: frozenset[tuple[str, str]] = frozenset()

    def pending(self) -> bool:
        """Whether no commit has replaced the armed outputs yet (each entry still holds its armed commit id, each
        stamped output still has its stamp).

        One manifest read per manifest (a task has one), one stamp per output kept without a record. An entry that
        changed, went or appeared (a commit, a ``kart verify --delete``) or a stamp that changed ends the wait:
        ``complete()`` then asks whether the outputs exist.
        """
        if not self.commits and not self.stamps:
            return False
        for path, before in self.stamps.items():
            try:
                now = stamp(path)
            except OSError:
                return False  # cannot tell: complete() looks at the outputs themselves
            if now is None or tuple(now) != before:
                return False
        current: dict[str, dict[str, str | None] | None] = {}
        for manifest, key in self.unrecorded:
            if manifest not in current:
                current[manifest] = _entries(manifest)
            entries = current[manifest]
            if entries is not None and key in entries:
                return False
        for (manifest, key), commit in self.commits.items():
            if manifest not in current:
                current[manifest] = _entries(manifest)
            entries = current[manifest]
            if entries is None or key not in entries or entries[key] != commit:
                return False
        return True


def _entries(manifest: str) -> dict[str, str | None] | None:
    """The commit id of each output the manifest at ``manifest`` records (None when there is no manifest)."""
    found = read_unverified(storage_for(manifest), manifest)
    return {name: entry.commit for name, entry in found.outputs.items()} if found is not None else None


def arm_rerun(targets: Iterable[object]) -> Baseline:
    """Start a rerun of the task whose flattened ``output()`` is ``targets``: note what is there.

    Recorded outputs (kart targets with an entry in their manifest) are kept and noted; a kart output
    without one (written by gokart, records off, outside the workspace) is kept and stamped
    (``Baseline.stamps``); any other output present is removed now (gokart's behaviour). A signature on the
    manifest is not checked: the commit ids only tell whether the rerun has committed.

    Returns:
        The ``Baseline``; ``pending()`` is False at once when no output was kept.
    """
    commits: dict[tuple[str, str], str | None] = {}
    stamps: dict[str, tuple[object, ...]] = {}
    unrecorded: set[tuple[str, str]] = set()
    manifests: dict[str, dict[str, str | None] | None] = {}
    for target in targets:
        record = getattr(target, "record", None)
        if isinstance(record, OutputRecord):
            if record.manifest not in manifests:
                manifests[record.manifest] = _entries(record.manifest)
            entries = manifests[record.manifest]
            if entries is not None and record.key in entries:
                commits[(record.manifest, record.key)] = entries[record.key]
                continue
        path = getattr(target, "_path", None)  # a kart target (not path(): inside run() it hands the path out)
        if isinstance(path, str):
            try:
                found = stamp(path)
            except OSError:
                found = None
            if found is not None:
                stamps[path] = tuple(found)
                if isinstance(record, OutputRecord):
                    unrecorded.add((record.manifest, record.key))
                continue
        remove = getattr(target, "remove", None)
        if callable(remove):
            remove()
    return Baseline(commits, stamps, frozenset(unrecorded))


class RerunState:
    """Where a task's rerun stands, and what made it stale; one per task object, and one per build that checks it.

    Attributes:
        armed: True: rerun asked for, not checked yet; a ``Baseline``: the rerun waits for its commit;
            False: no rerun (or it committed).
        stale: what ``complete()`` found replaced under the task (``kart_core.lineage.StaleInput``), for
            the build's summary; () when not stale.
        own: in a build's copy, the task object's own state (written back when the build ends); else None.

    A pickle (a task shipped to a worker process, ``kart_core.process_pool.ship``) carries the state the
    pickling build holds for the task (``state_of``), so the worker's ``complete()`` sees that build's rerun.
    """

    __slots__ = ("armed", "stale", "own")

    def __init__(self, armed: bool | Baseline, stale: tuple[Any, ...] = (), own: RerunState | None = None) -> None:
        self.armed = armed
        self.stale = stale
        self.own = own

    def __reduce__(self) -> tuple[type[RerunState], tuple[bool | Baseline, tuple[Any, ...]]]:
        current = state_of(self)
        return (RerunState, (current.armed, current.stale))


# The current build's copies of the states of the tasks it checked, by each task's own state (compared by identity:
# RerunState has no __eq__; keyed by the object, not its id(), a 100,000-task build holds no int per task).
_build: contextvars.ContextVar[dict[RerunState, RerunState] | None] = contextvars.ContextVar(
    "kart_rerun_states", default=None
)


def state_of(own: RerunState) -> RerunState:
    """The state to use for the task whose own state is ``own``: the current build's copy, else ``own``.

    A task the build has not re-armed (``reset``) starts from a copy of ``own`` (what the latest build
    of the process left), as it did when there was one state per task object.
    """
    states = _build.get()
    if states is None:
        return own
    mine = states.get(own)
    if mine is None:
        mine = states[own] = RerunState(own.armed, own.stale, own)
    return mine


def reset(own: RerunState, rerun: bool) -> None:
    """Re-arm for the current build (or, outside any build, the task object itself): ``rerun`` runs it again."""
    states = _build.get()
    if states is None:
        own.armed, own.stale = rerun, ()
    else:
        states[own] = RerunState(rerun, (), own)


@contextlib.contextmanager
def build_states() -> Iterator[None]:
    """One build's rerun states, for the body and the worker threads that copy its context.

    At the end each task object keeps what this build found (``complete()`` outside a build, a task
    tree's STALE mark, read it), as it did before builds had their own. About 100 bytes per task
    checked, for the length of the build.
    """
    states: dict[RerunState, RerunState] = {}
    token = _build.set(states)
    try:
        yield
    finally:
        _build.reset(token)
        for mine in states.values():
            own = mine.own
            if own is not None:
                own.armed, own.stale = mine.armed, mine.stale
