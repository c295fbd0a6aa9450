"""docs/reference.md stays complete and true: public names, TaskOnKart's parameters and defaults, runnable examples."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from doc_blocks import REPO, Chain, chains, check_chain

import kart_core
from kart_core.errors import __all__ as error_names
from kart_core.hooks import specs

DOC = REPO / "docs" / "reference.md"
TEXT = DOC.read_text(encoding="utf-8")


def _parameter_rows() -> dict[str, str]:
    """Table rows of the parameter table, by the parameter name in their first cell."""
    rows = {}
    for line in TEXT.splitlines():
        match = re.match(r"^\| `(\w+)` \| (\w+) \| (.*?) \|", line)
        if match:
            rows[match.group(1)] = line
    return rows


@pytest.mark.parametrize("name", kart_core.__all__)
def test_every_public_name_is_documented(name: str) -> None:
    assert re.search(rf"`{re.escape(name)}[`(]", TEXT), f"kart_core.{name} is not in docs/reference.md"


@pytest.mark.parametrize("name", error_names)
def test_every_error_is_documented(name: str) -> None:
    assert f"| `{name}`" in TEXT or name == "KartError" and "`KartError`" in TEXT


def test_every_hook_is_documented() -> None:
    hooks = [
        name for cls in (specs.TaskRunSpecs, specs.FileProcessorSpecs) for name in vars(cls) if name.startswith("kart_")
    ]
    assert hooks
    for name in hooks:
        assert f"| `{name}(" in TEXT, f"hook {name} is not in docs/reference.md"


@pytest.mark.parametrize("name,param", kart_core.TaskOnKart.get_params(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_task_parameter_is_listed_with_its_true_default(name: str, param: object) -> None:
    row = _parameter_rows().get(name)
    assert row is not None, f"TaskOnKart parameter {name} is missing from the parameter table"
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1] == type(param).__name__
    assert cells[2] == f"`{param._default!r}`", (
        f"{name}: documented default {cells[2]}, true default {param._default!r}"
    )


def test_parameter_table_lists_nothing_else() -> None:
    declared = {name for name, _ in kart_core.TaskOnKart.get_params()}
    assert set(_parameter_rows()) - declared == set()


@pytest.mark.parametrize("chain", [pytest.param(c, id=c.name) for c in chains(DOC)])
def test_reference_program(chain: Chain, tmp_path: Path) -> None:
    check_chain(chain, tmp_path)
