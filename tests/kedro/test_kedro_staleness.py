"""KartRunner in the example project, edits the cache must follow (staleness findings at10): real ``kedro run``."""

from __future__ import annotations

from pathlib import Path

import pytest
from kedro_project import POSITIVE_VALUES_SUM, copy_ran_project, edit, report, run_kedro, statuses

pytestmark = pytest.mark.slow

ALL = ("clean", "scale", "summarize", "count")


@pytest.fixture
def ran(tmp_path: Path, nodes_first_run: Path) -> Path:
    """A copy of the example project after a first KartRunner run of its "nodes" pipeline (every node ran)."""
    return copy_ran_project(nodes_first_run, tmp_path / "project")


def kart(project: Path) -> tuple[dict[str, str], str]:
    """``kedro run --pipeline nodes`` with KartRunner: what it said about each node, and its log."""
    log = run_kedro(project, "run", "--runner", "kart_kedro.KartRunner", "--pipeline", "nodes")
    return statuses(log), log


def only(*ran: str) -> dict[str, str]:
    """The statuses when exactly ``ran`` ran and the other nodes were cached."""
    return {name: "ran" if name in ran else "cached" for name in ALL}


def test_a_helper_in_a_src_folder_without_init_reruns_its_node_when_edited(ran: Path) -> None:
    """K1: ``src/kart_shared/`` has no ``__init__.py`` (a PEP 420 namespace package); it is project code."""
    shared = ran / "src" / "kart_shared"
    shared.mkdir()
    (shared / "scale.py").write_text("def times(value):\n    return value * 2\n")
    edit(
        ran / "src" / "kart_kedro_demo" / "helpers.py",
        "    return in_units(float(values.sum()))",
        "    from kart_shared import scale\n\n    return in_units(scale.times(float(values.sum())))",
    )
    assert kart(ran)[0] == only("summarize")
    assert report(ran, "summary")["total"] == 4.0 * POSITIVE_VALUES_SUM  # the scale node doubles, the helper doubles

    edit(shared / "scale.py", "value * 2", "value * 3")
    node_statuses, log = kart(ran)
    assert node_statuses == only("summarize")
    assert "code changed: kart_shared.scale.times (summarize)" in log
    assert report(ran, "summary")["total"] == 6.0 * POSITIVE_VALUES_SUM

    assert kart(ran)[0] == only()  # and unchanged code stays cached


EXPORT = '''

def export(counts):
    """Writes the counts where someone else picks them up: a node with no outputs."""
    import json
    import os

    with open(os.environ["KART_TEST_EXPORT"], "a") as handle:
        handle.write(json.dumps(counts) + "\\n")
'''


@pytest.mark.parametrize("tags", [(), ("kart_no_cache",)])
def test_a_node_without_outputs_runs_every_time(
    ran: Path, tags: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """K11: ``outputs=None`` (an export, an upload) runs on every run, with one warning unless tagged."""
    exported = ran / "exported.jsonl"
    monkeypatch.setenv("KART_TEST_EXPORT", str(exported))
    package = ran / "src" / "kart_kedro_demo"
    (package / "nodes.py").write_text((package / "nodes.py").read_text() + EXPORT)
    edit(
        package / "pipeline_registry.py",
        'node(nodes.count, "clean_numbers", "counts", name="count"),',
        'node(nodes.count, "clean_numbers", "counts", name="count"),\n'
        f'            node(nodes.export, "counts", None, name="export", tags={list(tags)!r}),',
    )
    for run in (1, 2):
        node_statuses, log = kart(ran)
        assert node_statuses == {**only(), "export": "ran"}
        warned = "kart: node 'export' runs without the cache: it has no outputs" in log
        assert warned == (not tags)
        assert len(exported.read_text().splitlines()) == run  # the side effect happened on every run
