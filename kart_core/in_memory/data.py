"""One stored in-memory value and when it was stored."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

__all__ = ["InMemoryData"]


@dataclasses.dataclass
class InMemoryData:
    """A value kept in memory and its modification time (local naive time, like file mtimes)."""

    value: Any
    last_modification_time: datetime

    @classmethod
    def create_data(cls, value: Any) -> InMemoryData:
        """Wrap ``value``, stamped now."""
        return cls(value=value, last_modification_time=datetime.now())
