"""The code a task class or a Kedro node runs, as one digest that follows the code and ignores formatting.

kart's one code fingerprint: the Airflow operator compares ``code_fingerprint(task_class)`` between
the dag-processor and the worker (code skew), and the Kedro runner puts a node's
``CodeFingerprint.digest`` into the node's cache key. The rule (docs/kedro.md, "What the cache key
covers"; docs/faq.md for what it cannot follow):

- **Project code** is hashed. It is every module of the task class's (or node function's) own
  top-level package, of the Kedro project's package, of ``code_packages`` given to the runner, of
  any editable install (``pip install -e``) and of any module that belongs to no installed
  distribution (a script, a ``src/`` folder on ``sys.path``; a namespace package, a folder without
  ``__init__.py``, whose search locations all lie outside ``site-packages``; in one shared with an installed
  distribution, each module by where it lives). Starting at the class or function,
  the digest follows what the code references: global names (functions, classes, module-level
  values), attributes of project modules it uses (``helpers.scale``; a module imported inside the
  function in any form, ``from . import ops`` too; a submodule the code names that nothing imported
  yet is imported to be read), closures, default arguments,
  ``functools.partial`` arguments, wrapped functions (``__wrapped__``, also under a third-party or
  kart decorator) and every method, property and class attribute of a referenced class and of its
  project base classes — transitively. Dynamic look-ups are followed where the code shows them:
  ``importlib.import_module("pkg.mod")`` / ``__import__`` with a literal module name; a function
  calling ``getattr``/``vars`` or using ``__dict__`` counts every attribute of the project modules it
  references (by a name, an import, or an attribute chain: ``getattr(pkg.steps, name)``); one calling
  ``globals()`` counts every name of its own module.
- **Normalised**: a function counts by its bytecode (instructions, constants, names, argument
  layout), not by its text, so comments, blank lines, formatting, docstrings, line numbers, its
  annotations and the checkout directory do not count; the field types of a dataclass-like class do
  (``_field_annotations``). Module-level values count by content, read when the run starts;
  a ``str`` or ``PurePath`` that is, or lies under, the code's top-level package folder, the folder
  holding it, or the project root above a ``src/`` folder counts relative to that folder
  (``HERE = Path(__file__).resolve().parent`` is the same in every checkout).
  A compiled project module (a Cython or C extension built in place) has no bytecode: it counts by
  the md5 of the sections of its file the loader maps (kart_core.compiled; read once per file version
  per process), and its functions and classes by their names and that digest. One rebuilt or removed
  after the process loaded it is listed in ``CodeFingerprint.undigestable`` (the process runs the old build).
- **Third-party code** (installed, not editable) counts by its distribution's version
  (``pandas==2.2.3``); the standard library and builtins by the Python version, which the
  bytecode depends on anyway. kart itself (``kart_core``, ``kart_airflow``, ``kart_kedro``,
  ``TaskOnKart`` and its bases) counts by kart's version, even from an editable install.
- **Override**: ``@code_version("3")`` on a function, or the node tag ``kart_code_version.3``,
  replaces all of this by the given version string for that function or node.

Values count by everything that can change what code reading them computes: containers in order
(dict order too; sets independent of order and of ``PYTHONHASHSEED``), instances of project classes
by their attributes (``__dict__`` and the ``__slots__`` of every class in the MRO), and any other
object (``types.SimpleNamespace``, ``operator.itemgetter``, a third-party config object) by what
pickling it would save (``__reduce_ex__(5)``: its constructor, arguments and state), walked with the
same rules. A value whose type is project code counts with its class's code, whatever it derives
from (``_Visit._typed``): a ``dict``, ``list``, ``int`` or ``str`` subclass, a ``NamedTuple``, an
``Enum`` member (a default argument ``mode=Mode.STRICT``), a project object or function in a numpy
object array or a pandas object (named by its pickle), the enum class and default of a luigi
``EnumParameter``; a ``functools.partial`` subclass (its own methods, ``__call__``). A ``contextvars.ContextVar``
counts by its name and default, not by a value some context set. A luigi task (a ``TaskInstanceParameter``'s default, a ``luigi.Config()``) counts by its class
and parameters (``param_kwargs``), not luigi's seeded ``_Task__hash`` or kart's memos. A weak reference counts by what it refers to (a ``WeakValueDictionary``, a
``WeakSet``). A container or object reached twice within one value counts the second time as a
reference to where it was first met (its position in the walk, never its address): shared structure
is walked once, and ``[d, d]`` differs from ``[d, copy(d)]`` as their pickles do.

**The same in every process.** Airflow's dag-processor and workers, and every new process of a Kedro
run, must compute the same digest for the same code, whatever their ``PYTHONHASHSEED`` and whatever they
imported first. Set iteration order follows the hash seed (strings, bytes, enums and tuples of them) or
the address (plain objects), so the rule is:

- a set or frozenset (a value, a constant of compiled code, a default argument, an item of a tuple or
  dict) counts by its items in sorted order of their digests; project functions and classes inside a set
  are walked in the order of their names and places in the source;
- a value **made by iterating a set** counts by the source that makes it, never by its content (whose
  order is the process's): a module-level value or class attribute whose statement iterates a set
  (``NAMES = [x for x in {"a", "b"}]``, ``tuple(A_SET)``, ``",".join(A_SET)``,
  ``dict.fromkeys(A_SET)``, ``[*A_SET]``, a ``for`` over a set filling it, a set passed to a project
  function) counts as that statement (``ast.dump``: no comments, formatting or line numbers) plus the
  module-level names it reads, walked as any reference. A class attribute the class statement does not
  assign, when its decorators are given a set (``@disallow(A_FROZENSET)``), counts as the decorators.
  kart_core.provenance reads the statements from the module's source; ``sorted(A_SET)``, a set given to
  a class or a set comprehension keep counting by content. A value imported (``from m import NAMES``)
  is looked up in the module that makes it;
- a module with no source (a compiled extension, e.g. pandas' Cython modules as project code): its
  lists and tuples of strings count in any order;
- an enum member whose value has no stable ``repr`` (a frozenset, an object) counts by its value, walked;
- a luigi parameter counts by its settings walked as values, without ``_counter`` (its creation order in
  the process), also for a project subclass of ``luigi.Parameter``; a ``ChoiceParameter``'s description, which luigi ends with the
  choices in set order, counts with the choices sorted.

Some objects count by their type (and version) only, the same in every process: locks and other
synchronisation objects (their state is the moment's); random number generators (``random.Random``
and subclasses, numpy's ``Generator``, ``RandomState``, bit generators, ``SeedSequence``: their state
is seeded per process and moves as they are used; a seed edit does not count either); and resources
(boto3/botocore clients, sessions and resources, ``requests.Session``, httpx and aiohttp clients,
urllib3 pools, redis clients, google-cloud clients, sqlalchemy engines, logging handlers, threads,
executors: sockets, credentials and caches, not data a result depends on); and output resources (rich
``Console``, ``Progress`` and ``Live``, tqdm bars, ``sys.stdout``/``sys.stderr``: where output goes). A value walked on its
own (a module-level value, closure cell, default or class attribute) has a budget of 1,000,000
objects and 150 levels of nesting, and a third-party object inside it 20,000 objects; beyond that,
it counts by its type, with one warning naming it (``mod.api: a vendor_sdk.Client is too large to
fingerprint by content (...); it counts by its type``). A value with no content (it cannot be
pickled: an open connection, a file, a ``threading.local``) is listed in
``CodeFingerprint.undigestable``; the Kedro runner then runs the node uncached, with a warning.
"""

from __future__ import annotations

import contextlib
import contextvars
import copyreg
import dataclasses
import datetime
import decimal
import dis
import enum
import fractions
import functools
import importlib.machinery
import importlib.metadata
import importlib.util
import inspect
import json
import logging
import os
import pathlib
import queue
import re
import sys
import threading
import types
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple, TypeVar

from kart_core import integrity
from kart_core.compiled import compiled_digest
from kart_core.digest import digest
from kart_core.dotted import module_name as _module_of  # as the parent names it: one fingerprint in spawned children
from kart_core.dotted import parent_module_name
from kart_core.errors import FingerprintError, UndigestableError
from kart_core.provenance import (
    UNKNOWN,
    ModuleSource,
    is_extension,
    iterates_set,
    loaded_names,
    module_source,
    resolver,
    statement_text,
)

__all__ = [
    "CODE_VERSION_ATTRIBUTE",
    "CodeFingerprint",
    "CodeFingerprinter",
    "ModuleClassifier",
    "code_fingerprint",
    "code_version",
]

F = TypeVar("F", bound=Callable[..., Any])

logger = logging.getLogger(__name__)

CODE_VERSION_ATTRIBUTE = "kart_code_version"
_PYTHON = f"python=={sys.version_info.major}.{sys.version_info.minor}"
_COMPREHENSIONS = frozenset({"<listcomp>", "<setcomp>", "<dictcomp>", "<genexpr>"})
_KART_PACKAGES = frozenset({"kart_core", "kart_airflow", "kart_kedro"})
_KART_DISTRIBUTION = "kart-suite"
# Names whose use makes a function reach attributes the bytecode does not name (getattr(helpers, name)).
# What a project function's dynamic look-ups are (``_helper_look_ups``): module attributes, class subclasses.
_ATTRIBUTES = "attributes"
_SUBCLASSES = "subclasses"
# inspect.getmembers(helpers) is the same look-up as vars(helpers) (attacker at15 F9).
# operator.attrgetter / methodcaller and __getattribute__ are getattr in other spellings (attacker at16 G6).
_DYNAMIC_ATTRIBUTES = frozenset(
    {"getattr", "vars", "__dict__", "getmembers", "getmembers_static", "attrgetter", "methodcaller", "__getattribute__"}
)
_DYNAMIC_IMPORTS = frozenset({"import_module", "__import__"})
# Bytecode read to find the modules a function reaches: loads that start an attribute chain
# (``ops.OPS``, ``pkg.mod.K``), the loads that extend one, the constants an import reads (its level
# and fromlist; 3.14 loads small ints apart), the stores that bind an import's result, and the stack
# shuffling between an IMPORT_NAME and its stores (``import a.b.c as d``).
_NAME_LOADS = frozenset(
    {
        "LOAD_GLOBAL",
        "LOAD_NAME",
        "LOAD_FAST",
        "LOAD_FAST_CHECK",
        "LOAD_FAST_BORROW",
        "LOAD_DEREF",
        "LOAD_CLASSDEREF",
        "LOAD_FROM_DICT_OR_DEREF",
    }
)
_ATTRIBUTE_LOADS = frozenset({"LOAD_ATTR", "LOAD_METHOD"})
_GLOBAL_LOADS = frozenset({"LOAD_GLOBAL", "LOAD_NAME"})
_PAIRED = frozenset(
    {"LOAD_FAST_LOAD_FAST", "LOAD_FAST_BORROW_LOAD_FAST_BORROW", "STORE_FAST_LOAD_FAST", "STORE_FAST_STORE_FAST"}
)
_CONST_LOADS = frozenset({"LOAD_CONST", "LOAD_SMALL_INT"})
_NAME_STORES = frozenset({"STORE_FAST", "STORE_DEREF", "STORE_NAME", "STORE_GLOBAL"})
_IMPORT_STACK_OPS = frozenset({"SWAP", "ROT_TWO", "POP_TOP", "NOP", "EXTENDED_ARG", "CACHE"})
_MODULE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
# Class attributes that are bookkeeping, not behaviour (dataclass and ABC internals, annotations).
_CLASS_NOISE = frozenset(
    {
        "__dict__",
        "__weakref__",
        "__module__",
        "__doc__",
        "__qualname__",
        "__annotations__",
        "__dataclass_fields__",
        "__dataclass_params__",
        "__match_args__",
        "__slotnames__",
        "__abstractmethods__",
        "_abc_impl",
        "__parameters__",
        "__orig_bases__",
        "__static_attributes__",
        "__firstlineno__",
        # pydantic v2's own products of a model's fields, validators and config (all counted as attributes of
        # their own): its core schema names the class by its address ("mod.Cfg:94332568902944"), so it differs in
        # every process; the validator and serializer are built from it; the setattr handlers fill as instances
        # are assigned to; the parent namespace is the defining frame's locals.
        "__pydantic_core_schema__",
        "__pydantic_validator__",
        "__pydantic_serializer__",
        "__pydantic_setattr_handlers__",
        "__pydantic_parent_namespace__",
    }
)
_VALUE_TYPES = (
    datetime.date,
    datetime.time,
    datetime.timedelta,
    decimal.Decimal,
    fractions.Fraction,
    uuid.UUID,
    pathlib.PurePath,
    enum.Enum,
    range,
    slice,
)
# Synchronisation objects: their state is the moment's (locked or not), never a setting; by type.
_SYNC_TYPES = (
    type(threading.Lock()),
    type(threading.RLock()),
    threading.Condition,
    threading.Semaphore,
    threading.Event,
    threading.Barrier,
    queue.Queue,
    queue.SimpleQueue,
)
# Objects that count by their type (and version), matched by module and class name anywhere in the MRO
# (so fingerprinting imports none of these libraries). Random number generators: their state is the
# process's (seeded from the OS) and moves as they are used. Clients, sessions, engines, handlers,
# threads and executors: resources, not data a result depends on; their state holds sockets, SSL
# contexts, credentials, caches and per-process ids (what they read or write cannot be followed anyway).
_BY_TYPE = frozenset(
    {
        ("random", "Random"),
        ("numpy.random._generator", "Generator"),
        ("numpy.random.mtrand", "RandomState"),
        ("numpy.random.bit_generator", "BitGenerator"),
        ("numpy.random.bit_generator", "SeedSequence"),
        ("threading", "Thread"),
        ("concurrent.futures._base", "Executor"),
        ("logging", "Handler"),
        ("botocore.client", "BaseClient"),
        ("botocore.session", "Session"),
        ("boto3.session", "Session"),
        ("boto3.resources.base", "ServiceResource"),
        ("requests.sessions", "Session"),
        ("sqlalchemy.engine.base", "Engine"),
        ("sqlalchemy.ext.asyncio.engine", "AsyncEngine"),
        ("httpx._client", "BaseClient"),
        ("aiohttp.client", "ClientSession"),
        ("urllib3.poolmanager", "PoolManager"),
        ("urllib3.connectionpool", "ConnectionPool"),
        ("redis.client", "AbstractRedis"),
        ("redis.client", "Redis"),
        ("redis.connection", "ConnectionPool"),
        ("google.cloud.client", "Client"),
        # output resources: a console or progress bar writes where it is told, its state is the terminal's
        ("rich.console", "Console"),
        ("rich.progress", "Progress"),
        ("rich.live", "Live"),
        ("tqdm.std", "tqdm"),
    }
)
# Attributes that number objects in the order a process created them (by top-level package): they
# follow what else the process imported first (an Airflow worker imports other modules than its
# dag-processor), not what the object is. sqlalchemy's Column, Table and mapper properties carry one.
_PROCESS_COUNTERS: dict[str, frozenset[str]] = {"sqlalchemy": frozenset({"_creation_order"})}
_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class defined in Python, not a C type
# Budgets, in objects walked (each container, object and scalar once; a shared one once in all; an
# array or frame is one), about 2 microseconds each. Beyond one, what it covers counts by its type:
# - a value walked on its own (module-level value, closure cell, default, class attribute): data a
#   result may depend on (a lookup table read at import), so a generous one;
# - a third-party object inside it (the outermost one: what it holds shares its budget): a library's
#   config object is small; one that is not is a resource (a client of a service holds the service's
#   whole API model: a botocore S3 client ~120,000 objects), not data the cache must follow.
_MAX_NODES = 1_000_000
_MAX_OBJECT_NODES = 20_000
# A value of a module held as a value (``_Visit._held_data``) past this many bytes in one buffer is hashed by a fast
# hash (xxh3), not digest()'s md5: the code holding the module may never read it (a lookup table).
_HELD_DATA_BYTES = 1 << 20
# Levels of containers and objects inside each other (an object's pickled arguments and state are
# levels too). About three stack frames a level here and two in digest(): deeper would exhaust Python's
# stack (1,000 frames) for a caller already a few hundred frames deep.
_MAX_NESTING = 150
# Pieces of project code normalised inside each other (a function, then a function it calls, ...), about
# eight stack frames each. Deeper ones are queued and normalised after the outer ones (_Visit.drain), so a
# chain of any length fits in Python's stack. Below it the walk is the depth-first one it always was:
# keys (a second ``mod.<lambda>`` becomes ``mod.<lambda>#2``), hence digests, stay as before.
_MAX_CODE_DEPTH = 32
_SPLIT = "\0split"  # ModuleClassifier: a namespace top whose modules count each by where they live
_SCALARS = (type(None), bool, int, float, complex, str, bytes, bytearray)
_EMPTY_MODULE = types.ModuleType("_kart_empty")  # what an import of a module no longer loaded finds
_CONTAINERS = (list, tuple, set, frozenset, dict, types.MappingProxyType)
_CODE_VALUES = (types.FunctionType, type, types.ModuleType, functools.partial, types.MethodType)
_CODE_TYPES = (
    types.FunctionType,
    type,
    types.ModuleType,
    functools.partial,
    types.MethodType,
    staticmethod,
    classmethod,
    property,
    types.BuiltinFunctionType,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
)


