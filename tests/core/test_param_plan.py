"""config_frozen: one look at luigi's config per walk; a walk that is no build leaves the change to the next build."""

from __future__ import annotations

import warnings
from pathlib import Path

import luigi
import pytest
from luigi.parameter import MissingParameterException, OptionalParameterTypeWarning, UnknownParameterException

import kart_core
from kart_core.param_plan import checked_params, param_checks


def test_a_frozen_walk_that_is_no_build_leaves_the_config_change_to_the_next_build(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with kart_core.config_frozen():
        pass  # a build saw this config
    monkeypatch.setenv("KART_WORKSPACE", str(tmp_path / "elsewhere"))
    with kart_core.config_frozen(record_build=False) as changed:  # kart_airflow.to_dag's walk
        assert changed is False
        with kart_core.config_frozen() as inner:  # nested: the outer freeze decides
            assert inner is False
    with kart_core.config_frozen() as changed:
        assert changed is True  # the next build still sees the change
    with kart_core.config_frozen() as changed:
        assert changed is False


class _Checked(kart_core.TaskOnKart):
    """A plain luigi.Parameter and an optional int: both check their values' types (luigi 3.8.1)."""

    name = luigi.Parameter()
    size = luigi.OptionalIntParameter(default=None)


def _messages(record: list[warnings.WarningMessage]) -> list[tuple[type[Warning], str]]:
    return [(w.category, str(w.message)) for w in record]


def test_a_new_task_warns_about_wrong_parameter_types_as_luigi_does() -> None:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        _Checked(name="a", size=3)  # right types: silent
        assert record == []
        _Checked(name=7, size=1.5)  # the same two warnings luigi's own checks give
    expected = [
        (UserWarning, 'Parameter "name" with value "7" is not of type string.'),
        (
            OptionalParameterTypeWarning,
            'OptionalIntParameter "size" with value "1.5" is not of type "int" or None.',
        ),
    ]
    assert _messages(record) == expected


def test_the_checks_skip_no_parameter_luigi_checks() -> None:
    checks = param_checks(_Checked)
    names = [name for _, name, _, _ in checks]
    assert names == [name for name, _ in checked_params(_Checked)]
    assert {"name", "size", "workspace_directory", "redis_host", "redis_port"} <= set(names)
    positions = {name: index for index, (name, _) in enumerate(_Checked.get_params())}
    assert all(position == positions[name] for position, name, _, _ in checks)


def test_resolve_names_the_class_of_an_unknown_or_missing_parameter() -> None:
    with pytest.raises(UnknownParameterException, match=r"_Checked: unknown parameter colour"):
        _Checked(name="a", colour="red")
    with pytest.raises(MissingParameterException, match=r"_Checked: requires the 'name' parameter"):
        _Checked()


class PpExample(kart_core.TaskOnKart[int]):
    x = luigi.IntParameter(default=1)


class PpSeeded(kart_core.TaskOnKart[int]):
    fix_random_seed_value = luigi.IntParameter(default=None)  # [TaskOnKart] keys reach it (gokart's rule)


@pytest.mark.parametrize(
    ("task_class", "section", "name"),
    [(PpExample, "PpExample", "x"), (PpSeeded, "TaskOnKart", "fix_random_seed_value")],
)
def test_a_config_value_that_does_not_parse_names_its_section_parameter_and_file(
    tmp_path: Path, task_class: type[kart_core.TaskOnKart[int]], section: str, name: str
) -> None:
    config = tmp_path / "bad.cfg"
    config.write_text(f"[{section}]\n{name}=abc\n")
    luigi.configuration.add_config_path(str(config))
    with pytest.raises(kart_core.errors.SettingValueError) as refused:
        task_class()
    assert isinstance(refused.value, ValueError)  # what luigi raised: `except ValueError` still catches it
    assert str(refused.value) == (
        f"[{section}] {name} = 'abc' in luigi's config (in {str(config)!r}) is not a valid IntParameter value for "
        f"the parameter {name!r} of {task_class.__name__} (ValueError: invalid literal for int() with base 10: "
        f"'abc'). Fix the value in the config, or pass {name}=... when creating the task."
    )


def test_a_config_value_set_by_the_program_is_named_so() -> None:
    luigi.configuration.get_config().set("PpExample", "x", "abc")
    with pytest.raises(
        kart_core.errors.SettingValueError, match=r"\[PpExample\] x = 'abc' in luigi's config \(set by the program\)"
    ):
        PpExample()


class _Planned(kart_core.TaskOnKart):
    size = luigi.IntParameter(default=1)


def test_a_plan_made_before_a_build_froze_the_config_is_recognised_inside_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A build's root is usually made before the build freezes the config; its class's plan must still be
    found at once (``current_plan``) for the tasks the walk makes, and only for the config it was made under."""
    from kart_core.param_plan import current_plan

    monkeypatch.setenv("KART_WORKSPACE", str(tmp_path / "first"))
    assert _Planned(size=2).workspace_directory == str(tmp_path / "first")
    assert current_plan(_Planned) is None  # not frozen: parameter_plan checks the config
    with kart_core.config_frozen():
        assert current_plan(_Planned) is None  # not yet looked at under this freeze
        _Planned(size=3)
        plan = current_plan(_Planned)
        assert plan is not None and plan.defaults["workspace_directory"] == str(tmp_path / "first")
    monkeypatch.setenv("KART_WORKSPACE", str(tmp_path / "second"))
    with kart_core.config_frozen():
        assert current_plan(_Planned) is None  # another config: the kept plan is not taken
        assert _Planned(size=4).workspace_directory == str(tmp_path / "second")
        assert current_plan(_Planned).defaults["workspace_directory"] == str(tmp_path / "second")  # type: ignore[union-attr]


class _Mixed(kart_core.TaskOnKart):
    """Required, defaulted and list parameters, and a value given positionally (the first positional parameter is
    TaskOnKart's workspace_directory, as in gokart): every way resolve() fills a value."""

    first = luigi.IntParameter()
    second = luigi.Parameter(default="b")
    items = luigi.ListParameter(default=[1, 2])
    last = luigi.IntParameter()


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((), {"first": 1, "last": 4}),
        ((), {"first": 1, "last": 4, "items": [3]}),
        (("./elsewhere/",), {"second": "x", "first": 1, "last": 4}),
    ],
)
def test_resolve_gives_luigis_own_answer_in_parameter_order(
    args: tuple[object, ...], kwargs: dict[str, object]
) -> None:
    params = _Mixed.get_params()
    ours = _Mixed.get_param_values(params, args, kwargs)
    # luigi.Task's own resolution (kart's [TaskOnKart] section is empty here, so it adds nothing).
    theirs = luigi.Task.get_param_values.__func__(_Mixed, params, args, kwargs)  # type: ignore[attr-defined]
    assert ours == theirs
    assert [name for name, _ in ours] == [name for name, _ in params]
    task = _Mixed(*args, **kwargs)
    assert (task.first, task.last) == (1, 4)
    assert task.items == tuple(kwargs.get("items", [1, 2]))  # type: ignore[arg-type]
    assert task.workspace_directory == (args[0] if args else theirs[0][1])


