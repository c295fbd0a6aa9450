"""KartRunner and a compiled project module rebuilt while a process has it loaded (attacker at11 F3).

A notebook kernel runs KartRunner, the project's C extension is rebuilt in place (``x * 2`` -> ``x * 3``),
and the kernel runs KartRunner again: the kernel still runs the ``x * 2`` build, so the node must run
uncached (a warning says to restart), never be committed under the new build's key; a fresh process then
runs the new build and gets 15, not the kernel's 10 from the cache.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest

COMPILER = shutil.which("cc") or shutil.which("gcc")
FAST_C = """#include <Python.h>
static PyObject* mul(PyObject* self, PyObject* arg) { return PyLong_FromLong(PyLong_AsLong(arg) * FACTOR); }
static PyMethodDef METHODS[] = {{"mul", mul, METH_O, "mul"}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef DEF = {PyModuleDef_HEAD_INIT, "fast", NULL, -1, METHODS};
PyMODINIT_FUNC PyInit_fast(void) { return PyModule_Create(&DEF); }
"""
SESSION = """
import json, logging, subprocess, sys
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline, node
from kart_kedro import KartRunner
import fpcx.m as m
warnings = []
class Keep(logging.Handler):
    def emit(self, record):
        if record.levelno >= logging.WARNING:
            warnings.append(record.getMessage())
logging.getLogger().addHandler(Keep())
def run():
    catalog = DataCatalog({"raw": MemoryDataset(5), "out": MemoryDataset()})
    KartRunner(workspace_directory=sys.argv[1], code_packages=["fpcx"]).run(
        Pipeline([node(m.node, "raw", "out", name="mul")]), catalog
    )
    return catalog.load("out")
found = {"first": run()}
if len(sys.argv) > 2:
    warnings.clear()
    subprocess.run(json.loads(sys.argv[2]), check=True)
    found["second"] = run()
found["warnings"] = warnings
print(json.dumps(found))
"""


def _compile_command(package: Path, factor: int) -> list[str]:
    source = package.parent / f"fast{factor}.c"
    source.write_text(f"#define FACTOR {factor}\n{FAST_C}")
    target = package / f"fast{sysconfig.get_config_var('EXT_SUFFIX')}"
    include = sysconfig.get_paths()["include"]
    return [str(COMPILER), "-shared", "-fPIC", f"-I{include}", str(source), "-o", str(target)]


def _session(src: Path, workspace: Path, *rebuild: list[str]) -> dict[str, Any]:
    """A process running KartRunner on ``fpcx.m.node`` (then, given a rebuild command, rebuilding and
    running again): the values it got and the warnings logged during the last run."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), *sys.path])}
    arguments = [json.dumps(command) for command in rebuild]
    done = subprocess.run(
        [sys.executable, "-c", SESSION, str(workspace), *arguments], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


@pytest.mark.skipif(COMPILER is None, reason="needs a C compiler")
def test_a_rebuild_while_loaded_runs_the_node_uncached_and_a_fresh_process_gets_the_new_build(tmp_path: Path) -> None:
    src = tmp_path / "src"
    package = src / "fpcx"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "m.py").write_text("from fpcx import fast\n\n\ndef node(x):\n    return fast.mul(x)\n")
    subprocess.run(_compile_command(package, 2), check=True)
    workspace = tmp_path / "ws"
    notebook = _session(src, workspace, _compile_command(package, 3))
    assert (notebook["first"], notebook["second"]) == (10, 10)  # the kernel runs the x*2 build it loaded
    [warning] = [text for text in notebook["warnings"] if "fpcx.fast" in text]
    assert warning.startswith("kart: node 'mul' runs without the cache: its code reaches fpcx.m.node: the compiled")
    assert "rebuilt after this process loaded it" in warning
    assert "restart the process" in warning
    fresh = _session(src, workspace)
    assert fresh["first"] == 15  # the x*3 build's result, not the kernel's 10 served from the cache
