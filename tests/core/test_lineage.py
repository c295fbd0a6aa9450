"""Stale dependants (kart_core.lineage): a task built from an upstream commit replaced since runs again.

A run records the upstream outputs it loaded (commit and content hash) in its manifest; an upstream
committed again with other content makes the downstream stale: incomplete for a build (it reruns,
counted in the summary), a problem for ``kart verify``, STALE in ``kart tree``, named by ``kart why``.
Checked on local disk, fsspec memory:// and the S3-compatible server; a gokart-written upstream
(no manifest) never makes anything stale.
"""

from __future__ import annotations

import inspect
import json
import logging
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import luigi
import pytest
from gokart_twin import run_script

import kart_core
from kart_core import lineage
from kart_core.inspect.verify import verify_workspace
from kart_core.inspect.why import explain
from kart_core.manifest import Manifest, read_if_inputs, read_unverified
from kart_core.orchestrate import orchestrate
from kart_core.storage import storage_for
from kart_core.tree.task_info import make_task_info_as_tree_str
from kart_core.workspace import MANIFEST, log_task_path


class LnUp(kart_core.TaskOnKart[Any]):
    """Dumps ``value``: not part of the id, so a rerun with another value is an edit of code the id does not cover."""

    value = luigi.IntParameter(default=2, significant=False)

    def run(self) -> None:
        self.dump(10 * self.value)


class LnMid(kart_core.TaskOnKart[Any]):
    up = kart_core.TaskInstanceParameter()

    def run(self) -> None:
        self.dump(self.load("up") * 2)


class LnDown(kart_core.TaskOnKart[Any]):
    up = kart_core.TaskInstanceParameter()

    def run(self) -> None:
        self.dump(self.load("up") + 1)


class LnTwo(kart_core.TaskOnKart[Any]):
    """Two outputs: ``first`` holds ``first``, ``second`` holds ``second``."""

    first = luigi.IntParameter(default=1, significant=False)
    second = luigi.IntParameter(default=2, significant=False)

    def output(self) -> Any:
        return {"first": self.make_target("ln/first.pkl"), "second": self.make_target("ln/second.pkl")}

    def run(self) -> None:
        self.dump(self.first, "first")
        self.dump(self.second, "second")


class LnFirst(kart_core.TaskOnKart[Any]):
    """Loads only the first output of its upstream."""

    up = kart_core.TaskInstanceParameter()

    def run(self) -> None:
        self.dump(self.input()["up"]["first"].load() + 100)


class LnGkUp(kart_core.TaskOnKart[Any]):
    """The twin of a class a gokart script defines: same name, same output path."""

    def output(self) -> Any:
        return self.make_target("gk/up.pkl")


class LnGkDown(kart_core.TaskOnKart[Any]):
    def requires(self) -> Any:
        return LnGkUp(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(self.load() + 1)


@pytest.fixture(params=["local", "memory", "s3"])
def any_workspace(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "ws")
    if request.param == "memory":
        return f"memory://kart-lineage/{tmp_path.name}/ws"
    return f"s3://{request.getfixturevalue('s3_bucket')}/ws"


def _build(task: Any, **kwargs: Any) -> Any:
    return kart_core.build(task, reset_register=False, **kwargs)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]


def test_a_downstream_of_a_rerun_upstream_is_rebuilt(any_workspace: str, caplog: pytest.LogCaptureFixture) -> None:
    """The tester's repro: Up rerun after an edit; building Down again must not hand back 21."""
    ws = any_workspace
    assert _build(LnDown(up=LnUp(workspace_directory=ws), workspace_directory=ws)) == 21
    assert _build(LnUp(value=3, rerun=True, workspace_directory=ws)) == 30
    down = LnDown(up=LnUp(workspace_directory=ws), workspace_directory=ws)
    why = " ".join(explain(down))
    assert "was built from LnUp[" in why and "was committed again since" in why and "It will run." in why
    report = verify_workspace(ws)
    assert [problem.kind for problem in report.problems] == ["stale"] and not report.ok
    assert report.problems[0].task == down.kart_label()
    assert "(STALE) LnDown[" in make_task_info_as_tree_str(down)
    caplog.clear()  # the tree's complete() warned too
    with caplog.at_level(logging.WARNING):
        result = orchestrate([LnDown(up=LnUp(workspace_directory=ws), workspace_directory=ws)], load_roots=True)
    assert result.values == [31]
    assert result.stale == [result.ran[0]] and "1 ran (1 stale)" in result.summary()
    stale = [text for text in _warnings(caplog) if "is stale" in text]
    assert len(stale) == 1 and down.kart_label() in stale[0] and "LnUp[" in stale[0]
    assert verify_workspace(ws).ok  # rebuilt: nothing stale any more
    assert _build(LnDown(up=LnUp(workspace_directory=ws), workspace_directory=ws)) == 31
    manifest = read_unverified(storage_for(log_task_path(down, MANIFEST)), log_task_path(down, MANIFEST))
    assert manifest is not None and [item.task for item in manifest.inputs] == [LnUp().kart_label()]


