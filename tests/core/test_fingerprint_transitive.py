"""The code fingerprint: follows project code transitively, ignores formatting, versions third-party code.

Each test writes real modules into tmp_path and imports them; an edit is a rewrite plus a fresh import.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from kart_core import CodeFingerprinter, ModuleClassifier, code_version

fingerprint_module = importlib.import_module("kart_core.fingerprint")  # the module (private helpers), not the facade

HELPERS = """
UNIT = 1.0
TABLE = {"a": 1, "b": 2}


class Rounder:
    step = 1

    def apply(self, value):
        return round(value, self.step)


def inner(value):
    return value / UNIT


def helper(value):
    return inner(value) * 2
"""

NODES = '''
from fpdemo import helpers
from fpdemo.helpers import Rounder, helper


def uses_helper(x):
    """Doc."""
    return helper(x)


def uses_module_attribute(x):
    return helpers.inner(x)


def uses_class(x):
    return Rounder().apply(x)


def uses_table(key):
    return helpers.TABLE[key]


def with_default(x, rounder=Rounder()):
    return rounder.apply(x)


def make_closure(scale):
    def closure(x):
        return helper(x) * scale
    return closure


def recursive(n):
    return recursive(n - 1) if n else 0


def imports_inside(x):
    import fpdemo.helpers as inside
    return inside.inner(x)


def untouched(x):
    return x + 1
'''


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A package ``fpdemo`` (helpers, nodes) on sys.path, installed by nobody: project code."""
    package = tmp_path / "src" / "fpdemo"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "helpers.py").write_text(HELPERS)
    (package / "nodes.py").write_text(NODES)
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    # Edits within one second keep the file's size: a .pyc written at the first import would be reused.
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # this process: the variable is read at start-up only
    yield package
    _forget("fpdemo")


def _forget(prefix: str) -> None:
    for name in [n for n in sys.modules if n == prefix or n.startswith(prefix + ".")]:
        del sys.modules[name]


def _nodes() -> ModuleType:
    """A fresh import of fpdemo (as a new ``kedro run`` process would see it)."""
    _forget("fpdemo")
    importlib.invalidate_caches()
    return importlib.import_module("fpdemo.nodes")


def _digests(*names: str) -> dict[str, str]:
    nodes = _nodes()
    fingerprinter = CodeFingerprinter()
    return {name: fingerprinter.fingerprint(getattr(nodes, name)).digest for name in names}


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


ALL = (
    "uses_helper",
    "uses_module_attribute",
    "uses_class",
    "uses_table",
    "with_default",
    "recursive",
    "imports_inside",
    "untouched",
)


def _changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {name for name in before if before[name] != after[name]}


def test_items_name_every_piece_of_project_code_reached(project: Path) -> None:
    fingerprint = CodeFingerprinter().fingerprint(_nodes().uses_helper)
    assert list(fingerprint.items) == [
        "fpdemo.helpers.UNIT",
        "fpdemo.helpers.helper",
        "fpdemo.helpers.inner",
        "fpdemo.nodes.uses_helper",
    ]
    assert fingerprint.packages == (f"python=={sys.version_info.major}.{sys.version_info.minor}",)


def test_comments_formatting_and_docstrings_do_not_count(project: Path) -> None:
    before = _digests(*ALL)
    _edit(
        project / "helpers.py",
        "def inner(value):\n    return value / UNIT",
        "def inner(value):  # why\n    '''Doc.'''\n\n    return (value\n            / UNIT)",
    )
    _edit(project / "nodes.py", '    """Doc."""\n', "    # just a comment\n")
    (project / "nodes.py").write_text("\n\n# moved down two lines\n" + (project / "nodes.py").read_text())
    assert _changed(before, _digests(*ALL)) == set()


@pytest.mark.parametrize(
    ("old", "new", "changed"),
    [
        ("return inner(value) * 2", "return inner(value) * 3", {"uses_helper"}),  # a helper
        ("return value / UNIT", "return value / UNIT / 10", {"uses_helper", "uses_module_attribute", "imports_inside"}),
        ("return round(value, self.step)", "return round(value, self.step) + 1", {"uses_class", "with_default"}),
        ("step = 1", "step = 2", {"uses_class", "with_default"}),  # a class attribute
        ("UNIT = 1.0", "UNIT = 2.0", {"uses_helper", "uses_module_attribute", "imports_inside"}),  # a constant
        ('"b": 2', '"b": 3', {"uses_table"}),
    ],
)
def test_an_edit_changes_exactly_the_nodes_that_reach_it(project: Path, old: str, new: str, changed: set[str]) -> None:
    before = _digests(*ALL)
    _edit(project / "helpers.py", old, new)
    assert _changed(before, _digests(*ALL)) == changed


