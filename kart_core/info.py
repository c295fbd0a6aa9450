"""gokart's older names for the task tree: ``make_tree_info`` and the ``tree_info`` command-line task."""

from __future__ import annotations

from typing import Any

import luigi

from kart_core.target import TargetOnKart
from kart_core.task import TaskOnKart
from kart_core.tree.task_info import make_task_info_as_tree_str

__all__ = ["make_tree_info", "tree_info"]


def make_tree_info(
    task: Any,
    indent: str = "",
    last: bool = True,
    details: bool = False,
    abbr: bool = True,
    visited_tasks: set[str] | None = None,
    ignore_task_names: list[str] | None = None,
) -> str:
    """The dependency tree of ``task`` as text; same as ``make_task_info_as_tree_str``.

    ``indent``, ``last`` and ``visited_tasks`` are accepted for gokart compatibility and not used.
    """
    return make_task_info_as_tree_str(task, details=details, abbr=abbr, ignore_task_names=ignore_task_names)


class tree_info(TaskOnKart[Any]):  # noqa: N801 - gokart's public name, also the command-line section
    """Settings of ``--tree-info-mode`` / ``--tree-info-output-path`` for ``kart_core.run``: write the tree and exit."""

    mode = luigi.Parameter(default="", description='"simple" or "all" (with details); empty: build as usual.')
    output_path = luigi.Parameter(
        default="tree.txt", description="Where the tree is written, relative to the workspace."
    )

    def output(self) -> TargetOnKart:
        """``{workspace}/{output_path}``, without a unique id."""
        return self.make_target(self.output_path, use_unique_id=False)