def code_version(version: str) -> Callable[[F], F]:
    """Pin a node function's code fingerprint to ``version`` (kart then ignores its code and what it calls).

    Use it for code the fingerprint cannot see (it reads files, or calls a service) or to keep a
    cache across a refactoring that changes no result. Bump the string to rerun the nodes using it.

    Args:
        version: any non-empty string; only equality matters.

    Raises:
        ValueError: when ``version`` is empty.
    """
    if not str(version):
        raise ValueError("code_version() needs a non-empty version string, e.g. @code_version('2').")

    def mark(func: F) -> F:
        setattr(func, CODE_VERSION_ATTRIBUTE, str(version))
        return func

    return mark


@dataclasses.dataclass(frozen=True)
class CodeFingerprint:
    """The digest of a node's code and what it is made of.

    Attributes:
        digest: md5 hex of ``items`` and ``packages``; the ``code`` part of the node's cache key.
        items: ``module.qualname`` (or ``module.NAME`` for values) of every piece of project code
            reached, with the md5 of its normalised form — what changed, when the digest changed.
        packages: ``distribution==version`` of the third-party code it references (``python==3.11``
            for the standard library).
        undigestable: ``where: what`` for each value reached whose content cannot be read (it cannot
            be pickled, e.g. ``pkg.helpers.CONN: a sqlite3.Connection that cannot be pickled``); such a
            value counts by its type only, so a cache keyed by this digest could serve stale results
            (the Kedro runner runs the node uncached). Empty for an explicit code version.
        root: md5 hex of the node callable itself as ``digest`` counts it: its own code and what is
            bound to it (a bound method's instance, a callable object's attributes, a
            ``functools.partial``'s arguments), which no entry of ``items`` names; "" for an explicit
            code version. What changed, when ``digest`` changed and no item did.
    """

    digest: str
    items: Mapping[str, str]
    packages: tuple[str, ...]
    undigestable: tuple[str, ...] = ()
    root: str = ""


class ModuleClassifier:
    """Decides whether a module is project code (hashed) or third-party code (a version)."""

    def __init__(self, own_packages: Iterable[str] = ()) -> None:
        """Args:
        own_packages: top-level package names always treated as project code.
        """
        self.own_packages = {name.partition(".")[0] for name in own_packages if name}
        self._distributions: Mapping[str, list[str]] | None = None
        self._cache: dict[str, str | None] = {}
        self._portions: dict[str, str | None] = {}  # module name -> its token, for a split namespace's modules
        self._records: dict[str, tuple[str, frozenset[str]] | None] = {}  # distribution -> _recorded()

    def version_of(self, module_name: str) -> str | None:
        """None for project code, else the token that stands for the module (``dist==version``).

        Decided by the top-level name, except in a namespace package (PEP 420) with portions both in and
        outside ``site-packages`` (an installed ``acme.lib``, the project's ``src/acme/pipeline``): there each
        module counts by where it lives (``_classify_portion``)."""
        top = module_name.partition(".")[0]
        if top not in self._cache:
            self._cache[top] = self._classify(top)
        found = self._cache[top]
        if found != _SPLIT:
            return found
        if module_name not in self._portions:
            self._portions[module_name] = self._classify_portion(top, module_name)
        return self._portions[module_name]

    def _classify(self, top: str) -> str | None:
        if top in self.own_packages or top == "__main__":
            return None
        if top in _KART_PACKAGES:  # kart's own code: its version, not its source (even from an editable install)
            return f"{_KART_DISTRIBUTION}=={_version(_KART_DISTRIBUTION)}"
        if top in sys.stdlib_module_names or top in sys.builtin_module_names:
            return _PYTHON
        module, spec = _module_and_spec(top)
        location = str(getattr(module, "__file__", None) or "") if module is not None else _origin(spec)
        if not location:
            searched = _search_locations(module, spec)
            installed = [_installed_location(folder) for folder in searched]
            if searched and not any(installed):
                return None  # a folder without __init__.py (PEP 420) in a src/ folder: project code
            if any(installed) and not all(installed):
                return _SPLIT  # a namespace shared by installed distributions and the project: by module
        names = _distributions_named_like(top)  # a direct lookup: most distributions are named as their module
        if not names:
            if location and not _installed_location(location):
                return None  # on sys.path but not installed (a src/ folder), or an editable install: project code
            names = self._providers(top)
            if not names:
                return f"{top}==unknown" if not location else f"{top}==unversioned"
        if any(_is_editable(name) for name in names):
            return None
        return ",".join(f"{name}=={_version(name)}" for name in names)

    def _providers(self, top: str) -> list[str]:
        """The installed distributions providing a part of the top-level package ``top``."""
        if self._distributions is None:  # the slow path: one scan of all installed distributions
            self._distributions = importlib.metadata.packages_distributions()
        return sorted(set(self._distributions.get(top, ())))

    def _installed_file(self, distribution: str, path: str) -> bool:
        """Whether ``distribution``'s RECORD lists the file ``path`` (or, for a folder, a file under it)."""
        if distribution not in self._records:  # read once per classifier: one RECORD per distribution
            self._records[distribution] = _recorded(distribution)
        found = self._records[distribution]
        if found is None:
            return False
        base, places = found
        return os.path.relpath(os.path.realpath(path), base).replace(os.sep, "/") in places

    def _classify_portion(self, top: str, module_name: str) -> str | None:
        """A module of the split namespace ``top``: project code (None) when its file, or one folder of a
        namespace sub-package, lies outside ``site-packages``; else the version of the distribution that
        installed that file (every distribution providing a part of ``top`` when none lists it)."""
        location, searched = _module_location(module_name)
        places = [location] if location else searched
        if not places or not all(_installed_location(place) for place in places):
            return None  # the project's half (a namespace sub-package spanning both: its modules count each)
        names = [name for name in self._providers(top) if self._installed_file(name, places[0])] or self._providers(top)
        if not names:
            return f"{top}==unversioned"
        return ",".join(f"{name}=={_version(name)}" for name in names)


def _distributions_named_like(top: str) -> list[str]:
    """Installed distributions named like the module ``top`` that really provide it."""
    for name in dict.fromkeys([top, top.replace("_", "-")]):
        facts = _distribution_facts(name)
        if facts is not None and top in facts.provided:
            return [facts.name or name]
    return []


class _DistributionFacts(NamedTuple):
    """What the classifier reads of one installed distribution (``importlib.metadata.distribution(name)``).

    Attributes:
        name: its metadata ``Name`` (may be empty).
        version: its metadata ``Version`` (``importlib.metadata.version``'s answer; None without that field).
        provided: the top-level names it installs: ``top_level.txt``, else the first folder (or module) of
            each ``RECORD`` line.
        editable: an editable install (PEP 610 ``direct_url.json`` with ``dir_info.editable``).
    """

    name: str
    version: str | None
    provided: tuple[str, ...]
    editable: bool


# importlib.metadata's answers per process, for the state of the installs they were read in (_install_stamp):
# finding a distribution searches every sys.path entry and each metadata read parses its METADATA
# file (Kedro's: ~1 ms), ~5 ms per Kedro run whose pipeline names a project dataset class (the class's
# third-party base is classified by reading it) before 2026-12-02. Emptied whenever the stamp changes.
_FACTS: dict[str, _DistributionFacts | None] = {}
_FACTS_STAMP: list[tuple[tuple[str, int], ...]] = [()]
_FACTS_LOCK = threading.Lock()


def _install_stamp() -> tuple[tuple[str, int], ...]:
    """Each ``sys.path`` entry with its modification time (ns; -1 when it cannot be read).

    What importlib.metadata's own look-up cache is keyed by (``FastPath.lookup(mtime)``, Python 3.11): an
    install, an upgrade or an uninstall adds or removes a ``*.dist-info`` folder in its ``sys.path`` entry,
    which moves that entry's modification time."""
    stamp = []
    for entry in sys.path:
        try:
            stamp.append((entry, os.stat(entry or ".").st_mtime_ns))
        except (OSError, ValueError, TypeError):
            stamp.append((str(entry), -1))
    return tuple(stamp)


def _distribution_facts(name: str) -> _DistributionFacts | None:
    """``importlib.metadata.distribution(name)``'s facts, or None when no such distribution is installed.

    Read once per process and state of the installs (``_install_stamp``, taken on every call: a stat per
    ``sys.path`` entry, against ~1-2 ms per distribution found and parsed). Within one ``sys.path`` state the
    answers are importlib.metadata's own: the same name, version, top-level names and editable flag.
    """
    stamp = _install_stamp()
    with _FACTS_LOCK:
        if _FACTS_STAMP[0] != stamp:
            _FACTS.clear()
            _FACTS_STAMP[0] = stamp
        if name in _FACTS:
            return _FACTS[name]
    facts = _read_facts(name)
    with _FACTS_LOCK:
        if _FACTS_STAMP[0] == stamp:
            _FACTS[name] = facts
    return facts


def _read_facts(name: str) -> _DistributionFacts | None:
    try:
        distribution = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return None
    provided = (distribution.read_text("top_level.txt") or "").split()
    if not provided:  # RECORD's first column read as text: Distribution.files builds a Path per file (slow)
        record = distribution.read_text("RECORD") or ""
        provided = [line.split(",", 1)[0].split("/", 1)[0].removesuffix(".py") for line in record.splitlines()]
    found = _name_and_version(distribution)
    try:
        text = distribution.read_text("direct_url.json")
        editable = bool(text and json.loads(text).get("dir_info", {}).get("editable"))
    except (ValueError, AttributeError):
        editable = False
    return _DistributionFacts(found[0], found[1], tuple(provided), editable)


