"""``kart_core.run()`` (gokart.run): run a task from the command line through kart's own executor (or luigid's).

``python main.py MyTask --local-scheduler --param 1`` with ``if __name__ == "__main__": gokart.run()``
parses the task as luigi's command line does, builds it with ``kart_core.build``'s executor (no
luigi worker or scheduler), and exits with luigi's return codes (gokart's values by default):
0 done, 20 missing external data, 30 not run, 40 a task failed, 50 the graph could not be
scheduled (requires() or complete() raised), 4 an error in kart itself. A task that cannot be
created raises luigi's exception (exit status 1), as gokart's ``gokart.run()``.

Without ``--local-scheduler`` (nor ``[core] local_scheduler``) the task is built as gokart builds it there:
by luigi's worker (``kart_core.worker.WorkerSchedulerFactory``) asking the central scheduler (luigid) at
``--scheduler-host``/``--scheduler-port`` for work, so luigid's resources and retry policy apply. On kart's
executor, ``Task.resources`` limit what runs at once (``kart_core.resources``) and a task with luigi's
``worker_timeout`` is refused before anything runs (``UnsupportedFeatureError``; kart cannot stop a run).

luigi's command-line parser is built once per call: it holds an option for every parameter of every
registered task class, and argparse checks each new option against all the others (quadratic), so a
project with a few hundred task classes paid about a second of CPU for each of the five parses.

Also, as gokart: ``--tree-info-mode simple|all`` writes the task tree and exits;
``--delete-unnecessary-output-files`` cleans the workspace and exits; ``--test-run-pandas``
checks every task on empty DataFrames and exits 0 or 1.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import sys
from collections.abc import Iterator
from typing import NoReturn

import luigi
import luigi.execution_summary
import luigi.interface
import luigi.retcodes
from luigi.cmdline_parser import CmdlineParser
from luigi.setup_logging import InterfaceLogging
from luigi.task_register import TaskClassAmbigiousException

from kart_core.contract import LuigiTask
from kart_core.errors import UnsupportedFeatureError
from kart_core.info import make_tree_info, tree_info
from kart_core.object_storage import ObjectStorage
from kart_core.orchestrate import orchestrate
from kart_core.outcome import GOKART_RETCODES, BuildResult, RetCodes, exit_code, task_label
from kart_core.storage.base import protocol_of
from kart_core.task_family import explained
from kart_core.testing.check_if_run_with_empty_data_frame import run_with_empty_data_frames, test_run
from kart_core.worker import WorkerSchedulerFactory
from kart_core.workspace_management import delete_local_unnecessary_outputs

__all__ = [
    "ObjectStorage",
    "RetCodes",
    "build_from_command_line",
    "retcodes",
    "run",
    "try_to_run_test_for_empty_data_frame",
]

# luigi's console logger: what a user of luigi's command line reads.
logger = logging.getLogger("luigi-interface")


def run(cmdline_args: list[str] | None = None, set_retcode: bool = True) -> NoReturn:
    """Run the task named on the command line (default ``sys.argv[1:]``) and exit with its return code.

    Args:
        cmdline_args: luigi-style arguments, e.g. ``["MyTask", "--local-scheduler", "--x", "1"]``.
        set_retcode: use gokart's return codes (10-50) instead of luigi's ``[retcode]`` config.

    Raises:
        luigi.task_register.TaskClassNotFoundException: no task class of that name.
        kart_core.task_family.AmbiguousTaskFamilyError: (a luigi ``TaskClassAmbigiousException``) imported
            classes of different modules have that name; the message names them.
        luigi.parameter.MissingParameterException: a required parameter is not given.
        ValueError: a parameter value cannot be parsed (``--n x`` for an IntParameter).
            As gokart 1.12.2's ``gokart.run()``, which creates the task before it builds: these
            propagate, so the process exits 1 with the exception, not with a return code.
    """
    args = list(cmdline_args or sys.argv[1:])
    # Kept open for the whole call: tasks created in requires() read --Class-param values from it.
    with _command_line(args) as parser:
        codes = _retcodes(set_retcode)
        _try_tree_info(parser)
        _try_delete_unnecessary_outputs(parser)
        _try_test_run(parser, codes)
        code = _build(parser, codes, raise_creation_errors=True)
    sys.exit(code)


@contextlib.contextmanager
def _command_line(args: list[str]) -> Iterator[CmdlineParser]:
    """luigi's ``CmdlineParser.global_instance(args)``, whose "Task 'X' is ambiguous" names the classes of family X.

    Raises:
        kart_core.task_family.AmbiguousTaskFamilyError: the root task's family is ambiguous.
    """
    with contextlib.ExitStack() as stack:
        try:
            parser = stack.enter_context(CmdlineParser.global_instance(args))
        except TaskClassAmbigiousException as exc:
            raise explained(exc) from None
        yield parser


def retcodes(cmdline_args: list[str], set_retcode: bool = True) -> RetCodes:
    """luigi's ``[retcode]`` settings (config file or ``--retcode-*``), with gokart's values when ``set_retcode``."""
    with _command_line(cmdline_args):
        return _retcodes(set_retcode)


def _retcodes(set_retcode: bool) -> RetCodes:
    """``retcodes`` of the command line being parsed (``CmdlineParser.global_instance``)."""
    configured = luigi.retcodes.retcode()
    values = {field.name: getattr(configured, field.name) for field in dataclasses.fields(RetCodes)}
    if not set_retcode:
        return RetCodes(**values)
    # gokart.run(set_retcode=True) replaces luigi's all-zero defaults, keeping unhandled_exception.
    return dataclasses.replace(GOKART_RETCODES, unhandled_exception=values["unhandled_exception"])


def build_from_command_line(
    cmdline_args: list[str], codes: RetCodes | None = None, raise_creation_errors: bool = False
) -> int:
    """Build the command line's task with kart's orchestration (``--workers N`` in parallel); return the exit code.

    The code follows luigi's rule (``kart_core.outcome.exit_code``); a task that cannot be created
    gives ``unhandled_exception`` (as luigi's ``luigi`` command), or with ``raise_creation_errors``
    raises what creating it raised (as gokart's ``gokart.run()``); an error in kart itself gives
    ``unhandled_exception``. A ``KeyboardInterrupt`` propagates.

    Raises:
        Exception: with ``raise_creation_errors``, what luigi's parser raised creating the task
            (``MissingParameterException``, ``ValueError`` for a bad value, ...).
    """
    with _command_line(cmdline_args) as parser:
        return _build(parser, codes or _retcodes(True), raise_creation_errors)


def _build(parser: CmdlineParser, codes: RetCodes, raise_creation_errors: bool) -> int:
    """``build_from_command_line`` of the command line ``parser`` holds (its global instance, kept open)."""
    env = luigi.interface.core()
    InterfaceLogging.setup(env)
    root = parser.get_task_obj() if raise_creation_errors else _task_or_none(parser)
    if root is None:
        return codes.unhandled_exception
    if not env.local_scheduler:
        return _build_with_central_scheduler(root, codes)
    try:
        result = orchestrate([root], workers=env.workers)
    except UnsupportedFeatureError:
        raise  # an option kart's executor cannot honour (worker_timeout): the message says what to do instead
    except Exception:  # as luigi's run_with_retcodes: anything else is an unhandled exception
        logger.exception("Uncaught exception in kart while building %s.", task_label(root))
        return codes.unhandled_exception
    _log_result(result)
    return exit_code(result, codes)


def _build_with_central_scheduler(root: LuigiTask, codes: RetCodes) -> int:
    """Build ``root`` as ``gokart.run`` does without ``--local-scheduler``: luigi's worker (``[gokart_worker]``,
    kart's ``WorkerSchedulerFactory``) asks the central scheduler (luigid) at ``--scheduler-url``, or
    ``--scheduler-host``/``--scheduler-port`` (``[core]``, default localhost:8082), for its work.

    The worker calls each task's ``run()``, which goes through ``run_one``; luigid's ``[resources]``, the tasks'
    ``worker_timeout`` and luigid's ``retry_count`` apply as under gokart. luigi's pid lock is taken unless
    ``--no-lock``. The exit code follows luigi's rule over the worker's summary (luigi's ``run_with_retcodes``).
    """
    try:
        outcome = luigi.interface._schedule_and_run([root], worker_scheduler_factory=WorkerSchedulerFactory())
    except luigi.interface.PidLockAlreadyTakenExit:
        return codes.already_running
    except Exception:
        logger.exception("Uncaught exception in luigi while building %s with the central scheduler.", task_label(root))
        return codes.unhandled_exception
    return _summary_code(outcome.worker, codes)


def _summary_code(worker: luigi.worker.Worker, codes: RetCodes) -> int:
    """luigi's exit code for what ``worker`` did: the largest code among the outcomes seen, or ``not_run`` when
    nothing failed but the root task was neither done before nor completed now."""
    sets = luigi.execution_summary._summary_dict(worker)
    seen = {name for name, tasks in sets.items() if tasks}
    code = max(
        (
            value
            for value, name in (
                (codes.missing_data, "still_pending_ext"),
                (codes.task_failed, "failed"),
                (codes.already_running, "run_by_other_worker"),
                (codes.scheduling_error, "scheduling_error"),
                (codes.not_run, "not_run"),
            )
            if name in seen
        ),
        default=0,
    )
    root = luigi.execution_summary._root_task(worker)
    if code == 0 and root not in sets["completed"] and root not in sets["already_done"]:
        return codes.not_run
    return code


def _task_or_none(parser: CmdlineParser) -> LuigiTask | None:
    try:
        task: LuigiTask = parser.get_task_obj()
    except Exception:
        logger.exception("Could not create the task from the command line; check its name and parameters.")
        return None
    return task


def _log_result(result: BuildResult) -> None:
    for key, error in result.failed.items():
        if key in result.scheduling_failed:
            logger.error(
                "Could not schedule %s: its complete(), output() or requires() raised %s: %s",
                result.label(key),
                type(error).__name__,
                error,
                exc_info=error,
            )
        else:
            logger.error("%s failed: %s: %s", result.label(key), type(error).__name__, error, exc_info=error)
    if result.not_run:
        logger.error("Not run because of the failures: %s", ", ".join(result.label(key) for key in result.not_run))


def _try_tree_info(parser: CmdlineParser) -> None:
    """With ``--tree-info-mode simple|all``: write the task tree to ``--tree-info-output-path`` and exit 0."""
    settings = tree_info()
    if settings.mode == "":
        return
    if settings.mode not in ("simple", "all"):
        raise ValueError(f'--tree-info-mode must be "simple" or "all", not {settings.mode!r}.')
    target = settings.output()
    target.dump(make_tree_info(parser.get_task_obj(), details=settings.mode == "all"))
    logger.info("Wrote the task tree to %s", target.path())
    sys.exit(0)


def _try_delete_unnecessary_outputs(parser: CmdlineParser) -> None:
    """With ``--delete-unnecessary-output-files``: delete the workspace's unneeded outputs and exit 0."""
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
    with _command_line(cmdline_args) as parser:
        _try_test_run(parser, codes or _retcodes(True))


def _try_test_run(parser: CmdlineParser, codes: RetCodes) -> None:
    """``try_to_run_test_for_empty_data_frame`` of the command line ``parser`` holds."""
    settings = test_run()
    if not settings.pandas:
        return
    code = _build(parser, codes, raise_creation_errors=False)
    if code != 0:
        logger.error("The pipeline itself failed (exit code %d); fix that before the empty-DataFrame check.", code)
        sys.exit(code)
    statuses = run_with_empty_data_frames(parser.get_task_obj(), namespace=settings.namespace)
    print("kart empty-DataFrame check:\n" + "\n".join(status.format() for status in statuses))
    sys.exit(0 if all(status.ok for status in statuses) else 1)
