"""build()'s roots must be task instances: a task class (the parentheses forgotten), a task's name or None is
refused before anything runs, naming it and the fix.

gokart 1.12.2 hands its roots to luigi's worker, which raises ``luigi.worker.TaskException`` ("Can not schedule
non-task ..."); kart walked the graph and failed with an error about its own metaclass (``KartRegister ...
kart_forget_upstreams() missing 1 required positional argument``: attacker at21 L3). The gokart side runs in its
own process (``gokart_twin``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import luigi
import pytest
from gokart_twin import run_both
from luigi.worker import TaskException

import kart_core
from kart_core.build import NotATaskError


class BrValue(kart_core.TaskOnKart[int]):
    """Dumps ``value``."""

    value = luigi.IntParameter(default=1)

    def run(self) -> None:
        self.dump(self.value)


def test_a_task_class_is_refused_naming_it_and_how_to_call_it(tmp_path: Path) -> None:
    with pytest.raises(NotATaskError) as caught:
        kart_core.build(BrValue, reset_register=False)  # type: ignore[arg-type]
    message = str(caught.value)
    assert f"build() got the task class {__name__}.BrValue, not a task" in message
    assert "build(BrValue(...))" in message
    assert isinstance(caught.value, TaskException) and isinstance(caught.value, TypeError)


@pytest.mark.parametrize(
    ("roots", "named"),
    [
        ("BrValue", "got str 'BrValue', not a task"),
        (None, "got NoneType None, not a task"),
        ([1, 2], "got int 1 (item 0 of the list), not a task"),
    ],
)
def test_a_name_or_other_object_is_refused_naming_it(tmp_path: Path, roots: Any, named: str) -> None:
    with pytest.raises(NotATaskError, match="it takes a task instance") as caught:
        kart_core.build(roots, reset_register=False)
    assert named in str(caught.value)


def test_a_class_in_a_list_is_refused_before_the_other_roots_run(tmp_path: Path) -> None:
    task = BrValue(workspace_directory=str(tmp_path / "ws"))
    with pytest.raises(NotATaskError, match=r"BrValue \(item 1 of the list\)"):
        kart_core.build([task, BrValue], reset_register=False)  # type: ignore[list-item]
    assert not task.complete()


_SCRIPT = """
import json
import luigi.worker
import gokart


class T(gokart.TaskOnKart):
    def run(self):
        self.dump(1)


def attempt(roots):
    try:
        gokart.build(roots, log_level=40)
        return 'built'
    except luigi.worker.TaskException as exc:
        return {'raised': 'TaskException', 'type_error': isinstance(exc, TypeError)}
    except Exception as exc:
        return {'raised': type(exc).__name__}


print(json.dumps({'class': attempt(T), 'name': attempt('T'), 'in_list': attempt([T(), T])}))
"""


def test_as_gokart_a_class_or_name_raises_task_exception(tmp_path: Path) -> None:
    found = run_both(_SCRIPT, tmp_path)
    assert found["gokart"]["class"]["raised"] == "TaskException"
    assert found["kart"]["class"] == {"raised": "TaskException", "type_error": True}
    assert {key: value["raised"] for key, value in found["kart"].items()} == {
        key: value["raised"] for key, value in found["gokart"].items()
    }


class BrNoSuper(kart_core.TaskOnKart[int]):
    """Overrides __init__ without calling luigi's (attacker at25 F6)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.extra = 1

    def run(self) -> None:
        self.dump(1)


class BrNeedsNoSuper(kart_core.TaskOnKart[int]):
    def requires(self) -> BrNoSuper:
        return BrNoSuper()

    def run(self) -> None:
        self.dump(self.load() + 1)


def test_a_root_whose_init_skips_luigi_s_is_refused_as_luigi_refuses_it() -> None:
    """It failed deep in the walk with a bare AttributeError ('no attribute task_unique_id')."""
    with pytest.raises(TaskException) as caught:
        kart_core.build(BrNoSuper(), reset_register=False)
    assert "Task of class BrNoSuper is not initialized" in str(caught.value)
    assert "super().__init__(*args, **kwargs)" in str(caught.value)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_requirement_whose_init_skips_luigi_s_fails_the_build_naming_it(tmp_path: Path, workers: int) -> None:
    task = BrNeedsNoSuper(workspace_directory=str(tmp_path / "ws"))
    with pytest.raises(kart_core.GokartBuildError) as caught:
        kart_core.build(task, reset_register=False, workers=workers)
    (failure,) = caught.value.raised_exceptions.values()
    assert isinstance(failure[0], TaskException)
    assert "Task of class BrNoSuper is not initialized" in str(caught.value)
    assert not (tmp_path / "ws").exists()  # nothing ran


_NO_SUPER_SCRIPT = """
import json
import luigi.worker
import gokart


class NoSuper(gokart.TaskOnKart):
    def __init__(self, *args, **kwargs):
        self.extra = 1

    def run(self):
        self.dump(1)


try:
    gokart.build(NoSuper(), log_level=40)
    found = 'built'
except luigi.worker.TaskException as exc:
    found = {'raised': 'TaskException', 'not_initialized': 'not initialized' in str(exc)}
except Exception as exc:
    found = {'raised': type(exc).__name__}
print(json.dumps(found))
"""


def test_as_gokart_a_root_whose_init_skips_luigi_s_raises_task_exception(tmp_path: Path) -> None:
    found = run_both(_NO_SUPER_SCRIPT, tmp_path)
    assert found["kart"] == found["gokart"] == {"raised": "TaskException", "not_initialized": True}
