"""KartRunner on raw inputs on object storage: stamped by the store's metadata, read only when it changed.

Every test runs on the real servers tests/services.py starts on 127.0.0.1: moto for ``s3://``, the GCS emulator
for ``gs://``. Edits between runs are made by another client (boto3, or plain HTTP to the emulator's JSON API),
as another machine or a hand upload would make them. ``object_requests.count_requests`` writes down what each
run asked the servers for.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import importlib
import io
import json
import os
import pickle
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest
from kart_kedro import KartRunner
from kart_kedro.node_records import NodeRecords
from kart_kedro.object_stamp import object_stamp_parts
from kart_kedro.output_state import current_state, file_stamp
from kedro.io import DataCatalog
from kedro.pipeline import Pipeline, node
from kedro_datasets.pandas import CSVDataset
from kedro_datasets.partitions import PartitionedDataset
from kedro_datasets.pickle import PickleDataset
from node_journal import ingest, ran, record, report
from object_requests import Requests, count_requests
from services import GCS_PROJECT, Service, make_gcs_bucket


def total(frame: pd.DataFrame, parts: dict[str, Any], model: dict[str, int]) -> dict[str, Any]:
    """What the node computes from a CSV file, a folder of CSV partitions (loaders) and a pickle."""
    record("total")
    sums = {key: int(parts[key]()["v"].sum()) for key in sorted(parts)}
    return {"frame": int(frame["v"].sum()), "parts": sums, "weight": model["weight"]}


@dataclasses.dataclass(frozen=True)
class Store:
    """A bucket on one of the test servers, and another client's hands on it."""

    url: str  # s3://bucket or gs://bucket
    credentials: dict[str, Any]
    put: Callable[[str, bytes], None]
    delete: Callable[[str], None]


# --- the two stores ----------------------------------------------------------------------------------


def _gcs_store(service: Service, monkeypatch: pytest.MonkeyPatch) -> Store:
    """A fresh bucket on the GCS emulator; ``service`` comes from ``gcs_env`` (tests/service_fixtures.py), which points
    gcsfs at it anonymously, and kedro-datasets' ``gs://``/``gcs://`` file systems follow.

    gcsfs's default class (``ExtendedGcsFileSystem``) asks a gRPC API the emulator does not serve for each
    bucket's layout (60 s time-outs); kart's own storage picks gcsfs's plain class for an emulator, and so
    does this test for the datasets, through fsspec's registry.
    """
    import fsspec.config
    import gcsfs.core

    registry = importlib.import_module("fsspec.registry")._registry
    monkeypatch.setitem(fsspec.config.conf, "gcs", {"token": "anon", "project": GCS_PROJECT})
    for protocol in ("gs", "gcs"):
        monkeypatch.setitem(registry, protocol, gcsfs.core.GCSFileSystem)
    bucket = make_gcs_bucket(service)
    objects = f"{service.url}/storage/v1/b/{bucket}/o"

    def put(key: str, data: bytes) -> None:
        query = urllib.parse.urlencode({"uploadType": "media", "name": key})
        upload = f"{service.url}/upload/storage/v1/b/{bucket}/o?{query}"
        urllib.request.urlopen(urllib.request.Request(upload, data=data, method="POST"), timeout=30).close()

    def delete(key: str) -> None:
        address = f"{objects}/{urllib.parse.quote(key, safe='')}"
        urllib.request.urlopen(urllib.request.Request(address, method="DELETE"), timeout=30).close()

    return Store(f"gs://{bucket}", {}, put, delete)


def _s3_store(bucket: str) -> Store:
    client = boto3.client("s3", endpoint_url=os.environ["KART_S3_ENDPOINT_URL"])

    def put(key: str, data: bytes) -> None:
        client.put_object(Bucket=bucket, Key=key, Body=data)

    def delete(key: str) -> None:
        client.delete_object(Bucket=bucket, Key=key)

    return Store(f"s3://{bucket}", {"client_kwargs": {"endpoint_url": os.environ["KART_S3_ENDPOINT_URL"]}}, put, delete)


@pytest.fixture(params=["s3", "gs"])
def store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Store:
    """A fresh bucket on moto (``s3://``) or on the GCS emulator (``gs://``)."""
    if request.param == "s3":
        return _s3_store(request.getfixturevalue("s3_bucket"))
    return _gcs_store(request.getfixturevalue("gcs_env"), monkeypatch)


@pytest.fixture
def requests_seen(monkeypatch: pytest.MonkeyPatch) -> Requests:
    """The requests sent to the servers (``object_requests``)."""
    return count_requests(monkeypatch)


