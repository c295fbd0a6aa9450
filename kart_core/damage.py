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
from collections.abc import Iterable

from kart_core.manifest import Manifest, OutputRecord, read_unverified
from kart_core.storage import storage_for
from kart_core.storage.base import protocol_of

__all__ = [
    "EFFECT",
    "FIX",
    "UNREADABLE_MANIFEST",
    "SizeMismatch",
    "describe_damage",
    "file_size",
    "size_mismatches",
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
    """

    path: str
    committed: int
    found: int
    problem: str = ""

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
            found.append(SizeMismatch(path, entry.size, size))
    return found


def file_size(path: str) -> int | None:
    """Bytes of the file at ``path``; None when it is missing or cannot be examined."""
    try:
        if not protocol_of(path):
            return os.stat(path[len("file://") :] if path.startswith("file://") else path).st_size
        with storage_for(path).open_read(path) as file:  # fsspec files seek to the end without reading
            return int(file.seek(0, 2))
    except OSError:  # missing, or not examinable here: nothing to show
        return None
