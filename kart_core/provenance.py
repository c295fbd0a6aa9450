"""Where a module-level value or class attribute comes from in its module's source, and whether the code
that made it iterates a set.

A set's (and a frozenset's, and a dict's made from one) iteration order follows the hashes of its items;
strings, bytes, enums and tuples of them hash by ``PYTHONHASHSEED``, objects by their address. So
``NAMES = [x for x in {"a", "b"}]`` holds another order in each process, while its source is the same.
The code fingerprint (kart_core.fingerprint) counts such a value by the statements that make it, read
here, instead of by its content. Pure: the standard library only; nothing is imported or executed.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.machinery
import types
from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = [
    "UNKNOWN",
    "ClassSource",
    "ModuleSource",
    "is_extension",
    "iterates_set",
    "loaded_names",
    "module_source",
    "resolver",
    "statement_text",
]

# A name the resolver does not know (a local of a comprehension, a builtin, an attribute of a value).
UNKNOWN = object()
Resolve = Callable[[tuple[str, ...]], Any]

# Calls whose result does not depend on the order they iterate their argument in: a set passed to them is fine.
_ORDER_FREE = frozenset({"sorted", "set", "frozenset", "len", "sum", "min", "max", "any", "all", "bool"})
# Calls (or methods, by their last name) that keep the order they iterate a set argument in.
_ORDER_KEEPING = frozenset(
    {
        "list",
        "tuple",
        "dict",
        "enumerate",
        "zip",
        "iter",
        "next",
        "reversed",
        "map",
        "filter",
        "fromkeys",
        "join",
        "extend",
        "update",
        "OrderedDict",
        "deque",
        "Counter",
        "defaultdict",
        "array",
        "Index",
        "Series",
        "DataFrame",
    }
)
_SET_METHODS = frozenset({"union", "intersection", "difference", "symmetric_difference", "copy"})
_SET_OPERATORS = (ast.BitOr, ast.BitAnd, ast.Sub, ast.BitXor)
_COMPOUND = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.Try, ast.With, ast.AsyncWith, ast.Match)
_TRY_STAR = getattr(ast, "TryStar", None)


@dataclasses.dataclass
class ClassSource:
    """One class statement: the statements of its body (and of its module, ``Cls.X = ...``) that bind each
    name, and its decorators."""

    assigned: dict[str, list[ast.stmt]] = dataclasses.field(default_factory=dict)
    decorators: list[ast.expr] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class ModuleSource:
    """A module's top level: the statements binding each name, ``from m import n`` bindings, its classes.

    Attributes:
        assigned: name -> the statements that bind it (a compound statement, e.g. an ``if`` or ``for``,
            stands for every name bound inside it).
        imported: name -> (absolute module, attribute) for ``from module import attribute [as name]``.
        classes: ``__qualname__`` -> its ClassSource (classes inside functions too, ``f.<locals>.C``).
    """

    assigned: dict[str, list[ast.stmt]] = dataclasses.field(default_factory=dict)
    imported: dict[str, tuple[str, str]] = dataclasses.field(default_factory=dict)
    classes: dict[str, ClassSource] = dataclasses.field(default_factory=dict)


def is_extension(module: types.ModuleType) -> bool:
    """Whether ``module`` is compiled (a C or Cython extension): it has no source to read."""
    location = str(getattr(module, "__file__", None) or "")
    return location.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def module_source(module: types.ModuleType) -> ModuleSource | None:
    """The top level of ``module`` as read from its source; None when there is no source to read
    (an extension module, code run from a string, a notebook cell) or it does not parse."""
    loader = getattr(module, "__loader__", None)
    get_source = getattr(loader, "get_source", None)
    if get_source is None or is_extension(module):
        return None
    try:
        text = get_source(module.__name__)
        tree = ast.parse(text) if text else None
    except Exception:  # noqa: BLE001 - any loader failure (ImportError, OSError, SyntaxError) means no source
        return None
    if tree is None:
        return None
    found = ModuleSource()
    _collect(tree.body, "", found.assigned, found, module)
    return found


def _collect(
    body: list[ast.stmt], prefix: str, sink: dict[str, list[ast.stmt]], found: ModuleSource, module: types.ModuleType
) -> None:
    """Record what each statement of a module (``prefix`` "") or class body binds, and the classes in it."""
    for stmt in body:
        if isinstance(stmt, ast.ClassDef):
            qualname = f"{prefix}{stmt.name}"
            source = found.classes.setdefault(qualname, ClassSource())
            source.decorators.extend(stmt.decorator_list)
            _collect(stmt.body, f"{qualname}.", source.assigned, found, module)
            continue
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            _classes_in(stmt.body, f"{prefix}{stmt.name}.<locals>.", found, module)
            continue
        if isinstance(stmt, ast.ImportFrom) and not prefix:
            _record_import(stmt, found, module)
            continue
        for name in _bound_names(stmt):
            sink.setdefault(name, []).append(stmt)
        if not prefix:  # ``Cls.X = ...`` at module level sets a class attribute
            for owner, attribute in _attribute_targets(stmt):
                found.classes.setdefault(owner, ClassSource()).assigned.setdefault(attribute, []).append(stmt)
        if isinstance(stmt, _COMPOUND) or (_TRY_STAR is not None and isinstance(stmt, _TRY_STAR)):
            _classes_in(_nested_bodies(stmt), prefix, found, module)


def _classes_in(body: Iterable[ast.stmt], prefix: str, found: ModuleSource, module: types.ModuleType) -> None:
    """The class statements inside a function or compound statement (their bodies are not the scope's)."""
    for stmt in body:
        if isinstance(stmt, ast.ClassDef):
            _collect([stmt], prefix, {}, found, module)
        elif isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            _classes_in(stmt.body, f"{prefix}{stmt.name}.<locals>.", found, module)
        else:
            _classes_in(_nested_bodies(stmt), prefix, found, module)


def _nested_bodies(stmt: ast.stmt) -> Iterator[ast.stmt]:
    for field in ("body", "orelse", "finalbody"):
        yield from getattr(stmt, field, None) or ()
    for handler in getattr(stmt, "handlers", None) or ():
        yield from handler.body
    for case in getattr(stmt, "cases", None) or ():
        yield from case.body


def _record_import(stmt: ast.ImportFrom, found: ModuleSource, module: types.ModuleType) -> None:
    base = stmt.module or ""
    if stmt.level:
        package = (getattr(module, "__package__", None) or "").split(".")
        keep = len(package) - (stmt.level - 1)
        if keep <= 0 or not package[0]:
            return
        base = ".".join([*package[:keep], *([base] if base else [])])
    for alias in stmt.names:
        if alias.name != "*":
            found.imported[alias.asname or alias.name] = (base, alias.name)


def _bound_names(stmt: ast.stmt) -> list[str]:
    """Names a statement binds or changes in its scope: assigned (``X =``, ``X +=``, ``X[k] =``), or whose
    method it calls (``X.append(...)``, ``X.update(...)``); every such name inside a compound statement."""
    targets: list[ast.expr] = []
    if isinstance(stmt, ast.Assign):
        targets = list(stmt.targets)
    elif isinstance(stmt, ast.AnnAssign | ast.AugAssign) and (
        not isinstance(stmt, ast.AnnAssign) or stmt.value is not None
    ):
        targets = [stmt.target]
    elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
        receiver = stmt.value.func.value if isinstance(stmt.value.func, ast.Attribute) else None
        return [receiver.id] if isinstance(receiver, ast.Name) else []
    elif isinstance(stmt, _COMPOUND) or (_TRY_STAR is not None and isinstance(stmt, _TRY_STAR)):
        names = []
        if isinstance(stmt, ast.For | ast.AsyncFor):
            names.extend(_target_names(stmt.target))
        for inner in _nested_bodies(stmt):
            if not isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.extend(_bound_names(inner))
        return names
    return [name for target in targets for name in _target_names(target)]


def _target_names(target: ast.expr) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name):
        return [target.value.id]
    if isinstance(target, ast.Tuple | ast.List):
        return [name for element in target.elts for name in _target_names(element)]
    if isinstance(target, ast.Starred):
        return _target_names(target.value)
    return []


