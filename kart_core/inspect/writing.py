"""``kart verify`` for by-path writers' ``.kart-writing`` markers (``kart_core.direct_write``).

An output without an integrity record (a bare ``make_target`` outside the workspace, or any output with
``integrity_record`` off) that ``run()`` writes by path gets ``.{name}.kart-writing`` beside it until the run
has committed; a killed writer leaves it (``complete()`` counts the task incomplete while the marker is there).
The run writes a private name (the marker's ``took``) that its commit moves to the output's path, so a killed
run's marker over a file with the stamp it recorded (``found``) leaves that file, an old output, whole: ``undo``
removes the marker, the pointer and the private file only, never that output (gokart's included). A file there
with another stamp (written in place at a path the task computed, or under a marker of an older kart, which wrote
in place) may be partial, and goes with the marker. Inside the workspace the walk finds the marker itself; for an
output outside it, the run put a pointer beside the task's manifest (``commit_marker.writing_pointer``) with the marker's content.

Markers are metadata anyone who can write their folder can plant (findings at1 F1/F2, at2 G8), so
``undo`` removes a file only when all of these hold, checked again at the removal: the marker (and, outside
the workspace, the pointer) is kart's JSON and both say the same; its writer is known dead (this host, its
process gone or another process under its id); the file is the one the marker names (beside it, not a
symlink, a regular file: a folder is left for the user); inside the workspace no folder on the way is a
symlink of another user (or leading to another user's folder: ``kart_core.confine``); outside it, on local disk, the marker and the file have one owner (the writer made both:
a marker planted in a shared folder such as /tmp does not get another user's file deleted), and a pointer names
an absolute path or a URL. A ``file://`` path is local disk and gets every local check. Object storage has no
owners: there a pointer naming an object outside the workspace's bucket and prefix is acted on only when signing
is on and the pointer is signed by the key for its own location (``direct_write`` signs the pointers it writes
under ``commit_marker.pointer_signing_name``, so a copy in another workspace is refused; every pointer is
checked so with signing on), else a planted pointer and marker would get any object the credentials reach
deleted. On local disk ``undo``
makes the checks again through a descriptor of the file's folder (opened from the workspace following only
this user's or root's symlinks) and removes with ``os.unlink(name, dir_fd=...)``: a folder swapped for a symlink after the check
changes nothing (findings at9 J1, J2, J6, J8).
"""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Iterable

from kart_core.commit_marker import WRITING_SUFFIX, Writing, pointer_signing_name, workspace_key, writing_marker
from kart_core.errors import UnsafeFolderError
from kart_core.inspect.confined import local_path, open_folder
from kart_core.signing import HEADER_SIZE, Signer, is_sealed
from kart_core.storage import storage_for
from kart_core.storage.base import PRIVATE_PREFIX
from kart_core.storage.stamp import stamp
from kart_core.workspace import LOG_DIRECTORY, MANIFEST, PROCESSING_TIME, join_url, log_relative_path

__all__ = ["Found", "find", "undo"]

_POINTERS = f"{LOG_DIRECTORY}/{MANIFEST.name}/"
_REFUSED = (
    "a by-path writer's marker that kart does not act on: {}. Nothing is removed (nor by `kart verify --delete`); "
    "remove it by hand once you know what it is"
)
_MAX_BYTES = 65536  # a marker is a few hundred bytes: anything larger is not kart's


@dataclasses.dataclass(frozen=True)
class Found:
    """One killed, running or refused by-path writer's marker.

    Attributes:
        path: where ``kart verify`` found it, in the workspace: the marker, or the pointer to one outside.
        output: the file the marker names (full path or URL).
        marker: the marker's full path (beside ``output``).
        task: the task's label as the marker says (the pointer's or marker's file name when unreadable).
        detail: one line: what happened and what to do.
        removes: what ``kart verify --delete`` removes (a killed writer's file, marker and pointer; a pointer
            whose marker is gone; nothing for a live writer's or a refused marker).
        relative: ``output`` relative to the workspace ("" outside it): not checked against a manifest.
        kept: a killed writer's marker whose run wrote under a private name and left the file at ``output`` as it
            found it (``Writing.kept``): ``undo`` removes the marker and the private file, never ``output``.
    """

    path: str
    output: str
    marker: str
    task: str
    detail: str
    removes: tuple[str, ...]
    relative: str = ""
    kept: bool = False