def _name_and_version(distribution: importlib.metadata.Distribution) -> tuple[str, str | None]:
    """``(metadata["Name"] or "", metadata["Version"])`` of ``distribution`` (``Distribution.metadata``).

    Read from the header block of its metadata file (``_header_fields``) when that is plain, else parsed as
    ``Distribution.metadata`` parses it: the email parser reads the whole file, the long description too (Kedro's
    ~0.9 ms, per distribution read in a new process: the classifier reads each project dataset class's base).
    A field the metadata lacks reads as None (as Python 3.11's ``importlib.metadata`` answers), also where
    ``distribution`` is the ``importlib_metadata`` backport's: once any library imports that backport it answers
    for ``importlib.metadata.distribution`` too, and its ``metadata[...]`` raises KeyError for a missing field.
    """
    text = distribution.read_text("METADATA") or distribution.read_text("PKG-INFO")  # what .metadata reads first
    found = _header_fields(text) if text else None
    if found is not None:
        return found
    metadata = distribution.metadata
    name = metadata["Name"] if "Name" in metadata else None
    version = metadata["Version"] if "Version" in metadata else None
    return name or "", version


_FIELD_NAME = re.compile(r"[\041-\071\073-\176]+")  # the email parser's header field name: printable, no colon


def _header_fields(text: str) -> tuple[str, str] | None:
    """``Name`` and ``Version`` as the email parser (``compat32``, as ``Distribution.metadata`` uses it) returns them
    from the metadata ``text``: the first field of each name (case-insensitive), its value after the colon without the
    blanks before it. None (parse it whole) unless the header block is plain: ``\n`` line ends only, every line up to
    the first empty one a ``Field: value`` line or a folded continuation (none after ``Name`` or ``Version``), no
    mbox ``From `` line first, and both fields there."""
    if "\r" in text or text.startswith("From "):
        return None
    fields: dict[str, str] = {}
    field = ""
    for line in text.partition("\n\n")[0].split("\n"):
        if not line:  # the text's last line end, or an empty first line (no headers: None below)
            break
        if line[0] in " \t":  # a folded line continues the field before it
            if field in ("name", "version"):
                return None
            continue
        colon = line.find(":")
        if colon <= 0 or _FIELD_NAME.fullmatch(line, 0, colon) is None:
            return None  # the parser would end the headers here, with a defect: leave it to the parser
        field = line[:colon].lower()
        if field in ("name", "version") and field not in fields:
            fields[field] = line[colon + 1 :].lstrip(" \t")
    if "name" not in fields or "version" not in fields:
        return None
    return fields["name"], fields["version"]


def _module_and_spec(top: str) -> tuple[types.ModuleType | None, importlib.machinery.ModuleSpec | None]:
    """The loaded top-level module ``top`` and its spec; when not loaded (a module a function imports in its
    body), None and where an import would find it; (None, None) when neither knows it."""
    module = sys.modules.get(top)
    if module is not None:
        return module, getattr(module, "__spec__", None)
    try:
        return None, importlib.util.find_spec(top)  # a top-level name: imports nothing
    except (ImportError, ValueError):
        return None, None


def _origin(spec: importlib.machinery.ModuleSpec | None) -> str:
    """The file a spec loads from; "" for a namespace package, a built-in or no spec."""
    return str(spec.origin or "") if spec is not None and spec.has_location else ""


def _search_locations(module: types.ModuleType | None, spec: importlib.machinery.ModuleSpec | None) -> list[str]:
    """The folders of a package (a namespace package's portions, PEP 420), as they are now; [] for a module."""
    found = getattr(module, "__path__", None) if module is not None else None
    if found is None:
        found = getattr(spec, "submodule_search_locations", None)
    return [str(folder) for folder in (found or ())]


def _module_location(module_name: str) -> tuple[str, list[str]]:
    """Where ``module_name`` lives: its file ("" for a namespace package) and its package folders, from the
    loaded module or, when not loaded, from its parent's folders without importing anything; ("", []) when
    it cannot be found."""
    parts = module_name.split(".")
    folders: list[str] | None = None
    location = ""
    for end in range(1, len(parts) + 1):
        name = ".".join(parts[:end])
        module = sys.modules.get(name)
        spec = getattr(module, "__spec__", None) if module is not None else None
        if module is None:
            try:  # PathFinder reads folders only: no parent package's __init__ runs
                spec = importlib.machinery.PathFinder.find_spec(name, folders)
            except KeyError:  # a namespace sub-package of a parent not imported: its folders are the parent's
                location = ""
                folders = [os.path.join(folder, parts[end - 1]) for folder in folders or ()]
                folders = [folder for folder in folders if os.path.isdir(folder)]
                continue
            except (ImportError, ValueError):
                spec = None
            if spec is None:
                return "", []
        location = str(getattr(module, "__file__", None) or "") if module is not None else _origin(spec)
        folders = _search_locations(module, spec)
    return location, folders or []


def _recorded(distribution: str) -> tuple[str, frozenset[str]] | None:
    """The folder ``distribution`` is installed in and the files its RECORD lists with every folder above
    them; None when it is not installed."""
    try:
        found = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    places: set[str] = set()
    for line in (found.read_text("RECORD") or "").splitlines():
        entry = line.split(",", 1)[0]
        while entry and entry not in places:
            places.add(entry)
            entry = entry.rpartition("/")[0]
    return os.path.realpath(str(found.locate_file(""))), frozenset(places)


def _installed_location(path: str) -> bool:
    """Whether a module file lives where installers put packages."""
    return "site-packages" in path or "dist-packages" in path


def _is_editable(distribution: str) -> bool:
    """Whether the distribution is an editable install (PEP 610 ``direct_url.json``)."""
    facts = _distribution_facts(distribution)
    return facts is not None and facts.editable


def _version(distribution: str) -> str:
    facts = _distribution_facts(distribution)
    return "unknown" if facts is None or facts.version is None else facts.version


class _TooLarge(Exception):
    """A value's walk passed its budget (``_MAX_NODES``, ``_MAX_NESTING``); the message says which."""


@dataclasses.dataclass(slots=True)
class _Scope:
    """What the walk of one piece of code or value has met: objects by id, in the order met, each
    with its position in that order (what a second meeting refers to) and kept alive so that no other
    object takes the id while the walk lasts; and its cost against the budget."""

    memo: dict[int, tuple[int, Any]] = dataclasses.field(default_factory=dict)
    nodes: int = 0
    limit: int = _MAX_NODES  # ``nodes`` may not pass it: the value's budget, or its third-party object's
    nesting: int = 0
    object_start: int | None = None  # ``nodes`` when the walk entered the outermost third-party object


@dataclasses.dataclass
class _Item:
    """One piece of project code: its own normalised digest and what it references."""

    local: str
    refs: set[str]
    packages: set[str]
    name: str = ""  # module.qualname (module.NAME for a value): names it in ``undigestable``
    module: str = ""  # the module it belongs to: a path value under its package's folder counts relative to it
    undigestable: set[str] = dataclasses.field(default_factory=set)


class CodeFingerprinter:
    """Computes CodeFingerprints, sharing the work between the nodes of one run.

    Each piece of project code is normalised once; a node's digest then covers the pieces reachable
    from its function. References form a graph (recursion and mutual references are fine).
    """

    def __init__(self, classifier: ModuleClassifier | None = None) -> None:
        """Args:
        classifier: decides what is project code; default: a ModuleClassifier without extra packages.
        """
        self.classifier = classifier or ModuleClassifier()
        self._items: dict[str, _Item] = {}
        self._keys: dict[int, str] = {}
        self._taken: set[str] = set()
        self._alive: list[Any] = []  # keeps visited objects alive so their id() stays theirs
        self.absent: set[str] = set()  # submodule names found not to exist (or not to import)
        self._sources: dict[str, ModuleSource | None] = {}  # module name -> its top level, parsed once
        # a singledispatch registry's key -> (the registry, how many implementations it held when read)
        self.registries: dict[str, tuple[Mapping[Any, Any], int]] = {}

    def fingerprint(self, func: Any, version: str | None = None) -> CodeFingerprint:
        """The fingerprint of a node function (any callable), or of an explicit ``version``.

        Args:
            func: the node's function; ``functools.partial``, bound methods and callable objects too.
            version: an explicit code version (from a node tag); wins over everything else.

        Raises:
            FingerprintError: Python's stack ran out on the way (the caller was already deep); names ``func``.
        """
        explicit = version if version is not None else _explicit_version(func)
        if explicit is not None:
            return CodeFingerprint(digest(["code_version", explicit]), {"code_version": explicit}, ())
        name = getattr(func, "__qualname__", None) or type(func).__qualname__
        root = _Item(
            local="", refs=set(), packages=set(), name=f"{_module_of(func) or None}.{name}", module=_module_of(func)
        )
        visit = _Visit(self)
        try:
            for key, (registry, size) in list(self.registries.items()):
                if len(registry) != size:  # grew since it was read (a module imported since registered more)
                    visit.queue_registry(key, registry, again=True)
            with visit.walking(root):
                root.local = digest(visit.content(func, code=True))
            visit.drain()
        except BaseException as exc:
            visit.forget()  # half-normalised pieces must not serve the next node
            if isinstance(exc, RecursionError):  # a caller already deep, or a value nested past the budget
                raise FingerprintError(root.name, visit.failed_in, sys.getrecursionlimit()) from None
            raise
        items, packages, undigestable = self._closure(root)
        packages.add(_PYTHON)
        ordered = dict(sorted(items.items()))
        return CodeFingerprint(
            digest([root.local, ordered, sorted(packages)]),
            ordered,
            tuple(sorted(packages)),
            tuple(sorted(undigestable)),
            root.local,
        )

    def _closure(self, root: _Item) -> tuple[dict[str, str], set[str], set[str]]:
        """Every piece of project code reachable from ``root``, the versions and the undigestable values they reference."""
        items: dict[str, str] = {}
        packages = set(root.packages)
        undigestable = set(root.undigestable)
        pending = list(root.refs)
        while pending:
            key = pending.pop()
            if key in items:
                continue
            item = self._items[key]
            items[key[len("own:") :]] = item.local
            packages |= item.packages
            undigestable |= item.undigestable
            pending.extend(ref for ref in item.refs if ref[len("own:") :] not in items)
        return items, packages, undigestable

    def key_for(self, obj: Any, name: str) -> str:
        """A stable key for a piece of project code (``own:module.qualname``), unique per object."""
        known = self._keys.get(id(obj))
        if known is not None:
            return known
        key = f"own:{name}"
        suffix = 1
        # nor a module-level value's key (``_Visit._global``): ``@click.command() def scale`` binds ``scale`` to an
        # object holding the function, whose key would otherwise be the value's, and its code would never be read
        while key in self._taken or key in self._items:
            suffix += 1
            key = f"own:{name}#{suffix}"
        self._keys[id(obj)] = key
        self._taken.add(key)
        self._alive.append(obj)
        return key

    def source_of(self, module: types.ModuleType) -> ModuleSource | None:
        """The statements of ``module``'s top level and class bodies (parsed once per fingerprinter)."""
        name = module.__name__
        if name not in self._sources:
            self._sources[name] = module_source(module)
        return self._sources[name]

    def has(self, key: str) -> bool:
        """Whether the piece of code under ``key`` is already normalised (or being normalised)."""
        return key in self._items

    def claimed(self, key: str) -> bool:
        """Whether ``key`` is a function's or class's (``key_for``)."""
        return key in self._taken

    def store(self, key: str, item: _Item) -> None:
        """Record a normalised piece of code."""
        self._items[key] = item

    def drop(self, key: str) -> None:
        """Forget the piece of code under ``key`` (its normalisation did not finish)."""
        self._items.pop(key, None)


def _explicit_version(func: Any) -> str | None:
    for candidate in (func, getattr(func, "func", None), getattr(func, "__func__", None)):
        version = getattr(candidate, CODE_VERSION_ATTRIBUTE, None) if candidate is not None else None
        if isinstance(version, str):
            return version
    return None


