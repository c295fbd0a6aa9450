"""kart_core.hooks.manager: plugins are validated when they load, so a misspelt hook is an error, not silence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import kart_core
from kart_core.errors import PluginError
from kart_core.hooks import create_hook_manager, hookimpl
from kart_core.runlog import RunLogPlugin


class Misspelt:
    @hookimpl
    def kart_after_task_runn(self, task: Any, processing_time: float) -> None:  # one letter too many
        raise AssertionError("never called")


class WrongArguments:
    @hookimpl
    def kart_after_task_run(self, task: Any, duration: float) -> None:
        raise AssertionError("never called")


class OptionalFromTheFuture:
    @hookimpl(optionalhook=True)
    def kart_before_commit(self, task: Any) -> None:
        raise AssertionError("never called")


class Recorder:
    def __init__(self) -> None:
        self.seen: list[str] = []

    @hookimpl
    def kart_after_task_run(self, task: Any, processing_time: float) -> None:
        self.seen.append(task.kart_label())


class Hello(kart_core.TaskOnKart[str]):
    def run(self) -> None:
        self.dump("hello")


def test_a_misspelt_hook_is_refused_naming_the_plugin_and_the_hook() -> None:
    with pytest.raises(PluginError, match=r"Misspelt.*'kart_after_task_runn'.*Known hooks: .*kart_after_task_run"):
        create_hook_manager([Misspelt()], load_entry_points=False)


def test_a_known_hook_with_arguments_the_spec_lacks_is_refused() -> None:
    with pytest.raises(PluginError, match=r"(?s)WrongArguments.*duration"):
        create_hook_manager([WrongArguments()], load_entry_points=False)


def test_an_optional_hook_of_a_newer_kart_is_accepted() -> None:
    manager = create_hook_manager([OptionalFromTheFuture()], load_entry_points=False)
    assert manager.is_registered(manager.get_plugins().pop())


def test_a_valid_plugin_is_called_by_a_build(tmp_path: Path) -> None:
    recorder = Recorder()
    manager = create_hook_manager([RunLogPlugin(), recorder], load_entry_points=False)
    task = Hello(workspace_directory=str(tmp_path))
    assert kart_core.build(task, hook_manager=manager, progress=False) == "hello"
    assert recorder.seen == [task.kart_label()]


def test_the_installed_entry_point_plugins_are_valid() -> None:
    manager = create_hook_manager()
    assert "slack" in {name for name, _ in manager.list_name_plugin()}


def test_entry_points_found_elsewhere_are_imported_under_their_names() -> None:
    """A process-pool worker gets its parent's (name, target) pairs and registers the same plugins."""
    from kart_core import slack
    from kart_core.hooks.manager import declared_entry_points

    assert ("slack", "kart_core.slack:slack_notifier") in declared_entry_points()
    given = create_hook_manager([], entry_points=[("slack", "kart_core.slack:slack_notifier")])
    assert given.get_plugin("slack") is slack.slack_notifier
    assert create_hook_manager([], entry_points=[]).get_plugin("slack") is None
