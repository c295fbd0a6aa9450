"""A node reaching a module through an attribute chain reruns when that module is edited (attacker at20 K4).

``import proj_chain.steps`` binds ``proj_chain``; a node then dispatching with ``getattr(proj_chain.steps, name)`` or
``vars(proj_chain.steps)[name]`` names no attribute of ``steps``. kart before counted ``steps`` only by the names
its package shares with it, so an edit of ``steps.triple`` kept both nodes cached with the old result. Each run is
its own process (a real edit between runs) of a real KartRunner, on a project package written to a temporary folder.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from kedro_project import run_script_json

STEPS = textwrap.dedent(
    """
    def triple(values):
        return [v * 3 + 0 for v in values]
    """
)

OTHER = textwrap.dedent(
    """
    def double(values):
        return [v * 2 for v in values]
    """
)

NODES = textwrap.dedent(
    """
    import proj_chain.other
    import proj_chain.steps


    def by_dotted_getattr(values, name):
        return getattr(proj_chain.steps, name)(values)


    def by_dotted_vars(values):
        return vars(proj_chain.steps)["triple"](values)


    def by_other(values):
        return proj_chain.other.double(values)
    """
)

NODE_NAMES = ("by_dotted_getattr", "by_dotted_vars", "by_other")

SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, sys.argv[1] + "/src")
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.pipeline import Pipeline, node
    from kart_kedro import KartRunner
    import proj_chain.nodes as nodes

    root = sys.argv[1]
    pipeline = Pipeline(
        [
            node(nodes.by_dotted_getattr, ["params:values", "params:name"], "by_dotted_getattr", name="by_dotted_getattr"),
            node(nodes.by_dotted_vars, "params:values", "by_dotted_vars", name="by_dotted_vars"),
            node(nodes.by_other, "params:values", "by_other", name="by_other"),
        ]
    )
    names = ["by_dotted_getattr", "by_dotted_vars", "by_other"]
    entries = {
        "params:values": MemoryDataset([1, 2]),
        "params:name": MemoryDataset("triple"),
        **{name: MemoryDataset() for name in names},
    }
    runner = KartRunner(workspace_directory=root + "/ws")
    found = runner.run(pipeline, DataCatalog(entries))
    values = {name: found[name].load() if hasattr(found[name], "load") else found[name] for name in names}
    print(json.dumps([runner.last_run, values]))
    """
)


def _project(root: Path) -> Path:
    """A project folder: the package ``src/proj_chain`` (steps, other, nodes) and the run script."""
    package = root / "src" / "proj_chain"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "steps.py").write_text(STEPS)
    (package / "other.py").write_text(OTHER)
    (package / "nodes.py").write_text(NODES)
    (root / "run.py").write_text(SCRIPT)
    return root


def _run(project: Path) -> tuple[dict[str, str], dict[str, list[int]]]:
    """One KartRunner run of the three nodes in a new process: (statuses by node, values by node)."""
    statuses, values = run_script_json(project)
    return statuses, values


def test_an_edit_of_a_module_reached_by_an_attribute_chain_reruns_the_node(tmp_path: Path) -> None:
    project = _project(tmp_path)
    old = {"by_dotted_getattr": [3, 6], "by_dotted_vars": [3, 6], "by_other": [2, 4]}
    assert _run(project) == (dict.fromkeys(NODE_NAMES, "ran"), old)
    assert _run(project) == (dict.fromkeys(NODE_NAMES, "cached"), old)

    steps = project / "src" / "proj_chain" / "steps.py"
    steps.write_text(steps.read_text().replace("+ 0 for", "+ 100 for"))
    new = {**old, "by_dotted_getattr": [103, 106], "by_dotted_vars": [103, 106]}
    # kart before: both cached with [3, 6]; by_other never reads steps and stays cached
    assert _run(project) == ({**dict.fromkeys(NODE_NAMES, "ran"), "by_other": "cached"}, new)
    assert _run(project) == (dict.fromkeys(NODE_NAMES, "cached"), new)