class _Visit:
    """One traversal: turns objects into tokens, normalising project code on the way."""

    def __init__(self, owner: CodeFingerprinter) -> None:
        self.owner = owner
        self.stack: list[_Item] = []
        self.scope = _Scope()
        self._by_type_classes: dict[type, bool] = {}
        self._task_classes: dict[type, bool] = {}  # _is_task_class
        self._anchors: dict[str, list[tuple[str, int]]] = {}  # module -> folders a path value counts relative to
        self.pending: list[tuple[_Item, Callable[[], Any]]] = []  # pieces queued past _MAX_CODE_DEPTH
        # singledispatch registries, read once everything else is walked: the walk imports the modules the code
        # imports (a literal import_module too), and such a module may register an overload
        self.registries: list[tuple[_Item, Callable[[], Any]]] = []
        self.stored: list[str] = []  # keys this traversal stored: dropped if it fails
        self.failed_in: str | None = None  # the innermost piece being normalised when the traversal failed
        self._look_ups: dict[types.CodeType, frozenset[str]] = {}  # _reached_look_ups of a project function's code

    @contextlib.contextmanager
    def walking(self, item: _Item) -> Iterator[None]:
        """Normalise ``item`` in a scope of its own: its digest must not depend on what was walked before it."""
        outer, self.scope = self.scope, _Scope()
        self.stack.append(item)
        try:
            yield
        except BaseException:
            if self.failed_in is None:
                self.failed_in = item.name
            raise
        finally:
            self.stack.pop()
            self.scope = outer

    # --- tokens: how an object appears inside the code that references it ---------------------

    def token(self, obj: Any) -> str:
        """The token of ``obj``: a key for code, a version for third-party code, a digest for values."""
        if isinstance(obj, types.ModuleType):
            external = self._external(obj.__name__, obj.__name__)
            if external is not None:
                return external
            return self._held_module(obj)
        if isinstance(obj, functools.partial):
            found = ["partial", self.token(obj.func), self.value(obj.args), self.value(obj.keywords)]
            if type(obj) is not functools.partial:  # a subclass's methods (its own __call__) and attributes are code
                found += [self.token(type(obj)), self.value(vars(obj))]  # it runs (attacker at20 K7)
            return digest(found)
        if isinstance(obj, types.MethodType):
            return digest(["method", self.token(obj.__func__), self.value(obj.__self__)])
        if isinstance(obj, staticmethod | classmethod):
            return self.token(obj.__func__)
        if isinstance(obj, functools.singledispatchmethod):  # its overloads live in its dispatcher's registry
            return digest(["singledispatchmethod", self.token(obj.dispatcher)])
        if isinstance(obj, property):
            return digest(["property", *(self.token(f) for f in (obj.fget, obj.fset, obj.fdel))])
        if isinstance(obj, types.FunctionType):
            return self._function(obj)
        if isinstance(obj, type):
            return self._class(obj)
        if callable(obj) and hasattr(obj, "__wrapped__") and not isinstance(obj, type):
            return digest(["wrapped", self.token(type(obj)), self.token(obj.__wrapped__)])
        if isinstance(obj, types.BuiltinFunctionType | types.MethodDescriptorType | types.WrapperDescriptorType):
            module = _module_of(obj) or "builtins"
            external = self._external(module, getattr(obj, "__qualname__", repr(obj)))
            if external is not None:
                return external
            # a function of a compiled project module (Cython, pybind11, build_ext --inplace): by its name and the
            # module file's bytes, since its code has no bytecode to read
            compiled = self._compiled(sys.modules.get(module))
            return f"builtin:{obj!r}" if compiled is None else digest([f"builtin:{obj!r}", compiled])
        return self.value(obj)

    def _held_module(self, module: types.ModuleType) -> str:
        """A project module held as a value (a class attribute ``mod = steps``, a closure cell, a default, an
        argument bound by ``functools.partial(getattr, steps)``) by every attribute it has: code that holds a
        module may look up any of them by a name no bytecode shows (``getattr(self.mod, name)``), so all count,
        as for a function that calls ``getattr`` (attacker at16 G6). A module named by code (a global) is
        counted by ``_global`` instead, by the attributes the code uses."""
        key = f"own:{module.__name__}.*"  # '*' is no identifier: no module attribute has this key
        if not self.owner.has(key):
            self._normalise(key, key[len("own:") :], lambda: self._held_module_parts(module), module.__name__)
        return self._reference(key)

    def _held_module_parts(self, module: types.ModuleType) -> list[Any]:
        found = [f"module:{module.__name__}", self._module_attributes(module, sorted(vars(module)), set(), held=True)]
        compiled = self._compiled(module)
        return found if compiled is None else [*found, compiled]

    def _compiled(self, module: types.ModuleType | None) -> str | None:
        """The digest of a compiled module as this process runs it (kart_core.compiled); None for any other
        module. A build replaced or removed since the process loaded it makes the code reaching it
        undigestable: the process runs the old build, which no key of the new file may cache."""
        found = compiled_digest(module)
        if found is None:
            return None
        if found.stale and self.stack and module is not None:
            item = self.stack[-1]
            item.undigestable.add(
                f"{item.name or '?'}: the compiled module {module.__name__} ({module.__file__}), {found.stale}"
                " (this process still runs the build it loaded; restart the process to run and cache the new one)"
            )
        return found.digest

    def _external(self, module: str, name: str) -> str | None:
        """The token of third-party code (recorded with its version), or None for project code."""
        version = self.owner.classifier.version_of(module)
        if version is None:
            return None
        if self.stack:  # the version counts once per node, beside the code, not inside each reference
            self.stack[-1].packages.add(version)
        return f"ext:{module}.{name}"

    def _normalise(self, key: str, name: str, parts: Callable[[], Any], module: str = "") -> None:
        """Store the piece of code under ``key`` and normalise it (``parts`` gives its content): now, or,
        past ``_MAX_CODE_DEPTH`` pieces inside each other, once the outer ones are done (``drain``)."""
        item = _Item(local="", refs=set(), packages=set(), name=name, module=module)
        self.owner.store(key, item)  # stored first: recursion and cycles find it
        self.stored.append(key)
        if len(self.stack) < _MAX_CODE_DEPTH:
            self._walk(item, parts)
        else:  # its key is all the referencing code holds of it: normalising it later changes no digest
            self.pending.append((item, parts))

    def _walk(self, item: _Item, parts: Callable[[], Any]) -> None:
        with self.walking(item):
            item.local = digest(parts())

    def drain(self) -> None:
        """Normalise the queued pieces (each may queue more, past the depth again); last queued first."""
        while self.pending or self.registries:
            while self.pending:
                self._walk(*self.pending.pop())
            if self.registries:
                self._walk(*self.registries.pop(0))

    def forget(self) -> None:
        """Drop what this traversal stored: after a failure, some of it is not normalised."""
        for key in self.stored:
            self.owner.drop(key)
        self.pending.clear()
        self.registries.clear()

    def _reference(self, key: str) -> str:
        if self.stack:
            self.stack[-1].refs.add(key)
        return key

    # --- project code -------------------------------------------------------------------------

    def _function(self, func: types.FunctionType) -> str:
        module = _module_of(func) or "__main__"
        if module.startswith("namedtuple_") and func.__globals__.get("_tuple_new") is tuple.__new__:
            # A namedtuple's __new__, which collections makes from the field names in a module of its own name
            # (``namedtuple_P``, no such module): collections' code, its fields and defaults in the class's
            # ``_fields`` and ``_field_defaults``. Not classified: finding no ``namedtuple_P`` costs a scan of
            # every installed distribution (~0.3 s).
            module = "collections"
        name = f"{module}.{func.__qualname__}"
        external = self._external(module, func.__qualname__)
        if external is not None:
            wrapped = getattr(func, "__wrapped__", None)
            if wrapped is not None:  # kart's run() routing or a library's decorator around project code
                return digest(["wrapped", external, self.token(wrapped)])
            return external
        key = self.owner.key_for(func, name)
        if not self.owner.has(key):
            self._normalise(key, name, lambda: self._function_parts(func), module)
        return self._reference(key)

    def _function_parts(self, func: types.FunctionType) -> list[Any]:
        code = func.__code__
        names = sorted(_all_names(code))
        globals_ = func.__globals__
        references = []
        module = _module_of(func) or "__main__"
        package = globals_.get("__package__")
        scan = _scanned_imports(code, package) if self._imports_matter(code, globals_) else _NO_IMPORTS
        # Before any module is walked: a submodule the code reaches (``from pkg import mod``, ``pkg.mod.K``)
        # is an attribute of its package only once imported; whether something imported it first must not count.
        from_modules = self._load_submodules(scan, globals_)
        chained = self._chained_modules(scan, globals_)
        # getattr(helpers, name) can reach any attribute of a module it references: count them all. So can a
        # project helper it calls with the module (lookup(helpers, name)): the caller names what the helper reads.
        helpers = self._helper_look_ups(names, globals_, chained.values())
        dynamic = not _DYNAMIC_ATTRIBUTES.isdisjoint(names) or _ATTRIBUTES in helpers
        for name in names:
            if name in globals_:
                references.append([name, self._global(module, name, globals_[name], names, dynamic)])
        if not dynamic:  # a project module the code holds as a value (stored, passed, returned): every attribute
            references.extend(self._held_modules(scan, globals_))
        else:  # a project module an attribute chain reaches (getattr(pkg.steps, name)) counts as a global one does
            references.extend([f"chained {name}", self._held_module(chained[name])] for name in sorted(chained))
        if "globals" in names:  # globals()[name]: any name of the function's own module
            own = sorted(name for name in globals_ if not name.startswith("__") and name not in names)
            references.append(["globals()", [[n, self._global(module, n, globals_[n], names, dynamic)] for n in own]])
        if "__subclasses__" in names or _SUBCLASSES in helpers:  # Step.__subclasses__(), find(Step, name): plugins
            for cls in self._named_classes(names, globals_, [chained[name] for name in sorted(chained)]):
                subclasses = [self.token(sub) for sub in self._project_subclasses(cls)]
                references.append([f"{cls.__module__}.{cls.__qualname__}.__subclasses__()", subclasses])
        inner_imports = self._imported_modules(scan, code, globals_.get("__package__"), names) | from_modules
        for module_name in sorted(inner_imports):
            loaded = self._import(module_name)  # an import inside the body
            imported = self._global(module_name, "", loaded, names, dynamic) if loaded else module_name
            references.append([f"import {module_name}", imported])
        closure = [self.content(cell.cell_contents) for cell in func.__closure__ or () if _cell_filled(cell)]
        return [
            _normalised_code(code, func.__doc__),
            references,
            closure,
            self.content(func.__defaults__),
            self.content(func.__kwdefaults__),
            self.token(func.__wrapped__) if hasattr(func, "__wrapped__") else None,
            *self._dispatch_registry(func),
        ]

    def _held_modules(self, scan: _ImportScan, globals_: Mapping[str, Any]) -> list[Any]:
        """The project modules the code uses as values (``scan.ends``: a global, a local an import bound, or an
        attribute chain of one, ``pkg.steps``, with no attribute read from it: stored in ``self.m = steps``, passed,
        returned) as held modules (``_held_module``: every attribute), since the code that later reads
        ``getattr(self.m, name)`` does not name the module (attacker at18 I3)."""
        held = []
        for chain in sorted(scan.ends):
            bound = scan.bindings.get(chain[0])
            if bound:  # a local an import bound (the import inside the body)
                value: Any = self._bound_module(next(iter(bound))) if len(bound) == 1 else None
            else:
                value = globals_.get(chain[0])
            for attribute in chain[1:]:
                if not isinstance(value, types.ModuleType):
                    break
                value = vars(value).get(attribute)
            else:
                if isinstance(value, types.ModuleType) and self.owner.classifier.version_of(value.__name__) is None:
                    held.append([f"held {'.'.join(chain)}", self._held_module(value)])
        return held

    def _chained_modules(self, scan: _ImportScan, globals_: Mapping[str, Any]) -> dict[str, types.ModuleType]:
        """The project modules the code's attribute chains reach past their first name, by module name: ``pkg.steps``
        in ``getattr(pkg.steps, name)``, ``vars(pkg.steps)``, ``m = pkg.steps``, ``pkg.steps.triple(x)``, from a
        global (``import pkg.steps`` binds ``pkg``) or a local an import in the body bound (``import pkg``).

        Such a module is referenced as a module named by the code is (attacker at20 K4): all its attributes count for
        a function making dynamic look-ups (``_DYNAMIC_ATTRIBUTES``), as they do for ``getattr(steps, name)``; its
        classes are where ``pkg.base.Step.__subclasses__()`` starts. Every root a chain's first name may be (each
        import binding it, and the global) is followed, as ``_load_submodules`` does: coarser, never stale."""
        found: dict[str, types.ModuleType] = {}
        version_of = self.owner.classifier.version_of
        for chain in sorted(scan.chains):
            roots = [self._bound_module(binding) for binding in sorted(scan.bindings.get(chain[0], ()))]
            roots.append(globals_.get(chain[0]))
            for value in roots:
                for attribute in chain[1:]:
                    if not isinstance(value, types.ModuleType):
                        break
                    value = vars(value).get(attribute)
                    if isinstance(value, types.ModuleType) and version_of(value.__name__) is None:
                        found.setdefault(value.__name__, value)
        return found

    def _imports_matter(self, code: types.CodeType, globals_: Mapping[str, Any]) -> bool:
        """Whether ``_scan_imports(code)`` can change the function's parts: False when neither ``code`` nor the code
        nested in it holds an import statement and no name it can load is a global bound to a module that is project
        code or has a module among the attributes it names (``os`` for ``os.path``).

        Without an ``IMPORT_NAME`` a scan finds no module, ``from`` name or binding, and its attribute chains start at
        names the code loads. Such a chain counts only when it starts at a global bound to a module and, through module
        attributes, reaches a project module: ``_load_submodules`` follows project modules only, ``_held_modules`` any
        module's attributes that are modules. So the scan (``dis`` decoding every instruction: most of a class's
        fingerprint in a new process) is skipped for code whose module globals are third-party or standard modules it
        reads no submodule of (``json.loads``), with the same parts.
        """
        if _holds_import(code):
            return True
        version_of = self.owner.classifier.version_of
        attributes: set[str] | None = None
        for name in _loadable_names(code):
            value = globals_.get(name)
            if not isinstance(value, types.ModuleType):
                continue
            if version_of(value.__name__) is None:
                return True
            attributes = _all_names(code) if attributes is None else attributes
            namespace = vars(value)
            if any(isinstance(namespace.get(attribute), types.ModuleType) for attribute in attributes):
                return True
        return False

    def _helper_look_ups(
        self, names: list[str], globals_: Mapping[str, Any], modules: Iterable[types.ModuleType] = ()
    ) -> frozenset[str]:
        """The dynamic look-ups (``_ATTRIBUTES``, ``_SUBCLASSES``) that the project functions ``names`` reaches make,
        transitively: methods of the project classes it names count too. Such a helper may do them on what the
        caller passes it (``find(Step, "double")`` calling ``base.__subclasses__()``), so the caller widens as if it
        made them itself: coarser, never stale (attacker at15 F10).

        A helper reached as an attribute of a project module (``plughelp.find(Step, name)``; of one of ``modules``,
        those the code's attribute chains reach, ``pkg.plughelp.find``) adds its ``_SUBCLASSES`` look-up only: a
        module it is given to look attributes up in is one the caller holds as a value (``_held_modules``, every
        attribute; attacker at20 K4)."""
        found: set[str] = set()
        version_of = self.owner.classifier.version_of
        reached = list(modules)
        for name in names:
            value = globals_.get(name)
            functions = [value]
            if isinstance(value, type) and self._is_project_class(value):
                functions = [getattr(member, "__func__", member) for member in vars(value).values()]
            elif isinstance(value, types.ModuleType) and version_of(value.__name__) is None:
                reached.append(value)
            for function in functions:
                if isinstance(function, types.FunctionType) and self._is_project_code(function):
                    found |= self._reached_look_ups(function)
        if _SUBCLASSES in found:
            return frozenset(found)
        for module in reached:
            namespace = vars(module)
            for name in names:
                function = namespace.get(name)
                if isinstance(function, types.FunctionType) and self._is_project_code(function):
                    if _SUBCLASSES in self._reached_look_ups(function):
                        return frozenset({*found, _SUBCLASSES})
        return frozenset(found)

    def _reached_look_ups(self, function: types.FunctionType) -> frozenset[str]:
        """The dynamic look-ups ``function`` makes or a project function it names makes (memoised per code object;
        a cycle counts what was found before it closed)."""
        code = function.__code__
        known = self._look_ups.get(code)
        if known is not None:
            return known
        self._look_ups[code] = frozenset()
        names = _all_names(code)
        found = set()
        if not _DYNAMIC_ATTRIBUTES.isdisjoint(names):
            found.add(_ATTRIBUTES)
        if "__subclasses__" in names:
            found.add(_SUBCLASSES)
        found |= self._helper_look_ups(sorted(names), function.__globals__)
        self._look_ups[code] = result = frozenset(found)
        return result

    def _is_project_code(self, function: types.FunctionType) -> bool:
        return self.owner.classifier.version_of(_module_of(function) or "builtins") is None

    def _named_classes(
        self, names: list[str], globals_: Mapping[str, Any], modules: Iterable[types.ModuleType] = ()
    ) -> list[type]:
        """The project classes ``names`` reach: globals of the function's module, and attributes of the project
        modules among them (``base.Step``) and of ``modules`` (those its attribute chains reach, ``pkg.base.Step``),
        each once, in name order."""
        found: dict[int, type] = {}
        for value in [*(globals_.get(name) for name in names), *modules]:
            candidates = [value]
            if isinstance(value, types.ModuleType) and self.owner.classifier.version_of(value.__name__) is None:
                namespace = vars(value)
                candidates = [namespace.get(attribute) for attribute in names]
            for candidate in candidates:
                if isinstance(candidate, type) and self._is_project_class(candidate):
                    found.setdefault(id(candidate), candidate)
        return list(found.values())

    def _is_project_class(self, cls: type) -> bool:
        return self.owner.classifier.version_of(_module_of(cls) or "builtins") is None

    def _project_subclasses(self, cls: type) -> list[type]:
        """Every project class below ``cls`` loaded in this process (``__subclasses__``, transitively), ordered by
        ``module.qualname``: a plugin found by ``cls.__subclasses__()`` is code the function runs without naming it.
        A subclass defined by a module imported after this read is not seen (import plugins at module level)."""
        seen: dict[int, type] = {}
        pending: list[type] = [cls]
        while pending:
            below: list[type] = type.__subclasses__(pending.pop())  # not cls.__subclasses__: a metaclass may shadow it
            for sub in below:
                if id(sub) not in seen and self._is_project_class(sub):
                    seen[id(sub)] = sub
                    pending.append(sub)
        return sorted(seen.values(), key=lambda sub: (str(_module_of(sub)), sub.__qualname__))

    def _dispatch_registry(self, func: Any) -> list[Any]:
        """The implementations a ``functools.singledispatch`` function chooses from, by the type each is
        registered for: ``[]`` for any other function. Only ``registry`` reaches them (the wrapper's code calls
        ``dispatch``, a functools closure), so an edit of one ``@f.register`` overload would go unseen.

        The registry is a piece of its own, read at the end of the traversal (``drain``), after the walk has
        imported what the code imports. A registry that grew since it was read (a module imported later in the
        process registered more) is read again at the next fingerprint (``CodeFingerprinter.fingerprint``).
        """
        registry = getattr(func, "registry", None)
        if not (isinstance(registry, Mapping) and callable(getattr(func, "dispatch", None))):
            return []
        key = f"own:{_module_of(func)}.{func.__qualname__}.registry"
        if not self.owner.has(key):
            self.queue_registry(key, registry)
        return [["dispatch", self._reference(key)]]

    def queue_registry(self, key: str, registry: Mapping[Any, Any], *, again: bool = False) -> None:
        """Store a singledispatch registry under ``key`` and read it once the rest is walked (``drain``).

        ``again``: it was read before and grew; code stored earlier references its key, so a failed traversal
        must not drop it (its recorded size, unchanged, makes the next fingerprint read it again).
        """
        item = _Item(local="", refs=set(), packages=set(), name=key[len("own:") :])
        self.owner.store(key, item)
        if not again:
            self.stored.append(key)
        self.registries.append((item, lambda: self._registry_parts(key, registry)))

    def _registry_parts(self, key: str, registry: Mapping[Any, Any]) -> list[Any]:
        self.owner.registries[key] = (registry, len(registry))
        # repr orders two classes of the same name apart and is stable across processes (no ids in it)
        entries = sorted(((repr(kind), kind, impl) for kind, impl in list(registry.items())), key=lambda e: e[0])
        return [[self.token(kind), self.token(impl)] for _, kind, impl in entries]

    def _imported_modules(
        self, scan: _ImportScan, code: types.CodeType, package: str | None, names: list[str]
    ) -> set[str]:
        """Modules that ``import`` statements load, and those named by a literal string given to
        ``importlib.import_module`` / ``__import__`` (when the code calls one and the module is project code)."""
        found = set(scan.modules)
        if _DYNAMIC_IMPORTS.isdisjoint(names):
            return found
        for text in _strings(code):
            if text.startswith("."):
                try:
                    text = importlib.util.resolve_name(text, package)
                except (ImportError, ValueError):
                    continue
            if _MODULE_NAME.fullmatch(text) and self.owner.classifier.version_of(text) is None:
                if text in sys.modules or _findable(text):
                    found.add(text)
        return found

    def _load_submodules(self, scan: _ImportScan, globals_: Mapping[str, Any]) -> set[str]:
        """Import the project submodules the code names that nobody imported yet: the names of
        ``from pkg import mod`` (also ``from . import mod``) that are no attribute of the package, and
        each step of an attribute chain from a project module (a global, or a local an import bound:
        ``import pkg as p; p.mod.K``) to a submodule. The code imports them itself, or could not run.

        Returns the modules ``from pkg import mod`` names: each counts as ``import pkg.mod`` would (all
        its attributes for a function calling ``getattr``, not only those named like ``pkg``'s).
        """
        from_modules = set()
        for module_name, name in sorted(scan.from_names):
            found = self._attribute_module(self._import(module_name), name)
            if found is not None:
                from_modules.add(found.__name__)
        for chain in sorted(scan.chains):
            roots = [self._bound_module(binding) for binding in sorted(scan.bindings.get(chain[0], ()))]
            roots.append(globals_.get(chain[0]))
            for reached in roots:
                for attribute in chain[1:]:
                    reached = self._attribute_module(reached, attribute)
                    if reached is None:
                        break
        return from_modules

    def _bound_module(self, binding: tuple[str, str]) -> types.ModuleType | None:
        """The project module an import in the code bound a local name to, if it is one."""
        module_name, name = binding
        module = self._import(module_name)
        return self._attribute_module(module, name) if name else module

    def _attribute_module(self, module: Any, name: str) -> types.ModuleType | None:
        """``module.name`` when it is a module and ``module`` a project module, importing ``module.name``
        as Python's ``from module import name`` would when the package lacks the attribute."""
        if not isinstance(module, types.ModuleType) or self.owner.classifier.version_of(module.__name__) is not None:
            return None
        namespace = vars(module)
        if name in namespace:
            found = namespace[name]
        elif hasattr(module, "__path__") and "__getattr__" not in namespace:  # a lazy package decides itself
            found = self._submodule(f"{module.__name__}.{name}")
        else:
            return None
        return found if isinstance(found, types.ModuleType) else None

    def _submodule(self, module_name: str) -> types.ModuleType | None:
        """The project submodule ``module_name``, imported if it exists; None if it does not (remembered)."""
        if module_name in sys.modules:
            return sys.modules[module_name]
        if module_name in self.owner.absent or not _findable(module_name):
            self.owner.absent.add(module_name)
            return None
        try:
            return importlib.import_module(module_name)
        except ImportError:  # an optional dependency missing: the code cannot run here either (as in _import)
            self.owner.absent.add(module_name)
            return None
        except Exception as exc:  # noqa: BLE001 - a module failing at import fails the code at run time, not here
            logger.warning(
                "%s: importing %s to fingerprint it failed (%s: %s)",
                self._where(),
                module_name,
                type(exc).__name__,
                exc,
            )
            self.owner.absent.add(module_name)
            return None

    def _where(self) -> str:
        return self.stack[-1].name if self.stack else "?"

    def _import(self, module_name: str) -> types.ModuleType | None:
        """The module an import in a function body names; project modules are imported, others only versioned."""
        if module_name in sys.modules:
            return sys.modules[module_name]
        if self._external(module_name, module_name) is not None:
            return None  # third-party: its version is enough, importing it could be slow
        try:
            return importlib.import_module(module_name)
        except ImportError:
            return None

    def _global(self, module: str, name: str, obj: Any, names: list[str], everything: bool = False) -> Any:
        """A name bound in a module: code by its token, a value as an item of its own, and for a
        project module the attributes the code uses from it (all of them when ``everything``)."""
        if isinstance(obj, types.ModuleType) and self.owner.classifier.version_of(obj.__name__) is None:
            used = sorted(vars(obj)) if everything else names
            found = [f"module:{parent_module_name(obj.__name__)}", self._module_attributes(obj, used, set())]
            compiled = self._compiled(obj)
            return found if compiled is None else [*found, compiled]
        if _is_code(obj):
            return self.token(obj)
        key = f"own:{module}.{name}"  # one binding per module and name (ids of small values are shared)
        if self.owner.claimed(key):  # the function the value holds was keyed first (``key_for``)
            key += ":value"  # ':' is no identifier: no code has this key
        if not self.owner.has(key):
            self._normalise(key, key[len("own:") :], lambda: self._module_value(module, name, obj), module)
        return self._reference(key)

    def _module_value(self, module: str, name: str, obj: Any) -> Any:
        """A module-level value by its content, or by the statements that make it when they iterate a set."""
        derived = self._derived_global(module, name, obj, 0) if _may_hold_order(obj) else None
        return derived if derived is not None else self.content(obj)

    def _derived_global(self, module_name: str, name: str, obj: Any, hops: int) -> Any:
        """The ``derived`` token of ``module_name.name`` when its source makes it by iterating a set (through
        ``from m import name`` to the module that makes it); an extension module's strings in any order;
        None to count it by content."""
        module = sys.modules.get(module_name)
        source = self.owner.source_of(module) if module is not None else None
        if module is None or source is None:
            return self._orderless(obj) if module is not None and is_extension(module) else None
        statements = source.assigned.get(name)
        if not statements and name in source.imported and hops < 8:
            origin, attribute = source.imported[name]
            if vars(sys.modules.get(origin, _EMPTY_MODULE)).get(attribute, UNKNOWN) is obj:
                return self._derived_global(origin, attribute, obj, hops + 1)
            return None
        if not statements or not iterates_set(statements, resolver(vars(module))):
            return None
        return self._derived("derived", statements, module, None)

    def _derived(self, kind: str, nodes: list[Any], module: types.ModuleType, own: Mapping[str, Any] | None) -> Any:
        """A value counted by the code that makes it: its statements (no positions, comments or formatting)
        and the module-level names they read (walked as any reference: code by its code, values by content);
        names of the class being made (``own``) count as its other attributes already do."""
        names, attributes = loaded_names(nodes)
        namespace = vars(module)
        references = []
        for name in names:
            if own is not None and name in own:
                references.append([name, "own attribute"])
            elif name in namespace:
                references.append([name, self._global(module.__name__, name, namespace[name], attributes)])
        return [kind, [statement_text(node) for node in nodes], references]

    def _orderless(self, value: Any) -> Any:
        """A list or tuple of strings in a compiled module (no source shows how it was made), in any order."""
        if isinstance(value, list | tuple) and all(isinstance(item, str | bytes) for item in value):
            return ["orderless", type(value).__qualname__, sorted(repr(item) for item in value)]
        return None

    def _module_attributes(
        self, module: types.ModuleType, names: list[str], seen: set[str], held: bool = False
    ) -> list[Any]:
        """``names`` of ``module`` (and of the project modules among them, by the same names) as ``_global`` counts
        them; ``held``: the module is held as a value (``_held_module``), and its large data counts cheaply
        (``_held_data``)."""
        seen.add(module.__name__)
        found = []
        namespace = vars(module)
        for name in names:
            if name not in namespace or name.startswith("__"):
                continue
            value = namespace[name]
            if isinstance(value, types.ModuleType) and self.owner.classifier.version_of(value.__name__) is None:
                nested = [] if value.__name__ in seen else self._module_attributes(value, names, seen, held)
                found.append([name, f"module:{parent_module_name(value.__name__)}", nested])
            elif held and (data := self._held_data(module, name, value)) is not None:
                found.append([name, data])
            else:
                found.append([name, self._global(parent_module_name(module.__name__), name, value, names)])
        return found

    def _held_data(self, module: types.ModuleType, name: str, value: Any) -> str | None:
        """The token of ``value``, a module-level value of ``module`` (held as a value) of more than
        ``_HELD_DATA_BYTES`` in one buffer (``_raw_buffer``: a numpy array, bytes, a string), by its type, shape and
        a fast hash of its bytes (``kart_core.integrity``'s, xxh3 where installed), not by ``digest``'s md5 (attacker
        at18 I7: a 200 MB table a held module loads at import, which the code may never read, cost 1.6 s per
        fingerprint under load; about 15 ms now). Every byte still counts. None for any other value: by content."""
        found = _raw_buffer(value, _HELD_DATA_BYTES)
        if found is None:
            return None
        key = f"own:{module.__name__}.{name}:data"  # ':' is no identifier: no module attribute has this key
        if not self.owner.has(key):
            described, buffer = found
            self._normalise(
                key,
                key[len("own:") :],
                lambda: ["buffer", described, integrity.DEFAULT_ALGORITHM, _buffer_digest(buffer)],
                module.__name__,
            )
        return self._reference(key)

    def _class(self, cls: type) -> str:
        module = _module_of(cls) or "builtins"
        name = f"{module}.{cls.__qualname__}"
        external = self._external(module, cls.__qualname__)
        if external is not None:
            return external
        key = self.owner.key_for(cls, name)
        if not self.owner.has(key):
            self._normalise(key, name, lambda: self._class_parts(cls), module)
        return self._reference(key)

    def _class_parts(self, cls: type) -> list[Any]:
        attributes = []
        for name, value in sorted(vars(cls).items()):
            if name in _CLASS_NOISE or name.startswith("_kart_"):  # _kart_*: kart's per-class memos, filled on use
                continue
            if name == "__pydantic_decorators__" and (decorators := self._pydantic_decorators(value)) is not None:
                attributes.append([name, decorators])
                continue
            derived = self._derived_attribute(cls, name, value) if _may_hold_order(value) else None
            attributes.append([name, derived if derived is not None else self.content(value, code=True)])
        bases = [self.token(base) for base in cls.__bases__]
        metaclass = type(cls)
        found: list[Any] = [cls.__name__, bases, attributes, self.token(metaclass) if metaclass is not type else None]
        fields = _field_annotations(cls)
        if fields is not None:  # a dataclass-like class converts or validates by its fields' types
            found.append(["fields", fields])
        # a class a compiled project module defines (a Cython cdef class): its methods are C, by the file's bytes
        compiled = None if cls.__flags__ & _HEAPTYPE else self._compiled(sys.modules.get(cls.__module__))
        return found if compiled is None else [*found, compiled]

    def _pydantic_decorators(self, infos: Any) -> Any:
        """A pydantic v2 model's ``__pydantic_decorators__`` (its validators and serializers: each kind's decorators
        by name, with the function, shim and what it applies to) without each one's ``cls_ref``, which names the
        class by its address (``"mod.Cfg:94332568902944"``): another in every process. None when it is not laid out
        as pydantic 2 lays it out (then it counts by content)."""
        try:
            kinds = [(field.name, getattr(infos, field.name)) for field in dataclasses.fields(infos)]
            return [
                [
                    kind,
                    [
                        [n, d.cls_var_name, self.token(d.func), self.value(d.shim), self.value(d.info)]
                        for n, d in found.items()
                    ],
                ]
                for kind, found in kinds
            ]
        except (TypeError, AttributeError):
            return None

    def _derived_attribute(self, cls: type, name: str, value: Any) -> Any:
        """The ``derived`` token of a class attribute its class body (or a ``Cls.name = ...`` of its module)
        makes by iterating a set; ``decorated`` for one the class statement does not assign, when the class's
        decorators are given a set to iterate (pandas' ``@disallow(frozenset)``); None to count it by content."""
        module = sys.modules.get(cls.__module__)
        source = self.owner.source_of(module) if module is not None else None
        if module is None or source is None:
            return self._orderless(value) if module is not None and is_extension(module) else None
        klass = source.classes.get(cls.__qualname__)
        if klass is None:
            return None
        statements = klass.assigned.get(name)
        if statements:
            if iterates_set(statements, resolver(vars(cls), vars(module))):
                return self._derived("derived", statements, module, vars(cls))
            return None
        if klass.decorators and iterates_set(klass.decorators, resolver(vars(module))):
            return self._derived("decorated", klass.decorators, module, None)
        return None

    # --- values -------------------------------------------------------------------------------

    def content(self, value: Any, code: bool = False) -> Any:
        """The token of a value walked on its own — a module-level value, a closure cell, a default, a
        class attribute (``code``: through ``token``, which passes code on) — within the size budget;
        beyond it the value counts by its type (and version), with one warning naming it."""
        scope = self.scope
        mark = len(scope.memo)
        scope.nodes, scope.limit = 0, _MAX_NODES
        try:
            return self.token(value) if code else self.value(value)
        except _TooLarge as exc:
            self._forget_since(mark)
            return self._too_large(value, exc)
        finally:
            scope.nodes = 0

    def _too_large(self, value: Any, exc: _TooLarge) -> Any:
        """One warning naming the value, and its token: its type (a version, for third-party code)."""
        cls = type(value)
        logger.warning(
            "%s: a %s.%s is too large to fingerprint by content (%s); it counts by its type",
            self.stack[-1].name if self.stack else "?",
            cls.__module__,
            cls.__qualname__,
            exc,
        )
        return ["too large", self.token(cls)]

    def value(self, value: Any) -> Any:
        """The token of a value: its content, with code inside it (a dict of functions) as tokens.

        A container or object reached a second time within the walk is a back-reference to where it
        was first met (its position in the walk, not its address): shared structure is walked once.

        Raises:
            _TooLarge: the walk passed a budget (``_MAX_NODES``, ``_MAX_OBJECT_NODES``, ``_MAX_NESTING``).
        """
        scope = self.scope
        scope.nodes += 1
        if scope.nodes > scope.limit:
            over = _MAX_NODES if scope.object_start is None else _MAX_OBJECT_NODES
            raise _TooLarge(f"more than {over:,} objects")
        found: Any
        if isinstance(value, _SCALARS):
            if type(value) is str:
                if value.startswith("__mp_main__"):
                    value = _parent_logger_name(value)  # ``HERE = __name__`` in a spawned child's script
                elif value.startswith(os.sep):
                    relative = self._relative_path(value)
                    if relative is not None:  # ``DATA = os.path.join(os.path.dirname(__file__), "data")``
                        return ["str", "path under", *relative]
                return ["str", repr(value)]
            found = [type(value).__name__, repr(value)]
        elif isinstance(value, logging.Logger):
            # By its name only: its level and handlers are logging's set-up, not code; and a script's
            # ``logging.getLogger(__name__)`` is "__mp_main__" in a spawned child, "__main__" in the parent.
            found = ["logger", _parent_logger_name(value.name)]
        elif isinstance(value, enum.Enum) and not _plain(value._value_):
            # its repr shows its value's: a set's in hash order, an object's address
            found = [type(value).__qualname__, "enum", value._name_, self.value(value._value_)]
        elif isinstance(value, pathlib.PurePath) and (relative := self._absolute_relative(value)) is not None:
            found = [type(value).__qualname__, "path under", *relative]  # ``HERE = Path(__file__).resolve().parent``
        elif isinstance(value, _VALUE_TYPES):
            found = [type(value).__qualname__, repr(value)]
        else:
            found = None
        if found is not None:  # counted as the builtin or standard type it is: its class may be the project's
            return found if not type(value).__flags__ & _HEAPTYPE else self._typed(value, found)
        container = isinstance(value, _CONTAINERS)
        if container:
            if not value:  # nothing inside to share (and () is one object in every process)
                return self._typed(value, self._container(value))
        elif isinstance(value, re.Pattern):
            return ["pattern", value.pattern, value.flags]
        elif isinstance(value, _CODE_VALUES):
            return self.token(value)
        elif isinstance(value, _SYNC_TYPES):
            return ["sync", self.token(type(value))]
        elif self._by_type(type(value)):
            return ["by type", self.token(type(value))]
        elif any(value is stream for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)):
            return ["standard stream"]  # ``OUT = sys.stdout``: an output resource, not data (and not picklable)
        elif isinstance(value, weakref.ref):
            return self._weak_reference(value)
        elif isinstance(value, contextvars.ContextVar):
            return self._context_variable(value)
        memo, key = scope.memo, id(value)
        seen = memo.get(key)
        if seen is not None:  # shared, or a container that contains itself
            return ["ref", seen[0]]
        memo[key] = (len(memo), value)  # the value kept alive: its id stays its own
        if scope.nesting >= _MAX_NESTING:
            raise _TooLarge(f"nested more than {_MAX_NESTING} levels deep")
        scope.nesting += 1
        try:
            if not container:
                return self._instance(value)
            found = self._container(value)
            return found if not type(value).__flags__ & _HEAPTYPE else self._typed(value, found)
        finally:
            scope.nesting -= 1

    def _typed(self, value: Any, found: Any) -> Any:
        """``found``, the token of ``value`` by the builtin or standard type it derives from (its content: a dict's
        items, an int's repr, an enum member's name), with the token of ``value``'s class when that is project code.

        The one rule for values: a value whose type is project code counts with its class's code, as an instance of
        a plain project class does (``_instance``), whatever it derives from. A ``dict``, ``list``, ``int``, ``str``
        or ``float`` subclass, a ``NamedTuple`` or ``collections.namedtuple`` subclass, a ``defaultdict`` subclass, an
        ``Enum`` member: its methods are code the reader runs (``helpers.CFG.scale(values)``, a default argument
        ``mode=Mode.STRICT`` calling ``mode.apply``), which a name in the code does not show (attacker at19 J1)."""
        cls = type(value)
        if not cls.__flags__ & _HEAPTYPE or not self._is_project_class(cls):
            return found
        return ["project type", self.token(cls), found]

    def _weak_reference(self, value: weakref.ref[Any]) -> Any:
        """A weak reference by what it refers to (None once that is gone) and its attributes (a ``KeyedRef``'s key):
        code holding it calls it to reach the object. A ``WeakValueDictionary`` (a plugin registry of functions),
        ``WeakKeyDictionary`` or ``WeakSet`` holds its items through such references (attacker at19 J1)."""
        referent = value()
        attributes = [[name, self.value(item)] for name, item in _attributes(value)]
        return ["weak", self.token(type(value)), None if referent is None else self.value(referent), attributes]

    def _context_variable(self, value: contextvars.ContextVar[Any]) -> Any:
        """A ``contextvars.ContextVar`` by its name and its default, walked (``ContextVar("op", default=Op())``: the
        object ``CV.get()`` returns wherever nothing set it, whose class's methods count, attacker at20 K7). Not the
        value set in the context reading it: that is the moment's (a new thread starts with none), as a lock's state
        is. A ContextVar cannot be pickled: it counted as undigestable before."""
        try:
            default = contextvars.Context().run(value.get)  # an empty context holds no value: get() gives the default
        except LookupError:
            return ["contextvar", value.name, "no default"]
        return ["contextvar", value.name, self.value(default)]

    def _absolute_relative(self, path: pathlib.PurePath) -> list[Any] | None:
        """``_relative_path`` of an absolute ``path``; None for a relative one."""
        return self._relative_path(str(path)) if path.is_absolute() else None

    def _relative_path(self, text: str) -> list[Any] | None:
        """``[levels, relative path]`` when the absolute path ``text`` is, or lies under, the folder of the
        top-level package of the code being walked (0), the folder holding it (1: a ``sys.path`` entry, the
        project root of a flat layout) or, when that folder is ``src``, the one above (2: the project root); the
        deepest that contains it. None for a path elsewhere: it counts as it is.

        A path a module builds from its own ``__file__`` (``HERE = Path(__file__).resolve().parent``) holds the
        checkout's place, which must not count: a clone or move would rerun every node reaching it, and an
        Airflow worker seeing the code at another path than its dag-processor would report code skew."""
        module = self.stack[-1].module if self.stack else ""
        anchors = self._anchors.get(module)
        if anchors is None:
            anchors = self._anchors[module] = _path_anchors(module)
        for anchor, levels in anchors:
            if text == anchor:
                return [levels, "."]
            if text.startswith(anchor) and text[len(anchor)] == os.sep:
                return [levels, text[len(anchor) + 1 :]]
        return None

    def _is_task_class(self, cls: type) -> bool:
        """Whether ``cls`` is a luigi task class (``luigi.Task`` in its MRO, told by name: no luigi import here)."""
        known = self._task_classes.get(cls)
        if known is None:
            known = any(k.__name__ == "Task" and k.__module__ == "luigi.task" for k in cls.__mro__)
            self._task_classes[cls] = known
        return known

    def _by_type(self, cls: type) -> bool:
        """Whether objects of ``cls`` count by their type (``_BY_TYPE``: generators, resources)."""
        known = self._by_type_classes.get(cls)
        if known is None:
            known = any((getattr(k, "__module__", ""), k.__qualname__) in _BY_TYPE for k in cls.__mro__)
            self._by_type_classes[cls] = known
        return known

    def _forget_since(self, mark: int) -> None:
        """Drop what the walk met after the first ``mark`` objects (their positions are given out again)."""
        memo = self.scope.memo
        while len(memo) > mark:
            memo.popitem()  # the last met first: dicts keep insertion order

    def _alone(self, item: Any) -> str:
        """The digest of a set's item, walked as if no other item of the set had been: items are
        walked in hash order, which follows PYTHONHASHSEED, so what one shares with another must not count."""
        mark = len(self.scope.memo)
        try:
            return digest(self.value(item))
        finally:
            self._forget_since(mark)

    def _container(self, value: Any) -> Any:
        if isinstance(value, dict | types.MappingProxyType):
            # In order: iteration, json.dumps and DataFrame(dict) columns follow it.
            pairs = [[self.value(k), self.value(v)] for k, v in value.items()]
            factory = getattr(value, "default_factory", None)  # a defaultdict's: what a missing key gets
            return [type(value).__qualname__, pairs, self.token(factory) if factory is not None else None]
        if isinstance(value, set | frozenset):
            # digests sorted: set iteration order follows PYTHONHASHSEED, the digests do not; code in it walked
            # in the order of its names (a second ``mod.<lambda>`` is keyed ``#2`` by the order met)
            ordered = sorted(value, key=_walk_order)
            return [type(value).__qualname__, sorted(self._alone(item) for item in ordered)]
        return [type(value).__qualname__, [self.value(item) for item in value]]

    def _instance(self, value: Any) -> Any:
        cls = type(value)
        cls_token = self.token(cls)
        kwargs = getattr(value, "param_kwargs", None)
        if isinstance(kwargs, dict) and self._is_task_class(cls):
            # A luigi task (a TaskOnKart, a luigi.Config; a TaskInstanceParameter's default): its class and parameters,
            # what names it. Not its other attributes: luigi's ``_Task__hash`` is hash(task_id), which follows
            # PYTHONHASHSEED, and kart's memos (``_kart_cache``, ``task_unique_id``) fill as the process uses it.
            return [cls_token, "task", [[name, self.value(item)] for name, item in sorted(kwargs.items())]]
        if cls_token.startswith("ext:"):
            scope = self.scope
            if scope.object_start is not None:  # inside a third-party object: its budget covers this one
                return [cls_token, self._third_party_value(value)]
            scope.object_start, outer_limit = scope.nodes, scope.limit
            scope.limit = min(outer_limit, scope.nodes + _MAX_OBJECT_NODES)
            mark = len(scope.memo)  # ``value`` itself stays: a second reference to it refers to this token
            try:
                return [cls_token, self._third_party_value(value)]
            except _TooLarge as exc:
                self._forget_since(mark)
                return self._too_large(value, exc)
            finally:
                scope.object_start, scope.limit = None, outer_limit
        attributes = _attributes(value)
        if _is_luigi_parameter(cls):  # a project subclass of a luigi Parameter: not its creation order
            state_of = _parameter_state(value)
            attributes = [(name, state_of.get(name, item)) for name, item in attributes if name != "_counter"]
        state = [[name, self.value(item)] for name, item in attributes]
        # A project subclass of a C type (deque, Exception) keeps data where no attribute shows it.
        native = any(not base.__flags__ & _HEAPTYPE for base in cls.__mro__[1:] if base is not object)
        return [cls_token, state, self._reduced(value) if native else None]

    def _third_party_value(self, value: Any) -> Any:
        """What counts of an object of a third-party (or standard library) class: arrays and frames by
        content, luigi parameters by their settings, anything else by its ``__reduce_ex__`` content."""
        module = type(value).__module__.split(".")[0]
        if module == "numpy" and type(value).__name__ == "vectorize" and callable(getattr(value, "pyfunc", None)):
            # np.vectorize(helper): the function it wraps is code (pickling names it, never its code)
            options = [getattr(value, name, None) for name in ("otypes", "excluded", "signature", "cache")]
            return ["vectorize", self.token(value.pyfunc), self.value(options)]
        if module in {"numpy", "pandas"}:
            named: set[Any] = set()
            try:
                found = digest(value, code=named)
                held = self._named_code(named)
                return found if not held else [found, held]
            except UndigestableError as exc:  # e.g. an object column holding an open file
                return self._undigestable(value, f"holds {exc.kind}")
            except Exception as exc:  # a pandas or numpy object digest() cannot read otherwise
                return self._undigestable(value, f"cannot be digested ({type(exc).__name__}: {exc})")
        if module in {"luigi", "kart_core"} and hasattr(value, "_default"):
            # A luigi Parameter: its default and settings walked as values (an EnumParameter's enum class and default
            # member count with the class's code, attacker at19 J1), as for a project subclass (``_instance``); not
            # _counter, its creation order in this process.
            settings = sorted((k, v) for k, v in _parameter_state(value).items() if k != "_counter")
            return ["parameter", [[name, self.value(setting)] for name, setting in settings]]
        return self._reduced(value)

    def _named_code(self, named: set[Any]) -> list[Any]:
        """Tokens of the project classes and functions that the pickle of an array, Series, Index or frame names
        (``digest(value, code=named)``), in the order of their names and places: an object array holding functions
        (``np.array([helper], dtype=object)``) or instances of project classes (``np.array([Op()], dtype=object)``,
        also inside a list in a cell) pickles them by name, not by their code (attacker at19 J1)."""
        found = []
        for obj in sorted(named, key=_walk_order):
            if isinstance(obj, type):
                own = self._is_project_class(obj)
            else:
                own = isinstance(obj, types.FunctionType) and self._is_project_code(obj)
            if own:
                found.append(self.token(obj))
        return found

    def _reduced(self, value: Any) -> Any:
        """``value`` by what pickle would save of it: the ``__reduce_ex__(5)`` callable, arguments,
        state and items (pickle's own recipe, copyreg's table first), each walked as a value."""
        reducer = copyreg.dispatch_table.get(type(value))
        try:
            reduced = reducer(value) if reducer is not None else value.__reduce_ex__(5)
        except Exception as exc:  # what refusing to pickle raises varies by type (TypeError, PicklingError, ...)
            return self._undigestable(value, f"cannot be pickled ({type(exc).__name__}: {exc})")
        if isinstance(reduced, str):  # pickled by reference to a global of that name
            return ["global", self.token(type(value)), reduced]
        if not isinstance(reduced, tuple) or len(reduced) < 2:
            return self._undigestable(value, f"has an unusual __reduce_ex__ result ({type(reduced).__name__})")
        func, args, state, listitems, dictitems = (*reduced[:5], None, None, None)[:5]
        counters = _PROCESS_COUNTERS.get(type(value).__module__.partition(".")[0])
        if counters and isinstance(state, dict) and not counters.isdisjoint(state):
            state = {key: item for key, item in state.items() if key not in counters}
        return [
            "reduce",
            self.token(func),
            self.value(args),
            self.value(state),
            self.value(list(listitems)) if listitems is not None else None,
            self.value(list(dictitems)) if dictitems is not None else None,
        ]

    def _undigestable(self, value: Any, why: str) -> Any:
        """Record a value with no readable content (listed in CodeFingerprint.undigestable); it counts by type."""
        cls = type(value)
        if self.stack:
            item = self.stack[-1]
            item.undigestable.add(f"{item.name or '?'}: a {_module_of(cls)}.{cls.__qualname__} that {why}")
        return ["undigestable", f"{_module_of(cls)}.{cls.__qualname__}"]


