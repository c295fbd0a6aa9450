"""luigi's resource limits (``Task.resources`` and the ``[resources]`` config section) for kart's executor.

luigi's scheduler (``Scheduler._has_resources``, luigi 3.x) starts a task only while, for each resource the
task names (``task.process_resources()``, by default its ``resources`` dict), what it needs plus what the
running tasks hold stays within the amount ``[resources]`` gives that resource; a resource the section does
not name has an amount of 1. So two tasks with ``resources = {"gpu": 1}`` never run at once, whatever
``workers`` says, unless ``[resources] gpu = 2``. A task that needs more than the amount by itself never
starts under luigi (it stays pending); kart fails it with an error naming the resource.
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Mapping, Sequence

from kart_core.contract import LuigiTask
from kart_core.errors import TaskDefinitionError
from kart_core.outcome import task_label

__all__ = ["ResourceLimits"]

_UNNAMED_AMOUNT = 1  # luigi's amount of a resource [resources] does not name
# What every task without resources needs (most tasks): one read-only mapping shared by them, not a dict per task
# held for the whole execution (about 64 bytes each in a 100,000-task build).
_NOTHING: Mapping[str, int] = types.MappingProxyType({})


class ResourceLimits:
    """Which of a graph's tasks may start beside the running ones, by luigi's rule (see the module docstring).

    Args:
        nodes: the graph's tasks by node key.
        capacity: amounts by resource name; default luigi's ``[resources]`` section, read now.
    """

    def __init__(self, nodes: Mapping[str, LuigiTask], capacity: Mapping[str, int] | None = None) -> None:
        if capacity is None:
            import luigi.configuration

            capacity = luigi.configuration.get_config().getintdict("resources")
        self.capacity = dict(capacity)
        self.nodes = nodes
        self._needs: dict[str, Mapping[str, int]] = {}

    def needs(self, key: str) -> Mapping[str, int]:
        """The resources the task at ``key`` holds while it runs (``process_resources()``, asked once; empty for
        none). Read-only."""
        found = self._needs.get(key)
        if found is None:
            method = getattr(self.nodes[key], "process_resources", None)
            found = self._needs[key] = (dict(method() or {}) if callable(method) else None) or _NOTHING
        return found

    def fits(self, key: str, running: Iterable[str]) -> bool:
        """Whether the task at ``key`` may start while the tasks at ``running`` run."""
        needed = self.needs(key)
        if not needed:
            return True
        held: dict[str, int] = {}
        for other in running:
            for name, amount in self.needs(other).items():
                held[name] = held.get(name, 0) + amount
        return all(amount + held.get(name, 0) <= self._amount(name) for name, amount in needed.items())

    def last_fitting(self, queue: Sequence[str], running: Iterable[str]) -> int | None:
        """The index of the last key of ``queue`` that fits beside ``running`` (None: none does)."""
        busy = list(running)
        for index in range(len(queue) - 1, -1, -1):
            if self.fits(queue[index], busy):
                return index
        return None

    def refusal(self, key: str) -> TaskDefinitionError | None:
        """The error for a task that needs more of a resource than there is at all (None: it can run alone)."""
        for name, amount in self.needs(key).items():
            if amount > self._amount(name):
                where = "[resources] gives it" if name in self.capacity else "[resources] does not name it, so it has"
                return TaskDefinitionError(
                    f"{task_label(self.nodes[key])} needs {amount} of the resource {name!r} (its resources), but "
                    f"{where} {self._amount(name)}: luigi's scheduler would never start it. Set [resources] "
                    f"{name} = {amount} (or more) in the luigi config, or lower the task's resources."
                )
        return None

    def _amount(self, name: str) -> int:
        return self.capacity.get(name, _UNNAMED_AMOUNT)