@pytest.fixture(autouse=True)
def _trusted_digests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Raw input digests recorded by one run are used by the next at once (no two-second "racy" wait): what
    tells a rewrite here must be the store's tokens, not a late modification time."""
    monkeypatch.setattr(NodeRecords, "RACY_NS", 0)


# --- helpers -------------------------------------------------------------------------------------------


def _csv(values: list[int]) -> bytes:
    return ("v\n" + "".join(f"{value}\n" for value in values)).encode()


def md5(data: bytes) -> str:
    """md5 hex, as S3 puts it between quotes in a single-part upload's ETag."""
    return f'"{hashlib.md5(data).hexdigest()}"'


def _seed(store: Store) -> None:
    store.put("frame.csv", _csv([1, 2]))
    for key, values in {"a": [1], "b": [20], "c": [300]}.items():
        store.put(f"parts/{key}.csv", _csv(values))
    store.put("model.pkl", pickle.dumps({"weight": 7}))


def _catalog(store: Store, result: Path) -> DataCatalog:
    from kedro_datasets.json import JSONDataset

    return DataCatalog(
        {
            "frame": CSVDataset(filepath=f"{store.url}/frame.csv", credentials=store.credentials),
            "parts": PartitionedDataset(
                path=f"{store.url}/parts",
                dataset="pandas.CSVDataset",
                filename_suffix=".csv",
                credentials=store.credentials,
            ),
            "model": PickleDataset(filepath=f"{store.url}/model.pkl", credentials=store.credentials),
            "result": JSONDataset(filepath=str(result)),
        }
    )


PIPELINE = Pipeline([node(total, ["frame", "parts", "model"], "result", name="total")])


def _run(store: Store, tmp_path: Path) -> dict[str, Any]:
    """One KartRunner run over the store's inputs; what the node ran ('total' or nothing) and its result."""
    runner = KartRunner(workspace_directory=str(tmp_path / "ws"))
    runner.run(PIPELINE, _catalog(store, tmp_path / "result.json"))
    return {"ran": ran(), "result": json.loads((tmp_path / "result.json").read_text())}


FIRST = {"frame": 3, "parts": {"a": 1, "b": 20, "c": 300}, "weight": 7}


# --- a cached run reads no input -----------------------------------------------------------------------


def test_a_cached_run_downloads_no_input_and_lists_a_partition_folder_once(
    store: Store, tmp_path: Path, journal: str, requests_seen: Requests
) -> None:
    _seed(store)
    assert _run(store, tmp_path) == {"ran": ["total"], "result": FIRST}
    requests_seen.clear()
    assert _run(store, tmp_path) == {"ran": [], "result": FIRST}
    assert requests_seen.downloaded == {}  # kart before downloaded all five objects on every cached run
    listings = requests_seen.of("list_objects_v2" if store.url.startswith("s3") else "list")
    assert [prefix for prefix in listings if "parts" in prefix] == ["parts/"]  # one listing for the folder
    per_object = requests_seen.of("head_object") + requests_seen.of("metadata")
    assert not [key for key in per_object if key.startswith("parts/")]  # no request per partition


# --- trust: any change of an object's bytes reruns the reader ------------------------------------------


@pytest.mark.parametrize("key", ["frame.csv", "parts/b.csv"])
def test_an_object_replaced_at_its_size_by_another_client_reruns_the_reader(
    store: Store, tmp_path: Path, journal: str, key: str
) -> None:
    _seed(store)
    assert _run(store, tmp_path)["ran"] == ["total"]
    assert _run(store, tmp_path)["ran"] == []
    store.put(key, _csv([9]) if key == "frame.csv" else _csv([29]))  # same size, within the same second
    expected = {**FIRST, "frame": 9} if key == "frame.csv" else {**FIRST, "parts": {"a": 1, "b": 29, "c": 300}}
    assert _run(store, tmp_path) == {"ran": ["total"], "result": expected}
    assert _run(store, tmp_path) == {"ran": [], "result": expected}


def test_a_partition_added_then_one_deleted_reruns_the_reader(store: Store, tmp_path: Path, journal: str) -> None:
    _seed(store)
    assert _run(store, tmp_path)["ran"] == ["total"]
    store.put("parts/d.csv", _csv([4000]))
    added = {**FIRST, "parts": {"a": 1, "b": 20, "c": 300, "d": 4000}}
    assert _run(store, tmp_path) == {"ran": ["total"], "result": added}
    store.delete("parts/a.csv")
    assert _run(store, tmp_path) == {"ran": ["total"], "result": {**FIRST, "parts": {"b": 20, "c": 300, "d": 4000}}}


