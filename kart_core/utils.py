"""Small helpers gokart code imports from ``gokart.utils``: config files and nested structures.

``FlattenableItems`` is a value, or a list / tuple / dict (str keys) of them, nested to any depth:
the shape of ``requires()`` and ``output()``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from typing import Any, Literal, Protocol, TypeAlias, TypeVar

import luigi.configuration

from kart_core.errors import ConfigFormatError
from kart_core.file_processor.pickle_format import load_dill_with_pandas_backward_compatibility
from kart_core.structure import map_flattenable_items

__all__ = [
    "FileLike",
    "FlattenableItems",
    "add_config",
    "flatten",
    "get_dataframe_type_from_task",
    "load_dill_with_pandas_backward_compatibility",
    "map_flattenable_items",
]

T = TypeVar("T")
K = TypeVar("K")


class FileLike(Protocol):
    """gokart's type of a readable binary file (what ``load_dill_with_pandas_backward_compatibility`` takes)."""

    def read(self, n: int) -> bytes: ...

    def readline(self) -> bytes: ...

    def seek(self, offset: int) -> None: ...

    def seekable(self) -> bool: ...


# A runtime union (not a string) so that ``FlattenableItems[int]`` works in annotations evaluated at runtime.
FlattenableItems: TypeAlias = (
    T | list["FlattenableItems[T]"] | tuple["FlattenableItems[T]", ...] | dict[str, "FlattenableItems[T]"]
)


def add_config(file_path: str) -> None:
    """Read luigi config (``.ini``/``.cfg``/``.toml``) from ``file_path`` on top of the config read so far.

    Raises:
        FileNotFoundError: no file at ``file_path``.
        ConfigFormatError: a ``.toml`` file while luigi's parser is not TOML (``LUIGI_CONFIG_PARSER=toml``
            selects it; gokart's add_config silently ignored the file's values then).
    """
    if not os.path.isfile(file_path):
        raise FileNotFoundError(
            f"add_config: no config file at {file_path!r} (current directory {os.getcwd()!r}). "
            "Pass the path of an existing .ini, .cfg or .toml file."
        )
    if file_path.endswith(".toml") and luigi.configuration.core._get_default_parser() != "toml":
        # luigi would add the file to its TOML parser and go on reading the cfg one: the values would be ignored.
        raise ConfigFormatError(
            f"add_config: {file_path!r} is TOML, and luigi reads TOML config files only when the environment "
            "variable LUIGI_CONFIG_PARSER=toml is set before the program starts (then every luigi config file "
            "must be TOML). Set it, or write the file in .cfg/.ini form."
        )
    with warnings.catch_warnings():
        # luigi warns when .ini differs from the default "cfg" parser name, although both use the same parser.
        warnings.filterwarnings(
            "ignore", message="Config for (ini|conf|cfg) parser added, but used (ini|conf|cfg) parser"
        )
        luigi.configuration.add_config_path(file_path)


def flatten(items: Any) -> list[Any]:
    """All leaves of nested dicts (their values), lists, tuples and other iterables, in order.

    A string is a leaf; None (at any level) is dropped. Iterative, so depth is not limited by recursion.
    """
    flat: list[Any] = []
    stack: list[Any] = [items]
    while stack:
        item = stack.pop()
        if item is None:
            continue
        if isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, str) or not isinstance(item, Iterable):
            flat.append(item)
        else:
            stack.extend(reversed(list(item)))
    return flat


def get_dataframe_type_from_task(task: Any) -> Literal["pandas", "polars", "polars-lazy"]:
    """Which DataFrame library a task (instance or class) declares: ``TaskOnKart[pl.DataFrame]`` -> "polars"."""
    from kart_core.task_targets import get_dataframe_type_from_task as declared

    return declared(task)
