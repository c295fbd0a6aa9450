"""The build progress display: a rich live bar on a terminal, one plain summary line otherwise."""

from __future__ import annotations

import io
import re

import luigi
import pytest
from rich.console import Console

import kart_core
from kart_core.progress import Progress

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class PgLeaf(kart_core.TaskOnKart[int]):
    i = luigi.IntParameter()

    def run(self) -> None:
        self.dump(self.i)


class PgRoot(kart_core.TaskOnKart[int]):
    def requires(self):
        return [PgLeaf(i=i, workspace_directory=self.workspace_directory) for i in range(3)]

    def run(self) -> None:
        self.dump(3)


def terminal() -> tuple[Console, io.StringIO]:
    """A rich console that believes it draws on a 160-column terminal, writing into a string."""
    file = io.StringIO()
    return Console(file=file, force_terminal=True, width=160, color_system=None), file


def test_the_live_bar_shows_counts_running_tasks_and_times() -> None:
    console, file = terminal()
    progress = Progress(total=4, console=console, live=True)
    progress.add_cached(1)
    progress.started("A[12345678]")
    progress.started("B[9abcdef0]")
    assert progress.running_text() == "A[12345678], B[9abcdef0]"
    progress._bar.refresh()  # what rich's refresh thread draws ten times a second
    drawn = ANSI.sub("", file.getvalue())
    assert "1/4" in drawn and "0 ran, 1 cached, 0 failed" in drawn and "A[12345678], B[9abcdef0]" in drawn
    assert "0:00:0" in drawn and "ETA" in drawn  # elapsed, and the remaining-time column
    progress.finished("A[12345678]", "ran")
    progress.finished("B[9abcdef0]", "failed")
    progress.close("kart build: 1 ran, 1 cached, 1 failed, 0 not run, in 0.01s")
    drawn = ANSI.sub("", file.getvalue())
    assert "3/4" in drawn and "1 ran, 1 cached, 1 failed" in drawn  # the final state is drawn before erasing
    assert drawn.endswith("kart build: 1 ran, 1 cached, 1 failed, 0 not run, in 0.01s\n")


def test_many_running_tasks_are_counted_not_all_named() -> None:
    progress = Progress(total=9, stream=io.StringIO(), live=False)
    for name in "ABCDE":
        progress.started(f"{name}[00000000]")
    assert progress.running_text() == "A[00000000], B[00000000], C[00000000] +2"


def test_not_a_terminal_gives_exactly_one_summary_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    stream = io.StringIO()  # a pipe or a log file: no isatty()
    progress = Progress(total=2, stream=stream)
    progress.started("A[12345678]")
    progress.finished("A[12345678]", "ran")
    progress.add_cached(1)
    progress.close("kart build: 1 ran, 1 cached, 0 failed, 0 not run, in 0.00s")
    assert stream.getvalue() == "kart build: 1 ran, 1 cached, 0 failed, 0 not run, in 0.00s\n"


@pytest.mark.parametrize(("ci", "in_a_test", "bar"), [(None, False, True), ("true", False, False), (None, True, False)])
def test_a_terminal_gets_the_bar_unless_under_ci_or_a_test(
    monkeypatch: pytest.MonkeyPatch, ci: str | None, in_a_test: bool, bar: bool
) -> None:
    monkeypatch.delenv("CI", raising=False)
    if ci is not None:
        monkeypatch.setenv("CI", ci)
    if not in_a_test:
        monkeypatch.delenv("PYTEST_CURRENT_TEST")  # pytest sets it while a test runs (and restores it)
    console, file = terminal()
    progress = Progress(total=1, console=console)
    progress.started("A[12345678]")
    progress.finished("A[12345678]", "ran")
    progress.close("done")
    assert progress_drawn(file) if bar else file.getvalue() == "done\n"


def progress_drawn(file: io.StringIO) -> bool:
    drawn = ANSI.sub("", file.getvalue())
    return "1/1" in drawn and "1 ran, 0 cached, 0 failed" in drawn and drawn.endswith("done\n")


def test_build_prints_one_summary_line_and_no_bar(workspace: str, capsys: pytest.CaptureFixture[str]) -> None:
    kart_core.build(PgRoot(workspace_directory=workspace))
    err = capsys.readouterr().err
    # (other lines may come from logging handlers that earlier tests in this process left behind)
    summaries = [line for line in err.splitlines() if line.startswith("kart build")]
    assert len(summaries) == 1 and re.fullmatch(
        r"kart build: 4 ran, 0 cached, 0 failed, 0 not run, in [0-9.]+s", summaries[0]
    )
    assert "━" not in err and "\x1b[" not in err  # no bar, no terminal control codes
    kart_core.build(PgRoot(workspace_directory=workspace))
    assert "kart build: 0 ran, 1 cached, 0 failed, 0 not run" in capsys.readouterr().err


def test_a_repaired_task_moves_from_cached_and_one_outside_the_graph_grows_the_total() -> None:
    display = Progress(total=3, stream=io.StringIO(), live=False)
    display.add_cached(2)
    display.repaired(was_cached=True)  # a node of the graph, counted cached by the walk
    display.repaired(was_cached=False)  # further up, not in the walked graph
    display.finished("Down[12345678]", "ran")
    assert display.counts() == "1 ran, 2 repaired, 1 cached, 0 failed"
    assert display.total == 4
