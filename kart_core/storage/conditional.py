"""Replace a small file only while it still holds what was read: a compare-and-swap for heartbeat markers.

A run rewrites its commit marker every third of the lease (``kart_core.commit_marker.refresh``): it reads the
marker, checks it is still its own, and writes it again. A plain write there re-created a marker that another
process removed between the read and the write (or overwrote one it put there): the remover's decision (the
writer is dead, its files are undone) was silently reversed. ``replace_if`` makes the write conditional:

- local disk: the file at the path is read and compared with what the caller read first: a rewrite that would
  fail returns False without touching the path, so readers (the owner checking its own marker) never see the
  caller's bytes there. When it matches, the new content is written to a hidden file beside the path and swapped
  with it in one ``renameat2(RENAME_EXCHANGE)`` (Linux 3.15+; ext4, xfs, btrfs, tmpfs), which fails when the
  path is gone, so a removed marker is never re-created; the file swapped out is compared again and swapped back
  when it differs. The remaining window: another process replacing the file between that compare and the
  exchange (microseconds) has its file displaced by ours until the swap back (about 0.1 ms). A file system
  without the call (NFS, or not Linux) falls back to read-compare-rename, which leaves the window between that
  read and the rename.
- S3 (``s3://``): one ``PutObject`` with ``If-Match`` on the ETag of what was read (its MD5: kart writes markers
  in one part); the server refuses it when the object is gone or changed. Where the ETag is not the MD5 (SSE-KMS)
  the refusal is checked by reading the object again, then the write is made unconditionally (the window of
  the fallback below).
- other object stores: read, compare, write: the window is that read and the write (one request each).
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os

from kart_core.storage.base import Storage, protocol_of

__all__ = ["replace_if"]

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)


def replace_if(storage: Storage, path: str, expected: bytes, data: bytes) -> bool:
    """Write ``data`` at ``path`` only if the file there still holds ``expected`` (see the module docstring).

    Args:
        storage: the storage of ``path`` (``storage_for(path)``).
        path: a local path (or ``file://``) or an object URL.
        expected: the bytes the caller read at ``path``.
        data: the new content (small: written in one piece).

    Returns:
        True when ``data`` replaced ``expected``; False when the file is gone or holds something else (nothing
        is written then, outside the windows the module docstring names).

    Raises:
        OSError: the write failed (a full disk, a read-only folder, an object store that refuses).
    """
    protocol = protocol_of(path)
    if protocol in ("", "file", "local"):
        return _replace_local(storage, path, expected, data)
    if protocol in ("s3", "s3a"):
        return _replace_s3(storage, path, expected, data)
    return _replace_read_compare(storage, path, expected, data)


def _read(storage: Storage, path: str) -> bytes | None:
    try:
        with storage.open_read(path) as file:
            return file.read()
    except FileNotFoundError:
        return None


def _replace_local(storage: Storage, path: str, expected: bytes, data: bytes) -> bool:
    # Compare before exchanging: a failing rewrite never puts its bytes at the path, even for an instant (an
    # owner reading its marker then took its healthy run for lost: attacker at12 A7).
    if _read(storage, path) != expected:
        return False
    spool = storage.spool(path)
    try:
        spool.file.write(data)
        spool.file.flush()
        staged = spool.stage()
    except BaseException:
        spool.discard()
        raise
    final, swapped = path.removeprefix("file://"), staged.removeprefix("file://")
    try:
        exchanged = _exchange(swapped, final)
        if exchanged is None:  # no RENAME_EXCHANGE here: read, compare, rename (a short window)
            if _read(storage, final) != expected:
                return False
            os.replace(swapped, final)
            return True
        if not exchanged:
            return False  # gone: not re-created
        with open(swapped, "rb") as file:
            previous = file.read()
        if previous == expected:
            return True
        _exchange(swapped, final)  # replaced since the read: put the other process's file back
        return False
    finally:
        try:
            os.remove(swapped)
        except FileNotFoundError:
            pass


def exchange(first: str, second: str) -> bool | None:
    """Swap the local paths ``first`` and ``second`` in one step (``renameat2(RENAME_EXCHANGE)``): True; False when
    one is missing; None when the call is not available here (another OS, file system or libc).

    Raises:
        OSError: the swap failed otherwise (permissions, another file system).
    """
    return _exchange(first, second)


def _exchange(first: str, second: str) -> bool | None:
    """Swap two paths atomically: True; False when one is missing; None when the call is not available here."""
    if _renameat2 is None:
        return None
    if _renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code == errno.ENOENT:
        return False
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return None
    raise OSError(code, os.strerror(code), second)


def _replace_s3(storage: Storage, path: str, expected: bytes, data: bytes) -> bool:
    file_system = getattr(storage, "file_system", None)
    if file_system is None:
        return _replace_read_compare(storage, path, expected, data)
    tag = f'"{hashlib.md5(expected, usedforsecurity=False).hexdigest()}"'
    try:
        file_system.pipe_file(path, data, IfMatch=tag)
    except FileNotFoundError:
        return False
    except OSError as exc:
        if not _precondition_failed(exc):
            raise
        # Changed, or an ETag that is not the content's MD5 (SSE-KMS): the content tells.
        return _replace_read_compare(storage, path, expected, data)
    finally:
        file_system.invalidate_cache(path)
    return True


def _precondition_failed(exc: BaseException) -> bool:
    """Whether ``exc`` (s3fs turns a 412 into ``OSError(EINVAL)`` caused by botocore's error) is S3's refusal of
    the condition."""
    cause: BaseException | None = exc
    while cause is not None:
        response = getattr(cause, "response", None)
        if isinstance(response, dict) and response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _replace_read_compare(storage: Storage, path: str, expected: bytes, data: bytes) -> bool:
    if _read(storage, path) != expected:
        return False
    with storage.atomic_write(path) as file:
        file.write(data)
    return True
