"""Small kart tasks: LoadData -> MakeFeatures -> Train, and RawSummary of a raw file (pandas and numpy only).

Set KART_KEDRO_DEMO_JOURNAL to a file path to have each task append its label there when it
runs (the tests count task runs across processes with it).
"""

from __future__ import annotations

import datetime
import os
from typing import Any

import luigi
import numpy as np
import pandas as pd
from kart_kedro import RawFile

import kart_core

__all__ = ["LoadData", "MakeFeatures", "RawSummary", "Train", "default_train"]


def _journal(task: kart_core.TaskOnKart[Any]) -> None:
    path = os.environ.get("KART_KEDRO_DEMO_JOURNAL")
    if path:
        with open(path, "a") as journal:  # one short append per run: safe across processes
            journal.write(f"{task.kart_label()}\n")


class LoadData(kart_core.TaskOnKart[pd.DataFrame]):
    """Sixty days of a noisy signal starting at ``day``, reproducible from the date."""

    day = luigi.DateParameter(default=datetime.date(2024, 1, 1))

    def run(self) -> None:
        _journal(self)
        rng = np.random.default_rng(self.day.toordinal())
        x = np.arange(60, dtype=float)
        self.dump(pd.DataFrame({"x": x, "y": 0.5 * x + rng.normal(scale=2.0, size=x.size)}))


class MakeFeatures(kart_core.TaskOnKart[pd.DataFrame]):
    """Adds the rolling mean of ``y`` over ``window`` rows."""

    source = kart_core.TaskInstanceParameter(expected_type=LoadData)
    window = luigi.IntParameter(default=3)

    def run(self) -> None:
        _journal(self)
        frame = self.load_data_frame("source", required_columns={"x", "y"})
        frame["y_smooth"] = frame.y.rolling(self.window, min_periods=1).mean()
        self.dump(frame)


class Train(kart_core.TaskOnKart[dict]):
    """A ridge line ``y_smooth ~ a + b x`` with strength ``alpha``."""

    features = kart_core.TaskInstanceParameter(expected_type=MakeFeatures)
    alpha = luigi.FloatParameter(default=1.0)

    def run(self) -> None:
        _journal(self)
        frame = self.load_data_frame("features")
        design = np.column_stack([np.ones(len(frame)), frame.x.to_numpy()])
        penalty = np.diag([0.0, self.alpha])
        coefficients = np.linalg.solve(design.T @ design + penalty, design.T @ frame.y_smooth.to_numpy())
        self.dump({"intercept": float(coefficients[0]), "slope": float(coefficients[1]), "alpha": self.alpha})


class RawSummary(kart_core.TaskOnKart[dict]):
    """Rows and total of a raw CSV file. Its ``source`` is a RawFile, so editing the file reruns it."""

    source = kart_core.TaskInstanceParameter(expected_type=RawFile)

    def run(self) -> None:
        _journal(self)
        frame = pd.read_csv(self.load("source"))
        self.dump({"rows": int(len(frame)), "total": float(frame.value.sum())})


def default_train() -> Train:
    """The graph the catalog's ``features`` and ``model`` entries describe."""
    features = MakeFeatures(source=LoadData(day=datetime.date(2024, 1, 1)), window=7)
    return Train(features=features, alpha=0.5)
