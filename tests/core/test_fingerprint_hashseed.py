"""The code fingerprint is the same in every process, whatever its PYTHONHASHSEED: set iteration order (and so
a list, tuple, dict or string made by iterating a set) follows the hash seed; the source that makes it does not.
An Airflow dag-processor and its workers, and each new process of a Kedro run, must agree.

Each test writes a real package ``fpseed`` into tmp_path; each case is a node ``n_<NAME>`` returning
``helpers.<NAME>``. The digests are computed in fresh interpreters with hash seeds 0, 1, 2 and a random one.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from kart_core import CodeFingerprinter, ModuleClassifier

HELPERS = """
import enum
import functools


class Color(enum.Enum):
    RED = "r"
    GREEN = "g"
    BLUE = "b"


class Bag(enum.Enum):
    A = frozenset({"a", "b", "c", "d"})


SET_STR = {"alpha", "beta", "gamma", "delta", "epsilon"}
FROZEN = frozenset({"x", "y", "z", "w"})
SET_INT = {1, 2, 3, 1000, 2**40, -5}
SET_TUPLES = {("a", 1), ("b", 2), ("c", 3), ("d", 4)}
SET_ENUMS = {Color.RED, Color.GREEN, Color.BLUE}
NESTED = ({"k": frozenset({"p", "q", "r"})}, (frozenset({"s", "t", "u"}),))
DICT_STR = {"b": 1, "a": 2, "c": 3}
FROM_SET = [x for x in {"a", "b", "c", "d", "e"}]
DICT_FROM_SET = {k: i for i, k in enumerate({"a", "b", "c", "d"})}
JOINED = ",".join({"a", "b", "c", "d"})
TUPLE_FROM_SET = tuple(SET_STR)
LIST_FROM_FROZEN = list(FROZEN) + ["end"]
STARRED = (*FROZEN, "end")
FILLED = []
for _name in SET_STR:
    FILLED.append(_name.upper())
BAG = Bag.A
MARKER = object()


class Sentinel:
    pass


SENTINEL = Sentinel()


class Holder:
    def __init__(self):
        self.inner = object()
        self.fn = len


HOLDER = Holder()


class Attrs:
    NAMES = [x for x in {"a", "b", "c", "d", "e"}]
    KINDS = tuple(SET_STR)
    LOOKUP = dict.fromkeys(FROZEN, 0)
    ORDERED = ["c", "a", "b"]


def decorate(names):
    def apply(cls):
        cls.added = ()
        for name in names:
            cls.added += (f"x_{name}",)
        return cls

    return apply


@decorate(FROZEN)
class Decorated:
    pass


def default_set(x, opts={"a", "b", "c", "d"}):
    return x in opts


def default_frozen(x, opts=frozenset({"a", "b", "c"}), *, kw={"k", "l", "m"}):
    return x in opts and x in kw


def contains(x):
    return x in {"q", "r", "s", "t"}


HANDLERS = {lambda: 1, lambda: 2, lambda: 3}
PARTIAL = functools.partial(default_set, opts={"q", "r", "s"})
"""

CASES = [
    *re.findall(r"^([A-Z][A-Z_]+) = ", HELPERS, re.MULTILINE),
    "Attrs",
    "Decorated",
    "default_set",
    "default_frozen",
    "contains",
]
SEEDS = ("0", "1", "2", "random")
FINGERPRINT_ALL = """
import json
from kart_core import CodeFingerprinter
import fpseed.nodes as nodes
fingerprinter = CodeFingerprinter()
print(json.dumps({{name: fingerprinter.fingerprint(getattr(nodes, "n_" + name)).digest for name in {cases!r}}}))
"""


def _nodes_source(cases: list[str]) -> str:
    return "from fpseed import helpers\n" + "".join(
        f"\n\ndef n_{name}():\n    return helpers.{name}\n" for name in cases
    )


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A package ``fpseed`` (helpers, nodes) on sys.path, installed by nobody: project code."""
    root = tmp_path / "src" / "fpseed"
    root.mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "helpers.py").write_text(HELPERS)
    (root / "nodes.py").write_text(_nodes_source(CASES))
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")  # for the subprocesses
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # a same-second rewrite must not reuse a .pyc
    yield root
    _forget()


def _forget() -> None:
    for name in [n for n in sys.modules if n == "fpseed" or n.startswith("fpseed.")]:
        del sys.modules[name]