def test_closures_defaults_and_partial_arguments_count(project: Path) -> None:
    nodes = _nodes()
    fingerprinter = CodeFingerprinter()
    assert (
        fingerprinter.fingerprint(nodes.make_closure(2)).digest
        != fingerprinter.fingerprint(nodes.make_closure(3)).digest
    )
    assert "fpdemo.helpers.helper" in fingerprinter.fingerprint(nodes.make_closure(2)).items
    one, two = functools.partial(nodes.untouched, 1), functools.partial(nodes.untouched, 2)
    assert fingerprinter.fingerprint(one).digest != fingerprinter.fingerprint(two).digest
    assert "fpdemo.helpers.Rounder.apply" in fingerprinter.fingerprint(nodes.with_default).items


def test_the_digest_is_the_same_in_another_process_and_another_checkout(project: Path, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere" / "checkout"
    other.mkdir(parents=True)
    subprocess.run(["cp", "-r", str(project.parent), str(other)], check=True)
    code = (
        "import sys; from kart_core import CodeFingerprinter; import fpdemo.nodes as n; "
        "print(CodeFingerprinter().fingerprint(n.uses_table).digest)"
    )
    digests = set()
    for root, seed in [(project.parent, "1"), (other / "src", "2")]:
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": os.pathsep.join([str(root), *sys.path])}
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=root
        )
        digests.add(done.stdout.split()[-1])
    assert digests == {_digests("uses_table")["uses_table"]}


def test_an_explicit_code_version_replaces_the_code(project: Path) -> None:
    nodes = _nodes()
    pinned = code_version("7")(nodes.uses_helper)
    fingerprinter = CodeFingerprinter()
    assert fingerprinter.fingerprint(pinned).items == {"code_version": "7"}
    assert fingerprinter.fingerprint(nodes.untouched, version="7").digest == fingerprinter.fingerprint(pinned).digest
    assert fingerprinter.fingerprint(nodes.untouched, version="8").digest != fingerprinter.fingerprint(pinned).digest
    with pytest.raises(ValueError, match="non-empty version"):
        code_version("")


def _distribution(site: Path, name: str, version: str, editable: bool = False) -> None:
    (site / name).mkdir(parents=True, exist_ok=True)
    (site / name / "__init__.py").write_text("def f(x):\n    return x\n")
    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "top_level.txt").write_text(f"{name}\n")
    if editable:
        (info / "direct_url.json").write_text('{"url": "file:///src", "dir_info": {"editable": true}}')


def test_third_party_code_counts_by_version_and_editable_installs_as_project_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    _distribution(site, "fpthird", "1.4.2")
    _distribution(site, "fpeditable", "0.1", editable=True)
    monkeypatch.syspath_prepend(str(site))
    try:
        third, editable = importlib.import_module("fpthird"), importlib.import_module("fpeditable")
        classifier = ModuleClassifier()
        assert classifier.version_of("fpthird.sub") == "fpthird==1.4.2"
        assert classifier.version_of("fpeditable") is None
        assert classifier.version_of("json") == f"python=={sys.version_info.major}.{sys.version_info.minor}"
        assert ModuleClassifier(own_packages=["fpthird"]).version_of("fpthird") is None
        fingerprint = CodeFingerprinter().fingerprint(third.f)
        assert "fpthird==1.4.2" in fingerprint.packages and fingerprint.items == {}
        assert "fpeditable.f" in CodeFingerprinter().fingerprint(editable.f).items
    finally:
        _forget("fpthird")
        _forget("fpeditable")