class PpUpstream(kart_core.TaskOnKart[int]):
    def run(self) -> None:
        self.dump(1)


class PpTakesTask(kart_core.TaskOnKart[int]):
    t = kart_core.TaskInstanceParameter(default=PpUpstream())
    n = luigi.IntParameter(default=1)


@pytest.mark.parametrize(
    ("argv", "flag", "form"),
    [
        (["PpTakesTask", "--PpTakesTask-t", "PpUpstream"], "--PpTakesTask-t", '{"type": "MyTask", "params"'),
        (["PpTakesTask", "--PpTakesTask-t", "{not json"], "--PpTakesTask-t", '{"type": "MyTask", "params"'),
        (["PpTakesTask", "--PpTakesTask-n", "five"], "--PpTakesTask-n", "invalid literal for int()"),
    ],
)
def test_a_command_line_value_that_does_not_parse_names_the_task_parameter_and_flag(
    argv: list[str], flag: str, form: str
) -> None:
    """luigi's command line (``gokart.run``, ``python -m luigi``): a bare JSONDecodeError named neither the task nor
    the parameter nor the form a task parameter takes (attacker at25 F4)."""
    from luigi.cmdline_parser import CmdlineParser

    with CmdlineParser.global_instance(argv), pytest.raises(kart_core.errors.SettingValueError) as refused:
        PpTakesTask()
    message = str(refused.value)
    assert isinstance(refused.value, ValueError)  # what luigi raised: `except ValueError` still catches it
    assert "PpTakesTask" in message and flag in message and form in message, message


def test_a_config_value_of_a_task_parameter_that_does_not_parse_gives_the_form(tmp_path: Path) -> None:
    config = tmp_path / "bad.cfg"
    config.write_text("[PpTakesTask]\nt=PpUpstream\n")
    luigi.configuration.add_config_path(str(config))
    with pytest.raises(kart_core.errors.SettingValueError, match=r'\[PpTakesTask\] t = .*\{"type": "MyTask"'):
        PpTakesTask()


def test_a_task_parameter_value_that_does_not_parse_carries_the_form() -> None:
    """A root task's ``--t`` on luigi's command line is parsed by luigi itself (``TaskInstanceParameter.parse``): the
    error keeps its type (json's, a ValueError) and carries the form a task parameter takes as a note."""
    for parameter in (kart_core.TaskInstanceParameter(), kart_core.ListTaskInstanceParameter()):
        with pytest.raises(ValueError) as raised:
            parameter.parse("PpUpstream")
        assert any('{"type": "MyTask", "params"' in note for note in getattr(raised.value, "__notes__", []))
