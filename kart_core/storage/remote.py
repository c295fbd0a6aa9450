"""Object storage and other fsspec file systems (``s3://``, ``gs://``, ``memory://``, ...).

S3 settings keep gokart's ``[S3Config]`` section (``kart_core.s3_config``): ``aws_access_key_id_name``
and ``aws_secret_access_key_name`` name the environment variables that hold the keys. The endpoint
(for MinIO, moto or any S3-compatible server) comes from ``[S3Config] endpoint_url`` or the
environment variable ``KART_S3_ENDPOINT_URL`` (or boto's own ``AWS_ENDPOINT_URL``). GCS settings
keep gokart's ``[GCSConfig]`` section (``kart_core.gcs_config``): ``gcs_credential_name`` names the
variable holding the service-account credential (a file path or the JSON).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import IO, Any, NamedTuple

from kart_core.errors import MissingExtraError, UnknownSchemeError, WorkspaceNotFoundError
from kart_core.gcs_config import gcsfs_options, missing_gcs_support
from kart_core.s3_config import missing_s3_support, s3fs_options
from kart_core.storage.base import FileEntry, is_temporary, spooled_write, temporary_name
from kart_core.storage.listing import exists_in_listing, tag_in_listing
from kart_core.storage.pinned import PinnedGenerationFile
from kart_core.storage.stamp import object_tag

__all__ = [
    "FIRST_READ_BYTES",
    "UPLOAD_PREFIX",
    "FsspecStorage",
    "WholeObject",
    "storage_options",
    "s3_options",
    "upload_spools",
]

logger = logging.getLogger(__name__)

# Local spool files of uploads in progress live in the system temporary directory under this prefix.
UPLOAD_PREFIX = "kart-upload-"

# S3 reads start with one GET of this many bytes: a smaller object (a manifest, a marker, most outputs) is
# then read whole in that one request, with no HEAD first; a larger one is read on in ranges.
FIRST_READ_BYTES = 4 * 2**20
# Protocols served by s3fs, whose single-object requests kart makes itself (see FsspecStorage).
_S3_PROTOCOLS = ("s3", "s3a")
# Protocols served by gcsfs, whose existence checks and commits kart makes as single-object requests too.
_GCS_PROTOCOLS = ("gs", "gcs")
_BUCKET_PROTOCOLS = (*_S3_PROTOCOLS, *_GCS_PROTOCOLS)

_MISSING_SUPPORT = {
    "s3": missing_s3_support,
    "s3a": missing_s3_support,
    "gs": missing_gcs_support,
    "gcs": missing_gcs_support,
}


def upload_spools(directory: str | None = None) -> list[FileEntry]:
    """The local spool files of uploads (``kart-upload-*``) in ``directory`` (default: the system temp folder)
    whose writer is gone: this user's, and not named after a process of this machine that still runs.

    Each upload spools to such a file (``kart-upload-<pid>-<random>``) and removes it after the put; a killed
    writer leaves it behind. The temp folder is the machine's, shared by every job and user: a spool of a
    running process (a slow upload of another workspace's job) or of another user is never listed, whatever
    its age. A spool named before the pid was part of the name is listed, its age decides (``kart gc``).
    """
    folder = directory or tempfile.gettempdir()
    try:
        candidates = [entry for entry in os.scandir(folder) if entry.name.startswith(UPLOAD_PREFIX)]
    except OSError:
        return []
    spools = []
    uid = os.getuid() if hasattr(os, "getuid") else None
    for entry in candidates:
        if _writer_alive(entry.name):
            continue
        with contextlib.suppress(OSError):  # removed meanwhile by its writer
            if entry.is_file(follow_symlinks=False):
                status = entry.stat(follow_symlinks=False)
                if uid is not None and status.st_uid != uid:
                    continue
                spools.append(
                    FileEntry(entry.path, entry.name, status.st_size, datetime.fromtimestamp(status.st_mtime))
                )
    return sorted(spools, key=lambda spool: spool.relative)


def _writer_alive(name: str) -> bool:
    """Whether the spool ``name`` (``kart-upload-<pid>-...``) names a process of this machine that runs.

    A process of another user counts as running (``PermissionError``); a reused pid keeps a dead writer's spool
    until that process ends, which errs on the side of an upload in progress.
    """
    pid_text, dash, _ = name[len(UPLOAD_PREFIX) :].partition("-")
    if not dash or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except (OverflowError, OSError):  # PermissionError: another user's process
        return True
    return True


def s3_options() -> dict[str, Any]:
    """s3fs options from ``[S3Config]`` and the environment (``kart_core.s3_config.s3fs_options``)."""
    return s3fs_options()


def storage_options(protocol: str) -> dict[str, Any]:
    """The fsspec options kart passes for ``protocol``: ``[S3Config]`` for S3, ``[GCSConfig]`` for GCS."""
    if protocol in ("s3", "s3a"):
        return s3fs_options()
    if protocol in ("gs", "gcs"):
        return gcsfs_options()
    return {}


class _FirstRead(NamedTuple):
    """``FsspecStorage._first_read``'s answer: ``data``, the object's first bytes (all of a small one); ``tag``, its
    version's tag (``object_tag``; None: none sent); on GCS ``size`` (the whole object's, in bytes) and
    ``generation`` (None: not told)."""

    data: bytes
    tag: str | None
    size: int | None = None
    generation: str | None = None


def _full_size(headers: Mapping[str, str], received: int) -> int | None:
    """The whole object's size from a ranged GET's answer (lowercase header names): ``Content-Range``'s total
    (``bytes 0-4194303/16000000``); ``received`` when the store answered without one (the whole object: a 200); None
    when the total is unknown (``*``) or the header is not understood."""
    content_range = headers.get("content-range")
    if content_range is None:
        return received
    total = content_range.rpartition("/")[2].strip()
    return int(total) if total.isdigit() else None


class WholeObject(io.BytesIO):
    """An object's bytes read whole, as a file; ``size`` as fsspec's files have it (the integrity check reads it), and
    ``tag``: the version tag the store sent with them (``kart_core.storage.stamp.object_tag``; None: none sent)."""

    def __init__(self, data: bytes, tag: str | None = None) -> None:
        super().__init__(data)
        self.size = len(data)
        self.tag = tag


class RemoteSpool:
    """A local "w+b" temporary file (prefix ``UPLOAD_PREFIX``) for one object."""

    def __init__(self, storage: FsspecStorage, path: str) -> None:
        # The pid in the name lets `kart gc` leave a running process's spool alone (``upload_spools``).
        with tempfile.NamedTemporaryFile(prefix=f"{UPLOAD_PREFIX}{os.getpid()}-", delete=False) as named:
            self.location = named.name
        self.file: IO[bytes] = open(self.location, "w+b")  # noqa: SIM115 - closed by publish/stage/discard
        self._storage = storage
        self._path = path
        self._done = False

    def publish(self) -> None:
        """Upload to the path (one put: readers see the old object or the new one)."""
        self.file.close()
        try:
            self._storage.upload(self.location, self._path)
        finally:
            self._finish()

    def stage(self) -> str:
        """Upload under a temporary name in the path's prefix; return that URL."""
        self.file.close()
        staged = temporary_name(self._path)
        try:
            self._storage.upload(self.location, staged)
        finally:
            self._finish()
        return staged

    def discard(self) -> None:
        """Delete the local file (nothing after publish or stage)."""
        if not self._done:
            try:
                with contextlib.suppress(OSError):  # a failed write's buffer fails again on close (full disk)
                    self.file.close()
            finally:
                self._finish()

    def written(self) -> None:
        """None: the caller reads the file back to hash it (see ``Spool.written``)."""
        return None

    @property
    def stamp(self) -> None:
        """None: an object has no local stamp (see ``Spool.stamp``)."""
        return None

    def _finish(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.location)
        self._done = True


