"""What kart's S3 storage asks the server, counted on the wire (a botocore hook sees every request sent).

An existence check of a key is one HEAD, a read one GET, a commit one copy and one delete, a put one
PUT: no LIST for a "directory" of the same name, no HEAD of the bucket before a put. A prefix with
objects under it is no file for the storage, and still exists for gokart's ``ObjectStorage.exists``.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

import kart_core
from kart_core.object_storage import ObjectStorage
from kart_core.storage import storage_for
from kart_core.storage.remote import FIRST_READ_BYTES, FsspecStorage


class Requests:
    """The requests the S3 client sent, as ``"METHOD kind"`` strings (kind: object, list, bucket)."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.listed: list[str] = []  # the prefixes listed (URL-decoded, without the trailing "/")
        self.keys: list[str] = []  # the object keys asked about or written

    def record(self, request: Any, **_: Any) -> None:
        parts = urllib.parse.urlsplit(request.url)
        path = urllib.parse.unquote(parts.path).strip("/")
        query = urllib.parse.parse_qs(parts.query)
        if "list-type" in query:
            self.sent.append(f"{request.method} list")
            self.listed.append(query.get("prefix", [""])[0].rstrip("/"))
        elif "/" not in path:
            self.sent.append(f"{request.method} bucket")
        else:
            self.sent.append(f"{request.method} object")
            self.keys.append(path.split("/", 1)[1])

    def take(self) -> list[str]:
        """The requests since the last ``take``, in order."""
        taken, self.sent = self.sent, []
        return taken


@pytest.fixture
def requests(s3_bucket: str) -> Iterator[Requests]:
    """Every request of kart's S3 file system while the test runs (the same cached s3fs instance)."""
    storage = storage_for(f"s3://{s3_bucket}")
    assert isinstance(storage, FsspecStorage)
    client = storage.file_system.s3
    seen = Requests()
    client.meta.events.register("before-send.s3", seen.record)
    try:
        yield seen
    finally:
        client.meta.events.unregister("before-send.s3", seen.record)


def _put(path: str, data: bytes) -> None:
    with storage_for(path).atomic_write(path) as file:
        file.write(data)


def test_an_existence_check_is_one_head(s3_bucket: str, requests: Requests) -> None:
    root = f"s3://{s3_bucket}/checks"
    storage = storage_for(root)
    _put(f"{root}/folder/inside.pkl", b"x")
    requests.take()
    assert not storage.exists(f"{root}/missing.pkl")
    assert requests.take() == ["HEAD object"]
    assert storage.exists(f"{root}/folder/inside.pkl")
    assert requests.take() == ["HEAD object"]
    # A "directory" is no file for kart; gokart's ObjectStorage.exists (luigi's S3 client) counts it.
    assert not storage.exists(f"{root}/folder")
    assert ObjectStorage.exists(f"{root}/folder")


def test_a_put_is_one_request_and_makes_no_missing_bucket(s3_bucket: str, requests: Requests) -> None:
    from kart_core.errors import WorkspaceNotFoundError

    _put(f"s3://{s3_bucket}/puts/a.json", b"{}")
    assert requests.take() == ["PUT object"]
    missing = f"{s3_bucket}-missing"
    with pytest.raises(WorkspaceNotFoundError, match=missing):
        _put(f"s3://{missing}/a.json", b"{}")
    assert requests.take() == ["PUT object"]  # no HEAD of the bucket, no CreateBucket


@pytest.mark.parametrize("size", [0, 5, FIRST_READ_BYTES - 1, FIRST_READ_BYTES, FIRST_READ_BYTES + 7])
def test_a_read_is_one_get_when_the_object_is_small(s3_bucket: str, requests: Requests, size: int) -> None:
    path = f"s3://{s3_bucket}/reads/object-{size}.bin"
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    _put(path, data)
    requests.take()
    with storage_for(path).open_read(path) as file:
        assert file.read() == data
        assert file.size == size  # type: ignore[attr-defined]  # the integrity check compares it
    sent = requests.take()
    if 0 < size < FIRST_READ_BYTES:
        assert sent == ["GET object"]
    else:  # an empty object (S3 refuses a range of it) or a larger one: read on as before
        assert sent[0] == "GET object" and "GET list" not in sent


def test_a_missing_object_is_one_get(s3_bucket: str, requests: Requests) -> None:
    path = f"s3://{s3_bucket}/reads/missing.json"
    with pytest.raises(FileNotFoundError), storage_for(path).open_read(path):
        pass
    assert requests.take() == ["GET object"]


def test_a_commit_is_one_copy_and_one_delete(s3_bucket: str, requests: Requests) -> None:
    path = f"s3://{s3_bucket}/commits/out.pkl"
    storage = storage_for(path)
    _put(path, b"old")
    spool = storage.spool(path)
    spool.file.write(b"new")
    staged = spool.stage()
    requests.take()
    storage.commit(staged, path)
    assert requests.take() == ["PUT object", "DELETE object"]  # CopyObject is a PUT with a source header
    assert not storage.exists(staged)
    with storage.open_read(path) as file:
        assert file.read() == b"new"


class Leaf(kart_core.TaskOnKart[Any]):
    """One output."""

    def run(self) -> None:
        self.dump({"value": 1})


def test_a_first_build_lists_no_file_and_a_cached_one_only_two_folders(s3_bucket: str, requests: Requests) -> None:
    workspace = f"s3://{s3_bucket}/ws"
    requests.take()
    kart_core.build(Leaf(workspace_directory=workspace), reset_register=False, return_value=False)
    first = requests.take()
    # The graph walk lists directories (kart_core.storage.listing); nothing looks for a "directory"
    # named like a file kart reads or writes, and no put checks the bucket first.
    assert not set(requests.listed) & set(requests.keys), (requests.listed, requests.keys)
    assert "HEAD bucket" not in first
    # Output and two run logs staged, then each copied and its staged object deleted.
    assert first.count("DELETE object") == 4  # three staged objects and the commit marker
    requests.listed.clear()
    kart_core.build(Leaf(workspace_directory=workspace), reset_register=False, return_value=False)
    # Cached: the walk's listings of the output's and the manifests' directories answer every existence
    # check (no HEAD); the manifest is read (its record of loaded inputs, kart_core.lineage); nothing written.
    cached = requests.take()
    assert cached.count("GET list") == 2 and "HEAD object" not in cached, cached
    assert set(cached) <= {"GET list", "GET object"}, cached
