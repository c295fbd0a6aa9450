"""Opt-in integrity check: a keyed HMAC signature beside each output, verified before loading.

Loading a pickle runs code, so a writable cache is a way into every process that reads it.
With a signing key set (environment variable ``KART_SIGNING_KEY`` or ``[TaskOnKart] signing_key``),
kart writes ``{output}.sig`` with each output and refuses to load a file whose signature is
missing or does not match.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import IO

__all__ = ["Signer", "signer_from_config", "signature_path", "SIGNATURE_SUFFIX", "ENVIRONMENT_VARIABLE"]

SIGNATURE_SUFFIX = ".sig"
ENVIRONMENT_VARIABLE = "KART_SIGNING_KEY"
_SCHEME = "kart-hmac-sha256"
_CHUNK = 1 << 20


def signature_path(path: str) -> str:
    """Where the signature of the output at ``path`` lives."""
    return path + SIGNATURE_SUFFIX


class Signer:
    """Signs and verifies byte streams with HMAC-SHA256 under one secret key."""

    def __init__(self, key: bytes) -> None:
        if not key:
            raise ValueError("a signing key must not be empty")
        self._key = key

    def signature(self, stream: IO[bytes]) -> bytes:
        """The signature line of everything ``stream`` yields from its current position."""
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        while chunk := stream.read(_CHUNK):
            mac.update(chunk)
        return f"{_SCHEME}:{mac.hexdigest()}\n".encode("ascii")

    def matches(self, stream: IO[bytes], expected: bytes) -> bool:
        """Whether ``expected`` is the signature of what ``stream`` yields (constant-time comparison)."""
        return hmac.compare_digest(self.signature(stream).strip(), expected.strip())

    def __repr__(self) -> str:
        return "Signer(<secret>)"


def _configured_key() -> str | None:
    key = os.environ.get(ENVIRONMENT_VARIABLE)
    if key:
        return key
    import luigi.configuration

    value = luigi.configuration.get_config().get("TaskOnKart", "signing_key", None)
    return str(value) if value else None


def signer_from_config() -> Signer | None:
    """The signer for the configured key, or None when signing is off."""
    key = _configured_key()
    return Signer(key.encode("utf-8")) if key else None
