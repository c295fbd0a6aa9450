"""What signing would refuse, seen cheaply by an inspection view (``kart tree``, ``kart runs``, ``kart why``).

With signing on, a load refuses a task's output when its manifest is not signed by the key (written
before signing was turned on, another task's manifest copied over it, another key), when the output
is not signed (written by gokart, or before signing), or when it is signed as a commit its manifest
does not record (the manifest was removed). ``complete()`` checks existence only (as gokart's), so a
build takes such a task as cached and then fails loading it with ``IntegrityError``; a refused file
is never rebuilt by itself (it may have been tampered with). The views show such a task as refused,
with the fix ``kart verify --delete``.

Cheap on purpose: the manifest's signature (one small file) and, for an output the signed manifest
does not record as sealed, its 64-byte header. The MAC over an output's content is ``kart verify``'s
job (it reads every output).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from kart_core.manifest import Entry, Manifest, OutputRecord, refusal_reason
from kart_core.raw_content import loads_data_only, raw_owner
from kart_core.signing import HEADER_SIZE, Signer, read_seal
from kart_core.storage import storage_for

__all__ = ["EFFECT", "FIX", "Refusal", "describe_refusal", "is_unsigned", "output_refusals", "refusals"]

FIX = (
    "Run `kart verify --delete` (it removes every file signing refuses; the next build runs the task again), "
    "or, if the key changed, list the old key in KART_SIGNING_OLD_KEYS."
)

# What a build does with a cached task whose files signing refuses (kart_core.target, kart_core.repair).
EFFECT = (
    "A build takes it as cached and loading it fails (IntegrityError); it is not rebuilt by itself, "
    "since the file may have been tampered with."
)


@dataclasses.dataclass(frozen=True)
class Refusal:
    """A file of a task that a load refuses with signing on.

    Attributes:
        path: the refused file's full path (local path or URL): the manifest's or an output's.
        reason: why, as one clause (``not signed (…)``).
    """

    path: str
    reason: str

    def describe(self) -> str:
        """``{path}: {reason}``."""
        return f"{self.path}: {self.reason}"


def describe_refusal(label: str, found: Sequence[Refusal]) -> str:
    """``{label} is cached but signing refuses it: {path}: {reason}; ...``, what a build does and the fix."""
    return f"{label} is cached but signing refuses it: {'; '.join(r.describe() for r in found)}. {EFFECT} {FIX}"


def output_refusals(targets: Iterable[object], signer: Signer, record: bool = True) -> list[Refusal]:
    """The files of a task (its flattened ``output()``) that a load refuses, in order; [] when it loads.

    Targets without an integrity record (plain luigi targets, bare ``make_target``) and missing outputs
    are skipped, and so are the data-format files of a raw input (a task with no ``run()``): they load unsigned in
    the runs of the tasks that require them (``kart_core.raw_content``, attacker at25 F11). ``record``: whether loads
    read the manifest (``[TaskOnKart] integrity_record``).
    """
    by_manifest: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for target in targets:
        found = getattr(target, "record", None)
        if isinstance(found, OutputRecord) and not (raw_owner(found.owner) and loads_data_only(target)):
            path = str(target.path())  # type: ignore[attr-defined]  # a target with a record is kart's
            by_manifest.setdefault((found.manifest, found.manifest_name), []).append((path, found.key))
    result: list[Refusal] = []
    for (manifest, name), outputs in by_manifest.items():
        result += refusals(manifest if record else None, name, outputs, signer, commits=record)
    return result


def refusals(
    manifest: str | None, manifest_name: str, outputs: Sequence[tuple[str, str]], signer: Signer, commits: bool = True
) -> list[Refusal]:
    """What a load refuses among one task's ``outputs`` (``(full path, workspace-relative key)`` pairs).

    Args:
        manifest: the task's manifest (full path); None when loads do not read it (records off).
        manifest_name: its workspace-relative name (what its signature binds).
        outputs: the task's outputs; missing ones are skipped.
        signer: the configured signer.
        commits: whether loads compare an output's signed commit with the manifest's (False with
            integrity records off: the MAC alone is checked, so any signed output loads).

    Returns:
        The refused manifest alone (a load fails on it before any output), else each refused output.
        A manifest that is damaged (not a manifest) is not a refusal: ``kart_core.damage`` shows it.
    """
    entries: dict[str, Entry] = {}
    data = _read(manifest) if manifest is not None else None
    if manifest is not None and data is not None:
        if signer.verify(data, manifest_name) is None:
            return [Refusal(manifest, f"signing refuses its manifest: {refusal_reason(data, manifest)}")]
        try:
            entries = Manifest.from_bytes(data[HEADER_SIZE:]).outputs
        except (ValueError, KeyError, TypeError):
            return []
    found = []
    for path, key in outputs:
        entry = entries.get(key)
        if entry is not None and entry.sealed:
            continue  # its MAC and commit: `kart verify` reads the content
        reason = _output_reason(path, entry, commits)
        if reason is not None:
            found.append(Refusal(path, reason))
    return found


def is_unsigned(path: str) -> bool:
    """Whether the file at ``path`` is present and carries no signature header (a load refuses it when
    signing is on: written by gokart, or before signing was turned on)."""
    head = _read(path, HEADER_SIZE)
    return head is not None and read_seal(head) is None


def _output_reason(path: str, entry: Entry | None, commits: bool) -> str | None:
    head = _read(path, HEADER_SIZE)
    if head is None:
        return None  # missing: the task is not complete, nothing to refuse
    seal = read_seal(head)
    if seal is None:
        return "not signed (written by gokart, or before signing was turned on)"
    if commits and seal.commit is not None and (entry is None or entry.commit != seal.commit):
        return f"signed as commit {seal.commit}, which no signed manifest records (the manifest was removed?)"
    if commits and seal.commit is None and entry is not None and entry.commit is not None:
        # Written while its task kept no record; the manifest records another version (kart_core.target).
        return (
            f"signed without a commit, but its manifest records commit {entry.commit} (an older version copied back?)"
        )
    return None


def _read(path: str, size: int = -1) -> bytes | None:
    """The first ``size`` bytes (all with -1) of the file at ``path``; None when it is missing or unreadable."""
    try:
        with storage_for(path).open_read(path) as file:
            return bytes(file.read(size))
    except OSError:
        return None
