"""Format-specific behaviour: gokart's files load, fast defaults, polars selection, errors, plugins."""

from __future__ import annotations

import importlib.util
import io
import os
import pickle
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import fork_server
import numpy as np
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest
from fork_server import GOKART

import kart_core
from kart_core.errors import DumpError, UnknownFormatError, UnsupportedObjectError
from kart_core.file_processor import (
    CsvFileProcessor,
    FeatherFileProcessor,
    PickleFileProcessor,
    default_registry,
    make_file_processor,
)
from kart_core.target import make_target

if importlib.util.find_spec("gokart") is None:  # found without importing it (see below)
    pytest.skip("gokart 1.12.2 (dev extra) writes and reads the files these tests compare", allow_module_level=True)


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {"i": [3, 1, 2], "f": [0.25, 0.5, 0.75], "s": ["x", "y", "z"], "t": pd.date_range("2024-01-01", periods=3)}
    )


# --- files written by gokart 1.12.2 load in kart, and the other way round -----------------
# gokart is test-only and never imported in the pytest process (it registers task classes in luigi's one
# registry under the names kart's own compat classes use). One subprocess, `_GOKART_SIDE`, dumps with
# gokart every object the tests below hand it and loads with gokart every file kart wrote for them.

_GOKART_SIDE = """
import pickle
import sys
from pathlib import Path

import gokart.file_processor
import gokart.target

folder = Path(sys.argv[1])
asked = pickle.loads((folder / "asked.pkl").read_bytes())
for name, value, dataframe_type in asked["dump"]:
    path = str(folder / name)
    if dataframe_type is None:
        gokart.target.make_target(path).dump(value)
    else:
        processor = gokart.file_processor.make_file_processor(path, dataframe_type=dataframe_type)
        gokart.target.make_target(path, processor=processor).dump(value)
# A lambda only gokart's dill can write (plain pickle refuses it).
gokart.target.make_target(str(folder / "fn.pkl")).dump({"f": lambda x: x * 3})
loaded = {}
for name in asked["load"]:
    try:
        value = gokart.target.make_target(str(folder / name)).load()
    except Exception as exc:  # a file gokart cannot load: which exception
        loaded[name] = ("raised", type(exc).__name__)
        continue
    # A function kart pickled comes back as what it returns for 1 (the pytest process has no gokart to load it).
    loaded[name] = {**value, "f": value["f"](1)} if isinstance(value, dict) else value
(folder / "loaded.pkl").write_bytes(pickle.dumps(loaded))
"""

_DATAFRAME_EXTENSIONS = (".pkl", ".csv", ".tsv", ".json", ".ndjson", ".parquet", ".feather")
_SMALL_VALUES = {".txt": ["a", "b"], ".gz": ["c", "d"], ".npz": np.arange(4.0), ".png": b"\x89PNG-bytes"}
_POLARS_EXTENSIONS = (".csv", ".json", ".ndjson", ".parquet", ".feather")


def _gokart_frame(extension: str) -> pd.DataFrame:
    """The frame gokart writes to a ``by_gokart<extension>`` file."""
    frame = _frame().drop(columns=["t"]) if extension in (".csv", ".tsv", ".json", ".ndjson") else _frame()
    return frame.set_index(pd.Index([7, 8, 9], name="key")) if extension in (".pkl", ".feather") else frame


def _polars_frame() -> pl.DataFrame:
    return pl.DataFrame({"a": [1, 2], "b": ["u", "v"]})


def _indexed_frame() -> pd.DataFrame:
    return _frame().set_index(pd.Index([4, 5, 6], name="key"))


def _closure_adding(offset: int) -> Callable[[int], int]:
    """``lambda x: x + offset``, a closure (plain pickle refuses it, so kart falls back to dill).

    Made in a namespace of its own: a function of this module would be pickled with a reference to
    this module, which gokart's process (that must not import kart's tests) cannot import.
    """
    namespace: dict[str, Any] = {}
    exec("def adding(offset):\n    return lambda x: x + offset\n", namespace)
    return cast(Callable[[int], int], namespace["adding"](offset))