def test_a_gcs_rewrite_of_the_same_bytes_is_read_again_and_finds_the_node_cached(
    tmp_path: Path, journal: str, gcs_env: Service, monkeypatch: pytest.MonkeyPatch, requests_seen: Requests
) -> None:
    store = _gcs_store(gcs_env, monkeypatch)
    _seed(store)
    dataset = CSVDataset(filepath=f"{store.url}/frame.csv")
    before = file_stamp(dataset)
    assert _run(store, tmp_path)["ran"] == ["total"]
    store.put("frame.csv", _csv([1, 2]))  # a new generation, the same md5Hash
    assert file_stamp(dataset) != before
    requests_seen.clear()
    assert _run(store, tmp_path) == {"ran": [], "result": FIRST}
    assert requests_seen.downloaded == {"frame.csv": len(_csv([1, 2]))}  # read once to digest it, nothing else


def test_a_multipart_upload_is_stamped_and_its_same_size_replacement_reruns_the_reader(
    s3_bucket: str, tmp_path: Path, journal: str, requests_seen: Requests
) -> None:
    store = _s3_store(s3_bucket)
    _seed(store)
    client = boto3.client("s3", endpoint_url=os.environ["KART_S3_ENDPOINT_URL"])
    rows = [1] * (3 << 20)  # "1\n" per row: 6 MiB, two parts of an upload in parts of at least 5 MiB

    def upload_in_parts(values: list[int]) -> str:
        data = _csv(values)
        upload = client.create_multipart_upload(Bucket=s3_bucket, Key="frame.csv")["UploadId"]
        parts = []
        for number, start in enumerate(range(0, len(data), 5 << 20), start=1):
            body = io.BytesIO(data[start : start + (5 << 20)])
            etag = client.upload_part(Bucket=s3_bucket, Key="frame.csv", UploadId=upload, PartNumber=number, Body=body)
            parts.append({"PartNumber": number, "ETag": etag["ETag"]})
        done = client.complete_multipart_upload(
            Bucket=s3_bucket, Key="frame.csv", UploadId=upload, MultipartUpload={"Parts": parts}
        )
        return str(done["ETag"])

    assert upload_in_parts(rows).endswith('-2"')  # not the md5 of the bytes
    assert _run(store, tmp_path) == {"ran": ["total"], "result": {**FIRST, "frame": len(rows)}}
    requests_seen.clear()
    assert _run(store, tmp_path)["ran"] == []
    assert requests_seen.downloaded == {}
    upload_in_parts([*rows[:-1], 2])  # one byte other, the same size and the same parts
    assert _run(store, tmp_path) == {"ran": ["total"], "result": {**FIRST, "frame": len(rows) + 1}}


def test_an_s3_object_replaced_at_its_size_within_its_second_gets_another_stamp(s3_bucket: str) -> None:
    store = _s3_store(s3_bucket)
    client = boto3.client("s3", endpoint_url=os.environ["KART_S3_ENDPOINT_URL"])
    dataset = CSVDataset(filepath=f"{store.url}/frame.csv", credentials=store.credentials)
    for _ in range(5):  # S3 times are whole seconds: retried until both writes fall in one second
        store.put("frame.csv", _csv([1, 2]))
        before, parts = file_stamp(dataset), object_stamp_parts(dataset._fs, f"{s3_bucket}/frame.csv", folder=False)
        store.put("frame.csv", _csv([1, 3]))
        head = client.head_object(Bucket=s3_bucket, Key="frame.csv")
        if parts is not None and head["LastModified"].timestamp() * 1e9 == parts[1]:
            break
    else:
        pytest.fail("no two writes within one second in five tries")
    assert before is not None and file_stamp(dataset) != before  # the same name, size and second: the ETag tells
    assert parts is not None and [part[3] for part in parts[0]] == [f"s3:{md5(_csv([1, 2]))}:"]  # the ETag


