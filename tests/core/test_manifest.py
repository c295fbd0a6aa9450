"""kart_core.manifest: each entry names the task class that committed it, so a same-named class is foreign.

gokart's layout names files by class name and unique id only (the id covers the class name, not its
module): ``a.SnModel`` and ``b.SnModel`` with equal parameters have the same id, the same
``make_target`` output path and the same manifest file. kart keeps those paths (a gokart cache stays
valid) and records the owning ``module.Class`` per manifest entry: a load by the other class is a
``ForeignOutputError`` (a kind of ``DamagedOutputError``), so a build rebuilds the output for the class
asking (counted as repaired) instead of handing back the other class's result.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import luigi
import pytest
from same_name import a, b

import kart_core
from kart_core.errors import DamagedOutputError, ForeignOutputError, GokartBuildError
from kart_core.file_processor import builtin as builtin_formats
from kart_core.hooks import create_hook_manager, hookimpl
from kart_core.manifest import FORMAT, Manifest
from kart_core.runlog import RunLogPlugin
from kart_core.storage import storage_for
from kart_core.workspace import MANIFEST, log_task_path


@pytest.fixture(params=["local", "s3"])
def any_workspace(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A workspace on local disk and one on the S3-compatible server (moto)."""
    if request.param == "local":
        return str(tmp_path / "ws")
    return f"s3://{request.getfixturevalue('s3_bucket')}/ws"


class _Results:
    def __init__(self) -> None:
        self.results: list[kart_core.BuildResult] = []

    @hookimpl
    def kart_after_build(self, tasks: list[Any], result: kart_core.BuildResult) -> None:
        self.results.append(result)


def _manager(plugin: _Results) -> Any:
    return create_hook_manager([RunLogPlugin(), builtin_formats, plugin], load_entry_points=False)


def _manifest(task: Any) -> dict[str, Any]:
    path = log_task_path(task, MANIFEST)
    with storage_for(path).open_read(path) as file:
        return json.loads(file.read())


def test_same_named_classes_share_the_gokart_paths(workspace: str) -> None:
    """What makes them collide (and must stay: gokart's ids and file names)."""
    one, other = a.SnModel(workspace_directory=workspace), b.SnModel(workspace_directory=workspace)
    assert one.make_unique_id() == other.make_unique_id()
    assert one.output().path() == other.output().path()
    assert log_task_path(one, MANIFEST) == log_task_path(other, MANIFEST)


