"""kart_kedro.pipeline_io: a pipeline's datasets, inputs and outputs in one pass, as Kedro 1.7.0 names them."""

from __future__ import annotations

import pytest
from kart_kedro.pipeline_io import pipeline_io
from kedro.pipeline import Pipeline, node, pipeline


def _identity(*values: object) -> object:
    return values[0]


def _pair(value: object) -> tuple[object, object]:
    return value, value


PIPELINES = {
    "chain": Pipeline([node(_identity, "raw", "a", name="n1"), node(_identity, ["a", "params:x"], "b", name="n2")]),
    "transcoded": Pipeline(
        [
            node(_identity, "raw@pandas", "mid@spark", name="t1"),
            node(_identity, "mid@pandas", "out", name="t2"),
            node(_pair, "raw@spark", ["side@csv", "free"], name="t3"),
        ]
    ),
    "namespaced": pipeline(
        Pipeline([node(_identity, "in", "mid", name="m1"), node(_identity, "mid", "out", name="m2")]),
        namespace="space",
        inputs={"in": "shared"},
    ),
    "no nodes": Pipeline([]),
}


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_the_names_are_kedro_s(name: str) -> None:
    built = PIPELINES[name]
    assert pipeline_io(built) == (built.datasets(), built.inputs(), built.outputs())


def test_a_transcoded_intermediate_is_neither_input_nor_output() -> None:
    datasets, inputs, outputs = pipeline_io(PIPELINES["transcoded"])
    assert inputs == {"raw@pandas", "raw@spark"}
    assert outputs == {"out", "side@csv", "free"}
    assert {"mid@spark", "mid@pandas"} <= datasets
