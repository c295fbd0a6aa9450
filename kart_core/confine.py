"""Open a workspace's folders without following another user's symlink, and remove or move files in them.

Who may act: ``complete()`` undoing a killed run's files (``commit_marker``) and ``kart verify --delete``
(``kart_core.inspect``) remove or move files named by workspace metadata (markers, manifests) that anyone who
can write the workspace can plant or reshape: a folder swapped for a symlink to ``/home/me`` turns
``sub/out.pkl`` into a file there (attackers at2 G8, at9 J6/J7). A user may also make a folder of the
workspace a symlink on purpose (``resources/<task>/`` on a bigger disk, as gokart users do).

The rule, one for every caller: each folder is opened from the one before with ``O_NOFOLLOW``; a symlink on
the way is followed only when the link itself and the folder it leads to are owned by this process's user or
by root (the link is opened with ``O_PATH`` and read through that descriptor, so what is checked is what is
followed; a symlink inside its target is judged the same way). Any other link raises ``UnsafeFolderError``,
naming the folder and what to do. Every removal or move is then made relative to the opened descriptor
(``unlinkat``, ``renameat``, ``rmtree(dir_fd=…)``): no path is looked up twice, so a swap after the check
changes nothing. The workspace folder itself is opened as given (the user named it).

A hard link to another user's symlink cannot stand in for one's own: Linux's ``fs.protected_hardlinks``
(the default on the distributions kart supports) forbids hard links to files one does not own.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import stat
from collections.abc import Iterator, Sequence

from kart_core.errors import UnsafeFolderError
from kart_core.storage.base import protocol_of

__all__ = [
    "Refused",
    "check_within",
    "local_path",
    "open_folder",
    "refusal",
    "remove_empty_folder_within",
    "remove_local_files",
    "undo_local",
]

logger = logging.getLogger(__name__)

_FOLDER = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0)
_LINK = getattr(os, "O_PATH", 0) | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_MAX_LINKS = 40  # as the kernel's limit on symlinks followed in one lookup


class Refused(Exception):
    """A key's path leads out of the workspace: through another user's symlink (``unsafe``: the
    ``UnsafeFolderError`` naming it), a file where a folder belongs, or a '..' or empty part."""

    def __init__(self, message: str, unsafe: UnsafeFolderError | None = None) -> None:
        super().__init__(message)
        self.unsafe = unsafe


def local_path(path: str) -> str | None:
    """``path`` on local disk without its ``file://`` (or ``local://``) scheme; None for object storage."""
    if protocol_of(path):
        return None
    _, separator, rest = path.partition("://")
    return rest if separator else path


def _trusted(uid: int) -> bool:
    return uid in (os.geteuid(), 0)


def open_folder(root: str, parts: Sequence[str]) -> int:
    """A descriptor of the folder ``root/parts...``: ``root`` opened as named, each part from the one before
    with ``O_NOFOLLOW``; a part that is a symlink is followed only when it and the folder it leads to are this
    user's or root's (the module docstring). The caller closes it.

    Raises:
        UnsafeFolderError: a part is another user's symlink, or leads to another user's folder.
        OSError: a part is missing (``ENOENT``) or not a folder (``ENOTDIR``); its ``filename`` is the parts
            walked up to and including that one.
        ValueError: a part is ``""``, ``"."`` or ``".."``.
    """
    for part in parts:
        if part in ("", ".", ".."):
            raise ValueError(f"{part!r} in a path to confine")
    return _walk(os.open(root, _FOLDER), parts, "", [0])


def _walk(folder: int, parts: Sequence[str], walked: str, links: list[int]) -> int:
    """Open ``parts`` one by one from ``folder`` (which this takes over: closed on return or error)."""
    try:
        for part in parts:
            walked = f"{walked}/{part}" if walked else part
            try:
                inner = os.open(part, _FOLDER | os.O_NOFOLLOW, dir_fd=folder)
            except OSError as error:
                if error.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise OSError(error.errno, error.strerror, walked) from None
                inner = _follow(folder, part, walked, links, error)
            os.close(folder)
            folder = inner
    except BaseException:
        os.close(folder)
        raise
    return folder


def _follow(folder: int, part: str, walked: str, links: list[int], refused: OSError) -> int:
    """The folder the symlink ``part`` (in ``folder``) leads to, when the link and that folder are trusted."""
    try:
        link = os.open(part, _LINK, dir_fd=folder)
    except OSError:
        raise OSError(refused.errno, refused.strerror, walked) from None
    try:
        status = os.fstat(link)
        if not stat.S_ISLNK(status.st_mode):  # a file where a folder belongs
            raise OSError(refused.errno, refused.strerror, walked)
        if not _trusted(status.st_uid):
            raise UnsafeFolderError(walked, status.st_uid, "link")
        target = os.readlink("", dir_fd=link)  # the very link whose owner was checked
    finally:
        os.close(link)
    links[0] += 1
    if links[0] > _MAX_LINKS:
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), walked)
    start = os.open("/", _FOLDER) if target.startswith("/") else os.dup(folder)
    # The user's own link may climb ('..'): its target is theirs to choose; each symlink in it is judged again.
    inner = _walk(start, [each for each in target.split("/") if each not in ("", ".")], walked, links)
    owner = os.fstat(inner).st_uid
    if not _trusted(owner):
        os.close(inner)
        raise UnsafeFolderError(walked, owner, "target")
    return inner


