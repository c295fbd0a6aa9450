"""The documentation checker itself: it finds the marked blocks and fails when a document is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from doc_blocks import chains, check_chain, files_under, output_matches, tree_paths

SEED_TREE = """\
resources/
├── __main__
│   └── Example_8441c59b5ce0113396d53509f19371fb.pkl
└── log
    ├── module_versions
    │   └── Example_8441c59b5ce0113396d53509f19371fb.txt
    └── task_params
        └── Example_8441c59b5ce0113396d53509f19371fb.pkl
"""

DOC = """\
# Title

<!-- run -->
```python
print("one")
```

<!-- output -->
```text
one
```

## Next

<!-- run: continue -->
```python
open("made.txt", "w").write("x")
print("two")
```

```python
print("not run: no marker")
```

<!-- run -->
```python
print("fresh")
```
"""


def test_tree_paths_are_the_files_of_the_drawing() -> None:
    name = "Example_8441c59b5ce0113396d53509f19371fb"
    assert tree_paths(SEED_TREE) == {
        f"resources/__main__/{name}.pkl",
        f"resources/log/module_versions/{name}.txt",
        f"resources/log/task_params/{name}.pkl",
    }


def test_output_wildcards() -> None:
    assert output_matches("a\nb", "a\nb\n")
    assert not output_matches("a\nb", "a\nc\n")
    assert output_matches("...\nb", "log line\nanother\nb\n")
    assert output_matches("took ... s", "took 0.25 s\n")
    assert not output_matches("a", "a\nextra\n")


def test_chains_follow_the_markers(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(DOC, encoding="utf-8")
    found = chains(doc)
    assert [len(chain.programs) for chain in found] == [2, 1]
    assert found[0].programs[0].expected_output == "one"
    assert found[0].programs[1].heading == "Next"
    assert "not run" not in "".join(p.code for chain in found for p in chain.programs)


def test_a_continued_chain_shares_its_directory(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(DOC, encoding="utf-8")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    check_chain(chains(doc)[0], run_dir)
    assert (run_dir / "made.txt").read_text() == "x"


def test_a_wrong_output_fails(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(DOC.replace("one\n```", "uno\n```", 1), encoding="utf-8")
    with pytest.raises(AssertionError, match="stdout differs"):
        check_chain(chains(doc)[0], tmp_path)


def test_a_wrong_tree_fails(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text('<!-- run -->\n```python\nprint("no files")\n```\n\n<!-- tree -->\n```text\n' + SEED_TREE + "```\n")
    (tmp_path / "resources").mkdir()
    with pytest.raises(AssertionError, match="files differ"):
        check_chain(chains(doc)[0], tmp_path)
    assert files_under(tmp_path / "resources") == set()
