"""code_fingerprint: changes with what runs (methods, parameters, constants, bases), not with comments or lines."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
import types
from collections.abc import Iterator
from pathlib import Path

import luigi
import pytest

import kart_core

SOURCE = '''
import luigi
import kart_core


class Mixin:
    def helper(self):
        return 1


class Fp(Mixin, kart_core.TaskOnKart):
    """Docstring."""

    size = luigi.IntParameter(default=3)
    kind = "a"

    def run(self):
        # a comment
        self.dump({"x", "y"} if self.size in {1, 2} else [i * self.helper() for i in range(self.size)])
'''


def _fingerprint(source: str, tmp_path: Path, name: str = "fp_tasks") -> str:
    module = types.ModuleType(name)
    module.__file__ = str(tmp_path / f"{name}.py")
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return kart_core.code_fingerprint(module.Fp)


def test_same_code_same_fingerprint_whatever_the_comments_lines_and_docstrings(tmp_path: Path) -> None:
    base = _fingerprint(SOURCE, tmp_path)
    assert len(base) == 16 and int(base, 16) >= 0
    moved = "\n\n\n" + SOURCE.replace("# a comment", "# another comment").replace('"""Docstring."""', '"""Other."""')
    assert _fingerprint(moved, tmp_path) == base


@pytest.mark.parametrize(
    "old, new",
    [
        ("range(self.size)", "range(self.size + 1)"),  # run() body
        ("default=3", "default=4"),  # parameter default
        ("luigi.IntParameter(default=3)", "luigi.IntParameter(default=3, significant=False)"),
        ('kind = "a"', 'kind = "b"'),  # class constant
        ("return 1", "return 2"),  # a mixin's method
    ],
)
def test_a_change_to_what_runs_changes_the_fingerprint(old: str, new: str, tmp_path: Path) -> None:
    assert old in SOURCE
    assert _fingerprint(SOURCE.replace(old, new), tmp_path) != _fingerprint(SOURCE, tmp_path)


def test_the_fingerprint_is_the_same_in_another_process_and_hash_seed(tmp_path: Path) -> None:
    (tmp_path / "fp_tasks.py").write_text(textwrap.dedent(SOURCE))
    script = "import fp_tasks, kart_core; print(kart_core.code_fingerprint(fp_tasks.Fp))"
    outputs = set()
    for seed in ("0", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr[-2000:]
        outputs.add(done.stdout.strip().splitlines()[-1])
    assert len(outputs) == 1


def test_running_a_task_does_not_change_its_fingerprint(tmp_path: Path) -> None:
    class Runs(kart_core.TaskOnKart[int]):
        def run(self) -> None:
            self.dump(1)

    before = kart_core.code_fingerprint(Runs)
    kart_core.build(Runs(workspace_directory=str(tmp_path)))
    assert kart_core.code_fingerprint(Runs) == before
    with pytest.raises(TypeError, match="takes a class"):
        kart_core.code_fingerprint(Runs())  # type: ignore[arg-type]


HELPER_PACKAGE = {
    "__init__.py": "",
    "helpers.py": "def double(x):\n    return 2 * x\n\n\ndef named(x):\n    return x + 100\n",
    "other.py": "def spare(x):\n    return x - 1\n",
    "tasks.py": """
import importlib

import kart_core
from fpskew import helpers

TABLE = {"spare": "spare"}


class Direct(kart_core.TaskOnKart):
    def run(self):
        self.dump(helpers.double(1))


class ByGetattr(kart_core.TaskOnKart):
    def run(self):
        self.dump(getattr(helpers, "na" + "med")(1))


class ByImportModule(kart_core.TaskOnKart):
    def run(self):
        self.dump(importlib.import_module("fpskew.other").spare(1))


def _spare(x):
    return x


class ByGlobals(kart_core.TaskOnKart):
    def run(self):
        self.dump(globals()["_" + TABLE["spare"]](1))
""",
}


@pytest.fixture
def fpskew(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A package ``fpskew`` on sys.path: helpers, another module, and tasks that reach them in four ways."""
    package = tmp_path / "fpskew"
    package.mkdir()
    for name, text in HELPER_PACKAGE.items():
        (package / name).write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # an edit within the same second must be seen
    yield package
    for name in [n for n in sys.modules if n == "fpskew" or n.startswith("fpskew.")]:
        del sys.modules[name]


def _fingerprints() -> dict[str, str]:
    for name in [n for n in sys.modules if n == "fpskew" or n.startswith("fpskew.")]:
        del sys.modules[name]
    tasks = importlib.import_module("fpskew.tasks")
    return {
        name: kart_core.code_fingerprint(getattr(tasks, name))
        for name in ("Direct", "ByGetattr", "ByImportModule", "ByGlobals")
    }


@pytest.mark.parametrize(
    "module, old, new, changed",
    [
        # getattr(helpers, ...): every attribute of helpers counts. globals()[...]: every name of the
        # task's module counts, and with it the other task classes and what they reach.
        ("helpers.py", "return 2 * x", "return 3 * x", {"Direct", "ByGetattr", "ByGlobals"}),
        ("helpers.py", "return x + 100", "return x + 101", {"ByGetattr", "ByGlobals"}),  # a computed name
        ("other.py", "return x - 1", "return x - 2", {"ByImportModule", "ByGlobals"}),  # import_module("...")
        ("tasks.py", "    return x\n", "    return x * 5\n", {"ByGlobals"}),  # only globals() reaches _spare
    ],
)
def test_an_edit_in_a_helper_module_changes_the_tasks_that_reach_it(
    fpskew: Path, module: str, old: str, new: str, changed: set[str]
) -> None:
    before = _fingerprints()
    path = fpskew / module
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new))
    after = _fingerprints()
    assert {name for name in before if before[name] != after[name]} == changed


class Fp2(kart_core.TaskOnKart[int]):
    """A task whose parameters (a luigi and a kart parameter) count by their settings."""

    size = luigi.IntParameter(default=3)
    upstream = kart_core.TaskInstanceParameter(default=None)

    def run(self) -> None:
        self.dump(self.size)


def test_kart_and_luigi_count_by_their_versions_not_their_source() -> None:
    fingerprint = kart_core.CodeFingerprinter(kart_core.ModuleClassifier([__name__])).fingerprint(Fp2)
    assert f"{__name__}.Fp2.run" in fingerprint.items
    assert all(item.startswith(f"{__name__}.Fp2") for item in fingerprint.items)  # TaskOnKart's code is not walked
    assert {package.split("==")[0] for package in fingerprint.packages} >= {"kart-suite", "luigi", "python"}
