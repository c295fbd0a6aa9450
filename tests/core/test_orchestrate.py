"""orchestrate(): one build for build(), gokart.run and `kart run` — walk, execute, summary, hooks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import luigi
import pytest

import kart_core
from kart_core.file_processor import builtin as builtin_formats
from kart_core.hooks import create_hook_manager, hookimpl
from kart_core.orchestrate import orchestrate
from kart_core.runlog import RunLogPlugin


class OrLeaf(kart_core.TaskOnKart[str]):
    value = luigi.Parameter(default="built-in")

    def run(self) -> None:
        self.dump(self.value)


class OrAbove(kart_core.TaskOnKart[str]):
    def requires(self) -> OrLeaf:
        return OrLeaf(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump("above " + self.load())


class OrBrokenComplete(kart_core.TaskOnKart[str]):
    def complete(self) -> bool:
        raise ValueError("cannot tell")


class Seen:
    """Keeps what kart_after_build received."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[Any], kart_core.BuildResult]] = []

    @hookimpl
    def kart_after_build(self, tasks: list[Any], result: kart_core.BuildResult) -> None:
        self.calls.append((tasks, result))


def _manager(seen: Seen) -> Any:
    return create_hook_manager([RunLogPlugin(), builtin_formats, seen], load_entry_points=False)


def test_a_build_returns_its_result_prints_the_summary_and_calls_the_hooks(
    workspace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    seen = Seen()
    root = OrAbove(workspace_directory=workspace)
    result = orchestrate([root], hook_manager=_manager(seen))
    assert [result.label(key) for key in result.ran] == [
        OrLeaf(workspace_directory=workspace).kart_label(),
        root.kart_label(),
    ]
    assert result.roots == [kart_core.node_key(root)] and result.ok
    assert seen.calls == [([root], result)]
    assert "kart build: 2 ran, 0 cached, 0 failed, 0 not run" in capsys.readouterr().err


def test_a_walk_that_raises_is_a_result_not_an_exception(workspace: str, capsys: pytest.CaptureFixture[str]) -> None:
    seen = Seen()
    broken = OrBrokenComplete(workspace_directory=workspace)
    result = orchestrate([broken], hook_manager=_manager(seen))
    key = kart_core.node_key(broken)
    assert list(result.failed) == [key] and result.scheduling_failed == {key}
    assert isinstance(result.failed[key], ValueError) and result.describe(key).startswith(broken.kart_label())
    assert seen.calls == [([broken], result)]
    assert "kart build: 0 ran, 0 cached, 1 failed, 0 not run" in capsys.readouterr().err


def test_the_gc_is_paused_only_while_walking(workspace: str) -> None:
    import gc

    states: list[bool] = []

    class OrRecordsGc(kart_core.TaskOnKart[int]):
        def complete(self) -> bool:
            states.append(gc.isenabled())
            return super().complete()

        def run(self) -> None:
            states.append(gc.isenabled())
            self.dump(1)

    orchestrate([OrRecordsGc(workspace_directory=workspace)])
    assert states[0] is False and states[-1] is True  # walk: paused; run(): collector back on


def test_what_the_walk_made_is_aged_not_frozen_and_its_cycles_are_still_collected(workspace: str) -> None:
    """The walk's objects go to the oldest generation unscanned (gc.freeze then gc.unfreeze): nothing stays frozen,
    and a reference cycle made during the walk is freed by the next full collection."""
    import gc
    import weakref

    class _Node:
        pass

    made: list[weakref.ref[_Node]] = []

    class OrMakesCycle(kart_core.TaskOnKart[int]):
        def complete(self) -> bool:
            node = _Node()
            node.self = node  # type: ignore[attr-defined]
            made.append(weakref.ref(node))
            return super().complete()

        def run(self) -> None:
            self.dump(1)

    orchestrate([OrMakesCycle(workspace_directory=workspace)])
    assert made and gc.isenabled() and gc.get_freeze_count() == 0
    gc.collect()
    assert all(ref() is None for ref in made)


def test_the_programs_own_frozen_objects_stay_frozen_after_a_build(workspace: str) -> None:
    """A program that froze its objects (gc.freeze before forking workers, keeping their pages shared) keeps them
    frozen: the walk's gc.unfreeze unfroze them all (found in the session 22 review)."""
    import gc

    class OrFrozen(kart_core.TaskOnKart[int]):
        def run(self) -> None:
            self.dump(1)

    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        assert frozen > 0
        orchestrate([OrFrozen(workspace_directory=workspace)])
        # (a few frozen objects may die meanwhile; an unfreeze leaves none)
        assert gc.isenabled() and gc.get_freeze_count() > 0.9 * frozen
    finally:
        gc.unfreeze()


@pytest.mark.parametrize(("workers", "executor"), [(1, "thread"), (2, "thread")])
def test_a_task_object_kept_across_builds_derives_its_upstreams_again_after_a_config_change(
    workspace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int, executor: str
) -> None:
    monkeypatch.setenv("OR_VALUE", "before")
    path = tmp_path / "or.cfg"
    path.write_text("[OrLeaf]\nvalue = ${OR_VALUE}\n")
    kart_core.add_config(str(path))
    kept = OrAbove(workspace_directory=workspace)
    assert kart_core.build(kept, workers=workers, executor=executor) == "above before"
    old_id = kept.make_unique_id()
    monkeypatch.setenv("OR_VALUE", "after")
    assert kart_core.build(kept, workers=workers, executor=executor) == "above after"
    assert kept.make_unique_id() != old_id


@pytest.mark.parametrize(("workers", "executor"), [(1, "thread"), (2, "thread")])
def test_the_config_stays_frozen_while_tasks_run(workspace: str, tmp_path: Path, workers: int, executor: str) -> None:
    path = tmp_path / "or.cfg"
    path.write_text("[OrLeaf]\nvalue = at the start\n")
    kart_core.add_config(str(path))

    class OrEditsConfig(kart_core.TaskOnKart[str]):
        def requires(self) -> OrLeaf:  # luigi's input() calls requires() again inside run()
            path.write_text("[OrLeaf]\nvalue = edited during the build\n")
            return OrLeaf(workspace_directory=workspace)

        def run(self) -> None:
            self.dump(self.load())

    root = OrEditsConfig(workspace_directory=workspace)
    assert kart_core.build(root, workers=workers, executor=executor, reset_register=False) == "at the start"
    assert OrLeaf(workspace_directory=workspace).value == "edited during the build"  # the next build's value


def test_before_run_gets_the_tasks_to_run_and_what_it_raises_stops_the_build(workspace: str) -> None:
    OrLeaf(workspace_directory=workspace).output().dump("cached")
    given: list[list[Any]] = []
    root = OrAbove(workspace_directory=workspace)
    with pytest.raises(RuntimeError, match="no"):
        orchestrate([root], before_run=lambda tasks: (given.append(tasks), _refuse()))
    assert given == [[root]]  # the complete upstream is not among them
    assert not root.complete()
    result = orchestrate([root], before_run=given.append)
    assert [result.label(key) for key in result.ran] == [root.kart_label()] and given[-1] == [root]


def _refuse() -> None:
    raise RuntimeError("no")
