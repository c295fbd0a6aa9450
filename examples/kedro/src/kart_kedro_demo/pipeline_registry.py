"""The project's pipelines.

- ``nodes``: plain Kedro nodes; run them with ``--runner kart_kedro.KartRunner`` to cache them.
- ``kart``: the kart graph of ``tasks.default_train()`` as Kedro nodes (each runs through
  ``kart_core.run_one``), plus Kedro nodes reading kart outputs from the catalog (one of them a
  task over a raw file, ``raw_summary``).
"""

from __future__ import annotations

from kart_kedro import to_pipeline
from kedro.pipeline import Pipeline, node

from kart_kedro_demo import nodes
from kart_kedro_demo.tasks import default_train


def kart_pipeline() -> Pipeline:
    """The kart graph, its MakeFeatures and Train outputs named as the catalog's entries."""
    train = default_train()
    graph = to_pipeline(train, names={train.features: "features", train: "model"}, tags=["kart"])
    report = node(nodes.report_features, ["features", "model"], "feature_report", name="report_features")
    raw = node(nodes.report_raw, "raw_summary", "raw_report", name="report_raw")
    return graph + Pipeline([report, raw])


def nodes_pipeline() -> Pipeline:
    """clean -> scale -> summarize, and clean -> count."""
    return Pipeline(
        [
            node(nodes.clean, ["raw_numbers", "params:min_value"], "clean_numbers", name="clean"),
            node(nodes.scale, ["clean_numbers", "params:factor"], "scaled", name="scale"),
            node(nodes.summarize, "scaled", "summary", name="summarize"),
            node(nodes.count, "clean_numbers", "counts", name="count"),
        ]
    )


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines."""
    pipelines = {"nodes": nodes_pipeline(), "kart": kart_pipeline()}
    pipelines["__default__"] = pipelines["nodes"] + pipelines["kart"]
    return pipelines
