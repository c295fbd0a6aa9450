"""docs/tutorial.md stays true: every runnable program runs, prints and writes what the page shows."""

from __future__ import annotations

from pathlib import Path

import pytest
from doc_blocks import REPO, Chain, chains, check_chain

DOC = REPO / "docs" / "tutorial.md"


def _params(doc: Path) -> list[object]:
    """One test per chain; chains that import Airflow or Kedro are slow (seconds of imports)."""
    params = []
    for chain in chains(doc):
        heavy = any("kart_airflow" in p.code or "kart_kedro" in p.code for p in chain.programs)
        params.append(pytest.param(chain, id=chain.name, marks=[pytest.mark.slow] if heavy else []))
    return params


@pytest.mark.parametrize("chain", _params(DOC))
def test_tutorial_program(chain: Chain, tmp_path: Path) -> None:
    check_chain(chain, tmp_path)


def test_tutorial_has_the_seed_example_and_tree() -> None:
    found = chains(DOC)
    first = found[0].programs[0]
    assert "class Example(gokart.TaskOnKart)" in first.code
    assert first.expected_output == "Hello, world!"
    assert first.expected_tree is not None and "Example_8441c59b5ce0113396d53509f19371fb.pkl" in first.expected_tree