@pytest.fixture(scope="module")
def gokart_side(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    """The folder with the files gokart wrote, and what gokart loaded from kart's files (``{file name: value}``)."""
    folder = tmp_path_factory.mktemp("gokart-side")
    make_target(str(folder / "kart.pkl")).dump({"frame": _frame(), "f": _closure_adding(10)})
    make_target(str(folder / "kart.feather")).dump(_indexed_frame())
    make_target(str(folder / "range.feather")).dump(_frame())  # a default RangeIndex: kart does not store it
    make_target(str(folder / "multi.feather")).dump(_multi_column_frame())
    dump = [(f"by_gokart{e}", _gokart_frame(e), None) for e in _DATAFRAME_EXTENSIONS]
    dump += [("by_gokart_multi.feather", _multi_column_frame(), None)]
    dump += [(f"by_gokart{e}", value, None) for e, value in _SMALL_VALUES.items()]
    dump += [(f"by_gokart_polars{e}", _polars_frame(), "polars") for e in _POLARS_EXTENSIONS]
    asked = {"dump": dump, "load": ["kart.pkl", "kart.feather", "range.feather", "multi.feather"]}
    (folder / "asked.pkl").write_bytes(pickle.dumps(asked))
    environment = {key: value for key, value in os.environ.items() if key != "LUIGI_CONFIG_PATH"}
    # A fork of a server that imported gokart once: still a process of its own.
    done = fork_server.run(["-c", _GOKART_SIDE, str(folder)], folder, environment, 240, GOKART)
    assert done.returncode == 0, f"the gokart subprocess failed:\n{done.stderr[-4000:]}"
    return folder, pickle.loads((folder / "loaded.pkl").read_bytes())


@pytest.mark.parametrize("extension", _DATAFRAME_EXTENSIONS)
def test_gokart_written_dataframes_load(gokart_side: tuple[Path, dict[str, object]], extension: str) -> None:
    loaded = make_target(str(gokart_side[0] / f"by_gokart{extension}")).load()
    frame = _gokart_frame(extension)
    pd.testing.assert_frame_equal(loaded, frame, check_dtype=extension not in (".json", ".ndjson"))


# gokart 1.12.2 cannot dump .xml itself (its writer hands bytes to a text file), so no .xml here.
@pytest.mark.parametrize("extension", list(_SMALL_VALUES))
def test_gokart_written_small_formats_load(gokart_side: tuple[Path, dict[str, object]], extension: str) -> None:
    loaded = make_target(str(gokart_side[0] / f"by_gokart{extension}")).load()
    if extension == ".npz":
        np.testing.assert_array_equal(loaded, _SMALL_VALUES[extension])
    else:
        assert loaded == _SMALL_VALUES[extension]


@pytest.mark.parametrize("extension", _POLARS_EXTENSIONS)
def test_gokart_written_polars_frames_load(gokart_side: tuple[Path, dict[str, object]], extension: str) -> None:
    path = str(gokart_side[0] / f"by_gokart_polars{extension}")
    assert make_target(path, dataframe_type="polars").load().equals(_polars_frame())


def test_gokart_dill_pickle_of_a_lambda_loads(gokart_side: tuple[Path, dict[str, object]]) -> None:
    assert make_target(str(gokart_side[0] / "fn.pkl")).load()["f"](2) == 6


def test_kart_pickles_load_in_gokart(gokart_side: tuple[Path, dict[str, object]]) -> None:
    loaded = gokart_side[1]["kart.pkl"]
    assert isinstance(loaded, dict)
    pd.testing.assert_frame_equal(loaded["frame"], _frame())
    assert loaded["f"] == 11  # kart's pickled closure, called by gokart's process with 1


def test_kart_feather_loads_in_gokart_with_its_index(gokart_side: tuple[Path, dict[str, object]]) -> None:
    pd.testing.assert_frame_equal(gokart_side[1]["kart.feather"], _indexed_frame())


# --- fast defaults ---------------------------------------------------------------------------


def test_parquet_is_written_with_snappy_not_gzip(tmp_path: Path) -> None:
    path = str(tmp_path / "fast.parquet")
    make_target(path).dump(_frame())
    metadata = pq.ParquetFile(path).metadata
    assert metadata.row_group(0).column(0).compression == "SNAPPY"


def test_pickle_streams_protocol_5_with_out_of_band_free_layout() -> None:
    buffer = io.BytesIO()
    PickleFileProcessor().dump(_frame(), buffer)
    assert buffer.getvalue()[:2] == b"\x80\x05"
    buffer.seek(0)
    pd.testing.assert_frame_equal(pickle.load(buffer), _frame())


def test_pickle_falls_back_to_dill_for_closures() -> None:
    buffer = io.BytesIO()
    factor = 4
    PickleFileProcessor().dump(lambda x: x * factor, buffer)
    buffer.seek(0)
    assert PickleFileProcessor().load(buffer)(2) == 8


def _main_module(code: str) -> Any:
    import types

    module = types.ModuleType("__main__")
    exec(compile(code, "<main>", "exec"), module.__dict__)
    return module


def _dumped_function_loads_under_another_main(name: str, monkeypatch: pytest.MonkeyPatch) -> int:
    buffer = io.BytesIO()
    PickleFileProcessor().dump(sys.modules["__main__"].__dict__[name], buffer)
    buffer.seek(0)
    with monkeypatch.context() as other:
        other.setitem(sys.modules, "__main__", _main_module(""))  # another script: by reference it would not load
        return cast(int, PickleFileProcessor().load(buffer)(2))


def test_a_function_a_main_module_defines_is_pickled_by_value_whenever_it_appears(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A ``__main__`` found defining code is remembered; one found defining none is asked again at the next dump."""
    first = _main_module("def triple(x):\n    return 3 * x\n")
    monkeypatch.setitem(sys.modules, "__main__", first)
    assert _dumped_function_loads_under_another_main("triple", monkeypatch) == 6
    assert _dumped_function_loads_under_another_main("triple", monkeypatch) == 6
    second = _main_module("value = 1\n")  # another __main__ (a new interpreter state), defining no code yet
    monkeypatch.setitem(sys.modules, "__main__", second)
    buffer = io.BytesIO()
    PickleFileProcessor().dump([1, 2], buffer)
    exec(compile("def double(x):\n    return 2 * x\n", "<main>", "exec"), second.__dict__)  # defined afterwards
    assert _dumped_function_loads_under_another_main("double", monkeypatch) == 4


def test_a_pickle_processor_keeps_nothing_of_its_own_after_a_dump(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every target holds one: no __dict__ and no answer about ``__main__`` per instance (the class keeps that)."""
    monkeypatch.setattr(PickleFileProcessor, "_main_with_code", 0)  # put back afterwards
    main = _main_module("def quadruple(x):\n    return 4 * x\n")
    monkeypatch.setitem(sys.modules, "__main__", main)
    processor = PickleFileProcessor()
    processor.dump([1, 2], io.BytesIO())
    assert not hasattr(processor, "__dict__")
    assert PickleFileProcessor._main_with_code == id(main)  # found once for the process, not kept per processor
    assert _dumped_function_loads_under_another_main("quadruple", monkeypatch) == 8  # by value, as before


def test_feather_without_index_storage_keeps_plain_columns(tmp_path: Path) -> None:
    path = str(tmp_path / "plain.feather")
    target = make_target(path, store_index_in_feather=False)
    assert isinstance(target.processor, FeatherFileProcessor)
    target.dump(_frame())
    assert list(pd.read_feather(path).columns) == ["i", "f", "s", "t"]


# --- choice of processor -----------------------------------------------------------------------


def test_unknown_extension_names_task_path_and_known_formats() -> None:
    with pytest.raises(UnknownFormatError) as info:
        make_target("ws/report.xlsx", unique_id="abc", owner="Report[ab12cd34]")
    message = str(info.value)
    assert "'.xlsx'" in message and "Report[ab12cd34]" in message and "ws/report_abc.xlsx" in message
    assert ".parquet" in message and "kart_file_processors" in message


def test_every_gokart_extension_has_a_processor() -> None:
    gokart_extensions = {".txt", ".ini", ".csv", ".tsv", ".pkl", ".gz", ".json", ".ndjson", ".xml", ".npz"}
    gokart_extensions |= {".parquet", ".feather", ".png", ".jpg"}
    assert gokart_extensions <= set(default_registry().extensions())


def test_polars_task_gets_polars_frames_end_to_end(workspace: str) -> None:
    class MakePolars(kart_core.TaskOnKart[pl.DataFrame]):
        def output(self):  # type: ignore[no-untyped-def]
            return self.make_target("polars/frame.parquet")

        def run(self) -> None:
            self.dump(pl.DataFrame({"a": [1, 2, 3]}))

    class MakeLazy(kart_core.TaskOnKart[pl.LazyFrame]):
        def output(self):  # type: ignore[no-untyped-def]
            return self.make_target("polars/lazy.csv")

        def run(self) -> None:
            self.dump(pl.DataFrame({"b": [4, 5]}).lazy())

    eager = kart_core.build(MakePolars(workspace_directory=workspace), reset_register=False)
    lazy = kart_core.build(MakeLazy(workspace_directory=workspace), reset_register=False)
    assert isinstance(eager, pl.DataFrame) and eager["a"].to_list() == [1, 2, 3]
    assert isinstance(lazy, pl.LazyFrame) and lazy.collect()["b"].to_list() == [4, 5]


def test_make_file_processor_honours_dataframe_type() -> None:
    assert type(make_file_processor("x.feather", dataframe_type="polars")).__name__ == "PolarsFeatherFileProcessor"
    assert type(make_file_processor("x.feather")).__name__ == "FeatherFileProcessor"


# --- third-party formats through the "kart" entry point group ---------------------------------

_PLUGIN = '''
"""A tiny third-party format: a dict as key=value lines."""
from kart_core.file_processor import FileProcessor
from kart_core.hooks import hookimpl


class KeyValueProcessor(FileProcessor):
    extensions = (".kv",)
    binary = True

    def load(self, file):
        lines = file.read().decode().splitlines()
        return dict(line.split("=", 1) for line in lines if line)

    def dump(self, obj, file):
        file.write("".join(f"{k}={v}\\n" for k, v in obj.items()).encode())


@hookimpl
def kart_file_processors():
    return [KeyValueProcessor]
'''

_PIPELINE = """
import kart_core


class WriteSettings(kart_core.TaskOnKart):
    def output(self):
        return self.make_target("settings/values.kv")

    def run(self):
        self.dump({"alpha": "1", "beta": "two"})


class ReadSettings(kart_core.TaskOnKart):
    def requires(self):
        return WriteSettings(workspace_directory=self.workspace_directory)

    def run(self):
        values = self.load()
        self.dump(sorted(values.items()))


task = ReadSettings(workspace_directory="ws")
print(kart_core.build(task))
print(type(WriteSettings(workspace_directory="ws").output().processor).__name__)
"""


def _install_plugin(site: Path) -> None:
    """A package plus the .dist-info that importlib.metadata reads entry points from (no pip needed)."""
    (site / "kart_kv_plugin.py").write_text(_PLUGIN)
    info = site / "kart_kv_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kart-kv-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[kart]\nkv = kart_kv_plugin\n")


def test_plugin_adds_a_format_used_end_to_end(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    _install_plugin(site)
    (tmp_path / "pipeline.py").write_text(textwrap.dedent(_PIPELINE))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "pipeline.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[('alpha', '1'), ('beta', 'two')]", "KeyValueProcessor"]
    written = list((tmp_path / "ws" / "settings").glob("values_*.kv"))
    assert len(written) == 1 and written[0].read_text() == "alpha=1\nbeta=two\n"


def test_without_the_plugin_the_extension_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnknownFormatError, match="'.kv'"):
        make_target(str(tmp_path / "values.kv"))