def test_gcs_stamps_name_the_generation_and_md5hash(gcs_env: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _gcs_store(gcs_env, monkeypatch)
    store.put("frame.csv", _csv([1, 2]))
    dataset = CSVDataset(filepath=f"{store.url}/frame.csv")
    bucket = store.url[len("gs://") :]
    parts = object_stamp_parts(dataset._fs, f"{bucket}/frame.csv", folder=False)
    meta = json.loads(urllib.request.urlopen(f"{gcs_env.url}/storage/v1/b/{bucket}/o/frame.csv").read())
    assert meta["md5Hash"] == base64.b64encode(hashlib.md5(_csv([1, 2])).digest()).decode()
    assert parts is not None and parts[0][0][3] == f"gs:{meta['generation']}:{meta['md5Hash']}:{meta['crc32c']}"


def test_a_version_aware_s3_stamp_names_the_version(s3_bucket: str) -> None:
    store = _s3_store(s3_bucket)
    client = boto3.client("s3", endpoint_url=os.environ["KART_S3_ENDPOINT_URL"])
    client.put_bucket_versioning(Bucket=s3_bucket, VersioningConfiguration={"Status": "Enabled"})
    first = client.put_object(Bucket=s3_bucket, Key="frame.csv", Body=_csv([1, 2]))["VersionId"]
    dataset = CSVDataset(
        filepath=f"{store.url}/frame.csv", credentials=store.credentials, fs_args={"version_aware": True}
    )
    before = file_stamp(dataset)
    parts = object_stamp_parts(dataset._fs, f"{s3_bucket}/frame.csv", folder=False)
    assert parts is not None and parts[0][0][3] == f"s3:{md5(_csv([1, 2]))}:{first}"
    store.put("frame.csv", _csv([1, 2]))  # the same bytes (the same ETag), a new version
    assert before is not None and file_stamp(dataset) != before


def test_stores_without_content_tokens_are_read(tmp_path: Path) -> None:
    dataset = CSVDataset(filepath="memory://kart-object-stamp/frame.csv")
    dataset.save(pd.DataFrame({"v": [1]}))
    assert file_stamp(dataset) is None  # memory:// gives no token: the caller reads it
    assert file_stamp(CSVDataset(filepath=f"{tmp_path}/missing.csv")) is None


# --- GCS content tokens of outputs ----------------------------------------------------------------------


def test_a_gcs_output_rewritten_at_its_size_within_its_time_is_read_again(
    gcs_env: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _gcs_store(gcs_env, monkeypatch)
    dataset = CSVDataset(filepath=f"{store.url}/combined.csv", save_args={"index": False})
    dataset.save(pd.DataFrame({"v": [1, 20]}))
    recorded = current_state(dataset)
    assert recorded.etag  # the store's token (gcsfs etag), not ""
    store.put("combined.csv", b"v\n1\n99\n")  # the same size
    now = current_state(dataset)
    same_time = dataclasses.replace(recorded, mtime_ns=now.mtime_ns)  # as if rewritten within the clock's tick
    state = current_state(dataset, same_time)
    assert state.size == recorded.size and state.etag != recorded.etag
    assert state.md5 == now.md5 != recorded.md5


# --- D1: a folder's listing on S3 -----------------------------------------------------------------------


def test_a_partition_deleted_from_an_s3_output_folder_reruns_its_reader(
    s3_bucket: str, tmp_path: Path, journal: str
) -> None:
    from kedro.io import MemoryDataset
    from kedro_datasets.json import JSONDataset

    store = _s3_store(s3_bucket)
    pipeline = Pipeline([node(ingest, ["day", "events"], "daily", name="ingest"), node(report, "daily", "report")])

    def run(day: str, events: str) -> list[str]:
        catalog = DataCatalog(
            {
                "daily": PartitionedDataset(
                    path=f"{store.url}/daily",
                    dataset="text.TextDataset",
                    filename_suffix=".txt",
                    credentials=store.credentials,
                ),
                "report": JSONDataset(filepath=str(tmp_path / "report.json")),
                "day": MemoryDataset(day),
                "events": MemoryDataset(events),
            }
        )
        KartRunner(workspace_directory=str(tmp_path / "ws")).run(pipeline, catalog)
        return ran()

    assert run("2026-11-01", "") == ["ingest", "report"]
    assert run("2026-11-02", "a,b") == ["ingest", "report"]
    assert json.loads((tmp_path / "report.json").read_text()) == ["2026-11-01", "2026-11-02"]
    store.delete("daily/2026-11-01.txt")  # the empty partition: the folder's size and newest time stay
    assert "report" in run("2026-11-02", "a,b")
    assert json.loads((tmp_path / "report.json").read_text()) == ["2026-11-02"]


# --- RawFile on object storage -----------------------------------------------------------------------------


def test_a_raw_file_on_object_storage_is_read_at_most_once_per_content(
    store: Store, requests_seen: Requests, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fsspec.config
    from kart_kedro import RawFile

    if store.credentials:  # RawFile opens its URL with fsspec's defaults: the endpoint by fsspec's config
        monkeypatch.setitem(fsspec.config.conf, "s3", store.credentials)
    store.put("raw.csv", _csv([1, 2]))
    url = f"{store.url}/raw.csv"
    assert RawFile(path=url).checksum == RawFile(path=url).checksum == hashlib.md5(_csv([1, 2])).hexdigest()
    # GCS keeps each object's md5 (md5Hash): nothing read. S3's ETag is not always one: read once, not per task.
    assert requests_seen.downloaded == ({"raw.csv": 6} if store.url.startswith("s3") else {})
    store.put("raw.csv", _csv([1, 3]))  # the same size, by another client
    assert RawFile(path=url).checksum == hashlib.md5(_csv([1, 3])).hexdigest()


def test_a_cached_raw_file_on_object_storage_refuses_its_url_once_the_object_changed(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A RawFile cached by an earlier run hands its URL to readers only while the object is the content it was made
    for (attacker at15 F6: a reader of a graph made before an upload cached the new content under the old ids)."""
    import fsspec.config
    from kart_kedro import RawFile

    from kart_core import build
    from kart_core.errors import StaleTaskError

    if store.credentials:
        monkeypatch.setitem(fsspec.config.conf, "s3", store.credentials)
    store.put("raw.csv", _csv([1, 2]))
    url = f"{store.url}/raw.csv"
    task = RawFile(path=url, workspace_directory=str(tmp_path / "ws"))
    build(task, return_value=False)
    assert task.output().load() == url
    store.put("raw.csv", _csv([1, 3]))  # the same size, by another client
    with pytest.raises(StaleTaskError, match=r"raw.csv' changed since this task was built"):
        task.output().load()
    store.put("raw.csv", _csv([1, 2]))
    assert task.output().load() == url


def test_checking_an_unchanged_s3_output_takes_one_request(s3_bucket: str, requests_seen: Requests) -> None:
    store = _s3_store(s3_bucket)
    single = CSVDataset(filepath=f"{store.url}/combined.csv", credentials=store.credentials)
    folder = PartitionedDataset(
        path=f"{store.url}/parts", dataset="pandas.CSVDataset", filename_suffix=".csv", credentials=store.credentials
    )
    single.save(pd.DataFrame({"v": [1]}))
    folder.save({"a": pd.DataFrame({"v": [1]}), "b": pd.DataFrame({"v": [2]})})
    recorded = {"single": current_state(single), "folder": current_state(folder)}
    requests_seen.clear()
    assert current_state(single, recorded["single"]) == recorded["single"]
    assert current_state(folder, recorded["folder"]) == recorded["folder"]
    # kart before: exists (a HEAD), then find (a listing, and for a file a second HEAD) per output
    assert requests_seen.calls == [("head_object", "combined.csv"), ("list_objects_v2", "parts/")]


def weigh(model: dict[str, int]) -> int:
    """A node reading a versioned model."""
    record("weigh")
    return model["weight"]


def test_a_new_version_of_a_versioned_s3_input_reruns_its_reader(
    s3_bucket: str, tmp_path: Path, journal: str, requests_seen: Requests
) -> None:
    from kedro.io import MemoryDataset
    from kedro.io.core import Version

    store = _s3_store(s3_bucket)

    def model() -> PickleDataset:
        return PickleDataset(
            filepath=f"{store.url}/model.pkl", credentials=store.credentials, version=Version(None, None)
        )

    def run() -> tuple[list[str], int]:
        catalog = DataCatalog({"model": model(), "weight": MemoryDataset()})
        outputs = KartRunner(workspace_directory=str(tmp_path / "ws")).run(
            Pipeline([node(weigh, "model", "weight", name="weigh")]), catalog
        )
        return ran(), outputs["weight"].load()

    model().save({"weight": 1})
    assert run() == (["weigh"], 1)
    requests_seen.clear()
    assert run() == ([], 1)
    assert requests_seen.downloaded == {}
    model().save({"weight": 2})  # a new version, as another process would save it
    assert run() == (["weigh"], 2)


def test_a_deleted_input_object_fails_the_run_as_kedro_does_not_served_from_the_cache(
    store: Store, tmp_path: Path, journal: str
) -> None:
    from kedro.io.core import DatasetError

    _seed(store)
    assert _run(store, tmp_path)["ran"] == ["total"]
    store.delete("frame.csv")
    with pytest.raises(
        DatasetError,
        match=r"^frame: Failed while loading data from dataset kedro_datasets\.pandas\.csv_dataset\.CSVDataset",
    ):
        _run(store, tmp_path)
    assert ran() == []
