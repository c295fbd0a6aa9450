"""A fingerprint of a task class's code: changes when what runs changes, not when comments or lines move.

Schedulers that rebuild a task in another process (an Airflow worker) compare it with the
fingerprint taken where the graph was planned, to tell "this worker runs other code" apart from
"same task". The unique id cannot tell: gokart's id covers parameters only, so a changed
``run()`` keeps it.

What goes in, for the class and every base class of it that is not TaskOnKart or one of
TaskOnKart's own bases (so user mixins count, kart and luigi do not):
- each function, method, static/class method and property (the function a decorator or kart's
  ``run`` routing wraps, through ``__wrapped__``): its bytecode (instructions,
  constants without the docstring, names, variable names; nested functions and comprehensions
  included), not line numbers or file names;
- each luigi Parameter: its type, default (when a plain value) and whether it is significant;
- each public plain class constant (``task_namespace``, numbers, strings, tuples of them); private
  ones (``_name``) are left out because kart and luigi cache per-class facts under such names.
Bytecode depends on the Python minor version, so two processes on different Pythons differ.
"""

from __future__ import annotations

import hashlib
import sys
import types
from collections.abc import Iterator
from typing import Any

import luigi

from kart_core.task import TaskOnKart

__all__ = ["code_fingerprint"]

_PLAIN = (str, int, float, bool, bytes, type(None))


def code_fingerprint(task_class: type) -> str:
    """16 hex characters that identify the code of ``task_class`` (a TaskOnKart subclass or any class).

    Raises:
        TypeError: ``task_class`` is not a class.
    """
    if not isinstance(task_class, type):
        raise TypeError(f"code_fingerprint takes a class, got {type(task_class).__name__} {task_class!r}.")
    digest = hashlib.sha256(f"python {sys.version_info[0]}.{sys.version_info[1]}".encode())
    for klass in task_class.__mro__:
        if klass is TaskOnKart or issubclass(TaskOnKart, klass):
            continue
        digest.update(f"\0class {klass.__module__}.{klass.__qualname__}".encode())
        for part in _class_parts(klass):
            digest.update(b"\0")
            digest.update(part.encode("utf-8", "backslashreplace"))
    return digest.hexdigest()[:16]


def _class_parts(klass: type) -> Iterator[str]:
    for name, value in sorted(vars(klass).items()):
        if name.startswith("__") or name.startswith("_abc"):
            continue
        if isinstance(value, luigi.Parameter):
            yield f"param {name} {type(value).__qualname__} {_plain(value._default)} {value.significant}"
        elif isinstance(value, staticmethod | classmethod):
            yield f"{type(value).__name__} {name} {_function(value.__func__)}"
        elif isinstance(value, property):
            accessors = (value.fget, value.fset, value.fdel)
            yield f"property {name} " + " ".join(_function(f) if f is not None else "-" for f in accessors)
        elif isinstance(value, types.FunctionType):
            yield f"def {name} {_function(value)}"
        elif name.startswith("_"):
            continue
        elif isinstance(value, _PLAIN) or (isinstance(value, tuple) and all(isinstance(v, _PLAIN) for v in value)):
            yield f"const {name} {value!r}"


def _plain(value: Any) -> str:
    if isinstance(value, _PLAIN) or (isinstance(value, tuple | list) and all(isinstance(v, _PLAIN) for v in value)):
        return repr(value)
    return type(value).__qualname__  # luigi's "no default" sentinel and objects whose repr holds an address


def _function(function: Any) -> str:
    # kart routes each class's run() through a wrapper (and decorators built with functools.wraps
    # do the same): the wrapped function is the code that runs.
    while getattr(function, "__wrapped__", None) is not None:
        function = function.__wrapped__
    code = getattr(function, "__code__", None)
    if code is None:
        return type(function).__qualname__
    return _code(code, getattr(function, "__doc__", None))


def _constant(value: Any) -> str:
    if isinstance(value, types.CodeType):
        return _code(value)
    if isinstance(value, frozenset):  # `x in {"a", "b"}`: the set's order follows the hash seed
        return "frozenset(" + ",".join(sorted(_constant(v) for v in value)) + ")"
    if isinstance(value, tuple):
        return "(" + ",".join(_constant(v) for v in value) + ")"
    return repr(value)


def _code(code: types.CodeType, docstring: str | None = None) -> str:
    constants = list(code.co_consts)
    if docstring is not None and constants and constants[0] == docstring:
        constants = constants[1:]
    shown = [_constant(c) for c in constants]
    return "|".join(
        [
            code.co_code.hex(),
            ",".join(shown),
            ",".join(code.co_names),
            ",".join(code.co_varnames),
            str(code.co_argcount),
        ]
    )