def _attribute_targets(stmt: ast.stmt) -> list[tuple[str, str]]:
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [getattr(stmt, "target", None)]
    return [
        (target.value.id, target.attr)
        for target in targets
        if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
    ]


def statement_text(node: ast.AST) -> str:
    """A statement or expression without its positions, comments or formatting (``ast.dump``)."""
    return ast.dump(node, annotate_fields=True, include_attributes=False)


def loaded_names(nodes: Iterable[ast.AST]) -> tuple[list[str], list[str]]:
    """The names the code reads (globals, builtins and its own locals alike) and the attribute names it uses."""
    names, attributes = set(), set()
    for node in nodes:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load):
                names.add(sub.id)
            elif isinstance(sub, ast.Attribute):
                attributes.add(sub.attr)
    return sorted(names), sorted(attributes)


def iterates_set(nodes: Iterable[ast.AST], resolve: Resolve) -> bool:
    """Whether running ``nodes`` iterates a set (or frozenset) where the order can reach the result.

    Counted: a comprehension or ``for`` over a set, ``*a_set``, and a set passed to a call that keeps
    order (``list``, ``tuple``, ``dict.fromkeys``, ``"".join``, ``enumerate``, ... by name) or to a
    Python function (which may iterate it). Not counted: a set passed to ``sorted``, ``len``, ``min``
    and the like, or to a class (a constructor stores it), or a set comprehension.

    Args:
        nodes: statements or expressions.
        resolve: a dotted name (as a tuple of parts) -> its object, or ``UNKNOWN``.
    """
    return any(_reveals(node, resolve) for node in nodes)


