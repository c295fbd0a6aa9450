"""What a kart node of a Kedro pipeline hands downstream: which task is now complete, not its data."""

from __future__ import annotations

import dataclasses

__all__ = ["KartReceipt"]


@dataclasses.dataclass(frozen=True)
class KartReceipt:
    """Proof that a kart task is complete: its node key, label, what run_one did and its output paths."""

    node_key: str
    label: str
    status: str
    paths: tuple[str, ...] = ()
