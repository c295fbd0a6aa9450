"""``SlackSettings``: where and how ``kart_core.slack`` notifies, read from gokart's ``[SlackConfig]`` section.

Its own module so that importing ``kart_core.slack`` (every build's hook manager loads it through the ``kart``
entry point) does not make this frozen dataclass: ``kart_core.slack.SlackSettings`` imports it on first use.
"""

from __future__ import annotations

import dataclasses
import os

from kart_core.slack import _option

__all__ = ["SlackSettings"]

_DEFAULT_BASE_URL = "https://slack.com/api/"


@dataclasses.dataclass(frozen=True)
class SlackSettings:
    """Where and how to notify; ``enabled`` only with both a token and a channel."""

    token: str | None
    channel: str | None
    to_user: str = ""
    send_tree_info: bool = False
    base_url: str = _DEFAULT_BASE_URL

    @property
    def enabled(self) -> bool:
        """Whether a notification can be sent."""
        return bool(self.token and self.channel)

    @classmethod
    def from_config(cls) -> SlackSettings:
        """Read ``[SlackConfig]`` from luigi's config and the environment."""
        token_name = _option("token_name") or "SLACK_TOKEN"
        base_url = _option("base_url") or os.environ.get("KART_SLACK_BASE_URL") or _DEFAULT_BASE_URL
        return cls(
            token=os.environ.get(token_name) or None,
            channel=_option("channel"),
            to_user=_option("to_user") or "",
            send_tree_info=(_option("send_tree_info") or "false").strip().lower() in ("1", "true", "yes", "on"),
            base_url=base_url if base_url.endswith("/") else base_url + "/",
        )
