"""A str given to a typed parameter is read through its parse(), as luigi reads a command-line value.

luigi keeps constructor values as given and the unique id covers only their string form, so `Twice(n="5")` ran with
the str under the id of `Twice(n=5)` and filled that cache entry for every scheduler (attacker at24 F1).
"""

from __future__ import annotations

import datetime

import luigi
import pytest

import kart_core
from kart_core.errors import ParameterTypeError


class PsTwice(kart_core.TaskOnKart[object]):
    n = luigi.IntParameter()

    def run(self) -> None:
        self.dump(self.n * 2)


class PsTyped(kart_core.TaskOnKart[object]):
    day = luigi.DateParameter(default=datetime.date(2020, 1, 1))
    items = luigi.ListParameter(default=[])
    flag = luigi.BoolParameter(default=False)
    mode = luigi.ChoiceParameter(choices=["a", "b"], default="a")
    label = luigi.Parameter(default="x")

    def run(self) -> None:
        self.dump([type(self.day).__name__, list(self.items), self.flag, self.mode, self.label])


class PsUpstream(kart_core.TaskOnKart[object]):
    source = kart_core.TaskInstanceParameter()


def test_a_str_for_an_int_parameter_runs_as_the_int_under_gokarts_id(workspace: str) -> None:
    given_str = PsTwice(n="5", workspace_directory=workspace)
    assert given_str is PsTwice(n=5, workspace_directory=workspace)  # one task: luigi's instance cache agrees
    assert given_str.n == 5
    assert kart_core.build(given_str, reset_register=False) == 10  # was '55'
    # The command line's way (luigi parses each string) names the same entry and loads the same value.
    from_cli = PsTwice.from_str_params({"n": "5", "workspace_directory": workspace})
    assert from_cli.make_unique_id() == given_str.make_unique_id()
    assert kart_core.build(from_cli, reset_register=False) == 10


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"day": "2021-03-04"}, ["date", [], False, "a", "x"]),
        ({"items": "[1, 2]"}, ["date", [1, 2], False, "a", "x"]),
        ({"flag": "true"}, ["date", [], True, "a", "x"]),
        ({"label": "5"}, ["date", [], False, "a", "5"]),  # luigi.Parameter's value is the str itself
    ],
    ids=["date", "list", "bool", "plain str"],
)
def test_other_typed_parameters_read_a_given_str(workspace: str, given: dict[str, str], expected: list) -> None:
    task = PsTyped(workspace_directory=workspace, **given)
    typed = PsTyped.from_str_params({**given, "workspace_directory": workspace})
    assert task is typed
    assert kart_core.build(task, reset_register=False) == expected


def test_a_str_that_does_not_parse_keeps_luigis_error_and_names_the_parameter() -> None:
    with pytest.raises(ValueError, match="invalid literal") as raised:
        PsTwice(n="five")
    assert any(
        "PsTwice: the str 'five' given for parameter 'n' (IntParameter)" in note for note in raised.value.__notes__
    )
    with pytest.raises(ValueError):  # gokart's type for a bad choice (luigi's ChoiceParameter check)
        PsTyped(mode="c")


def test_a_str_for_a_task_parameter_is_not_parsed_but_refused_by_name() -> None:
    with pytest.raises(ParameterTypeError, match="PsUpstream: parameter 'source' expects an instance"):
        PsUpstream(source='{"type": "PsTwice", "params": {"n": "5"}}')


class PsDefaultStr(kart_core.TaskOnKart[object]):
    n = luigi.IntParameter(default="5")  # as default=os.environ.get("N", "5") writes it
    items = luigi.ListParameter(default="[1, 2]")

    def run(self) -> None:
        self.dump([self.n * 2, list(self.items)])


class PsBadDefault(kart_core.TaskOnKart[object]):
    n = luigi.IntParameter(default="five")


def test_a_str_default_of_a_typed_parameter_is_read_as_a_given_str(workspace: str) -> None:
    # attacker at24 F13: the default stayed the str '5' under the id of n=5, and filled that entry.
    task = PsDefaultStr(workspace_directory=workspace)
    assert task is PsDefaultStr(n=5, items=[1, 2], workspace_directory=workspace)
    assert kart_core.build(task, reset_register=False) == [10, [1, 2]]


def test_a_str_default_that_does_not_parse_names_the_parameter() -> None:
    with pytest.raises(ValueError, match="invalid literal") as raised:
        PsBadDefault()
    assert any(
        "PsBadDefault: the str 'five' given for parameter 'n' (IntParameter)" in note for note in raised.value.__notes__
    )