@pytest.mark.parametrize("signing", [False, True], ids=["unsigned", "signed"])
def test_a_root_committed_by_the_other_class_is_rebuilt_not_returned(
    any_workspace: str, signing: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if signing:
        monkeypatch.setenv("KART_SIGNING_KEY", "a test key of some length")
    one, other = a.SnModel(workspace_directory=any_workspace), b.SnModel(workspace_directory=any_workspace)
    assert kart_core.build(one, reset_register=False)["module"] == "a"
    (entry,) = _manifest(one)["outputs"].values() if not signing else [None]
    if entry is not None:
        assert entry["owner"] == "same_name.a.SnModel"
    plugin = _Results()
    capsys.readouterr()
    assert kart_core.build(other, hook_manager=_manager(plugin), reset_register=False)["module"] == "b"
    (result,) = plugin.results
    assert result.repaired == [kart_core.node_key(other)]
    assert "0 ran, 1 repaired, 0 cached" in capsys.readouterr().err
    assert kart_core.build(one, reset_register=False)["module"] == "a"  # and back: each gets its own


@pytest.mark.parametrize(("workers", "executor"), [(1, "thread"), (2, "process")])
def test_an_upstream_committed_by_the_other_class_is_rebuilt_before_its_downstream_reads_it(
    any_workspace: str, workers: int, executor: str
) -> None:
    kart_core.build(a.SnModel(workspace_directory=any_workspace), reset_register=False)
    use = b.SnUse(model=b.SnModel(workspace_directory=any_workspace), workspace_directory=any_workspace)
    assert kart_core.build(use, workers=workers, executor=executor, reset_register=False) == "b"
    # a's downstream (same class name, its own output path, the same manifest file) is not disturbed.
    use_a = a.SnUse(model=a.SnModel(workspace_directory=any_workspace), workspace_directory=any_workspace)
    assert use_a.output().path() != use.output().path()  # a default output path has the module's folder
    assert kart_core.build(use_a, reset_register=False) == "a"
    assert kart_core.build(use, reset_register=False) == "b"  # cached: its own entry is still there
    owners = {entry["owner"] for entry in _manifest(use)["outputs"].values()}
    assert owners == {"same_name.a.SnUse", "same_name.b.SnUse"}


def test_with_repairs_off_the_foreign_output_is_the_named_error(
    workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    one, other = a.SnModel(workspace_directory=workspace), b.SnModel(workspace_directory=workspace)
    kart_core.build(one, reset_register=False)
    monkeypatch.setenv("KART_REPAIR_DAMAGED", "0")
    with pytest.raises(ForeignOutputError) as info:
        other.output().load()
    error = info.value
    assert isinstance(error, DamagedOutputError) and error.kind == "owner"
    message = str(error)
    assert "same_name.a.SnModel" in message and "same_name.b.SnModel" in message
    assert other.output().path() in message and "rerun=True" in message
    use = b.SnUse(model=other, workspace_directory=workspace)
    with pytest.raises(GokartBuildError, match="ForeignOutputError"):
        kart_core.build(use, reset_register=False)


def test_a_manifest_without_owners_still_loads(workspace: str) -> None:
    """Written by kart before owners were recorded: the entry names no class, nothing is foreign."""
    one = a.SnModel(workspace_directory=workspace)
    kart_core.build(one, reset_register=False)
    path = Path(log_task_path(one, MANIFEST))
    document = json.loads(path.read_text())
    for entry in document["outputs"].values():
        del entry["owner"]
    path.write_text(json.dumps(document))
    assert b.SnModel(workspace_directory=workspace).output().load()["module"] == "a"  # as before: not knowable


def test_a_csv_table_of_the_other_class_is_rebuilt_too(any_workspace: str) -> None:
    """Another format (pandas csv): the owner check does not depend on how the file is read."""
    one, other = a.SnTable(workspace_directory=any_workspace), b.SnTable(workspace_directory=any_workspace)
    assert one.output().path() == other.output().path()
    assert kart_core.build(one, reset_register=False)["module"].tolist() == ["a"]
    assert kart_core.build(other, reset_register=False)["module"].tolist() == ["b"]
    with pytest.raises(ForeignOutputError):
        one.output().load()


_SCRIPT = """
import sys
import kart_core as gokart

class ScriptTask(gokart.TaskOnKart):
    def output(self):
        return self.make_target("shared/out.pkl")  # no module folder: the script and the import share it

    def run(self):
        print("RAN", flush=True)
        self.dump(sys.argv[-1])

if __name__ == "__main__":
    print(gokart.build(ScriptTask(workspace_directory=sys.argv[1])))
"""


@pytest.mark.parametrize("package", [False, True])
def test_a_class_run_as_a_script_and_imported_is_one_owner(tmp_path: Path, package: bool) -> None:
    """``python pipeline.py`` (``__main__.ScriptTask``), ``python -m`` and ``import pipeline`` define one class:
    each reuses what the other committed, as gokart does (the manifest records ``pipeline.ScriptTask``)."""
    import os
    import subprocess
    import sys

    root = tmp_path / "code"
    folder = root / "pkg" if package else root
    folder.mkdir(parents=True)
    if package:
        (folder / "__init__.py").write_text("")
    (folder / "pipeline.py").write_text(_SCRIPT)
    module = "pkg.pipeline" if package else "pipeline"
    workspace = str(tmp_path / "ws")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}

    def run(*args: str) -> str:
        done = subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout + done.stderr

    first = run(str(folder / "pipeline.py"), workspace, "first")
    assert "RAN" in first and "1 ran" in first
    imported = f"import {module} as m, kart_core as g; print(g.build(m.ScriptTask(workspace_directory={workspace!r})))"
    second = run("-c", imported)
    assert "RAN" not in second and "1 cached" in second and "first" in second
    third = run("-m", module, workspace, "third")
    assert "RAN" not in third and "1 cached" in third and "first" in third
    manifest = next((tmp_path / "ws" / "log" / "manifest").glob("ScriptTask_*.json"))
    owners = {entry["owner"] for entry in json.loads(manifest.read_text())["outputs"].values()}
    assert owners == {f"{module}.ScriptTask"}


def test_a_foreign_output_is_reported_as_another_class_s_not_as_damaged(
    workspace: str, caplog: pytest.LogCaptureFixture
) -> None:
    one, other = a.SnModel(workspace_directory=workspace), b.SnModel(workspace_directory=workspace)
    kart_core.build(one, reset_register=False)
    with caplog.at_level("WARNING", logger="kart_core"):
        assert kart_core.build(other, reset_register=False)["module"] == "b"
    warned = " ".join(record.getMessage() for record in caplog.records)
    assert f"The output of {other.kart_label()} belongs to another task class: " in warned
    assert "it was committed by same_name.a.SnModel" in warned and "is damaged" not in warned


def test_the_integrity_record_of_bytes_parsed_before_is_handed_back_not_parsed_again() -> None:
    """A process that reads the same manifest bytes again (a second KartRunner run) parses them once (run=False);
    other bytes, the whole document (run=True) and a damaged one are parsed each time."""
    entry = {"size": 3, "digest": "xxh3_128:" + "0" * 32, "commit": "c" * 32, "sealed": False, "owner": "m.T"}
    document = {"commit": "c" * 32, "format": FORMAT, "outputs": {"a/T_1.pkl": entry}, "task": "T[11111111]"}
    data = (json.dumps(document, separators=(",", ":"))[:-1] + ',"run":{"task_log":{}}}').encode()
    first = Manifest.from_bytes(data, run=False)
    assert first.run is None and first.outputs["a/T_1.pkl"].size == 3
    assert Manifest.from_bytes(bytes(bytearray(data)), run=False) is first  # equal bytes read again
    other = data.replace(b'"size":3', b'"size":4')
    assert Manifest.from_bytes(other, run=False).outputs["a/T_1.pkl"].size == 4
    whole = Manifest.from_bytes(data, run=True)
    assert whole is not Manifest.from_bytes(data, run=True) and whole.run == {"task_log": {}}
    damaged = data.replace(b'"size":3', b'"size":"x"')
    for _ in range(2):
        with pytest.raises(ValueError):
            Manifest.from_bytes(damaged, run=False)


def _manifest_cases() -> list[bytes]:
    """Manifests as kart writes them, and with values of other types, json extensions, odd keys and bytes."""
    entry = {"size": 3, "digest": "xxh3_128:" + "0" * 32, "commit": "c" * 32, "sealed": False, "owner": "m.T"}
    base = {"commit": "c" * 32, "format": FORMAT, "outputs": {"a/T_1.pkl": entry}, "task": "T[11111111]"}

    def written(run: Any = None, **changes: Any) -> bytes:
        text = json.dumps({**base, **changes}, separators=(",", ":"), sort_keys=True)
        return (text if run is None else text[:-1] + ',"run":' + json.dumps(run) + "}").encode()

    other_entries = [
        {**entry, "size": "3"},
        {**entry, "size": 3.0},
        {**entry, "sealed": None},
        {**entry, "owner": None},
        {**entry, "stamp": [5, 1796276366963463382]},  # an entry's stamp (Entry.stamp): inode, status-change time
        {**entry, "stamp": None},
        {**entry, "stamp": [5.0, 6]},
        {**entry, "stamp": [True, 6]},
        {**entry, "stamp": "56"},
        {**entry, "stamp": [5, "x"]},
        {**entry, "stamp": {"5": 6}},
    ]
    missing_commit = {key: value for key, value in entry.items() if key != "commit"}
    inputs = [
        {"manifest": "log/manifest/U_1.json", "key": "u.pkl", "commit": "d" * 32, "digest": "x:1", "reader": "m.T"}
    ]
    cases = [
        written(),
        written({"task_log": {"seed": 1}}),
        written({"task_log": {}}, pending=True),
        written({"task_log": {}}, pending=1),
        written({"t": 1}, task=None),
        written({"t": 1}, commit=5),
        written({"t": 1}, logs="e" * 32),
        written({"t": 1}, logs=7),
        written({"t": 1}, format="kart-manifest/2"),
        written({"t": 1}, side={"s/x.pkl": entry}),
        written({"t": 1}, side={"s/x.pkl": {**entry, "stamp": [5, 6]}}),
        written({"t": 1}, side=[1]),
        written({"t": 1}, inputs=inputs),
        written({"t": 1}, inputs=[{"key": 1}]),
        # Inputs as kart writes them (msgspec decodes them straight into Input objects) and odd ones.
        written({"t": 1}, inputs=[{**inputs[0], "task": "U[1]", "required": True, "stamp": [5, 6], "built": False}]),
        written({"t": 1}, inputs=[{**inputs[0], "task": "U[1]", "built": True, "extra": {"a": [1]}}]),
        written({"t": 1}, inputs=[{**inputs[0], "task": "U[1]", "reader": None}]),
        written({"t": 1}, inputs=[{**inputs[0], "task": "U[1]", "stamp": "56"}]),
        written({"t": 1}, inputs=[{**inputs[0], "task": "U[1]", "stamp": [5, "x", [1]]}]),
        written({"t": 1}, inputs=[{**inputs[0], "task": "U[1]", "built": "yes", "required": 1}]),
        written({"t": 1}, inputs=[{**inputs[0], "task": 3}]),
        written({"t": 1}, inputs=[{**inputs[0], "task": "U[1]", "commit": None}]),
        written({"t": 1}, inputs=[{key: value for key, value in inputs[0].items() if key != "digest"}]),
        written({"t": 1}, inputs=[{key: value for key, value in inputs[0].items() if key != "manifest"}]),
        written({"t": 1}, inputs={"a": 1}),
        written({"t": 1}, inputs=None),
        written({"t": 1}, inputs=[1]),
        written({"t": 1}, outputs={"/abs/T_1.pkl": entry}),
        written({"t": 1}, outputs={"a/../../T_1.pkl": entry}),
        written({"t": 1}, outputs={"a/T_1.pkl": missing_commit}),
        written({"t": 1}, outputs={"a/T_1.pkl": {**entry, "extra": [1]}}),
        *(written({"t": 1}, outputs={"a/T_1.pkl": other}) for other in other_entries),
        written({"t": 1}).replace(b'"size":3', b'"size":3,"size":4'),  # the last of duplicate keys counts
        written({"t": 1}).replace(b'"task":', b'"\xff":1,"task":'),  # not UTF-8 in a key nobody reads
        written({"t": 1}).replace(b'{"t":1}', b'{"t":NaN}'),  # json's extension
        b" " + written({"t": 1}),
        written({"t": 1}).replace(b',"task":"T[11111111]"', b"") + b"",  # no task before the run record
        written({"t": 1})[:-1],  # cut short
    ]
    return cases


def _typed_fields(value: Any) -> list[tuple[str, type, Any]]:
    """Each field of a dataclass object (``Entry``, ``Input``: slots, no ``__dict__``) with its value's type."""
    return sorted((field.name, type(getattr(value, field.name)), getattr(value, field.name)) for field in fields(value))


@pytest.mark.parametrize("run", [False, True])
def test_a_manifest_decoded_into_its_entries_reads_as_the_general_parse_reads_it(
    monkeypatch: pytest.MonkeyPatch, run: bool
) -> None:
    """msgspec decodes a manifest straight into its entries (``manifest.decoded``) when every field is of the type
    kart writes; what it builds, or the error it raises, is the general parse's for every case, odd ones included."""
    manifest_module = importlib.import_module("kart_core.manifest")

    def parsed(data: bytes) -> Any:
        try:
            found = Manifest._parse(data, run=run)
        except (ValueError, KeyError, TypeError) as exc:
            return type(exc), str(exc)
        typed = [(key, _typed_fields(entry)) for key, entry in found.outputs.items()]
        return found, typed, [_typed_fields(item) for item in found.inputs]

    cases = _manifest_cases()
    decoded = [parsed(data) for data in cases]
    assert sum(manifest_module.decoded(Manifest, data, run) is not None for data in cases[:3]) == 3  # the common case
    stamped = [data for data in cases if b'"stamp":[5,1796276366963463382]' in data]
    assert [manifest_module.decoded(Manifest, data, run).outputs["a/T_1.pkl"].stamp for data in stamped] == [
        (5, 1796276366963463382)
    ]
    # Inputs as kart writes them are decoded by msgspec too (straight into Input objects), a stamp as a tuple.
    kart_inputs = next(data for data in cases if b'"required":true' in data)
    assert manifest_module.decoded(Manifest, kart_inputs, run).inputs[0].stamp == (5, 6)
    monkeypatch.setattr(manifest_module, "decoded", lambda cls, data, run, inputs=True: None)
    assert [parsed(data) for data in cases] == decoded


@pytest.mark.parametrize("run", [False, True])
def test_a_manifest_read_without_its_inputs_is_the_whole_parse_with_none(
    monkeypatch: pytest.MonkeyPatch, run: bool
) -> None:
    """``inputs=False`` (a load: the entry, commit and pending state only) builds no input; everything else is what
    the whole parse reads, by msgspec and by the general parse alike. Inputs that only the whole parse refuses (not
    kart's: the lineage check reads them and finds them so) leave the rest readable; other damage is refused."""
    manifest_module = importlib.import_module("kart_core.manifest")

    def parsed(data: bytes, inputs: bool) -> Any:
        try:
            found = Manifest.from_bytes(data, run=run, inputs=inputs)
        except (ValueError, KeyError, TypeError) as exc:
            return type(exc)
        return replace(found, inputs=()), [(key, _typed_fields(entry)) for key, entry in found.outputs.items()]

    cases = _manifest_cases()
    whole = [parsed(data, True) for data in cases]
    without = [parsed(data, False) for data in cases]
    with_inputs = [data for data in cases if b'"inputs":[{' in data]
    assert with_inputs and all(Manifest.from_bytes(data, run=run, inputs=False).inputs == () for data in with_inputs)
    assert any(Manifest.from_bytes(data, run=run).inputs for data in with_inputs)
    for data, all_of_it, part in zip(cases, whole, without, strict=True):
        if b'"inputs":' in data and isinstance(all_of_it, type):
            continue  # refused for its inputs, or for something else: the next assertion tells which
        assert part == all_of_it, data
    # The inputs the whole parse refuses are the only ones read past.
    refused_for_inputs = [
        data for data, all_of_it, part in zip(cases, whole, without, strict=True) if all_of_it != part
    ]
    assert refused_for_inputs and all(b'"inputs":' in data for data in refused_for_inputs)
    monkeypatch.setattr(manifest_module, "decoded", lambda cls, data, run, inputs=True: None)
    assert [parsed(data, False) for data in cases] == without  # the general parse reads the same
    # Not kept among the parses by bytes: a reader of the inputs then gets them.
    kart_inputs = next(data for data in cases if b'"required":true' in data)
    assert Manifest.from_bytes(kart_inputs, run=False, inputs=False).inputs == ()
    assert Manifest.from_bytes(kart_inputs, run=False).inputs


def test_a_fan_in_root_loads_from_its_manifest_read_without_inputs(workspace: str) -> None:
    """A root that records its requirements' outputs as inputs loads through its entry; the manifest it loads from
    is read without the inputs, which the file keeps for the lineage check."""
    from kart_core.manifest import read_manifest

    root = _FanRoot(width=5, workspace_directory=workspace)
    assert kart_core.build(root, reset_register=False) == 10
    record = root.output().record
    storage = storage_for(record.manifest)
    full = read_manifest(storage, record.manifest, record.manifest_name, None)
    part = read_manifest(storage, record.manifest, record.manifest_name, None, inputs=False)
    assert full is not None and part is not None
    assert len(full.inputs) == 5 and all(item.required for item in full.inputs) and part.inputs == ()
    assert replace(full, inputs=()) == part
    assert kart_core.build(root, reset_register=False) == 10  # cached: loads again


class _FanLeaf(kart_core.TaskOnKart[int]):
    """One of ``_FanRoot``'s leaves."""

    i = luigi.IntParameter()

    def run(self) -> None:
        self.dump(self.i)


class _FanRoot(kart_core.TaskOnKart[int]):
    """Requires ``width`` leaves and reads none of them through kart (each is recorded as a required input)."""

    width = luigi.IntParameter()

    def requires(self) -> Any:
        return [_FanLeaf(i=i, workspace_directory=self.workspace_directory) for i in range(self.width)]

    def run(self) -> None:
        self.dump(sum(range(self.width)))
