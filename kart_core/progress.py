"""A one-line progress display for build(): done / cached / running / failed and the current task.

Redrawn in place on a terminal; silent when stderr is not a TTY or when ``CI`` is set. The
summary line is printed either way.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """Counts task outcomes during a build and shows them on ``stream``."""

    def __init__(
        self, total: int, stream: TextIO | None = None, live: bool | None = None, interval: float = 0.1
    ) -> None:
        self.total = total
        self.ran = self.cached = self.failed = self.running = 0
        self.current = ""
        self._stream = stream if stream is not None else sys.stderr
        self._live = _is_interactive(self._stream) if live is None else live
        self._interval = interval
        self._last_draw = 0.0

    def started(self, label: str) -> None:
        """A task began running."""
        self.running += 1
        self.current = label
        self._draw()

    def finished(self, label: str, outcome: str) -> None:
        """A task ended: outcome is "ran", "cached" or "failed"."""
        self.running = max(0, self.running - 1)
        if outcome == "ran":
            self.ran += 1
        elif outcome == "cached":
            self.cached += 1
        else:
            self.failed += 1
        self._draw()

    def add_cached(self, count: int) -> None:
        """Tasks found complete without running."""
        self.cached += count
        self._draw()

    def line(self) -> str:
        """The status line as text."""
        done = self.ran + self.cached + self.failed
        text = (
            f"[{done}/{self.total}] {self.ran} ran, {self.cached} cached, {self.running} running, {self.failed} failed"
        )
        return f"{text} | {self.current}" if self.current and self.running else text

    def close(self, summary: str) -> None:
        """Clear the live line and print the summary."""
        if self._live:
            self._stream.write("\r\033[K")
        self._stream.write(summary + "\n")
        self._stream.flush()

    def _draw(self) -> None:
        if not self._live:
            return
        now = time.monotonic()
        if now - self._last_draw < self._interval:
            return
        self._last_draw = now
        self._stream.write("\r\033[K" + self.line()[:200])
        self._stream.flush()


def _is_interactive(stream: TextIO) -> bool:
    if os.environ.get("CI"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
