"""One runner object for a test parametrised over Kedro's SequentialRunner and kart's runners."""

from __future__ import annotations

from typing import Any

from kart_kedro import KartRunner
from kedro.runner import SequentialRunner


def make_runner(runner_class: type, workspace: str) -> Any:
    """``runner_class`` made for ``workspace``: SequentialRunner takes none; KartRunner runs in this process;
    KartThreadRunner and KartParallelRunner get two workers (so the parallel paths really run)."""
    if runner_class is SequentialRunner:
        return SequentialRunner()
    if runner_class is KartRunner:
        return KartRunner(workspace_directory=workspace)
    return runner_class(max_workers=2, workspace_directory=workspace)