def test_installed_versions_are_read_once_per_install_state_and_follow_an_upgrade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new classifier (one per Kedro run) answers from the process's reads of the installs (importlib.metadata
    is not asked again: its search and METADATA parse cost ~2 ms per distribution), until an install, upgrade or
    uninstall changes a ``sys.path`` folder: then the distribution is read anew."""
    site = tmp_path / "site"
    _distribution(site, "fpthird", "1.4.2")
    _distribution(site, "fpeditable", "0.1", editable=True)
    monkeypatch.syspath_prepend(str(site))
    asked: list[str] = []
    real = importlib.metadata.distribution

    def counted(name: str) -> importlib.metadata.Distribution:
        asked.append(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "distribution", counted)
    try:
        importlib.import_module("fpthird")
        importlib.import_module("fpeditable")
        assert ModuleClassifier().version_of("fpthird") == "fpthird==1.4.2"
        assert ModuleClassifier().version_of("fpeditable") is None
        assert asked.count("fpthird") == 1 and asked.count("fpeditable") == 1
        assert ModuleClassifier().version_of("fpthird") == "fpthird==1.4.2"  # a second run: read before
        assert ModuleClassifier().version_of("fpeditable") is None
        assert asked.count("fpthird") == 1 and asked.count("fpeditable") == 1
        # pip's upgrade: the old dist-info removed, the new one written (the folder's time moves with it)
        shutil.rmtree(site / "fpthird-1.4.2.dist-info")
        before = os.stat(site).st_mtime_ns
        info = site / "fpthird-1.5.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fpthird\nVersion: 1.5.0\n")
        (info / "top_level.txt").write_text("fpthird\n")
        os.utime(site, ns=(before + 1_000_000, before + 1_000_000))  # a coarse clock may not have moved meanwhile
        assert ModuleClassifier().version_of("fpthird") == "fpthird==1.5.0"
        shutil.rmtree(info)  # uninstalled: on sys.path, installed by nobody
        os.utime(site, ns=(before + 2_000_000, before + 2_000_000))
        assert ModuleClassifier().version_of("fpthird") is None
    finally:
        _forget("fpthird")
        _forget("fpeditable")


@pytest.mark.parametrize(
    ("metadata", "version", "plain"),
    [
        ("Metadata-Version: 2.1\nName: fpthird\nVersion: 1.4.2\n\nName: body\nVersion: 9\n", "1.4.2", True),
        ("metadata-version: 2.1\nNAME: fpthird\nversion:\t1.4.2 \nVersion: 2\n", "1.4.2 ", True),  # first, any case
        # folded: the parser's value, which importlib.metadata dedents
        ("Metadata-Version: 2.1\nName: fpthird\nVersion: 1.4\n .2\n", "       1.4\n.2", False),
        ("Metadata-Version: 2.1\r\nName: fpthird\r\nVersion: 1.4.2\r\n", "1.4.2", False),  # CRLF line ends
        ("Metadata-Version: 2.1\nSummary line\nName: fpthird\nVersion: 1.4.2\n", None, False),  # headers end early
    ],
)
def test_a_version_is_read_from_the_metadata_as_importlib_metadata_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, metadata: str, version: str | None, plain: bool
) -> None:
    """The classifier reads Name and Version from a metadata file's header block without parsing the whole file
    (``fingerprint._header_fields``); whatever it reads is what ``Distribution.metadata`` says, for plain and odd
    files alike (a field that the parser would fold, CRLF line ends, a header block ended by a stray line)."""
    site = tmp_path / "site"
    _distribution(site, "fpthird", "0")
    info = site / "fpthird-0.dist-info"
    (info / "METADATA").write_bytes(metadata.encode())
    # The standard library's own reading; importlib.metadata.distribution answers with the importlib_metadata
    # backport's once a library in this process imported it (which reads folded fields and absent ones otherwise).
    standard = importlib.metadata.PathDistribution(info)
    assert standard.metadata["Version"] == version  # the case is what it claims to be
    assert (fingerprint_module._header_fields(metadata) is not None) == plain  # else parsed whole
    assert fingerprint_module._name_and_version(standard) == (standard.metadata["Name"] or "", version)
    monkeypatch.syspath_prepend(str(site))
    try:
        importlib.import_module("fpthird")
        found = importlib.metadata.distribution("fpthird")
        if version is not None:
            assert ModuleClassifier().version_of("fpthird") == f"fpthird=={found.metadata['Version']}"
    finally:
        _forget("fpthird")


def test_the_importlib_metadata_backport_s_readings_are_followed_once_a_library_imports_it(tmp_path: Path) -> None:
    """Importing ``importlib_metadata`` (the backport; pulled in by several libraries) puts its finder first for
    ``importlib.metadata.distribution`` and its ``metadata[...]`` raises KeyError for a field the file lacks: the
    classifier reads what that distribution says (a folded Version as the backport unfolds it) and a metadata file
    without Name or Version neither crashes it nor names another version. In a new process: the import changes the
    process for good."""
    cases = {
        "fpplain": "Metadata-Version: 2.1\nName: fpplain\nVersion: 1.4.2\n",
        "fpfolded": "Metadata-Version: 2.1\nName: fpfolded\nVersion: 1.4\n .2\n",
        "fpcut": "Metadata-Version: 2.1\nSummary line\nName: fpcut\nVersion: 1.4.2\n",
    }
    site = tmp_path / "site"
    for name, metadata in cases.items():
        _distribution(site, name, "0")
        (site / f"{name}-0.dist-info" / "METADATA").write_text(metadata)
    script = textwrap.dedent(f"""
        import importlib.metadata, json, sys
        import importlib_metadata
        sys.path.insert(0, {str(site)!r})
        from kart_core import fingerprint
        out = {{}}
        for name in {sorted(cases)!r}:
            found = importlib.metadata.distribution(name)
            metadata = found.metadata
            expected = [metadata["Name"] if "Name" in metadata else "", metadata.get("Version")]
            out[name] = [type(found).__module__, list(fingerprint._name_and_version(found)), expected,
                         fingerprint.ModuleClassifier().version_of(name)]
        print(json.dumps(out))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    assert {name: found[0] for name, found in out.items()} == dict.fromkeys(cases, "importlib_metadata")
    for name, (_, read, expected, _) in out.items():
        assert read == expected, name
    assert out["fpplain"][3] == "fpplain==1.4.2"
    assert out["fpfolded"][3] == f"fpfolded=={out['fpfolded'][2][1]}"
    assert out["fpcut"][1] == ["", None] and out["fpcut"][3] == "fpcut==unknown"