def _field_annotations(cls: type) -> list[list[str]] | None:
    """The field types a dataclass-like class declares in its own body (``@dataclass``, attrs, ``NamedTuple``,
    ``TypedDict``), by name and type: a qualified name for a class, the text of a string annotation, else the
    ``repr`` (``list[int]``, ``typing.Optional[int]``). None for any other class: its annotations are cosmetic.

    OmegaConf structured configs, dacite, cattrs and typer convert values by these types, so ``k: int`` ->
    ``k: str`` changes results with the same code. Function annotations stay out: they are cosmetic for a
    plain function, and counting them would rerun nodes on a typing-only edit."""
    namespace = vars(cls)
    dataclass_like = (
        "__dataclass_fields__" in namespace
        or "__attrs_attrs__" in namespace
        or ("_fields" in namespace and issubclass(cls, tuple))
        or "__required_keys__" in namespace
    )
    if not dataclass_like:
        return None
    try:
        annotations = dict(inspect.get_annotations(cls))
    except Exception:  # noqa: BLE001 - an annotation that fails to evaluate: its text is not reachable otherwise
        annotations = dict(namespace.get("__annotations__", {}))
    return [[str(name), _type_name(kind)] for name, kind in annotations.items()]


def _type_name(kind: Any) -> str:
    """An annotation as a name that is the same in every process: ``module.qualname`` for a class."""
    if isinstance(kind, str):
        return kind
    if isinstance(kind, type):
        return f"{_module_of(kind)}.{kind.__qualname__}"
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(kind))