def test_feather_skips_a_default_range_index_and_gokart_still_reads_it(
    tmp_path: Path, gokart_side: tuple[Path, dict[str, object]]
) -> None:
    # gokart_side's kart wrote _frame() (a default RangeIndex) to range.feather, and gokart read it back.
    assert list(pd.read_feather(gokart_side[0] / "range.feather").columns) == ["i", "f", "s", "t"]
    pd.testing.assert_frame_equal(gokart_side[1]["range.feather"], _frame())
    path = str(tmp_path / "range.feather")
    shifted = _frame().set_index(pd.RangeIndex(5, 8))
    make_target(path).dump(shifted)
    pd.testing.assert_frame_equal(make_target(path).load(), shifted, check_index_type=False)


def test_feather_of_int_column_names_written_before_loads_with_gokart_names(tmp_path: Path) -> None:
    """A file kart wrote before it added gokart's index column for non-string names (``pd.DataFrame(array)``)
    holds int names; it loads with the string names gokart's own file of that frame gives ('0', '1')."""
    path = tmp_path / "old.feather"
    pd.DataFrame(np.array([[1, 2], [3, 4]])).rename_axis(columns="cn").to_feather(path)
    assert list(pd.read_feather(path).columns) == [0, 1]
    loaded = make_target(str(path)).load()
    assert list(loaded.columns) == ["0", "1"] and loaded.columns.name == "cn"
    assert loaded.to_numpy().tolist() == [[1, 2], [3, 4]] and list(loaded.index) == [0, 1]
    assert list(make_target(str(path), store_index_in_feather=False).load().columns) == [0, 1]


