"""On S3 and GCS a manifest entry records the object's version tag (``Entry.tag``: S3's ETag, GCS's generation), and
a load compares it with the tag the store sends with the bytes, as a local load compares the file's stamp.

Before, a same-size rewrite of a committed object (another tool, gokart rerunning the task, a person, an interrupted
``aws s3 sync`` that copied ``log/`` first) loaded as the committed version and a task built on it recorded the
commit for the other bytes: stale for good (attacker at22 M2, at20 K14 on object storage). Real moto S3 and the GCS
emulator (which answers a download's ``x-goog-generation`` as GCS does: tests/services.py).
"""

from __future__ import annotations

import json
import logging
import pickle
import urllib.parse
from collections.abc import Iterator
from typing import Any

import luigi
import pytest

import kart_core
from kart_core.errors import DamagedOutputError
from kart_core.inspect.why import explain
from kart_core.manifest import Entry, Manifest, read_unverified
from kart_core.storage import listing_scope, storage_for
from kart_core.storage.remote import FIRST_READ_BYTES, FsspecStorage
from kart_core.storage.stamp import current_tag
from kart_core.target import TargetOnKart


class TagUp(kart_core.TaskOnKart[Any]):
    """``size`` bytes of ``fill`` (not part of its identity: the same output path whatever it holds)."""

    fill = luigi.IntParameter(default=1, significant=False)
    size = luigi.IntParameter(default=64)

    def run(self) -> None:
        self.dump(bytes([int(self.fill)]) * int(self.size))


class TagDown(kart_core.TaskOnKart[Any]):
    """The sum of TagUp's bytes."""

    size = luigi.IntParameter(default=64)

    def requires(self) -> TagUp:
        return TagUp(size=self.size, workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(sum(self.load()))


def _workspace(storage: str, request: pytest.FixtureRequest, name: str = "ws") -> str:
    bucket = request.getfixturevalue("s3_bucket" if storage == "s3" else "gcs_bucket")
    return f"{storage}://{bucket}/{name}"


def _output(task: kart_core.TaskOnKart[Any]) -> TargetOnKart:
    target = task.output()
    assert isinstance(target, TargetOnKart) and target.record is not None
    return target


def _entry(task: kart_core.TaskOnKart[Any]) -> Entry:
    record = _output(task).record
    assert record is not None
    manifest = read_unverified(storage_for(record.manifest), record.manifest)
    assert manifest is not None
    return manifest.outputs[record.key]


def _rewrite(path: str, data: bytes) -> None:
    """Put ``data`` at ``path`` as another tool does: one put, past kart."""
    storage = storage_for(path)
    assert isinstance(storage, FsspecStorage)
    storage.file_system.pipe_file(path, data)


def _same_size_other(path: str, fill: int = 1) -> bytes:
    data = storage_for(path).read_bytes(path)
    other = data.replace(bytes([fill]) * 8, bytes([9]) * 8)
    assert other != data and len(other) == len(data)
    return other


def _rewritten_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "rewritten outside kart" in r.getMessage()]


@pytest.mark.parametrize("storage", ["s3", "gs"])
def test_a_commit_records_the_tag_of_the_object_it_put(storage: str, request: pytest.FixtureRequest) -> None:
    workspace = _workspace(storage, request)
    up = TagUp(workspace_directory=workspace)
    kart_core.build(up)
    entry = _entry(up)
    path = _output(up).path()
    assert entry.tag is not None and entry.tag.startswith("etag:" if storage == "s3" else "generation:")
    assert entry.tag == current_tag(path)
    assert entry.stamp is None
    # Rerun: a new object, its own tag recorded (the same bytes keep S3's ETag; GCS gives a new generation).
    kart_core.build(TagUp(fill=2, rerun=True, workspace_directory=workspace))
    assert _entry(up).tag == current_tag(path) != entry.tag


