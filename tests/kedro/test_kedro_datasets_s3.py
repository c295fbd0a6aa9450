"""The kart runners on kedro-datasets datasets on object storage (``s3://`` on a moto server on 127.0.0.1).

Edits are made by another client (boto3), as another machine or a hand upload would make them.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest
from kart_kedro import KartParallelRunner, KartRunner, KartThreadRunner
from kart_kedro.output_state import current_state
from kedro.io import DataCatalog, MemoryDataset, SharedMemoryDataCatalog
from kedro.pipeline import Pipeline, node
from kedro_datasets.pandas import CSVDataset
from kedro_datasets.partitions import PartitionedDataset
from node_journal import ran, record


def split(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """One partition per group."""
    record("split")
    return {str(group): part[["v"]] for group, part in frame.groupby("g")}


def _client() -> Any:
    return boto3.client("s3", endpoint_url=os.environ["KART_S3_ENDPOINT_URL"])


def _credentials() -> dict[str, Any]:
    return {"client_kwargs": {"endpoint_url": os.environ["KART_S3_ENDPOINT_URL"]}}


def _stamps(bucket: str, prefix: str) -> dict[str, tuple[Any, str]]:
    listing = _client().list_objects_v2(Bucket=bucket, Prefix=prefix)
    return {item["Key"]: (item["LastModified"], item["ETag"]) for item in listing.get("Contents", [])}


def _runner(runner_class: type, workspace: str) -> Any:
    if runner_class is KartRunner:
        return KartRunner(workspace_directory=workspace)
    return runner_class(max_workers=2, workspace_directory=workspace)


@pytest.mark.parametrize(
    ("runner_class", "workspace_on_s3"),
    [(KartRunner, False), (KartThreadRunner, False), (KartParallelRunner, False), (KartRunner, True)],
    ids=["KartRunner", "KartThreadRunner", "KartParallelRunner", "KartRunner-s3-workspace"],
)
def test_cached_partitions_on_s3_are_not_written_again_and_an_outside_edit_reruns_the_node(
    tmp_path: Path, journal: str, s3_bucket: str, runner_class: type, workspace_on_s3: bool
) -> None:
    frame = pd.DataFrame({"g": ["a", "a", "b"], "v": [1, 2, 3]})
    pipeline = Pipeline([node(split, "frame", "parts", name="split")])

    def catalog() -> DataCatalog:
        catalog_class = SharedMemoryDataCatalog if runner_class is KartParallelRunner else DataCatalog
        parts = PartitionedDataset(
            path=f"s3://{s3_bucket}/parts",
            dataset={"type": "pandas.CSVDataset", "save_args": {"index": False}},
            filename_suffix=".csv",
            credentials=_credentials(),
        )
        return catalog_class({"frame": MemoryDataset(frame), "parts": parts})

    workspace = f"s3://{s3_bucket}/kart" if workspace_on_s3 else str(tmp_path / "ws")
    _runner(runner_class, workspace).run(pipeline, catalog())
    assert ran() == ["split"]
    written = _stamps(s3_bucket, "parts/")
    assert sorted(written) == ["parts/a.csv", "parts/b.csv"]
    time.sleep(1.1)  # S3 times are whole seconds: a write now would show
    runner = _runner(runner_class, workspace)
    runner.run(pipeline, catalog())
    assert ran() == [] and runner.last_run == {"split": "cached"}
    assert _stamps(s3_bucket, "parts/") == written  # kart before wrote every partition again on every cached run

    _client().put_object(Bucket=s3_bucket, Key="parts/b.csv", Body=b"v\n30\n")  # someone else's newer data
    runner = _runner(runner_class, workspace)
    runner.run(pipeline, catalog())
    assert ran() == ["split"]  # kart before: cached, and b.csv silently replaced by the cached partition
    assert runner.last_reasons == {"split": "output 'parts' holds data written outside kart"}


def test_an_s3_output_rewritten_within_its_second_at_its_size_is_read_again(s3_bucket: str) -> None:
    dataset = CSVDataset(
        filepath=f"s3://{s3_bucket}/combined.csv", credentials=_credentials(), save_args={"index": False}
    )
    dataset.save(pd.DataFrame({"v": [1, 20]}))
    recorded = current_state(dataset)
    _client().put_object(Bucket=s3_bucket, Key="combined.csv", Body=b"v\n1\n99\n")  # the same size
    info = _client().head_object(Bucket=s3_bucket, Key="combined.csv")
    # The record of the old content as a check made within the same second would hold it: size and whole second kept.
    same_second = dataclasses.replace(recorded, mtime_ns=int(info["LastModified"].timestamp() * 1e9))
    state = current_state(dataset, same_second)
    assert state.size == recorded.size
    assert state.md5 != recorded.md5  # kart before returned the record: the old content, not what the file holds
    assert state == current_state(dataset)
