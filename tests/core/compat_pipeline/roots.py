"""The graph roots of the whole pipeline, and AllTasks, one root that requires them all."""

from __future__ import annotations

from typing import Any

from compat_pipeline.formats import format_roots
from compat_pipeline.graph import graph_roots
from compat_pipeline.impl import gokart
from compat_pipeline.params import parameter_roots


def all_roots() -> list[Any]:
    """Every root task, in a fixed order."""
    return [*parameter_roots(), *format_roots(), *graph_roots()]


class AllTasks(gokart.TaskOnKart):
    """One root for the whole pipeline (for luigi.build and the luigi command line)."""

    def requires(self) -> Any:
        """Every root task, by position."""
        return {f"root_{index:02d}": task for index, task in enumerate(all_roots())}

    def run(self) -> None:
        """Dump the number of roots."""
        self.dump(len(self.requires()))
