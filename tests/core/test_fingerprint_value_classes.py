"""A value whose type is project code counts with its class's code, whatever builtin it derives from.

The code reaches a method through a value, not a name: a module-level ``dict`` / ``list`` / ``int`` / ``str`` /
``float`` / ``defaultdict`` subclass instance or a ``NamedTuple`` (``helpers.CFG.scale(x)``), an ``Enum`` member held
as a value (a default argument ``mode=Mode.A``, a module constant, a class attribute), a project object in a numpy
object array or a pandas Series, a function in a ``WeakValueDictionary``. An edit of that method must change the
fingerprint, as it does for an instance of a plain project class (attacker at19 J1). Each test writes a real package
``fpcls`` into tmp_path; an edit is a rewrite plus a fresh import.
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


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A package ``fpcls`` on sys.path, installed by nobody: project code."""
    root = tmp_path / "src" / "fpcls"
    root.mkdir(parents=True)
    (root / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")  # for the subprocesses
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # a same-second rewrite must not reuse a .pyc
    yield root
    _forget()


def _forget() -> None:
    for name in [n for n in sys.modules if n == "fpcls" or n.startswith("fpcls.")]:
        del sys.modules[name]


def _fingerprint(package: Path, helpers: str, nodes: str) -> CodeFingerprint:
    """The fingerprint of ``fpcls.nodes.node`` with the two modules written as given (a fresh import)."""
    (package / "helpers.py").write_text(textwrap.dedent(helpers))
    (package / "nodes.py").write_text(textwrap.dedent(nodes))
    _forget()
    importlib.invalidate_caches()
    return CodeFingerprinter().fingerprint(importlib.import_module("fpcls.nodes").node)


HELPERS = {
    "dict subclass": """
        class Cfg(dict):
            def scale(self, x):
                return x * self["w"] + {K}

        VALUE = Cfg(w=2)
        """,
    "list subclass": """
        class Steps(list):
            def scale(self, x):
                return x * sum(self) + {K}

        VALUE = Steps([1, 1])
        """,
    "int subclass": """
        class Level(int):
            def scale(self, x):
                return x * int(self) + {K}

        VALUE = Level(2)
        """,
    "str subclass": """
        class Name(str):
            def scale(self, x):
                return x * len(self) + {K}

        VALUE = Name("ab")
        """,
    "float subclass": """
        class Rate(float):
            def scale(self, x):
                return x * float(self) + {K}

        VALUE = Rate(2.0)
        """,
    "defaultdict subclass": """
        import collections

        class Registry(collections.defaultdict):
            def scale(self, x):
                return x * len(self) + {K}

        VALUE = Registry(list, a=[1], b=[2])
        """,
    "typing.NamedTuple": """
        from typing import NamedTuple

        class Weights(NamedTuple):
            w: int

            def scale(self, x):
                return x * self.w + {K}

        VALUE = Weights(2)
        """,
    "collections.namedtuple subclass": """
        import collections

        class Pair(collections.namedtuple("Pair", "w")):
            def scale(self, x):
                return x * self.w + {K}

        VALUE = Pair(2)
        """,
    "an Enum member as a module constant": """
        import enum

        class Mode(enum.Enum):
            STRICT = "strict"

            def scale(self, x):
                return x * 2 + {K}

        VALUE = Mode.STRICT
        """,
    "a str Enum member": """
        import enum

        class Mode(str, enum.Enum):
            STRICT = "strict"

            def scale(self, x):
                return x * 2 + {K}

        VALUE = Mode.STRICT
        """,
    "an IntEnum member in a list": """
        import enum

        class Mode(enum.IntEnum):
            LOW = 1

            def scale(self, x):
                return x * 2 + {K}

        VALUE = [Mode.LOW]
        """,
    "an object in a numpy object array": """
        import numpy as np

        class Op:
            def scale(self, x):
                return x * 2 + {K}

        VALUE = np.array([Op(), None], dtype=object)
        """,
    "an object in a list in a numpy object array": """
        import numpy as np

        class Op:
            def scale(self, x):
                return x * 2 + {K}

        VALUE = np.empty(2, dtype=object)
        VALUE[0] = [Op()]
        """,
    "an object in a pandas Series": """
        import pandas as pd

        class Op:
            def scale(self, x):
                return x * 2 + {K}

        VALUE = pd.Series([Op()])
        """,
    "a function in a WeakValueDictionary": """
        import weakref

        def scale(x):
            return x * 2 + {K}

        VALUE = weakref.WeakValueDictionary(scale=scale)
        """,
    "an object in a WeakSet": """
        import weakref

        class Op:
            def scale(self, x):
                return x * 2 + {K}

        _KEPT = Op()
        VALUE = weakref.WeakSet([_KEPT])
        """,
    # attacker at20 K7: a partial counted by its function and arguments only, a ContextVar was undigestable
    "a functools.partial subclass with a method": """
        import functools

        def base(x, k):
            return x * k

        class Scaled(functools.partial):
            def scale(self, x):
                return x * 2 + {K}

        VALUE = Scaled(base, k=2)
        """,
    "a functools.partial subclass with its own __call__": """
        import functools

        def base(x, k):
            return x * k

        class Shifted(functools.partial):
            def __call__(self, x):
                return super().__call__(x) + {K}

        VALUE = Shifted(base, k=2)
        """,
    "a ContextVar's default": """
        import contextvars

        class Op:
            def scale(self, x):
                return x * 2 + {K}

        VALUE = contextvars.ContextVar("op", default=Op())
        """,
    # a function a decorator replaced by an object holding it, under the function's name: the value's key and the
    # function's were one, so the function's code was never read (found with attacker at20's K7 probes)
    "a function click.command() replaced by a Command": """
        import click

        @click.command()
        def VALUE():
            return 2 + {K}
        """,
    "a function a project decorator replaced by an object holding it": """
        class Holder:
            def __init__(self, function):
                self.function = function

        @Holder
        def VALUE(x):
            return x * 2 + {K}
        """,
}

NODE_READS_VALUE = """
from fpcls import helpers


def node(x):
    return helpers.VALUE
"""


@pytest.mark.parametrize("case", sorted(HELPERS))
def test_an_edit_of_the_class_of_a_module_value_changes_the_fingerprint(package: Path, case: str) -> None:
    before = _fingerprint(package, HELPERS[case].format(K=0), NODE_READS_VALUE)
    comment = _fingerprint(package, HELPERS[case].format(K="0  # a comment"), NODE_READS_VALUE)
    after = _fingerprint(package, HELPERS[case].format(K=100), NODE_READS_VALUE)
    assert before.digest == comment.digest  # formatting still does not count
    assert before.digest != after.digest  # kart before: equal, the method edit unseen
    assert before.undigestable == after.undigestable == ()


ENUM = """
import enum


class Mode(enum.Enum):
    A = 1
    B = 2

    def apply(self, x):
        return x * 2 + {K}
"""

ENUM_READERS = {
    "a default argument": """
        from fpcls.helpers import Mode


        def node(x, mode=Mode.A):
            return mode.apply(x)
        """,
    "a keyword-only default": """
        from fpcls.helpers import Mode


        def node(x, *, mode=Mode.B):
            return mode.apply(x)
        """,
    "a class attribute": """
        from fpcls.helpers import Mode


        class Settings:
            MODE = Mode.A


        def node(x):
            return Settings.MODE.apply(x)
        """,
    "a closure cell": """
        from fpcls.helpers import Mode


        def make(mode):
            def node(x):
                return mode.apply(x)

            return node


        node = make(Mode.A)
        """,
}


@pytest.mark.parametrize("reader", sorted(ENUM_READERS))
def test_an_edit_of_an_enum_method_reached_through_a_member_changes_the_fingerprint(package: Path, reader: str) -> None:
    before = _fingerprint(package, ENUM.format(K=0), ENUM_READERS[reader])
    after = _fingerprint(package, ENUM.format(K=100), ENUM_READERS[reader])
    assert before.digest != after.digest
    if "Mode.A" in ENUM_READERS[reader]:  # which member it holds still counts
        other = _fingerprint(package, ENUM.format(K=0), ENUM_READERS[reader].replace("Mode.A", "Mode.B"))
        assert other.digest != before.digest


def test_an_edit_of_an_unrelated_class_keeps_the_fingerprint(package: Path) -> None:
    """The class of the value counts, not every class of its module: the rule is the value's type."""
    helpers = (
        textwrap.dedent(HELPERS["dict subclass"])
        + "\nclass Unrelated(dict):\n    def size(self):\n        return {U}\n"
    )
    before = _fingerprint(package, helpers.format(K=0, U=1), NODE_READS_VALUE)
    after = _fingerprint(package, helpers.format(K=0, U=2), NODE_READS_VALUE)
    assert before.digest == after.digest


def test_a_third_party_or_standard_subclass_counts_as_before(package: Path) -> None:
    """``collections.OrderedDict`` and a namedtuple the standard library makes are not project code: by content."""
    first = _fingerprint(package, "import collections\nVALUE = collections.OrderedDict(a=1)\n", NODE_READS_VALUE)
    assert "fpcls.helpers.VALUE" in first.items
    assert not [item for item in first.items if "OrderedDict" in item]


def test_value_classes_fingerprint_the_same_in_every_process_and_hash_seed(package: Path) -> None:
    for n, case in enumerate(HELPERS):  # a module each: pickle finds each class under its own name
        (package / f"m{n}.py").write_text(textwrap.dedent(HELPERS[case]).format(K=3))
    modules = [f"m{n}" for n in range(len(HELPERS))]
    helpers = f"from fpcls import {', '.join(modules)}\nVALUE = [{', '.join(f'{m}.VALUE' for m in modules)}]\n"
    here = _fingerprint(package, helpers, NODE_READS_VALUE)
    assert here.undigestable == ()
    code = "from kart_core import CodeFingerprinter; import fpcls.nodes as n; print(CodeFingerprinter().fingerprint(n.node).digest)"
    digests = set()
    for seed in ("0", "1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": os.pathsep.join([str(package.parent), *sys.path])}
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        digests.add(done.stdout.split()[-1])
    assert digests == {here.digest}


def test_a_dead_weak_reference_counts_as_gone(package: Path) -> None:
    helpers = """
    import weakref

    class Op:
        pass

    VALUE = weakref.ref(Op())
    """
    fingerprint = _fingerprint(package, helpers, NODE_READS_VALUE)
    assert fingerprint.undigestable == ()  # kart before: listed ("a weakref.ReferenceType that cannot be pickled")


TASK = """
import luigi

import kart_core
from fpcls.helpers import Mode


class Task(kart_core.TaskOnKart):
    mode = luigi.EnumParameter(enum=Mode, default=Mode.A)
    modes = luigi.EnumListParameter(enum=Mode, default=(Mode.B,))

    def run(self):
        self.dump(self.mode.apply(3))


def node(x):
    return Task
"""


def test_an_edit_of_an_enum_a_luigi_parameter_holds_changes_the_task_fingerprint(package: Path) -> None:
    """``luigi.EnumParameter(enum=Mode, default=Mode.A)``: the task's code calls ``self.mode.apply``; Airflow's skew
    check compares ``code_fingerprint(Task)`` (kart before: the parameter counted by its scalar settings only)."""
    from kart_core import code_fingerprint

    def task_fingerprint(helpers: str, nodes: str = TASK) -> str:
        _fingerprint(package, helpers, nodes)
        return code_fingerprint(importlib.import_module("fpcls.nodes").Task)

    before = task_fingerprint(ENUM.format(K=0))
    assert task_fingerprint(ENUM.format(K=0)) == before
    assert task_fingerprint(ENUM.format(K=100)) != before
    assert task_fingerprint(ENUM.format(K=0), TASK.replace("default=Mode.A", "default=Mode.B")) != before


TASK_HOLDING_TASKS = """
import luigi

import kart_core


class Settings(luigi.Config):
    w = luigi.IntParameter(default=2)


SETTINGS = Settings()


class Up(kart_core.TaskOnKart):
    n = luigi.IntParameter(default={N})


class Task(kart_core.TaskOnKart):
    up = kart_core.TaskInstanceParameter(default=Up())

    def run(self):
        self.dump(SETTINGS.w)


def node(x):
    return Task
"""

_TASK_DIGEST = """
import sys
import fpcls.nodes as n
from kart_core import code_fingerprint
if sys.argv[1:] == ["used"]:  # the process used the default and the config: kart's and luigi's memos filled
    n.Task().make_unique_id(); n.Task.up._default.make_unique_id(); n.Task().output(); hash(n.SETTINGS)
print(code_fingerprint(n.Task))
"""


def test_a_task_instance_held_as_a_value_counts_by_its_class_and_parameters(package: Path) -> None:
    """A ``TaskInstanceParameter(default=Up())`` and a module-level ``luigi.Config()`` instance: the same fingerprint
    in every process and hash seed, used or not (luigi's ``_Task__hash`` follows the seed, kart's memos fill on use;
    kart before this: another digest per seed, which Airflow's skew check would report), and the default's
    parameters count."""
    from kart_core import code_fingerprint

    _fingerprint(package, "", TASK_HOLDING_TASKS.format(N=1))
    here = code_fingerprint(importlib.import_module("fpcls.nodes").Task)
    digests = set()
    for seed, used in (("0", ""), ("1", "used"), ("4242", "")):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": os.pathsep.join([str(package.parent), *sys.path])}
        command = [sys.executable, "-c", _TASK_DIGEST, *([used] if used else [])]
        digests.add(subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout.split()[-1])
    assert digests == {here}
    _fingerprint(package, "", TASK_HOLDING_TASKS.format(N=2))
    assert code_fingerprint(importlib.import_module("fpcls.nodes").Task) != here


PYDANTIC = """
import pydantic


class Cfg(pydantic.BaseModel):
    w: int = {W}
    name: str = "a"

    @pydantic.field_validator("name")
    @classmethod
    def upper(cls, value):
        return value.upper() + "{SUFFIX}"

    def scale(self, x):
        return x * self.w + {K}


VALUE = Cfg()
"""

_PYDANTIC_DIGEST = """
import sys
import fpcls.nodes as n
from kart_core import CodeFingerprinter
if sys.argv[1:] == ["used"]:  # an instance assigned to: pydantic fills its class's setattr handlers
    n.helpers.Cfg().w = 3
print(CodeFingerprinter().fingerprint(n.node).digest)
"""


def test_a_pydantic_model_fingerprints_the_same_in_every_process(package: Path) -> None:
    """pydantic v2's core schema names the model class by its address, so the class's fingerprint differed in every
    process (Airflow's skew check, a Kedro node never cached); it and what pydantic builds from it no longer count.
    The fields' defaults, the validators and the methods still do."""
    base = {"W": 2, "SUFFIX": "", "K": 0}
    here = _fingerprint(package, PYDANTIC.format(**base), NODE_READS_VALUE)
    digests = set()
    for seed, used in (("0", ""), ("1", "used"), ("4242", "")):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": os.pathsep.join([str(package.parent), *sys.path])}
        command = [sys.executable, "-c", _PYDANTIC_DIGEST, *([used] if used else [])]
        digests.add(subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout.split()[-1])
    assert digests == {here.digest}
    for edit in ({"W": 3}, {"SUFFIX": "!"}, {"K": 1}):
        assert _fingerprint(package, PYDANTIC.format(**{**base, **edit}), NODE_READS_VALUE).digest != here.digest
