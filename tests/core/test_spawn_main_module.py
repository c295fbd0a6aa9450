"""A task class of the running script has one identity in the parent and in processes started with "spawn".

multiprocessing's "spawn" start method (macOS' and Windows' default) runs the script again in the child as
``__mp_main__``, so a class the script defines says ``__module__ == "__mp_main__"`` there. kart's output
path, lock key and manifest owner use the module name as the parent has it (``__main__``): what a spawned
child builds lands where the parent looks (gokart 1.12.2's children write ``__mp_main__/`` instead).
Each end-to-end test runs a script file with ``python script.py`` from a temporary folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from gokart_twin import run_both

import kart_core
from kart_core.dotted import module_name

# The chain of the scripts: Up(i) -> Down; Up counts its runs in a file (one line per run, any process).
_TASKS = """
import concurrent.futures, multiprocessing, os, sys
from pathlib import Path
import luigi
import kart_core as kart

WS = sys.argv[1]

class Up(kart.TaskOnKart):
    i = luigi.IntParameter()
    def run(self):
        with open(Path(WS).parent / "runs.txt", "a") as runs:
            runs.write(f"Up{self.i}\\n")
        self.dump(self.i * 10)

class Down(kart.TaskOnKart):
    def requires(self):
        return [Up(i=1, workspace_directory=WS), Up(i=2, workspace_directory=WS)]
    def run(self):
        self.dump(sum(self.load()) + 1)
"""

_BUILD_WITH_PROCESSES = (
    _TASKS
    + """
if __name__ == "__main__":
    multiprocessing.set_start_method("spawn")
    print("RESULT", kart.build(Down(workspace_directory=WS), workers=2, executor="process"))
"""
)

# Up(3)'s run() hands the build of Up(3) itself to a spawned process (a fresh interpreter) and returns: the
# child commits first, so the parent's run is superseded and keeps the child's output. Then Down3 loads it.
_BUILD_IN_A_SPAWNED_CHILD = (
    _TASKS
    + """
def build_in_child(i):
    return kart.build(Up(i=i, workspace_directory=WS))

class Delegating(Up):
    def run(self):
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
            print("CHILD", pool.submit(build_in_child, self.i).result())
        self.dump(self.i * 10)

class Down3(kart.TaskOnKart):
    def requires(self):
        return Up(i=3, workspace_directory=WS)
    def run(self):
        self.dump(self.load() + 1)

class Fan(kart.TaskOnKart):
    def run(self):
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as pool:
            print("CHILDREN", list(pool.map(build_in_child, [1, 2])))
        self.dump("fanned")

if __name__ == "__main__":
    if sys.argv[2] == "fan":
        print("RESULT", kart.build(Fan(workspace_directory=WS)), kart.build(Down(workspace_directory=WS)))
    else:
        kart.build(Delegating(i=3, workspace_directory=WS))
        print("RESULT", kart.build(Down3(workspace_directory=WS)))
"""
)


def _run_script(tmp_path: Path, source: str, *args: str) -> str:
    """stdout+stderr of ``python script.py <workspace> *args`` run from ``tmp_path`` (fails on a non-zero exit)."""
    script = tmp_path / "script.py"
    script.write_text(source)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "ws"), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def _outputs(tmp_path: Path) -> list[str]:
    """The workspace's output files (not run logs, not manifests), relative and sorted."""
    ws = tmp_path / "ws"
    return sorted(str(path.relative_to(ws)) for path in ws.rglob("*") if path.is_file() and path.parts[-3] != "log")


def _runs(tmp_path: Path) -> list[str]:
    return sorted((tmp_path / "runs.txt").read_text().split())


def _result(output: str) -> str:
    return next(line for line in output.splitlines() if line.startswith("RESULT")).removeprefix("RESULT ")


def test_build_with_spawned_process_workers_writes_one_output_per_task_under_main(tmp_path: Path) -> None:
    """Every task runs in a spawned worker; the parent loads what they committed (was MissingOutputError)."""
    output = _run_script(tmp_path, _BUILD_WITH_PROCESSES)
    assert _result(output) == "31"
    outputs = _outputs(tmp_path)
    assert [name.rsplit("_", 1)[0] for name in outputs] == ["__main__/Down", "__main__/Up", "__main__/Up"]
    assert _runs(tmp_path) == ["Up1", "Up2"]
    manifests = sorted((tmp_path / "ws" / "log" / "manifest").glob("*.json"))
    keys = [key for path in manifests for key in json.loads(path.read_text())["outputs"]]
    assert sorted(keys) == outputs  # one entry per output, the path the parent reads
    owners = {entry["owner"] for path in manifests for entry in json.loads(path.read_text())["outputs"].values()}
    assert owners == {"script.Down", "script.Up"}