def _multi_column_frame() -> pd.DataFrame:
    columns = pd.MultiIndex.from_tuples([("a", "x"), ("a", "y"), ("b", "x")], names=["group", "field"])
    return pd.DataFrame([[1, 2.5, "s"], [3, 4.5, "t"]], columns=columns, index=pd.Index([7, 8], name="key"))


def test_feather_of_multiindex_columns_loads_its_frame(
    tmp_path: Path, gokart_side: tuple[Path, dict[str, object]]
) -> None:
    """MultiIndex columns: the stored index column is the tuple ``('__feather_gokart_index__key', '')`` (what pandas
    makes of the name gokart and kart add); it becomes the index again and the names stay tuples. Before, kart
    gave the names as strings with that column among them (attacker at19 J6); gokart 1.12.2 writes the same file
    and fails to load it, kart's too (AttributeError: 'tuple' object has no attribute 'startswith')."""
    frame = _multi_column_frame()
    pd.testing.assert_frame_equal(make_target(str(gokart_side[0] / "by_gokart_multi.feather")).load(), frame)
    pd.testing.assert_frame_equal(make_target(str(gokart_side[0] / "multi.feather")).load(), frame)  # kart's
    assert gokart_side[1]["multi.feather"] == ("raised", "AttributeError")
    path = str(tmp_path / "default_index.feather")
    plain = frame.reset_index(drop=True)
    make_target(path).dump(plain)
    pd.testing.assert_frame_equal(make_target(path).load(), plain, check_index_type=False)
    make_target(str(tmp_path / "kept.feather"), store_index_in_feather=False).dump(plain)
    pd.testing.assert_frame_equal(make_target(str(tmp_path / "kept.feather")).load(), plain, check_index_type=False)


