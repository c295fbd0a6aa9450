"""The code fingerprint follows modules imported inside a function, in every form, like module globals.

A submodule is an attribute of its package only once something imported it: each helper here reaches
``fpimp.ops`` (or ``fpimp.sub.deep``) that nobody imported before the fingerprint, as in a fresh
``kedro run`` where the helper's own import runs only when the node does.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from kart_core import CodeFingerprinter

OPS = """
K = 1


def _plain(v):
    return v + 1


OPS = {"plain": _plain}
LST = [_plain]
"""

DEEP = "DEEP = 1\n"

HELPERS = """
import fpimp.sub


def inner_const(v):
    from fpimp import ops
    return v * ops.K


def inner_dict(v):
    from fpimp import ops
    return ops.OPS["plain"](v)


def inner_list(v):
    from fpimp import ops
    return ops.LST[0](v)


def relative(v):
    from . import ops
    return v * ops.K


def alias_from(v):
    from fpimp import ops as o
    return v * o.K


def alias_import(v):
    import fpimp.ops as o
    return v * o.K


def nested_function(v):
    from fpimp import ops

    def inner():
        return v * ops.K

    return inner()


def comprehension(values):
    from fpimp import ops
    return [ops.LST[0](v) for v in values]


def lambda_(v):
    from fpimp import ops
    return (lambda: ops.OPS["plain"](v))()


def global_chain(v):
    return v * fpimp.sub.deep.DEEP


def local_chain(v):
    import fpimp as p
    return v * p.sub.deep.DEEP


def dynamic(v, name):
    from fpimp import ops
    return getattr(ops, name)(v)


def untouched(v):
    from fpimp import sub
    return v
"""

ALL = (
    "inner_const",
    "inner_dict",
    "inner_list",
    "relative",
    "alias_from",
    "alias_import",
    "nested_function",
    "comprehension",
    "lambda_",
    "global_chain",
    "local_chain",
    "dynamic",
    "untouched",
)
# getattr(ops, name): every attribute of ops counts
READ_K = {"inner_const", "relative", "alias_from", "alias_import", "nested_function", "dynamic"}
CALL_PLAIN = {"inner_dict", "inner_list", "comprehension", "lambda_", "dynamic"}


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A package ``fpimp`` (ops, sub.deep, helpers) on sys.path, installed by nobody: project code."""
    root = tmp_path / "src" / "fpimp"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "ops.py").write_text(OPS)
    (root / "sub" / "__init__.py").write_text("")
    (root / "sub" / "deep.py").write_text(DEEP)
    (root / "helpers.py").write_text(HELPERS)
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    # Edits within one second keep the file's size: a .pyc written at the first import would be reused.
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    yield root
    _forget()


def _forget() -> None:
    for name in [n for n in sys.modules if n == "fpimp" or n.startswith("fpimp.")]:
        del sys.modules[name]


def _helpers() -> ModuleType:
    """A fresh import of fpimp.helpers alone (fpimp.ops and fpimp.sub.deep not imported)."""
    _forget()
    importlib.invalidate_caches()
    helpers = importlib.import_module("fpimp.helpers")
    assert "fpimp.ops" not in sys.modules and "fpimp.sub.deep" not in sys.modules
    return helpers


def _digests() -> dict[str, str]:
    helpers = _helpers()
    fingerprinter = CodeFingerprinter()
    return {name: fingerprinter.fingerprint(getattr(helpers, name)).digest for name in ALL}


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


@pytest.mark.parametrize(
    ("file", "old", "new", "changed"),
    [
        ("ops.py", "K = 1", "K = 7", READ_K),  # a constant
        ("ops.py", "return v + 1", "return v + 2", CALL_PLAIN),  # a function reached through a dict or a list
        ("sub/deep.py", "DEEP = 1", "DEEP = 2", {"global_chain", "local_chain"}),  # pkg.sub.deep.DEEP
    ],
)
def test_an_edit_in_a_module_imported_inside_a_function_changes_exactly_the_helpers_reading_it(
    package: Path, file: str, old: str, new: str, changed: set[str]
) -> None:
    before = _digests()
    _edit(package / file, old, new)
    after = _digests()
    assert {name for name in ALL if before[name] != after[name]} == changed


def test_the_items_name_what_the_function_reads_from_the_module(package: Path) -> None:
    fingerprinter = CodeFingerprinter()
    helpers = _helpers()
    assert "fpimp.ops.K" in fingerprinter.fingerprint(helpers.relative).items
    assert "fpimp.ops._plain" in fingerprinter.fingerprint(helpers.inner_dict).items
    assert "fpimp.sub.deep.DEEP" in fingerprinter.fingerprint(helpers.local_chain).items


def test_the_digest_does_not_depend_on_whether_the_module_was_imported_first(package: Path) -> None:
    fresh = _digests()
    _helpers()
    importlib.import_module("fpimp.ops")
    importlib.import_module("fpimp.sub.deep")
    fingerprinter = CodeFingerprinter()
    helpers = sys.modules["fpimp.helpers"]
    assert {name: fingerprinter.fingerprint(getattr(helpers, name)).digest for name in ALL} == fresh


def test_a_name_that_is_no_submodule_imports_nothing(package: Path) -> None:
    (package / "helpers.py").write_text(
        "import fpimp\n\n\ndef f(v):\n    from fpimp import missing_name\n    return fpimp.nothing.here\n"
    )
    CodeFingerprinter().fingerprint(_helpers().f)
    assert not {name for name in sys.modules if name.startswith("fpimp.") and name != "fpimp.helpers"}


STDLIB_ONLY = """
import json
import os


def dumps(v):
    return json.dumps(v) + os.sep


def shadowing(fpimp):
    return fpimp.sub


def held_through_a_library(v):
    return json.fpimp_ops  # a standard module's attribute that is a project module (set by the test)
"""


def test_skipping_the_import_scan_of_code_that_imports_nothing_changes_no_digest(
    package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Code without an import statement whose names reach no project module global is not scanned
    (``_Visit._imports_matter``): its fingerprint is the one a scan gives, and code that imports or reaches a
    project module through a global (``global_chain``) is still scanned."""
    (package / "plain.py").write_text(STDLIB_ONLY)
    fingerprint = importlib.import_module("kart_core.fingerprint")
    plain_names = ("dumps", "shadowing", "held_through_a_library")

    def digests() -> dict[str, str]:
        found = _digests()
        plain = importlib.import_module("fpimp.plain")
        monkeypatch.setattr(json, "fpimp_ops", importlib.import_module("fpimp.ops"), raising=False)
        found.update({name: CodeFingerprinter().fingerprint(getattr(plain, name)).digest for name in plain_names})
        return found

    skipped = digests()
    plain, helpers = sys.modules["fpimp.plain"], sys.modules["fpimp.helpers"]
    visit = fingerprint._Visit(CodeFingerprinter())
    assert not visit._imports_matter(plain.dumps.__code__, vars(plain))
    assert not visit._imports_matter(plain.shadowing.__code__, vars(plain))  # a local named like a package
    assert visit._imports_matter(plain.held_through_a_library.__code__, vars(plain))  # json.fpimp_ops: a module
    assert visit._imports_matter(helpers.global_chain.__code__, vars(helpers))  # fpimp: a project module global
    assert visit._imports_matter(helpers.lambda_.__code__, vars(helpers))  # an import statement
    monkeypatch.setattr(fingerprint._Visit, "_imports_matter", lambda self, code, globals_: True)
    assert digests() == skipped
