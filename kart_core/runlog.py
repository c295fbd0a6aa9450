"""The run logs under ``{workspace}/log/``, written by a hook plugin (gokart's layout).

task_params, random_seed and module_versions are written before ``run()``; processing_time
and task_log after it succeeds.
"""

from __future__ import annotations

import functools
import importlib.metadata
import sys
from typing import Any

from luigi.task import flatten

from kart_core.hooks.markers import hookimpl

__all__ = ["RunLogPlugin", "module_versions"]


class RunLogPlugin:
    """Writes the five gokart run logs of each task that runs."""

    @hookimpl
    def kart_before_task_run(self, task: Any, seed: int, seed_methods: list[str]) -> None:
        """Record parameters, seed and package versions."""
        if not task.should_dump_supplementary_log_files:
            return
        task.log_target("random_seed").dump({"seed": seed, "seed_methods": seed_methods})
        task.log_target("task_params").dump(task.to_str_params(only_significant=True))
        task.log_target("module_versions", ".txt").dump(module_versions())

    @hookimpl
    def kart_after_task_run(self, task: Any, processing_time: float) -> None:
        """Record the run time and the task log with the output paths."""
        task.task_log["file_path"] = [target.path() for target in flatten(task.output())]
        if not task.should_dump_supplementary_log_files:
            return
        task.log_target("processing_time").dump(processing_time)
        task.log_target("task_log").dump(task.task_log)


@functools.cache
def _distributions_by_module() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())


@functools.cache
def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def module_versions() -> str:
    """``name==version`` lines for the installed distributions whose modules are imported now."""
    return _module_versions_for(len(sys.modules))


@functools.lru_cache(maxsize=1)
def _module_versions_for(module_count: int) -> str:
    # Scanning sys.modules costs about a millisecond; the answer holds until more modules are imported.
    by_module = _distributions_by_module()
    lines = set()
    for module in {name.partition(".")[0] for name in list(sys.modules)}:
        for distribution in by_module.get(module, ()):
            version = _version(distribution)
            if version is not None:
                lines.add(f"{distribution}=={version}")
    return "\n".join(sorted(lines, key=str.lower))
