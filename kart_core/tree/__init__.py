"""Task-graph descriptions: ``kart_core.tree.task_info`` (tree string, table, dumps)."""

from kart_core.tree import task_info, task_info_formatter

__all__ = ["task_info", "task_info_formatter"]