@pytest.mark.parametrize(("workers", "executor"), [(2, "thread"), (2, "process")])
def test_a_stale_downstream_reruns_in_worker_pools(workspace: str, workers: int, executor: str) -> None:
    ws = workspace
    assert _build(LnDown(up=LnUp(workspace_directory=ws), workspace_directory=ws)) == 21
    _build(LnUp(value=5, rerun=True, workspace_directory=ws))
    down = LnDown(up=LnUp(workspace_directory=ws), workspace_directory=ws)
    assert _build(down, workers=workers, executor=executor) == 51
    assert verify_workspace(ws).ok


def test_the_literal_repro_with_a_helper_module_edit(tmp_path: Path) -> None:
    """helpers.FACTOR edited between builds, in a fresh process each time, as the tester ran it."""
    (tmp_path / "helpers.py").write_text("FACTOR = 2\n")
    (tmp_path / "pipe.py").write_text(
        textwrap.dedent(
            """
            import kart_core as gokart
            import helpers
            class Up(gokart.TaskOnKart):
                def run(self):
                    self.dump(10 * helpers.FACTOR)
            class Down(gokart.TaskOnKart):
                up = gokart.TaskInstanceParameter()
                def run(self):
                    self.dump(self.load("up") + 1)
            """
        )
    )

    def run(code: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", f"import kart_core, pipe; print({code})"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            # No .pyc of helpers.py: an edit within the same second keeps its size and mtime (seconds), and
            # Python would run the stale bytecode (seen in CI on a quiet machine: 20 instead of 30).
            env={
                **_environment(),
                "PYTHONPATH": f"{tmp_path}:{_environment().get('PYTHONPATH', '')}",
                "PYTHONDONTWRITEBYTECODE": "1",
            },
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().splitlines()[-1]

    assert run("kart_core.build(pipe.Down(up=pipe.Up()))") == "21"
    (tmp_path / "helpers.py").write_text("FACTOR = 3\n")
    assert run("kart_core.build(pipe.Up(rerun=True))") == "30"
    assert run("kart_core.build(pipe.Down(up=pipe.Up()))") == "31"


def _environment() -> dict[str, str]:
    import os

    return {key: value for key, value in os.environ.items() if key != "LUIGI_CONFIG_PATH"}


def _chain(ws: str, levels: int = 2) -> Any:
    """Down on Mid (``levels - 1`` of them, each on the one before) on Up."""
    task: Any = LnUp(workspace_directory=ws)
    for _ in range(levels - 1):
        task = LnMid(up=task, workspace_directory=ws)
    return LnDown(up=task, workspace_directory=ws)


def test_a_two_level_chain(workspace: str, caplog: pytest.LogCaptureFixture) -> None:
    """Up rerun with other content: Mid is stale (its own input replaced), Down is built on it. A build of
    Down reruns Mid, then Down (Mid's new output differs from what Down loaded); the views agree before."""
    ws = workspace
    assert _build(_chain(ws)) == 41
    _build(LnUp(value=3, rerun=True, workspace_directory=ws))
    report = verify_workspace(ws)
    assert sorted(problem.task.split("[")[0] for problem in report.problems) == ["LnDown", "LnMid"]
    assert {problem.kind for problem in report.problems} == {"stale"}
    tree = make_task_info_as_tree_str(_chain(ws))
    assert "(STALE) LnDown[" in tree and "(STALE) LnMid[" in tree
    why = " ".join(explain(_chain(ws)))
    assert "stale itself" in why and "first brings LnMid[" in why and "LnMid[" in why.split("first brings")[1]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        result = orchestrate([_chain(ws)], load_roots=True)
    assert result.values == [61] and len(result.ran) == 2 and not result.stale_roots
    assert "2 ran (2 stale)" in result.summary() and sorted(result.stale) == sorted(result.ran)
    assert not any("built on stale" in text for text in _warnings(caplog))
    assert verify_workspace(ws).ok
    assert _build(_chain(ws)) == 61


@pytest.mark.parametrize("levels", [3, 5])
def test_deeper_chains_rebuild_transitively(any_workspace: str, levels: int) -> None:
    ws = any_workspace
    assert _build(_chain(ws, levels)) == 10 * 2 * 2 ** (levels - 1) + 1
    _build(LnUp(value=3, rerun=True, workspace_directory=ws))
    result = orchestrate([_chain(ws, levels)], load_roots=True)
    assert result.values == [30 * 2 ** (levels - 1) + 1] and len(result.ran) == levels
    assert verify_workspace(ws).ok
    again = orchestrate([_chain(ws, levels)], load_roots=True)
    assert again.values == result.values and not again.ran and len(again.cached) == 1


@pytest.mark.parametrize(("workers", "executor"), [(2, "thread"), (2, "process")])
def test_a_chain_rebuilds_transitively_in_worker_pools(any_workspace: str, workers: int, executor: str) -> None:
    ws = any_workspace
    if executor == "process" and ws.startswith("memory://"):
        pytest.skip("a memory:// file system lives in one process: a worker process's commit is not seen")
    assert _build(_chain(ws, 3)) == 81
    _build(LnUp(value=3, rerun=True, workspace_directory=ws))
    assert _build(_chain(ws, 3), workers=workers, executor=executor) == 121
    assert verify_workspace(ws).ok


class LnParity(kart_core.TaskOnKart[Any]):
    """Dumps whether its upstream's value is even: equal content for 20 and 30."""

    up = kart_core.TaskInstanceParameter()

    def run(self) -> None:
        self.dump(self.load("up") % 2 == 0)


def test_an_upstream_rerun_with_equal_content_stops_the_propagation(workspace: str) -> None:
    """Up changes, Parity reruns and writes the same bytes: Down, which loaded Parity, stays cached (the
    rule is content: a task reruns when what it loaded changed, not because an upstream ran)."""
    ws = workspace

    def down() -> LnDown:
        return LnDown(up=LnParity(up=LnUp(workspace_directory=ws), workspace_directory=ws), workspace_directory=ws)

    assert _build(down()) == 2  # True + 1
    _build(LnUp(value=3, rerun=True, workspace_directory=ws))
    result = orchestrate([down()], load_roots=True)
    assert result.values == [2] and len(result.ran) == 1 and result.ran == result.stale
    assert result.ran[0].split(".")[-1].startswith("LnParity_") and len(result.cached) == 2
    assert not result.stale_roots and verify_workspace(ws).ok


def test_a_multi_output_requirement_counts_with_every_output(workspace: str) -> None:
    """First requires Two and loads only its first output: the second counts too (its run may have read it by path:
    the input floor), so a rerun of Two that changes only the second reruns First; its value stays 101."""
    ws = workspace
    first = LnFirst(up=LnTwo(workspace_directory=ws), workspace_directory=ws)
    assert _build(first) == 101
    _build(LnTwo(second=20, rerun=True, workspace_directory=ws))  # the output it did not load changed
    assert verify_workspace(ws).problems[0].kind == "stale"
    result = orchestrate([LnFirst(up=LnTwo(workspace_directory=ws), workspace_directory=ws)], load_roots=True)
    assert result.values == [101] and result.ran == result.stale and len(result.ran) == 1
    assert verify_workspace(ws).ok
    _build(LnTwo(first=7, second=20, rerun=True, workspace_directory=ws))
    assert verify_workspace(ws).problems[0].kind == "stale"
    assert _build(LnFirst(up=LnTwo(workspace_directory=ws), workspace_directory=ws)) == 107


def test_a_rerun_with_equal_content_is_not_stale(workspace: str) -> None:
    ws = workspace
    assert _build(LnDown(up=LnUp(workspace_directory=ws), workspace_directory=ws)) == 21
    _build(LnUp(rerun=True, workspace_directory=ws))  # a new commit, the same bytes
    assert verify_workspace(ws).ok
    result = orchestrate([LnDown(up=LnUp(workspace_directory=ws), workspace_directory=ws)], load_roots=True)
    assert result.values == [21] and not result.ran and not result.stale


def _truncate(path: str) -> None:
    storage = storage_for(path)
    with storage.open_read(path) as file:
        data = file.read()
    assert len(data) > 2
    with storage.atomic_write(path) as file:
        file.write(data[:2])  # a small int's pickle is 5 bytes: cut below that, or nothing changes


def test_an_upstream_repaired_with_equal_content_leaves_its_dependants_fresh(workspace: str) -> None:
    """A damaged Up rebuilt by repair (for another downstream) writes the same bytes: Down stays cached."""
    ws = workspace
    assert _build(LnDown(up=LnUp(workspace_directory=ws), workspace_directory=ws)) == 21
    _truncate(LnUp(workspace_directory=ws).output().path())
    result = orchestrate([LnMid(up=LnUp(workspace_directory=ws), workspace_directory=ws)], load_roots=True)
    assert result.values == [40] and len(result.repaired) == 1  # repaired Up first
    assert verify_workspace(ws).ok
    result = orchestrate([LnDown(up=LnUp(workspace_directory=ws), workspace_directory=ws)], load_roots=True)
    assert result.values == [21] and not result.stale


class LnCounted(kart_core.TaskOnKart[Any]):
    """Not deterministic: dumps 10 times the number of its runs so far (counted in ``journal``, a local file)."""

    journal = luigi.Parameter(significant=False)

    def run(self) -> None:
        with open(self.journal, "a") as handle:
            handle.write("run\n")
        with open(self.journal) as handle:
            self.dump(10 * len(handle.read().splitlines()))


def _counted(ws: str, tmp_path: Path) -> LnCounted:
    return LnCounted(journal=str(tmp_path / "journal.txt"), workspace_directory=ws)


@pytest.mark.parametrize(("workers", "executor"), [(1, "thread"), (2, "thread"), (2, "process")])
def test_an_upstream_repaired_with_other_content_makes_its_dependants_stale(
    any_workspace: str, tmp_path: Path, workers: int, executor: str
) -> None:
    """A damaged, non-deterministic Up rebuilt by repair (while another downstream runs) writes other content:
    Down, which loaded the old content, is stale for every view and the next build reruns it."""
    ws = any_workspace
    if executor == "process" and ws.startswith("memory://"):
        pytest.skip("a memory:// file system lives in one process: a worker process's commit is not seen")
    assert _build(LnDown(up=_counted(ws, tmp_path), workspace_directory=ws)) == 11
    _truncate(_counted(ws, tmp_path).output().path())
    mid = LnMid(up=_counted(ws, tmp_path), workspace_directory=ws)
    result = orchestrate([mid], workers=workers, executor=executor, load_roots=True)
    assert result.values == [40] and len(result.repaired) == 1  # Up rebuilt during Mid's run: 20 now
    down = LnDown(up=_counted(ws, tmp_path), workspace_directory=ws)
    report = verify_workspace(ws)
    assert [(problem.kind, problem.task) for problem in report.problems] == [("stale", down.kart_label())]
    assert "(STALE) LnDown[" in make_task_info_as_tree_str(down)
    assert "It will run." in " ".join(explain(down))
    again = orchestrate([down], workers=workers, executor=executor, load_roots=True)
    assert again.values == [21] and again.stale == again.ran and len(again.ran) == 1
    assert verify_workspace(ws).ok and (tmp_path / "journal.txt").read_text().count("run") == 2


def test_a_repair_with_other_content_two_levels_up_reruns_the_chain(workspace: str, tmp_path: Path) -> None:
    """Up -> Mid -> Down built; Up damaged and repaired with other content by another task's run: Mid is
    stale, Down is built on it; a build of Down reruns Mid, then Down."""
    ws = workspace

    def down() -> LnDown:
        return LnDown(up=LnMid(up=_counted(ws, tmp_path), workspace_directory=ws), workspace_directory=ws)

    assert _build(down()) == 21
    _truncate(_counted(ws, tmp_path).output().path())
    assert _build(LnDown(up=_counted(ws, tmp_path), workspace_directory=ws)) == 21  # repairs Up: 20 now
    assert sorted(problem.task.split("[")[0] for problem in verify_workspace(ws).problems) == ["LnDown", "LnMid"]
    result = orchestrate([down()], load_roots=True)
    assert result.values == [41] and len(result.ran) == 2 and sorted(result.stale) == sorted(result.ran)
    assert verify_workspace(ws).ok


class LnByOther(kart_core.TaskOnKart[Any]):
    """Requires nothing, but loads Mid(Up)'s output through its target: recorded, not required."""

    def run(self) -> None:
        mid = LnMid(up=LnUp(workspace_directory=self.workspace_directory), workspace_directory=self.workspace_directory)
        self.dump(mid.output().load() + 1000)


def test_a_root_built_on_a_stale_upstream_it_does_not_require_is_named(
    workspace: str, caplog: pytest.LogCaptureFixture
) -> None:
    """ByOther loaded Mid(Up) without requiring it; Up rerun with other content in the same build makes Mid
    stale. The build walks again (Up's commit replaced content a checked task had loaded), finds ByOther
    built on stale content but cannot reach Mid: ByOther stays cached, a warning names it (``stale_roots``)."""
    ws = workspace
    assert _build(LnMid(up=LnUp(workspace_directory=ws), workspace_directory=ws)) == 40
    assert _build(LnByOther(workspace_directory=ws)) == 1040
    with caplog.at_level(logging.WARNING):
        result = orchestrate(
            [LnByOther(workspace_directory=ws), LnUp(value=3, rerun=True, workspace_directory=ws)], load_roots=True
        )
    assert result.values == [1040, 30] and result.stale_roots == [result.roots[0]]
    assert result.cached == [result.roots[0]] and "(1 built on stale upstreams)" in result.summary()
    warned = [text for text in _warnings(caplog) if "LnByOther[" in text and "stale itself" in text]
    assert warned and "This build did not bring LnMid[" in warned[0]
    assert "first brings" not in warned[0]  # it did not: nothing in the build requires Mid


GOKART_UP = """
import json, sys
import gokart

class LnGkUp(gokart.TaskOnKart):
    def output(self):
        return self.make_target("gk/up.pkl")

    def run(self):
        self.dump(VALUE)

task = LnGkUp(workspace_directory=WORKSPACE, rerun=RERUN)
gokart.build(task, reset_register=False, log_level=40)
print(json.dumps(task.output().load()))
"""


def test_a_gokart_written_upstream_rerun_by_gokart_makes_its_reader_stale(tmp_path: Path) -> None:
    """An output gokart wrote has no integrity record: the reader records its stamp and content hash (attacker N12),
    and gokart's rerun of it with other content makes the reader stale (before, nothing was recorded or claimed)."""
    ws = str(tmp_path / "ws")

    def gokart_up(value: int, rerun: bool, name: str) -> Any:
        script = GOKART_UP.replace("VALUE", str(value)).replace("WORKSPACE", repr(ws)).replace("RERUN", str(rerun))
        return run_script("gokart", script, tmp_path / name)

    assert gokart_up(1, False, "first") == 1
    down = LnGkDown(workspace_directory=ws)
    assert _build(down) == 2
    manifest = read_unverified(storage_for(log_task_path(down, MANIFEST)), log_task_path(down, MANIFEST))
    assert manifest is not None and [(item.commit, item.stamp is not None) for item in manifest.inputs] == [
        (None, True)
    ]
    assert verify_workspace(ws).ok
    assert gokart_up(5, True, "second") == 5
    assert [problem.kind for problem in verify_workspace(ws).problems] == ["stale"]
    result = orchestrate([LnGkDown(workspace_directory=ws)], load_roots=True)
    assert result.values == [6]


def test_a_long_lineage_is_checked_without_recursion(workspace: str) -> None:
    """Lineage.check walks a chain of 80 manifests with 30 frames to spare (a recursive walk needs 80+)."""
    ws = workspace
    root = _chain(ws, 80)
    _build(root)
    _build(LnUp(value=3, rerun=True, workspace_directory=ws))
    path = log_task_path(root, MANIFEST)
    checked = lineage.Lineage()
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 30)
    try:
        verdict = checked.check(path, ws)
    finally:
        sys.setrecursionlimit(limit)
    assert verdict.stale and not verdict.direct and verdict.behind[0].startswith("LnMid[")
    # Each manifest of the lineage dropped once judged against (a chain of 100,000 kept them all): the checked one
    # stays, and all 80 upstreams were reached (recorded as inputs).
    assert list(checked.manifests) == [path]
    assert len(checked.built_on([log_task_path(LnUp(workspace_directory=ws), MANIFEST)])) == 80


