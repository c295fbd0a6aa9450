"""Opt-in signing: a keyed HMAC sealed into each output, verified on the very bytes that are then loaded.

Loading a pickle runs code, so a writable cache is a way into every process that reads it. With a
signing key set (environment variable ``KART_SIGNING_KEY`` or ``[TaskOnKart] signing_key``), every
file kart writes starts with a fixed-size header (``HEADER_SIZE`` bytes)::

    b"KARTSIG2" | commit id (16 bytes; zeros: written outside a task run) | HMAC-SHA256 (32) | 8 zero bytes

The MAC covers a domain tag, the file's *name*, the commit id and the content. The name is the
file's workspace-relative path for everything a task writes: outputs, run logs
(``log/{kind}/{Class}_{unique_id}{ext}``) and manifests; only a bare ``make_target(path)``, which knows
no workspace, binds its full path (symlinks resolved). So a signed workspace that is moved, copied,
mounted at another path or read through another spelling verifies in full, while a file copied to
another name inside it does not. So:

- the header travels with the data: data and signature land in one rename / one put, and two
  concurrent writers can never leave one's data with the other's signature;
- another output's signed file copied over this one fails (another name);
- an older version of this output copied back fails when its commit id is not the one the task's
  manifest (``kart_core.manifest``) recorded at commit (one sealed without a commit fails too once the
  manifest records one); an older run's ``task_log`` / ``processing_time`` fails when its commit id is
  not the run the manifest names (``kart_core.log_binding``); a side file (dumped by a run, not an output) is
  sealed with its run's commit, and an older version fails when that is not the run the path's signed side record
  names as its last writer (``kart_core.side_record``), or is sealed without a commit while such a record exists;
- not detected: an older version of a file no manifest vouches for (outputs of a task that keeps no
  record, run logs written before ``run()``; sealed without a commit): only name and content are bound,
  so any version signed under that name verifies, also one copied from another workspace with the same
  key; nor a task's files restored together with their older manifest;
- the loader reads the file once, verifies those bytes and deserializes the same bytes.

Without a key nothing is added: files stay byte-identical to gokart's. Files signed by kart before
this format (a ``{output}.sig`` file beside the output) are refused; rebuild them.

Run logs (and outputs of tasks that keep no integrity record) signed by an older kart bound their
full path instead. They still verify where they were written (the full path of their current
location is tried when the workspace-relative name fails), never at another location: a moved or
copied workspace refuses them with ``MOVED_ADVICE`` (rebuild the task with ``rerun=True``, or
``kart verify --delete``). The file does not hold the path it was signed under, so a signature made
at another location cannot be checked at all; no guess at it is ever accepted.

Key rotation: the new key signs; old keys listed in ``KART_SIGNING_OLD_KEYS`` (or ``[TaskOnKart]
signing_old_keys``; comma-separated) still verify what they signed, so a workspace stays readable
while its tasks are rebuilt under the new key. Drop an old key once ``kart verify`` run without it
refuses nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
from collections.abc import Sequence

from kart_core.errors import SigningKeyError

__all__ = [
    "ENVIRONMENT_VARIABLE",
    "HEADER_SIZE",
    "OLD_KEYS_VARIABLE",
    "MAGIC",
    "MOVED_ADVICE",
    "SIGNATURE_SUFFIX",
    "Seal",
    "Signer",
    "is_sealed",
    "read_seal",
    "signature_path",
    "signer_from_config",
]

ENVIRONMENT_VARIABLE = "KART_SIGNING_KEY"
OLD_KEYS_VARIABLE = "KART_SIGNING_OLD_KEYS"  # comma-separated keys that still verify (rotation), never sign
MAGIC = b"KARTSIG2"
HEADER_SIZE = 64
_NO_COMMIT = bytes(16)
_DOMAIN = b"kart-output-v2\x00"
# Said when a run log (or a record-less output) does not verify: an older kart signed those with their full path.
MOVED_ADVICE = (
    "If its workspace was moved, copied or mounted at another path since: an older kart signed run logs (and "
    "outputs of tasks that keep no integrity record) with their full path, which holds only where they were "
    "written; build the task again with rerun=True (kart signs them anew with their workspace-relative name), "
    "or `kart verify --delete` removes them."
)
# Sidecar signatures of kart's earlier format; only removed now (never written, never trusted).
SIGNATURE_SUFFIX = ".sig"


def signature_path(path: str) -> str:
    """Where kart's earlier format kept the signature of the output at ``path`` (removed with the output)."""
    return path + SIGNATURE_SUFFIX


@dataclasses.dataclass(frozen=True)
class Seal:
    """A parsed header: the commit id (hex, None outside a task run) and the MAC bytes."""

    commit: str | None
    mac: bytes


def is_sealed(head: bytes | memoryview) -> bool:
    """Whether bytes starting a file (at least 8 of them) are a kart signature header."""
    return bytes(head[: len(MAGIC)]) == MAGIC


