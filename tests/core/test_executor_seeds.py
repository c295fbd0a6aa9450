"""Seeded draws on a pool of threads: each task draws from its own seed, as in a process of its own.

gokart seeds ``random`` and ``numpy.random`` before ``run()`` with ``int(task_id, 16) % (2**32 - 1)``; luigi's
workers run each task in its own process. On threads the generators are the process's, so tasks that seed them
take turns (attacker at14 N9: two tasks drawing at once drew from each other's streams).
"""

from __future__ import annotations

import random
import threading
import time
import warnings
from typing import Any

import luigi
import numpy
import pytest

import kart_core
from kart_core.errors import ProcessPoolFallbackWarning

_SEED_MODULUS = 2**32 - 1


class SeededDraws(kart_core.TaskOnKart[tuple[float, float, float]]):
    """Draws once, waits while the other leaves start, draws again from both generators."""

    n = luigi.IntParameter()

    def run(self) -> None:
        first = numpy.random.rand()
        time.sleep(0.3)
        self.dump((float(first), float(numpy.random.rand()), random.random()))


class AllDraws(kart_core.TaskOnKart[list[tuple[float, float, float]]]):
    leaves = kart_core.ListTaskInstanceParameter()

    def run(self) -> None:
        self.dump(list(self.load("leaves")))


def _expected(task: Any) -> tuple[float, float, float]:
    seed = int(task.make_unique_id(), 16) % _SEED_MODULUS  # gokart's recipe
    state = numpy.random.RandomState(seed)
    return (float(state.rand()), float(state.rand()), random.Random(seed).random())


def _build(leaves: list[Any], workspace: str) -> list[tuple[float, float, float]]:
    root = AllDraws(leaves=leaves, workspace_directory=workspace)
    return [tuple(draws) for draws in kart_core.build(root, workers=2, executor="thread")]


def test_thread_workers_give_each_seeded_task_its_own_draws(tmp_path: Any) -> None:
    workspace = str(tmp_path)
    leaves = [SeededDraws(n=n, workspace_directory=workspace) for n in range(4)]
    assert _build(leaves, workspace) == [_expected(leaf) for leaf in leaves]


def test_the_thread_fallback_for_classes_defined_in_a_function_keeps_seeded_draws(tmp_path: Any) -> None:
    class LocalDraws(SeededDraws):  # pickle cannot find it by name: the build falls back to threads
        pass

    workspace = str(tmp_path)
    leaves = [LocalDraws(n=n, workspace_directory=workspace) for n in range(3)]
    root = AllDraws(leaves=leaves, workspace_directory=workspace)
    with pytest.warns(ProcessPoolFallbackWarning, match="run one at a time"):
        drawn = kart_core.build(root, workers=2)
    assert [tuple(draws) for draws in drawn] == [_expected(leaf) for leaf in leaves]


_MEETING = threading.Barrier(2, timeout=30)


class Unseeded(kart_core.TaskOnKart[int]):
    """Seeds nothing: it runs beside the others (it waits until another leaf is in its run() too)."""

    n = luigi.IntParameter()
    fix_random_seed_methods = luigi.ListParameter(default=[], significant=False)

    def run(self) -> None:
        _MEETING.wait()
        self.dump(self.n)


class UnseededSum(kart_core.TaskOnKart[int]):
    leaves = kart_core.ListTaskInstanceParameter()

    def run(self) -> None:
        self.dump(sum(self.load("leaves")))


def test_tasks_without_seed_methods_still_run_at_once_on_threads(tmp_path: Any) -> None:
    workspace = str(tmp_path)
    leaves = [Unseeded(n=n, workspace_directory=workspace) for n in (1, 2)]
    root = UnseededSum(leaves=leaves, workspace_directory=workspace)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback here: module-level classes, threads asked for
        assert kart_core.build(root, workers=2, executor="thread") == 3
