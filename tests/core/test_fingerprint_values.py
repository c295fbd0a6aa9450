"""The code fingerprint counts module-level values by content: dict order, slotted and pickle-only
objects (SimpleNamespace, itemgetter, timezone), the same in every process and hash seed; a value
with no readable content is named in ``CodeFingerprint.undigestable`` instead of counting by type.

Each test writes a real package ``fpval`` into tmp_path; an edit is a rewrite plus a fresh import.
"""

from __future__ import annotations

import importlib
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from kart_core import CodeFingerprint, CodeFingerprinter, fingerprint

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


# --- shared structure, budgets, and objects that count by their type ----------------------------


def test_a_value_shared_a_thousand_times_is_walked_once(package: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Walked per reference, the list would be 1,000 x 10,001 objects: far past the budget (it would
    # count by its type, with a warning). Walked once, an edit to the shared dict shows.
    shared = "ROW = {{i: str(i) for i in range(5000)}}\nROW[7] = {}\nX = [ROW] * 1000\n"
    with caplog.at_level(logging.WARNING, logger="kart_core.fingerprint"):
        before = _fingerprint(package, shared.format("'seven'"))
        after = _fingerprint(package, shared.format("'SEVEN'"))
    assert caplog.records == []
    assert before.digest != after.digest and before.undigestable == ()
    fewer = _fingerprint(package, shared.format("'seven'").replace("* 1000", "* 999"))
    assert fewer.digest != before.digest


def test_a_doubling_chain_is_walked_once_per_object(package: Path, caplog: pytest.LogCaptureFixture) -> None:
    # 2**60 paths to the leaf, 61 objects: followed path by path this never finishes.
    chain = "X = {{'leaf': {}}}\nfor _ in range(60):\n    X = [X, X]\n"
    with caplog.at_level(logging.WARNING, logger="kart_core.fingerprint"):
        one, two = _fingerprint(package, chain.format(1)), _fingerprint(package, chain.format(2))
    assert caplog.records == [] and one.digest != two.digest


def test_shared_and_unshared_values_differ_as_pickle_tells_them_apart(package: Path) -> None:
    # [d, d] and [d, copy of d] pickle differently (mutating one changes the other, or not); a value
    # reached twice counts as a reference to its first place, not its address.
    aliased = _fingerprint(package, "D = {'a': [1]}\nX = [D, D]\n")
    copied = _fingerprint(package, "D = {'a': [1]}\nX = [D, {'a': [1]}]\n")
    again = _fingerprint(package, "D = {'a': [1]}\nX = [D, D]\n")
    assert aliased.digest != copied.digest and aliased.digest == again.digest


def test_a_third_party_object_over_its_budget_counts_by_type_with_one_warning(
    package: Path, caplog: pytest.LogCaptureFixture
) -> None:
    large = "import types\nX = {{'threshold': {}, 'client': types.SimpleNamespace(rows=list(range({})))}}\n"
    with caplog.at_level(logging.WARNING, logger="kart_core.fingerprint"):
        base = _fingerprint(package, large.format(0.5, 30_000))
    assert [record.getMessage() for record in caplog.records] == [
        "fpval.helpers.X: a types.SimpleNamespace is too large to fingerprint by content (more than 20,000 "
        "objects); it counts by its type"
    ]
    assert base.undigestable == ()  # a resource, not unreadable data: a Kedro node using it stays cached
    assert _fingerprint(package, large.format(0.5, 30_001)).digest == base.digest  # by its type
    assert _fingerprint(package, large.format(0.6, 30_000)).digest != base.digest  # the rest by content


def test_a_value_over_the_budget_counts_by_type_with_one_warning(
    package: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fingerprint, "_MAX_NODES", 1000)  # 1,000,000 in use: a second of work per value
    with caplog.at_level(logging.WARNING, logger="kart_core.fingerprint"):
        large = _fingerprint(package, "X = list(range(2000))\n")
        assert _fingerprint(package, "X = list(range(2001))\n").digest == large.digest
        assert _fingerprint(package, "X = list(range(900))\n").digest != large.digest
    assert [record.getMessage() for record in caplog.records] == [
        "fpval.helpers.X: a builtins.list is too large to fingerprint by content (more than 1,000 objects); "
        "it counts by its type"
    ] * 2
    assert large.undigestable == ()


def test_a_deeply_nested_value_counts_by_type_instead_of_exhausting_the_stack(
    package: Path, caplog: pytest.LogCaptureFixture
) -> None:
    deep = "X = {}\nfor _ in range(500):\n    X = [X]\n"
    with caplog.at_level(logging.WARNING, logger="kart_core.fingerprint"):
        fingerprint_ = _fingerprint(package, deep.format("{'a': 1}"))
        assert _fingerprint(package, deep.format("{'a': 2}")).digest == fingerprint_.digest
    assert "nested more than 150 levels deep" in caplog.records[0].getMessage()
    shallow = "X = {}\nfor _ in range(140):\n    X = [X]\n"
    one, two = _fingerprint(package, shallow.format("{'a': 1}")), _fingerprint(package, shallow.format("{'a': 2}"))
    assert one.digest != two.digest


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("import random\nX = random.Random(1)", "import random\nX = random.Random(2)"),
        ("import random\nX = random.Random(1)", "import random\nX = random.Random(1)\nX.random()"),
        ("import numpy\nX = numpy.random.default_rng(1)", "import numpy\nX = numpy.random.default_rng(2)"),
        ("import numpy\nX = numpy.random.RandomState(1)", "import numpy\nX = numpy.random.RandomState(2)"),
        ("import numpy\nX = numpy.random.PCG64(1)", "import numpy\nX = numpy.random.PCG64(2)"),
    ],
)
def test_a_random_number_generator_counts_by_its_type(package: Path, old: str, new: str) -> None:
    before, after = _fingerprint(package, old), _fingerprint(package, new)
    assert before.digest == after.digest and before.undigestable == ()


