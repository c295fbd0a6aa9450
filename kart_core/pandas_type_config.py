"""PandasTypeConfig: declare column types per task namespace; dumps of DataFrames are checked."""

from __future__ import annotations

import abc
from typing import Any

import luigi

from kart_core.errors import PandasTypeError

__all__ = ["PandasTypeConfig", "PandasTypeConfigMap", "PandasTypeError", "check_pandas_types"]


class PandasTypeConfig(luigi.Config):
    """Subclass with a ``task_namespace`` and ``type_dict()``; dumps from that namespace are checked."""

    @classmethod
    @abc.abstractmethod
    def type_dict(cls) -> dict[str, Any]:
        """Column name to the Python type every value of that column must have."""

    @classmethod
    def check(cls, df: Any) -> None:
        """Raise PandasTypeError naming the first column with a value of another type."""
        for column, expected in cls.type_dict().items():
            if column not in df.columns:
                continue
            for value in df[column]:
                if not isinstance(value, expected):
                    raise PandasTypeError(
                        f'expected type is "{expected}", but "{type(value)}" is passed in column "{column}" '
                        f"(checked by {cls.__name__} for namespace {cls.task_namespace!r})."
                    )


def _configs_by_namespace() -> dict[str | None, type[PandasTypeConfig]]:
    """The declared configs by namespace; a later definition of a namespace replaces an earlier one.

    Walks PandasTypeConfig's subclasses only, so the cost does not grow with the number of task
    classes in luigi's registry (scanning it made every DataFrame dump O(registered classes)).
    """
    configs: dict[str | None, type[PandasTypeConfig]] = {}
    stack: list[type[PandasTypeConfig]] = list(reversed(PandasTypeConfig.__subclasses__()))
    while stack:
        config = stack.pop()
        if not getattr(config, "__abstractmethods__", None):
            configs[config.task_namespace] = config
        stack.extend(reversed(config.__subclasses__()))
    return configs


def check_pandas_types(obj: Any, task_namespace: str | None) -> None:
    """Check a DataFrame against the PandasTypeConfig of ``task_namespace``, if one is declared."""
    if type(obj).__name__ != "DataFrame" or not type(obj).__module__.startswith("pandas"):
        return
    config = _configs_by_namespace().get(task_namespace)
    if config is not None:
        config.check(obj)


class PandasTypeConfigMap(luigi.Config):
    """gokart's lookup of the PandasTypeConfig of a namespace; kart's dumps call ``check_pandas_types`` instead.

    ``check(obj, task_namespace)`` checks a DataFrame as a dump from that namespace is checked.
    """

    def check(self, obj: Any, task_namespace: str | None) -> None:
        """Raise PandasTypeError when ``obj``, a DataFrame, breaks the PandasTypeConfig of ``task_namespace``."""
        check_pandas_types(obj, task_namespace)