def _manifest_json(inputs_key: str, colon: str = ":", run_inputs: Any = None) -> bytes:
    """A manifest written by hand: ``inputs_key`` spells the top-level inputs key as it appears in the JSON."""
    item = '{"task":"Up[1234abcd]","manifest":"log/manifest/Up_x.json","key":"k","commit":"c1","digest":"d1"}'
    run = json.dumps({"task_params": {"inputs": run_inputs}}) if run_inputs is not None else "null"
    text = f'{{"format":"kart-manifest/1","task":"T[1]","commit":"c2","outputs":{{}},"run":{run}'
    if inputs_key:
        text += f",{inputs_key}{colon}[{item}]"
    return (text + "}").encode()


@pytest.mark.parametrize(
    "data",
    [
        _manifest_json('"inputs"'),
        _manifest_json('"inputs"', " :\n "),
        _manifest_json('"\\u0069nputs"'),  # an escaped key is parsed as "inputs" too
        _manifest_json(""),
        _manifest_json("", run_inputs='["a", "b"]'),  # KedroNodeRun's inputs parameter: a string
        _manifest_json("", run_inputs=["a", "b"]),  # an array under another object: parsed, no inputs
        b'{"format":"kart-manifest/1","commit":"c2","outputs":{},"inputs":[',  # not JSON
    ],
)
def test_read_if_inputs_finds_the_inputs_read_unverified_finds(tmp_path: Path, data: bytes) -> None:
    """The shortcut that skips parsing a manifest without inputs never misses recorded inputs."""
    path = tmp_path / "m.json"
    path.write_bytes(data)
    storage = storage_for(str(path))
    full, quick = read_unverified(storage, str(path)), read_if_inputs(storage, str(path))
    assert (quick.inputs if quick else ()) == (full.inputs if full else ())
    assert quick is None or quick == read_unverified(storage, str(path), run=False)


