"""A GCS object over ``FIRST_READ_BYTES`` is read in ranges all of one generation: one that another client puts
again while it is read fails with an error, never giving bytes of two versions (attacker at23 A4: gcsfs read the
later ranges of whatever version was there then, and a load returned a value no version held). The GCS emulator of
tests/services.py answers a download naming a ``generation`` as GCS does without object versioning (404 once it is
not the live one).
"""

from __future__ import annotations

import pickle
from typing import Any

import luigi
import pytest
from gcsfs.core import GCSFileSystem

import kart_core
from kart_core.errors import DamagedOutputError, LoadOSError
from kart_core.file_processor.pickle_format import PickleFileProcessor
from kart_core.storage import storage_for
from kart_core.storage.pinned import GenerationGoneError
from kart_core.storage.remote import FIRST_READ_BYTES
from kart_core.storage.stamp import current_tag, opened_tag, read_pinned
from kart_core.target import TargetOnKart

pytestmark = pytest.mark.slow  # talks to the emulator process

SIZE = 2 * FIRST_READ_BYTES + 123  # the first GET, then at least two more ranges (gcsfs's 5 MiB blocks)


def _other_client() -> GCSFileSystem:
    """Another process's gcsfs client (the JSON API class, as kart uses against the emulator): its writes pass kart's
    file system (and its caches) by."""
    return GCSFileSystem(skip_instance_cache=True, token="anon")


def _pattern(size: int, salt: int) -> bytes:
    return bytes((i * 7 + salt) % 251 for i in range(256)) * (size // 256) + bytes([salt]) * (size % 256)


def test_an_unchanged_large_object_reads_whole_right_and_tagged(gcs_bucket: str) -> None:
    path = f"gs://{gcs_bucket}/pin/whole.bin"
    data = _pattern(SIZE, 1)
    _other_client().pipe_file(path.removeprefix("gs://"), data)
    storage = storage_for(path)
    with storage.open_read(path) as file:
        # The generation the first GET read: a load can vouch for it by the manifest's tag, as for a small object.
        assert opened_tag(file) == current_tag(path) is not None
        assert read_pinned(file)
        assert getattr(file, "size", None) == SIZE
        parts = []
        while chunk := file.read(1_000_003):  # across the first GET's bytes and the later ranges
            parts.append(chunk)
        assert b"".join(parts) == data
        file.seek(FIRST_READ_BYTES - 5)
        assert file.read(10) == data[FIRST_READ_BYTES - 5 : FIRST_READ_BYTES + 5]
    assert storage.read_bytes(path) == data


def test_a_large_object_put_again_while_read_fails_and_never_mixes_versions(gcs_bucket: str) -> None:
    path = f"gs://{gcs_bucket}/pin/torn.bin"
    first, second = _pattern(SIZE, 1), _pattern(SIZE, 2)
    other = _other_client()
    other.pipe_file(path.removeprefix("gs://"), first)
    with storage_for(path).open_read(path) as file:
        assert file.read(1000) == first[:1000]
        other.pipe_file(path.removeprefix("gs://"), second)  # same size, other content, between two ranges
        with pytest.raises(GenerationGoneError, match="put again while it was read") as raised:
            file.read()
    assert raised.value.errno == 16  # EBUSY, as s3fs's FileExpired on S3
    assert storage_for(path).read_bytes(path) == second  # a read begun after the put reads the new version whole


class RewrittenMidLoad(PickleFileProcessor):
    """Pickle; with ``path`` and ``fill`` set, the load reads the first bytes, another client puts ``SIZE`` bytes of
    ``fill`` (pickled: the output's size) at ``path``, and the load reads on (a foreign put between two ranges)."""

    def __init__(self) -> None:
        self.path: str | None = None
        self.fill = 0

    def load(self, file: Any) -> Any:
        if self.path is None or not self.fill:
            return super().load(file)
        head = file.read(1000)
        _other_client().pipe_file(self.path.removeprefix("gs://"), pickle.dumps(bytes([self.fill]) * SIZE, protocol=5))
        return pickle.loads(head + file.read())


class BigBlob(kart_core.TaskOnKart[bytes]):
    """``SIZE`` bytes of 1 (a pickle over ``FIRST_READ_BYTES``); a load puts ``SIZE`` bytes of ``put_mid_load`` (0:
    nothing) at the output meanwhile."""

    put_mid_load = luigi.IntParameter(default=0, significant=False)

    def output(self) -> TargetOnKart:
        processor = RewrittenMidLoad()
        target = self.make_target("big.pkl", processor=processor)
        assert isinstance(target, TargetOnKart)
        processor.path, processor.fill = target.path(), int(self.put_mid_load)
        return target

    def run(self) -> None:
        self.dump(b"\x01" * SIZE)


def test_a_load_of_a_large_output_put_again_meanwhile_fails_as_on_s3(gcs_bucket: str) -> None:
    """As s3fs's FileExpired on S3: the load fails; it then hashes the object there now, so other content is damage
    (a build repairs it) and the same bytes put again leave the load's own error (LoadOSError)."""
    workspace = f"gs://{gcs_bucket}/pinws"
    assert kart_core.build(BigBlob(workspace_directory=workspace)) == b"\x01" * SIZE
    assert BigBlob(workspace_directory=workspace).output().load() == b"\x01" * SIZE  # vouched by its tag
    with pytest.raises(LoadOSError, match="put again while it was read") as same:
        BigBlob(put_mid_load=1, workspace_directory=workspace).output().load()
    assert isinstance(same.value.__cause__, GenerationGoneError)
    assert BigBlob(workspace_directory=workspace).output().load() == b"\x01" * SIZE  # the same bytes, a new generation
    with pytest.raises(DamagedOutputError) as other:
        BigBlob(put_mid_load=2, workspace_directory=workspace).output().load()
    assert other.value.kind == "hash" and isinstance(other.value.__cause__, GenerationGoneError)
