"""A project's own Kedro dataset class counts by its code: an edit of its ``_load`` or ``_save`` is seen (attacker at10 K9).

``proj_datasets.MyCsv`` reads and writes a CSV through fsspec (local disk, or ``s3://`` on the moto server
tests/services.py starts). The pipeline reads it as a raw input (``rsum(raw)``) and as an intermediate
(``double(raw) -> mid``, ``rsum(mid) -> msum``). kart before kept the raw input's recorded digest (its
stamp and catalog definition unchanged) and keyed ``msum`` by what ``double`` returned: an edit of
``_load`` served every reader the old result. Each run is its own process (a real edit between runs),
under KartRunner and KartParallelRunner.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import boto3
import pytest
from kedro_project import run_script_json
from services import S3_KEY_ID, S3_SECRET, Service

DATASETS = textwrap.dedent(
    """
    import fsspec
    import pandas as pd
    from kedro.io import AbstractDataset
    from kedro.io.core import get_filepath_str, get_protocol_and_path
    from pathlib import PurePosixPath


    class MyCsv(AbstractDataset):
        def __init__(self, filepath, credentials=None):
            protocol, path = get_protocol_and_path(filepath)
            self._protocol = protocol
            self._fs = fsspec.filesystem(protocol, **(credentials or {}))
            self._filepath = PurePosixPath(path)  # as kedro-datasets keep it: without the protocol

        def _load(self):
            with self._fs.open(get_filepath_str(self._filepath, self._protocol), "rb") as file:
                df = pd.read_csv(file)
            return df

        def _save(self, data):
            with self._fs.open(get_filepath_str(self._filepath, self._protocol), "wb") as file:
                data.to_csv(file, index=False)

        def _describe(self):
            return {"filepath": self._filepath}
    """
)

NODES = textwrap.dedent(
    """
    def total(frame):
        return {"sum": int(frame["v"].sum())}

    def double(frame):
        return frame * 2
    """
)

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.pipeline import Pipeline, node
    from kart_kedro import KartParallelRunner, KartRunner
    import proj_datasets, proj_nodes

    root, runner_name, base, endpoint = sys.argv[1:5]
    credentials = {"client_kwargs": {"endpoint_url": endpoint}} if base.startswith("s3://") else None
    pipeline = Pipeline([
        node(proj_nodes.total, "raw", "rsum", name="rsum"),
        node(proj_nodes.double, "raw", "mid", name="double"),
        node(proj_nodes.total, "mid", "msum", name="msum"),
    ])
    entries = {
        "raw": proj_datasets.MyCsv(base + "/raw.csv", credentials),
        "mid": proj_datasets.MyCsv(base + "/mid.csv", credentials),
    }
    if runner_name == "parallel":
        from kedro.io import SharedMemoryDataCatalog
        runner, catalog = KartParallelRunner(max_workers=2, workspace_directory=root + "/ws"), SharedMemoryDataCatalog(entries)
    else:
        runner, catalog = KartRunner(workspace_directory=root + "/ws"), DataCatalog(entries)
    found = runner.run(pipeline, catalog)
    values = {name: (value.load() if hasattr(value, "load") else value) for name, value in found.items()}
    print(json.dumps([runner.last_run, values["rsum"]["sum"], values["msum"]["sum"]]))
    """
)


@pytest.fixture
def base(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """Where the CSVs live (a local folder or a bucket on the moto server) and the S3 endpoint ("" locally)."""
    if request.param == "local":  # set by each test's parametrize
        (tmp_path / "data").mkdir()
        return str(tmp_path / "data"), ""
    server: Service = request.getfixturevalue("s3_env")
    bucket = request.getfixturevalue("s3_bucket")
    return f"s3://{bucket}", server.url


@pytest.fixture
def project(tmp_path: Path, base: tuple[str, str]) -> Path:
    """``src/proj_datasets.py``, ``src/proj_nodes.py``, the run script, and ``raw.csv`` holding v = 1, 2, 3."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "proj_datasets.py").write_text(DATASETS)
    (tmp_path / "src" / "proj_nodes.py").write_text(NODES)
    (tmp_path / "run.py").write_text(SCRIPT)
    _put(base, "raw.csv", b"v\n1\n2\n3\n")
    return tmp_path


def _put(base: tuple[str, str], name: str, data: bytes) -> None:
    url, endpoint = base
    if not url.startswith("s3://"):
        Path(url, name).write_bytes(data)
        return
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",
    )
    client.put_object(Bucket=url.removeprefix("s3://"), Key=name, Body=data)


def _run(project: Path, runner: str, base: tuple[str, str]) -> tuple[dict[str, str], int, int]:
    """One run in a new process: (statuses by node, rsum, msum)."""
    statuses, rsum, msum = run_script_json(project, runner, *base, paths=[project / "src"])
    return statuses, rsum, msum


def _edit(project: Path, old: str, new: str) -> None:
    path = project / "src" / "proj_datasets.py"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


ALL_RAN = {"rsum": "ran", "double": "ran", "msum": "ran"}
ALL_CACHED = {"rsum": "cached", "double": "cached", "msum": "cached"}


@pytest.mark.parametrize(
    ("runner", "base"), [("sequential", "local"), ("parallel", "local"), ("sequential", "s3")], indirect=["base"]
)
def test_an_edit_of_load_reruns_every_reader(project: Path, runner: str, base: tuple[str, str]) -> None:
    """``_load`` now drops v <= 1: plain ``kedro run`` gives rsum 5 and msum 10 (kart before: cached, 6 and 12)."""
    assert _run(project, runner, base) == (ALL_RAN, 6, 12)
    assert _run(project, runner, base) == (ALL_CACHED, 6, 12)
    _edit(project, "        return df\n", '        return df[df["v"] > 1]\n')
    # double reruns too: it reads raw through MyCsv (and writes mid through it)
    assert _run(project, runner, base) == (ALL_RAN, 5, 10)
    assert _run(project, runner, base) == (ALL_CACHED, 5, 10)


@pytest.mark.parametrize("base", ["local"], indirect=True)
def test_an_edit_of_save_writes_the_output_again(project: Path, base: tuple[str, str]) -> None:
    """``_save`` now writes every row twice: ``mid`` is written again and its reader sees the new file."""
    assert _run(project, "sequential", base) == (ALL_RAN, 6, 12)
    _edit(project, "data.to_csv(file, index=False)", "pd.concat([data, data]).to_csv(file, index=False)")
    statuses, rsum, msum = _run(project, "sequential", base)
    assert (statuses["double"], statuses["msum"], rsum, msum) == ("ran", "ran", 6, 24)  # kart before: cached, 12
    assert _run(project, "sequential", base) == (ALL_CACHED, 6, 24)
