"""README.md stays true: its set-up commands exist in the Makefile and its example runs as shown."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from doc_blocks import REPO, Chain, chains, check_chain

README = REPO / "README.md"


def test_setup_commands_come_first_and_are_make_targets() -> None:
    text = README.read_text(encoding="utf-8")
    first_block = re.search(r"```sh\n(.*?)```", text, re.S)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    for target in ("demo", "test"):
        assert re.search(rf"^{target}:", makefile, re.M), f"Makefile has no '{target}' target"


def test_readme_links_point_into_docs() -> None:
    links = re.findall(r"\]\((docs/[^)#]+)", README.read_text(encoding="utf-8"))
    assert "docs/tutorial.md" in links and "docs/reference.md" in links
    assert all(link.endswith(".md") for link in links)


def test_readme_example_is_about_twenty_lines() -> None:
    (chain,) = chains(README)
    assert len(chain.programs) == 1
    assert 15 <= len(chain.programs[0].code.strip().splitlines()) <= 30


@pytest.mark.parametrize("chain", [pytest.param(c, id=c.name) for c in chains(README)])
def test_readme_program(chain: Chain, tmp_path: Path) -> None:
    check_chain(chain, tmp_path)
