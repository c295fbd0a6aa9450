"""kart_core's log lines in a Kedro session, printed as written: task labels are not read as rich markup.

Kedro's logging sends every record to ``kedro.logging.RichHandler``, which reads ``[...]`` as markup unless the
record says ``markup=False`` (kart_kedro's own lines do: ``pipeline_run.PLAIN``). A kart task label whose id starts
with a letter (``Up[f52dd065]``) is a valid style tag to rich, so the id vanished from kart_core's warnings logged
during a KartRunner run ("built from Up's commit ..."; attacker at20 K6's log). kart_core knows nothing of rich;
``plain_kart_logs`` marks kart_core's records plain on the root logger's markup-reading handlers for a run's length.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

__all__ = ["plain_kart_logs"]


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
