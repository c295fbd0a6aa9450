"""Links between the documentation pages resolve: files exist (or are being written) and anchors exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from doc_blocks import REPO

OWN_PAGES = [
    REPO / "README.md",
    *(
        REPO / "docs" / name
        for name in ("index.md", "tutorial.md", "reference.md", "migration.md", "faq.md", "changelog.md")
    ),
]
# Pages other engineers write; a link to them may precede the page.
PLANNED = {"airflow.md", "kedro.md", "formats.md", "cli.md", "benchmarks.md"}
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    anchors = set()
    in_code = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def _links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return [link for link in _LINK.findall(text) if "://" not in link]


@pytest.mark.parametrize("page", OWN_PAGES, ids=lambda p: p.name)
def test_links_resolve(page: Path) -> None:
    for link in _links(page):
        path_part, _, anchor = link.partition("#")
        target = (page.parent / path_part).resolve() if path_part else page
        if not target.exists():
            assert target.name in PLANNED and target.parent == REPO / "docs", f"{page.name}: broken link {link}"
            continue
        if anchor:
            assert anchor in _anchors(target), f"{page.name}: no heading for #{anchor} in {target.name}"


def test_index_lists_every_page() -> None:
    index = (REPO / "docs" / "index.md").read_text(encoding="utf-8")
    for name in PLANNED | {"tutorial.md", "reference.md", "migration.md", "faq.md", "changelog.md"}:
        assert f"]({name})" in index, name


# A history note: what kart did before a date or a session, or which attack found it. Those go to changelog.md.
_HISTORY = re.compile(
    r"kart (before|after|from before) (20\d\d|session)|[Bb]efore 20\d\d-\d\d|[Ss]ince (session|20\d\d-\d\d)"
    r"|attacker at\d|\bAT\d\b"
)


@pytest.mark.parametrize("name", ["kedro.md", "faq.md", "airflow.md", "cli.md", "reference.md"])
def test_guides_describe_current_behaviour_and_leave_history_to_the_changelog(name: str) -> None:
    notes = [line for line in (REPO / "docs" / name).read_text(encoding="utf-8").splitlines() if _HISTORY.search(line)]
    assert notes == [], f"{name}: history notes belong in docs/changelog.md"