def _in_processes(runs: list[tuple[str, str]], path: list[str]) -> list[str]:
    """The last line each ``(seed, code)`` of ``runs`` prints in its own fresh interpreter with
    ``PYTHONHASHSEED=seed``, in order. The interpreters run at the same time (each test's seeds used to run
    one after the other: the pandas test's two ~15 s walks took twice the wall time beside an idle core)."""
    started = []
    try:
        for seed, code in runs:
            env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": os.pathsep.join(path)}
            command = [sys.executable, "-c", code]
            started.append(
                subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            )
        lines = []
        for process in started:
            out, err = process.communicate(timeout=300)
            assert process.returncode == 0, err[-3000:]
            lines.append(out.strip().splitlines()[-1])
        return lines
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
                process.wait()


def _in_process(seed: str, code: str, path: list[str]) -> str:
    """The last line ``code`` prints in a fresh interpreter with ``PYTHONHASHSEED=seed``."""
    return _in_processes([(seed, code)], path)[0]


def _digests(package: Path, cases: list[str]) -> dict[str, dict[str, str]]:
    """seed -> case -> digest, each seed in its own interpreter."""
    code = FINGERPRINT_ALL.format(cases=cases)
    lines = _in_processes([(seed, code) for seed in SEEDS], [str(package.parent), *sys.path])
    return {seed: json.loads(line) for seed, line in zip(SEEDS, lines, strict=True)}


def _here(package: Path, helpers: str, case: str) -> str:
    """The digest of ``n_<case>`` in this process, with ``helpers.py`` holding ``helpers`` (a fresh import)."""
    (package / "helpers.py").write_text(textwrap.dedent(helpers))
    _forget()
    importlib.invalidate_caches()
    return CodeFingerprinter().fingerprint(getattr(importlib.import_module("fpseed.nodes"), f"n_{case}")).digest


def test_every_case_fingerprints_the_same_under_every_hash_seed(package: Path) -> None:
    by_seed = _digests(package, CASES)
    unstable = sorted(case for case in CASES if len({by_seed[seed][case] for seed in SEEDS}) > 1)
    assert unstable == []
    here = {case: _here(package, HELPERS, case) for case in CASES}
    assert by_seed["0"] == here  # and the same as in this process (whatever its seed)


@pytest.mark.parametrize(
    ("case", "old", "new"),
    [
        ("FROM_SET", '[x for x in {"a", "b", "c", "d", "e"}]', '[x for x in {"a", "b", "c", "d", "f"}]'),
        ("FROM_SET", '[x for x in {"a", "b", "c", "d", "e"}]', '[x * 2 for x in {"a", "b", "c", "d", "e"}]'),
        ("DICT_FROM_SET", "{k: i for i, k", "{k: -i for i, k"),
        ("JOINED", '",".join', '";".join'),
        ("TUPLE_FROM_SET", '"epsilon"}', '"zeta"}'),  # the set it is made of, another statement
        ("FILLED", "_name.upper()", "_name.lower()"),
        ("STARRED", '(*FROZEN, "end")', '(*FROZEN, "stop")'),
        ("Attrs", '"d", "e"}]', '"d", "f"}]'),
        ("Attrs", "tuple(SET_STR)", "tuple(FROZEN)"),
        ("Attrs", '["c", "a", "b"]', '["a", "b", "c"]'),  # a literal list: its order counts
        ("Decorated", 'f"x_{name}"', 'f"y_{name}"'),  # the decorator's code
        ("Decorated", '"z", "w"})', '"z", "v"})'),  # what the decorator is given
        ("BAG", 'A = frozenset({"a", "b", "c", "d"})', 'A = frozenset({"a", "b", "c", "e"})'),
        ("DICT_STR", '{"b": 1, "a": 2, "c": 3}', '{"a": 2, "b": 1, "c": 3}'),  # dict order counts
        ("SET_TUPLES", '("d", 4)}', '("d", 5)}'),
        ("SET_ENUMS", 'BLUE = "b"', 'BLUE = "bb"'),
        ("default_set", '"c", "d"}):', '"c", "e"}):'),
        ("default_frozen", '"l", "m"}):', '"l", "n"}):'),
        ("contains", '"t"}', '"u"}'),
        ("HANDLERS", "lambda: 3}", "lambda: 4}"),
    ],
)
def test_an_edit_still_changes_the_digest(package: Path, case: str, old: str, new: str) -> None:
    assert old in HELPERS
    assert _here(package, HELPERS.replace(old, new), case) != _here(package, HELPERS, case)


def test_formatting_and_comments_around_a_value_made_from_a_set_do_not_count(package: Path) -> None:
    cases = ["FROM_SET", "Attrs", "Decorated", "JOINED"]
    before = {case: _here(package, HELPERS, case) for case in cases}
    reformatted = (
        HELPERS.replace(
            '[x for x in {"a", "b", "c", "d", "e"}]', '[  # the names\n    x\n    for x in {"a", "b", "c", "d", "e"}\n]'
        )
        .replace('",".join({"a", "b", "c", "d"})', '",".join(  # joined\n    {"a", "b", "c", "d"}\n)')
        .replace("@decorate(FROZEN)", "\n\n@decorate(  FROZEN  )  # decorated")
    )
    assert reformatted != HELPERS
    assert {case: _here(package, reformatted, case) for case in cases} == before


