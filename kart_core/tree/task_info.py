"""Describe a task graph: as a tree string, as a table, or dumped to a file.

Output format as gokart 1.12.2 prints it, e.g.::

    └─-(COMPLETE) Report[3e50712a...]
       |--(COMPLETE) Features[f4fdc63f...]
       |  └─-(COMPLETE) Load[ff575748...]
       └─-(PENDING) Load[ff575748...]
          └─- ...
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from kart_core.contract import KartTask, LuigiTask
from kart_core.target import make_target
from kart_core.tree.task_info_formatter import make_task_info_tree, make_tree_info, make_tree_info_table_list

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["dump_task_info_table", "dump_task_info_tree", "make_task_info_as_table", "make_task_info_as_tree_str"]


def make_task_info_as_tree_str(
    task: LuigiTask, details: bool = False, abbr: bool = True, ignore_task_names: list[str] | None = None
) -> str:
    """The dependency tree of ``task`` with each task's status; ``details`` adds params, outputs, time and log.

    Args:
        task: the root task.
        details: add ``(parameter=..., output=..., time=..., task_log=...)`` after each task.
        abbr: print a task's subtree only the first time; later occurrences show ``└─- ...``.
        ignore_task_names: class names to leave out, with everything upstream of them.
    """
    info = make_task_info_tree(task, ignore_task_names=ignore_task_names)
    return make_tree_info(info, indent="", last=True, details=details, abbr=abbr, visited_tasks=set())


def make_task_info_as_table(task: LuigiTask, ignore_task_names: list[str] | None = None) -> pd.DataFrame:
    """One row per unique task (root first, depth first), columns as gokart's: name, unique_id, output_paths,
    params, processing_time, is_complete, task_log, requires."""
    import pandas as pd  # here, not at module level: `import kart_core` stays free of pandas

    info = make_task_info_tree(task, ignore_task_names=ignore_task_names)
    return pd.DataFrame(make_tree_info_table_list(info, visited_tasks=set()))


def dump_task_info_table(task: KartTask, task_info_dump_path: str, ignore_task_names: list[str] | None = None) -> None:
    """Write ``make_task_info_as_table(task)`` to ``task_info_dump_path`` (with the root's unique id added),
    in the format its extension names (``.csv``, ``.pkl``, ...; local or fsspec URL)."""
    table = make_task_info_as_table(task, ignore_task_names=ignore_task_names)
    make_target(task_info_dump_path, unique_id=task.make_unique_id()).dump(table, lock_at_dump=False)


def dump_task_info_tree(
    task: KartTask, task_info_dump_path: str, ignore_task_names: list[str] | None = None, use_unique_id: bool = True
) -> None:
    """Pickle the TaskInfo tree of ``task`` to ``task_info_dump_path``, which must end with ``.pkl``."""
    extension = os.path.splitext(task_info_dump_path)[1]
    if extension != ".pkl":
        raise ValueError(
            f"dump_task_info_tree({task!r}): the path {task_info_dump_path!r} ends with {extension!r}; "
            "a TaskInfo tree is pickled, so give a path ending with '.pkl'."
        )
    info = make_task_info_tree(task, ignore_task_names=ignore_task_names)
    unique_id = task.make_unique_id() if use_unique_id else None
    make_target(task_info_dump_path, unique_id=unique_id).dump(info, lock_at_dump=False)
