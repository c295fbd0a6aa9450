"""KartRunner in the example project: a helper that imports a project module inside the function reruns
its node when that module's constant or a function reached through its dict changes (real ``kedro run``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from kedro_project import POSITIVE_VALUES_SUM, copy_ran_project, edit, report, run_kedro, statuses

pytestmark = pytest.mark.slow

ALL = ("clean", "scale", "summarize", "count")
OPS = '''"""Operations helpers.total imports inside the function (nothing imports this module before a node runs)."""

FACTOR = 1.0


def _plain(values):
    return float(values.sum())


OPS = {"plain": _plain}
'''


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


def test_a_module_imported_inside_a_helper_reruns_the_node_when_its_constant_or_dict_function_changes(
    ran: Path,
) -> None:
    package = ran / "src" / "kart_kedro_demo"
    ops = package / "ops.py"
    ops.write_text(OPS)
    edit(
        package / "helpers.py",
        "    return in_units(float(values.sum()))",
        '    from kart_kedro_demo import ops\n\n    return in_units(ops.OPS["plain"](values) * ops.FACTOR)',
    )
    assert kart(ran)[0] == only("summarize")
    assert report(ran, "summary")["total"] == 2.0 * POSITIVE_VALUES_SUM  # 52.0

    edit(ops, "FACTOR = 1.0", "FACTOR = 10.0")  # a constant of the module imported inside the function
    node_statuses, log = kart(ran)
    assert node_statuses == only("summarize")
    assert "code changed: kart_kedro_demo.ops.FACTOR (summarize)" in log
    assert report(ran, "summary")["total"] == 520.0

    edit(ops, "return float(values.sum())", "return float(values.sum()) + 1")  # a function reached through OPS
    assert kart(ran)[0] == only("summarize")
    assert report(ran, "summary")["total"] == 530.0

    assert kart(ran)[0] == only()  # and unchanged code stays cached
