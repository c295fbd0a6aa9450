"""Load a task's output(s) in the shape of its ``output()``, rebuilding a damaged one first when asked.

What ``build()`` returns and the Kedro dataset hands on. Below ``kart_core.orchestrate``, which loads
a build's roots before its summary line, so a root rebuilt here counts in the ``BuildResult``.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pluggy

from kart_core import target_config
from kart_core.commit_marker import read_consistently
from kart_core.contract import LuigiTask, is_kart_task
from kart_core.errors import DamagedOutputError
from kart_core.manifest import OutputRecord, read_manifest
from kart_core.runner import repair_output
from kart_core.storage import storage_for
from kart_core.structure import leaves, map_structure

__all__ = ["check_finished", "check_signed", "load_output"]


def load_output(
    task: LuigiTask,
    *,
    repair: bool = False,
    hook_manager: pluggy.PluginManager | None = None,
    repaired: list[str] | None = None,
) -> Any:
    """Load a task's output(s), keeping the shape of ``output()`` (target, list, tuple or dict, nested).

    Args:
        task: a complete task.
        repair: when an output of ``task`` is damaged (``DamagedOutputError``: another size than
            committed, or with verify on another content hash), run ``task`` again under its lock (its
            commit replaces the damaged output; a warning names the task, the file and what differs;
            upstreams deleted since are built first) and load once more, as a damaged upstream is
            rebuilt (``kart_core.runner.repair_output``). Not with repairs off
            (``[TaskOnKart] repair_damaged_outputs``, ``KART_REPAIR_DAMAGED``).
        hook_manager: plugins for that rebuild; default: run logs and entry-point plugins.
        repaired: when given, the node keys of the tasks that rebuild ran are appended (see
            ``repair_output``).

    Raises:
        DamagedOutputError: an output is damaged and ``repair`` is False or repairs are off; the
            message names the task, the file and ``kart verify --delete``.
        IntegrityError: signing refuses an output (never rebuilt: a person should look first).
        ConcurrentCommitError: another process's commit replaced the outputs while they were read, in
            two attempts (each task's outputs are handed back from one commit, ``kart_core.commit_marker``).
        Exception: what the rebuild raised (an upstream's run included).
    """

    def load(item: Any) -> Any:
        return item.load()

    if not is_kart_task(task):
        return map_structure(load, task.output())
    what = f"the output of {task.kart_label()}"
    try:
        return read_consistently(lambda: map_structure(load, task.kart_outputs()), what)
    except Exception as exc:
        if not repair or not repair_output(task, exc, hook_manager, repaired):
            raise
    return read_consistently(lambda: map_structure(load, task.kart_outputs()), what)


def check_signed(task: LuigiTask) -> None:
    """Raise when signing is on and refuses the integrity record of one of ``task``'s outputs.

    What loading them would raise first, found with one small read per manifest (no output is read):
    for a build that does not load its roots (``build(return_value=False)``, ``kart run``), so that a
    root found complete whose outputs no load would trust is not reported as cached. An unreadable
    manifest is damage, which only a load looks for (as gokart): not raised here.

    Raises:
        IntegrityError: the manifest is unsigned or its signature is wrong (signing turned on over an
            older cache, another key, tampering); the message names the task, the manifest and the fix.
    """
    signer = target_config.current().signer
    if signer is None or not is_kart_task(task):
        return
    seen: set[str] = set()
    for target in leaves(task.kart_outputs()):
        record = getattr(target, "record", None)
        if isinstance(record, OutputRecord) and record.manifest not in seen:
            seen.add(record.manifest)
            with contextlib.suppress(DamagedOutputError):
                read_manifest(storage_for(record.manifest), record.manifest, record.manifest_name, signer)


def check_finished(task: LuigiTask) -> None:
    """Raise when an output of ``task`` is what an unfinished run left, as loading it would.

    For a build that does not load its roots (``kart run``, ``gokart.run``, ``build(return_value=False)``),
    so that a root whose file a killed or failed run left (written by a path kart did not hand out: no
    integrity record, the task's start-of-run logs but no task log) is run again, not reported as cached
    (``TargetOnKart.check_finished``; attacker at14 N7). No output is read.

    Raises:
        DamagedOutputError: kind "unfinished", naming the task and the file.
    """
    if not is_kart_task(task):
        return
    for target in leaves(task.kart_outputs()):
        check = getattr(target, "check_finished", None)
        if callable(check):
            check()