def _path_anchors(module_name: str) -> list[tuple[str, int]]:
    """The folders a path value of ``module_name`` counts relative to (``_Visit._relative_path``), deepest
    first, each with its number of levels above the top-level package's folder; symlinks resolved and not."""
    top = sys.modules.get(module_name.partition(".")[0] if module_name else "__main__")
    folders = list(getattr(top, "__path__", None) or ())
    location = getattr(top, "__file__", None)
    if not folders and location:
        folders = [os.path.dirname(os.path.abspath(str(location)))]
    anchors: dict[str, int] = {}
    for folder in folders:
        for start in dict.fromkeys([os.path.abspath(str(folder)), os.path.realpath(str(folder))]):
            chain = [start, os.path.dirname(start)]
            if os.path.basename(chain[1]) == "src":
                chain.append(os.path.dirname(chain[1]))
            for levels, anchor in enumerate(chain):
                if anchor != os.path.dirname(anchor):  # never the file system's root: it holds every path
                    anchors.setdefault(anchor, levels)
    return sorted(anchors.items(), key=lambda pair: (-len(pair[0]), pair[1]))


def _attributes(value: Any) -> list[tuple[str, Any]]:
    """An instance's attributes by name: its ``__dict__`` and the set ``__slots__`` of every class in
    its MRO (read through each class's slot descriptor, so a ``__getattr__`` cannot interfere)."""
    found = dict(vars(value)) if isinstance(getattr(value, "__dict__", None), dict) else {}
    for klass in type(value).__mro__:
        slots = vars(klass).get("__slots__", ())
        for slot in (slots,) if isinstance(slots, str) else slots:
            if slot in ("__dict__", "__weakref__"):
                continue
            name = f"_{klass.__name__.lstrip('_')}{slot}" if slot.startswith("__") and not slot.endswith("__") else slot
            descriptor = vars(klass).get(name)
            if descriptor is None or not hasattr(descriptor, "__get__"):
                continue
            try:
                found[name] = descriptor.__get__(value, klass)
            except AttributeError:  # a slot never assigned
                continue
    return sorted(found.items())


