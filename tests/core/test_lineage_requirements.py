"""The input floor (kart_core.lineage, kart_core.transaction): a run records each committed output of the tasks its
task requires as it was when ``run()`` began, loaded or not, so a requirement committed again with other content
makes the task stale whatever way the run read it: by path, in a subprocess (attacker at21 L5), from a memoized
loader another task's run filled (at20 K15). A recommit with equal content does not. A manifest an older kart wrote
(no ``requirements`` key) whose task requires a committed output it does not record is stale once (at21 L1).

Real builds on local disk; the subprocess case runs real interpreters.
"""

from __future__ import annotations

import functools
import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import luigi
import pytest

import kart_core
from kart_core.inspect.why import explain
from kart_core.manifest import read_unverified
from kart_core.orchestrate import orchestrate
from kart_core.storage import storage_for
from kart_core.workspace import MANIFEST, log_task_path


class FlUp(kart_core.TaskOnKart[int]):
    """Dumps 10 * ``value``: not part of the id, so a rerun with another value is an edit the id does not cover."""

    value = luigi.IntParameter(default=1, significant=False)

    def run(self) -> None:
        self.dump(10 * self.value)


class FlByPath(kart_core.TaskOnKart[int]):
    """Requires FlUp and reads its output by path (pickle), never through kart."""

    def requires(self) -> FlUp:
        return FlUp(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        with open(self.input().path(), "rb") as file:
            self.dump(pickle.load(file) + 1)


class FlLoads(kart_core.TaskOnKart[int]):
    """Requires FlUp and loads it through kart."""

    def requires(self) -> FlUp:
        return FlUp(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(self.load() + 2)


class FlAlone(kart_core.TaskOnKart[int]):
    """Requires nothing and loads nothing."""

    def run(self) -> None:
        self.dump(7)


def _build(task: Any, **kwargs: Any) -> Any:
    return kart_core.build(task, reset_register=False, **kwargs)


def _manifest_path(task: Any) -> str:
    return log_task_path(task, MANIFEST)


def _document(task: Any) -> dict[str, Any]:
    with open(_manifest_path(task), "rb") as file:
        return json.loads(file.read())


def _ran(task: Any) -> list[str]:
    return list(orchestrate([task], load_roots=True).ran)


def test_a_required_output_read_by_path_makes_the_task_stale_when_committed_again_with_other_content(
    workspace: str,
) -> None:
    """Equal content first (a new commit, the same bytes): still cached. Then other content: it reruns, 31."""
    ws = workspace
    assert _build(FlByPath(workspace_directory=ws)) == 11
    document = _document(FlByPath(workspace_directory=ws))
    assert document["requirements"] is True
    (floor,) = document["inputs"]
    up = FlUp(workspace_directory=ws)
    assert floor["required"] is True and floor["task"] == up.kart_label()
    assert floor["commit"] == _document(up)["commit"]
    _build(FlUp(rerun=True, workspace_directory=ws))  # the same bytes again
    result = orchestrate([FlByPath(workspace_directory=ws)], load_roots=True)
    assert result.values == [11] and not result.ran
    _build(FlUp(value=3, rerun=True, workspace_directory=ws))
    why = " ".join(explain(FlByPath(workspace_directory=ws)))
    assert f"requires {up.kart_label()} and was built while it held commit" in why
    assert f"{up.kart_label()}, which it requires, was committed again since" in why and "It will run." in why
    result = orchestrate([FlByPath(workspace_directory=ws)], load_roots=True)
    assert result.values == [31] and result.stale == result.ran and len(result.ran) == 1
    assert _ran(FlByPath(workspace_directory=ws)) == []  # recorded again: cached now


def test_a_loaded_requirement_is_recorded_as_loaded_not_required(workspace: str) -> None:
    """A load kart saw keeps its record (no ``required`` mark); a task requiring nothing records nothing."""
    ws = workspace
    assert _build(FlLoads(workspace_directory=ws)) == 12
    (item,) = _document(FlLoads(workspace_directory=ws))["inputs"]
    assert "required" not in item and item["task"] == FlUp(workspace_directory=ws).kart_label()
    assert _build(FlAlone(workspace_directory=ws)) == 7
    alone = _document(FlAlone(workspace_directory=ws))
    assert "inputs" not in alone and alone["requirements"] is True


SUBPROCESS_PIPE = """
import os, subprocess, sys
import luigi
import kart_core

class SpUp(kart_core.TaskOnKart):
    value = luigi.IntParameter(default=1, significant=False)
    def run(self):
        self.dump(10 * self.value)

class SpOuter(kart_core.TaskOnKart):
    def requires(self):
        return SpUp()
    def run(self):
        code = "import kart_core, sp_pipe; print(sp_pipe.SpUp().output().load())"
        out = subprocess.check_output([sys.executable, "-c", code], env=os.environ.copy(), text=True)
        self.dump(int(out.strip().splitlines()[-1]) * 10)
"""


def test_a_run_that_loads_its_requirement_in_a_subprocess_reruns_when_it_changes(tmp_path: Path) -> None:
    """Attacker at21 L5 (``load``): Outer's run() loads the Up it requires in ``python -c``; Up rerun with 2 in
    another process; Outer built again gives 200, not 100."""
    (tmp_path / "sp_pipe.py").write_text(textwrap.dedent(SUBPROCESS_PIPE))
    environment = {key: value for key, value in os.environ.items() if key != "LUIGI_CONFIG_PATH"}
    environment["PYTHONPATH"] = f"{tmp_path}:{environment.get('PYTHONPATH', '')}"

    def run(code: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", f"import kart_core, sp_pipe; print({code})"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            env=environment,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().splitlines()[-1]

    assert run("kart_core.build(sp_pipe.SpOuter(), log_level=40)") == "100"
    assert run("kart_core.build(sp_pipe.SpUp(value=2, rerun=True), log_level=40)") == "20"
    assert run("kart_core.build(sp_pipe.SpOuter(), log_level=40)") == "200"


@functools.lru_cache
def _rate(workspace: str) -> int:
    """A memoized lookup, as a helper module keeps one: the first caller's load fills it for every later one."""
    return int(FlLookup(workspace_directory=workspace).output().load())


class FlLookup(kart_core.TaskOnKart[int]):
    rate = luigi.IntParameter(default=10, significant=False)

    def run(self) -> None:
        self.dump(self.rate)


class FlPrice(kart_core.TaskOnKart[int]):
    item = luigi.IntParameter()

    def requires(self) -> FlLookup:
        return FlLookup(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(self.item * _rate(str(self.workspace_directory)))


class FlAll(kart_core.TaskOnKart[list[int]]):
    def requires(self) -> list[FlPrice]:
        return [FlPrice(item=item, workspace_directory=self.workspace_directory) for item in (1, 2)]

    def run(self) -> None:
        self.dump([target.load() for target in self.input()])


def test_a_value_from_a_memoized_loader_another_run_filled_counts_as_its_requirement(workspace: str) -> None:
    """Attacker at20 K15: Price(2) got the rate from the cache Price(1)'s run filled (no load of its own). Lookup
    rerun with 20 (the cache emptied, as in a new process): both prices rerun, [20, 40] (before: [20, 20])."""
    ws = workspace
    _rate.cache_clear()
    assert _build(FlAll(workspace_directory=ws)) == [10, 20]
    _build(FlLookup(rate=20, rerun=True, workspace_directory=ws))
    _rate.cache_clear()
    assert _build(FlAll(workspace_directory=ws)) == [20, 40]
    _rate.cache_clear()


def _as_older_kart(task: Any, keep_inputs: bool = False) -> None:
    """Rewrite ``task``'s manifest as kart before 2026-12-03 wrote it: no ``requirements`` key and no input of a
    requirement its run did not load (before lineage, 2026-11-30: no ``inputs`` at all)."""
    path = _manifest_path(task)
    document = _document(task)
    document.pop("requirements", None)
    if keep_inputs:
        document["inputs"] = [item for item in document.get("inputs", []) if not item.get("required")]
        if not document["inputs"]:
            del document["inputs"]
    else:
        document.pop("inputs", None)
    with storage_for(path).atomic_write(path) as file:
        file.write(json.dumps(document).encode())
    assert read_unverified(storage_for(path), path) is not None


def test_a_task_an_older_kart_built_without_recording_its_requirements_runs_once(workspace: str) -> None:
    """Attacker at21 L1: Down (loads Up) built by kart before lineage, whose manifest has no ``inputs``; Up rerun with
    other content after the upgrade: Down reruns (22 -> 42) instead of being served 12 for good, and only once. A task
    that requires nothing is unaffected, and so is an older manifest that records a load of each required output."""
    ws = workspace
    assert _build(FlLoads(workspace_directory=ws)) == 12
    assert _build(FlAlone(workspace_directory=ws)) == 7
    _as_older_kart(FlLoads(workspace_directory=ws))
    _as_older_kart(FlAlone(workspace_directory=ws))
    _build(FlUp(value=4, rerun=True, workspace_directory=ws))
    why = " ".join(explain(FlLoads(workspace_directory=ws)))
    assert "did not record what a task requires" in why and "runs once to record it" in why and "It will run." in why
    result = orchestrate([FlLoads(workspace_directory=ws), FlAlone(workspace_directory=ws)], load_roots=True)
    assert result.values == [42, 7] and len(result.ran) == 1 and result.ran == result.stale
    assert _document(FlLoads(workspace_directory=ws))["requirements"] is True
    assert _ran(FlLoads(workspace_directory=ws)) == []  # once
    # Between lineage and this change: the load is recorded, the requirement covered: no rerun.
    _as_older_kart(FlLoads(workspace_directory=ws), keep_inputs=True)
    assert _ran(FlLoads(workspace_directory=ws)) == []


def test_an_older_manifest_with_an_unloaded_requirement_runs_once_even_when_it_did_not_change(workspace: str) -> None:
    """Whether an older kart's run read a requirement it did not load cannot be told: stale once, then cached."""
    ws = workspace
    assert _build(FlByPath(workspace_directory=ws)) == 11
    _as_older_kart(FlByPath(workspace_directory=ws), keep_inputs=True)
    task = FlByPath(workspace_directory=ws)
    assert task.complete() is False and task.kart_stale and task.kart_stale[0].unrecorded
    assert "kart before 2026-12-03 did not record whether FlUp[" in task.kart_stale[0].reason()
    assert len(_ran(FlByPath(workspace_directory=ws))) == 1
    assert _ran(FlByPath(workspace_directory=ws)) == []


@pytest.mark.parametrize("workers", [1, 2])
def test_a_chain_read_by_path_reruns_transitively(workspace: str, workers: int) -> None:
    """Up <- ByPath <- Top (Top loads ByPath): Up rerun with other content reruns ByPath (required, read by path),
    then Top; a rerun of Up with equal content afterwards reruns nothing."""
    ws = workspace
    top = FlLoadsByPath(workspace_directory=ws)
    assert _build(top) == 1100
    _build(FlUp(value=2, rerun=True, workspace_directory=ws))
    assert _build(FlLoadsByPath(workspace_directory=ws), workers=workers) == 2100
    _build(FlUp(value=2, rerun=True, workspace_directory=ws))
    assert _ran(FlLoadsByPath(workspace_directory=ws)) == []


class FlLoadsByPath(kart_core.TaskOnKart[int]):
    def requires(self) -> FlByPath:
        return FlByPath(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(self.load() * 100)
