"""Why a node reruns, and the one-line summary KartRunner logs after each run."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from kart_kedro.node_records import RunParts

__all__ = ["rerun_reason", "stale_reason", "summary_line"]

_SHOWN = 3  # names listed per reason; more are counted


def rerun_reason(previous: RunParts | None, current: RunParts) -> str:
    """Why the node with key parts ``current`` runs, compared with its last run ``previous``.

    Returns:
        e.g. ``"first run"``, ``"code changed: pkg.helpers.unit"``, ``"code changed: the state of the
        instance bound to pkg.model.Model.predict"``,
        ``"parameters changed: params:factor"``, ``"input changed: raw"``,
        ``"upstream changed: clean_values"``, ``"its cache was cleared"``.
    """
    if previous is None:
        return "first run"
    if previous.unique_id == current.unique_id:
        return "its cache was cleared"
    # An input that is now counted by its own content and was an upstream output before, or the other
    # way round (a --load-versions pin set or dropped), is named once, as an input.
    moved = (set(previous.upstream) ^ set(current.upstream)) & (set(previous.inputs) | set(current.inputs))
    reasons = [
        _changed("code changed", previous.code, current.code, _BOUND_STATE),
        _changed("parameters changed", previous.parameters, current.parameters),
        _changed("input changed", previous.inputs, current.inputs),
        _changed(
            "upstream changed",
            {name: value for name, value in previous.upstream.items() if name not in moved},
            {name: value for name, value in current.upstream.items() if name not in moved},
        ),
    ]
    found = [reason for reason in reasons if reason]
    return "; ".join(found) if found else "node definition changed (inputs, outputs or name)"


def stale_reason(stale: Sequence[Any]) -> str | None:
    """Why a node whose key is unchanged runs again because its node run is stale (``TaskOnKart.kart_stale``: what
    its last run built or loaded was committed again with other content), e.g. ``"Up[64d0687e], which it built, was
    committed again with other content"``; None when it is not stale (then ``rerun_reason`` says why)."""
    reasons = list(dict.fromkeys(item.reason() for item in stale))
    if not reasons:
        return None
    shown = "; ".join(reasons[:_SHOWN])
    return shown + (f"; and {len(reasons) - _SHOWN} more" if len(reasons) > _SHOWN else "")


# Code parts naming what is bound to a node callable (pipeline_run._bound_state); kart before 2026-12-01
# did not record them, so one absent from the last run is no change.
_BOUND_STATE = ("the state of ", "the arguments of ")


def _changed(label: str, before: Mapping[str, str], after: Mapping[str, str], new_kinds: tuple[str, ...] = ()) -> str:
    names = sorted(
        name
        for name in set(before) | set(after)
        if before.get(name) != after.get(name) and not (name not in before and name.startswith(new_kinds))
    )
    if not names:
        return ""
    return f"{label}: {_names(names)}"


def summary_line(statuses: Mapping[str, str], reasons: Mapping[str, str]) -> str:
    """``kart: 4 node(s): 2 cached, 2 ran because parameters changed: params:factor (scale); ...``.

    Args:
        statuses: node name → ``cached`` / ``ran`` / ``ran uncached``.
        reasons: node name → why it ran (for the nodes that ran).
    """
    counts = Counter(statuses.values())
    parts = [f"{counts[status]} {status}" for status in ("cached", "ran", "ran uncached") if counts[status]]
    line = f"kart: {len(statuses)} node(s): {', '.join(parts) or 'none'}"
    by_reason: dict[str, list[str]] = {}
    for name, status in statuses.items():
        if status == "ran" and name in reasons:
            by_reason.setdefault(reasons[name], []).append(name)
    if by_reason:
        groups = [f"{reason} ({_names(names)})" for reason, names in by_reason.items()]
        line += " because " + "; ".join(groups)
    return line


def _names(names: list[str]) -> str:
    return ", ".join(names[:_SHOWN]) + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")