def test_a_run_that_builds_upstreams_in_spawned_processes_leaves_them_cached_for_the_parent(tmp_path: Path) -> None:
    """Upstreams built by spawned children are cached for the parent's downstream: none runs twice."""
    output = _run_script(tmp_path, _BUILD_IN_A_SPAWNED_CHILD, "fan")
    assert "CHILDREN [10, 20]" in output
    assert _result(output) == "fanned 31"
    assert _runs(tmp_path) == ["Up1", "Up2"]  # the parent found both complete (was: each ran again)
    assert [name.rsplit("_", 1)[0] for name in _outputs(tmp_path)] == [
        "__main__/Down",
        "__main__/Fan",
        "__main__/Up",
        "__main__/Up",
    ]


def test_a_run_superseded_by_its_spawned_child_leaves_the_child_s_output_for_the_downstream(tmp_path: Path) -> None:
    """The child commits the task first; the parent's run keeps that commit, and the downstream loads it."""
    output = _run_script(tmp_path, _BUILD_IN_A_SPAWNED_CHILD, "delegate")
    assert "CHILD 30" in output
    assert _result(output) == "31"
    outputs = _outputs(tmp_path)
    assert [name.rsplit("_", 1)[0] for name in outputs] == ["__main__/Delegating", "__main__/Down3", "__main__/Up"]


_PATHS_IN_PARENT_AND_CHILD = """
import concurrent.futures, json, multiprocessing, os
import gokart, luigi

class Twin(gokart.TaskOnKart):
    n = luigi.IntParameter()

def where(n):
    task = Twin(n=n)
    return [type(task).__module__, task.make_unique_id(), os.path.relpath(task.output().path(), "resources")]

if __name__ == "__main__":
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        child = pool.submit(where, 3).result()
    print(json.dumps({"parent": where(3), "child": child}))
"""


def test_a_script_class_in_a_spawned_child_has_the_parent_s_folder_and_gokart_s_id(tmp_path: Path) -> None:
    """gokart 1.12.2 puts a spawned child's output of a script class under ``__mp_main__/``, which its
    parent never reads; kart puts it where the parent (and gokart's parent) does. Ids are gokart's."""
    found = run_both(_PATHS_IN_PARENT_AND_CHILD, tmp_path)
    uid = found["gokart"]["parent"][1]
    assert found["gokart"] == {
        "parent": ["__main__", uid, f"__main__/Twin_{uid}.pkl"],
        "child": ["__mp_main__", uid, f"__mp_main__/Twin_{uid}.pkl"],
    }
    assert found["kart"] == {
        "parent": ["__main__", uid, f"__main__/Twin_{uid}.pkl"],
        "child": ["__mp_main__", uid, f"__main__/Twin_{uid}.pkl"],
    }


def test_module_name_reads_a_spawned_child_s_script_module_as_main() -> None:
    assert module_name(type("Spawned", (), {"__module__": "__mp_main__"})) == "__main__"
    assert module_name(type("Script", (), {"__module__": "__main__"})) == "__main__"
    assert module_name(kart_core.TaskOnKart) == "kart_core.task"
    assert module_name(object()) == ""  # an instance without __module__ of its own: builtins' object has none


_IDENTITY_IN_PARENT_AND_CHILD = """
import concurrent.futures, json, logging, multiprocessing, sys
import luigi
import kart_core as kart
from kart_core.fingerprint import code_fingerprint

SCALE = 3
logger = logging.getLogger(__name__)
sub_logger = logging.getLogger(__name__ + ".steps")
HERE = __name__

def scaled(value):
    logger.info("scaling %s in %s", value, HERE)
    sub_logger.debug("scaled")
    return value * SCALE

class Helper:
    def twice(self, value):
        return 2 * scaled(value)

class Fingerprinted(kart.TaskOnKart):
    n = luigi.IntParameter()
    def run(self):
        self.dump(Helper().twice(self.n))

def identity(n):
    task = Fingerprinted(n=n, workspace_directory=sys.argv[1])
    return [type(task).__module__, kart.node_key(task), code_fingerprint(type(task))]

if __name__ == "__main__":
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        child = pool.submit(identity, 4).result()
    print("RESULT", json.dumps({"parent": identity(4), "child": child}))
"""


def test_a_script_class_in_a_spawned_child_has_the_parent_s_node_key_and_code_fingerprint(tmp_path: Path) -> None:
    """The node key (build results, repairs) and the code fingerprint (Airflow's skew check, KartRunner's cache)
    of a script class are the parent's in a spawned child: they used the raw ``__mp_main__`` there. Also for
    code using ``logging.getLogger(__name__)`` and a global holding ``__name__`` (at8 H4)."""
    found = json.loads(_result(_run_script(tmp_path, _IDENTITY_IN_PARENT_AND_CHILD)))
    parent, child = found["parent"], found["child"]
    assert [parent[0], child[0]] == ["__main__", "__mp_main__"]  # the child really ran the script as __mp_main__
    assert parent[1].startswith("__main__.Fingerprinted_")
    assert child[1] == parent[1]
    assert child[2] == parent[2]
    assert len(parent[2]) == 16