def read_seal(data: bytes | memoryview) -> Seal | None:
    """The header at the start of ``data``, or None when ``data`` does not start with one."""
    if len(data) < HEADER_SIZE or not is_sealed(data):
        return None
    commit = bytes(data[8:24])
    return Seal(commit=None if commit == _NO_COMMIT else commit.hex(), mac=bytes(data[24:56]))


class Signer:
    """Seals outputs with HMAC-SHA256 under one secret key; verifies under it or any of ``old_keys``.

    Args:
        key: the key that signs (and verifies).
        old_keys: keys of before a rotation: what they signed still verifies; they never sign.

    Raises:
        SigningKeyError: ``key`` is empty.
    """

    def __init__(self, key: bytes, old_keys: Sequence[bytes] = ()) -> None:
        if not key:
            raise SigningKeyError(
                f"The signing key is empty: set {ENVIRONMENT_VARIABLE} (or [TaskOnKart] signing_key) to a secret, "
                "or unset it to turn signing off."
            )
        self._key = key
        self._old_keys = tuple(dict.fromkeys(old for old in old_keys if old and old != key))

    @property
    def has_old_keys(self) -> bool:
        """Whether old keys (``KART_SIGNING_OLD_KEYS``) are configured."""
        return bool(self._old_keys)

    def begin(self, name: str, commit: str | None) -> hmac.HMAC:
        """A MAC over the domain, ``name`` and ``commit`` under the signing key; feed it the content with ``update``."""
        return _begin(self._key, name, commit)

    def begin_all(self, name: str, commit: str | None) -> list[hmac.HMAC]:
        """``begin`` under the signing key, then under each old key (for one pass over content that may be old)."""
        return [_begin(key, name, commit) for key in (self._key, *self._old_keys)]

    @staticmethod
    def header(commit: str | None, mac: hmac.HMAC) -> bytes:
        """The ``HEADER_SIZE``-byte header for a MAC that has seen the whole content."""
        return MAGIC + _commit_bytes(commit) + mac.digest() + bytes(8)

    def verify(self, data: bytes | memoryview, name: str) -> Seal | None:
        """The seal of ``data`` (header + content) when its MAC is right for ``name`` under any key, else None."""
        seal = read_seal(data)
        if seal is None:
            return None
        content = memoryview(data)[HEADER_SIZE:]
        for key in (self._key, *self._old_keys):
            mac = _begin(key, name, seal.commit)
            mac.update(content)
            if hmac.compare_digest(mac.digest(), seal.mac):
                return seal
        return None

    def __repr__(self) -> str:
        return "Signer(<secret>)"


def _begin(key: bytes, name: str, commit: str | None) -> hmac.HMAC:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    encoded = name.encode("utf-8")
    mac.update(_DOMAIN + len(encoded).to_bytes(4, "big") + encoded + _commit_bytes(commit))
    return mac


def _commit_bytes(commit: str | None) -> bytes:
    return _NO_COMMIT if commit is None else bytes.fromhex(commit)


def _configured_key() -> str | None:
    """``KART_SIGNING_KEY``, else ``[TaskOnKart] signing_key``; None when neither is set.

    Raises:
        SigningKeyError: one is set but empty (or only whitespace). A deployment whose secret did not
            reach it (``KART_SIGNING_KEY=$MISSING``) must not run with signing silently off: it would
            load, and run, whatever pickle an attacker left in the cache.
    """
    key = os.environ.get(ENVIRONMENT_VARIABLE)
    where = f"the environment variable {ENVIRONMENT_VARIABLE}"
    if key is None:
        import luigi.configuration

        config = luigi.configuration.get_config()
        if not config.has_option("TaskOnKart", "signing_key"):
            return None
        key = str(config.get("TaskOnKart", "signing_key", ""))
        where = "[TaskOnKart] signing_key in the luigi configuration"
    if not key.strip():
        raise SigningKeyError(
            f"The signing key is set but empty ({where}): signing would be off and any file in the cache "
            f"loaded unchecked. Set it to the secret, or unset it (`unset {ENVIRONMENT_VARIABLE}`, or remove "
            "the line) to build without signing."
        )
    return key


def _configured_old_keys() -> list[str]:
    """``KART_SIGNING_OLD_KEYS``, else ``[TaskOnKart] signing_old_keys``: comma- (or newline-) separated."""
    raw = os.environ.get(OLD_KEYS_VARIABLE)
    if raw is None:
        import luigi.configuration

        raw = str(luigi.configuration.get_config().get("TaskOnKart", "signing_old_keys", "") or "")
    return [part.strip() for part in raw.replace("\n", ",").split(",") if part.strip()]


def signer_from_config() -> Signer | None:
    """The signer for the configured key (and old keys), or None when signing is off (no key set).

    Raises:
        SigningKeyError: a key is set but empty (``_configured_key``).
    """
    key = _configured_key()
    if key is None:
        return None
    return Signer(key.encode("utf-8"), [old.encode("utf-8") for old in _configured_old_keys()])
