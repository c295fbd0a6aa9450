"""Tasks named on a command line: ``module.Class --param value ...`` as luigi parses parameters.

The class is imported by its dotted name (the current directory is importable, as with
``python -m``); its parameters, and ``--OtherClass-param`` values for tasks created in
``requires()``, are read by luigi's own command-line parser, so values parse exactly as
they do for ``luigi`` and ``gokart.run``.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import io
import json
import os
import re
import sys
import traceback
from collections.abc import Iterator, Sequence
from typing import Any

import luigi
import luigi.configuration
from luigi.cmdline_parser import CmdlineParser
from luigi.task_register import Register

from kart_core import luigi_config
from kart_core.dotted import import_object
from kart_core.errors import KartError, TaskSpecError, WorkspaceNotFoundError
from kart_core.parameter import ListTaskInstanceParameter, TaskInstanceParameter
from kart_core.storage.base import protocol_of, storage_for
from kart_core.task import TaskOnKart
from kart_core.task_family import classes_of_family, dotted_names

__all__ = [
    "TaskSpecError",
    "check_writable_workspace",
    "parameters_help",
    "resolve_task_class",
    "set_workspace",
    "task_from_command_line",
]

_WHERE = "Pass a writable folder or a URL kart can use with -w, KART_WORKSPACE or [TaskOnKart] workspace_directory."


def check_writable_workspace(workspace: str, whose: str = "") -> None:
    """Check before a build that tasks can write into ``workspace``, creating the local folder.

    ``whose`` names who uses it in the message (after the path), e.g. "the workspace of A[c72fa9f0]".

    Without it, the first write (a run log, deep in the runner) failed as a task failure with
    kart's own traceback and advice about file formats.

    Raises:
        KartError: no storage for the URL's scheme (or its extra is missing), or the local folder
            cannot be created or written.
        WorkspaceNotFoundError: (a KartError) the URL's S3 or GCS bucket does not exist.
        Exception: the storage library's own error when the object store cannot be asked (missing
            credentials, an unreachable endpoint).
    """
    storage = storage_for(workspace)  # raises KartError naming the scheme and what to install
    named = f"{workspace!r} ({whose})" if whose else repr(workspace)
    if protocol_of(workspace):
        from kart_core.storage.remote import FsspecStorage  # here: a local workspace never imports fsspec

        if not isinstance(storage, FsspecStorage):
            storage.exists(workspace)  # one request: missing credentials or an unreachable store show here
        elif missing := storage.missing_bucket(workspace):  # the same request, for the bucket
            raise WorkspaceNotFoundError(
                f"The bucket {missing!r} of the workspace {named} does not exist, and kart does not create buckets. "
                f"Create it, or fix the bucket name. {_WHERE}"
            )
        return
    try:
        os.makedirs(workspace, exist_ok=True)
    except OSError as exc:
        raise KartError(f"Cannot create the workspace {named}: {_reason(exc)}. {_WHERE}") from None
    if not os.access(workspace, os.W_OK | os.X_OK):
        raise KartError(f"Cannot write into the workspace {named}: permission denied. {_WHERE}")


def _reason(exc: OSError) -> str:
    # "[Errno 2] No such file or directory: '/proc/nonexist'" reads as "No such file or directory".
    return exc.strerror or str(exc)


def resolve_task_class(dotted: str) -> type:
    """Import ``package.module.Class`` and return the class, with a clear error when it is not a task."""
    module_name, _, class_name = dotted.rpartition(".")
    if not module_name:
        raise TaskSpecError(f"{dotted!r}: name the task with its module, {_family_hint(dotted)}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`: modules in the current directory are found
    try:
        cls = import_object(dotted)
    except ImportError as exc:
        # import_object's message may already start with the name: say it once.
        reason = str(exc).removeprefix(f"{dotted!r}: ")
        raise TaskSpecError(f"{dotted!r}: {reason}. {_name_hint(module_name, class_name)}") from exc
    except Exception as exc:  # the module's own code: a SyntaxError, or its body raised while imported
        raise TaskSpecError(f"{dotted!r}: {_import_failure(exc, module_name)}") from exc
    if not (isinstance(cls, type) and issubclass(cls, luigi.Task)):
        raise TaskSpecError(f"{dotted!r}: module {module_name!r} has no task class {class_name!r}.")
    return cls


def _family_hint(family: str) -> str:
    """How to name the task ``family`` (a bare class name) by its module: the dotted names of the imported task
    classes of that family (two or more: luigi's lookup by family finds neither), else an example."""
    names = [repr(name) for name in dotted_names(classes_of_family(family))]
    if len(names) > 1:
        return f"one of {', '.join(names[:-1])} and {names[-1]} (each a task class of family {family!r})."
    return f"{names[0]}." if names else f"e.g. 'mypackage.tasks.{family}'."


# Task base classes a module imports (``TaskOnKart``, ``luigi.Task``, ``WrapperTask``): never the task meant.
_LIBRARIES = ("kart_core.", "luigi.", "kart_kedro.", "kart_airflow.")


def _name_hint(module_name: str, class_name: str) -> str:
    """What to type instead of a task name that does not import: the close task classes of the module when it
    imported (else the ones it has), the close modules of the current directory when its first part did not;
    then where names are looked up."""
    module = sys.modules.get(module_name)
    if module is not None:
        tasks = sorted(
            name
            for name, value in vars(module).items()
            if isinstance(value, type) and issubclass(value, luigi.Task) and not value.__module__.startswith(_LIBRARIES)
        )
        close = difflib.get_close_matches(class_name, tasks, n=3)
        if close:
            return f"Did you mean {', '.join(repr(f'{module_name}.{name}') for name in close)}?"
        if not tasks:
            return f"{module_name!r} defines no task class."
        more = f" and {len(tasks) - 10} more" if len(tasks) > 10 else ""
        return f"Its task classes: {', '.join(tasks[:10])}{more}."
    top = module_name.partition(".")[0]
    if top not in sys.modules:
        close = difflib.get_close_matches(top, _local_modules(), n=3)
        if close:
            rest = module_name[len(top) :]
            names = ", ".join(repr(f"{name}{rest}.{class_name}") for name in close)
            return f"Did you mean {names}? Modules are found in the current directory and on PYTHONPATH."
    return "Check the name and PYTHONPATH."


def _local_modules() -> list[str]:
    """The modules and packages of the current directory (``python -m`` finds them; so does kart)."""
    try:
        entries = os.listdir(".")
    except OSError:
        return []
    return [
        entry.removesuffix(".py")
        for entry in entries
        if (entry.endswith(".py") and os.path.isfile(entry)) or os.path.isfile(os.path.join(entry, "__init__.py"))
    ]


def _import_failure(exc: Exception, module_name: str) -> str:
    """What went wrong importing the user's module, with the file and line, and how to see the rest.

    A SyntaxError names the file and line it is about; any other exception, the innermost frame it was
    raised in (the module's body, or a library it called).
    """
    if isinstance(exc, SyntaxError) and exc.filename:
        where, what = f"{exc.filename}, line {exc.lineno}", f"{type(exc).__name__}: {exc.msg}"
    else:
        frames = traceback.extract_tb(exc.__traceback__)
        where = f"{frames[-1].filename}, line {frames[-1].lineno}" if frames else "?"
        what = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    return (
        f"importing {module_name!r} failed: {what} ({where}). Fix the module; "
        f"`python -c 'import {module_name}'` shows the whole traceback."
    )


@contextlib.contextmanager
def task_from_command_line(dotted: str, args: Sequence[str] = ()) -> Iterator[Any]:
    """Yield the task ``dotted`` with luigi-style ``args``; the parsed values stay visible to ``requires()``.

    The class is the one ``dotted`` names, even when another imported module has a task class of the same
    family (``a.Greet`` and ``b.Greet``): luigi's own ``CmdlineParser`` looks the bare family up in its
    registry, which then stops on "Task 'Greet' is ambiguous" (or takes the most derived class of that family).
    Here luigi's option set (every registered task's ``--Family-param``, luigi's own options) is built once,
    the named class's parameters are added to it, and the parsed values are luigi's global command line
    (``CmdlineParser.get_instance()``) while the body runs, as ``luigi.interface`` has them.

    Raises:
        TaskSpecError: the class cannot be imported, an argument names no parameter, a value cannot be parsed,
            or the task cannot be created.
    """
    cls = resolve_task_class(dotted)
    family = cls.get_task_family()  # type: ignore[attr-defined]
    try:
        parser, first_pass = _parser_for(cls, family)
        args = _checked_args(cls, family, args, dotted, set(parser._option_string_actions), first_pass)
    except argparse.ArgumentError as exc:
        # luigi adds the root task's parameters as --name beside its own options: a parameter named like one
        # of them (``workers``, ``worker_id``) cannot be added, for any value (luigi's own command line fails too).
        flag = exc.argument_name or "a parameter"
        raise TaskSpecError(
            f"{dotted}: its parameter {flag} has the name of one of luigi's own options, so luigi's command line "
            f"parser cannot take this task at all (luigi's own cannot either). Rename the parameter, or build the "
            f"task from Python: kart_core.build({dotted.rpartition('.')[2]}(...))."
        ) from None
    known = _parsed(parser, cls, family, args, dotted)
    with _global_command_line(_ParsedCommandLine(cls, known)) as parsed:
        _check_other_tasks_values(parsed, cls, family, dotted)
        yield _create(cls, parsed, dotted)


def _parser_for(cls: Any, family: str) -> tuple[argparse.ArgumentParser, dict[str, argparse.Action]]:
    """luigi 3.8.1's command-line parser (``CmdlineParser._build_parser(root_task=family)``) with ``cls`` as the
    root task whatever the registry says its family is; and luigi's first-pass options (before the root's).

    luigi leaves out the ``--Family-param`` options of an ambiguous family and adds the local ``--param`` ones of
    the class the registry finds for the family: here both are ``cls``'s own. Built once (luigi builds it three
    times per parse; argparse checks each option against all the others, quadratic in the registered parameters).

    Raises:
        argparse.ArgumentError: a parameter of ``cls`` has the name of one of luigi's own options.
    """
    parser = CmdlineParser._build_parser()  # luigi's options and every unambiguous family's --Family-param
    first_pass = dict(parser._option_string_actions)
    for name, param in cls.get_params():
        in_section = f"{family}_{name}" if cls.use_cmdline_section else name  # luigi's is_without_section rule
        global_flag = "--" + in_section.replace("_", "-")
        if global_flag not in parser._option_string_actions:  # the family is ambiguous: luigi left it out
            parser.add_argument(global_flag, help=argparse.SUPPRESS, **param._parser_kwargs(name, family))
        local_flag = "--" + name.replace("_", "-")
        if local_flag != global_flag:
            parser.add_argument(local_flag, help=argparse.SUPPRESS, **param._parser_kwargs(name))
    return parser, first_pass


def _parsed(parser: argparse.ArgumentParser, cls: Any, family: str, args: list[str], dotted: str) -> Any:
    """``args`` parsed by ``parser`` (``_parser_for``), after importing luigi's ``--module`` as luigi does.

    Raises:
        TaskSpecError: an unknown or malformed argument (argparse's complaint in one line, with the close
            parameter names), or ``--module`` cannot be imported.
    """
    complaint = io.StringIO()
    try:
        # argparse prints its usage and complaint to stderr, then exits: keep the complaint for one clear line.
        with contextlib.redirect_stderr(complaint):
            found, _ = parser.parse_known_args([family, *args])
            if found.core_module:  # luigi imports it, then parses with the --Class-param options of its classes
                __import__(found.core_module)
                parser = _parser_for(cls, family)[0]
            known = parser.parse_args([family, *args])
    except SystemExit:  # argparse exits on unknown or malformed arguments
        reason = complaint.getvalue().strip().splitlines()[-1:] or ["unknown arguments"]
        unknown = _unrecognized_flag(reason[0])
        if unknown is not None:
            raise _no_such_parameter(cls, dotted, unknown) from None
        raise TaskSpecError(
            f"{dotted}: bad parameters {list(args)} ({reason[0].partition('error: ')[2] or reason[0]}). "
            f"Pass them as --name value; {_parameters_of(cls)}."
        ) from None
    except Exception as exc:
        raise TaskSpecError(f"{dotted}: cannot parse parameters {list(args)}: {exc}") from exc
    return known


class _ParsedCommandLine(CmdlineParser):
    """luigi's ``CmdlineParser`` for arguments kart parsed (``_parsed``), its root task the class named.

    luigi's parameters read ``CmdlineParser.get_instance().known_args`` (``Parameter._value_iterator``); its
    ``get_task_obj()`` makes the root task of this class, not the registry's class of its family.
    """

    def __init__(self, cls: type, known_args: argparse.Namespace) -> None:  # not luigi's: nothing to parse again
        self.root_class = cls
        self.known_args = known_args

    def _get_task_cls(self) -> type:
        return self.root_class


@contextlib.contextmanager
def _global_command_line(parsed: CmdlineParser) -> Iterator[CmdlineParser]:
    """``parsed`` as luigi's global command line while the body runs (``CmdlineParser.global_instance``, whose
    own constructor would parse the arguments again by the bare family); the one before it back afterwards."""
    before = CmdlineParser._instance
    CmdlineParser._instance = parsed  # type: ignore[assignment]  # luigi declares it `_instance = None`
    try:
        yield parsed
    finally:
        CmdlineParser._instance = before


def _checked_args(
    cls: type,
    family: str,
    args: Sequence[str],
    dotted: str,
    options: set[str],
    first_pass: dict[str, argparse.Action],
) -> list[str]:
    """``args`` with ``--name=value`` split in two; ``TaskSpecError`` for a ``--flag`` that only abbreviates options.

    ``options``: every option string of the task's parser; ``first_pass``: those of luigi's first pass (its own
    options and the ``--Family-param`` of every registered task, ``_parser_for``).

    luigi's parser is argparse with abbreviations on, so ``--m 3`` silently meant ``--module 3``
    (then "No module named '3'") and ``--lr`` could set ``--lr-decay``: a value meant for one
    parameter went to another. luigi's first pass (which finds the task's name) knows no task
    parameters, so there ``--n=4`` abbreviated luigi's ``--no-lock`` and failed; ``--n 4`` passes it.
    A parameter whose flag starts luigi's own options (``--w`` of ``--worker-id``, ``--worker-...``) made
    that first pass stop as ambiguous (in luigi too): it is passed in its global spelling ``--Family-w``.
    """
    checked: list[str] = []
    for arg in args:
        flag, equals, value = arg.partition("=")
        taken_for = [first_pass[option] for option in first_pass if option.startswith(flag)]
        if flag in options and flag not in first_pass and (len(taken_for) > 1 or any(a.nargs != 0 for a in taken_for)):
            # A parameter named like the start of luigi's own options (``w``, ``worker``): luigi's first pass
            # knows no task parameters and stops on "ambiguous option: --w could match --worker-id, ...", or
            # reads the value as the one option's (``--work 3`` as ``--workers``). The task's global spelling
            # (``--Family-w``) sets the same parameter. (``--n`` alone abbreviating the flag ``--no-lock`` is harmless.)
            flag = _global_flag(cls, family, flag)
            arg = f"{flag}={value}" if equals else flag
        if not flag.startswith("--") or flag in options:
            checked.extend([flag, value] if equals and flag in options and not value.startswith("-") else [arg])
            continue
        if any(option.startswith(flag) for option in options):
            raise _no_such_parameter(cls, dotted, flag, abbreviated=True)
        checked.append(arg)
    return checked


def _unrecognized_flag(complaint: str) -> str | None:
    """The first ``--flag`` of argparse's ``unrecognized arguments: --flag value ...`` complaint, else None."""
    _, found, rest = complaint.partition("unrecognized arguments: ")
    flags = [word for word in rest.split() if word.startswith("--")] if found else []
    return flags[0].partition("=")[0] if flags else None


def _no_such_parameter(cls: Any, dotted: str, flag: str, abbreviated: bool = False) -> TaskSpecError:
    """The error for ``flag``, which names no parameter of ``cls``: the task, the flag, the close matches among
    the task's parameters and how to list them.

    Not luigi's options or its ``--Family-param`` spellings, which argparse lists for an ambiguous prefix
    (``--w could match --worker-id, --worker-ping-interval, ...``): a user mistyping a parameter wants the
    parameter. ``abbreviated``: the flag starts an option's name (argparse would have taken it for that
    option; kart does not abbreviate).
    """
    close = _close_parameters(cls, flag)
    why = " (names are not abbreviated)" if abbreviated else ""
    hint = f" Did you mean {', '.join(close[:-1])} or {close[-1]}?" if len(close) > 1 else ""
    hint = hint or (f" Did you mean {close[0]}?" if close else "")
    return TaskSpecError(
        f"{dotted} has no parameter {flag}{why}.{hint} `kart run {dotted} --help` lists its parameters."
    )


def _close_parameters(cls: Any, flag: str) -> list[str]:
    """Up to three of ``cls``'s parameter flags close to ``flag``: those it starts, then difflib's close matches;
    the task's own parameters before those it inherits from TaskOnKart."""
    inherited = {name for name, _ in TaskOnKart.get_params()} if issubclass(cls, TaskOnKart) else set()
    names = sorted((name for name, _ in cls.get_params()), key=lambda name: name in inherited)
    flags = [f"--{name.replace('_', '-')}" for name in names]
    started = [option for option in flags if option.startswith(flag)]
    # Compared without the leading "--", which would make any two short names look alike ("--m" and "--n").
    bare = {option[2:]: option for option in flags}
    similar = [bare[name] for name in difflib.get_close_matches(flag.lstrip("-"), list(bare), n=3, cutoff=0.6)]
    return list(dict.fromkeys(started + similar))[:3]


def parameters_help(dotted: str) -> str:
    """The parameters of task ``dotted`` as ``kart run TASK --help`` prints them (luigi's ``Task --help`` lists
    them with its own options and every task's ``--Family-param``; this is the task's alone).

    One line per parameter its own classes declare (flag, type, the value luigi's config sets with the section
    and file, else its default or "required", description), then the names of those it inherits from TaskOnKart.

    Raises:
        TaskSpecError: the task cannot be imported (``resolve_task_class``).
    """
    cls: Any = resolve_task_class(dotted)
    luigi_config.refresh()  # LUIGI_CONFIG_PATH as it is now (kart_core.luigi_config), as a build reads it
    inherited = {name for name, _ in TaskOnKart.get_params()} if issubclass(cls, TaskOnKart) else set()
    own = [(name, param) for name, param in cls.get_params() if name not in inherited]
    lines = [f"{dotted} parameters (--name value; a BoolParameter is a flag):"]
    width = max((len(name) for name, _ in own), default=0) + 2
    for name, param in own:
        flag = f"--{name.replace('_', '-')}".ljust(width + 2)
        default = _configured(cls, name, param)
        if default is None:
            default = "required" if param._default is luigi.parameter._no_value else f"default {param._default!r}"
        description = f"  {' '.join(str(param.description).split())}" if param.description else ""
        lines.append(f"  {flag} {type(param).__name__}, {default}{description}")
    if not own:
        lines.append("  (none of its own)")
    if inherited:
        names = ", ".join(f"--{name.replace('_', '-')}" for name in sorted(inherited))
        lines.append(f"Inherited from TaskOnKart: {names}.")
    lines.extend(_task_value_examples(own))
    lines.append("--Class-name value sets parameter name of every Class task made in requires().")
    return "\n".join(lines)


def _task_value_examples(own: list[tuple[str, Any]]) -> list[str]:
    """How to write the value of each task-valued parameter in ``own`` on the command line (gokart's JSON form,
    ``TaskInstanceParameter.parse``), with its expected class's family and first parameter when it has them."""
    examples = []
    for name, param in own:
        if not isinstance(param, TaskInstanceParameter | ListTaskInstanceParameter):
            continue
        one = json.dumps({"type": _family_of(param), "params": _example_params(_expected_class(param))})
        flag = f"--{name.replace('_', '-')}"
        value = f"[{one}]" if isinstance(param, ListTaskInstanceParameter) else one
        examples.append(f"A task as {flag} is JSON naming its class (imported), e.g. {flag} '{value}'.")
    return examples


def _expected_class(param: Any) -> Any:
    """The task class a TaskInstanceParameter (``expected_type``) or a ListTaskInstanceParameter
    (``expected_elements_type``) takes; None when it takes any task."""
    return getattr(param, "expected_type", None) or getattr(param, "expected_elements_type", None)


def _family_of(param: Any) -> str:
    expected = _expected_class(param)
    return (
        str(expected.get_task_family())
        if isinstance(expected, type) and hasattr(expected, "get_task_family")
        else "TaskFamily"
    )


def _example_params(expected: Any) -> dict[str, str]:
    """The first own parameter of task class ``expected`` with its default as luigi serializes it ("VALUE" when
    it has none); {} for no class or none of its own."""
    if not isinstance(expected, type) or not issubclass(expected, TaskOnKart):
        return {}
    inherited = {name for name, _ in TaskOnKart.get_params()}
    for name, param in expected.get_params():
        if name not in inherited:
            default = param._default
            return {name: "VALUE" if default is luigi.parameter._no_value else param.serialize(default)}
    return {}


def _configured(cls: Any, name: str, param: luigi.Parameter) -> str | None:
    """``configured VALUE ([Section] in 'file')`` when luigi's config sets parameter ``name`` of ``cls``, as the task
    reads it: gokart's ``[TaskOnKart]`` key first (for a parameter declared in the class's own body, as
    ``TaskOnKart._add_configuration`` reads it; it outranks the class's section), then luigi 3.8.1's
    ``[Family] name`` (``Parameter._get_value_from_config``); None when neither sets it. The file named is the
    last one luigi reads that sets it (the one whose value wins: ``luigi_config.files_setting``).

    A value that cannot be parsed is shown as written, with the parameter type's complaint (a build then stops
    on it, naming the file).
    """
    config = luigi.configuration.get_config()
    # gokart injects [TaskOnKart] keys into the parameters a class declares in its own body (not inherited ones).
    injected = issubclass(cls, TaskOnKart) and isinstance(vars(cls).get(name), luigi.Parameter)
    sections = [TaskOnKart.__name__] if injected else []
    for section in [*sections, cls.get_task_family()]:
        raw = config.get(section, name, None)
        if raw is None:
            continue
        try:
            shown = repr(param.parse(raw))
        except Exception as exc:  # each parameter type raises its own error for a malformed value
            shown = f"{raw!r} (not a valid {type(param).__name__} value: {' '.join(str(exc).split())})"
        files = luigi_config.files_setting(section, name)
        where = f" in {os.path.abspath(files[-1])!r}" if files else " in luigi's config"
        return f"configured {shown} ([{section}] {name}{where})"
    return None


def _global_flag(cls: Any, family: str, flag: str) -> str:
    """luigi's ``--{Family}-{param}`` spelling of the task's own ``--{param}`` (cmdline_parser's rule)."""
    for name, _ in cls.get_params():
        if f"--{name.replace('_', '-')}" == flag:
            return "--" + f"{family}_{name}".replace("_", "-")
    return flag


def _parameters_of(cls: Any) -> str:
    """``its parameters: --a, --b`` (those its own classes declare; TaskOnKart's are in ``kart run --help``)."""
    inherited = {name for name, _ in TaskOnKart.get_params()} if issubclass(cls, TaskOnKart) else set()
    names = [f"--{name.replace('_', '-')}" for name, _ in cls.get_params() if name not in inherited]
    return f"its parameters: {', '.join(names)}" if names else "it has no parameters of its own"


def _create(cls: type, parser: CmdlineParser, dotted: str) -> Any:
    kwargs = {}
    for name, param in cls.get_params():  # type: ignore[attr-defined]
        value = getattr(parser.known_args, name, None)
        if value:  # luigi's rule: an empty command-line value means "not given"
            kwargs[name] = _parse(param, value, f"--{name}", dotted)
    try:
        return cls(**kwargs)
    except luigi.parameter.MissingParameterException as exc:
        # luigi's (and the constructor's) wording tells a Python caller what to do, not a shell user.
        missing = re.search(r"requires the '(\w+)' parameter", str(exc))
        if missing is None:
            raise TaskSpecError(f"{dotted}: cannot create the task: {exc}") from exc
        name = missing.group(1)
        raise TaskSpecError(
            f"{dotted}: cannot create the task: it requires --{name.replace('_', '-')} (or {name} under "
            f"[{cls.get_task_family()}] in luigi's config); {_parameters_of(cls)}"  # type: ignore[attr-defined]
        ) from exc
    except Exception as exc:
        reason = _config_culprit(cls, kwargs) or str(exc)
        raise TaskSpecError(f"{dotted}: cannot create the task: {reason}") from exc


def _config_culprit(cls: Any, given: dict[str, Any]) -> str:
    """Which parameter's value in luigi's config cannot be parsed (luigi's error names neither the
    parameter nor the section), with the fix; "" when no config value is to blame."""
    family = cls.get_task_family()
    for name, param in cls.get_params():
        if name in given:
            continue
        try:
            param._get_value_from_config(family, name)  # luigi's own read: [Class] name (then its other sections)
        except Exception as exc:
            raw = luigi.configuration.get_config().get(family, name, None)
            files = luigi_config.files_setting(family, name)
            where = f" (in {', '.join(repr(path) for path in files)})" if files else ""
            return (
                f"[{family}] {name} = {raw!r} in luigi's config{where} is not a valid {type(param).__name__} value "
                f"({type(exc).__name__}: {exc}). Fix the config file, or pass --{name} on the command line."
            )
    return ""


def _check_other_tasks_values(parser: CmdlineParser, cls: Any, root_family: str, dotted: str) -> None:
    """Parse every ``--Class-param value`` now, so a malformed one is a usage error naming it.

    luigi parses them only when ``requires()`` creates the task (deep inside a graph walk). ``cls``'s own
    (family ``root_family``) are among them when luigi's registry leaves its family out as ambiguous.
    """
    root = [(root_family, name, param) for name, param in cls.get_params()]
    others = [(family, name, param) for family, _, name, param in Register.get_all_params()]
    for family, name, param in others + root:
        value = getattr(parser.known_args, param._parser_global_dest(name, family), None)
        if value:
            _parse(param, value, f"--{family}-{name}", dotted)


def _parse(param: luigi.Parameter, value: Any, flag: str, dotted: str) -> Any:
    try:
        return param.parse(value)
    except Exception as exc:  # each parameter type raises its own error for a malformed value
        raise TaskSpecError(
            f"{dotted}: parameter {flag.replace('_', '-')} cannot be {value!r} ({type(exc).__name__}: {exc}); "
            f"give a value of type {type(param).__name__}{_form_of(param)}."
        ) from None


def _form_of(param: luigi.Parameter) -> str:
    """How a value of ``param``'s type is written on a command line, where that is not obvious."""
    if isinstance(param, TaskInstanceParameter):
        return ', as JSON: \'{"type": "TaskFamily", "params": {"name": value}}\' (the class imported, its family name)'
    if isinstance(param, (luigi.DictParameter, luigi.ListParameter, luigi.TupleParameter)):
        return " as JSON"
    return ""


def set_workspace(workspace: str | None) -> None:
    """Make ``workspace`` every task's ``workspace_directory`` (``[TaskOnKart]`` in luigi's config)."""
    if not workspace:
        return
    config = luigi.configuration.get_config()
    if not config.has_section("TaskOnKart"):
        config.add_section("TaskOnKart")
    config.set("TaskOnKart", "workspace_directory", workspace)
