"""kart_core.hooks.registration: the same hooks register as with pluggy's own manager, from fewer look-ups."""

from __future__ import annotations

import inspect
import types
from typing import Any

import pluggy
import pytest

from kart_core.hooks import hookimpl, specs
from kart_core.hooks.markers import PROJECT_NAME
from kart_core.hooks.registration import PluginManager


def _after_build(tasks: list[Any], result: Any) -> None:
    raise AssertionError("never called")


class Base:
    @hookimpl
    def kart_after_task_run(self, task: Any, processing_time: float) -> None:
        raise AssertionError("never called")


class Kinds(Base):
    """A hook of every kind pluggy takes: inherited, staticmethod, classmethod, specname, on the instance, slot."""

    __slots__ = ("kart_on_task_error",)

    @staticmethod
    @hookimpl
    def kart_before_task_run(task: Any, seed: int, seed_methods: list[str]) -> None:
        raise AssertionError("never called")

    @classmethod
    @hookimpl
    def kart_commit_task_run(cls, task: Any, processing_time: float) -> None:
        raise AssertionError("never called")

    @hookimpl(specname="kart_file_processors")
    def formats(self) -> list[type]:
        return []

    def not_a_hook(self) -> None:
        raise AssertionError("never called")

    @property
    def kart_unknown(self) -> Any:  # a property is never evaluated, so never a hook
        raise AssertionError("never evaluated")

    def __init__(self) -> None:
        self.kart_after_build = hookimpl(_after_build)

        @hookimpl
        def on_error(task: Any, exception: BaseException) -> None:
            raise AssertionError("never called")

        self.kart_on_task_error = on_error


def _registered(manager: pluggy.PluginManager, plugin: object) -> list[tuple[str, str]]:
    """The (hook, function) pairs registered from ``plugin``, then ("module", hook) for a module plugin."""
    manager.add_hookspecs(specs.TaskRunSpecs)
    manager.add_hookspecs(specs.FileProcessorSpecs)
    manager.register(plugin)
    module = types.ModuleType("formats_plugin")
    module.kart_file_processors = hookimpl(lambda: [])  # type: ignore[attr-defined]
    manager.register(module)
    from_object = sorted(
        (caller.name, impl.function.__name__)
        for caller in manager.get_hookcallers(plugin) or []
        for impl in caller.get_hookimpls()
        if impl.plugin is plugin
    )
    return from_object + sorted(("module", caller.name) for caller in manager.get_hookcallers(module) or [])


def test_the_same_hooks_register_as_with_pluggy_and_only_marked_names_are_looked_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    expected = _registered(pluggy.PluginManager(PROJECT_NAME), Kinds())
    assert expected == [
        ("kart_after_build", "_after_build"),
        ("kart_after_task_run", "kart_after_task_run"),
        ("kart_before_task_run", "kart_before_task_run"),
        ("kart_commit_task_run", "kart_commit_task_run"),
        ("kart_file_processors", "formats"),
        ("kart_on_task_error", "on_error"),
        ("module", "kart_file_processors"),
    ]
    looked_up: list[str] = []
    real = inspect.getattr_static

    def recording(obj: Any, attr: str, default: Any = None) -> Any:
        looked_up.append(attr)
        return real(obj, attr, default)

    monkeypatch.setattr(inspect, "getattr_static", recording)
    assert _registered(PluginManager(PROJECT_NAME), Kinds()) == expected
    # pluggy alone looks up every name of dir(): __init__, not_a_hook, the property...
    assert looked_up and {"__init__", "__repr__", "not_a_hook", "kart_unknown"}.isdisjoint(looked_up)
