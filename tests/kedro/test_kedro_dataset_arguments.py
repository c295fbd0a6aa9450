"""KartRunner keys a catalog definition by the arguments the dataset was built with, not only by its ``_describe()``.

A hand-written dataset's ``_describe()`` often names its file only (Kedro's custom-dataset tutorial describes path,
version and protocol). ``KeyedJson`` loads one key of a JSON file and describes only the file: kart before
2026-12-02 17:20 UTC kept its reader cached when the catalog's ``key: a`` became ``key: b`` (attacker at17 H9),
though a plain ``kedro run`` hands the reader the other key's value.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from kart_kedro import KartParallelRunner, KartRunner, KartThreadRunner
from kart_kedro.node_records import NodeRecords
from kart_kedro.output_state import dataset_config
from kedro.io import (
    AbstractDataset,
    AbstractVersionedDataset,
    DataCatalog,
    MemoryDataset,
    SharedMemoryDataCatalog,
    Version,
)
from kedro.pipeline import Pipeline, node
from kedro_datasets.json import JSONDataset
from node_journal import ran, record
from runner_choice import make_runner


class KeyedJson(AbstractDataset[Any, Any]):
    """Loads one key of a JSON file, saves a whole object (``indent``: how it is written); ``_describe`` names the
    file only."""

    def __init__(
        self,
        filepath: str,
        key: str = "a",
        indent: int | None = None,
        credentials: Any = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._filepath = Path(filepath)
        self._key, self._indent = key, indent

    def load(self) -> Any:
        return json.loads(self._filepath.read_text())[self._key]

    def save(self, data: Any) -> None:
        self._filepath.write_text(json.dumps(data, indent=self._indent))

    def _exists(self) -> bool:
        return self._filepath.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


class VersionedKeyedJson(AbstractVersionedDataset[Any, Any]):
    """``KeyedJson`` with Kedro versioning (each save a new version folder); ``_describe`` names path and version."""

    def __init__(self, filepath: str, key: str = "a", version: Version | None = None) -> None:
        super().__init__(PurePosixPath(filepath), version)
        self._key = key

    def load(self) -> Any:
        return json.loads(Path(self._get_load_path()).read_text())[self._key]

    def save(self, data: Any) -> None:
        path = Path(self._get_save_path())
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({self._key: data}))

    def _exists(self) -> bool:
        try:
            return Path(self._get_load_path()).exists()
        except Exception:  # no version saved yet
            return False

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "version": self._version}


def pick(value: Any) -> dict[str, Any]:
    record("pick")
    return {"picked": value}


def make(seed: int) -> dict[str, int]:
    record("make")
    return {"a": seed, "b": seed * 10}


@pytest.fixture(autouse=True)
def _trusted_digests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Recorded raw input digests are used by the next run at once (no two-second "racy" wait): the stale answer
    came from such a reuse."""
    monkeypatch.setattr(NodeRecords, "RACY_NS", 0)


def _catalog(runner_class: type, datasets: dict[str, Any]) -> Any:
    kind = SharedMemoryDataCatalog if runner_class is KartParallelRunner else DataCatalog
    return kind(datasets)


RUNNERS = [KartRunner, KartThreadRunner, KartParallelRunner]


@pytest.mark.parametrize("runner_class", RUNNERS)
def test_a_raw_input_argument_its_describe_leaves_out_counts(runner_class: type, tmp_path: Path, journal: str) -> None:
    source = tmp_path / "keyed.json"
    source.write_text(json.dumps({"a": 1, "b": 2}))
    out = tmp_path / "out.json"
    pipeline = Pipeline([node(pick, "keyed_in", "keyed_out", name="pick")])

    def run(key: str) -> Any:
        catalog = _catalog(
            runner_class, {"keyed_in": KeyedJson(str(source), key), "keyed_out": JSONDataset(filepath=str(out))}
        )
        make_runner(runner_class, str(tmp_path / "ws")).run(pipeline, catalog)
        return json.loads(out.read_text())

    assert run("a") == {"picked": 1} and ran() == ["pick"]
    assert run("a") == {"picked": 1} and ran() == []  # cached: the recorded digest of the file is reused
    assert run("b") == {"picked": 2} and ran() == ["pick"]  # kart before served {"picked": 1}
    assert run("a") == {"picked": 1} and ran() == []  # key a's run is still cached


def test_a_versioned_raw_input_argument_its_describe_leaves_out_counts(tmp_path: Path, journal: str) -> None:
    source = tmp_path / "keyed.json"
    VersionedKeyedJson(str(source), "a", Version(None, "2026-12-02T00.00.00.000Z")).save(1)
    Path(VersionedKeyedJson(str(source), version=Version(None, None))._get_load_path()).write_text(
        json.dumps({"a": 1, "b": 2})
    )
    out = tmp_path / "out.json"
    pipeline = Pipeline([node(pick, "keyed_in", "keyed_out", name="pick")])

    def run(key: str) -> Any:
        catalog = DataCatalog(
            {
                "keyed_in": VersionedKeyedJson(str(source), key, Version(None, None)),
                "keyed_out": JSONDataset(filepath=str(out)),
            }
        )
        KartRunner(workspace_directory=str(tmp_path / "ws")).run(pipeline, catalog)
        return json.loads(out.read_text())

    assert run("a") == {"picked": 1} and ran() == ["pick"]
    assert run("a") == {"picked": 1} and ran() == []
    assert run("b") == {"picked": 2} and ran() == ["pick"]


