"""Edits the code fingerprint must see (or must not), found by a staleness review (findings at10).

Each test writes a small project under tmp_path, fingerprints a node function in a fresh import of it,
edits a file, and fingerprints a fresh import again: a different digest means the Kedro runner reruns the
node and the Airflow operator sees code skew; an equal one means the cache is served.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import kart_core
from kart_core import CodeFingerprinter, ModuleClassifier

PREFIXES = ("fpst", "fpshared", "fpinstalled", "fpns")


@pytest.fixture
def src(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A ``src`` folder on sys.path (installed by nobody); the modules it held are forgotten afterwards."""
    root = tmp_path / "src"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    # Edits within one second keep the file's size: a .pyc written at the first import would be reused.
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    yield root
    _forget()


def _forget() -> None:
    for name in [n for n in sys.modules if n.partition(".")[0] in PREFIXES]:
        del sys.modules[name]
    importlib.invalidate_caches()


def _fresh(module_name: str) -> ModuleType:
    """``module_name`` imported afresh, as a new process would."""
    _forget()
    return importlib.import_module(module_name)


def _digest(module_name: str, function: str = "node", own: tuple[str, ...] = ("fpst",)) -> str:
    """The runner's fingerprint of ``module_name.function`` in a fresh import (own packages as the runner's)."""
    module = _fresh(module_name)
    return CodeFingerprinter(ModuleClassifier(own)).fingerprint(getattr(module, function)).digest


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


# --- K1: a helper in a namespace package (a folder without __init__.py) is project code ----------------


@pytest.mark.parametrize(
    ("helper", "node_source"),
    [
        ("fpshared/scale.py", "from fpshared import scale\n\n\ndef node(x):\n    return scale.scale(x)\n"),
        ("fpshared/scale.py", "from fpshared.scale import scale\n\n\ndef node(x):\n    return scale(x)\n"),
        (  # nested: fpshared/deep/ has no __init__.py either
            "fpshared/deep/scale.py",
            "def node(x):\n    from fpshared.deep import scale\n\n    return scale.scale(x)\n",
        ),
    ],
)
def test_an_edit_of_a_helper_in_a_folder_without_init_changes_the_fingerprint(
    src: Path, helper: str, node_source: str
) -> None:
    _write(src / "fpst" / "__init__.py", "")
    _write(src / "fpst" / "m.py", node_source)
    scale = _write(src / helper, "def scale(x):\n    return x * 2\n")
    before = _digest("fpst.m")
    assert sys.modules["fpshared"].__file__ is None  # a PEP 420 namespace package
    assert _digest("fpst.m") == before  # the same code, the same digest
    _edit(scale, "x * 2", "x * 3")
    assert _fresh("fpst.m").node(5) == 15
    assert _digest("fpst.m") != before


