"""``rerun=True`` without losing the old outputs: they are replaced when the rerun commits, not before.

gokart deletes a task's outputs at the first ``complete()`` check of a rerun, so a rerun whose
``run()`` then fails leaves the task with no output at all. kart keeps them: ``arm_rerun`` notes the
commit id each output's integrity record (``kart_core.manifest``) holds now, and the task counts as
incomplete while those records are unchanged. The rerun stages its dumps (``kart_core.transaction``)
and its commit replaces the outputs and their records in one step, which changes the commit ids:
from then on the task is complete again, in every process that looks (a luigi worker process or a
process-pool worker checks the records, not an in-memory flag). A failed rerun commits nothing, so
the old outputs and their manifest stay as they were.

Outputs kart cannot replace at commit are deleted at once, as gokart does: those without an
integrity record (a plain luigi target, a gokart-written output without a manifest, or integrity
records turned off), since nothing else would tell that the rerun has replaced them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from kart_core.manifest import OutputRecord, read_unverified
from kart_core.storage import storage_for

__all__ = ["Baseline", "arm_rerun"]


@dataclasses.dataclass(frozen=True)
class Baseline:
    """The commit ids of a task's recorded outputs when its rerun was armed.

    Attributes:
        commits: per recorded output, ``(manifest path, output key)`` → the commit id its entry held.
    """

    commits: dict[tuple[str, str], str | None]

    def pending(self) -> bool:
        """Whether no commit has replaced the armed outputs yet (each entry still holds its armed commit id).

        One manifest read per manifest (a task has one). An entry that changed or went (a commit, a
        ``kart verify --delete``) ends the wait: ``complete()`` then asks whether the outputs exist.
        """
        if not self.commits:
            return False
        current: dict[str, dict[str, str | None] | None] = {}
        for (manifest, key), commit in self.commits.items():
            if manifest not in current:
                found = read_unverified(storage_for(manifest), manifest)
                current[manifest] = (
                    {name: entry.commit for name, entry in found.outputs.items()} if found is not None else None
                )
            entries = current[manifest]
            if entries is None or key not in entries or entries[key] != commit:
                return False
        return True


def arm_rerun(targets: Iterable[object]) -> Baseline:
    """Start a rerun of the task whose flattened ``output()`` is ``targets``: note what is there.

    Recorded outputs (kart targets with an entry in their manifest) are kept and noted; any other
    output is removed now (gokart's behaviour), with its record if it has one. A signature on the
    manifest is not checked: the commit ids only tell whether the rerun has committed.

    Returns:
        The ``Baseline``; ``pending()`` is False at once when no output was kept.
    """
    commits: dict[tuple[str, str], str | None] = {}
    manifests: dict[str, dict[str, str | None] | None] = {}
    for target in targets:
        record = getattr(target, "record", None)
        if isinstance(record, OutputRecord):
            if record.manifest not in manifests:
                found = read_unverified(storage_for(record.manifest), record.manifest)
                manifests[record.manifest] = (
                    {name: entry.commit for name, entry in found.outputs.items()} if found is not None else None
                )
            entries = manifests[record.manifest]
            if entries is not None and record.key in entries:
                commits[(record.manifest, record.key)] = entries[record.key]
                continue
        remove = getattr(target, "remove", None)
        if callable(remove):
            remove()
    return Baseline(commits)
