"""Slack notifications after a build, as a kart hook plugin (inert until configured).

Settings keep gokart's ``[SlackConfig]`` section: ``token_name`` (the environment variable that
holds the bot token, default ``SLACK_TOKEN``), ``channel``, ``to_user`` (mentioned in the message)
and ``send_tree_info`` (attach the task tree as a file). ``base_url`` (or the environment variable
``KART_SLACK_BASE_URL``) points the client at another Slack API endpoint, e.g. a test server.
Nothing is sent unless both the token and the channel are set. Uses slack_sdk's current API:
``chat.postMessage``, and ``files_upload_v2`` for the tree (the old ``files.upload`` is retired).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import luigi.configuration

from kart_core.contract import LuigiTask
from kart_core.hooks.markers import hookimpl
from kart_core.outcome import BuildResult, task_label

if TYPE_CHECKING:
    from kart_core.slack_settings import SlackSettings

__all__ = ["SlackNotifier", "SlackSettings", "build_message", "slack_notifier"]

logger = logging.getLogger(__name__)

_SECTION = "SlackConfig"


def __getattr__(name: str) -> Any:
    """``SlackSettings`` (``kart_core.slack_settings``), imported on first use.

    This module is imported by every build's hook manager (the ``kart`` entry point); making the frozen dataclass
    generates its methods from source (about 4.8 M instructions, a fifth of a cached build's fixed cost), which a
    build without Slack configured never needs.
    """
    if name == "SlackSettings":
        from kart_core.slack_settings import SlackSettings

        return SlackSettings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _option(name: str) -> str | None:
    """The ``[SlackConfig]`` setting ``name`` from luigi's config; None when unset or empty."""
    value = luigi.configuration.get_config().get(_SECTION, name, None)
    return str(value) if value not in (None, "") else None


def _configured() -> bool:
    """Whether a notification can be sent: ``SlackSettings.from_config().enabled`` (a channel set and the token's
    environment variable, ``token_name``, not empty), told from two settings without making the settings."""
    return _option("channel") is not None and bool(os.environ.get(_option("token_name") or "SLACK_TOKEN"))


def build_message(tasks: Sequence[LuigiTask], result: BuildResult, to_user: str = "") -> str:
    """The notification text: outcome, the roots, counts, and each failed task with its unique id."""
    roots = ", ".join(task_label(task) for task in tasks)
    outcome = "succeeded" if not result.failed else "FAILED"
    lines = [f"{'<@' + to_user + '> ' if to_user else ''}kart build {outcome}: {roots}", result.summary()]
    for key, error in result.failed.items():
        lines.append(f"• {result.describe(key)}: {type(error).__name__}: {error}")
    if result.not_run:
        lines.append("Not run because of them: " + ", ".join(result.label(key) for key in result.not_run))
    return "\n".join(lines)


class SlackNotifier:
    """Posts a build summary to Slack after ``kart_core.build`` (hook ``kart_after_build``)."""

    @hookimpl
    def kart_after_build(self, tasks: list[LuigiTask], result: BuildResult) -> None:
        """Send the summary (and the task tree when ``send_tree_info``); never fail the build."""
        if not _configured():
            return
        from kart_core.slack_settings import SlackSettings

        settings = SlackSettings.from_config()
        if not settings.enabled:
            return
        try:
            self.send(settings, tasks, result)
        except ImportError:
            logger.warning("[SlackConfig] is set but slack_sdk is missing: pip install 'kart-suite[slack]'.")
        except Exception as exc:  # a notification problem must not turn a build into a failure
            logger.warning("Could not notify Slack channel %s: %s", settings.channel, exc)

    def send(self, settings: SlackSettings, tasks: Sequence[LuigiTask], result: BuildResult) -> None:
        """Post the message, then attach the tree in its thread when asked to."""
        from slack_sdk import WebClient

        client = WebClient(token=settings.token, base_url=settings.base_url)
        channel = str(settings.channel)  # enabled implies a channel
        posted = client.chat_postMessage(channel=channel, text=build_message(tasks, result, settings.to_user))
        if settings.send_tree_info:
            # files_upload_v2 needs the channel id, which the post's answer carries.
            client.files_upload_v2(
                channel=posted.get("channel") or channel,
                thread_ts=posted.get("ts"),
                content=_tree_text(tasks),
                filename="kart_task_tree.txt",
                title="kart task tree",
            )


def _tree_text(tasks: Sequence[LuigiTask]) -> str:
    from kart_core.tree.task_info import make_task_info_as_tree_str

    return "\n".join(make_task_info_as_tree_str(task).lstrip("\n") for task in tasks)


# The object the "kart" entry point registers: kart-suite's pyproject names "kart_core.slack:slack_notifier".
slack_notifier = SlackNotifier()
