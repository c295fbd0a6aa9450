"""Headless Chromium for tests: Debian's /usr/bin/chromium driven by Playwright, nothing sent to the network.

``make test`` installs the ``chromium`` Debian package when it is missing and apt-get can (root).
Without it the browser tests skip, naming the missing binary; under ``CI=true`` they fail instead,
so a CI machine without a browser cannot pass by skipping them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
# --headless is added by Playwright; the others keep Chromium from calling home (updates, sync, QUIC probes).
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def missing_browser() -> str | None:
    """Why the browser tests cannot run here (None when they can)."""
    if not os.access(CHROMIUM, os.X_OK):
        return (
            f"{CHROMIUM} is missing: `make test` installs it with apt-get (Debian package 'chromium') when run as root"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python package playwright is missing (dev extra): pip install -c ci/constraints.txt -e '.[dev]'"
    return None


def require_browser() -> None:
    """Skip the calling test when no browser can run, or fail under CI=true (CI must run the browser tests)."""
    reason = missing_browser()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and the browser tests cannot run: {reason}")
    pytest.skip(reason)


class Page:
    """A Playwright page, and every request it tried to make (none but the report's own file may appear)."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.requests: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))


@contextlib.contextmanager
def chromium_page(profile: Path, width: int = 1400, height: int = 860) -> Iterator[Page]:
    """One page in a fresh Chromium profile at ``profile``, ``width`` x ``height`` CSS pixels (device scale 1).

    Every request other than ``file:`` and ``data:`` is aborted before it leaves the browser, and recorded.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": width, "height": height},
            device_scale_factor=1,
            service_workers="block",
        )
        try:
            context.route(
                "**/*",
                lambda route: (
                    route.continue_()
                    if route.request.url.startswith(("file:", "data:"))
                    else route.abort("blockedbyclient")
                ),
            )
            page = Page(context.new_page())
            yield page
        finally:
            context.close()
