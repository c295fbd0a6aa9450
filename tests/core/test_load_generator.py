"""``load_generator()`` while another process reruns an upstream (kart_core.task_io.load_generator).

Each item is loaded as ``load()`` loads (checked, and loaded again when a commit moved during the read);
nothing it yields is checked again later. So a rerun committed by another process while ``run()``
works on an earlier item does not fail the run, which keeps what it read, as gokart 1.12.2 does (its
``load_generator`` yields what it reads). The two outputs of one task loaded from two commits are the
one thing a generator cannot mend: that fails the run with a ConcurrentCommitError saying so. Real
processes, on local disk and on the moto S3 server; and under ``build(workers=2)``.
"""

from __future__ import annotations

import importlib
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import kart_core
from kart_core.errors import ConcurrentCommitError

TASKS = textwrap.dedent(
    """
    import os, subprocess, sys
    import luigi
    import kart_core

    RERUN = "import kart_core, gen_tasks, sys; kart_core.build(getattr(gen_tasks, sys.argv[1])(**eval(sys.argv[2])))"

    def rerun_elsewhere(name, **params):
        # Another process reruns the task and commits before this one goes on.
        subprocess.run([sys.executable, "-c", RERUN, name, repr({**params, "rerun": True})], check=True)

    class Up(kart_core.TaskOnKart):
        n = luigi.IntParameter()

        def run(self):
            self.dump([os.getpid()] * self.n)

    class Pair(kart_core.TaskOnKart):
        def output(self):
            return {"a": self.make_target("pair/a.pkl"), "b": self.make_target("pair/b.pkl")}

        def run(self):
            self.dump(os.getpid(), "a")
            self.dump(os.getpid(), "b")

    class Firsts(kart_core.TaskOnKart):
        def requires(self):
            return [Up(n=n, workspace_directory=self.workspace_directory) for n in (1, 2, 3)]

        def run(self):
            firsts = []
            for index, item in enumerate(self.load_generator()):
                firsts.append(item[0])
                if index == 0:
                    rerun_elsewhere("Up", n=1, workspace_directory=self.workspace_directory)
            self.dump(firsts)

    class BothOfPair(kart_core.TaskOnKart):
        def requires(self):
            return Pair(workspace_directory=self.workspace_directory)

        def run(self):
            values = []
            for item in self.load_generator():
                values.append(item)
                if len(values) == 1:
                    rerun_elsewhere("Pair", workspace_directory=self.workspace_directory)
            self.dump(values)
    """
)


@pytest.fixture
def tasks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The task module, importable here and in the rerunning process."""
    (tmp_path / "gen_tasks.py").write_text(TASKS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    sys.modules.pop("gen_tasks", None)
    return importlib.import_module("gen_tasks")


@pytest.fixture(params=["local", "s3"])
def any_workspace(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A workspace on local disk and one on the S3-compatible server."""
    if request.param == "local":
        return str(tmp_path / "ws")
    return f"s3://{request.getfixturevalue('s3_bucket')}/ws"


def test_an_upstream_rerun_between_items_keeps_what_was_read(tasks: Any, any_workspace: str) -> None:
    """Firsts read Up(n=1) before another process reran it: the run commits the values it read.

    Before, the generator checked all its loads once at the end and raised ConcurrentCommitError
    ("each of two attempts ...", after one), failing a run that had read every output whole.
    """
    for n in (1, 2, 3):
        kart_core.build(tasks.Up(n=n, workspace_directory=any_workspace))

    assert kart_core.build(tasks.Firsts(workspace_directory=any_workspace)) == [os.getpid()] * 3
    # The rerun did commit: Up(n=1) now holds the other process's pid.
    (other,) = kart_core.build(tasks.Up(n=1, workspace_directory=any_workspace))
    assert other != os.getpid()


def test_an_upstream_rerun_between_items_under_two_workers(tasks: Any, tmp_path: Path) -> None:
    """The same under build(workers=2) (worker processes), which builds the upstreams in the same build."""
    workspace = str(tmp_path / "ws")
    result = kart_core.build(tasks.Firsts(workspace_directory=workspace), workers=2)
    now = [kart_core.build(tasks.Up(n=n, workspace_directory=workspace))[0] for n in (1, 2, 3)]
    assert result[1:] == now[1:]  # the pids of the worker processes that built Up(n=2) and Up(n=3)
    assert result[0] != now[0]  # Up(n=1) as read, before the other process's rerun replaced it


def test_two_outputs_of_one_task_from_two_commits_are_refused_by_name(tasks: Any, any_workspace: str) -> None:
    """Pair's 'a' was yielded, then another process replaced Pair's outputs: 'b' is from another commit."""
    kart_core.build(tasks.Pair(workspace_directory=any_workspace))
    task = tasks.BothOfPair(workspace_directory=any_workspace)
    with pytest.raises(kart_core.GokartBuildError) as caught:
        kart_core.build(task)

    ((error,),) = caught.value.raised_exceptions.values()
    assert isinstance(error, ConcurrentCommitError)
    assert str(error).startswith(
        f"Could not load the inputs of {task.kart_label()} from one commit: load_generator() had yielded an output"
    )
    assert "Build again when that commit has finished, or load that task's outputs with load()" in str(error)
    assert not task.complete()
    # Pair's outputs are the other process's one commit.
    pair = kart_core.build(tasks.Pair(workspace_directory=any_workspace))
    assert pair["a"] == pair["b"] != os.getpid()