RESOURCES = """
import concurrent.futures
import datetime
import logging
import random
import threading

import boto3
import numpy
import requests
import sqlalchemy

KEYS = {"region_name": "us-east-1", "aws_access_key_id": "a", "aws_secret_access_key": "b"}
X = {
    "rng": random.Random(),
    "system_rng": random.SystemRandom(),
    "default_rng": numpy.random.default_rng(),
    "random_state": numpy.random.RandomState(),
    "s3": boto3.client("s3", **KEYS),
    "session": boto3.Session(**KEYS),
    "bucket": boto3.Session(**KEYS).resource("s3").Bucket("b"),
    "http": requests.Session(),
    "engine": sqlalchemy.create_engine("sqlite:///:memory:"),
    "thread": threading.Thread(target=print),
    "executor": concurrent.futures.ThreadPoolExecutor(1),
    "handler": logging.StreamHandler(),
    "logger": logging.getLogger("fpval"),
    "table": sqlalchemy.Table("t", sqlalchemy.MetaData(), sqlalchemy.Column("a", sqlalchemy.Integer)),
    "when": datetime.datetime(2026, 11, 30, 23, 0),
}
X["rng"].random()
"""


def test_generators_and_resources_fingerprint_the_same_in_every_process(
    package: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Unseeded generators, clients holding SSL contexts and credentials, engines holding thread-locals,
    # handlers holding streams: each counts by its type, the same in each process, and none of them
    # makes a Kedro node uncached. A datetime is data: by content (a datetime.now() differs per process).
    with caplog.at_level(logging.WARNING, logger="kart_core.fingerprint"):
        here = _fingerprint(package, RESOURCES)
    assert here.undigestable == () and caplog.records == []
    assert any(package.startswith("boto3==") for package in here.packages)
    code = "from kart_core import CodeFingerprinter; import fpval.nodes as n; print(CodeFingerprinter().fingerprint(n.node).digest)"
    digests = set()
    for seed in ("0", "1"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": os.pathsep.join([str(package.parent), *sys.path])}
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        digests.add(done.stdout.split()[-1])
    assert digests == {here.digest}
    edited = _fingerprint(package, RESOURCES.replace("23, 0)", "23, 1)"))
    assert edited.digest != here.digest


TABLES = """
import sqlalchemy

X = sqlalchemy.Table("t", sqlalchemy.MetaData(), sqlalchemy.Column("a", sqlalchemy.Integer))
"""


def test_a_sqlalchemy_table_fingerprints_the_same_whatever_the_process_created_before(package: Path) -> None:
    # sqlalchemy numbers its Columns and Tables in creation order (_creation_order): a process that made
    # other sqlalchemy objects first (an Airflow worker has imported airflow.models) must agree with one that did not.
    _fingerprint(package, TABLES)
    code = (
        "import sys, sqlalchemy\n"
        "made = [sqlalchemy.Column(f'c{i}', sqlalchemy.Integer) for i in range(int(sys.argv[1]))]\n"
        "from kart_core import CodeFingerprinter; import fpval.nodes as n\n"
        "print(CodeFingerprinter().fingerprint(n.node).digest)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(package.parent), *sys.path])}
    digests = {
        subprocess.run(
            [sys.executable, "-c", code, made], env=env, capture_output=True, text=True, check=True
        ).stdout.split()[-1]
        for made in ("0", "300")
    }
    assert len(digests) == 1
    (package / "helpers.py").write_text(TABLES.replace('"a"', '"b"'))  # what the table is still counts
    changed = subprocess.run(
        [sys.executable, "-c", code, "0"], env=env, capture_output=True, text=True, check=True
    ).stdout.split()[-1]
    assert changed not in digests


HELD_TABLE_NODES = """
from fpval import helpers


class Holder:
    mod = helpers  # a project module held as a value: every attribute counts

    def get(self, name):
        return getattr(self.mod, name)


def node(v):
    return Holder().get("triple")(v)
"""

HELD_TABLE = """
import numpy as np

TABLE = np.arange(300_000, dtype=np.float64) * {scale}  # 2.4 MB, made at import
BLOB = bytes(range(256)) * 8_192 + b"{tail}"  # 2 MB
SMALL = np.arange(10) * {small}


def triple(x):
    return {factor} * x
"""


@pytest.mark.parametrize(
    ("edit", "changed"),
    [
        ({}, False),  # a fresh import of the same code: the same key
        ({"scale": 2}, True),  # the large table's content
        ({"tail": "y"}, True),  # the large bytes' last byte
        ({"small": 2}, True),  # a small array, by digest() as before
        ({"factor": 5}, True),  # the code
    ],
)
def test_a_held_module_s_large_data_counts_every_byte_quickly(
    package: Path, edit: dict[str, object], changed: bool
) -> None:
    """Attacker at18 I7: a held module's large table was hashed by digest()'s md5 at every fingerprint (a 200 MB
    table: 1.6 s under load). Now an array or bytes over 1 MiB counts by its dtype, shape and a fast hash of its
    bytes (xxh3): still every byte, so any change of the data, as of the code, changes the key."""
    (package / "nodes.py").write_text(HELD_TABLE_NODES)
    base = {"scale": 3, "tail": "x", "small": 1, "factor": 3}
    before = _fingerprint(package, HELD_TABLE.format(**base))
    after = _fingerprint(package, HELD_TABLE.format(**{**base, **edit}))
    assert (before.digest != after.digest) is changed
    assert any(name.endswith("helpers.TABLE:data") for name in after.items)  # by the fast hash, not digest()