def _walk_order(item: Any) -> tuple[str, tuple[int | None, ...]]:
    """Where a set's item is walked: functions and classes by name, then place in the source (the order
    their keys are given out in: ``<lambda>``, ``<lambda>#2``), anything else after them, in the set's
    order (its digest does not depend on it). The place only orders the walk; it does not count."""
    if isinstance(item, types.FunctionType):
        code = item.__code__
        positions = code.co_positions() if hasattr(code, "co_positions") else ()  # 3.11+
        first = [position for position in positions if position[2]][:1]  # lambdas on one line: by column
        return (f"{_module_of(item)}.{item.__qualname__}", (code.co_firstlineno, *(first[0] if first else ())))
    if isinstance(item, type):
        return (f"{_module_of(item)}.{item.__qualname__}", ())
    return ("\U0010ffff", ())


def _is_luigi_parameter(cls: type) -> bool:
    return any(klass.__name__ == "Parameter" and klass.__module__ == "luigi.parameter" for klass in cls.__mro__)


def _parameter_state(parameter: Any) -> dict[str, Any]:
    """A luigi parameter's attributes, a ChoiceParameter's description with its choices sorted: luigi
    appends ``Choices: {a, b}`` in the set's iteration order, which follows PYTHONHASHSEED."""
    state = dict(vars(parameter))
    choices, description = state.get("_choices"), state.get("description")
    if isinstance(choices, set | frozenset) and isinstance(description, str):
        as_built = "Choices: {" + ", ".join(str(choice) for choice in choices) + "}"  # the same set, the same order
        if description.endswith(as_built):
            ordered = "Choices: {" + ", ".join(sorted(str(choice) for choice in choices)) + "}"
            state["description"] = description[: -len(as_built)] + ordered
    return state