def find(workspace: str, names: Iterable[str], signer: Signer | None = None) -> list[Found]:
    """The by-path writers' markers in ``workspace`` (``names``: its walk, workspace-relative), and the pointers
    to those outside it. With ``signer`` (signing on) a pointer must be signed by it (``_parse_pointer``)."""
    found: list[Found] = []
    for name in sorted(names):
        if not name.endswith(WRITING_SUFFIX):
            continue
        path = join_url(workspace, name)
        if name.startswith(_POINTERS):
            pointed, fault = _parse_pointer(_read_bytes(path), path, signer)
            output = pointed.path if pointed is not None else ""
            marker = writing_marker(output) if output else ""
            refused = fault or _beyond(workspace, output, signer) or _committed_since(workspace, name, output)
            judged = _judge(workspace, path, output, marker, pointed, refused)
            found.append(Found(path, output, marker, *judged[:3], kept=judged[3]))
            continue
        folder, _, base = name.rpartition("/")
        if not base.startswith("."):
            continue
        relative = f"{folder}/{base[1:].removesuffix(WRITING_SUFFIX)}".lstrip("/")
        output = join_url(workspace, relative)
        label, detail, removes, kept = _judge(workspace, path, output, path, None)
        found.append(Found(path, output, path, label, detail, removes, relative=relative, kept=kept))
    return found


def _judge(
    workspace: str, path: str, output: str, marker: str, pointed: Writing | None, fault: str = ""
) -> tuple[str, str, tuple[str, ...], bool]:
    """(task label, detail, what ``undo`` removes, whether ``output`` is kept: ``Found.kept``) for the marker at
    ``marker`` naming ``output`` (found at ``path``)."""
    read = _read(marker) if marker else None
    label = (read or pointed or Writing(os.path.basename(path), "", 0, 0.0)).task
    relative = local_path(output)
    if pointed is not None and relative is not None and not os.path.isabs(relative):
        # kart writes an absolute path or a URL (``_mark_writing``): a relative one would name files from the
        # working folder of whoever runs ``kart verify --delete`` (at9 J8)
        refused = f"the pointer {path!r} names the relative path {output!r} (kart writes absolute paths or URLs)"
        return label, _REFUSED.format(refused), (), False
    if pointed is not None and read is None and not _exists(marker):
        return (
            label,
            (
                f"a pointer to the marker of {output!r}, which is gone: left by a run killed after it removed the "
                "marker. `kart verify --delete` removes the pointer (nothing else)"
            ),
            (path,),
            False,
        )
    refused = fault or _refusal(workspace, path, output, marker, pointed, read)
    if refused:
        return label, _REFUSED.format(refused), (), False
    assert read is not None  # no refusal: the marker was read
    who = f"process {read.pid} on {read.host}"
    if read.alive():
        return (
            label,
            (
                f"a run writing {output!r} by path ({who}) is still running, or was killed on another host: the file may "
                "be partial, and the task counts as incomplete until a run of it commits; if that process is gone, build "
                "the task again"
            ),
            (),
            False,
        )
    if read.took:
        try:
            now = stamp(output)
        except OSError as error:
            return label, _REFUSED.format(f"{output!r} could not be looked at ({error})"), (), False
        if read.kept(now):
            private = read.took if _exists(read.took) else ""
            what = f"{output!r} is kept (the run never wrote it)" if now is not None else f"{output!r} was not written"
            return (
                label,
                (
                    f"a run that wrote {output!r} by path ({who}) was killed before its commit: it wrote a private file "
                    f"beside it, and {what}. The task counts as incomplete until the marker goes: its next build "
                    "writes the output again, or `kart verify --delete` removes the marker and the private file now"
                ),
                tuple(each for each in dict.fromkeys((private, marker, path)) if each),
                True,
            )
    return (
        label,
        (
            f"a run that wrote {output!r} by path ({who}) was killed: the file may be partial. The task counts as "
            "incomplete; its next build writes the file again and removes the marker, or `kart verify --delete` "
            "removes the file and the marker now"
        ),
        tuple(dict.fromkeys((output, marker, path))),
        False,
    )