def test_a_namespace_package_outside_installs_is_project_code_one_under_site_packages_is_not(
    src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(src / "fpshared" / "scale.py", "def scale(x):\n    return x * 2\n")
    installed = tmp_path / "lib" / "site-packages"
    _write(installed / "fpinstalled" / "part.py", "K = 1\n")
    monkeypatch.syspath_prepend(str(installed))
    _forget()
    importlib.import_module("fpshared.scale")
    importlib.import_module("fpinstalled.part")
    classifier = ModuleClassifier()
    assert classifier.version_of("fpshared.scale") is None
    assert classifier.version_of("fpinstalled.part") == "fpinstalled==unknown"


def test_code_fingerprint_of_a_task_class_follows_a_helper_in_a_folder_without_init(src: Path) -> None:
    """Airflow's code-skew check: the dag-processor's and the worker's ``code_fingerprint`` must differ."""
    _write(src / "fpst" / "__init__.py", "")
    _write(
        src / "fpst" / "tasks.py",
        "import kart_core\nfrom fpshared import scale\n\n\nclass T(kart_core.TaskOnKart):\n"
        "    def run(self):\n        self.dump(scale.scale(3))\n",
    )
    scale = _write(src / "fpshared" / "scale.py", "def scale(x):\n    return x * 2\n")
    before = kart_core.code_fingerprint(_fresh("fpst.tasks").T)
    _edit(scale, "x * 2", "x * 3")
    assert kart_core.code_fingerprint(_fresh("fpst.tasks").T) != before


# --- at11 F2: a namespace package split between site-packages and the project counts by module -----------


def _split_namespace(src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """``fpns.lib`` installed by the distribution ``fpns-lib`` 1.0 in a site-packages folder, ``fpns.pipeline``
    in the project's src (neither has ``fpns/__init__.py``), and ``fpst.m.node`` calling the project half."""
    site = tmp_path / "lib" / "python3" / "site-packages"
    installed = _write(site / "fpns" / "lib" / "__init__.py", "def offset(x):\n    return x + 1\n")
    _write(site / "fpns_lib-1.0.dist-info" / "METADATA", "Metadata-Version: 2.1\nName: fpns-lib\nVersion: 1.0\n")
    _write(site / "fpns_lib-1.0.dist-info" / "RECORD", "fpns/lib/__init__.py,,\nfpns_lib-1.0.dist-info/METADATA,,\n")
    monkeypatch.syspath_prepend(str(site))
    _write(src / "fpst" / "__init__.py", "")
    _write(
        src / "fpst" / "m.py",
        "from fpns.lib import offset\nfrom fpns.pipeline import helpers\n\n\n"
        "def node(x):\n    return offset(helpers.scale(x))\n",
    )
    helpers = _write(src / "fpns" / "pipeline" / "helpers.py", "def scale(x):\n    return x * 2\n")
    return helpers, installed


def test_a_namespace_package_split_between_site_packages_and_the_project_counts_each_half_by_its_place(
    src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    helpers, installed = _split_namespace(src, tmp_path, monkeypatch)
    before = _digest("fpst.m")
    assert sorted(map(str, sys.modules["fpns"].__path__)) == sorted([str(src / "fpns"), str(installed.parent.parent)])
    classifier = ModuleClassifier(["fpst"])
    assert classifier.version_of("fpns.pipeline.helpers") is None  # the project half: hashed
    assert classifier.version_of("fpns.lib") == "fpns-lib==1.0"  # the installed half: its distribution's version
    assert "fpns-lib==1.0" in CodeFingerprinter(classifier).fingerprint(sys.modules["fpst.m"].node).packages
    _edit(installed, "x + 1", "x + 2")  # an installed file edited in place counts by the version, as pandas does
    assert _digest("fpst.m") == before
    _edit(helpers, "x * 2", "x * 3")
    assert _fresh("fpst.m").node(5) == 17
    assert _digest("fpst.m") != before


def test_a_split_namespace_module_not_imported_yet_is_classified_without_importing_it(
    src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A helper a function imports in its body: found through the folders, nothing is imported."""
    _split_namespace(src, tmp_path, monkeypatch)
    _forget()
    classifier = ModuleClassifier()
    assert classifier.version_of("fpns.pipeline.helpers") is None
    assert classifier.version_of("fpns.lib") == "fpns-lib==1.0"
    assert [name for name in sys.modules if name.partition(".")[0] == "fpns"] == []


def test_each_installed_portion_of_a_split_namespace_counts_by_the_distribution_that_installed_it(
    src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _split_namespace(src, tmp_path, monkeypatch)
    site = tmp_path / "lib" / "python3" / "site-packages"
    _write(site / "fpns" / "extra" / "tools.py", "K = 1\n")
    _write(site / "fpns_extra-2.0.dist-info" / "METADATA", "Metadata-Version: 2.1\nName: fpns-extra\nVersion: 2.0\n")
    _write(site / "fpns_extra-2.0.dist-info" / "RECORD", "fpns/extra/tools.py,,\nfpns_extra-2.0.dist-info/METADATA,,\n")
    _forget()
    importlib.import_module("fpns.extra.tools")
    classifier = ModuleClassifier()
    assert classifier.version_of("fpns.extra.tools") == "fpns-extra==2.0"
    assert classifier.version_of("fpns.extra") == "fpns-extra==2.0"  # a namespace sub-package: by its folder
    assert classifier.version_of("fpns.lib") == "fpns-lib==1.0"
    assert classifier.version_of("fpns.pipeline.helpers") is None


# --- K12: a compiled project module counts by its file's bytes -------------------------------------------

FAST_C = """#include <Python.h>
static PyObject* mul(PyObject* self, PyObject* arg) { return PyLong_FromLong(PyLong_AsLong(arg) * FACTOR); }
static PyMethodDef METHODS[] = {{"mul", mul, METH_O, "mul"}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef DEF = {PyModuleDef_HEAD_INIT, "fast", NULL, -1, METHODS};
PyMODINIT_FUNC PyInit_fast(void) { return PyModule_Create(&DEF); }
"""
COMPILER = shutil.which("cc") or shutil.which("gcc")


def _build_extension(package: Path, factor: int) -> Path:
    """Compile ``package/fast<EXT_SUFFIX>`` in place (as ``build_ext --inplace`` would): ``fast.mul(x) = x * factor``."""
    source = package.parent / f"fast{factor}.c"
    source.write_text(f"#define FACTOR {factor}\n{FAST_C}")
    target = package / f"fast{sysconfig.get_config_var('EXT_SUFFIX')}"
    include = sysconfig.get_paths()["include"]
    subprocess.run([str(COMPILER), "-shared", "-fPIC", f"-I{include}", str(source), "-o", str(target)], check=True)
    return target


def _in_fresh_process(src: Path, module_name: str) -> tuple[str, int]:
    """The runner's fingerprint of ``module_name.node`` and ``node(5)``, in a new interpreter (an extension
    module cannot be imported again in one process)."""
    code = (
        "import importlib, sys\n"
        "from kart_core import CodeFingerprinter, ModuleClassifier\n"
        f"m = importlib.import_module({module_name!r})\n"
        "print(CodeFingerprinter(ModuleClassifier(['fpst'])).fingerprint(m.node).digest, m.node(5))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), *sys.path])}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    fingerprint, value = done.stdout.split()
    return fingerprint, int(value)


@pytest.mark.skipif(COMPILER is None, reason="needs a C compiler")
@pytest.mark.parametrize(
    "node_source",
    [
        "from fpst import fast\n\n\ndef node(x):\n    return fast.mul(x)\n",  # the module, then its function
        "from fpst.fast import mul\n\n\ndef node(x):\n    return mul(x)\n",  # the C function itself
        "def node(x):\n    from fpst import fast\n\n    return fast.mul(x)\n",  # imported inside the function
    ],
)
def test_a_compiled_project_module_rebuilt_with_other_code_changes_the_fingerprint(
    tmp_path: Path, node_source: str
) -> None:
    package = _write(tmp_path / "src" / "fpst" / "__init__.py", "").parent
    _write(package / "m.py", node_source)
    built = _build_extension(package, 2)
    before, value = _in_fresh_process(tmp_path / "src", "fpst.m")
    assert value == 10
    kept = built.read_bytes()
    built.unlink()
    built.write_bytes(kept)  # the same bytes, written again (a new inode and times): the same code
    assert _in_fresh_process(tmp_path / "src", "fpst.m") == (before, 10)
    _build_extension(package, 3)
    after, value = _in_fresh_process(tmp_path / "src", "fpst.m")
    assert value == 15
    assert after != before


# --- at11 F3: a compiled module rebuilt or removed while loaded: never keyed by the new file ----------------

LOADED_THEN_REPLACED = """
import importlib, json, os, subprocess, sys
from kart_core import CodeFingerprinter, ModuleClassifier
m = importlib.import_module("fpst.m")
path = sys.modules["fpst.fast"].__file__
def fingerprint():
    found = CodeFingerprinter(ModuleClassifier(["fpst"])).fingerprint(m.node)
    return found.digest, list(found.undigestable)
first = fingerprint() if sys.argv[2] == "fingerprint first" else None
if sys.argv[1] == "rebuild":
    subprocess.run(json.loads(sys.argv[3]), check=True)
else:
    os.unlink(path)
print(json.dumps({"first": first, "second": fingerprint(), "value": m.node(5), "on_disk": os.path.exists(path)}))
"""


def _replaced_in_one_process(src: Path, how: str, when: str, rebuild: list[str]) -> dict[str, Any]:
    """One process (a notebook kernel) that imports ``fpst.m``, maybe fingerprints it, then rebuilds (or
    removes) ``fpst/fast*.so`` and fingerprints again: what it saw."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), *sys.path])}
    done = subprocess.run(
        [sys.executable, "-c", LOADED_THEN_REPLACED, how, when, json.dumps(rebuild)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def _compile_command(package: Path, factor: int, *flags: str) -> list[str]:
    source = package.parent / f"fast{factor}.c"
    source.write_text(f"#define FACTOR {factor}\n{FAST_C}")
    target = package / f"fast{sysconfig.get_config_var('EXT_SUFFIX')}"
    include = sysconfig.get_paths()["include"]
    return [str(COMPILER), "-shared", "-fPIC", *flags, f"-I{include}", str(source), "-o", str(target)]


@pytest.mark.skipif(COMPILER is None, reason="needs a C compiler")
@pytest.mark.parametrize("when", ["fingerprint first", "rebuilt before the first fingerprint"])
def test_a_compiled_module_rebuilt_while_loaded_is_never_keyed_by_the_new_file(tmp_path: Path, when: str) -> None:
    package = _write(tmp_path / "src" / "fpst" / "__init__.py", "").parent
    _write(package / "m.py", "from fpst import fast\n\n\ndef node(x):\n    return fast.mul(x)\n")
    _build_extension(package, 2)
    seen = _replaced_in_one_process(tmp_path / "src", "rebuild", when, _compile_command(package, 3))
    assert seen["value"] == 10  # the process still runs the x*2 build it loaded
    fresh, value = _in_fresh_process(tmp_path / "src", "fpst.m")
    assert value == 15
    digest, undigestable = seen["second"]
    assert digest != fresh  # not the key of the x*3 build
    if seen["first"] is not None:
        assert seen["first"] == [digest, []]  # the key of the build it runs, as read at the first look
    # the Kedro runner runs a node with undigestable code uncached, with this in its warning
    assert len(undigestable) == 1
    assert undigestable[0].startswith("fpst.m.node: the compiled module fpst.fast (")
    assert "rebuilt after this process loaded it" in undigestable[0]
    assert "restart the process" in undigestable[0]


@pytest.mark.skipif(COMPILER is None, reason="needs a C compiler")
@pytest.mark.parametrize("when", ["fingerprint first", "removed before the first fingerprint"])
def test_a_compiled_module_removed_while_loaded_is_undigestable(tmp_path: Path, when: str) -> None:
    package = _write(tmp_path / "src" / "fpst" / "__init__.py", "").parent
    _write(package / "m.py", "from fpst.fast import mul\n\n\ndef node(x):\n    return mul(x)\n")
    _build_extension(package, 2)
    seen = _replaced_in_one_process(tmp_path / "src", "remove", when, [])
    assert (seen["value"], seen["on_disk"]) == (10, False)
    digest, undigestable = seen["second"]
    if seen["first"] is not None:
        assert seen["first"] == [digest, []]  # still the build it runs: no constant shared by every removed build
    assert len(undigestable) == 1
    assert "fpst.fast" in undigestable[0]
    assert "removed after this process loaded it" in undigestable[0]


# --- at11 F8: a .so counts by its loadable sections: the same source built in two checkouts, one digest ---


@pytest.mark.skipif(COMPILER is None, reason="needs a C compiler")
def test_the_same_extension_source_built_in_two_folders_with_debug_info_has_one_digest(tmp_path: Path) -> None:
    found = {}
    for place in ("checkout-a", "ci/build/checkout-b"):
        src = tmp_path / place / "src"
        package = _write(src / "fpst" / "__init__.py", "").parent
        _write(package / "m.py", "from fpst import fast\n\n\ndef node(x):\n    return fast.mul(x)\n")
        # as build_ext --inplace: Python's CFLAGS hold -g, the debug info names the build folder
        command = _compile_command(package, 2, "-g", "-O2")
        subprocess.run(command, check=True, cwd=src)
        found[place] = (Path(command[-1]).read_bytes(), _in_fresh_process(src, "fpst.m"))
    (bytes_a, (digest_a, value_a)), (bytes_b, (digest_b, value_b)) = found.values()
    assert bytes_a != bytes_b  # the files differ (DWARF comp_dir, build-id) ...
    assert (digest_a, value_a) == (digest_b, value_b) == (digest_a, 10)  # ... the code does not
    package = tmp_path / "checkout-a" / "src" / "fpst"
    subprocess.run(_compile_command(package, 3, "-g", "-O2"), check=True, cwd=package.parent)
    assert _in_fresh_process(package.parent, "fpst.m")[0] != digest_a


def test_a_file_that_is_no_elf64_counts_by_all_its_bytes(tmp_path: Path) -> None:
    from kart_core.compiled import loadable_digest

    other = tmp_path / "fast.pyd"
    other.write_bytes(b"MZ" + bytes(200))
    assert loadable_digest(str(other)) == "compiled:" + hashlib.md5(other.read_bytes()).hexdigest()
    other.write_bytes(b"\x7fELF\x02\x01" + bytes(100))  # an ELF64 header whose section table lies outside it
    assert loadable_digest(str(other)) == "compiled:" + hashlib.md5(other.read_bytes()).hexdigest()


# --- K10: a path a module builds from its own __file__ counts relative to its package, not the checkout ---


def _digest_from(root: Path, module_name: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The fingerprint of ``module_name.node`` imported afresh from the checkout ``root`` (a src folder)."""
    with monkeypatch.context() as patch:
        patch.syspath_prepend(str(root))
        return _digest(module_name)


@pytest.mark.parametrize(
    ("source", "module_name", "relative_edit"),
    [
        (  # the package's folder
            "from pathlib import Path\nHERE = Path(__file__).resolve().parent\n\n\n"
            "def node(x):\n    return (HERE / 'lookup.csv').exists()\n",
            "fpst.m",
            ("'lookup.csv'", "'other.csv'"),
        ),
        (  # a str under it
            "import os\nDATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data')\n\n\n"
            "def node(x):\n    return DATA\n",
            "fpst.m",
            ("'data')", "'other')"),
        ),
        (  # the project root above src/, inside a dict; a subpackage's module
            "from pathlib import Path\nPLACES = {'conf': Path(__file__).parents[3] / 'conf'}\n\n\n"
            "def node(x):\n    return PLACES['conf']\n",
            "fpst.sub.m",
            ("/ 'conf'", "/ 'other'"),
        ),
    ],
)
def test_a_path_built_from_file_is_the_same_in_a_clone_and_follows_its_relative_part(
    tmp_path: Path, source: str, module_name: str, relative_edit: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    checkouts = []
    for place in ("checkout-a", "ci/build/checkout-b"):
        src = tmp_path / place / "src"
        _write(src / "fpst" / "__init__.py", "")
        _write(src / "fpst" / "sub" / "__init__.py", "")
        _write(src / (module_name.replace(".", "/") + ".py"), source)
        checkouts.append(src)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    try:
        first = _digest_from(checkouts[0], module_name, monkeypatch)
        assert _digest_from(checkouts[1], module_name, monkeypatch) == first  # a clone elsewhere: cached
        module_file = checkouts[1] / (module_name.replace(".", "/") + ".py")
        _edit(module_file, *relative_edit)  # the part under the package (or root) still counts
        assert _digest_from(checkouts[1], module_name, monkeypatch) != first
    finally:
        _forget()


def test_an_absolute_path_outside_the_project_keeps_counting(src: Path, tmp_path: Path) -> None:
    module = _write(
        src / "fpst" / "m.py", f"SHARED = {str(tmp_path / 'shared' / 'a')!r}\n\n\ndef node(x):\n    return SHARED\n"
    )
    _write(src / "fpst" / "__init__.py", "")
    before = _digest("fpst.m")
    _edit(module, "shared/a", "shared/b")
    assert _digest("fpst.m") != before


# --- K8: the field types of a dataclass-like class count; function annotations do not ---------------------


@pytest.mark.parametrize(
    ("source", "old", "new", "changes"),
    [
        (  # OmegaConf-style structured config: the field type converts the value
            "import dataclasses\n\n\n@dataclasses.dataclass\nclass Cfg:\n    k: int = 2\n\n\n"
            "def node(raw):\n    return Cfg(**raw)\n",
            "k: int",
            "k: float",
            True,
        ),
        (  # a NamedTuple's field type
            "from typing import NamedTuple\n\n\nclass Row(NamedTuple):\n    k: int\n\n\n"
            "def node(raw):\n    return Row(raw)\n",
            "k: int",
            "k: 'list[int]'",
            True,
        ),
        (  # a plain function's annotations stay cosmetic: no rerun
            "def node(raw: int) -> int:\n    return raw\n",
            "raw: int) -> int",
            "raw: float) -> float",
            False,
        ),
    ],
)
def test_dataclass_field_types_count_function_annotations_do_not(
    src: Path, source: str, old: str, new: str, changes: bool
) -> None:
    _write(src / "fpst" / "__init__.py", "")
    module = _write(src / "fpst" / "m.py", source)
    before = _digest("fpst.m")
    _edit(module, old, new)
    assert (_digest("fpst.m") != before) == changes


# --- K13: output resources count by type: the node stays cacheable and the same in every process ----------


@pytest.mark.parametrize(
    "resource",
    [
        "from rich.console import Console\nOUT = Console()\n",
        "from rich.progress import Progress\nOUT = Progress()\n",
        "import sys\nOUT = sys.__stderr__\n",
    ],
)
def test_an_output_resource_counts_by_type(src: Path, resource: str) -> None:
    _write(src / "fpst" / "__init__.py", "")
    _write(src / "fpst" / "m.py", resource + "\n\ndef node(x):\n    OUT.print(x) if hasattr(OUT, 'print') else None\n")
    fingerprints = []
    for _ in range(2):  # two fresh imports: two consoles (as two processes would have)
        module = _fresh("fpst.m")
        fingerprints.append(CodeFingerprinter(ModuleClassifier(["fpst"])).fingerprint(module.node))
    assert fingerprints[0].undigestable == ()  # the node is cached, not run uncached with a warning
    assert fingerprints[0].digest == fingerprints[1].digest


# --- K6: project code held by a numpy / pandas object ----------------------------------------------------


@pytest.mark.parametrize(
    "holder",
    [
        "import numpy as np\nH = np.vectorize(_h)\n\n\ndef node(a):\n    return H(a)\n",
        "import pandas as pd\nH = pd.Series([_h])\n\n\ndef node(a):\n    return H[0](a)\n",
        "import numpy as np\nH = np.array([_h, 'label'], dtype=object)\n\n\ndef node(a):\n    return H[0](a)\n",
    ],
)
def test_a_helper_held_by_np_vectorize_or_an_object_array_counts_by_its_code(src: Path, holder: str) -> None:
    _write(src / "fpst" / "__init__.py", "")
    module = _write(src / "fpst" / "m.py", "def _h(x):\n    return x * 2\n\n\n" + holder)
    before = _digest("fpst.m")
    assert _digest("fpst.m") == before
    _edit(module, "x * 2", "x * 3")
    assert _fresh("fpst.m").node(5) == 15
    assert _digest("fpst.m") != before