def test_every_installed_distribution_s_name_and_version_are_read_as_importlib_metadata_reads_them() -> None:
    for found in importlib.metadata.distributions():
        metadata = found.metadata
        assert fingerprint_module._name_and_version(found) == (metadata["Name"] or "", metadata["Version"])


def test_recursion_and_cycles_terminate(project: Path) -> None:
    (project / "cycle.py").write_text(
        textwrap.dedent("""
        def ping(n):
            return pong(n - 1) if n else 0

        def pong(n):
            return ping(n - 1) if n else 1

        LOOP = []
        LOOP.append(LOOP)

        def loop():
            return LOOP
    """)
    )
    cycle = importlib.import_module("fpdemo.cycle")
    fingerprinter = CodeFingerprinter()
    assert set(fingerprinter.fingerprint(cycle.ping).items) == {"fpdemo.cycle.ping", "fpdemo.cycle.pong"}
    assert fingerprinter.fingerprint(cycle.ping).digest == CodeFingerprinter().fingerprint(cycle.ping).digest
    assert "fpdemo.cycle.LOOP" in fingerprinter.fingerprint(cycle.loop).items
    assert "fpdemo.nodes.recursive" in fingerprinter.fingerprint(_nodes().recursive).items


DISPATCH = """
import functools
import json


@functools.singledispatch
def fmt(value):
    return value


@fmt.register(float)
def _fmt_float(value):
    return value * 1


class Scaler:
    @functools.singledispatchmethod
    def scale(self, value):
        return value

    @scale.register(int)
    def _scale_int(self, value):
        return value * 2
"""

DISPATCH_NODES = """
from fpdemo.dispatch import Scaler, fmt


def formats(x):
    return fmt(x)


def scales(x):
    return Scaler().scale(x)


def plain(x):
    return x
"""


