"""Load a task's output(s) in the shape of its ``output()``, rebuilding a damaged one first when asked.

What ``build()`` returns and the Kedro dataset hands on. Below ``kart_core.orchestrate``, which loads
a build's roots before its summary line, so a root rebuilt here counts in the ``BuildResult``.
"""

from __future__ import annotations

from typing import Any

import pluggy

from kart_core.commit_marker import read_consistently
from kart_core.contract import LuigiTask, is_kart_task
from kart_core.runner import repair_output
from kart_core.structure import map_structure

__all__ = ["load_output"]


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