class FsspecStorage:
    """Files on an fsspec file system; a write is uploaded in one put, so readers never see half.

    On S3 the paths kart asks about are single objects (outputs, manifests, markers, run logs), so
    existence checks, reads and commits make the object requests themselves: s3fs's ``exists``,
    ``open`` and ``mv`` also look for a "directory" of the same name (a LIST after each HEAD that
    finds nothing, LIST + LIST + HEAD before a copy), and a put first checks that the bucket exists.
    Those answers are also read from no listing cache, so they are as fresh as the object store's.
    """

    def __init__(self, fs: Any, protocol: str) -> None:
        self._file_system = fs
        self._protocol = protocol
        self._pid = os.getpid()
        self._s3 = protocol in _S3_PROTOCOLS and hasattr(fs, "call_s3")
        self._gcs = protocol in _GCS_PROTOCOLS and hasattr(fs, "mv_file") and hasattr(fs, "call")

    @property
    def _fs(self) -> Any:
        """The file system, made again in a forked process (a worker of ``build(executor="process")``
        or of luigi): s3fs and gcsfs refuse to use their parent's event loop ("This class is not
        fork-safe"), and targets, tasks and the backend cache all keep this object across the fork."""
        if self._pid != os.getpid():
            fs = self._file_system
            self._file_system = type(fs)(*fs.storage_args, **fs.storage_options)
            self._pid = os.getpid()
        return self._file_system

    @property
    def file_system(self) -> Any:
        """The fsspec file system this storage uses (in this process), e.g. to hook its client's requests."""
        return self._fs

    @classmethod
    def for_protocol(cls, protocol: str, **options: Any) -> FsspecStorage:
        """Create the file system for ``protocol``, saying which extra to install when it is missing."""
        try:
            import fsspec

            fs = _gcs_emulator_file_system(options) if protocol in _GCS_PROTOCOLS else None
            if fs is None:
                fs = fsspec.filesystem(protocol, **options)
        except ImportError as exc:
            missing = _MISSING_SUPPORT.get(protocol)
            if missing is not None:
                raise missing(exc) from exc
            raise MissingExtraError(
                f"Storage for '{protocol}://' paths needs an extra package: pip install 'kart-suite[all]'. ({exc})"
            ) from exc
        except ValueError as exc:  # fsspec: "Protocol not known"
            raise UnknownSchemeError(f"{protocol}://", protocol) from exc
        return cls(fs, protocol)

    def exists(self, path: str) -> bool:
        """Whether an object is at ``path`` (from a directory listing inside ``listing_scope()``).

        On S3 one HEAD of the key, on GCS one GET of the object's metadata: a "directory" (a prefix
        with objects under it) is no file (``exists_or_prefix`` counts those too), and the answer is
        the store's, never gcsfs's listing cache (which another process's writes do not update).
        """
        listed = exists_in_listing(path, self._listed)
        if listed is not None:
            return listed
        if self._s3:
            bucket, key = self._bucket_key(path)
            try:
                self._fs.call_s3("head_object", Bucket=bucket, Key=key)
            except FileNotFoundError:
                return False
            return True
        if self._gcs:
            bucket, key = self._bucket_key(path)
            if key:
                try:
                    self._fs.call("GET", "b/{}/o/{}", bucket, key, json_out=True)
                except FileNotFoundError:
                    return False
                except OSError as exc:
                    # Forbidden: a credential with storage.objects.list but not .get; gcsfs's own
                    # check falls back to a listing.
                    if not str(exc).startswith("Forbidden"):
                        raise
                else:
                    return True
        return bool(self._fs.exists(path))

    def object_tag(self, path: str, listed: bool = True) -> str | None:
        """The version tag (``kart_core.storage.stamp.object_tag``) of the object at ``path`` now; None when nothing is
        there or the store gives none. Inside ``listing_scope()`` from the listing of its directory (one listing per
        directory per scope) unless ``listed`` is False; else one request: a HEAD on S3, a metadata GET on GCS,
        fsspec's ``info`` elsewhere.

        Raises:
            OSError: the store could not be asked.
        """
        found = tag_in_listing(path, self._listed) if listed else None
        if found is not None:
            return found[1]
        return self._asked_tag(path)

    def _asked_tag(self, path: str) -> str | None:
        """``object_tag`` asked of the store in one request, never from a listing.

        Raises:
            OSError: the store could not be asked.
        """
        try:
            if self._s3:
                bucket, key = self._bucket_key(path)
                return object_tag(self._fs.call_s3("head_object", Bucket=bucket, Key=key))
            if self._gcs:
                bucket, key = self._bucket_key(path)
                return object_tag(self._fs.call("GET", "b/{}/o/{}", bucket, key, json_out=True))
            self._fs.invalidate_cache(path)
            return object_tag(self._fs.info(path))
        except FileNotFoundError:
            return None

    def _listed(self, directory: str) -> Mapping[str, str | None]:
        """Each name directly under ``directory`` (objects and "directory" prefixes) with its object's tag (None for a
        prefix, or none given): one fresh listing (never fsspec's listing cache, which another process's writes do not
        update); nothing when the directory is missing."""
        try:
            entries = self._fs.ls(directory, detail=True, refresh=True)
        except FileNotFoundError:
            return {}
        found: dict[str, str | None] = {}
        for entry in entries:
            name = str(entry.get("name", "")).rstrip("/").rsplit("/", 1)[-1]
            found[name] = object_tag(entry) if entry.get("type") != "directory" else None
        return found

    def exists_or_prefix(self, path: str) -> bool:
        """Whether an object, or a "directory" (objects under ``path/``), is at ``path``: fsspec's ``exists``."""
        return bool(self._fs.exists(path))

    def read_bytes(self, path: str) -> bytes:
        """The whole object at ``path`` (``open_read``'s requests: on S3 one GET when it is small).

        Raises:
            FileNotFoundError: no object is at ``path``.
        """
        with self.open_read(path) as file:
            return bytes(file.read())

    @contextlib.contextmanager
    def open_read(self, path: str) -> Iterator[IO[bytes]]:
        """Open ``path`` for binary reading.

        Raises:
            FileNotFoundError: no object is at ``path`` (on S3 and GCS after one GET: no HEAD, no LIST).

        On S3 and GCS a small object is read in one ranged GET, whose answer also names the version read (S3's
        ETag; GCS's ``x-goog-generation`` header): the file's ``tag`` (``kart_core.storage.stamp.opened_tag``). A
        larger one is read on in ranges, all of the version the first GET read, and a read fails once that version
        is gone (another client put the object again meanwhile), never mixing two versions. On GCS the file is a
        ``PinnedGenerationFile`` (each range names the generation; ``GenerationGoneError``), sized by the first GET's
        answer and tagged with its generation; it serves the first GET's bytes from memory. On S3 it is sized afresh,
        never from fsspec's listing cache (a listing made before another process replaced the object would cut the
        read short), its ``details`` name the version it was opened at, and every later range is read on condition
        that it is still that version (s3fs's ``If-Match``: ``FileExpired``). A GCS zonal bucket, or a store that
        names no generation, is read by gcsfs's own file (its ranges not pinned).
        """
        if self._s3 or self._gcs:
            try:
                first = self._first_read(path)
            except FileNotFoundError:
                raise
            except OSError:  # InvalidRange: the object is empty, and S3 refuses any range of it
                first = None
            if first is not None and len(first.data) < FIRST_READ_BYTES:
                # The whole object, read in one request (a put replaces an object whole, so these
                # bytes are one version of it).
                yield WholeObject(first.data, first.tag)
                return
            if first is not None and first.generation is not None and first.size is not None:
                with PinnedGenerationFile(self._fs, path, first.generation, first.size, first.data) as pinned:
                    yield pinned
                return
            self._fs.invalidate_cache(path)
        with self._fs.open(path, "rb") as file:
            yield file

    def _first_read(self, path: str) -> _FirstRead:
        """The first ``FIRST_READ_BYTES`` of the object at ``path`` (all of a smaller one), with the tag of the version
        they are of (None when the answer named none), in one GET (S3, GCS): what ``cat_file`` asks, keeping the
        answer's headers, which it drops. On GCS also that generation and its size (from the answer's
        ``Content-Range``). A GCS zonal bucket, which gcsfs reads by gRPC, is read by ``cat_file`` (no tag: its loads
        are judged as without one).

        Raises:
            FileNotFoundError: no object is at ``path``.
            OSError: the store refused the range (an empty object on S3) or could not be asked.
        """
        bucket, key = self._bucket_key(path)
        if self._s3:
            from fsspec.asyn import sync

            fs = self._fs

            async def read() -> tuple[bytes, str | None]:
                answer = await fs._call_s3(
                    "get_object", Bucket=bucket, Key=key, Range=f"bytes=0-{FIRST_READ_BYTES - 1}"
                )
                try:
                    body = await answer["Body"].read()
                finally:
                    answer["Body"].close()
                return bytes(body), object_tag(answer)

            retried = _s3_retried()
            if retried is None:
                data, tag = sync(fs.loop, read)
            else:
                data, tag = sync(fs.loop, retried, read, retries=fs.retries)
            return _FirstRead(data, tag)
        zonal = getattr(self._fs, "_is_zonal_bucket", None)  # gcsfs's extended class: such a bucket is read by gRPC
        if zonal is not None:
            from fsspec.asyn import sync

            if sync(self._fs.loop, zonal, bucket):
                return _FirstRead(bytes(self._fs.cat_file(path, start=0, end=FIRST_READ_BYTES)), None)
        headers, data = self._fs.call("GET", self._fs.url(path), headers={"Range": f"bytes=0-{FIRST_READ_BYTES - 1}"})
        found = {name.lower(): value for name, value in headers.items()}
        generation = found.get("x-goog-generation") or None
        return _FirstRead(bytes(data), object_tag({"generation": generation}), _full_size(found, len(data)), generation)

    def atomic_write(self, path: str) -> AbstractContextManager[IO[bytes]]:
        """Spool to a local temporary file, then upload it as one object (a put is all or nothing)."""
        return spooled_write(self.spool(path))

    def spool(self, path: str, hashed: bool = False) -> RemoteSpool:
        """A local temporary file, uploaded by ``publish`` (to ``path``) or ``stage`` (beside it); it does
        not hash while written (``hashed`` is ignored: the upload's cost dwarfs reading it back)."""
        return RemoteSpool(self, path)

    def commit(self, staged: str, path: str) -> str | None:
        """Copy the staged object to ``path`` (a copy is one atomic put on object stores), then delete it; return the
        tag of the version put at ``path`` (``kart_core.storage.stamp.object_tag``) when the store's answer named it.

        On S3: one CopyObject, whose answer holds the new object's ETag, and one DeleteObject (an object over 5
        GB, which CopyObject refuses, goes through s3fs's multipart copy: then one HEAD for the ETag). On GCS: one
        ``objects.move``, whose answer is the moved object with its generation (where the bucket refuses the move,
        gcsfs's ``mv_file`` falls back to a rewrite and a delete, then one metadata GET for the generation); fsspec's
        ``mv`` first asked whether either name is a "directory", six more requests. Elsewhere nothing is returned.
        """
        tag: str | None = None
        if self._gcs:
            tag = self._move_gcs(staged, path)
            self._fs.invalidate_cache(staged)
            self._fs.invalidate_cache(path)
            return tag if tag is not None else self._asked_tag(path)
        if not self._s3:
            self._fs.mv(staged, path)
            return None
        source_bucket, source_key = self._bucket_key(staged)
        bucket, key = self._bucket_key(path)
        try:
            copied = self._fs.call_s3(
                "copy_object", Bucket=bucket, Key=key, CopySource={"Bucket": source_bucket, "Key": source_key}
            )
            tag = object_tag(copied.get("CopyObjectResult") or {})
        except FileNotFoundError:
            raise
        except OSError:
            # Too large for one CopyObject (or refused for another reason s3fs's copy handles or names).
            self._fs.copy(staged, path)
        self._fs.invalidate_cache(path)
        if tag is None:
            tag = self._asked_tag(path)
        self.remove(staged)
        return tag

    def _move_gcs(self, staged: str, path: str) -> str | None:
        """GCS's ``objects.move`` of ``staged`` to ``path`` in one request, as gcsfs's ``mv_file`` asks it, keeping its
        answer's generation (``mv_file`` drops it); where the move is refused (another bucket, a bucket or server
        without it), ``mv_file`` itself (None: the caller asks for the generation).

        Raises:
            FileNotFoundError: nothing is at ``staged``.
        """
        source_bucket, source_key = self._bucket_key(staged)
        bucket, key = self._bucket_key(path)
        if source_bucket == bucket and source_key and key:
            try:
                moved = self._fs.call(
                    "POST",
                    "b/{}/o/{}/moveTo/o/{}",
                    source_bucket,
                    source_key,
                    key,
                    headers={"Content-Type": "application/json", "X-Goog-GCS-Idempotency-Token": str(uuid.uuid4())},
                    json_out=True,
                )
            except FileNotFoundError:
                raise
            except Exception as exc:  # noqa: BLE001 - gcsfs's own fallback catches any error of the move too
                logger.debug("objects.move of %s refused (%s): copying and deleting instead", staged, exc)
            else:
                return object_tag(moved) if isinstance(moved, Mapping) else None
        self._fs.mv_file(staged, path)
        return None

    def _bucket_key(self, path: str) -> tuple[str, str]:
        bucket, key, _ = self._fs.split_path(path)
        return str(bucket), str(key)

    @contextlib.contextmanager
    def claim_new(self, path: str, data: bytes) -> Iterator[None]:
        """Object stores offer no portable create-if-absent: None, nothing written (the caller takes a lock)."""
        yield None

    def wait_claim(self, path: str) -> None:
        """No claims on object storage (first commits take the commit lock): returns at once."""

    def missing_bucket(self, path: str) -> str | None:
        """The bucket of ``path`` when it does not exist (S3, GCS: one request); None when it does, or the
        file system has no buckets (``memory://``). Lets a build find a mistyped bucket before it runs."""
        if self._protocol not in _BUCKET_PROTOCOLS:
            return None
        bucket, _ = self._bucket_key(path)
        return None if self._fs.exists(bucket) else bucket

    def upload(self, local: str, path: str) -> None:
        """Put the local file ``local`` at ``path`` in one request.

        On S3 and GCS kart never makes a bucket (as gokart's S3 and GCS targets don't): a mistyped
        bucket in ``workspace_directory`` would otherwise become a new bucket in the account, holding a
        cache nobody looks for.

        Raises:
            WorkspaceNotFoundError: (a FileNotFoundError) the bucket does not exist; names it.
        """
        if self._protocol in _BUCKET_PROTOCOLS:
            try:
                self._fs.put_file(local, path)
            except FileNotFoundError as exc:  # NoSuchBucket: a put makes no "directory" it could miss
                bucket, _ = self._bucket_key(path)
                raise WorkspaceNotFoundError(
                    f"The bucket {bucket!r} of {self._protocol}://{path.split('://', 1)[-1]} does not exist, and kart "
                    "does not create buckets. Create it, or fix the bucket name in workspace_directory "
                    "(KART_WORKSPACE or [TaskOnKart] in the luigi config)."
                ) from exc
            return
        self._make_parent(path)
        self._fs.put_file(local, path)

    def _make_parent(self, path: str) -> None:
        # Object stores have no directories; file systems such as memory:// need them.
        parent = path.rsplit("/", 1)[0]
        with contextlib.suppress(Exception):
            self._fs.makedirs(parent, exist_ok=True)

    def remove(self, path: str) -> None:
        """Delete ``path`` if it exists."""
        with contextlib.suppress(FileNotFoundError):
            self._fs.rm_file(path)

    def modification_time(self, path: str) -> datetime:
        """When ``path`` was last written, as local naive time (like local files)."""
        modified = self._fs.modified(path)
        if modified.tzinfo is not None:
            modified = modified.astimezone().replace(tzinfo=None)
        return modified

    def list_dir(self, path: str) -> Iterator[str]:
        """Names of the objects directly under ``path``."""
        try:
            entries = self._fs.ls(path, detail=False)
        except FileNotFoundError:
            return
        for entry in entries:
            yield str(entry).rstrip("/").rsplit("/", 1)[-1]

    def walk(self, root: str, include_temporary: bool = False) -> Iterator[FileEntry]:
        """Every object under ``root`` with its size and mtime (one recursive listing; temporaries on request)."""
        stripped = self._fs._strip_protocol(root).rstrip("/")
        try:
            found = self._fs.find(stripped, detail=True)
        except FileNotFoundError:
            return
        base = root.rstrip("/")
        for key, info in found.items():
            relative = str(key)[len(stripped) :].strip("/")
            if info.get("type") == "directory" or not relative:
                continue
            if include_temporary or not is_temporary(relative):
                yield FileEntry(f"{base}/{relative}", relative, int(info.get("size") or 0), _modified(info))


