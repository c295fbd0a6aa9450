"""The ``kart`` command: run, tree, runs, why, verify, gc and report, on local or object-storage workspaces.

Tasks are named ``module.Class`` and take luigi-style parameters after the name
(``kart run mypkg.tasks.Train --epochs 3 --Load-path data.csv``). ``kart run`` exits with
gokart's codes (luigi's rule, ``kart_core.outcome.exit_code``): 0 done, 40 a task failed,
20 an external input is missing, 30 not run, 50 the graph could not be walked, 4 the task could
not be created; an interrupt exits 1 after the summary (click's "Aborted!"). ``kart verify`` exits 3
when an output differs from its integrity record. Every command exits
4 on a usage error (an unknown task, parameter or option, a bad option value: gokart's code for a
task that cannot be created, where click would exit 2) and 1 when the workspace cannot be read or
written; each prints one line, never a traceback.
"""

from __future__ import annotations

import configparser
import contextlib
import csv
import dataclasses
import functools
import io
import json
import logging
import os
import re
import sys
import traceback
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

import click

from kart_core.errors import (
    KartError,
    ParameterTypeError,
    TaskDefinitionError,
    TaskParameterTooLargeError,
    TaskSpecError,
    UnknownSchemeError,
    UnsupportedFeatureError,
    WorkspacePathError,
)
from kart_core.inspect.runs import COLUMNS, format_size, format_table, run_rows
from kart_core.outcome import GOKART_RETCODES, exit_code, task_label
from kart_core.runlog_reader import one_line
from kart_core.target_config import VERIFY_ENVIRONMENT_VARIABLE
from kart_core.workspace import DEFAULT_TEMP_AGE, default_workspace, require_workspace

# Each command imports what it needs when it runs: `kart runs` never loads luigi or pandas (a
# second of start-up on a loaded machine), `kart run` loads the build machinery.
if TYPE_CHECKING:
    from kart_core.contract import LuigiTask
    from kart_core.inspect.gc import GcPlan
    from kart_core.inspect.verify import VerifyReport
    from kart_core.outcome import BuildResult

__all__ = ["main", "cli", "GOKART_CODES", "USAGE_ERROR", "COMMAND_FAILED", "DAMAGE_FOUND"]

# gokart.run's return codes (luigi's [retcode] names), which gokart users' schedulers check.
GOKART_CODES = GOKART_RETCODES
USAGE_ERROR = GOKART_CODES.unhandled_exception  # 4: what gokart.run exits with when a task cannot be created
COMMAND_FAILED = 1  # the workspace (or the report file) could not be read or written; an interrupt
DAMAGE_FOUND = 3  # kart verify found an output that differs from its integrity record


class _KartGroup(click.Group):
    """click's group with kart's exit rule: a usage error exits 4 with one line (click: 2 and a usage block)."""

    def main(  # type: ignore[override]
        self, args: Sequence[str] | None = None, prog_name: str | None = None, **extra: Any
    ) -> Any:
        standalone = extra.pop("standalone_mode", True)
        try:
            result = super().main(args, prog_name, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:  # plain `kart`: the help, as before click 8.2
            click.echo(exc.format_message())
            result = 0
        except click.UsageError as exc:
            _fail(exc.ctx.command_path if exc.ctx else "kart", exc.format_message(), USAGE_ERROR, exc.ctx)
        except click.ClickException as exc:
            _fail(getattr(exc, "command_path", "kart"), exc.format_message(), exc.exit_code)
        except click.Abort:  # Ctrl-C: click's own words and code
            click.echo("Aborted!", err=True)
            sys.exit(COMMAND_FAILED)
        except configparser.Error as exc:  # e.g. ${VAR} in luigi's config with VAR unset
            _fail(
                _current_command_path(),
                f"luigi's configuration cannot be read: {one_line(exc)}. Fix the config file or set the variable.",
                USAGE_ERROR,
            )
        if not standalone:
            return result
        sys.exit(result if isinstance(result, int) else 0)  # click returns --help's exit code here


def _current_command_path() -> str:
    ctx = click.get_current_context(silent=True)
    return ctx.command_path if ctx is not None else "kart"


def _fail(command: str, message: str, code: int, usage_of: click.Context | None = None) -> None:
    """Print ``kart <command>: message`` on one line to stderr and exit with ``code``."""
    text = " ".join(message.split()).removeprefix(f"{command}: ")
    if usage_of is not None:
        text += f" (see '{usage_of.command_path} --help')"
    click.echo(f"{command}: {text}", err=True)
    sys.exit(code)


class _CommandError(click.ClickException):
    """The command could not read or write what it works on (exit 1); remembers which command failed."""

    exit_code = COMMAND_FAILED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        ctx = click.get_current_context(silent=True)
        self.command_path = ctx.command_path if ctx is not None else "kart"


class _StderrWarnings(logging.Handler):
    """Warnings (e.g. a skipped unreadable run log) as one ``warning: ...`` line each on the command's stderr.

    Without a handler, Python's last-resort handler would print a library's logged traceback
    (fsspec and gcsfs log retries with one), which the command promises never to show.
    """

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"warning: {' '.join(record.getMessage().split())}", err=True)


