"""Build progress through ``rich``: a live bar on a terminal, one plain summary line everywhere else.

On a terminal (``CI`` unset, no test running) a rich live display shows a bar, ``done/total``, the counts of
tasks that ran, were cached and failed, the tasks running now, the elapsed time and an ETA; it is
redrawn by rich's refresh thread and erased at the end. Elsewhere (CI, a pipe, a log file, pytest's
captured streams) nothing is drawn. Either way ``close`` prints one plain summary line.

The build calls ``started`` / ``finished`` / ``add_cached`` from its own thread only (process
workers report through it), so the counters need no lock; rich locks its own state.
"""

from __future__ import annotations

import os
import sys
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["Progress"]

_SHOWN_RUNNING = 3  # running tasks named on the bar; more show as "+N"


class Progress:
    """Counts task outcomes during a build and shows them live on a terminal.

    Args:
        total: the number of tasks in the graph.
        stream: where the summary (and the live bar) go; default ``sys.stderr``.
        live: draw the live bar; None: when the console is a terminal, ``CI`` is unset and no
            test is running (``PYTEST_CURRENT_TEST``).
        console: a rich ``Console`` to draw on (tests pass one writing into a StringIO with
            ``force_terminal=True``); default one on ``stream``.
    """

    def __init__(
        self, total: int, stream: IO[str] | None = None, live: bool | None = None, console: Console | None = None
    ) -> None:
        self.total = total
        self.ran = self.cached = self.failed = self.repaired_count = 0
        self.running: dict[str, None] = {}  # labels in start order (a dict: ordered, O(1) removal)
        self._stream: IO[str] = stream if stream is not None else (console.file if console is not None else sys.stderr)
        self._bar: Any = None
        self._bar_task: Any = None
        if live if live is not None else _is_interactive(self._stream, console):
            self._start_bar(console)

    def started(self, label: str) -> None:
        """A task began running."""
        self.running[label] = None
        self._update()

    def finished(self, label: str, outcome: str) -> None:
        """A task ended: outcome is "ran", "cached" or "failed"."""
        self.running.pop(label, None)
        if outcome == "ran":
            self.ran += 1
        elif outcome == "cached":
            self.cached += 1
        else:
            self.failed += 1
        self._update()

    def add_cached(self, count: int) -> None:
        """Tasks found complete without running."""
        self.cached += count
        self._update()

    def repaired(self, was_cached: bool) -> None:
        """A task's damaged output was rebuilt (inside the run of a task that needs it).

        ``was_cached``: it was counted as cached (a node of the graph); otherwise it lay further up,
        outside the walked graph, and the total grows by one.
        """
        self.repaired_count += 1
        if was_cached:
            self.cached -= 1
        else:
            self.total += 1
            if self._bar is not None:
                self._bar.update(self._bar_task, total=self.total)
        self._update()

    def recount(self, ran: int, cached: int, failed: int, repaired: int) -> None:
        """Set the counts (a build that ran its graph again counts each task once, by its last outcome)."""
        self.ran, self.cached, self.failed, self.repaired_count = ran, cached, failed, repaired
        self.total = max(self.total, ran + cached + failed + repaired)
        if self._bar is not None:
            self._bar.update(self._bar_task, total=self.total)
        self._update()

    def counts(self) -> str:
        """``3 ran, 1 cached, 0 failed`` (``3 ran, 1 repaired, ...`` when any was): what the bar shows beside it."""
        repaired = f"{self.repaired_count} repaired, " if self.repaired_count else ""
        return f"{self.ran} ran, {repaired}{self.cached} cached, {self.failed} failed"

    def running_text(self) -> str:
        """The running tasks by label, the first few named: ``A[12345678], B[9abcdef0] +2``."""
        labels = list(self.running)
        shown = ", ".join(labels[:_SHOWN_RUNNING])
        return f"{shown} +{len(labels) - _SHOWN_RUNNING}" if len(labels) > _SHOWN_RUNNING else shown

    def close(self, summary: str) -> None:
        """Stop (and erase) the live bar, then print the one summary line."""
        if self._bar is not None:
            self._update()
            self._bar.stop()
            self._bar = None
        self._stream.write(summary + "\n")
        self._stream.flush()

    def _start_bar(self, console: Console | None) -> None:
        # rich is imported only when a bar is drawn: builds in CI, tests and workers never pay for it.
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        self._bar = RichProgress(
            TextColumn("kart build"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[running]}", style="cyan"),
            console=console if console is not None else Console(file=self._stream),
            transient=True,  # the summary line replaces the bar
        )
        self._bar_task = self._bar.add_task("build", total=self.total, counts=self.counts(), running="")
        self._bar.start()

    def _update(self) -> None:
        if self._bar is not None:
            done = self.ran + self.repaired_count + self.cached + self.failed
            self._bar.update(self._bar_task, completed=done, counts=self.counts(), running=self.running_text())


def _is_interactive(stream: IO[str], console: Console | None) -> bool:
    # Never under CI, nor inside a test (pytest -s on a terminal): the bar must not reach tests' output.
    if os.environ.get("CI") or os.environ.get("PYTEST_CURRENT_TEST"):
        return False
    if console is not None:
        return bool(console.is_terminal)
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