@pytest.mark.parametrize(
    ("columns", "named", "said"),
    [
        (pd.MultiIndex.from_tuples([(1, 10), (1, 20)]), "level 0: 1", "would load as their str()"),
        (
            pd.MultiIndex.from_tuples([("a", "x", 1), ("b", "y", 2)], names=["L0", "L1", "L2"]),
            "level 2 ('L2'): 1, 2",
            "set_levels(df.columns.levels[2].astype(str), level=2)",
        ),
        (
            pd.MultiIndex.from_tuples([("a", 1.5), ("b", pd.Timestamp("2020-01-01"))]),
            "level 1: 1.5, Timestamp('2020-01-01 00:00:00')",
            "would load as their str()",
        ),
        (pd.MultiIndex.from_tuples([("a", None), ("a", "y")]), "level 1: nan", "cannot hold a missing label"),
    ],
)
@pytest.mark.parametrize("store_index", [True, False])
def test_feather_refuses_multiindex_columns_with_labels_that_are_not_strings(
    tmp_path: Path, columns: pd.MultiIndex, named: str, said: str, store_index: bool
) -> None:
    """Attacker at20 K11: Arrow stores column names as strings, so such labels loaded as their str() silently, and a
    missing one made a file no load could read (with advice that could not help). Refused at the dump, naming the
    level; nothing is written."""
    path = str(tmp_path / "multi.feather")
    with pytest.raises(UnsupportedObjectError) as caught:
        make_target(path, store_index_in_feather=store_index).dump(pd.DataFrame([[1, 2]], columns=columns))
    assert isinstance(caught.value, DumpError)
    assert f"MultiIndex columns hold values that are not strings in {named}" in str(caught.value)
    assert said in str(caught.value) and ".pkl" in str(caught.value)
    assert not os.path.exists(path)
    pickled = str(tmp_path / "multi.pkl")  # what the message offers keeps the labels
    make_target(pickled).dump(pd.DataFrame([[1, 2]], columns=columns))
    pd.testing.assert_index_equal(make_target(pickled).load().columns, columns)