@pytest.mark.parametrize(
    ("old", "new", "changed"),
    [
        ("return value * 1\n", "return value * 1000\n", {"formats"}),  # a registered overload
        ("@fmt.register(float)", "@fmt.register(int)", {"formats"}),  # the type it is registered for
        ("return value * 2\n", "return value * 3\n", {"scales"}),  # a singledispatchmethod overload
        ("    return value\n\n\n@fmt", "    return str(value)\n\n\n@fmt", {"formats"}),  # the generic base
    ],
)
def test_singledispatch_overloads_count(project: Path, old: str, new: str, changed: set[str]) -> None:
    # attacker at3 A2: an edited @fmt.register overload left a Kedro node cached with the old result
    (project / "dispatch.py").write_text(DISPATCH)
    (project / "nodes.py").write_text(DISPATCH_NODES)
    names = ("formats", "scales", "plain")
    before = _digests(*names)
    assert _digests(*names) == before  # stable between fresh imports
    _edit(project / "dispatch.py", old, new)
    assert _changed(before, _digests(*names)) == changed


LAZY = """
from fpdemo.dispatch import fmt


@fmt.register(str)
def _fmt_str(value):
    return value + "-v1"
"""

PLUGIN = """
import importlib
import importlib.metadata


def load_plugins():
    importlib.import_module("fpdemo.lazy")
"""

LAZY_NODES = """
from fpdemo import plugin
from fpdemo.dispatch import fmt


def lazily(x):
    plugin.load_plugins()
    return fmt(x)
"""


def test_an_overload_registered_by_a_module_the_code_imports_counts_whatever_was_imported_first(
    project: Path,
) -> None:
    # attacker at4 B3: the registry was read before the walk imported the module that registers an overload
    (project / "dispatch.py").write_text(DISPATCH)
    (project / "lazy.py").write_text(LAZY)
    (project / "plugin.py").write_text(PLUGIN)
    (project / "nodes.py").write_text(LAZY_NODES)

    def digest(preimport: bool) -> str:
        nodes = _nodes()
        if preimport:
            importlib.import_module("fpdemo.lazy")
        return CodeFingerprinter().fingerprint(nodes.lazily).digest

    lazy, pre = digest(False), digest(True)
    assert lazy == pre
    _edit(project / "lazy.py", '"-v1"', '"-v2"')
    assert digest(False) == digest(True) != lazy


def test_a_registry_that_grew_later_in_the_process_is_read_again(project: Path) -> None:
    (project / "dispatch.py").write_text(DISPATCH)
    (project / "nodes.py").write_text(DISPATCH_NODES)
    nodes = _nodes()
    fingerprinter = CodeFingerprinter()
    before = fingerprinter.fingerprint(nodes.formats).digest
    dispatch = importlib.import_module("fpdemo.dispatch")
    dispatch.fmt.register(bytes, lambda value: value * 2)
    assert fingerprinter.fingerprint(nodes.formats).digest != before


PLUGINS_BASE = """
class Step:
    name = ""

    def apply(self, x):
        return x
"""

PLUGINS_STEPS = """
from fpdemo.plugbase import Step


class Double(Step):
    name = "double"

    def apply(self, x):
        return 2 * x


class Scaled(Double):
    name = "scaled"

    def apply(self, x):
        return 10 * x


def triple(x):
    return 3 * x
"""

PLUGINS_HELPERS = """
import inspect


def find(base, name):
    return {c.name: c for c in base.__subclasses__()}[name]


def functions_of(module):
    return dict(inspect.getmembers(module, inspect.isfunction))


def lookup(module, name):
    return getattr(module, name)


def through(module, name):
    return lookup(module, name)
"""