def _s3_retried() -> Any:
    """s3fs's retrying wrapper of a request and the read of its body (what its ``cat_file`` reads through), or None
    where this s3fs has none (then the request alone is retried, by ``_call_s3``)."""
    try:
        from s3fs.core import _error_wrapper
    except ImportError:
        return None
    return _error_wrapper


def _gcs_emulator_file_system(options: dict[str, Any]) -> Any:
    """gcsfs's JSON-API file system for a GCS emulator (``STORAGE_EMULATOR_HOST`` or ``endpoint_url``), else None.

    gcsfs's default class (``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT``, on since gcsfs 2025.x) asks Google's
    Storage Control API (gRPC) for the bucket's layout before object operations. An emulator
    (gcp-storage-emulator, fake-gcs-server) serves no such API, and gcsfs does not remember a failed
    answer: every operation asked again and logged "Could not determine bucket type" (60 warnings and
    ~2.7x the CPU per task of a build, measured against gcp-storage-emulator). Real GCS keeps gcsfs's
    default, whose answer is cached per bucket.
    """
    emulator = options.get("endpoint_url") or os.environ.get("STORAGE_EMULATOR_HOST", "")
    if emulator in ("", "default"):
        return None
    from gcsfs.core import GCSFileSystem

    return GCSFileSystem(**options)


def _modified(info: dict[str, Any]) -> datetime | None:
    """The modification time in an fsspec listing entry, as local naive time (like local files)."""
    value = info.get("LastModified") or info.get("mtime") or info.get("created") or info.get("updated")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value)
    if isinstance(value, datetime):
        return value.astimezone().replace(tzinfo=None) if value.tzinfo is not None else value
    return None