def test_feather_keeps_a_column_named_like_the_index_column(tmp_path: Path) -> None:
    """A column named ``__feather_gokart_index__`` of a frame with the default index was taken for the stored index at
    the load (the column gone, the index replaced by its values), silently (found with attacker at20's K11 script).
    The frame's own index column now follows it, as gokart writes every frame's, and the load takes that one."""
    frame = pd.DataFrame({"__feather_gokart_index__": [5, 6], "v": [1, 2]})
    path = str(tmp_path / "clash.feather")
    make_target(path).dump(frame)
    pd.testing.assert_frame_equal(make_target(path).load(), frame, check_index_type=False)


def test_local_files_are_read_by_path(tmp_path: Path) -> None:
    from kart_core.file_processor.base import local_source

    path = tmp_path / "x.bin"
    path.write_bytes(b"x")
    with open(path, "rb") as file:
        assert local_source(file) == str(path)
    buffer = io.BytesIO(b"x")
    assert local_source(buffer) is buffer


@pytest.mark.parametrize("dataframe_type", ["pandas", "polars"])
@pytest.mark.parametrize("extension", [".csv", ".tsv", ".json", ".ndjson"])
def test_empty_file_loads_as_an_empty_frame(tmp_path: Path, extension: str, dataframe_type: str) -> None:
    path = tmp_path / f"empty{extension}"
    path.write_bytes(b"")
    loaded = make_target(str(path), dataframe_type=dataframe_type).load()  # type: ignore[arg-type]
    assert len(loaded) == 0 and len(loaded.columns) == 0


def test_builtin_formats_are_declared_with_their_classes_extensions() -> None:
    from kart_core.file_processor import builtin

    declared = {(d.module, d.name): d.extensions for d in builtin.BUILTIN}
    assert {key: getattr(__import__(key[0], fromlist=[key[1]]), key[1]).extensions for key in declared} == declared
    assert len(declared) == 10 and isinstance(make_file_processor("x.csv"), CsvFileProcessor)


def test_a_format_module_loads_with_its_first_file(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import sys, kart_core
        class T(kart_core.TaskOnKart):
            pass
        formats = lambda: sorted(m[25:] for m in sys.modules if m.startswith("kart_core.file_processor.") and "format" in m)
        print(formats(), "xml.etree" in sys.modules)
        kart_core.target.make_target("a.xml", processor=None)
        print(formats(), "xml.etree" in sys.modules)
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "['pickle_format'] False",  # TargetOnKart's zipped models pickle their load function
        "['misc_formats', 'pickle_format'] True",
    ]


class _SeriesToJson(kart_core.TaskOnKart[Any]):
    def output(self):  # type: ignore[override]
        return self.make_target("x/s.json")

    def run(self) -> None:
        self.dump(pd.Series([1, 2]))


def test_a_series_dumped_to_json_is_refused_not_committed_unloadable(tmp_path: Path) -> None:
    # attacker at24 F2: the dump passed, the task was complete, and every load failed (the error blamed damage).
    with pytest.raises(UnsupportedObjectError, match=r"pandas.Series dumped to a .json target cannot be loaded back"):
        make_target(str(tmp_path / "s.json")).dump(pd.Series([1, 2]))
    task = _SeriesToJson(workspace_directory=str(tmp_path / "ws"))
    with pytest.raises(kart_core.GokartBuildError) as raised:
        kart_core.build(task, reset_register=False)
    assert isinstance(raised.value.__cause__, UnsupportedObjectError)
    assert not task.complete()
    # The frame it says to dump loads back; .ndjson (one value per line) still takes a Series.
    target = make_target(str(tmp_path / "f.json"))
    target.dump(pd.Series([1, 2], name="n").to_frame())
    assert target.load()["n"].tolist() == [1, 2]
    lines = make_target(str(tmp_path / "s.ndjson"))
    lines.dump(pd.Series([1, 2]))
    assert lines.load()[0].tolist() == [1, 2]
