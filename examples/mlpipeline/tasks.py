"""The demo tasks: synthetic regression data, two features, a numpy least-squares model, its test error.

Small and fast (a few milliseconds each) so demos and tests run in seconds. Both dependency
styles appear: TaskInstanceParameter (MakeFeatures, Train) and ``requires()`` (Evaluate).
"""

from __future__ import annotations

from typing import Any

import luigi
import numpy as np
import pandas as pd

import kart_core

__all__ = ["LoadData", "MakeFeatures", "Train", "Evaluate", "MODELS"]

MODELS = ("mean", "linear", "ridge")
FEATURE_COLUMNS = ["x1", "x2", "x1_x2", "x1_squared"]


class LoadData(kart_core.TaskOnKart[pd.DataFrame]):
    """Synthetic rows ``x1, x2 -> y`` with noise, reproducible from ``seed``."""

    task_namespace = "mlpipeline"
    n_rows = luigi.IntParameter(default=400)
    seed = luigi.IntParameter(default=0)

    def run(self) -> None:
        rng = np.random.default_rng(self.seed)
        x1, x2 = rng.normal(size=self.n_rows), rng.normal(size=self.n_rows)
        y = 3.0 * x1 - 2.0 * x2 + 0.5 * x1 * x2 + rng.normal(scale=0.1, size=self.n_rows)
        self.dump(pd.DataFrame({"x1": x1, "x2": x2, "y": y}))


class MakeFeatures(kart_core.TaskOnKart[pd.DataFrame]):
    """Adds an interaction and a square, and a train/test split column."""

    task_namespace = "mlpipeline"
    data = kart_core.TaskInstanceParameter(expected_type=LoadData)
    test_fraction = luigi.FloatParameter(default=0.25)

    def run(self) -> None:
        frame = self.load_data_frame("data", required_columns={"x1", "x2", "y"})
        frame = frame.assign(x1_x2=frame.x1 * frame.x2, x1_squared=frame.x1**2)
        cut = int(len(frame) * (1.0 - self.test_fraction))
        frame["is_test"] = np.arange(len(frame)) >= cut
        self.dump(frame)


class Train(kart_core.TaskOnKart[dict]):
    """Fits ``mean`` (a baseline), ``linear`` (least squares) or ``ridge`` (L2, strength ``alpha``)."""

    task_namespace = "mlpipeline"
    features = kart_core.TaskInstanceParameter(expected_type=MakeFeatures)
    model = luigi.Parameter(default="linear")
    alpha = luigi.FloatParameter(default=1.0)

    def run(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"{self.kart_label()}: unknown model {self.model!r}; choose one of {MODELS}.")
        frame = self.load_data_frame("features")
        train = frame[~frame.is_test]
        self.dump(fit(self.model, train[FEATURE_COLUMNS].to_numpy(), train.y.to_numpy(), self.alpha))


class Evaluate(kart_core.TaskOnKart[dict]):
    """The test-set RMSE of one model; builds its own upstream chain in ``requires()``."""

    task_namespace = "mlpipeline"
    model = luigi.Parameter(default="linear")
    alpha = luigi.FloatParameter(default=1.0)
    n_rows = luigi.IntParameter(default=400)
    seed = luigi.IntParameter(default=0)

    def requires(self) -> dict[str, Any]:
        features = MakeFeatures(data=LoadData(n_rows=self.n_rows, seed=self.seed))
        return {"features": features, "model": Train(features=features, model=self.model, alpha=self.alpha)}

    def run(self) -> None:
        frame = self.load_data_frame("features")
        test = frame[frame.is_test]
        predicted = predict(self.load("model"), test[FEATURE_COLUMNS].to_numpy())
        rmse = float(np.sqrt(np.mean((predicted - test.y.to_numpy()) ** 2)))
        self.dump({"model": self.model, "alpha": self.alpha, "rmse": rmse, "n_test": int(len(test))})


def fit(model: str, x: np.ndarray, y: np.ndarray, alpha: float) -> dict[str, Any]:
    """Coefficients of the chosen model (an intercept first)."""
    design = np.column_stack([np.ones(len(x)), x])
    if model == "mean":
        coefficients = np.zeros(design.shape[1])
        coefficients[0] = float(np.mean(y))
    else:
        penalty = np.eye(design.shape[1]) * (alpha if model == "ridge" else 0.0)
        penalty[0, 0] = 0.0  # the intercept is not penalized
        coefficients = np.linalg.solve(design.T @ design + penalty, design.T @ y)
    return {"model": model, "coefficients": coefficients.tolist()}


def predict(fitted: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """Predictions of a model returned by ``fit``."""
    return np.column_stack([np.ones(len(x)), x]) @ np.asarray(fitted["coefficients"])
