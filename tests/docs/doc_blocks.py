"""Extract the runnable examples of a Markdown document and run them as a reader would.

Markers are HTML comments, invisible on GitHub, on the line before a fenced block:

- ``<!-- run -->`` before a ```python block: a complete program, run in a fresh directory.
- ``<!-- run: continue -->``: run in the directory of the previous program (its resources/ stays).
- ``<!-- output -->`` before a ```text block: the exact stdout of the program above it;
  a line ``...`` matches any number of lines, and ``...`` inside a line matches any text.
- ``<!-- tree -->`` before a ```text block: ``tree resources/`` after the program above it.

A chain is a fresh program and the continuing programs after it; each chain is one test.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
from pathlib import Path

import fork_server
from fork_server import KART

REPO = Path(__file__).resolve().parents[2]

_MARKER = re.compile(r"^<!--\s*(run|run:\s*continue|output|tree)\s*-->\s*$")
_FENCE = re.compile(r"^```(\w*)\s*$")
# Variables that would change where or how kart writes; a reader's shell normally has none of them.
_DROPPED_ENV = ("LUIGI_CONFIG_PATH", "KART_WORKSPACE", "KART_SIGNING_KEY", "PYTHONPATH")


@dataclasses.dataclass
class Program:
    """One runnable block and what the document says it prints and writes."""

    code: str
    line: int
    heading: str
    expected_output: str | None = None
    expected_tree: str | None = None


@dataclasses.dataclass
class Chain:
    """Programs that run one after another in the same directory."""

    programs: list[Program]

    @property
    def name(self) -> str:
        """A readable test id: the heading and line of the first program."""
        first = self.programs[0]
        slug = re.sub(r"[^a-z0-9]+", "-", first.heading.lower()).strip("-")
        return f"L{first.line}-{slug}"


def _blocks(text: str) -> list[tuple[str | None, str, str, int, str]]:
    """(marker, fence language, body, line number, heading) of every fenced block, in order."""
    lines = text.splitlines()
    blocks = []
    heading, marker, index = "", None, 0
    while index < len(lines):
        line = lines[index]
        fence = _FENCE.match(line)
        if line.startswith("#"):
            heading, marker = line.lstrip("#").strip(), None
        elif _MARKER.match(line):
            marker = _MARKER.match(line).group(1).replace(" ", "")  # type: ignore[union-attr]
        elif fence:
            end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
            blocks.append((marker, fence.group(1), "\n".join(lines[index + 1 : end]), index + 2, heading))
            marker, index = None, end
        elif line.strip():
            marker = None
        index += 1
    return blocks


def chains(path: Path) -> list[Chain]:
    """The runnable chains of a Markdown file."""
    found: list[Chain] = []
    for marker, language, body, line, heading in _blocks(path.read_text(encoding="utf-8")):
        if marker in ("run", "run:continue"):
            if language != "python":
                raise ValueError(f"{path.name}:{line}: <!-- run --> must precede a ```python block")
            if marker == "run:continue" and not found:
                raise ValueError(f"{path.name}:{line}: <!-- run: continue --> with no program before it")
            program = Program(code=body + "\n", line=line, heading=heading)
            if marker == "run":
                found.append(Chain([program]))
            else:
                found[-1].programs.append(program)
        elif marker in ("output", "tree"):
            if not found:
                raise ValueError(f"{path.name}:{line}: <!-- {marker} --> with no program before it")
            setattr(found[-1].programs[-1], f"expected_{marker}", body)
    return found


def run_program(
    program: Program, directory: Path, index: int, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Write the program as ``example_{index}.py`` in ``directory`` and run it there with this Python."""
    script = directory / f"example_{index}.py"
    script.write_text(program.code, encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if key not in _DROPPED_ENV}
    env["CI"] = "true"  # no progress line redrawn on stderr
    env["AIRFLOW_HOME"] = str(directory / ".airflow")  # Airflow would otherwise write to ~/airflow
    env["DO_NOT_TRACK"] = "1"  # no Kedro telemetry
    # A fork of the test process's server that imported luigi and pandas once (tests/fork_server.py): still a
    # fresh process of its own running the file as a script, without the ~1.7 s of CPU those imports took.
    return fork_server.run([script.name], directory, env, timeout, KART)


def output_matches(expected: str, actual: str) -> bool:
    """Whether ``actual`` stdout matches the documented output (``...`` is a wildcard)."""
    pattern = []
    for line in expected.rstrip("\n").split("\n"):
        if line.strip() == "...":
            pattern.append(r"(?:.*\n)*?")
        else:
            pattern.append(".*?".join(map(re.escape, line.split("..."))) + r"[ \t]*\n")
    return re.fullmatch("".join(pattern), actual.rstrip("\n") + "\n") is not None


def tree_paths(tree_text: str) -> set[str]:
    """The file paths drawn by ``tree`` output (box-drawing lines, four columns per level)."""
    lines = [line for line in tree_text.splitlines() if line.strip() and not line.startswith("$")]
    root = lines[0].strip().rstrip("/")
    stack: list[str] = [root]
    entries: list[tuple[str, int]] = []
    for line in lines[1:]:
        match = re.match(r"^((?:│   |    )*)(?:├── |└── )(.+)$", line)
        if match is None:
            raise ValueError(f"not a tree line: {line!r}")
        depth = len(match.group(1)) // 4 + 1
        del stack[depth:]
        stack.append(match.group(2).strip())
        entries.append(("/".join(stack), depth))
    # A path is a file when the next entry is not deeper than it.
    return {path for i, (path, depth) in enumerate(entries) if i + 1 == len(entries) or entries[i + 1][1] <= depth}


def files_under(directory: Path) -> set[str]:
    """Relative paths of every file under ``directory``, with the directory's own name first."""
    return {f"{directory.name}/{p.relative_to(directory).as_posix()}" for p in directory.rglob("*") if p.is_file()}


def check_chain(chain: Chain, directory: Path) -> None:
    """Run every program of the chain in ``directory``; assert exit codes, stdout and trees."""
    for index, program in enumerate(chain.programs):
        done = run_program(program, directory, index)
        where = f"program at line {program.line} ({program.heading})"
        assert done.returncode == 0, (
            f"{where} exited {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        )
        if program.expected_output is not None:
            assert output_matches(program.expected_output, done.stdout), (
                f"{where}: stdout differs from the document\n--- documented\n{program.expected_output}\n"
                f"--- actual\n{done.stdout}"
            )
        if program.expected_tree is not None:
            drawn = tree_paths(program.expected_tree)
            root = directory / sorted(drawn)[0].split("/")[0]
            assert files_under(root) == drawn, f"{where}: files differ from the tree in the document"