@pytest.mark.parametrize("storage", ["s3", "gs"])
@pytest.mark.parametrize("size", [64, FIRST_READ_BYTES + 64], ids=["small", "over 4 MiB"])
def test_a_same_size_rewrite_is_recorded_as_a_new_version_and_its_readers_rerun(
    storage: str, size: int, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    workspace = _workspace(storage, request)
    down = TagDown(size=size, workspace_directory=workspace)
    assert kart_core.build(down) == size
    up = TagUp(size=size, workspace_directory=workspace)
    path = _output(up).path()
    committed = _entry(up)
    _rewrite(path, _same_size_other(path))
    with caplog.at_level(logging.WARNING, logger="kart_core.target"):
        loaded = up.output().load()
    assert loaded[:8] == bytes([9]) * 8 and len(loaded) == size
    assert len(_rewritten_warnings(caplog)) == 1 and "another version" in _rewritten_warnings(caplog)[0]
    # As on local disk: a new version with its own commit and content hash, and the object's tag now.
    now = _entry(up)
    assert now.commit != committed.commit and now.digest != committed.digest
    assert TagUp(size=size, workspace_directory=workspace).output().load() == loaded
    assert _entry(up).tag == current_tag(path) != committed.tag
    assert _entry(up).commit == now.commit
    assert not down.complete()
    assert kart_core.build(TagDown(size=size, workspace_directory=workspace)) == sum(loaded) != size


@pytest.mark.parametrize("storage", ["s3", "gs"])
def test_a_rewrite_makes_its_readers_stale_before_anyone_loads_it(storage: str, request: pytest.FixtureRequest) -> None:
    workspace = _workspace(storage, request)
    assert kart_core.build(TagDown(workspace_directory=workspace)) == 64
    up = TagUp(workspace_directory=workspace)
    path = _output(up).path()
    _rewrite(path, _same_size_other(path))
    down = TagDown(workspace_directory=workspace)
    assert not down.complete()  # outside any build's listing: one HEAD of the upstream output
    assert any("rewritten outside kart" in line and "another version" in line for line in explain(down))
    with listing_scope():  # as a build's walk asks it: the directory's listing carries the tags
        assert not TagDown(workspace_directory=workspace).complete()
    assert kart_core.build(TagDown(workspace_directory=workspace)) == 64 * 9
    assert TagDown(workspace_directory=workspace).complete()


@pytest.mark.parametrize("storage", ["s3", "gs"])
def test_a_same_size_rewrite_is_damage_with_verify_on(
    storage: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = _workspace(storage, request)
    up = TagUp(workspace_directory=workspace)
    kart_core.build(up)
    path = _output(up).path()
    _rewrite(path, _same_size_other(path))
    monkeypatch.setenv("KART_VERIFY_OUTPUTS", "1")
    with pytest.raises(DamagedOutputError, match="another version") as raised:
        TagUp(workspace_directory=workspace).output().load()
    assert raised.value.kind == "hash"


@pytest.mark.parametrize("storage", ["s3", "gs"])
def test_an_interrupted_sync_leaves_no_task_built_on_the_old_bytes(
    storage: str, request: pytest.FixtureRequest
) -> None:
    """at20 K14 on object storage: ``aws s3 sync src dst`` copies ``log/`` (the manifests) before the outputs; a
    task built in dst meanwhile read dst's old bytes under src's commit. Once the copy completes it is stale."""
    source, target = _workspace(storage, request, "src"), _workspace(storage, request, "dst")
    assert kart_core.build(TagDown(workspace_directory=target)) == 64
    kart_core.build(TagUp(fill=2, workspace_directory=source))  # other bytes of the same size, the same path
    assert kart_core.build(TagDown(workspace_directory=source)) == 128
    file_system = storage_for(source).file_system  # type: ignore[attr-defined]
    relative = {key[len(file_system._strip_protocol(source)) :].lstrip("/") for key in file_system.find(source)}

    def copy(names: set[str]) -> None:
        for name in sorted(names):
            _rewrite(f"{target}/{name}", storage_for(source).read_bytes(f"{source}/{name}"))

    copy({name for name in relative if name.startswith("log/")})
    reader = TagReader(workspace_directory=target)
    first = kart_core.build(reader)
    assert first in (64 * 100, 128 * 100)  # whichever it read, it recorded what it read
    copy({name for name in relative if not name.startswith("log/")})
    assert kart_core.build(TagReader(workspace_directory=target)) == 128 * 100
    assert kart_core.build(TagDown(workspace_directory=target)) == 128


class TagReader(kart_core.TaskOnKart[Any]):
    """Another reader of TagUp, built only in the workspace a sync goes to."""

    def requires(self) -> TagUp:
        return TagUp(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(sum(self.load()) * 100)


class _Requests:
    """The S3 requests kart's client sends, as ``"METHOD key"`` (a botocore hook sees every request)."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def record(self, request: Any, **_: Any) -> None:
        self.sent.append(f"{request.method} {urllib.parse.unquote(urllib.parse.urlsplit(request.url).path)}")


@pytest.fixture
def s3_requests(s3_bucket: str) -> Iterator[_Requests]:
    storage = storage_for(f"s3://{s3_bucket}")
    assert isinstance(storage, FsspecStorage)
    client = storage.file_system.s3
    seen = _Requests()
    client.meta.events.register("before-send.s3", seen.record)
    try:
        yield seen
    finally:
        client.meta.events.unregister("before-send.s3", seen.record)


def test_a_load_of_the_committed_version_is_two_gets_and_no_hash(
    s3_bucket: str, s3_requests: _Requests, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tag comes with the object's GET: no HEAD, and no read of the commit marker (which a load without a tag
    asks for, to tell a rewrite in progress); the bytes are not hashed. Also after a rerun."""
    import kart_core.target

    workspace = f"s3://{s3_bucket}/ws"
    hashed: list[int] = []
    digest = kart_core.target.digest_bytes
    monkeypatch.setattr(kart_core.target, "digest_bytes", lambda data, *a: hashed.append(1) or digest(data, *a))
    for fill in (1, 2):
        kart_core.build(TagUp(fill=fill, rerun=fill > 1, workspace_directory=workspace))
        s3_requests.sent.clear()
        assert TagUp(workspace_directory=workspace).output().load() == bytes([fill]) * 64
        assert [request.split()[0] for request in s3_requests.sent] == ["GET", "GET"]
        assert s3_requests.sent[0].split("/")[-2:-1] == ["manifest"]
        assert not hashed


def _without_tags(task: kart_core.TaskOnKart[Any]) -> None:
    """Write the task's manifest again as kart before 2026-12-03 wrote it: its entries without ``tag``."""
    record = _output(task).record
    assert record is not None
    storage = storage_for(record.manifest)
    document = json.loads(storage.read_bytes(record.manifest))
    for entry in document["outputs"].values():
        entry.pop("tag")
    with storage.atomic_write(record.manifest) as file:
        file.write(json.dumps(document).encode())


@pytest.mark.parametrize("storage", ["s3", "gs"])
def test_a_manifest_without_tags_still_loads_by_its_size(
    storage: str, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    workspace = _workspace(storage, request)
    assert kart_core.build(TagDown(workspace_directory=workspace)) == 64
    up = TagUp(workspace_directory=workspace)
    _without_tags(up)
    assert _entry(up).tag is None
    assert up.output().load() == bytes([1]) * 64
    assert TagDown(workspace_directory=workspace).complete()
    assert kart_core.build(TagDown(workspace_directory=workspace)) == 64
    # What such an entry cannot tell, as before tags: a same-size rewrite loads unnoticed (verify finds it).
    path = _output(up).path()
    _rewrite(path, _same_size_other(path))
    with caplog.at_level(logging.WARNING, logger="kart_core.target"):
        assert up.output().load()[:8] == bytes([9]) * 8
    assert not _rewritten_warnings(caplog)


@pytest.mark.parametrize("storage", ["s3", "gs"])
def test_a_copy_of_the_same_bytes_is_hashed_once_and_its_tag_recorded(
    storage: str, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    """GCS gives an object put again (a copy to another bucket, ``gsutil rsync``) a new generation though its bytes
    are the same: the load hashes it, finds the committed content and records the new tag, as a local load records
    a copied file's stamp."""
    workspace = _workspace(storage, request)
    up = TagUp(workspace_directory=workspace)
    kart_core.build(up)
    path = _output(up).path()
    before = _entry(up)
    _rewrite(path, storage_for(path).read_bytes(path))
    with caplog.at_level(logging.WARNING, logger="kart_core.target"):
        assert up.output().load() == bytes([1]) * 64
    assert not _rewritten_warnings(caplog)
    after = _entry(up)
    assert after.tag == current_tag(path)
    assert (after.commit, after.digest) == (before.commit, before.digest)
    assert (after.tag != before.tag) == (storage == "gs")  # S3's ETag of the same bytes put in one request is theirs


def test_the_tag_round_trips_through_the_manifest_and_is_left_out_when_unknown() -> None:
    entry = Entry(size=3, digest="xxh3_128:00", commit="c" * 32, sealed=False, owner="m.C", tag='etag:"x"')
    manifest = Manifest(task="C[1]", commit="c" * 32, outputs={"a.pkl": entry})
    data = manifest.to_bytes()
    assert Manifest.from_bytes(data).outputs["a.pkl"] == entry
    assert (
        "tag"
        not in Manifest(task="C[1]", commit="c" * 32, outputs={"a.pkl": Entry(3, "x:0", None, False)})
        .to_bytes()
        .decode()
    )
    assert pickle.loads(pickle.dumps(entry)) == entry


@pytest.mark.parametrize("storage", ["s3", "gs"])
def test_a_dump_outside_a_run_records_the_tag_of_what_it_put(
    storage: str, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    workspace = _workspace(storage, request)
    up = TagUp(workspace_directory=workspace)
    kart_core.build(up)
    path = _output(up).path()
    with listing_scope():  # a listing taken before the dump does not answer for the object it puts
        assert current_tag(path) == _entry(up).tag
        up.output().dump(bytes([5]) * 64)
    assert _entry(up).tag == current_tag(path)
    _rewrite(path, _same_size_other(path, fill=5))
    with caplog.at_level(logging.WARNING, logger="kart_core.target"):
        assert TagUp(workspace_directory=workspace).output().load() == bytes([9]) * 64
    assert len(_rewritten_warnings(caplog)) == 1