def test_tree_and_why_read_each_manifest_of_a_lineage_a_bounded_number_of_times(
    workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cached chain of 40 loads: each task's STALE check in ``kart tree`` follows the records up; one
    lineage shared over the view reads each manifest a few times, not once per task below it (820)."""
    ws = workspace
    task: Any = LnUp(workspace_directory=ws)
    for _ in range(40):
        task = LnDown(up=task, workspace_directory=ws)
    assert _build(task) == 60
    parsed: list[bytes] = []
    original = Manifest.from_bytes.__func__  # type: ignore[attr-defined]

    def counted(cls: type[Manifest], data: bytes, **options: Any) -> Manifest:
        parsed.append(data)
        return original(cls, data, **options)  # type: ignore[no-any-return]

    monkeypatch.setattr(Manifest, "from_bytes", classmethod(counted))
    tree = make_task_info_as_tree_str(task)
    assert tree.count("(COMPLETE)") == 41 and "STALE" not in tree
    assert len(parsed) <= 3 * 41
    parsed.clear()
    assert "It will not run." in " ".join(explain(task))
    assert len(parsed) <= 3 * 41


def _spell_as_before_session_9(down: LnDown, spelled: str) -> None:
    """Rewrite ``down``'s manifest as kart before session 9 wrote it: its upstream's manifest, in another
    workspace, as the writer spelled it (relative to the writer's working directory)."""
    path = log_task_path(down, MANIFEST)
    document = json.loads(Path(path).read_bytes())
    (recorded,) = document["inputs"]
    assert Path(recorded["manifest"]).is_absolute()  # what kart writes now
    recorded["manifest"] = spelled
    Path(path).write_bytes(json.dumps(document, sort_keys=True, separators=(",", ":")).encode())


@pytest.mark.parametrize(("workers", "executor"), [(1, "thread"), (2, "thread"), (2, "process")])
def test_an_old_relative_reference_to_another_workspace_does_not_depend_on_the_checker_s_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int, executor: Any
) -> None:
    """Down(Up) built in ``project`` with both workspaces given relative (``down_ws``, ``up_ws``), its manifest
    naming Up's as ``up_ws/log/manifest/..`` (older kart); Up rerun with other content (30). Checked from
    another folder, Down is stale and is built again (31): the reference was read from the checker's working
    directory (no such file there: never stale), now from the manifest's workspace's folder."""
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(project)
    down = LnDown(up=LnUp(workspace_directory="up_ws"), workspace_directory="down_ws")
    assert kart_core.build(down, reset_register=False) == 21
    _spell_as_before_session_9(down, log_task_path(LnUp(workspace_directory="up_ws"), MANIFEST))
    up_ws, down_ws = str(project / "up_ws"), str(project / "down_ws")
    assert kart_core.build(LnUp(value=3, rerun=True, workspace_directory=up_ws), reset_register=False) == 30
    monkeypatch.chdir(elsewhere)
    report = verify_workspace(down_ws)
    assert [problem.kind for problem in report.problems] == ["stale"]
    assert "LnUp[" in report.problems[0].detail and "committed again since" in report.problems[0].detail
    again = LnDown(up=LnUp(workspace_directory=up_ws), workspace_directory=down_ws)
    assert kart_core.build(again, reset_register=False, workers=workers, executor=executor) == 31
    assert verify_workspace(down_ws).ok


def test_an_old_relative_reference_resolves_from_the_manifest_s_workspace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``lineage.resolve`` of a relative reference to another workspace: the first that exists of the
    workspace's folder and its parents, nearest first, else the workspace's parent; never the cwd."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cwd" / "up" / "log" / "manifest").mkdir(parents=True)
    (tmp_path / "cwd" / "up" / "log" / "manifest" / "A_1.json").write_text("{}")  # a decoy in the cwd
    monkeypatch.chdir(tmp_path / "cwd")
    reference = "up/log/manifest/A_1.json"
    project = tmp_path / "a" / "project"
    (project / "ws").mkdir(parents=True)
    # Nothing there: joined to the workspace's parent (gokart's `./resources/` in the writer's cwd).
    assert lineage.resolve(reference, str(project / "ws")) == str(project / reference)
    (tmp_path / "a" / "up" / "log" / "manifest").mkdir(parents=True)
    (tmp_path / "a" / "up" / "log" / "manifest" / "A_1.json").write_text("{}")
    assert lineage.resolve(reference, str(project / "ws")) == str(tmp_path / "a" / reference)
    assert lineage.resolve(reference, f"file://{project}/ws/") == str(tmp_path / "a" / reference)
    (project / "ws" / "up" / "log" / "manifest").mkdir(parents=True)  # a workspace given as `.` by its writer
    (project / "ws" / "up" / "log" / "manifest" / "A_1.json").write_text("{}")
    assert lineage.resolve(reference, str(project / "ws")) == str(project / "ws" / reference)
    assert lineage.resolve("../" + reference, str(project / "ws")) == str(tmp_path / "a" / reference)
    assert lineage.resolve(reference, "s3://bucket/runs/ws") == "s3://bucket/runs/" + reference
    assert lineage.resolve("log/manifest/A_1.json", "/ws") == "/ws/log/manifest/A_1.json"


