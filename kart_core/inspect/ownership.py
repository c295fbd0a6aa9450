"""Whose run is it? Tell, from a workspace listing, whether a ``(Class, unique id)`` belongs to ``module.Class``.

Run logs (``log/{kind}/{Class}_{uid}{ext}``, gokart's names) carry the bare class name only, and the
unique id hashes the class name, the parameters and the upstream ids, not the module: two projects
sharing a workspace can each have a ``Load``, and their runs' logs sit side by side. What carries the
module is where the outputs are:

- a default output is ``{module/path}/{Class}_{uid}{ext}`` (``kart_core.workspace.default_output_path``);
- the integrity manifest ``log/manifest/{Class}_{uid}.json`` (JSON, read as JSON only: nothing here
  unpickles) lists each output of the run by its workspace-relative path.

One output path is a *location* of a run. A location proves the run is ``module.Class``'s when it is
that class's default output path; it proves the run is another module's when it is named
``{Class}_{uid}`` in another folder (another module's default output, or a ``make_target`` path
named like the class). A ``make_target("a/b.csv")`` path proves nothing: a same-named class of
another project may use the same path (a copied project does). A run with proof for the asked
classes and none against is ``OWNED``; with proof against only, ``FOREIGN``; with no proof either
way (its outputs gone, custom paths only) or with both (two same-named classes with the same
parameters share a unique id, and so their run logs), ``UNKNOWN``. Callers that delete act on
``OWNED`` only.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence
from typing import Literal

from kart_core.manifest import read_unverified
from kart_core.signing import SIGNATURE_SUFFIX
from kart_core.storage import storage_for
from kart_core.workspace import (
    LOG_DIRECTORY,
    MANIFEST,
    FileEntry,
    join_url,
    log_relative_path,
    named_run,
    parse_log_relative,
)

__all__ = ["FOREIGN", "OWNED", "UNKNOWN", "Ownership", "Verdict"]

Verdict = Literal["owned", "foreign", "unknown"]
OWNED: Verdict = "owned"
FOREIGN: Verdict = "foreign"
UNKNOWN: Verdict = "unknown"


class Ownership:
    """Decides which runs and kart-named files of one workspace listing belong to ``classes``.

    Args:
        workspace: the workspace root (local path or fsspec URL) the listing is relative to.
        files: the workspace listing (``kart_core.workspace.list_files``); manifests found in it are
            read (JSON, at most once each) when a decision needs them.
        classes: the classes asked about, as ``module.Class`` (``type(task).__module__`` and ``__name__``).

    Raises:
        ValueError: a class is not given as ``module.Class``.
    """

    def __init__(
        self,
        workspace: str,
        files: Sequence[FileEntry],
        classes: Iterable[str],
    ) -> None:
        self._workspace = workspace
        self._modules: dict[str, set[str]] = {}  # bare class name -> module folders ("proja/tasks")
        for dotted in classes:
            module, _, name = dotted.rpartition(".")
            if not module or not name:
                raise ValueError(f"expected a class as module.Class, got {dotted!r}")
            self._modules.setdefault(name, set()).add(module.replace(".", "/"))
        self._present = {entry.relative for entry in files}
        self._outputs_by_uid: dict[str, list[str]] = {}  # unique id -> kart-named files outside log/
        self._classes_by_uid: dict[str, set[str]] = {}  # unique id -> class names of its run logs
        for entry in files:
            parsed = parse_log_relative(_unsigned(entry.relative))
            if parsed is not None:
                self._classes_by_uid.setdefault(parsed[2], set()).add(parsed[1])
                continue
            named = named_run(entry.relative)
            if named is not None and not entry.relative.startswith(f"{LOG_DIRECTORY}/"):
                self._outputs_by_uid.setdefault(named[1], []).append(entry.relative)
        self._manifests: dict[tuple[str, str], set[str]] = {}
        self._runs: dict[tuple[str, str], Verdict] = {}

    @property
    def class_names(self) -> set[str]:
        """The bare names of the classes asked about."""
        return set(self._modules)

    def run(self, class_name: str, unique_id: str) -> Verdict:
        """Whether the run ``(class_name, unique_id)`` seen in the workspace is one of the classes'."""
        key = (class_name, unique_id)
        if key not in self._runs:
            self._runs[key] = self._decide_run(class_name, unique_id)
        return self._runs[key]

    def file(self, relative: str) -> Verdict:
        """Whether the kart-named file at ``relative`` (workspace-relative) is an output or log of the classes.

        A run log (or its signature) follows its run; an output is ``OWNED`` when its own path proves
        it, or when an ``OWNED`` run's manifest lists it. A file of no asked class name is ``FOREIGN``.
        """
        parsed = parse_log_relative(_unsigned(relative))
        if parsed is not None:
            return self.run(parsed[1], parsed[2]) if parsed[1] in self._modules else FOREIGN
        named = named_run(relative)
        if named is None:
            return FOREIGN
        stem, uid = named
        candidates = ({stem} | self._classes_by_uid.get(uid, set())) & set(self._modules)
        verdicts = set()
        for class_name in candidates:
            verdict = self._location(class_name, uid, relative)
            if verdict == UNKNOWN and _unsigned(relative) in self._manifest_keys(class_name, uid):
                verdict = self.run(class_name, uid)  # listed by the run's own manifest
            verdicts.add(verdict)
        if OWNED in verdicts:
            return OWNED
        return UNKNOWN if UNKNOWN in verdicts else FOREIGN

    def _decide_run(self, class_name: str, unique_id: str) -> Verdict:
        if class_name not in self._modules:
            return FOREIGN
        locations = set(self._outputs_by_uid.get(unique_id, [])) | self._manifest_keys(class_name, unique_id)
        verdicts = {self._location(class_name, unique_id, location) for location in locations}
        if OWNED in verdicts:
            return UNKNOWN if FOREIGN in verdicts else OWNED
        return FOREIGN if FOREIGN in verdicts else UNKNOWN

    def _location(self, class_name: str, unique_id: str, relative: str) -> Verdict:
        """What one output path says about the run ``(class_name, unique_id)``."""
        folder, name = posixpath.split(_unsigned(relative))
        stem = f"{class_name}_{unique_id}"
        if name == stem or name.startswith(stem + "."):  # named as a default output: its folder is a module
            return OWNED if folder in self._modules.get(class_name, set()) else FOREIGN
        return UNKNOWN

    def _manifest_keys(self, class_name: str, unique_id: str) -> set[str]:
        """The output paths the run's manifest lists (empty without a readable one)."""
        key = (class_name, unique_id)
        if key not in self._manifests:
            relative = log_relative_path(MANIFEST, class_name, unique_id)
            self._manifests[key] = self._read_keys(relative) if relative in self._present else set()
        return self._manifests[key]

    def _read_keys(self, relative: str) -> set[str]:
        path = join_url(self._workspace, relative)
        # Unverified on purpose: only the paths are read, as evidence, and JSON runs no code.
        manifest = read_unverified(storage_for(path), path)
        return set(manifest.outputs) if manifest is not None else set()


def _unsigned(relative: str) -> str:
    # kart's earlier format kept an output's signature beside it, as {path}.sig
    return relative[: -len(SIGNATURE_SUFFIX)] if relative.endswith(SIGNATURE_SUFFIX) else relative