def _reveals(node: ast.AST, resolve: Resolve) -> bool:
    if isinstance(node, ast.Call):
        callee = _dotted(node.func)
        last = callee[-1] if callee else None
        if last in _ORDER_FREE and (len(callee) == 1 or resolve(callee) is UNKNOWN):
            return False  # whatever it iterates, its result has no order
        arguments = [*node.args, *(keyword.value for keyword in node.keywords)]
        if any(_is_set(argument, resolve) for argument in arguments) and _keeps_order(callee, resolve):
            return True
    elif isinstance(node, ast.ListComp | ast.GeneratorExp | ast.DictComp):
        if any(_is_set(generator.iter, resolve) for generator in node.generators):
            return True
    elif isinstance(node, ast.Starred) and _is_set(node.value, resolve):
        return True
    elif isinstance(node, ast.For | ast.AsyncFor) and _is_set(node.iter, resolve):
        return True
    return any(_reveals(child, resolve) for child in ast.iter_child_nodes(node))


def _keeps_order(callee: tuple[str, ...], resolve: Resolve) -> bool:
    if not callee:
        return True  # a call of a call's result, a subscript: unknown, so assume it iterates
    if callee[-1] in _ORDER_KEEPING:
        return True
    target = resolve(callee)
    return isinstance(target, types.FunctionType | types.MethodType)


def _is_set(node: ast.AST, resolve: Resolve) -> bool:
    """Whether ``node`` evaluates to a set or frozenset (by its form, or by the object its name holds)."""
    if isinstance(node, ast.Set | ast.SetComp):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, _SET_OPERATORS):
        return _is_set(node.left, resolve) or _is_set(node.right, resolve)
    if isinstance(node, ast.Call):
        callee = _dotted(node.func)
        if callee in (("set",), ("frozenset",)):
            return True
        return (
            isinstance(node.func, ast.Attribute)
            and node.func.attr in _SET_METHODS
            and _is_set(node.func.value, resolve)
        )
    dotted = _dotted(node)
    return bool(dotted) and isinstance(resolve(dotted), set | frozenset)


def _dotted(node: ast.AST) -> tuple[str, ...]:
    """``a.b.c`` as ("a", "b", "c"); () for anything else."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return ()
    return (node.id, *reversed(parts))


def resolver(*namespaces: dict[str, Any] | types.MappingProxyType[str, Any]) -> Resolve:
    """A ``resolve`` that looks a dotted name's first part up in ``namespaces`` (first wins), then its
    attributes on the object (modules and classes only: reading another object's attribute could run code)."""

    def resolve(dotted: tuple[str, ...]) -> Any:
        for namespace in namespaces:
            if dotted[0] in namespace:
                found = namespace[dotted[0]]
                break
        else:
            return UNKNOWN
        for part in dotted[1:]:
            if not isinstance(found, types.ModuleType | type):
                return UNKNOWN
            found = vars(found).get(part, UNKNOWN)
            if found is UNKNOWN:
                return UNKNOWN
        return found

    return resolve