def _refusal(workspace: str, path: str, output: str, marker: str, pointed: Writing | None, read: Writing | None) -> str:
    """Why kart must not act on this marker ("" when it may)."""
    if pointed is None and path != marker:
        return f"the pointer {path!r} is not kart's"
    if read is None:
        return f"{marker!r} is not a marker of kart's"
    if pointed is not None and pointed != read:
        return f"the marker {marker!r} does not say what the pointer {path!r} says"
    if read.took and not _beside(output, read.took):
        return f"the marker {marker!r} names {read.took!r}, which is not a private name kart gives beside {output!r}"
    local, local_marker = local_path(output), local_path(marker)
    if local is None or local_marker is None:
        return ""  # object storage: no symlinks, owners or folders to check
    # ``file://`` is local disk (``protocol_of``; kart's own form for ``make_target("file:///...")``): it gets every
    # check below (at9 J1: skipping them on any "://" let a planted ``file://`` pointer delete another user's file).
    if os.path.islink(local_marker) or os.path.islink(local):
        return f"{output!r} or its marker is a symbolic link"
    outside = "" if pointed is not None else _outside(local_path(workspace) or workspace, os.path.dirname(local))
    if outside:
        return f"the folder of {output!r} {outside}"
    try:
        marker_owner, file = os.lstat(local_marker).st_uid, os.lstat(local)
    except FileNotFoundError:
        return ""  # no file: only the marker goes (undo reads the marker again)
    except OSError:  # a folder on the way became a file, or cannot be searched: report, don't crash
        return f"the folder of {output!r} changed while kart checked it, or cannot be read"
    if not stat.S_ISREG(file.st_mode):
        return f"{output!r} is not a regular file (a folder is left to you)"
    if pointed is not None and file.st_uid != marker_owner:
        return f"{output!r} and its marker have different owners (the marker was not written by the file's writer)"
    return ""


def _beside(output: str, took: str) -> bool:
    """Whether ``took`` is a private name ``direct_write.private_name`` gives for ``output``: in its folder, the
    prefix, 12 hex digits, a dot and the output's own name."""
    folder, _, name = output.rpartition("/")
    took_folder, _, took_name = took.rpartition("/")
    tag = took_name.removeprefix(PRIVATE_PREFIX).partition(".")[0]
    return (
        took_folder == folder
        and took_name == f"{PRIVATE_PREFIX}{tag}.{name}"
        and len(tag) == 12
        and all(each in "0123456789abcdef" for each in tag)
    )


def _exists(path: str) -> bool:
    local = local_path(path)
    return os.path.lexists(local) if local is not None else storage_for(path).exists(path)


def _outside(workspace: str, folder: str) -> str:
    """Why ``folder`` (in ``workspace``) may not be entered from it ("" when it may, or is not there): a symlink on
    the way is followed only when it and the folder it leads to are this user's or root's (``kart_core.confine``)."""
    relative = os.path.relpath(folder, workspace)
    parts = [] if relative == "." else relative.split(os.sep)
    try:
        os.close(open_folder(workspace, parts))
    except UnsafeFolderError as error:
        return f"leads out of the workspace through {error}"
    except FileNotFoundError:
        return ""  # no folder: nothing in it to remove (undo looks again)
    except (OSError, ValueError):  # '..', a file on the way, or changed meanwhile (at9 J6): report, don't crash
        return "leads out of the workspace, is not a folder, or changed while kart checked it"
    return ""


def _read(path: str) -> Writing | None:
    """The marker or pointer at ``path``; None when it is missing, too large or not kart's JSON."""
    return _parse(_read_bytes(path))


def _read_bytes(path: str) -> bytes | None:
    """The bytes of the marker or pointer at ``path``; None when it is missing, not a regular file or too large."""
    local = local_path(path)
    if local is not None and (os.path.islink(local) or not os.path.isfile(local)):
        return None
    try:
        with storage_for(path).open_read(path) as file:
            data = file.read(_MAX_BYTES + 1)
    except OSError:  # gone, a folder, a folder on the way replaced, no permission: not a marker kart acts on
        return None
    return bytes(data) if len(data) <= _MAX_BYTES else None


def _parse(data: bytes | None) -> Writing | None:
    """A marker's or pointer's content (after a signature header, which a signed pointer has)."""
    if data is None:
        return None
    return Writing.from_bytes(data[HEADER_SIZE:] if is_sealed(data) else data)


def _parse_pointer(data: bytes | None, path: str, signer: Signer | None) -> tuple[Writing | None, str]:
    """The pointer's content, and why it is refused ("" when it is not): with signing on it must be signed by
    ``signer`` for its full location ``path`` (``commit_marker.pointer_signing_name``; a run signs the pointers
    it writes, ``direct_write``), so one copied from another workspace is refused."""
    pointed = _parse(data)
    if pointed is None or signer is None:
        return pointed, ""
    if data is not None and signer.verify(data, pointer_signing_name(path)) is not None:
        return pointed, ""
    return pointed, (
        f"signing is on and the pointer {path!r} is unsigned or its signature is wrong for this place (not "
        "written here by a kart holding the key: planted, copied from another workspace, or written by a kart "
        "from before 2026-12-02 01:20)"
    )


