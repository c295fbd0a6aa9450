"""What every target of one build shares (signing key, verify, integrity record), read once per build,
and what its loads warned about already (``TargetConfig.warned``).

Reading the signing key (environment and luigi's config) for each of the thousands of targets a
build touches was pure overhead, and it let one build see two keys when the config changed
midway. ``frozen()`` reads the settings once for its body (``build()`` and ``run_one`` open it);
outside any scope, ``current()`` reads them afresh each time, so a script's changes take effect.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import os
from collections.abc import Iterator

from kart_core.errors import SettingValueError
from kart_core.signing import Signer, signer_from_config

__all__ = [
    "RECORD_ENVIRONMENT_VARIABLE",
    "REPAIR_ENVIRONMENT_VARIABLE",
    "VERIFY_ENVIRONMENT_VARIABLE",
    "TargetConfig",
    "current",
    "frozen",
    "read",
    "records",
    "verifying",
]


@dataclasses.dataclass(frozen=True)
class TargetConfig:
    """Settings every target reads when it loads or dumps.

    Attributes:
        signer: signs and verifies outputs; None when signing is off (no ``KART_SIGNING_KEY`` /
            ``[TaskOnKart] signing_key``).
        verify: check each loaded output's content hash against its integrity record, not only its
            size (``[TaskOnKart] verify_outputs`` or ``KART_VERIFY_OUTPUTS``; default off).
        record: keep the integrity record at all (``[TaskOnKart] integrity_record`` or
            ``KART_INTEGRITY_RECORD``; default on). Off: no hashing, no manifest, no size check
            (what bench/integrity_cost.py compares against).
        repair: when a task that must run finds an upstream's output damaged (``DamagedOutputError``),
            run that upstream again and retry (``[TaskOnKart] repair_damaged_outputs`` or
            ``KART_REPAIR_DAMAGED``; default on). Off: the task fails, naming the file and the fix.
        warned: what loads of this scope warned about already, by path (``TargetOnKart`` warns once per
            path and scope about an output no integrity record vouches for, and about a new version it
            cannot record). State of the scope, not a setting: shared by ``verifying()``'s copy, fresh
            at each read outside any scope.
    """

    signer: Signer | None
    verify: bool = False
    record: bool = True
    repair: bool = True
    warned: set[str] = dataclasses.field(default_factory=set, compare=False, repr=False)


_scoped: contextvars.ContextVar[TargetConfig | None] = contextvars.ContextVar("kart_target_config", default=None)


VERIFY_ENVIRONMENT_VARIABLE = "KART_VERIFY_OUTPUTS"
RECORD_ENVIRONMENT_VARIABLE = "KART_INTEGRITY_RECORD"
REPAIR_ENVIRONMENT_VARIABLE = "KART_REPAIR_DAMAGED"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def read() -> TargetConfig:
    """The settings as the environment and luigi's config say now (the environment wins)."""
    return TargetConfig(
        signer=signer_from_config(),
        verify=_flag(VERIFY_ENVIRONMENT_VARIABLE, "verify_outputs", default=False),
        record=_flag(RECORD_ENVIRONMENT_VARIABLE, "integrity_record", default=True),
        repair=_flag(REPAIR_ENVIRONMENT_VARIABLE, "repair_damaged_outputs", default=True),
    )


def _flag(variable: str, option: str, default: bool) -> bool:
    """The on/off setting ``variable`` (environment) or ``[TaskOnKart] option``; ``default`` when unset or empty.

    Raises:
        SettingValueError: a value that is neither on (1, true, yes, on) nor off (0, false, no, off), in any
            case: ``integrity_record = Ture`` read as off silently dropped every integrity record. luigi's
            ``BoolParameter`` refuses such values too.
    """
    value = os.environ.get(variable)
    where = f"the environment variable {variable}"
    if value is None:
        import luigi.configuration

        config = luigi.configuration.get_config()
        # has_option first: a get of a missing option raises and catches two NoSectionErrors in luigi's
        # parser (its dash-spelt alias too), ~25 us per setting and run_one outside a build's frozen scope.
        if config.has_option("TaskOnKart", option):
            value = config.get("TaskOnKart", option, None)
        where = f"[TaskOnKart] {option} in the luigi configuration"
    if value is None or not str(value).strip():
        return default
    spelled = str(value).strip().lower()
    if spelled in _TRUE or spelled in _FALSE:
        return spelled in _TRUE
    raise SettingValueError(
        f"{where} is {value!r}, which kart reads as neither on nor off. Write one of "
        f"{', '.join(sorted(_TRUE))} (on) or {', '.join(sorted(_FALSE))} (off), or remove it for the default "
        f"({'on' if default else 'off'})."
    )


def current() -> TargetConfig:
    """The settings of the enclosing ``frozen()`` scope, else read now."""
    scoped = _scoped.get()
    return scoped if scoped is not None else read()


def records() -> bool:
    """Whether integrity records are kept (``TargetConfig.record``): the enclosing scope's setting, else read now
    (only that setting: ``complete()`` outside a build asks this, and the signing key need not be read for it)."""
    scoped = _scoped.get()
    if scoped is not None:
        return scoped.record
    return _flag(RECORD_ENVIRONMENT_VARIABLE, "integrity_record", default=True)


class frozen:  # noqa: N801 - used as a function: ``with target_config.frozen() as settings:``
    """Read the settings once for the body (an enclosing scope's settings are kept, not re-read).

    A class, not a ``contextlib.contextmanager``: every task run enters it (``run_one``), nearly always inside an
    enclosing scope, where a generator-based one still cost six calls.
    """

    __slots__ = ("_token",)
    _token: contextvars.Token[TargetConfig | None] | None

    def __enter__(self) -> TargetConfig:
        scoped = _scoped.get()
        if scoped is not None:
            self._token = None
            return scoped
        settings = read()
        self._token = _scoped.set(settings)
        return settings

    def __exit__(self, *_exc: object) -> None:
        if self._token is not None:
            _scoped.reset(self._token)


@contextlib.contextmanager
def verifying() -> Iterator[TargetConfig]:
    """Within the body, every output load checks its content hash against its integrity record, as with
    ``verify_outputs`` on (the other settings as the enclosing scope has them, else read now).

    For code that reads an output's bytes anyway and hands them on as trusted data (kart_kedro writes
    a cached node output back into a Kedro catalog): the hash costs little next to the read. A
    mismatch raises ``DamagedOutputError`` from the load.
    """
    settings = dataclasses.replace(current(), verify=True)
    token = _scoped.set(settings)
    try:
        yield settings
    finally:
        _scoped.reset(token)
