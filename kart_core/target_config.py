"""What every target of one build shares, read from the configuration once per build.

Reading the signing key (environment and luigi's config) for each of the thousands of targets a
build touches was pure overhead, and it let one build see two keys when the config changed
midway. ``frozen()`` reads the settings once for its body (``build()`` and ``run_one`` open it);
outside any scope, ``current()`` reads them afresh each time, so a script's changes take effect.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Iterator

from kart_core.signing import Signer, signer_from_config

__all__ = ["TargetConfig", "current", "frozen", "read"]


@dataclasses.dataclass(frozen=True)
class TargetConfig:
    """Settings every target reads when it loads or dumps.

    Attributes:
        signer: signs and verifies outputs; None when signing is off (no ``KART_SIGNING_KEY`` /
            ``[TaskOnKart] signing_key``).
    """

    signer: Signer | None


_scoped: contextvars.ContextVar[TargetConfig | None] = contextvars.ContextVar("kart_target_config", default=None)


def read() -> TargetConfig:
    """The settings as the environment and luigi's config say now."""
    return TargetConfig(signer=signer_from_config())


def current() -> TargetConfig:
    """The settings of the enclosing ``frozen()`` scope, else read now."""
    scoped = _scoped.get()
    return scoped if scoped is not None else read()


@contextlib.contextmanager
def frozen() -> Iterator[TargetConfig]:
    """Read the settings once for the body (an enclosing scope's settings are kept, not re-read)."""
    scoped = _scoped.get()
    if scoped is not None:
        yield scoped
        return
    settings = read()
    token = _scoped.set(settings)
    try:
        yield settings
    finally:
        _scoped.reset(token)