def _committed_since(workspace: str, name: str, output: str) -> str:
    """Why the pointer ``name`` (workspace-relative) may not get ``output`` removed: a commit of its task wrote
    the task's ``processing_time`` log (each commit writes it after its outputs are in place) no earlier than
    the output was last written, so the output is that commit's, not a killed run's partial file ("" when the
    log is missing or older, or a time cannot be read).

    A pointer copied while its run was live and put back after the run committed (attacker at12 A1) names a
    committed output. The task of an output outside the workspace has no manifest to name the run (its output
    has no record), so the two modification times stand in: each is read from the store that holds the file
    (the same server's clock when the workspace and the output share a bucket). A clock of another store
    running behind can make a genuine partial file look committed: it is then reported, not removed.
    """
    base = name.rpartition("/")[2].removesuffix(WRITING_SUFFIX).rpartition(".")[0]  # {Class}_{id}
    if not name.startswith(_POINTERS) or not output or "_" not in base:
        return ""
    class_name, _, unique_id = base.rpartition("_")
    log = join_url(workspace, log_relative_path(PROCESSING_TIME, class_name, unique_id))
    try:
        logged = storage_for(log).modification_time(log)
        written = storage_for(output).modification_time(output)
    except (OSError, ValueError):
        return ""
    if logged < written:
        return ""
    return (
        f"its task committed after {output!r} was last written (the task's run log {log!r} is newer): the "
        "output is that commit's, not a killed run's partial file, and the pointer is stale (left or copied "
        "back): remove the pointer and the marker by hand if the output is right"
    )


def _beyond(workspace: str, output: str, signer: Signer | None) -> str:
    """Why a pointer naming the object ``output`` may not be acted on: with signing off, an object outside the
    workspace's bucket and prefix ("" for one inside, a local path, or with signing on, where the pointer's
    signature vouches for it). Object storage has no owners to compare: a planted pointer and marker would get
    any object the credentials reach deleted."""
    if signer is not None or not output or local_path(output) is not None:
        return ""
    if workspace_key(workspace, output) is not None:
        return ""
    return (
        f"it names the object {output!r}, outside the workspace {workspace!r}: with signing off kart acts on a "
        "pointer only inside the workspace (a pointer is workspace metadata anyone who can write there can plant). "
        "Turn signing on (kart then signs and checks its pointers), or remove that object and the pointer by hand"
    )


def undo(workspace: str, path: str, signer: Signer | None = None) -> list[str]:
    """Remove a killed writer's file and marker (and the pointer) found at ``path``, judging them again first.

    Returns the removed paths; [] when the marker is refused or its writer may still run (nothing removed).
    On local disk the judgement is made again at the removal, through a descriptor of the file's folder
    (``_remove``): a folder swapped for a symlink between the check and the removal (at9 J6) changes
    nothing. A folder that changes or vanishes meanwhile stops the removal (what was removed is returned).
    """
    relative = path[len(workspace.rstrip("/")) :].lstrip("/").replace(os.sep, "/")
    found = next(iter(find(workspace, [relative], signer)), None)
    removed: list[str] = []
    if found is None or not found.removes:
        return removed
    pointer = found.path if found.path != found.marker else ""
    try:
        _remove(workspace, relative, found, pointer, removed, signer)
    except (OSError, ValueError, _Refused):
        pass  # changed while kart removed it: the rest is left (`kart verify` reports what remains)
    return list(dict.fromkeys(removed))


class _Refused(Exception):
    """What ``undo`` is about to remove is no longer what ``find`` judged."""


_FOLDER = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0)
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)  # NONBLOCK: a FIFO never blocks


