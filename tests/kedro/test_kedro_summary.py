"""Why a node reruns, and the one-line summary of a run."""

from __future__ import annotations

from kart_kedro.node_records import RunParts
from kart_kedro.summary import rerun_reason, summary_line


def _parts(unique_id: str = "u1", **changes: dict[str, str]) -> RunParts:
    fields = {"code": {"pkg.f": "c1", "pandas": "2.2"}, "parameters": {"params:k": "p1"}, "inputs": {"raw": "r1"}}
    fields.update(changes)
    return RunParts(unique_id=unique_id, upstream={"clean": "x"}, **fields)


def test_rerun_reasons_name_what_changed() -> None:
    assert rerun_reason(None, _parts()) == "first run"
    assert rerun_reason(_parts(), _parts()) == "its cache was cleared"
    assert rerun_reason(_parts(), _parts("u2", code={"pkg.f": "c2", "pandas": "2.3"})) == "code changed: pandas, pkg.f"
    changed = _parts("u2", parameters={"params:k": "p2"}, inputs={"raw": "r2"})
    assert rerun_reason(_parts(), changed) == "parameters changed: params:k; input changed: raw"
    many = _parts("u2", code={f"m.f{i}": str(i) for i in range(5)})
    assert rerun_reason(_parts(), many) == "code changed: m.f0, m.f1, m.f2 and 4 more"
    assert rerun_reason(_parts(), _parts("u2")) == "node definition changed (inputs, outputs or name)"


def test_the_summary_groups_nodes_by_reason() -> None:
    statuses = {"a": "cached", "b": "ran", "c": "ran", "d": "ran uncached"}
    reasons = {"b": "first run", "c": "first run"}
    assert (
        summary_line(statuses, reasons) == "kart: 4 node(s): 1 cached, 2 ran, 1 ran uncached because first run (b, c)"
    )
    assert summary_line({"a": "cached"}, {}) == "kart: 1 node(s): 1 cached"
    assert summary_line({}, {}) == "kart: 0 node(s): none"
