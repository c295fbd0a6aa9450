"""Code edited on disk while KartParallelRunner runs with spawn or forkserver workers (attacker at26 G5).

The runner's process fingerprints each node's function when the run begins (the ``code`` part of its key). A worker
started by spawn or forkserver imports the project's modules anew, from disk, when it unpickles a node: a helper
edited meanwhile ran in the worker and its result was cached under the old code's key. Once the file was back (a
``git checkout``), the node was served from the cache with the edited code's result. Now such a worker
fingerprints the function it imported and fails the node with ``StaleTaskError`` naming the changed code; under
fork the worker has the runner's modules, runs the code the key names, and nothing is checked.

Each run is a fresh Python process (Kedro's ParallelRunner needs importable node functions); the first node edits
the helper module on disk, so the edit lands after the runner fingerprinted it and before the second node's worker
imports it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HELPER = "def scaled(value):\n    return value * 2\n"
EDITED = "def scaled(value):\n    return value * 17\n"  # another size: a byte-compiled file is never taken for it

NODES = textwrap.dedent(
    """
    import pathlib


    def first(value):
        # The edit a user makes while the run is under way (after the runner fingerprinted the helper).
        helper = pathlib.Path(__file__).with_name("proj_helper.py")
        if helper.read_text() != {edited!r}:
            helper.write_text({edited!r})
        return value


    def same(value):
        return value
    """
).format(edited=EDITED)

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from kedro.io import MemoryDataset, SharedMemoryDataCatalog
    from kedro.pipeline import Pipeline, node
    from kart_kedro import KartParallelRunner

    def main():
        # Imported here: a spawned worker imports this file again, but runs no main(), so it imports the helper only
        # when it unpickles the node (after the first node edited it), as a project's workers do.
        import proj_helper, proj_nodes

        root, edit = sys.argv[1], sys.argv[2] == "edit"
        nodes = [node(proj_helper.scaled, "middle", "result", name="scaled")]
        nodes.insert(0, node(proj_nodes.first if edit else proj_nodes.same, "params:value", "middle", name="first"))
        catalog = SharedMemoryDataCatalog({"params:value": MemoryDataset(5)})
        runner = KartParallelRunner(max_workers=2, workspace_directory=root + "/ws")
        try:
            value = runner.run(Pipeline(nodes), catalog)["result"]
        except Exception as exc:
            print(json.dumps({"raised": type(exc).__name__, "message": str(exc)}))
        else:
            print(json.dumps({"value": value.load() if hasattr(value, "load") else value}))


    if __name__ == "__main__":  # spawn and forkserver workers import this file again
        main()
    """
)


def _run(project: Path, context: str, edit: bool) -> dict[str, object]:
    env = {
        **os.environ,
        "KEDRO_MP_CONTEXT": context,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": os.pathsep.join([str(project / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, str(project / "run.py"), str(project), "edit" if edit else "plain"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "proj_helper.py").write_text(HELPER)
    (tmp_path / "src" / "proj_nodes.py").write_text(NODES)
    (tmp_path / "run.py").write_text(SCRIPT)
    return tmp_path


@pytest.mark.slow
@pytest.mark.parametrize("context", ["spawn", "forkserver"])
def test_a_helper_edited_during_the_run_is_refused_in_a_fresh_worker(project: Path, context: str) -> None:
    first = _run(project, context, edit=True)
    assert first["raised"] == "StaleTaskError", first
    assert "node 'scaled': its code changed on disk after the run began (proj_helper.scaled)" in str(first["message"])
    (project / "src" / "proj_helper.py").write_text(HELPER)  # the edit undone (a git checkout)
    # Before: 85 from the cache (the edited code's 5 * 17, keyed as the original code).
    assert _run(project, context, edit=False) == {"value": 10}


@pytest.mark.slow
def test_a_fork_worker_runs_the_code_its_key_names(project: Path) -> None:
    """Forked workers keep the runner's modules: the edit on disk does not reach them, nothing is refused."""
    assert _run(project, "fork", edit=True) == {"value": 10}
    (project / "src" / "proj_helper.py").write_text(HELPER)
    assert _run(project, "fork", edit=False) == {"value": 10}