def _remove(
    workspace: str, relative: str, found: Found, pointer: str, removed: list[str], signer: Signer | None = None
) -> None:
    """``undo``'s removals; on local disk every check made again, and every removal done, through a folder
    descriptor.

    Inside the workspace the file's folder (and the pointer's) is opened from the workspace one part at a time
    with ``O_NOFOLLOW`` (a symlink on the way is refused, whenever it appears, unless it and its target are this user's or root's: ``kart_core.confine``); outside it, the output's folder
    is opened as the writer named it (a symlink there is the user's). Either way the marker read through that
    descriptor must be kart's, of a dead writer, and (outside) say what the pointer says; the file must be a
    regular file (and outside, of the marker's owner); ``os.unlink(name, dir_fd=...)`` then removes exactly
    what was checked. On object storage (no symlinks, no owners) ``find``'s judgement stands.
    """
    root, name = local_path(workspace), relative.rpartition("/")[2]
    pointed, fault = None, ""
    pointer_folder = -1
    try:
        if pointer and root is not None:
            pointer_folder = open_folder(root, relative.split("/")[:-1])
            pointed, fault = _parse_pointer(_read_at(pointer_folder, name)[0], pointer, signer)
        elif pointer:
            pointed, fault = _parse_pointer(_read_bytes(pointer), pointer, signer)
        if pointer and (
            pointed is None
            or fault
            or _beyond(workspace, pointed.path, signer)
            or _committed_since(workspace, relative, pointed.path)
        ):
            raise _Refused(pointer)
        if found.output in found.removes or found.kept:
            local = local_path(found.output)
            if local is None and found.kept:
                _remove_kept(found, pointed, removed)
            elif local is None:
                for each in (found.output, found.marker):
                    storage = storage_for(each)
                    if storage.exists(each):
                        storage.remove(each)
                        removed.append(each)
            else:
                if pointer and not os.path.isabs(local):
                    raise _Refused(local)
                folder = (
                    os.open(os.path.dirname(local), _FOLDER)
                    if pointer
                    else open_folder(root or workspace, found.relative.split("/")[:-1])
                )
                try:
                    _remove_at(folder, os.path.basename(local), found, pointed, removed)
                finally:
                    os.close(folder)
        if pointer and root is not None:
            if not stat.S_ISREG(os.stat(name, dir_fd=pointer_folder, follow_symlinks=False).st_mode):
                raise _Refused(pointer)
            os.unlink(name, dir_fd=pointer_folder)
            removed.append(pointer)
        elif pointer:
            storage_for(pointer).remove(pointer)
            removed.append(pointer)
    finally:
        if pointer_folder >= 0:
            os.close(pointer_folder)


def _remove_at(folder: int, name: str, found: Found, pointed: Writing | None, removed: list[str]) -> None:
    """Remove the file ``name`` and its marker in the open ``folder`` once judged again through it."""
    marker = f".{name}{WRITING_SUFFIX}"
    data, marker_owner = _read_at(folder, marker)
    read = _parse(data)
    if read is None or read.alive() or (pointed is not None and read != pointed):
        raise _Refused(found.marker)
    try:
        file = os.stat(name, dir_fd=folder, follow_symlinks=False)
    except FileNotFoundError:
        file = None
    if read.kept(None if file is None else [file.st_mtime_ns, file.st_size, file.st_ino]):
        # The run wrote a private file only: the file at the output's path is as the marker found it (kept).
        took = read.took.rpartition("/")[2]
        try:
            private = os.stat(took, dir_fd=folder, follow_symlinks=False)
        except FileNotFoundError:
            private = None
        if private is not None and stat.S_ISREG(private.st_mode):
            os.unlink(took, dir_fd=folder)
            removed.append(read.took)
        os.unlink(marker, dir_fd=folder)
        removed.append(found.marker)
        return
    if found.kept:
        raise _Refused(found.output)  # changed since ``find`` judged it kept: not what the report said
    if file is not None:
        if not stat.S_ISREG(file.st_mode) or (pointed is not None and file.st_uid != marker_owner):
            raise _Refused(found.output)
        os.unlink(name, dir_fd=folder)  # never follows: a symlink put there since is removed itself, a folder fails
        removed.append(found.output)
    os.unlink(marker, dir_fd=folder)
    removed.append(found.marker)


def _remove_kept(found: Found, pointed: Writing | None, removed: list[str]) -> None:
    """``undo`` on object storage for a marker whose output is kept (``Found.kept``): judged again (the marker
    still a dead writer's, the object at the output's path still the one it found), then the private object and
    the marker go; never the output."""
    read = _read(found.marker)
    if (
        read is None
        or read.alive()
        or (pointed is not None and read != pointed)
        or not _beside(found.output, read.took)
    ):
        raise _Refused(found.marker)
    if not read.kept(stamp(found.output)):
        raise _Refused(found.output)
    for each in (read.took, found.marker):
        storage = storage_for(each)
        if storage.exists(each):
            storage.remove(each)
            removed.append(each)


def _read_at(folder: int, name: str) -> tuple[bytes | None, int]:
    """The bytes of the marker or pointer ``name`` in the open ``folder`` (not followed if a symlink; None when
    not a regular file or too large) and its owner."""
    descriptor = os.open(name, _FILE, dir_fd=folder)
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            return None, status.st_uid
        data = b""
        while len(data) <= _MAX_BYTES:
            chunk = os.read(descriptor, _MAX_BYTES + 1 - len(data))
            if not chunk:
                break
            data += chunk
    finally:
        os.close(descriptor)
    return (data if len(data) <= _MAX_BYTES else None), status.st_uid
