"""kart_core's log lines in a Kedro session, printed as written: task labels are not read as rich markup.

Kedro's logging sends every record to ``kedro.logging.RichHandler``, which reads ``[...]`` as markup unless the
record says ``markup=False`` (kart_kedro's own lines do: ``pipeline_run.PLAIN``). A kart task label whose id starts
with a letter (``Up[f52dd065]``) is a valid style tag to rich, so the id vanished from kart_core's warnings logged
during a KartRunner run ("built from Up's commit ..."; attacker at20 K6's log). kart_core knows nothing of rich;
``plain_kart_logs`` marks kart_core's records plain on the root logger's markup-reading handlers for a run's length;
``mark_session_plain`` / ``unmark_session_plain`` do it for any Kedro run (kart_kedro's hooks call them around every
pipeline run, so kart_core's lines keep their labels under SequentialRunner and other runners too).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

__all__ = ["mark_session_plain", "plain_kart_logs", "unmark_session_plain"]


class _PlainKartRecords(logging.Filter):
    """Sets ``markup = False`` on records of the ``kart_core`` loggers that say nothing about markup."""

    def filter(self, record: logging.LogRecord) -> bool:
        if (record.name == "kart_core" or record.name.startswith("kart_core.")) and not hasattr(record, "markup"):
            record.markup = False
        return True


@contextlib.contextmanager
def plain_kart_logs() -> Iterator[None]:
    """While the block runs, the root logger's handlers that read markup (``markup`` true: Kedro's ``RichHandler``)
    print kart_core's records as plain text. Handlers added during the block are not changed; nothing else is."""
    reading = [handler for handler in logging.getLogger().handlers if getattr(handler, "markup", False)]
    plain = _PlainKartRecords()
    for handler in reading:
        handler.addFilter(plain)
    try:
        yield
    finally:
        for handler in reading:
            handler.removeFilter(plain)


class _SessionPlainKartRecords(_PlainKartRecords):
    """The filter kart_kedro's hooks put for a whole pipeline run (told apart from ``plain_kart_logs``' own)."""


def _markup_handlers() -> list[logging.Handler]:
    return [handler for handler in logging.getLogger().handlers if getattr(handler, "markup", False)]


def mark_session_plain() -> None:
    """Print kart_core's records as plain text on the root logger's markup-reading handlers (Kedro's
    ``RichHandler``) until ``unmark_session_plain``; a handler already marked is left as it is (idempotent)."""
    for handler in _markup_handlers():
        if not any(isinstance(present, _SessionPlainKartRecords) for present in handler.filters):
            handler.addFilter(_SessionPlainKartRecords())


def unmark_session_plain() -> None:
    """Undo ``mark_session_plain`` on every root handler (also one whose markup was turned off since)."""
    for handler in logging.getLogger().handlers:
        for present in [present for present in handler.filters if isinstance(present, _SessionPlainKartRecords)]:
            handler.removeFilter(present)