def _moved_graph(up_ws: str, down_ws: str) -> LnDown:
    """Down(Mid(Up)): Up in ``up_ws``, Mid and Down in ``down_ws`` (Mid records Up's manifest by full path).

    Made afresh, as a new process would: luigi's instance cache keys a task by its parameters' ids, and
    ``workspace_directory`` is not in an id (gokart's), so it would hand back the Mid made over the old Up.
    """
    luigi.task_register.Register.clear_instance_cache()
    return LnDown(
        up=LnMid(up=LnUp(workspace_directory=up_ws), workspace_directory=down_ws), workspace_directory=down_ws
    )


@pytest.mark.parametrize(("workers", "executor"), [(1, "thread"), (2, "thread"), (2, "process")])
def test_an_upstream_workspace_moved_then_rerun_makes_the_other_workspace_s_tasks_stale(
    tmp_path: Path, workers: int, executor: Any
) -> None:
    """Attacker F11: Down(Mid(Up)), Up in ws1, Mid and Down in ws2 (41). ws1 moved to ws1b, Up rerun there
    with other content (30): Mid recorded Up's manifest at ws1's full path, where nothing is now, so it
    counted as fresh and 41 was handed back. Now the recorded input is read where Up's workspace is now
    (Up's workspace-relative manifest name in its current workspace): Mid and Down run again (61)."""
    ws1, ws1b, ws2 = tmp_path / "ws1", tmp_path / "ws1b", str(tmp_path / "ws2")
    assert _build(_moved_graph(str(ws1), ws2)) == 41
    ws1.rename(ws1b)
    assert _build(LnUp(value=3, rerun=True, workspace_directory=str(ws1b))) == 30
    assert _build(_moved_graph(str(ws1b), ws2), workers=workers, executor=executor) == 61
    assert _build(_moved_graph(str(ws1b), ws2), workers=workers, executor=executor) == 61