@contextlib.contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    """``name=value`` in the environment for the command (the environment wins over luigi's config)."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


@contextlib.contextmanager
def _warnings_to_stderr() -> Iterator[None]:
    root = logging.getLogger()
    handler = _StderrWarnings(logging.WARNING)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)


# Options may come anywhere; everything kart does not know (--param value) goes to the task.
_TASK_COMMAND = {"ignore_unknown_options": True, "allow_extra_args": False}


class _TaskCommand(click.Command):
    """A command taking ``TASK_NAME [TASK_ARGS]``: ``--help`` or ``-h`` after the task's name prints that task's
    parameters (``cmdline.parameters_help``; luigi's ``luigi Task --help`` lists them too) and exits 0; before
    it, the command's own help."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """click's parse, after printing the task's parameters when ``--help`` follows its name.

        Raises:
            click.UsageError: the task named before ``--help`` cannot be imported (exit 4, one line).
        """
        name = _task_before_help(self, args)
        if name is not None:
            from kart_core.inspect import cmdline

            try:
                text = cmdline.parameters_help(name)
            except TaskSpecError as exc:
                raise click.UsageError(str(exc), ctx) from None
            click.echo(text)
            ctx.exit(0)
        return super().parse_args(ctx, args)


def _task_before_help(command: click.Command, args: list[str]) -> str | None:
    """The task name in ``args`` when ``-h``/``--help`` comes after it, else None (the command's own options
    that take a value, such as ``-w PATH``, are stepped over with their values)."""
    valued = {
        opt
        for param in command.params
        if isinstance(param, click.Option) and not param.is_flag and not param.count
        for opt in param.opts
    }
    task: str | None = None
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            return None
        if task is None and arg in valued:
            index += 2
            continue
        if task is None and not arg.startswith("-"):
            task = arg
        elif task is not None and arg in ("-h", "--help"):
            return task
        index += 1
    return None


_task_args = click.argument("task_args", nargs=-1, type=click.UNPROCESSED)
_workspace = click.option("--workspace", "-w", default=None, help="Workspace for every task (local path or s3://...).")


@click.group(name="kart", cls=_KartGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_paths",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="luigi config file (repeatable).",
)
@click.option(
    "--verify/--no-verify",
    default=None,
    help="Check each loaded output's content hash against its integrity record (the size is always checked). "
    "Default: [TaskOnKart] verify_outputs or KART_VERIFY_OUTPUTS.",
)
@click.version_option(package_name="kart-suite")
@click.pass_context
def cli(ctx: click.Context, config_paths: tuple[str, ...], verify: bool | None) -> None:
    """kart: build, inspect and clean gokart-compatible task caches."""
    ctx.with_resource(_warnings_to_stderr())
    if config_paths:
        from kart_core.utils import add_config
    if verify is not None:
        ctx.with_resource(_environment(VERIFY_ENVIRONMENT_VARIABLE, "1" if verify else "0"))
    for path in config_paths:
        try:
            add_config(path)
        except (configparser.Error, OSError, ValueError) as exc:
            raise click.BadParameter(f"cannot read {path}: {one_line(exc)}", param_hint="--config") from None


@contextlib.contextmanager
def _task(spec: str, args: Sequence[str], workspace: str | None = None) -> Iterator[Any]:
    """The task named on the command line; a bad name or parameter becomes a usage error (exit 4).

    Inside the body, a workspace that cannot be read (storage errors, a missing extra for its URL)
    ends the command with one line and exit 1.
    """
    from kart_core.inspect import cmdline

    cmdline.set_workspace(workspace)
    try:
        with cmdline.task_from_command_line(spec, args) as task, _workspace_errors(), _task_code_errors(task):
            yield task
    except TaskSpecError as exc:
        raise click.UsageError(str(exc)) from None


@contextlib.contextmanager
def _task_code_errors(task: Any) -> Iterator[None]:
    """An exception from the task's own code (its requires(), complete() or output()) while a command
    walks the graph: one headline naming the task, the task's traceback, and ``kart run``'s code 50."""
    try:
        yield
    except _DEFINITION_ERRORS as exc:  # kart found the task written wrong: kart run's code, its message alone
        _fail(_current_command_path(), str(exc), GOKART_CODES.scheduling_error)
    except (KartError, OSError, click.ClickException, configparser.Error):
        raise
    except Exception as exc:
        if _is_storage_error(exc):
            raise  # the workspace's, not the task's: _workspace_errors says it in one line
        command = _current_command_path()
        click.echo(
            f"{command}: {task_label(task)}'s graph cannot be walked: a task's requires(), complete() or "
            f"output() raised {type(exc).__name__}: {one_line(exc)}",
            err=True,
        )
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        sys.exit(GOKART_CODES.scheduling_error)


@contextlib.contextmanager
def _workspace_errors() -> Iterator[None]:
    try:
        yield
    except (KartError, OSError) as exc:
        if isinstance(exc, TaskSpecError | BrokenPipeError):  # a closed pipe (`| head`): click stops quietly
            raise
        raise _CommandError(str(exc) if isinstance(exc, KartError) else one_line(exc)) from None
    except Exception as exc:
        if not _is_storage_error(exc):
            raise
        raise _CommandError(
            f"the workspace's storage failed: {one_line(exc)}. Check the storage credentials and the workspace URL."
        ) from None


# Storage libraries whose errors are no OSError (botocore's NoCredentialsError, google.auth's
# DefaultCredentialsError): without this they showed as a traceback, or as a task's own error (exit 50).
_STORAGE_LIBRARIES = frozenset({"aiobotocore", "botocore", "s3fs", "gcsfs", "google", "adlfs", "azure", "fsspec"})


def _is_storage_error(exc: BaseException) -> bool:
    return type(exc).__module__.partition(".")[0] in _STORAGE_LIBRARIES


# --- kart run ------------------------------------------------------------------------------


@cli.command("run", cls=_TaskCommand, context_settings=_TASK_COMMAND)
@click.argument("task_name")
@_task_args
@_workspace
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Tasks run at the same time.")
@click.option("--executor", type=click.Choice(["process", "thread"]), default="process", show_default=True)
@click.option("--keep-going", is_flag=True, help="After a failure, go on with tasks that do not depend on it.")
@click.option(
    "--progress/--no-progress", default=None, help="Live progress bar (default: on a terminal with CI unset)."
)
def run_command(
    task_name: str,
    task_args: tuple[str, ...],
    workspace: str | None,
    workers: int,
    executor: str,
    keep_going: bool,
    progress: bool | None,
) -> None:
    """Build TASK_NAME (module.Class) and whatever it needs; exit non-zero naming the failed tasks."""
    from kart_core.inspect import cmdline

    cmdline.set_workspace(workspace)
    try:
        with cmdline.task_from_command_line(task_name, task_args) as task:
            with _workspace_errors(), _naming_user(task):  # an unusable workspace: one line and exit 1
                cmdline.check_writable_workspace(task.workspace_directory)
            code = _build(task, workers, executor, keep_going, progress, checked=str(task.workspace_directory))
    except TaskSpecError as exc:
        click.echo(f"kart run: {exc}", err=True)
        code = GOKART_CODES.unhandled_exception
    sys.exit(code)


def _build(task: LuigiTask, workers: int, executor: str, keep_going: bool, progress: bool | None, checked: str) -> int:
    """Build ``task``; ``checked`` is its workspace, checked already (the others are checked before anything runs)."""
    from kart_core.executor import Executor
    from kart_core.orchestrate import orchestrate

    try:
        result = orchestrate(
            [task],
            workers=workers,
            executor=cast(Executor, executor),  # click.Choice allows only the two values
            keep_going=keep_going,
            progress=progress,
            before_run=functools.partial(_check_workspaces, checked=checked),
        )
    except click.ClickException:  # a workspace of a task to run is unusable: one line, exit 1
        raise
    except UnsupportedFeatureError as exc:  # a luigi option kart's executor cannot honour (worker_timeout)
        click.echo(f"kart run: {exc}", err=True)
        return GOKART_CODES.unhandled_exception
    except Exception:  # an error in kart itself, not in a task (those are in the result)
        click.echo(f"kart run: building {task_label(task)} raised outside any task:", err=True)
        traceback.print_exc()
        return GOKART_CODES.unhandled_exception
    if _report_unknown_schemes(result):
        return COMMAND_FAILED
    _report_failures(result)
    return exit_code(result, GOKART_CODES)


def _report_unknown_schemes(result: BuildResult) -> bool:
    """Whether every failure is a workspace URL no storage serves (``foo://x``), each then said in one line.

    The graph walk meets such an upstream's workspace first (its ``complete()``), before the workspaces of the
    tasks to run are checked: it is the workspace's error, exit 1 as for the root's, not a task's traceback
    and the scheduling error's 50.
    """
    unknown = {key: error for key, error in result.failed.items() if isinstance(error, UnknownSchemeError)}
    if not unknown or len(unknown) != len(result.failed):
        return False
    for key, error in unknown.items():
        # The walk asked for an output's path under the workspace: name the workspace, as the root's check does.
        workspace = str(getattr(result.nodes.get(key), "workspace_directory", "") or "")
        url = workspace if workspace and error.url.startswith(workspace) else error.url
        click.echo(
            f"kart run: {UnknownSchemeError(url, error.scheme, f'the workspace of {result.label(key)}')}", err=True
        )
    if result.not_run:
        click.echo(f"Not run because of it: {', '.join(result.label(k) for k in result.not_run)}", err=True)
    return True


@contextlib.contextmanager
def _naming_user(task: Any) -> Iterator[None]:
    """A workspace URL of an unknown scheme named with the task that uses it (``the workspace of A[c72fa9f0]``)."""
    try:
        yield
    except UnknownSchemeError as exc:
        if exc.whose:
            raise
        raise exc.of(f"the workspace of {task_label(task)}") from None


def _check_workspaces(tasks: list[LuigiTask], checked: str) -> None:
    """Check the workspace of each task the build will run, as the root's was checked (``checked``) before
    the walk: a task with its own ``workspace_directory`` (parameter or config) that cannot be written
    failed at its first write, as a task failure with kart's traceback (exit 40)."""
    from kart_core.contract import is_kart_task
    from kart_core.inspect import cmdline

    users: dict[str, LuigiTask] = {}
    for task in tasks:
        if is_kart_task(task):
            users.setdefault(str(task.workspace_directory), task)
    users.pop(checked, None)
    with _workspace_errors():
        for path, user in users.items():
            with _naming_user(user):
                cmdline.check_writable_workspace(path, whose=f"the workspace of {task_label(user)}")


# Errors kart raises about a task's definition (a requires() cycle, an output path outside the workspace, a
# task parameter of the wrong type): the message names the task and the fix, and is printed alone.
_DEFINITION_ERRORS = (TaskDefinitionError, WorkspacePathError, ParameterTypeError, TaskParameterTooLargeError)


def _report_failures(result: BuildResult) -> None:
    for key, error in result.failed.items():
        when = " while walking the graph (complete(), output() or requires() raised)"
        click.echo(f"\nFAILED {result.describe(key)}{when if key in result.scheduling_failed else ''}:", err=True)
        if isinstance(error, _DEFINITION_ERRORS):
            # kart's own complete message about how the task is written; its traceback runs through kart.
            click.echo(f"{type(error).__name__}: {error}", err=True)
            for note in getattr(error, "__notes__", ()):
                click.echo(str(note), err=True)
        else:
            traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
    if result.failed:
        names = ", ".join(result.label(key) for key in result.failed)
        click.echo(f"kart run: {len(result.failed)} task(s) failed: {names}", err=True)
    if result.not_run:
        click.echo(f"Not run because of the failures: {', '.join(result.label(k) for k in result.not_run)}", err=True)


# --- kart tree / why / report ----------------------------------------------------------------


@cli.command("tree", cls=_TaskCommand, context_settings=_TASK_COMMAND)
@click.argument("task_name")
@_task_args
@_workspace
@click.option("--details", is_flag=True, help="Add parameters, output paths, processing time and task log.")
@click.option("--no-abbr", is_flag=True, help="Repeat shared subtrees instead of '...'.")
def tree_command(
    task_name: str, task_args: tuple[str, ...], workspace: str | None, details: bool, no_abbr: bool
) -> None:
    """Print the dependency tree of TASK_NAME with each task's status (COMPLETE / PENDING / DAMAGED / STALE /
    REFUSED) and unique id."""
    from kart_core.damage import FIX
    from kart_core.refusal import EFFECT as REFUSAL_EFFECT
    from kart_core.refusal import FIX as REFUSAL_FIX
    from kart_core.tree.task_info import make_task_info_as_tree_str

    with _task(task_name, task_args, workspace) as task:
        nodes = _require_workspaces(task)
        text = make_task_info_as_tree_str(task, details=details, abbr=not no_abbr).lstrip("\n")
        click.echo(text)
        if "(DAMAGED) " in text:
            click.echo(
                "DAMAGED: an output's size differs from its integrity record, or the record cannot be read; loading "
                "it fails, and a task that "
                f"must run and loads it runs it again first. {FIX}"
            )
        if "(STALE) " in text:
            click.echo(
                "STALE: built from an upstream output that was committed again since with other content (or from an "
                "upstream stale itself); a build reruns a task whose own input was replaced, then each task built on "
                "it whose loaded output then differs. `kart why` says which."
            )
        for note in _built_as_main_notes(nodes, text):
            click.echo(note)
        if "(REFUSED) " in text:
            click.echo(
                "REFUSED: signing is on and a load refuses its integrity record or an output (not signed, signed "
                f"with another key, another task's, or its manifest was removed). {REFUSAL_EFFECT} {REFUSAL_FIX}"
            )


@cli.command("why", cls=_TaskCommand, context_settings=_TASK_COMMAND)
@click.argument("task_name")
@_task_args
@_workspace
def why_command(task_name: str, task_args: tuple[str, ...], workspace: str | None) -> None:
    """Explain whether TASK_NAME will run, and which parameter or upstream differs from the cache."""
    from kart_core.inspect.why import explain

    with _task(task_name, task_args, workspace) as task:
        _require_workspaces(task)
        click.echo("\n".join(explain(task)))


@cli.command("report", cls=_TaskCommand, context_settings=_TASK_COMMAND)
@click.argument("task_name")
@_task_args
@_workspace
@click.option("--output", "-o", default="report.html", show_default=True, help="The HTML file to write.")
def report_command(task_name: str, task_args: tuple[str, ...], workspace: str | None, output: str) -> None:
    """Write one self-contained HTML page with the graph of TASK_NAME, its statuses and details."""
    from kart_core.inspect.report import write_report

    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder):  # found before the graph is walked, which may take long
        raise _CommandError(f"no folder {folder!r} to write {output!r} into: create it or pass another --output")
    with _task(task_name, task_args, workspace) as task:
        _require_workspaces(task)
        click.echo(f"Wrote {write_report([task], output)}")


def _require_workspaces(task: Any) -> list[Any]:
    """The graph's tasks under ``task`` (kart tasks only), after checking that each of their workspaces exists.

    A mistyped ``-w`` or ``workspace_directory`` showed every task PENDING ("no run is cached"), exit 0;
    an existing empty workspace is fine. Each distinct workspace is asked once (one request remotely).

    Raises:
        WorkspaceNotFoundError: nothing is at one of the workspaces.
    """
    from kart_core.contract import is_kart_task
    from kart_core.graph import walk

    nodes = [node for node in walk([task]).nodes.values() if is_kart_task(node)]
    users: dict[str, Any] = {}  # workspace -> the first task of the graph that uses it
    for node in nodes:
        users.setdefault(str(node.workspace_directory), node)
    for path, user in users.items():
        whose = "" if user is task else f"the workspace of {task_label(user)}"
        with _naming_user(user):
            require_workspace(path, "nothing was ever built there (`kart run` creates it)", whose)
    return nodes


_PENDING = re.compile(r"\(PENDING\) (\w+)\[(\w+)\]")


def _built_as_main_notes(nodes: list[Any], text: str) -> list[str]:
    """A note for each PENDING task of the tree whose class wrote outputs under ``__main__/`` (a script run
    with python): the very outputs it would load, or runs with other parameters; then the advice once."""
    from kart_core.contract import target_path
    from kart_core.inspect.as_main import MAIN_FOLDER, advice, main_counterpart, outputs_as_main, runs_as_main
    from kart_core.utils import flatten
    from kart_core.workspace import join_url

    pending = set(_PENDING.findall(text))
    notes: list[str] = []
    for node in nodes:
        name = type(node).__name__
        if (name, node.make_unique_id()) not in pending:
            continue
        outputs = [target_path(target) for target in flatten(node.output())]
        if not any(main_counterpart(node, path) for path in outputs):
            continue  # no output in its module's folder: running as __main__ would not move it
        found = outputs_as_main(node, outputs)
        if found:
            notes.append(
                f"PENDING {task_label(node)} was built as {MAIN_FOLDER}.{name}, by a script run with python: its "
                f"output(s) are {', '.join(found)}, not {', '.join(outputs)}."
            )
        elif others := runs_as_main(str(node.workspace_directory), name):
            folder = join_url(str(node.workspace_directory), MAIN_FOLDER)
            notes.append(
                f"PENDING {task_label(node)}: {len(others)} output(s) of {name} built as {MAIN_FOLDER}.{name} (a script "
                f"run with python), with other parameters, are in {folder}; `kart why` compares their parameters."
            )
        if len(notes) == 1:
            notes.append(advice(node))  # said once, after the first note
    return notes


# --- kart runs -------------------------------------------------------------------------------


@cli.command("runs")
@_workspace
@click.option("--class", "task_class", default=None, help="Only runs of this class (Class or module.Class).")
@click.option(
    "--param", "params", multiple=True, metavar="NAME=VALUE", help="Only runs with this parameter value (repeatable)."
)
@click.option(
    "--format", "output_format", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True
)
def runs_command(workspace: str | None, task_class: str | None, params: tuple[str, ...], output_format: str) -> None:
    """List every cached run in a workspace: class, unique id, parameters, time, finish time, output size.

    ``--class module.Class`` that matches no run and cannot be imported is an error (exit 1): a misspelt
    name must not read as "no runs". Runs of a class deleted from the code still list.
    """
    with _workspace_errors():
        rows = run_rows(workspace, task_class=task_class, params=_parse_pairs(params))
        if not rows:  # a mistyped path must not read as a workspace without runs
            require_workspace(default_workspace(workspace), "no run is there to list")
    if not rows and task_class is not None and "." in task_class:
        defined = _check_runs_class(task_class)
        if defined != task_class:  # a re-export (pkg.Train for pkg.tasks.Train): runs are kept by the defining module
            with _workspace_errors():
                rows = run_rows(workspace, task_class=defined, params=_parse_pairs(params))
    if output_format == "csv":
        click.echo(_records_csv(rows), nl=False)
    elif output_format == "json":
        click.echo(json.dumps(rows, indent=1, default=str))  # datetimes as "2026-11-30 07:18:05.123456"
    else:
        click.echo(format_table(rows))


def _check_runs_class(task_class: str) -> str:
    """The ``module.Class`` where the class ``task_class`` (no run found under that name) is defined: another
    name when a package re-exports it (``mlpipeline.Train`` for ``mlpipeline.tasks.Train``, attacker at17 H1).
    Raises the command's error when it names no importable task class."""
    from kart_core.inspect.cmdline import resolve_task_class

    try:
        cls = resolve_task_class(task_class)
    except TaskSpecError as exc:
        bare = task_class.rpartition(".")[2]
        raise _CommandError(
            f"no runs of --class {task_class} found, and it is no task class kart can import: {exc} "
            f"(--class {bare} lists the runs of any class of that name without importing it)"
        ) from None
    return f"{cls.__module__}.{cls.__qualname__}"


def _records_csv(rows: list[dict[str, Any]]) -> str:
    # As pandas' to_csv writes the runs DataFrame: a header, dicts and lists as Python text, None empty.
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(["" if row[name] is None else row[name] for name in COLUMNS])
    return out.getvalue()


def _parse_pairs(pairs: Sequence[str]) -> dict[str, str]:
    parsed = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{pair!r}: write NAME=VALUE, e.g. --param n=3", param_hint="--param")
        parsed[name.strip().replace("-", "_")] = value
    return parsed


# --- kart verify -----------------------------------------------------------------------------


@cli.command("verify")
@_workspace
@click.option("--quick", is_flag=True, help="Check presence and size only (one listing; no output is read).")
@click.option("--delete", is_flag=True, help="Delete the damaged outputs, so the next build runs their tasks again.")
@click.option(
    "--strict", is_flag=True, help="Fail (exit 3) on outputs no integrity record vouches for too (gokart's among them)."
)
@click.option(
    "--delete-unrecorded",
    is_flag=True,
    help="With signing off: delete the outputs no integrity record vouches for (gokart's too), so their tasks run again.",
)
@click.option(
    "--upstream-workspace",
    "upstreams",
    multiple=True,
    help="Where upstream tasks of another workspace are now (repeatable): a moved or copied workspace "
    "whose tasks this one loaded; their records are read there for the stale check.",
)
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table", show_default=True)
def verify_command(
    workspace: str | None,
    quick: bool,
    delete: bool,
    strict: bool,
    delete_unrecorded: bool,
    upstreams: tuple[str, ...],
    output_format: str,
) -> None:
    """Check every output named by an integrity record: present, committed size, content hash, signature.

    Exits 0 when every output present matches (missing outputs are listed, not failed), 3 when an output
    or a manifest differs (also after --delete removed the damaged outputs). Outputs no record vouches
    for (written by gokart, by hand, or whose record was removed) are listed apart and fail only with --strict.
    A task that loaded a task of another workspace is checked against that task's record at the place it
    was recorded, or in an --upstream-workspace holding it (that workspace moved or copied since).
    """
    from kart_core.inspect.verify import remove_damaged, verify_workspace

    with _workspace_errors():
        report = verify_workspace(default_workspace(workspace), hashes=not quick, upstreams=upstreams)
        deleted = remove_damaged(report, unrecorded=delete_unrecorded) if delete or delete_unrecorded else []
        if delete_unrecorded and not delete:  # only the notices were asked for
            deleted = [path for path in deleted if any(notice.path == path for notice in report.notices)]
    if output_format == "json":
        click.echo(json.dumps(_verify_json(report, deleted), indent=1))
    else:
        _print_verify(report, deleted, delete)
    if not (report.strict_ok if strict else report.ok):
        sys.exit(DAMAGE_FOUND)


def _verify_json(report: VerifyReport, deleted: list[str]) -> dict[str, Any]:
    problems = [dataclasses.asdict(problem) | {"deleted": problem.path in deleted} for problem in report.problems]
    return {
        "workspace": report.workspace,
        "manifests": report.manifests,
        "outputs": report.outputs,
        "unrecorded": report.unrecorded,
        "hashes": report.hashes,
        "runlogs": report.runlogs,
        "sides": report.sides,
        "problems": problems,
        "notices": [dataclasses.asdict(notice) | {"deleted": notice.path in deleted} for notice in report.notices],
    }


def _print_verify(report: VerifyReport, deleted: list[str], delete: bool) -> None:
    for problem in report.problems:
        mark = ""
        if problem.path in deleted:  # a killed direct writer's marker goes once its writes are undone
            mark = " (undone: the old outputs are back)" if problem.direct_write else " (deleted)"
            if problem.side and not problem.direct_write:  # no task's output: its writer stays complete
                mark = f" (deleted; {problem.task} stays complete: build it with rerun=True to write the file again)"
        click.echo(f"{problem.kind:>9}  {problem.task}  {_printable(problem.path)}: {problem.detail}{mark}")
    missing = sum(problem.kind == "missing" for problem in report.problems)
    unknown = sum(problem.kind == "upstream" for problem in report.problems)
    checked = "size and content hash" if report.hashes else "presence and size (--quick)"
    # With signing on, outputs no signed manifest lists were checked too (a load refuses them).
    unrecorded = f", and {report.unrecorded} output(s) no signed manifest lists" if report.unrecorded else ""
    runlogs = f", {report.runlogs} run log(s)" if report.runlogs else ""
    runlogs += f", {report.sides} side file(s)" if report.sides else ""
    click.echo(
        f"Checked {report.outputs} output(s) of {report.manifests} task(s){unrecorded}{runlogs} in {report.workspace} "
        f"({checked}): {len(report.problems) - missing - unknown} problem(s), {missing} missing"
        + (f", {unknown} upstream record(s) not found (stale or not: unknown)." if unknown else ".")
    )
    if unknown:
        click.echo(
            "Pass --upstream-workspace <folder or URL> (repeatable) naming where each upstream workspace is now; "
            "--strict fails on records not found."
        )
    removable = [problem for problem in report.problems if problem.removable]
    if removable and not delete:
        undone = any(problem.direct_write for problem in removable)
        outputs = any(not problem.side for problem in removable)
        click.echo(
            "Pass --delete to delete the damaged outputs"
            + (" (a killed run that wrote by path is undone instead: its old outputs go back)" if undone else "")
            + ("; the next build runs their tasks again." if outputs else ".")
        )
    if any(problem.side and problem.removable for problem in report.problems):
        # A side file is no task's output: no completion check misses it, so no build writes it again by itself.
        click.echo(
            "A side file (dumped beside a task's outputs) is no task's output: deleting it leaves the task that wrote "
            "it complete, so it is written again only when that task runs again: build it with rerun=True."
        )
    if report.notices:
        _print_unvouched(report, deleted)


def _print_unvouched(report: VerifyReport, deleted: list[str]) -> None:
    """The outputs no integrity record vouches for (signing off): not problems, listed apart."""
    gokart = [notice for notice in report.notices if notice.detail.startswith("written by gokart")]
    others = [notice for notice in report.notices if notice not in gokart]
    for notice in others:
        mark = " (deleted)" if notice.path in deleted else ""
        click.echo(f"{notice.kind:>9}  {notice.task}  {_printable(notice.path)}: {notice.detail}{mark}")
    click.echo(
        f"Unrecorded (no integrity record vouches for them; they load unchecked): {len(report.notices)} output(s), "
        f"{len(gokart)} written by gokart (fine in a resources/ folder shared with gokart), {len(others)} not "
        "(listed above). They fail the check only with --strict; --delete-unrecorded deletes them all."
    )


# --- kart gc ---------------------------------------------------------------------------------


@cli.command("gc", context_settings=_TASK_COMMAND)
@_task_args
@_workspace
@click.option("--dry-run", is_flag=True, help="Only list what would be deleted (the default).")
@click.option("--delete", "--no-dry-run", "delete", is_flag=True, help="Delete the listed files.")
@click.option(
    "--all",
    "all_classes",
    is_flag=True,
    help="Consider every kart-named file, not only those of the kept graphs' task classes.",
)
@click.option(
    "--temp-age",
    type=click.FloatRange(min=0),
    default=DEFAULT_TEMP_AGE,
    show_default=True,
    metavar="SECONDS",
    help="Temporary files, scratch folders and upload spools unchanged for this long are orphans.",
)
def gc_command(
    task_args: tuple[str, ...], workspace: str | None, dry_run: bool, delete: bool, all_classes: bool, temp_age: float
) -> None:
    """Delete outputs and run logs not reachable from the kept tasks, and orphaned temporaries.

    Usage: kart gc --keep module.Class [--param value] ... [--keep ...] [--all] [--temp-age SECONDS] [--delete]

    Lists the files with their sizes and deletes nothing unless --delete is given.
    """
    if dry_run and delete:
        raise click.UsageError("kart gc: --dry-run and --delete contradict each other; pass one.")
    from kart_core.graph import walk
    from kart_core.inspect import cmdline
    from kart_core.inspect.gc import delete_unreachable, plan_gc

    dry_run = not delete
    specs = _split_keeps(task_args)
    cmdline.set_workspace(workspace)
    tasks = []
    for name, args in specs:
        with _task(name, args) as task:
            walk([task])  # creates (and caches) the upstream tasks while their --Class-param values are visible
            tasks.append(task)
    with _workspace_errors():
        plan = plan_gc(tasks, workspace, scope="all" if all_classes else "classes", temp_age=temp_age)
        _warn_missing_keeps(tasks, specs)
        _print_plan(plan, dry_run)
        if not dry_run:
            deleted = delete_unreachable(plan)
            click.echo(f"Deleted {len(deleted)} file(s), {format_size(plan.delete_bytes)}.")


def _warn_missing_keeps(tasks: list[Any], specs: list[tuple[str, list[str]]]) -> None:
    """Say (stderr) which kept task is not complete in the workspace: its parameters are likely not the build's (a
    typo, a default or a luigi config this shell does not read), so every run of its classes is a candidate
    (attacker at17 H5)."""
    for task, (name, args) in zip(tasks, specs, strict=True):
        if not task.complete():
            click.echo(
                f"kart gc: warning: the kept task {task_label(task)} is not complete in this workspace, so nothing of "
                "its own runs is kept: are its parameters the build's (a typo, a default, a luigi config this "
                f"shell does not read)? `kart why {' '.join([name, *args])}` names the nearest cached run.",
                err=True,
            )


def _split_keeps(args: Sequence[str]) -> list[tuple[str, list[str]]]:
    """``--keep A --x 1 --keep B`` → ``[("A", ["--x", "1"]), ("B", [])]``."""
    specs: list[tuple[str, list[str]]] = []
    items = list(args)
    while items:
        head = items.pop(0)
        if head.startswith("--keep="):
            items.insert(0, head.partition("=")[2])
        elif head != "--keep":
            if not specs:
                raise click.UsageError(f"kart gc: expected --keep module.Class, got {head!r}.")
            specs[-1][1].append(head)
            continue
        if not items:
            raise click.UsageError("kart gc: --keep needs a task, e.g. --keep mypkg.tasks.Train.")
        specs.append((items.pop(0), []))
    if not specs:
        raise click.UsageError("kart gc: name the tasks to keep: --keep mypkg.tasks.Train [--param value] ...")
    return specs


def _print_plan(plan: GcPlan, dry_run: bool) -> None:
    verb = "Would delete" if dry_run else "Deleting"
    if plan.scope == "all":
        click.echo("Scope: every kart-named file in the workspace (--all).")
    else:
        click.echo(
            f"Scope: outputs and run logs of the kept graphs' classes ({', '.join(plan.classes)}); "
            f"{len(plan.other_classes)} kart file(s) of other classes, or whose class cannot be told, "
            "left alone (--all includes them)."
        )
    from kart_core.manifest import manifest_task

    for key, manifest in sorted(plan.vouching.items()):
        click.echo(
            f"Keeping the files of {manifest_task(manifest)}, outside the kept graphs: its run wrote the side file "
            f"{_printable(key)} last, and a load of that file checks it against its manifest {manifest!r}."
        )
    for info in plan.delete:
        click.echo(f"{format_size(info.size):>10}  {_printable(info.path)}")
    if plan.temporaries or plan.fresh_temporaries:
        click.echo(
            f"Temporaries unchanged for {_duration(plan.temp_age)} or more (killed writes, scratch, upload spools): "
            f"{len(plan.temporaries)}; younger ones left alone: {len(plan.fresh_temporaries)}."
        )
    for info in plan.temporaries:
        click.echo(f"{format_size(info.size):>10}  {_printable(info.path)}")
    count = len(plan.delete) + len(plan.temporaries)
    click.echo(
        f"{verb} {count} file(s), {format_size(plan.delete_bytes)}, from {plan.workspace}; "
        f"keeping {len(plan.kept)} reachable file(s)."
    )
    if dry_run and count:
        click.echo("Dry run: nothing deleted. Pass --delete to delete them.")


def _printable(path: str) -> str:
    # A file name with undecodable bytes must not make printing the plan fail.
    return path.encode("utf-8", "backslashreplace").decode("utf-8")


def _duration(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds:g} s"


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``kart`` console script."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="kart")


if __name__ == "__main__":  # `python -m kart_core.cli ...` runs the command (without this it did nothing, exit 0)
    main()
