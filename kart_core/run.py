"""``kart_core.run()`` (gokart.run): run a task from the command line through kart's own executor.

``python main.py MyTask --local-scheduler --param 1`` with ``if __name__ == "__main__": gokart.run()``
parses the task as luigi's command line does, builds it with ``kart_core.build``'s executor (no
luigi worker or scheduler), and exits with luigi's return codes (gokart's values by default):
0 done, 20 missing external data, 30 not run, 40 a task failed, 50 the graph could not be
scheduled (requires() or complete() raised), 4 anything else (e.g. the task cannot be created).

Also, as gokart: ``--tree-info-mode simple|all`` writes the task tree and exits;
``--delete-unnecessary-output-files`` cleans the workspace and exits; ``--test-run-pandas``
checks every task on empty DataFrames and exits 0 or 1.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import luigi
import luigi.interface
import luigi.retcodes
from luigi.cmdline_parser import CmdlineParser
from luigi.setup_logging import InterfaceLogging

from kart_core.build import BuildResult, execute
from kart_core.graph import TaskGraph, walk
from kart_core.info import make_tree_info, tree_info
from kart_core.runner import default_hook_manager
from kart_core.storage.base import protocol_of
from kart_core.testing.check_if_run_with_empty_data_frame import run_with_empty_data_frames, test_run
from kart_core.workspace_management import delete_local_unnecessary_outputs

__all__ = ["RetCodes", "build_from_command_line", "retcodes", "run", "try_to_run_test_for_empty_data_frame"]

# luigi's console logger: what a user of luigi's command line reads.
logger = logging.getLogger("luigi-interface")

# gokart.run(set_retcode=True) replaces luigi's all-zero defaults with these.
_GOKART_RETCODES = {"already_running": 10, "missing_data": 20, "not_run": 30, "task_failed": 40, "scheduling_error": 50}


@dataclasses.dataclass(frozen=True)
class RetCodes:
    """Exit codes by outcome, as luigi's ``[retcode]`` section names them."""

    unhandled_exception: int = 4
    missing_data: int = 0
    task_failed: int = 0
    already_running: int = 0
    scheduling_error: int = 0
    not_run: int = 0


def run(cmdline_args: list[str] | None = None, set_retcode: bool = True) -> NoReturn:
    """Run the task named on the command line (default ``sys.argv[1:]``) and exit with its return code.

    Args:
        cmdline_args: luigi-style arguments, e.g. ``["MyTask", "--local-scheduler", "--x", "1"]``.
        set_retcode: use gokart's return codes (10-50) instead of luigi's ``[retcode]`` config.
    """
    args = list(cmdline_args or sys.argv[1:])
    codes = retcodes(args, set_retcode)
    _try_tree_info(args)
    _try_delete_unnecessary_outputs(args)
    try_to_run_test_for_empty_data_frame(args, codes)
    sys.exit(build_from_command_line(args, codes))


def retcodes(cmdline_args: list[str], set_retcode: bool = True) -> RetCodes:
    """luigi's ``[retcode]`` settings (config file or ``--retcode-*``), with gokart's values when ``set_retcode``."""
    with CmdlineParser.global_instance(cmdline_args):
        configured = luigi.retcodes.retcode()
    values = {field.name: getattr(configured, field.name) for field in dataclasses.fields(RetCodes)}
    return RetCodes(**{**values, **_GOKART_RETCODES}) if set_retcode else RetCodes(**values)


def build_from_command_line(cmdline_args: list[str], codes: RetCodes | None = None) -> int:
    """Build the command line's task with kart's executor (``--workers N`` in parallel); return the exit code."""
    codes = codes or retcodes(cmdline_args)
    with _parsed(cmdline_args) as parser:
        env = luigi.interface.core()
        InterfaceLogging.setup(env)
        root = _task_or_none(parser)
        if root is None:
            return codes.unhandled_exception
        try:
            graph = walk([root], expand=lambda task: not task.complete())
        except Exception:
            logger.exception("Could not schedule %s: requires() or complete() raised.", _name(root))
            return codes.scheduling_error
        manager = default_hook_manager()
        result = execute(graph, workers=env.workers, hook_manager=manager)
        manager.hook.kart_after_build(tasks=[root], result=result)
        _log_result(result, graph)
        return _exit_code(result, graph, root, codes)