def test_kart_verify_reads_a_moved_upstream_workspace_it_is_given(tmp_path: Path) -> None:
    """``kart verify -w ws2`` has no task graph: after ws1 moved to ws1b and Up was rerun there, it reads
    the recorded path (nothing there) and finds nothing; given ``--upstream-workspace ws1b`` it reads Up's
    manifest there and names Mid stale (exit 3), and Down built on it."""
    from click.testing import CliRunner

    from kart_core.cli import cli

    ws1, ws1b, ws2 = tmp_path / "ws1", tmp_path / "ws1b", str(tmp_path / "ws2")
    assert _build(_moved_graph(str(ws1), ws2)) == 41
    ws1.rename(ws1b)
    assert _build(LnUp(value=3, rerun=True, workspace_directory=str(ws1b))) == 30
    assert verify_workspace(ws2).ok  # no graph, no place given: the old path holds nothing (unknown, not a failure)
    report = verify_workspace(ws2, upstreams=[str(ws1b)])
    assert sorted(problem.task.split("[")[0] for problem in report.problems) == ["LnDown", "LnMid"]
    assert all(problem.kind == "stale" for problem in report.problems)
    result = CliRunner().invoke(cli, ["verify", "-w", ws2, "--upstream-workspace", str(ws1b)], catch_exceptions=False)
    assert result.exit_code == 3
    assert "committed again since" in result.output
    missing = CliRunner().invoke(cli, ["verify", "-w", ws2, "--upstream-workspace", str(tmp_path / "nope")])
    assert missing.exit_code != 0 and "nope" in missing.output