@contextlib.contextmanager
def _folders(workspace: str, keys: Sequence[str]) -> Iterator[dict[str, int | None]]:
    """Descriptors of the folders of ``keys`` (workspace-relative, normalised) opened by ``open_folder`` from the
    local ``workspace``; None for a folder that does not exist (nothing there to act on). Raises ``Refused``
    naming the first key whose folder may not be entered."""
    opened: dict[str, int | None] = {}
    try:
        for key in keys:
            folder = key.rpartition("/")[0]
            if folder in opened:
                continue
            try:
                opened[folder] = open_folder(workspace, folder.split("/") if folder else ())
            except ValueError:
                raise Refused(
                    f"its path {key!r} has an empty, '.' or '..' part: it may lead out of the workspace"
                ) from None
            except UnsafeFolderError as error:
                raise Refused(f"its path {key!r} goes through {error}", error) from None
            except OSError as error:
                if error.errno == errno.ENOENT:
                    opened[folder] = None
                    continue
                if error.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise Refused(
                        f"its path {key!r} goes through {error.filename!r}, which is not a folder (or symlinks too "
                        "deep): it may lead out of the workspace"
                    ) from None
                raise
        yield opened
    finally:
        for descriptor in opened.values():
            if descriptor is not None:
                os.close(descriptor)


def refusal(workspace: str, keys: Sequence[str]) -> str:
    """Why the workspace-relative ``keys`` may not be acted on ("" when each one's folder may be entered from
    ``workspace``; always "" for object storage, which has no symlinks)."""
    local = local_path(workspace)
    if local is None:
        return ""
    try:
        with _folders(local, keys):
            return ""
    except Refused as refused:
        return str(refused)
    except FileNotFoundError:  # no workspace folder: nothing in it to act on
        return ""


def check_within(workspace: str, keys: Sequence[str]) -> None:
    """Raise ``Refused`` (see ``refusal``) when a folder of ``keys`` may not be entered from ``workspace``: a
    caller removing several files checks all before it removes any."""
    local = local_path(workspace)
    if local is None:
        return
    try:
        with _folders(local, keys):
            pass
    except FileNotFoundError:  # no workspace folder: nothing in it to act on
        pass


def _lexists(name: str, folder: int) -> bool:
    try:
        os.lstat(name, dir_fd=folder)
    except FileNotFoundError:
        return False
    return True


def _remove(name: str, folder: int) -> None:
    """Remove ``name`` in ``folder``: a real folder with its tree (``rmtree`` by descriptors, links inside
    removed, never followed), anything else (a file, a symlink: the link only) unlinked."""
    if stat.S_ISDIR(os.lstat(name, dir_fd=folder).st_mode):
        shutil.rmtree(name, ignore_errors=True, dir_fd=folder)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=folder)


def undo_local(local: str, moves: Sequence[tuple[str, str | None]], who: str, why: str, shown: str = "") -> list[str]:
    """Undo a killed direct writer's ``moves`` (``(output, old output moved aside)`` as workspace-relative
    normalised keys, the aside in its output's folder) in the local workspace folder ``local``: each old output
    moved aside returns to its path, any other file or folder there is removed; each step logged with ``who``
    and ``why`` (paths shown joined to ``shown``, default ``local``).

    Returns the keys removed that no old output replaced. Raises ``Refused`` (before anything is touched) when
    an output's folder may not be entered (``open_folder``; ``Refused.unsafe`` holds the ``UnsafeFolderError``
    when a symlink was the cause).
    """
    base = (shown or local).rstrip("/")
    removed = []
    with _folders(local, [key for key, _ in moves]) as folders:
        for key, aside in moves:
            folder = folders[key.rpartition("/")[0]]
            if folder is None:
                continue
            name = key.rpartition("/")[2]
            path = f"{base}/{key}"
            aside_name = None if aside is None else aside.rpartition("/")[2]
            if aside_name is not None and _lexists(aside_name, folder):
                if _lexists(name, folder):
                    _remove(name, folder)
                os.replace(aside_name, name, src_dir_fd=folder, dst_dir_fd=folder)
                logger.warning("%s: %s; its old output %r is back in place", who, why, path)
            elif _lexists(name, folder):
                _remove(name, folder)
                removed.append(key)
                logger.warning("%s: %s; removed %r, written straight to the output's path", who, why, path)
    return removed


def remove_local_files(local: str, keys: Sequence[str]) -> list[str]:
    """Remove the files at the workspace-relative normalised ``keys`` in the local workspace folder ``local``,
    each through a descriptor of its folder (``unlinkat``); a folder at a key is left alone, a missing key
    skipped. Returns the keys removed. Raises ``Refused`` (before anything is removed) when a key's folder may
    not be entered."""
    removed = []
    with _folders(local, keys) as folders:
        for key in keys:
            folder = folders[key.rpartition("/")[0]]
            name = key.rpartition("/")[2]
            if folder is None or name in ("", ".", ".."):
                continue
            try:
                if stat.S_ISDIR(os.lstat(name, dir_fd=folder).st_mode):
                    continue
                os.unlink(name, dir_fd=folder)  # never follows: a symlink there is removed itself
            except FileNotFoundError:
                continue
            removed.append(key)
    return removed


def remove_empty_folder_within(local: str, key: str) -> bool:
    """Remove the empty folder at the workspace-relative ``key`` in the local workspace folder ``local``
    through a descriptor of its parent; True when one was removed (a folder with something in it, a symlink or
    a file stays). Raises ``Refused`` when the parent may not be entered."""
    with _folders(local, [key]) as folders:
        folder = folders[key.rpartition("/")[0]]
        name = key.rpartition("/")[2]
        if folder is None or not name:
            return False
        try:
            if not stat.S_ISDIR(os.lstat(name, dir_fd=folder).st_mode):
                return False
            os.rmdir(name, dir_fd=folder)
        except OSError:  # not empty, or gone meanwhile
            return False
    return True