@contextmanager
def _parsed(cmdline_args: list[str]) -> Iterator[CmdlineParser]:
    # Kept open for the whole build: tasks created in requires() read --Class-param values from it.
    with CmdlineParser.global_instance(cmdline_args) as parser:
        yield parser


def _task_or_none(parser: CmdlineParser) -> Any:
    try:
        return parser.get_task_obj()
    except Exception:
        logger.exception("Could not create the task from the command line; check its name and parameters.")
        return None


def _exit_code(result: BuildResult, graph: TaskGraph, root: Any, codes: RetCodes) -> int:
    """luigi's rule: the largest code among the outcomes seen; 'not run' if the root is still incomplete."""
    external = {key for key in result.failed if _is_external(graph.nodes[key])}
    outcomes = [
        (codes.missing_data, bool(external)),
        (codes.task_failed, bool(set(result.failed) - external)),
    ]
    code = max((value for value, seen in outcomes if seen), default=0)
    if code == 0 and not root.complete():
        return codes.not_run
    return code


def _is_external(task: Any) -> bool:
    # luigi.ExternalTask sets run = None: an input that nothing here can produce.
    return isinstance(task, luigi.ExternalTask) or getattr(type(task), "run", None) is None


def _log_result(result: BuildResult, graph: TaskGraph) -> None:
    logger.info(result.summary())
    for key, error in result.failed.items():
        logger.error("%s failed: %s: %s", _name(graph.nodes[key]), type(error).__name__, error, exc_info=error)
    if result.not_run:
        logger.error(
            "Not run because an upstream task failed: %s", ", ".join(_name(graph.nodes[k]) for k in result.not_run)
        )


def _name(task: Any) -> str:
    try:
        return str(task.kart_label()) if hasattr(task, "kart_label") else str(task.task_id)
    except Exception:
        return type(task).__name__  # the unique id needs requires(), which may be what failed


def _try_tree_info(cmdline_args: list[str]) -> None:
    """With ``--tree-info-mode simple|all``: write the task tree to ``--tree-info-output-path`` and exit 0."""
    with _parsed(cmdline_args) as parser:
        settings = tree_info()
        if settings.mode == "":
            return
        if settings.mode not in ("simple", "all"):
            raise ValueError(f'--tree-info-mode must be "simple" or "all", not {settings.mode!r}.')
        target = settings.output()
        target.dump(make_tree_info(parser.get_task_obj(), details=settings.mode == "all"))
    logger.info("Wrote the task tree to %s", target.path())
    sys.exit(0)


def _try_delete_unnecessary_outputs(cmdline_args: list[str]) -> None:
    """With ``--delete-unnecessary-output-files``: delete the workspace's unneeded outputs and exit 0."""
    with _parsed(cmdline_args) as parser:
        try:
            task = parser.get_task_obj()
        except Exception:
            return  # the build step reports it
        if not getattr(task, "delete_unnecessary_output_files", False):
            return
        if protocol_of(str(task.workspace_directory)):
            logger.info("--delete-unnecessary-output-files works on local workspaces only; nothing deleted.")
        else:
            delete_local_unnecessary_outputs(task)
    sys.exit(0)


def try_to_run_test_for_empty_data_frame(cmdline_args: list[str], codes: RetCodes | None = None) -> None:
    """With ``--test-run-pandas``: build, then run each task on empty DataFrames; exit 0 if all pass, else 1."""
    with _parsed(cmdline_args):
        settings = test_run()
    if not settings.pandas:
        return
    code = build_from_command_line(cmdline_args, codes)
    if code != 0:
        logger.error("The pipeline itself failed (exit code %d); fix that before the empty-DataFrame check.", code)
        sys.exit(code)
    with _parsed(cmdline_args) as parser:
        statuses = run_with_empty_data_frames(parser.get_task_obj(), namespace=settings.namespace)
    print("kart empty-DataFrame check:\n" + "\n".join(status.format() for status in statuses))
    sys.exit(0 if all(status.ok for status in statuses) else 1)
