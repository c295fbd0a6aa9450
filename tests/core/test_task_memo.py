"""TaskMemo: one small object per task holding what it computed once; pickles and copies empty."""

from __future__ import annotations

import copy
import pickle
import threading
from typing import Any

import luigi
import pytest

import kart_core
from kart_core.task_memo import UNSET, RunSlot, TaskMemo, memo_of


class MemoLeaf(kart_core.TaskOnKart[int]):
    value = luigi.IntParameter()

    def run(self) -> None:
        self.dump(self.value)


class MemoRoot(kart_core.TaskOnKart[int]):
    def requires(self) -> MemoLeaf:
        return MemoLeaf(value=3)

    def run(self) -> None:
        self.dump(self.load() + 1)


def test_a_new_memo_holds_nothing() -> None:
    memo = TaskMemo()
    assert (memo.requires_structure, memo.requires, memo.outputs, memo.task_reference) == (UNSET, None, UNSET, None)
    assert not hasattr(memo, "__dict__")  # slots: no dict per task


def test_release_forgets_the_outputs_only() -> None:
    root = MemoRoot()
    outputs = root.kart_outputs()
    upstream = root.kart_requires()
    memo = memo_of(root)
    memo.task_reference = "kept"
    root.kart_release()
    assert memo.outputs is UNSET
    assert memo.requires == tuple(upstream) and memo.task_reference == "kept"
    again = root.kart_outputs()
    assert again is not outputs and again.path() == outputs.path()


def test_a_pickled_or_deep_copied_task_starts_with_an_empty_memo() -> None:
    root = MemoRoot()
    root.kart_outputs()
    root.kart_requires()
    for twin in (pickle.loads(pickle.dumps(root)), copy.deepcopy(root)):
        memo = memo_of(twin)
        assert memo is not memo_of(root)
        assert (memo.requires, memo.outputs) == (None, UNSET)
        assert twin.make_unique_id() == root.make_unique_id()


def test_memo_of_creates_a_memo_for_a_task_built_without_init() -> None:
    bare = MemoLeaf.__new__(MemoLeaf)
    memo = memo_of(bare)
    assert type(memo) is TaskMemo and memo_of(bare) is memo


def test_a_leaf_keeps_an_empty_tuple_not_a_list() -> None:
    leaf = MemoLeaf(value=11)
    assert leaf.kart_requires() == []
    assert type(memo_of(leaf).requires) is tuple and not memo_of(leaf).requires


def test_committed_digests_are_kept_as_one_flat_tuple_and_read_as_a_new_dict() -> None:
    memo = TaskMemo()
    assert memo.committed is None
    digests = {"out/a.pkl": "xxh3_128:01", "out/b.csv": "xxh3_128:02"}
    memo.committed = digests
    assert memo._committed == ("out/a.pkl", "xxh3_128:01", "out/b.csv", "xxh3_128:02")
    read = memo.committed
    assert read == digests and list(read) == list(digests)  # the outputs' order is kept
    assert read is not digests and memo.committed is not read  # a caller's change reaches nothing kept
    memo.committed = {}
    assert memo.committed == {}
    memo.committed = None
    assert memo.committed is None


def test_a_run_with_other_threads_alive_keeps_them_as_strays() -> None:
    main, started, outsider = threading.main_thread(), threading.Thread(), threading.Thread()
    worker = threading.Thread()
    slot = RunSlot()
    slot.outlived(frozenset({main, worker}), frozenset({main, worker}), worker)
    assert slot.strays is None  # its own thread and the main thread only
    slot.outlived(frozenset({main, worker, started, outsider}), frozenset({main, worker, outsider}), worker)
    assert slot.stray_run(started) is False  # started by the run
    assert slot.stray_run(outsider) is True  # already running when it began
    assert slot.stray_run(worker) is None and slot.stray_run(main) is None
    slot.outlived(frozenset({main}), frozenset({main}), main)
    assert slot.strays is None and slot.stray_run(started) is None  # the latest run's threads are what counts


def test_runs_one_thread_ends_with_the_same_threads_share_one_stray_record() -> None:
    main, worker, other = threading.main_thread(), threading.Thread(), threading.Thread()
    alive = frozenset({main, worker, other})
    slots = [RunSlot() for _ in range(3)]
    for slot in slots:
        slot.outlived(alive, alive, worker)
    assert slots[0].strays is not None
    assert slots[1].strays is slots[0].strays and slots[2].strays is slots[0].strays  # no record per task
    assert all(slot.stray_run(other) is True and slot.stray_run(worker) is None for slot in slots)
    grown = frozenset({*alive, threading.Thread()})
    slots[2].outlived(grown, alive, worker)  # other sets: a record of their own, the others' unchanged
    assert slots[2].strays is not slots[0].strays and slots[2].strays.alive is grown
    assert slots[0].strays.alive is alive
    slots[0].outlived(alive, alive, other)  # another thread ran it: its own thread is not a stray
    assert slots[0].stray_run(other) is None and slots[0].stray_run(worker) is True


def test_a_build_on_two_threads_keeps_no_stray_record_per_task() -> None:
    leaves = [MemoLeaf(value=100 + v) for v in range(40)]
    kart_core.build(leaves, workers=2, executor="thread")
    records = {id(memo_of(leaf).run_slot().strays) for leaf in leaves}
    assert len(records) <= 6  # a few per worker thread (the sets change while the pool starts its threads)


def test_runs_in_progress_are_a_tuple_that_is_the_shared_empty_one_when_idle() -> None:
    slot = RunSlot()
    assert slot.runs == () and type(slot.runs) is tuple
    first, second = object(), object()
    slot.enter(first)
    slot.enter(second)
    assert slot.runs == (first, second)
    slot.leave(first)
    assert slot.runs == (second,)
    slot.leave(second)
    assert type(slot.runs) is tuple and not slot.runs  # no list kept per task once its runs ended
    with pytest.raises(ValueError):
        slot.leave(second)


def test_runs_entered_and_left_from_many_threads_at_once_are_all_counted() -> None:
    slot = RunSlot()
    tokens = [object() for _ in range(400)]

    def enter_then_leave(token: object) -> None:
        slot.enter(token)
        slot.leave(token)

    kept = tokens[:100]
    for token in kept:
        slot.enter(token)
    threads = [threading.Thread(target=enter_then_leave, args=(token,)) for token in tokens[100:]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(map(id, slot.runs)) == sorted(map(id, kept))


def test_a_leaf_without_task_parameters_keeps_no_list_for_its_requires() -> None:
    leaf = MemoLeaf(value=12)
    assert leaf.kart_requires() == [] and leaf.kart_requires_structure() == []
    memo = memo_of(leaf)
    assert type(memo.requires_structure) is not list  # one shared marker, not an empty list per task
    first, second = leaf.kart_requires_structure(), leaf.kart_requires_structure()
    assert first == second == [] and first is not second  # as TaskOnKart.requires() asked again returns
    assert leaf.input() == []


def test_an_own_requires_returning_an_empty_list_keeps_that_list() -> None:
    class OwnEmpty(kart_core.TaskOnKart[int]):
        given: list[Any] = []

        def requires(self) -> list[Any]:
            return self.given

    task = OwnEmpty()
    assert task.kart_requires_structure() is OwnEmpty.given and task.kart_requires_structure() is OwnEmpty.given
    assert task.kart_requires() == []