def test_a_value_imported_from_another_module_counts_by_the_statement_that_made_it(package: Path) -> None:
    (package / "other.py").write_text("from fpseed.helpers import FROM_SET as NAMES\n")
    (package / "nodes.py").write_text("from fpseed.other import NAMES\n\n\ndef n_NAMES():\n    return NAMES\n")
    code = "import fpseed.nodes as n; from kart_core import CodeFingerprinter; print(CodeFingerprinter().fingerprint(n.n_NAMES).digest)"
    digests = set(_in_processes([(seed, code) for seed in SEEDS], [str(package.parent), *sys.path]))
    assert len(digests) == 1


LUIGI_TASKS = """
import luigi
import kart_core


class Level(luigi.Parameter):
    pass


class Pick(kart_core.TaskOnKart):
    level = luigi.ChoiceParameter(choices=["a", "b", "c", "d", "e"], default="a", description="The level.")
    kinds = luigi.ChoiceListParameter(choices=["x", "y", "z", "w"], default=("x",))
    own = Level(default="q")
    names = [x for x in {"n", "o", "p", "q"}]

    def run(self):
        self.dump(self.level)
"""


def test_a_task_class_fingerprints_the_same_in_a_dag_processor_and_a_worker(tmp_path: Path) -> None:
    # luigi writes a ChoiceParameter's choices into its description in set order, and numbers parameters in
    # creation order (a worker that imported other task modules first has created others).
    (tmp_path / "fpseed_tasks.py").write_text(LUIGI_TASKS)
    code = (
        "import sys, luigi\n"
        "made = [luigi.Parameter() for _ in range(int(sys.argv[-1]))]\n"
        "import fpseed_tasks, kart_core\n"
        "print(kart_core.code_fingerprint(fpseed_tasks.Pick))\n"
    )
    path = [str(tmp_path), *sys.path]
    runs = [(seed, code.replace("sys.argv[-1]", made)) for seed, made in zip(SEEDS, "0305", strict=True)]
    digests = set(_in_processes(runs, path))
    assert len(digests) == 1
    edited = LUIGI_TASKS.replace('"d", "e"], default="a"', '"d", "f"], default="a"')
    (tmp_path / "fpseed_tasks.py").write_text(edited)
    assert _in_process("0", code.replace("sys.argv[-1]", "0"), path) not in digests


# Classes of pandas 2.x that fingerprinted differently in each process with pandas as project code: a tuple
# a decorator makes by iterating a frozenset (the expression visitors) and a tuple a compiled (Cython) class
# makes from a set (RelativeDeltaOffset._attributes).
PANDAS_CLASSES = [
    "pandas.core.computation.expr.BaseExprVisitor",
    "pandas.core.computation.expr.PandasExprVisitor",
    "pandas.core.computation.expr.PythonExprVisitor",
    "pandas._libs.tslibs.offsets.RelativeDeltaOffset",
]
FINGERPRINT_PANDAS = """
import importlib, json
from kart_core import CodeFingerprinter, ModuleClassifier
fingerprinter = CodeFingerprinter(ModuleClassifier(["pandas"]))
found = {{}}
for path in {paths!r}:
    module, _, name = path.rpartition(".")
    found[path] = fingerprinter.fingerprint(getattr(importlib.import_module(module), name)).digest
print(json.dumps(found))
"""


@pytest.mark.slow  # each process walks about 8,900 pieces of pandas (~14 s of CPU): over a minute on a loaded machine
def test_pandas_as_project_code_fingerprints_the_same_under_two_hash_seeds() -> None:
    pytest.importorskip("pandas")
    code = FINGERPRINT_PANDAS.format(paths=PANDAS_CLASSES)
    first, second = (json.loads(line) for line in _in_processes([("0", code), ("1", code)], sys.path))
    assert first == second


def test_a_value_made_from_a_set_lists_what_it_reads(package: Path) -> None:
    # Counted by its statement, the value still names the module-level values that statement reads.
    nodes = importlib.import_module("fpseed.nodes")
    fingerprint = CodeFingerprinter(ModuleClassifier(["fpseed"])).fingerprint(nodes.n_Attrs)
    assert {"fpseed.helpers.Attrs", "fpseed.helpers.SET_STR", "fpseed.helpers.FROZEN"} <= set(fingerprint.items)
