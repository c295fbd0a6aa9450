"""build()'s keyword arguments: luigi's [core] settings are accepted (and ignored), any other name is refused.

gokart 1.12.2 hands build()'s extra keywords to luigi.build, whose ``core`` config raises
``UnknownParameterException`` for a name it does not know; kart took every name silently, so
``build(t, rerun=True)`` served the cached output the user meant to replace (attacker at20 K1).
The gokart side runs in its own process (``gokart_twin``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import luigi
import pytest
from gokart_twin import run_both
from luigi.parameter import UnknownParameterException

import kart_core
from kart_core.build import UnknownBuildParameterError


class BkValue(kart_core.TaskOnKart[int]):
    """Dumps ``value`` (an insignificant parameter, so a rerun with another value replaces the output)."""

    value = luigi.IntParameter(default=1, significant=False)

    def run(self) -> None:
        self.dump(self.value)


def test_rerun_given_to_build_is_refused_naming_the_task_parameter(tmp_path: Path) -> None:
    workspace = str(tmp_path / "ws")
    assert kart_core.build(BkValue(workspace_directory=workspace), reset_register=False) == 1
    with pytest.raises(UnknownBuildParameterError) as caught:
        kart_core.build(BkValue(value=2, workspace_directory=workspace), rerun=True, reset_register=False)
    message = str(caught.value)
    assert "unknown keyword argument 'rerun'" in message
    assert "build(BkValue(rerun=True))" in message
    assert isinstance(caught.value, UnknownParameterException) and isinstance(caught.value, TypeError)
    # What was meant: the task's own parameter.
    task = BkValue(value=2, rerun=True, workspace_directory=workspace)
    assert kart_core.build(task, reset_register=False) == 2


@pytest.mark.parametrize(
    ("keywords", "hint"),
    [
        ({"worker": 4}, "Did you mean 'workers'"),
        ({"retrun_value": False}, "Did you mean 'return_value'"),
        ({"workspace_directory": "elsewhere"}, "build(BkValue(workspace_directory='elsewhere'))"),
    ],
)
def test_an_unknown_keyword_is_refused_before_anything_runs(
    tmp_path: Path, keywords: dict[str, Any], hint: str
) -> None:
    task = BkValue(workspace_directory=str(tmp_path / "ws"))
    with pytest.raises(UnknownBuildParameterError) as caught:
        kart_core.build(task, reset_register=False, **keywords)
    assert f"unknown keyword argument {next(iter(keywords))!r}" in str(caught.value)
    assert hint in str(caught.value)
    assert not task.complete()
    assert not (tmp_path / "resources").exists()  # nothing written to the default workspace either


@pytest.mark.parametrize(
    ("keywords", "error", "message"),
    [
        ({"workers": 2, "executor": "procs"}, ValueError, "build(executor='procs'): executor must be 'process'"),
        ({"workers": 2, "executor": "Process"}, ValueError, "build(executor='Process')"),
        ({"workers": "2"}, TypeError, "build(workers='2'): workers must be an int"),
    ],
    ids=["misspelt executor", "capitalised executor", "workers from an environment variable"],
)
def test_a_bad_workers_or_executor_value_is_refused_before_anything_runs(
    tmp_path: Path, keywords: dict[str, Any], error: type[Exception], message: str
) -> None:
    # attacker at24 F12: "procs" ran every task in threads of the calling process, without a word.
    task = BkValue(workspace_directory=str(tmp_path / "ws"))
    with pytest.raises(error) as caught:
        kart_core.build(task, reset_register=False, **keywords)
    assert message in str(caught.value)
    assert not task.complete()


def test_luigi_core_settings_and_build_keywords_are_accepted(tmp_path: Path) -> None:
    names = set(luigi.interface.core.get_param_names(include_significant=True))
    assert {"local_scheduler", "no_lock", "scheduler_host", "lock_size", "parallel_scheduling"} <= names
    task = BkValue(workspace_directory=str(tmp_path / "ws"))
    value = kart_core.build(
        task,
        reset_register=False,
        local_scheduler=True,
        no_lock=True,
        scheduler_host="localhost",
        parallel_scheduling=False,
        detailed_summary=True,
        worker_scheduler_factory=None,
    )
    assert value == 1


_SCRIPT = """
import json, os
import luigi
import gokart
from luigi.parameter import UnknownParameterException


class T(gokart.TaskOnKart):
    def run(self):
        self.dump(1)


def attempt(**keywords):
    try:
        return {'value': gokart.build(T(), log_level=40, **keywords)}
    except UnknownParameterException as exc:
        return {'raised': 'UnknownParameterException', 'names': [n for n in keywords if n in str(exc)]}


os.environ.pop('KART_WORKSPACE', None)
print(json.dumps({
    'unknown': attempt(workspace_directory=os.path.abspath('ws')),
    'typo': attempt(worker=4),
    'core': attempt(no_lock=True, scheduler_host='localhost', parallel_scheduling=False),
    'resources_written': os.path.exists('resources'),
}))
"""


def test_as_gokart_an_unknown_keyword_raises_unknown_parameter_exception(tmp_path: Path) -> None:
    found = run_both(_SCRIPT, tmp_path)
    assert found["gokart"]["unknown"] == {"raised": "UnknownParameterException", "names": ["workspace_directory"]}
    assert found["gokart"]["typo"] == {"raised": "UnknownParameterException", "names": ["worker"]}
    assert found["gokart"]["core"] == {"value": 1}
    assert found["kart"] == found["gokart"]