def test_a_copied_upstream_workspace_rerun_makes_the_other_workspace_s_task_stale(tmp_path: Path) -> None:
    """ws1 copied to ws1b (``cp -a``) and Up rerun in the copy (30): Down's record named the old copy's
    manifest, unchanged, so Down (21) counted as fresh; now Up's manifest in ws1b is read: Down runs (31).
    ``kart why`` and ``kart tree`` (the graph at hand) name it stale first."""
    ws1, ws1b, ws2 = tmp_path / "ws1", tmp_path / "ws1b", str(tmp_path / "ws2")
    assert _build(LnDown(up=LnUp(workspace_directory=str(ws1)), workspace_directory=ws2)) == 21
    luigi.task_register.Register.clear_instance_cache()  # a new process: see _moved_graph
    shutil.copytree(ws1, ws1b)
    assert _build(LnUp(value=3, rerun=True, workspace_directory=str(ws1b))) == 30
    down = LnDown(up=LnUp(workspace_directory=str(ws1b)), workspace_directory=ws2)
    assert "committed again since" in " ".join(explain(down))
    assert "STALE" in make_task_info_as_tree_str(down)
    assert _build(LnDown(up=LnUp(workspace_directory=str(ws1b)), workspace_directory=ws2)) == 31


def test_both_workspaces_moved_together_then_rerun_makes_the_downstream_stale(tmp_path: Path) -> None:
    """ws1 and ws2 moved together under another folder (a new checkout), Up rerun there (30): Down's record
    named Up's manifest in the old folder, gone; now it is read in Up's current workspace: Down runs (31)."""
    old, new = tmp_path / "old", tmp_path / "new"
    assert _build(LnDown(up=LnUp(workspace_directory=str(old / "ws1")), workspace_directory=str(old / "ws2"))) == 21
    luigi.task_register.Register.clear_instance_cache()  # a new process: see _moved_graph
    old.rename(new)
    assert _build(LnUp(value=3, rerun=True, workspace_directory=str(new / "ws1"))) == 30
    assert _build(LnDown(up=LnUp(workspace_directory=str(new / "ws1")), workspace_directory=str(new / "ws2"))) == 31


