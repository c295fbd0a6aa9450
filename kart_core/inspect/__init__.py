"""Look into a workspace: the runs table, why a task will run, integrity checks, clean-up, and an HTML report.

Pure functions over kart's storage (local paths and fsspec URLs), used by the ``kart`` command
and usable from Python, e.g. ``kart_core.inspect.runs("s3://bucket/resources")``.
"""

from kart_core.inspect.cmdline import TaskSpecError, resolve_task_class, task_from_command_line
from kart_core.inspect.gc import GcPlan, delete_unreachable, plan_gc
from kart_core.inspect.report import render_report, write_report
from kart_core.inspect.runs import runs
from kart_core.inspect.verify import VerifyReport, remove_damaged, verify_workspace
from kart_core.inspect.why import explain

__all__ = [
    "GcPlan",
    "TaskSpecError",
    "VerifyReport",
    "delete_unreachable",
    "explain",
    "plan_gc",
    "remove_damaged",
    "render_report",
    "resolve_task_class",
    "runs",
    "task_from_command_line",
    "verify_workspace",
    "write_report",
]
