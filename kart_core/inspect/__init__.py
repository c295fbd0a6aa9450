"""Look into a workspace: the runs table, why a task will run, integrity checks, clean-up, and an HTML report.

Pure functions over kart's storage (local paths and fsspec URLs), used by the ``kart`` command
and usable from Python, e.g. ``kart_core.inspect.runs("s3://bucket/resources")``. The names load
their modules on first use (``kart_core.lazy``): ``kart runs`` needs neither luigi nor pandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kart_core.lazy import install

if TYPE_CHECKING:
    from kart_core.errors import TaskSpecError
    from kart_core.inspect.cmdline import resolve_task_class, task_from_command_line
    from kart_core.inspect.gc import GcPlan, delete_unreachable, plan_gc
    from kart_core.inspect.report import render_report, write_report
    from kart_core.inspect.runs import runs
    from kart_core.inspect.verify import VerifyReport, remove_damaged, verify_workspace
    from kart_core.inspect.why import explain

_EXPORTS = {
    "TaskSpecError": "kart_core.errors",
    "resolve_task_class": "kart_core.inspect.cmdline",
    "task_from_command_line": "kart_core.inspect.cmdline",
    "GcPlan": "kart_core.inspect.gc",
    "delete_unreachable": "kart_core.inspect.gc",
    "plan_gc": "kart_core.inspect.gc",
    "render_report": "kart_core.inspect.report",
    "write_report": "kart_core.inspect.report",
    "runs": "kart_core.inspect.runs",
    "VerifyReport": "kart_core.inspect.verify",
    "remove_damaged": "kart_core.inspect.verify",
    "verify_workspace": "kart_core.inspect.verify",
    "explain": "kart_core.inspect.why",
}

__all__ = sorted(_EXPORTS)

install(__name__, _EXPORTS)
