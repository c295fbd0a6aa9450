"""Which upstream a failed run found damaged, and whether it still is: what ``run_one`` needs to rebuild it.

A task that must run loads its upstreams' outputs; an output that differs from its integrity record
(``kart_core.manifest``) raises ``DamagedOutputError`` there. ``complete()`` looks at existence only
(as gokart's does, so a cached check of a whole graph reads no manifest), so the damage shows only
now. ``damaged_upstream`` tells ``run_one`` which upstream owns the damaged file; ``run_one`` then
runs that upstream again (its commit replaces the damaged output) and retries the task.

Two workers that find the same damage both wait for the upstream's lock; the second then finds,
with ``still_damaged``, that the output was replaced meanwhile and only retries its own task.

Damage is not repaired when signing refuses an output (``IntegrityError``: a wrong signature may be
tampering, which a person should look at) or when repairs are off (``TargetConfig.repair``).
"""

from __future__ import annotations

import dataclasses

from kart_core.contract import KartTask, is_kart_task
from kart_core.damage import file_size, unvouched_reason
from kart_core.errors import DamagedOutputError
from kart_core.manifest import OutputRecord, read_manifest
from kart_core.signing import Signer
from kart_core.storage import storage_for
from kart_core.structure import flatten

__all__ = ["Damage", "damaged_output", "damaged_upstream", "still_damaged"]

_CHAIN_LIMIT = 16  # how far along __cause__ / __context__ a wrapped DamagedOutputError is looked for


@dataclasses.dataclass(frozen=True)
class Damage:
    """An upstream of a failed task whose output (or manifest) is damaged.

    Attributes:
        upstream: the task that owns the damaged file.
        target: its output whose file (or manifest) is damaged.
        error: the error the load raised (``path``, ``kind``, ``commit``, ``detail``).
    """

    upstream: KartTask
    target: object
    error: DamagedOutputError

    def describe(self) -> str:
        """``{path}: {detail}``."""
        return f"{self.error.path}: {self.error.detail}"

    def state(self) -> str:
        """What is wrong, for a sentence about the output: ``is damaged``, or for an output another
        task class of the same name committed (kind "owner"), ``belongs to another task class``."""
        return "belongs to another task class" if self.error.kind == "owner" else "is damaged"


def damaged_upstream(task: KartTask, error: BaseException) -> Damage | None:
    """The upstream of ``task`` whose damaged output made ``task``'s run fail with ``error``; None otherwise.

    ``error`` is the run's exception; a ``DamagedOutputError`` is looked for in it and along its
    ``__cause__`` / ``__context__`` chain (a task may wrap the load's error in its own). Only the
    task's own ``requires()`` count: a load of any other task's output is not repaired here.
    """
    return damaged_output([upstream for upstream in task.kart_requires() if is_kart_task(upstream)], error)


def damaged_output(owners: list[KartTask], error: BaseException) -> Damage | None:
    """Which of ``owners`` owns the damaged file ``error`` (or an error along its cause chain) names; None otherwise.

    Used for the upstreams of a failed run (``damaged_upstream``) and for the tasks whose outputs a
    build loads to return them (``build()``'s roots, the Kedro dataset's task).
    """
    damaged = _find_damage(error)
    if damaged is None or damaged.path is None:
        return None
    for upstream in owners:
        for target in flatten(upstream.kart_outputs()):
            record = getattr(target, "record", None)
            path = target.path() if callable(getattr(target, "path", None)) else None
            manifest = record.manifest if isinstance(record, OutputRecord) else None
            if damaged.path in (path, manifest):
                return Damage(upstream, target, damaged)
    return None


def still_damaged(damage: Damage, signer: Signer | None) -> bool:
    """Whether the damage ``damage`` found is still there (checked again under the upstream's lock).

    False when another worker replaced the output meanwhile: the manifest is readable again (kind
    "manifest"), or its entry holds another commit id, or (kind "size") the file now has its
    committed size. A hash mismatch of the same commit is taken as still there (not re-hashed).
    """
    error = damage.error
    record = getattr(damage.target, "record", None)
    if not isinstance(record, OutputRecord):
        return True
    if error.kind == "unfinished":  # no record to compare with: the run logs tell whether a run finished since
        return unvouched_reason(record)[0] == "unfinished"
    try:
        manifest = read_manifest(storage_for(record.manifest), record.manifest, record.manifest_name, signer)
    except DamagedOutputError:
        return True  # unreadable: a manifest damaged now is damage whatever the kind found first
    except Exception:  # refused by signing now, or unreadable storage: the retry's load will say
        return False
    if error.kind == "manifest":
        return False
    entry = manifest.outputs.get(record.key) if manifest is not None else None
    if entry is None or entry.commit != error.commit:
        return False
    if error.kind == "size" and error.path is not None:
        return file_size(error.path) != entry.size
    return True


def _find_damage(error: BaseException) -> DamagedOutputError | None:
    seen: BaseException | None = error
    for _ in range(_CHAIN_LIMIT):
        if seen is None:
            return None
        if isinstance(seen, DamagedOutputError):
            return seen
        seen = seen.__cause__ if seen.__cause__ is not None else seen.__context__
    return None