def _parent_logger_name(name: str) -> str:
    """A dotted name (a logger's, a module's ``__name__``) as the parent process has it: ``__mp_main__``'s
    first part read as ``__main__`` (``dotted.parent_module_name``)."""
    head, dot, rest = name.partition(".")
    return parent_module_name(head) + dot + rest


def _raw_buffer(value: Any, minimum: int) -> tuple[list[str], memoryview] | None:
    """``value``'s content as one buffer of bytes with what else tells it apart (its type, a numpy array's dtype and
    shape), for a value of more than ``minimum`` bytes whose bytes are all it holds: bytes, a bytearray, a string
    (UTF-8), a plain numpy array of a non-object dtype (C order; a copy when it is not). None for anything else (a
    subclass, an object array, a masked array, a frame, a smaller value): it counts by ``digest``."""
    if isinstance(value, bytes | bytearray):
        return ([type(value).__name__], memoryview(value)) if len(value) > minimum else None
    if isinstance(value, str):
        if len(value) * 4 <= minimum:  # at most four bytes a character: too small whatever it holds
            return None
        encoded = memoryview(value.encode("utf-8", "surrogatepass"))
        return (["str"], encoded) if encoded.nbytes > minimum else None
    numpy = sys.modules.get("numpy")
    if numpy is None or type(value) is not numpy.ndarray or value.dtype.hasobject or value.nbytes <= minimum:
        return None
    array = numpy.ascontiguousarray(value)
    return ["ndarray", repr(array.dtype.descr), repr(array.shape)], memoryview(array).cast("B")


def _buffer_digest(buffer: memoryview) -> str:
    """The hex digest of ``buffer`` by ``kart_core.integrity``'s default hash, read in place (no copy)."""
    hasher = integrity.new_hasher()
    hasher.update(buffer)
    return hasher.hexdigest()


def _is_code(obj: Any) -> bool:
    """Functions, classes, modules and callables wrapping them: referenced by key or version, not content."""
    if isinstance(obj, _CODE_TYPES):
        return True
    return callable(obj) and hasattr(obj, "__wrapped__")


def _plain(value: Any) -> bool:
    """Whether ``repr(value)`` is the same in every process: scalars, and tuples, lists and dicts of them."""
    if value is None or isinstance(value, bool | int | float | complex | str | bytes):
        return True
    if isinstance(value, tuple | list):
        return all(_plain(item) for item in value)
    if type(value) is dict:
        return all(_plain(key) and _plain(item) for key, item in value.items())
    return False


def _may_hold_order(value: Any) -> bool:
    """Whether a value could hold an order (or text) made by iterating a set: not a number, None or a bool,
    not empty, not code. Only such values are looked up in their module's source."""
    if value is None or isinstance(value, bool | int | float | complex) or _is_code(value):
        return False
    return not (isinstance(value, _CONTAINERS) and not value)


def _strings(code: types.CodeType) -> set[str]:
    """String constants of ``code`` and of the code nested in it."""
    found = set()
    for const in code.co_consts:
        if isinstance(const, str):
            found.add(const)
        elif isinstance(const, types.CodeType):
            found |= _strings(const)
    return found


def _findable(module_name: str) -> bool:
    """Whether ``module_name`` can be imported (its parents get imported to tell)."""
    try:
        return importlib.util.find_spec(module_name) is not None
    except (ImportError, ValueError):
        return False


def _cell_filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - an empty cell raises ValueError
    except ValueError:
        return False
    return True


def _all_names(code: types.CodeType) -> set[str]:
    """Global and attribute names used by ``code`` and by the code objects nested in it."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _all_names(const)
    return names


_IMPORT_NAME = dis.opmap["IMPORT_NAME"]


def _holds_import(code: types.CodeType) -> bool:
    """Whether ``code`` or the code nested in it executes an ``IMPORT_NAME`` (an ``import`` statement).

    Exact on wordcode (3.6+): every instruction, ``EXTENDED_ARG`` prefixes and inline ``CACHE`` entries too, is one
    opcode byte at an even offset followed by its argument byte, and ``co_code`` holds no specialised opcodes.
    """
    if _IMPORT_NAME in code.co_code[::2]:
        return True
    return any(isinstance(const, types.CodeType) and _holds_import(const) for const in code.co_consts)


def _loadable_names(code: types.CodeType) -> set[str]:
    """Every name ``code`` and the code nested in it can load: globals and attributes (``co_names``), locals,
    cells and free variables: what an attribute chain of ``_scan_imports`` can start at."""
    names = {*code.co_names, *code.co_varnames, *code.co_cellvars, *code.co_freevars}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _loadable_names(const)
    return names


@dataclasses.dataclass
class _ImportScan:
    """What a function's code (nested code too) names through ``import`` statements and attribute chains.

    ``_Visit._imports_matter`` skips the scan where none of it can count (no import statement; no module global
    that is project code or has a submodule among the names the code reads): a use of a new field must keep
    that true, or widen ``_imports_matter``.
    """

    modules: set[str] = dataclasses.field(default_factory=set)  # absolute names IMPORT_NAME loads
    # ``from module import name``: Python imports ``module.name`` when ``module`` lacks the attribute
    from_names: set[tuple[str, str]] = dataclasses.field(default_factory=set)
    # local name -> (module, name) an import binds it to (name "" for the module itself)
    bindings: dict[str, set[tuple[str, str]]] = dataclasses.field(default_factory=dict)
    chains: set[tuple[str, ...]] = dataclasses.field(default_factory=set)  # ``name.attr.attr`` as loaded
    # Where a chain of a global (or of a local an import bound) ends: its last value is used as a value, no attribute
    # read from it (stored as ``self.m = steps``, passed, returned; called, for a function): ``steps``, ``pkg.steps``
    ends: set[tuple[str, ...]] = dataclasses.field(default_factory=set)


# The scan of code without imports whose chains lead nowhere (_imports_matter): shared, never change it.
_NO_IMPORTS = _ImportScan()


@functools.lru_cache(maxsize=4096)
def _scanned_imports(code: types.CodeType, package: str | None) -> _ImportScan:
    """``_scan_imports(code, package)``, kept per process for the last 4,096 code objects (with their package).

    A pure function of the two: a code object is immutable (its instructions, constants and names; nested code is
    among its constants) and equal code objects hold the same instructions, names and constants; what an import
    statement resolves to depends on ``package`` alone. So each run of a process (a second KartRunner run, a
    service keying nodes per request) walks each function's bytecode once, not once per run: ``dis`` decoding
    every instruction was most of a node function's fingerprint. What the names then reach (module values,
    helpers, submodules) is looked up anew by every fingerprint. The scan is shared: never change it.
    """
    return _scan_imports(code, package)


def _scan_imports(code: types.CodeType, package: str | None, scan: _ImportScan | None = None) -> _ImportScan:
    """The modules ``import`` statements in ``code`` (and nested code) load, what they bind, and attribute chains."""
    scan = scan if scan is not None else _ImportScan()
    consts: list[Any] = []
    chain: list[str] = []
    statement: tuple[str, bool] | None = None  # the import being bound: (module, whether it has a fromlist)
    via: list[str] = []  # IMPORT_FROM names since the statement's IMPORT_NAME (or its last store)
    named = False  # the chain started with a global's load, or a local's that an import bound
    for instruction in dis.get_instructions(code):
        op, arg = instruction.opname, instruction.argval
        if op in _ATTRIBUTE_LOADS and chain:
            chain.append(arg)
            continue
        if len(chain) > 1:
            scan.chains.add(tuple(chain))
        if chain and named:
            scan.ends.add(tuple(chain))
        named = op in _GLOBAL_LOADS or (op in _NAME_LOADS and arg in scan.bindings)
        if op in _PAIRED and isinstance(arg, tuple) and len(arg) == 2:  # 3.13+: two fast locals in one
            first, second = arg
            if op.startswith("STORE_FAST_") and statement is not None:
                scan.bindings.setdefault(first, set()).add(_bound(statement, via))
                statement, via = (statement, []) if statement[1] and op == "STORE_FAST_STORE_FAST" else (None, [])
            chain = [second] if op.endswith("LOAD_FAST") or op.endswith("BORROW") else []
            continue
        chain = [arg] if op in _NAME_LOADS and isinstance(arg, str) else []
        if op in _CONST_LOADS:
            consts.append(arg)
        elif op == "IMPORT_NAME":
            statement, via = _import_statement(arg, consts, package), []
            if statement is not None:
                scan.modules.add(statement[0])
        elif statement is None or op in _IMPORT_STACK_OPS:
            continue
        elif op == "IMPORT_FROM":
            via.append(arg)
            if statement[1]:
                scan.from_names.add((statement[0], arg))
        elif op in _NAME_STORES:
            scan.bindings.setdefault(arg, set()).add(_bound(statement, via))
            statement, via = (statement, []) if statement[1] else (None, [])
        else:
            statement = None
    if len(chain) > 1:
        scan.chains.add(tuple(chain))
    if chain and named:
        scan.ends.add(tuple(chain))
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _scan_imports(const, package, scan)
    return scan


def _import_statement(name: str, consts: list[Any], package: str | None) -> tuple[str, bool] | None:
    """The absolute module an IMPORT_NAME loads (its level and fromlist are the two constants before
    it), and whether it has a fromlist; None when a relative name cannot be resolved."""
    level = consts[-2] if len(consts) >= 2 and isinstance(consts[-2], int) else 0
    fromlist = consts[-1] if consts else None
    try:
        module = importlib.util.resolve_name("." * level + name, package) if level else name
    except (ImportError, ValueError):
        return None
    return module, isinstance(fromlist, tuple)


def _bound(statement: tuple[str, bool], via: list[str]) -> tuple[str, str]:
    """What a store after an import binds: ``from m import n`` -> (m, n); ``import a.b as c`` -> (a.b, "");
    ``import a.b`` -> (a, "")."""
    module, has_fromlist = statement
    if has_fromlist:
        return (module, via[-1]) if via else (module, "")
    return (module, "") if via else (module.partition(".")[0], "")


def _normalised_code(code: types.CodeType, docstring: str | None = None) -> list[Any]:
    """Instructions, constants, names and argument layout — not the file, line numbers or docstring."""
    consts = list(code.co_consts)
    if consts and _starts_with_docstring(code, consts[0], docstring):
        consts[0] = None
    return [
        code.co_name,
        code.co_argcount,
        code.co_posonlyargcount,
        code.co_kwonlyargcount,
        code.co_flags,
        code.co_code,
        getattr(code, "co_exceptiontable", b""),
        [_normalised_code(c) if isinstance(c, types.CodeType) else _constant(c) for c in consts],
        list(code.co_names),
        list(code.co_varnames),
        list(code.co_freevars),
        list(code.co_cellvars),
    ]


def _starts_with_docstring(code: types.CodeType, first: Any, docstring: str | None) -> bool:
    # CPython keeps a function's docstring (or None) as its first constant; 3.14 flags it explicitly.
    flag = getattr(inspect, "CO_HAS_DOCSTRING", None)
    if flag is not None:
        return bool(code.co_flags & flag)
    return isinstance(first, str) and (first == docstring or code.co_name not in _COMPREHENSIONS)


def _constant(value: Any) -> Any:
    """Constants of compiled code: scalars, tuples and frozensets (these in a seed-independent order)."""
    if isinstance(value, frozenset):
        return ["frozenset", sorted(digest(_constant(item)) for item in value)]
    if isinstance(value, tuple):
        return ["tuple", [_constant(item) for item in value]]
    return [type(value).__name__, repr(value)]


def code_fingerprint(task_class: type, classifier: ModuleClassifier | None = None) -> str:
    """16 hex characters for the code of ``task_class`` and, transitively, the project code it uses.

    Covers the class's methods, properties, parameters (type, default, significance) and class
    attributes, its project base classes, and every project function, class, module attribute and
    module-level value they reference (helpers in other modules too); third-party code and kart
    itself count by their versions. Comments, docstrings, formatting and line numbers do not count.
    Bytecode depends on the Python minor version, so two processes on different Pythons differ.
    The Airflow operator compares it between the dag-processor and the worker (code skew).

    Args:
        task_class: a TaskOnKart subclass (any class works).
        classifier: decides what is project code; default: the class's top-level package, editable
            installs and modules outside site-packages.

    Raises:
        TypeError: ``task_class`` is not a class.
        FingerprintError: Python's stack ran out on the way (the caller was already deep).
    """
    if not isinstance(task_class, type):
        raise TypeError(f"code_fingerprint takes a class, got {type(task_class).__name__} {task_class!r}.")
    if classifier is None:
        classifier = ModuleClassifier([_module_of(task_class)])
    return CodeFingerprinter(classifier).fingerprint(task_class).digest[:16]
