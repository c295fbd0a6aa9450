"""The code fingerprint counts module-level values by content: dict order, slotted and pickle-only
objects (SimpleNamespace, itemgetter, timezone), the same in every process and hash seed; a value
with no readable content is named in ``CodeFingerprint.undigestable`` instead of counting by type.

Each test writes a real package ``fpval`` into tmp_path; an edit is a rewrite plus a fresh import.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from kart_core import CodeFingerprint, CodeFingerprinter

NODES = """
from fpval import helpers


def node(v):
    return helpers.X
"""


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A package ``fpval`` (helpers, nodes) on sys.path, installed by nobody: project code."""
    root = tmp_path / "src" / "fpval"
    root.mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "nodes.py").write_text(NODES)
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")  # for the subprocesses
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # a same-second rewrite must not reuse a .pyc
    yield root
    _forget()


def _forget() -> None:
    for name in [n for n in sys.modules if n == "fpval" or n.startswith("fpval.")]:
        del sys.modules[name]


def _fingerprint(package: Path, helpers: str) -> CodeFingerprint:
    """The fingerprint of ``fpval.nodes.node`` with ``helpers.py`` holding ``helpers`` (a fresh import)."""
    (package / "helpers.py").write_text(textwrap.dedent(helpers))
    _forget()
    importlib.invalidate_caches()
    return CodeFingerprinter().fingerprint(importlib.import_module("fpval.nodes").node)


SLOTTED = """
import dataclasses


@dataclasses.dataclass(frozen=True, slots=True)
class Conf:
    unit: float


X = Conf({})
"""

PLAIN_SLOTS = """
class Base:
    __slots__ = ("__secret",)

    def __init__(self, secret):
        self.__secret = secret


class Conf(Base):
    __slots__ = "unit"

    def __init__(self, secret, unit):
        super().__init__(secret)
        self.unit = unit


X = Conf({})
"""

DEQUE = """
import collections


class Window(collections.deque):
    pass


X = Window([1, {}])
"""


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("X = {'a': 1, 'b': 2}", "X = {'b': 2, 'a': 1}"),  # iteration and json.dumps follow dict order
        (SLOTTED.format("1.0"), SLOTTED.format("1000.0")),
        (PLAIN_SLOTS.format("1, 2"), PLAIN_SLOTS.format("1, 3")),  # a subclass's own slot (a str __slots__)
        (PLAIN_SLOTS.format("1, 2"), PLAIN_SLOTS.format("5, 2")),  # a base class's name-mangled slot
        (DEQUE.format("2"), DEQUE.format("3")),  # a project subclass of a C type: its items live in no attribute
        ("import types\nX = types.SimpleNamespace(s=2)", "import types\nX = types.SimpleNamespace(s=3)"),
        ("X = bytearray(b'a')", "X = bytearray(b'b')"),
        (
            "import datetime\nX = datetime.timezone(datetime.timedelta(hours=1))",
            "import datetime\nX = datetime.timezone(datetime.timedelta(hours=2))",
        ),
        ("import operator\nX = operator.itemgetter('a')", "import operator\nX = operator.itemgetter('b')"),
        (
            "import collections\nX = collections.defaultdict(list)",
            "import collections\nX = collections.defaultdict(set)",
        ),
        ("import types\nX = types.MappingProxyType({'a': 1})", "import types\nX = types.MappingProxyType({'a': 2})"),
        ("import fractions\nX = [fractions.Fraction(1, 3)]", "import fractions\nX = [fractions.Fraction(1, 4)]"),
    ],
)
def test_an_edit_to_a_module_level_value_changes_the_fingerprint(package: Path, old: str, new: str) -> None:
    before, after = _fingerprint(package, old), _fingerprint(package, new)
    assert before.digest != after.digest
    assert before.items["fpval.helpers.X"] != after.items["fpval.helpers.X"]
    assert before.undigestable == after.undigestable == ()


STABLE = """
import collections
import dataclasses
import datetime
import logging
import operator
import threading
import types


@dataclasses.dataclass(frozen=True, slots=True)
class Conf:
    tags: frozenset


X = {
    "set": {"alpha", "beta", "gamma", "delta"},
    "conf": Conf(frozenset({"x", "y", "z"})),
    "ns": types.SimpleNamespace(words={"one", "two", "three"}, when=datetime.timezone.utc),
    "counter": collections.Counter("mississippi"),
    "getter": operator.itemgetter("a", "b"),
    "logger": logging.getLogger("fpval"),
    "lock": threading.Lock(),
    "event": threading.Event(),
}
"""


def test_values_fingerprint_the_same_in_every_process_and_hash_seed(package: Path) -> None:
    here = _fingerprint(package, STABLE)
    code = "from kart_core import CodeFingerprinter; import fpval.nodes as n; print(CodeFingerprinter().fingerprint(n.node).digest)"
    digests = set()
    for seed in ("0", "1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": os.pathsep.join([str(package.parent), *sys.path])}
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        digests.add(done.stdout.split()[-1])
    assert digests == {here.digest}
    assert here.undigestable == ()  # a logger pickles by name; locks and events count by type


def test_a_lock_counts_by_type_not_by_whether_it_is_held(package: Path) -> None:
    free = _fingerprint(package, "import threading\nX = threading.Lock()\n")
    held = _fingerprint(package, "import threading\nX = threading.Lock()\nX.acquire()\n")
    assert free.digest == held.digest and free.undigestable == ()


def test_a_value_that_cannot_be_pickled_is_named_not_counted_by_its_type(package: Path) -> None:
    fingerprint = _fingerprint(package, "import sqlite3\nX = {'db': sqlite3.connect(':memory:')}\n")
    (entry,) = fingerprint.undigestable
    assert entry.startswith("fpval.helpers.X: a sqlite3.Connection that cannot be pickled (TypeError: ")
    again = _fingerprint(package, "import sqlite3\nX = {'db': sqlite3.connect(':memory:')}\n")
    assert again.digest == fingerprint.digest  # deterministic all the same (Airflow's skew check compares it)
    elsewhere = CodeFingerprinter().fingerprint(lambda v: v + 1)
    assert elsewhere.undigestable == ()


def test_a_node_reaching_an_undigestable_value_through_a_helper_names_it(package: Path) -> None:
    helpers = """
    import threading

    LOCAL = threading.local()


    def helper(v):
        return getattr(LOCAL, "v", v)


    X = helper
    """
    fingerprint = _fingerprint(package, helpers)
    assert [entry.split(" that ")[0] for entry in fingerprint.undigestable] == ["fpval.helpers.LOCAL: a _thread._local"]


def test_a_frame_holding_an_undigestable_value_is_named(package: Path) -> None:
    helpers = "import sqlite3, pandas as pd\nX = pd.Series([sqlite3.connect(':memory:')], dtype=object)\n"
    (entry,) = _fingerprint(package, helpers).undigestable
    assert entry.startswith("fpval.helpers.X: a pandas.Series that holds a Series that cannot be pickled (TypeError: ")