PLUGINS_NODES = """
import functools
import json
import inspect

from fpdemo import plugbase, plugsteps  # noqa: F401 (plugsteps registers the steps by subclassing)
from fpdemo.plughelp import find, functions_of, lookup, through
from fpdemo.plugbase import Step


def by_helper_subclass(x):
    return find(Step, "double")().apply(x)


def by_helper_members(x):
    return functions_of(plugsteps)["triple"](x)


def by_helper_getattr(x):
    return lookup(plugsteps, "triple")(x)


def by_helper_of_helper(x):
    return through(plugsteps, "triple")(x)


def by_subclass(x):
    return {c.name: c for c in Step.__subclasses__()}["double"]().apply(x)


def by_subclass_of_module_attribute(x):
    return {c.name: c for c in plugbase.Step.__subclasses__()}["double"]().apply(x)


def by_members(x):
    return dict(inspect.getmembers(plugsteps, inspect.isfunction))["triple"](x)


def by_attrgetter(x):
    import operator

    return operator.attrgetter("triple")(plugsteps)(x)


def by_getattribute(x):
    return plugsteps.__getattribute__("triple")(x)


class Holder:
    mod = plugsteps

    def get(self, name):
        return getattr(self.mod, name)


class ByDict:
    module = plugsteps

    def apply(self, x):
        return self.module.__dict__["triple"](x)


FIND = functools.partial(getattr, plugsteps)


def by_class_attribute(x):
    return Holder().get("triple")(x)


def by_class_attribute_dict(x):
    return ByDict().apply(x)


def by_partial_getattr(x):
    return FIND("triple")(x)


class ByInstance:
    def __init__(self):
        self.m = plugsteps

    def get(self, name):
        return getattr(self.m, name)


def by_instance_attribute(x):
    return ByInstance().get("triple")(x)


def _module():
    return plugsteps


def by_returned_module(x):
    return getattr(_module(), "triple")(x)


class ByImportInBody:
    def __init__(self):
        from fpdemo import plugsteps as steps

        self.m = steps

    def get(self, name):
        return getattr(self.m, name)


def by_import_in_body(x):
    return ByImportInBody().get("triple")(x)


class ByChain:
    def __init__(self):
        import fpdemo.plugsteps

        self.m = fpdemo.plugsteps

    def get(self, name):
        return getattr(self.m, name)


def by_attribute_chain(x):
    return ByChain().get("triple")(x)


def names_step_only(x):
    return Step().apply(x)
"""


_SUBCLASS_READERS = {"by_subclass", "by_subclass_of_module_attribute", "by_helper_subclass"}
_MODULE_READERS = {
    "by_members",
    "by_helper_members",
    "by_helper_getattr",
    "by_helper_of_helper",
    "by_attrgetter",
    "by_getattribute",
    # a module held as a value (a class attribute, a partial's argument) counts every attribute (at16 G6)
    "by_class_attribute",
    "by_class_attribute_dict",
    "by_partial_getattr",
    # held by an instance attribute (`self.m = plugsteps` in __init__) or returned by a function (at18 I3)
    "by_instance_attribute",
    "by_returned_module",
    # the same for a module an import inside the body bound, or an attribute chain reaching it (`fpdemo.plugsteps`)
    "by_import_in_body",
    "by_attribute_chain",
}


@pytest.mark.parametrize(
    ("old", "new", "changed"),
    [
        # a subclass (and a subclass of it) found only through __subclasses__(), also in a helper given the class
        ("return 2 * x", "return 4 * x", _SUBCLASS_READERS | _MODULE_READERS),
        ("return 10 * x", "return 20 * x", _SUBCLASS_READERS | _MODULE_READERS),
        # a function found only through inspect.getmembers(module) or getattr(module, name), also in a helper
        ("return 3 * x", "return 5 * x", _MODULE_READERS),
    ],
)
def test_plugins_found_by_subclassing_or_by_getmembers_count(
    project: Path, old: str, new: str, changed: set[str]
) -> None:
    """Attacker at15 F9: a step registry by `Step.__subclasses__()` and a function table by `inspect.getmembers(mod)`
    left the fingerprint unchanged after an edit of the plugin (no Airflow skew, a stale Kedro node); F10: so did the
    same look-ups in a project helper the code passes the class or module to (`find(Step, name)`); at16 G6: so did a
    module held by a class attribute (`getattr(self.mod, name)`) or bound by `functools.partial(getattr, module)`."""
    (project / "plugbase.py").write_text(PLUGINS_BASE)
    (project / "plugsteps.py").write_text(PLUGINS_STEPS)
    (project / "plughelp.py").write_text(PLUGINS_HELPERS)
    (project / "nodes.py").write_text(PLUGINS_NODES)
    names = (*sorted(_SUBCLASS_READERS | _MODULE_READERS), "names_step_only")
    before = _digests(*names)
    assert _digests(*names) == before  # stable between fresh imports
    _edit(project / "plugsteps.py", old, new)
    assert _changed(before, _digests(*names)) == changed