def test_an_upstream_workspace_on_s3_copied_then_rerun_makes_the_downstream_stale(
    tmp_path: Path, s3_bucket: str
) -> None:
    """Up on S3 (s3://bucket/ws1), Down on local disk (21); ws1's objects copied to s3://bucket/ws1b and Up
    rerun there (30): Down's record named the old prefix's manifest, unchanged; now ws1b's is read (31)."""
    import fsspec

    from kart_core.storage.remote import s3_options

    ws1, ws1b, ws2 = f"s3://{s3_bucket}/ws1", f"s3://{s3_bucket}/ws1b", str(tmp_path / "ws2")
    assert _build(LnDown(up=LnUp(workspace_directory=ws1), workspace_directory=ws2)) == 21
    luigi.task_register.Register.clear_instance_cache()  # a new process: see _moved_graph
    fs = fsspec.filesystem("s3", **s3_options())
    for path in fs.find(ws1):
        fs.copy(path, ws1b + path[len(ws1) - len("s3://") :])
    assert _build(LnUp(value=3, rerun=True, workspace_directory=ws1b)) == 30
    assert _build(LnDown(up=LnUp(workspace_directory=ws1b), workspace_directory=ws2)) == 31


def test_resolve_reads_a_full_path_where_its_task_s_workspace_is_now(tmp_path: Path) -> None:
    """``lineage.resolve`` with the current upstream manifests: a full path or URL whose workspace-relative
    name a current upstream has is that upstream's manifest; another as recorded."""
    current = {"log/manifest/A_1.json": "/new/ws1/log/manifest/A_1.json"}
    assert lineage.resolve("/old/ws1/log/manifest/A_1.json", "/ws2", current) == "/new/ws1/log/manifest/A_1.json"
    assert lineage.resolve("s3://b/ws1/log/manifest/A_1.json", "/ws2", current) == "/new/ws1/log/manifest/A_1.json"
    assert lineage.resolve("/old/ws1/log/manifest/B_2.json", "/ws2", current) == "/old/ws1/log/manifest/B_2.json"
    assert lineage.resolve("/old/ws1/elsewhere/A_1.json", "/ws2", current) == "/old/ws1/elsewhere/A_1.json"
    assert lineage.resolve("log/manifest/A_1.json", "/ws2", current) == "/ws2/log/manifest/A_1.json"


@pytest.mark.parametrize("how", ["moved", "deleted"])
def test_kart_verify_without_the_upstream_workspace_reports_a_missing_upstream_record_as_unknown(
    tmp_path: Path, how: str
) -> None:
    """Without a task graph and without ``--upstream-workspace``, an input from another workspace whose record
    is gone from where it was recorded cannot be told fresh or stale: verify names it (kind "upstream"), the
    recorded path and the flag to pass, instead of counting the task as fresh. It fails only ``--strict``; the
    inputs of this workspace (Down on Mid) and an upstream record still in place report nothing."""
    from click.testing import CliRunner

    from kart_core.cli import cli

    ws1, ws2 = tmp_path / "ws1", str(tmp_path / "ws2")
    assert _build(_moved_graph(str(ws1), ws2)) == 41
    assert verify_workspace(ws2).problems == ()  # in place: nothing to say
    if how == "moved":
        ws1.rename(tmp_path / "ws1b")
    else:
        shutil.rmtree(ws1)
    report = verify_workspace(ws2)
    assert [(problem.kind, problem.task.split("[")[0]) for problem in report.problems] == [("upstream", "LnMid")]
    (problem,) = report.problems
    assert problem.path.startswith(str(ws1)) and "LnUp[" in problem.detail
    assert "--upstream-workspace" in problem.detail and "unknown" in problem.detail
    assert report.ok and not report.strict_ok
    result = CliRunner().invoke(cli, ["verify", "-w", ws2], catch_exceptions=False)
    assert result.exit_code == 0
    assert "--upstream-workspace" in result.output and "1 upstream record(s) not found" in result.output
    assert CliRunner().invoke(cli, ["verify", "-w", ws2, "--strict"]).exit_code == 3
    if how == "moved":  # given where it is now: read there, nothing unknown
        assert verify_workspace(ws2, upstreams=[str(tmp_path / "ws1b")]).problems == ()
