"""Requests and downloaded bytes of KartRunner runs whose raw inputs are on object storage.

One node reads a CSV file, a PartitionedDataset folder of ``--partitions`` CSV files and a pickle, all on
``s3://`` (moto) or ``gs://`` (gcp-storage-emulator), and writes a pickle there; the workspace is local.
The bench starts the server on 127.0.0.1 (tests/services.py), runs the pipeline ``--runs`` times and prints,
per run, what the node did and the requests s3fs/gcsfs sent by kind, with the bytes of object content
downloaded (tests/kedro/object_requests.py counts them). Run from the repository root:

    env -u PYTHONDONTWRITEBYTECODE PYTHONPATH=$PWD:$PWD/plugins/kedro:$PWD/tests:$PWD/tests/kedro \\
        .venv/bin/python bench/kedro_object_inputs.py --store s3 --partitions 20
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import importlib
import os
import pickle
import resource
import tempfile
import time
from collections.abc import Iterator
from typing import Any

os.environ.setdefault("KART_KEDRO_TEST_JOURNAL", os.devnull)


def total(frame: Any, parts: dict[str, Any], model: dict[str, int]) -> int:
    """The node: sums of the CSV, of every partition, and the model's weight."""
    return int(frame["v"].sum()) + sum(int(load()["v"].sum()) for load in parts.values()) + model["weight"]


@contextlib.contextmanager
def _store(kind: str, logs: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(bucket URL, dataset credentials) on a fresh server."""
    import services

    if kind == "s3":
        with services.moto_server(logs) as server:
            os.environ.update(
                AWS_ACCESS_KEY_ID=services.S3_KEY_ID,
                AWS_SECRET_ACCESS_KEY=services.S3_SECRET,
                AWS_DEFAULT_REGION="us-east-1",
            )
            yield f"s3://{services.make_bucket(server)}", {"client_kwargs": {"endpoint_url": server.url}}
        return
    import fsspec.config
    import gcsfs.core

    with services.gcs_emulator(logs) as server:
        os.environ["STORAGE_EMULATOR_HOST"] = server.url
        registry = importlib.import_module("fsspec.registry")._registry
        for protocol in ("gs", "gcs"):  # gcsfs's plain class: the default one asks the emulator a gRPC API
            fsspec.config.conf[protocol] = {"token": "anon", "project": services.GCS_PROJECT}
            registry[protocol] = gcsfs.core.GCSFileSystem
        yield f"gs://{services.make_gcs_bucket(server)}", {}


def main() -> None:
    """Parse the options, run the pipeline, print one line per run."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", choices=["s3", "gs"], default="s3")
    parser.add_argument("--partitions", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--settle",
        type=float,
        default=2.1,
        help="seconds to wait after writing the inputs: a digest of objects written less than NodeRecords.RACY_NS "
        "(2 s) before it was recorded is not reused (git's racy rule), so without it run 1 reads them again",
    )
    args = parser.parse_args()

    import fsspec
    import pytest
    from kart_kedro import KartRunner
    from kedro.io import DataCatalog
    from kedro.pipeline import Pipeline, node
    from kedro_datasets.pandas import CSVDataset
    from kedro_datasets.partitions import PartitionedDataset
    from kedro_datasets.pickle import PickleDataset
    from object_requests import count_requests

    with tempfile.TemporaryDirectory(prefix="bench-kedro-object-") as folder, _store(args.store, folder) as (url, cred):
        options = {"client_kwargs": cred["client_kwargs"]} if cred else {}
        fs, root = fsspec.core.url_to_fs(url, **options)
        fs.pipe(f"{root}/frame.csv", b"v\n1\n2\n")
        for number in range(args.partitions):
            fs.pipe(f"{root}/parts/{number:04d}.csv", f"v\n{number}\n".encode())
        fs.pipe(f"{root}/model.pkl", pickle.dumps({"weight": 7}))
        time.sleep(args.settle)
        pipeline = Pipeline([node(total, ["frame", "parts", "model"], "out", name="total")])
        monkeypatch = pytest.MonkeyPatch()
        seen = count_requests(monkeypatch)
        for run in range(args.runs):
            catalog = DataCatalog(
                {
                    "frame": CSVDataset(filepath=f"{url}/frame.csv", credentials=cred),
                    "parts": PartitionedDataset(
                        path=f"{url}/parts", dataset="pandas.CSVDataset", filename_suffix=".csv", credentials=cred
                    ),
                    "model": PickleDataset(filepath=f"{url}/model.pkl", credentials=cred),
                    "out": PickleDataset(filepath=f"{url}/out.pkl", credentials=cred),
                }
            )
            seen.clear()
            cpu, wall = _cpu(), time.perf_counter()
            runner = KartRunner(workspace_directory=f"{folder}/ws")
            runner.run(pipeline, catalog)
            kinds = collections.Counter(kind for kind, _ in seen.calls)
            print(
                f"run {run}: {runner.last_run['total']:6s} requests {sum(kinds.values()):3d} {dict(sorted(kinds.items()))} "
                f"downloaded {sum(seen.downloaded.values())} B from {len(seen.downloaded)} objects; "
                f"wall {time.perf_counter() - wall:.2f} s, CPU {_cpu() - cpu:.2f} s"
            )
        monkeypatch.undo()


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
