"""What a kart node of a Kedro pipeline hands downstream: which task is now complete, not its data."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

__all__ = ["KartReceipt"]


@dataclasses.dataclass(frozen=True)
class KartReceipt:
    """Proof that a kart task is complete: its node key, label, what run_one did and its output paths.

    ``task`` describes the task (task_text.describe) so that a catalog entry expecting another task
    can say which parameter differs.
    """

    node_key: str
    label: str
    status: str
    paths: tuple[str, ...] = ()
    task: Mapping[str, Any] = dataclasses.field(default_factory=dict, compare=False)