CHAIN_NODES = """
import inspect
import operator

import fpdemo.plugbase
import fpdemo.plughelp
import fpdemo.plugsteps
from fpdemo import plughelp as helpmod
from fpdemo.plughelp import lookup


def by_dotted_getattr(x):
    return getattr(fpdemo.plugsteps, "triple")(x)


def by_dotted_getattr_name(x, name="triple"):
    return getattr(fpdemo.plugsteps, name)(x)


def by_dotted_vars(x):
    return vars(fpdemo.plugsteps)["triple"](x)


def by_dotted_dict(x):
    return fpdemo.plugsteps.__dict__["triple"](x)


def by_dotted_members(x):
    return dict(inspect.getmembers(fpdemo.plugsteps))["triple"](x)


def by_dotted_attrgetter(x):
    return operator.attrgetter("triple")(fpdemo.plugsteps)(x)


def by_dotted_local(x):
    m = fpdemo.plugsteps
    return getattr(m, "triple")(x)


def by_dotted_helper(x):
    return lookup(fpdemo.plugsteps, "triple")(x)


def by_dotted_import_in_body(x):
    import fpdemo

    return getattr(fpdemo.plugsteps, "triple")(x)


def by_dotted_subclass(x):
    return {c.name: c for c in fpdemo.plugbase.Step.__subclasses__()}["double"]().apply(x)


def by_module_helper_subclass(x):
    return helpmod.find(fpdemo.plugbase.Step, "double")().apply(x)


def by_dotted_helper_subclass(x):
    return fpdemo.plughelp.find(fpdemo.plugbase.Step, "double")().apply(x)


class Held:
    mod = fpdemo.plugsteps


def by_dotted_held(x):
    return getattr(Held.mod, "triple")(x)


def by_dotted_direct(x):
    return fpdemo.plugsteps.triple(x)
"""

_CHAIN_MODULE_READERS = {
    "by_dotted_getattr",
    "by_dotted_getattr_name",
    "by_dotted_vars",
    "by_dotted_dict",
    "by_dotted_members",
    "by_dotted_attrgetter",
    "by_dotted_local",
    "by_dotted_helper",
    "by_dotted_import_in_body",
    "by_dotted_held",  # seen before at20 K4 too (a module held by a class attribute)
}
_CHAIN_SUBCLASS_READERS = {"by_dotted_subclass", "by_module_helper_subclass", "by_dotted_helper_subclass"}


@pytest.mark.parametrize(
    ("old", "new", "changed"),
    [
        ("return 3 * x", "return 5 * x", _CHAIN_MODULE_READERS | {"by_dotted_direct"}),  # triple
        ("return 2 * x", "return 4 * x", _CHAIN_MODULE_READERS | _CHAIN_SUBCLASS_READERS),  # Double.apply
    ],
)
def test_a_module_reached_by_an_attribute_chain_counts_as_a_module_named_by_the_code(
    project: Path, old: str, new: str, changed: set[str]
) -> None:
    """Attacker at20 K4: after ``import fpdemo.plugsteps``, ``getattr(fpdemo.plugsteps, name)``, ``vars(...)``,
    ``__dict__``, ``inspect.getmembers``, ``operator.attrgetter``, a local ``m = fpdemo.plugsteps``, a helper given
    ``fpdemo.plugsteps`` and ``fpdemo.plugbase.Step.__subclasses__()`` left the fingerprint unchanged after an edit of
    plugsteps (the module counted only by the names its package shares with it): a stale Kedro node. Each now counts
    every attribute of the module, as ``getattr(plugsteps, name)`` does; a subclass-finding helper reached as a module
    attribute (``helpmod.find(Step, name)``, ``fpdemo.plughelp.find``) counts as ``find(Step, name)`` does."""
    (project / "plugbase.py").write_text(PLUGINS_BASE)
    (project / "plugsteps.py").write_text(PLUGINS_STEPS)
    (project / "plughelp.py").write_text(PLUGINS_HELPERS)
    (project / "nodes.py").write_text(CHAIN_NODES)
    names = (*sorted(_CHAIN_MODULE_READERS | _CHAIN_SUBCLASS_READERS), "by_dotted_direct")
    before = _digests(*names)
    assert _digests(*names) == before  # stable between fresh imports
    _edit(project / "plugsteps.py", old, new)
    assert _changed(before, _digests(*names)) == changed
