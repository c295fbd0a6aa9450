"""The layered task graph of bench/airflow_parse.py, in a module of its own: Airflow workers import
task classes by name, so kart_airflow refuses classes defined in the DAG file (or the script)."""

from __future__ import annotations

import luigi

import kart_core

WIDTH = 50


class BenchNode(kart_core.TaskOnKart[int]):
    """Task ``index`` of ``layer``; depends on two tasks of the layer below."""

    layer = luigi.IntParameter()
    index = luigi.IntParameter()

    def requires(self) -> list[BenchNode]:
        if self.layer == 0:
            return []
        return [BenchNode(layer=self.layer - 1, index=i) for i in below(self.index)]


def below(index: int) -> list[int]:
    """The two tasks of the layer below that task ``index`` depends on."""
    return sorted({index, (index + 1) % WIDTH})


def roots(n_tasks: int) -> list[BenchNode]:
    """The top layer of an ``n_tasks`` graph."""
    return [BenchNode(layer=n_tasks // WIDTH - 1, index=i) for i in range(WIDTH)]
