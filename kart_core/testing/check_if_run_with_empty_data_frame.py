"""``--test-run-pandas``: check that every task of a graph survives empty DataFrames.

After the graph has been built normally, each task's ``run()`` is called again with
``load_data_frame`` returning an empty DataFrame (with the required columns) and ``dump``
discarding what it gets; a task that raises is reported NG.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

import luigi

from kart_core.graph import walk
from kart_core.runner import call_seed_methods, random_seed_of, run_body
from kart_core.task import TaskOnKart
from kart_core.utils import flatten

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TestStatus", "flatten", "run_with_empty_data_frames", "test_run"]

logger = logging.getLogger(__name__)


class test_run(TaskOnKart[Any]):  # noqa: N801 - gokart's public name, also the command-line section
    """Settings of ``--test-run-pandas`` / ``--test-run-namespace`` for ``kart_core.run``."""

    __test__ = False  # not a pytest test, although its name starts with "test"

    pandas = luigi.BoolParameter(description="Run the empty-DataFrame check instead of a normal build.")
    namespace = luigi.OptionalParameter(
        default=None, description='Check only tasks of this namespace ("__not_user_specified" for none).'
    )


@dataclasses.dataclass
class TestStatus:
    """The result of one task's run on empty DataFrames."""

    __test__ = False

    namespace: str | None
    name: str
    task_id: str
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        """Whether run() finished without raising."""
        return self.error is None

    def format(self) -> str:
        """``status=OK; namespace=...; name=...; id=...;`` and the error when NG."""
        text = f"status={'OK' if self.ok else 'NG'}; namespace={self.namespace}; name={self.name}; id={self.task_id};"
        return text if self.error is None else f"{text} message={type(self.error).__name__}: {self.error}"


def run_with_empty_data_frames(task: TaskOnKart[Any], namespace: str | None = None) -> list[TestStatus]:
    """Run every task under ``task`` (once each; only ``namespace``'s when given) on empty DataFrames."""
    tasks = [node for node in walk([task]).nodes.values() if isinstance(node, TaskOnKart)]
    if namespace is not None:
        tasks = [node for node in tasks if node.task_namespace == namespace]
    return [_run_one_on_empty_frames(node) for node in tasks]


def _run_one_on_empty_frames(task: TaskOnKart[Any]) -> TestStatus:
    status = TestStatus(namespace=task.task_namespace, name=type(task).__name__, task_id=task.make_unique_id())
    # Instance attributes shadow the methods for this object only; luigi caches task objects, so they are removed after.
    task.load_data_frame = _empty_data_frame  # type: ignore[method-assign]
    task.dump = _discard  # type: ignore[method-assign]
    try:
        call_seed_methods(list(task.fix_random_seed_methods), random_seed_of(task))
        run_body(task)
    except Exception as exc:
        status.error = exc
    finally:
        del task.load_data_frame, task.dump
    return status


def _empty_data_frame(
    target: Any = None, required_columns: set[str] | None = None, drop_columns: bool = False
) -> pd.DataFrame:
    import pandas as pd  # here: importing kart_core must not import pandas

    return pd.DataFrame(columns=sorted(required_columns or ()))


def _discard(obj: Any, target: Any = None, custom_labels: Any = None) -> None:
    return None


def __getattr__(name: str) -> Any:
    """``try_to_run_test_for_empty_data_frame``, which gokart defines here, from ``kart_core.run`` (PEP 562).

    It parses the command line and builds with ``kart_core.run``'s machinery, which sits above this module
    and imports it; read on first use, so neither module imports the other at import time.

    Raises:
        AttributeError: any other name.
    """
    return gokart_run_name(__name__, name)


def gokart_run_name(module: str, name: str) -> Any:
    """``kart_core.run.try_to_run_test_for_empty_data_frame`` when ``name`` is it, for ``module``'s ``__getattr__``.

    Raises:
        AttributeError: any other name.
    """
    if name != "try_to_run_test_for_empty_data_frame":
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module("kart_core.run"), name)
