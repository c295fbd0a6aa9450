"""Task graphs for bench/graph_overhead.py, written once for gokart and kart (KART_BENCH_IMPL picks one)."""

from __future__ import annotations

import os
import time

import luigi

if os.environ.get("KART_BENCH_IMPL", "kart") == "gokart":
    import gokart
else:
    import kart_core as gokart  # the point of the benchmark: the same code under both


class ChainLink(gokart.TaskOnKart):
    """Link n of a chain: requires link n-1."""

    n = luigi.IntParameter()

    def requires(self):  # noqa: D102
        return ChainLink(n=self.n - 1) if self.n > 0 else []

    def run(self) -> None:  # noqa: D102
        self.dump(self.n)


class LoadingLink(gokart.TaskOnKart):
    """Link n of a chain that loads link n-1 (kart records each load in the manifest: its lineage)."""

    n = luigi.IntParameter()

    def requires(self):  # noqa: D102
        return LoadingLink(n=self.n - 1) if self.n > 0 else []

    def run(self) -> None:  # noqa: D102
        self.dump((self.load() if self.n > 0 else 0) + 1)


class FanLeaf(gokart.TaskOnKart):
    """One of many independent leaves."""

    i = luigi.IntParameter()

    def run(self) -> None:  # noqa: D102
        self.dump(self.i)


class FanIn(gokart.TaskOnKart):
    """Requires `width` leaves."""

    width = luigi.IntParameter()

    def requires(self):  # noqa: D102
        return [FanLeaf(i=i) for i in range(self.width)]

    def run(self) -> None:  # noqa: D102
        self.dump(self.width)


class WorkLeaf(gokart.TaskOnKart):
    """One of many independent leaves that wait 50 ms ("sleep") or burn 50 ms of CPU ("cpu")."""

    i = luigi.IntParameter()
    kind = luigi.Parameter()
    # It draws no random numbers: on kart's thread workers, tasks that seed the shared generators take turns.
    fix_random_seed_methods = luigi.ListParameter(default=[], significant=False)

    def run(self) -> None:  # noqa: D102
        if self.kind == "sleep":
            time.sleep(0.05)
        else:
            started = time.thread_time()
            while time.thread_time() - started < 0.05:  # this thread's CPU time, not the wall clock
                sum(range(1000))
        self.dump(self.i)


class WorkRoot(gokart.TaskOnKart):
    """Requires `width` WorkLeaf tasks of one kind; itself does nothing heavy."""

    width = luigi.IntParameter()
    kind = luigi.Parameter()

    def requires(self):  # noqa: D102
        return [WorkLeaf(i=i, kind=self.kind) for i in range(self.width)]

    def run(self) -> None:  # noqa: D102
        self.dump(self.width)


def make(shape: str, size: int) -> gokart.TaskOnKart:
    """The root task of a graph of `size` tasks besides the root: chain, load-chain, fan-in, sleep or cpu."""
    if shape in ("sleep", "cpu"):
        return WorkRoot(width=size, kind=shape)
    if shape == "load-chain":
        return LoadingLink(n=size)
    return ChainLink(n=size) if shape == "chain" else FanIn(width=size)
