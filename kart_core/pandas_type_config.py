"""PandasTypeConfig: declare column types per task namespace; dumps of DataFrames are checked."""

from __future__ import annotations

import abc
from typing import Any

import luigi
from luigi.task_register import Register

from kart_core.errors import PandasTypeError

__all__ = ["PandasTypeConfig", "PandasTypeError", "check_pandas_types"]


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
    configs: dict[str | None, type[PandasTypeConfig]] = {}
    for name in Register.task_names():
        try:
            task_class = Register.get_task_cls(name)
        except Exception:
            continue
        if issubclass(task_class, PandasTypeConfig) and task_class is not PandasTypeConfig:
            configs[task_class.task_namespace] = task_class
    return configs


def check_pandas_types(obj: Any, task_namespace: str | None) -> None:
    """Check a DataFrame against the PandasTypeConfig of ``task_namespace``, if one is declared."""
    if type(obj).__name__ != "DataFrame" or not type(obj).__module__.startswith("pandas"):
        return
    config = _configs_by_namespace().get(task_namespace)
    if config is not None:
        config.check(obj)