def test_an_upstream_output_read_with_another_argument_reruns_its_reader(tmp_path: Path, journal: str) -> None:
    """A persistent input a cached node produced counts by its definition too (``input_config``): the reader of
    ``key: b`` of what ``make`` wrote is not served the cached ``key: a`` value."""
    middle = tmp_path / "middle.json"
    out = tmp_path / "out.json"
    pipeline = Pipeline(
        [node(make, "params:seed", "keyed", name="make"), node(pick, "keyed", "keyed_out", name="pick")]
    )

    def run(key: str) -> Any:
        catalog = DataCatalog(
            {
                "keyed": KeyedJson(str(middle), key),
                "keyed_out": JSONDataset(filepath=str(out)),
                "params:seed": MemoryDataset(3),
            }
        )
        KartRunner(workspace_directory=str(tmp_path / "ws")).run(pipeline, catalog)
        return json.loads(out.read_text())

    assert run("a") == {"picked": 3} and ran() == ["make", "pick"]
    assert run("a") == {"picked": 3} and ran() == []
    assert run("b") == {"picked": 30} and ran() == ["pick"]  # kart before served {"picked": 3}
    assert json.loads(middle.read_text()) == {"a": 3, "b": 30}


def test_an_output_argument_its_describe_leaves_out_writes_the_cached_result_again(
    tmp_path: Path, journal: str
) -> None:
    """An output's definition (``dataset_config`` in its recorded state) counts its constructor arguments: a cached
    node whose output's ``indent`` changed writes its result back through the new definition, as ``kedro run``
    would, without running."""
    out = tmp_path / "out.json"
    pipeline = Pipeline([node(make, "params:seed", "made", name="make")])

    def run(indent: int | None) -> str:
        catalog = DataCatalog({"made": KeyedJson(str(out), "a", indent), "params:seed": MemoryDataset(3)})
        KartRunner(workspace_directory=str(tmp_path / "ws")).run(pipeline, catalog)
        return out.read_text()

    assert run(None) == json.dumps({"a": 3, "b": 30}) and ran() == ["make"]
    assert run(2) == json.dumps({"a": 3, "b": 30}, indent=2)  # kart before left the old bytes
    assert ran() == []  # served from the cache, written back


def test_credentials_are_not_part_of_a_definition(tmp_path: Path) -> None:
    path = str(tmp_path / "x.json")
    one = KeyedJson(path, "a", credentials={"token": "secret-1"})
    other = KeyedJson(path, "a", credentials={"token": "secret-2"})
    assert dataset_config(one) == dataset_config(other) == dataset_config(KeyedJson(path, "a"))
    assert dataset_config(one, reading=True) == dataset_config(other, reading=True)
    assert dataset_config(KeyedJson(path, "b")) != dataset_config(one)


def test_metadata_is_not_part_of_a_definition(tmp_path: Path, journal: str) -> None:
    """``metadata`` (kedro-viz's layer, free-form data Kedro ignores) counts neither in a reader's key nor in an
    output's definition: a metadata edit neither reruns a reader nor writes a cached output back (attacker at18 I11)."""
    path = str(tmp_path / "x.json")
    plain = KeyedJson(path, "a")
    assert dataset_config(plain) == dataset_config(KeyedJson(path, "a", metadata={"kedro-viz": {"layer": "raw"}}))
    assert dataset_config(plain, reading=True) == dataset_config(
        KeyedJson(path, "a", metadata={"kedro-viz": {"layer": "primary"}}), reading=True
    )
    middle, out = tmp_path / "middle.json", tmp_path / "out.json"
    pipeline = Pipeline(
        [node(make, "params:seed", "keyed", name="make"), node(pick, "keyed", "keyed_out", name="pick")]
    )

    def run(layer: str) -> Any:
        catalog = DataCatalog(
            {
                "keyed": KeyedJson(str(middle), "a", metadata={"kedro-viz": {"layer": layer}}),
                "keyed_out": JSONDataset(filepath=str(out)),
                "params:seed": MemoryDataset(3),
            }
        )
        KartRunner(workspace_directory=str(tmp_path / "ws")).run(pipeline, catalog)
        return json.loads(out.read_text())

    assert run("primary") == {"picked": 3} and ran() == ["make", "pick"]
    written = middle.stat().st_ctime_ns
    assert run("intermediate") == {"picked": 3} and ran() == []
    assert middle.stat().st_ctime_ns == written  # not written back
