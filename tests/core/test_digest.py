"""Digests that decide whether a Kedro node reruns: equal content, equal digest; any change, a new one."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.dataset
import pyarrow.parquet
import pytest

from kart_core.digest import digest
from kart_core.errors import UndigestableError


def test_dict_order_matters_set_order_does_not() -> None:
    # {age, income} and {income, age} are different column orders for a node (kart's DictParameter ids differ too).
    assert digest({"age": "int", "income": "float"}) != digest({"income": "float", "age": "int"})
    assert digest({"a": 1, "b": [1, 2]}) == digest({"a": 1, "b": [1, 2]})
    assert digest({"x", "y", "z"}) == digest({"z", "y", "x"})
    assert digest([1, 2]) != digest([2, 1])
    assert digest({"a": {"b": 1}}) != digest({"a": {"b": 2}})


def test_types_are_part_of_the_digest() -> None:
    assert digest(1) != digest(1.0) != digest("1")
    assert digest([1, 2]) != digest((1, 2))


def test_set_digests_are_stable_across_hash_seeds() -> None:
    code = "from kart_core.digest import digest; print(digest({'alpha', 'beta', 'gamma', 'delta'}))"
    other_seed = "1" if os.environ.get("PYTHONHASHSEED") != "1" else "2"
    env = {**os.environ, "PYTHONHASHSEED": other_seed}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.split()[-1] == digest({"alpha", "beta", "gamma", "delta"})


def test_dataframes_by_values_labels_and_dtypes() -> None:
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    assert digest(frame) == digest(frame.copy())
    assert digest(frame) != digest(frame.assign(a=[1, 3]))
    assert digest(frame) != digest(frame.rename(columns={"a": "c"}))
    assert digest(frame) != digest(frame.astype({"a": "float64"}))
    assert digest(frame) != digest(frame.set_axis([5, 6]))
    assert digest(pd.DataFrame({"a": [[1], [2]]})) != digest(pd.DataFrame({"a": [[1], [3]]}))  # unhashable cells


def test_arrays_by_values_dtype_and_shape() -> None:
    array = np.arange(6)
    assert digest(array) == digest(np.arange(6))
    assert digest(array) != digest(array.reshape(2, 3))
    assert digest(array) != digest(array.astype("int32"))


def test_arrays_by_memory_order_field_names_and_mask() -> None:
    square = np.arange(4.0).reshape(2, 2)
    assert digest(square) != digest(np.asfortranarray(square))
    assert digest(square) == digest(square.copy())
    fields = np.zeros(2, dtype=[("a", "i4"), ("b", "f8")])
    assert digest(fields) != digest(fields.astype([("x", "i4"), ("b", "f8")]))  # same bytes, other field name
    masked = np.ma.array([1, 2], mask=[False, True])
    assert digest(masked) != digest(np.ma.array([1, 2], mask=[True, False]))  # same data bytes, other mask


def test_dataframe_index_and_column_names_count() -> None:
    frame = pd.DataFrame({"a": [1, 2]})
    assert digest(frame) != digest(frame.rename_axis("row"))
    assert digest(frame) != digest(frame.rename_axis(columns="feature"))
    assert digest(frame.rename_axis("row")) == digest(frame.rename_axis("row"))
    levels = pd.MultiIndex.from_tuples([(1, "a"), (2, "b")], names=["x", "y"])
    multi = pd.DataFrame({"v": [1, 2]}, index=levels)
    assert digest(multi) != digest(multi.rename_axis(["x", "z"]))
    assert digest(levels) != digest(levels.rename(["x", "z"]))
    assert digest(pd.Series([1], name="a")) != digest(pd.Series([1], name="b"))
    assert digest(pd.Series([1], name="a")) != digest(pd.Series([1], name="a").rename_axis("row"))


def test_categorical_category_order_and_ordered_flag_count() -> None:
    frame = pd.DataFrame({"c": pd.Categorical(["a", "b"], categories=["a", "b"])})
    reordered = frame.assign(c=frame["c"].cat.reorder_categories(["b", "a"]))
    assert digest(frame) != digest(reordered)
    assert digest(frame["c"]) != digest(reordered["c"])
    assert digest(frame) != digest(frame.assign(c=frame["c"].cat.as_ordered()))
    assert digest(frame) == digest(frame.copy())


def test_dataframe_attrs_and_every_column_dtype_count() -> None:
    frame = pd.DataFrame({"a": [1, 2]})
    tagged = frame.copy()
    tagged.attrs["unit"] = "m"
    assert digest(frame) != digest(tagged)
    wide = pd.DataFrame({f"c{index}": [1] for index in range(100)})  # str(dtypes) would elide the middle columns
    assert digest(wide) != digest(wide.astype({"c50": "int32"}))


def test_polars_frames_by_column_order_dtypes_and_values() -> None:
    frame = pl.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    assert digest(frame) == digest(pl.DataFrame({"a": [1, 2], "b": ["x", "y"]}))
    assert digest(frame) != digest(frame.select("b", "a"))
    assert digest(frame) != digest(frame.cast({"a": pl.Int32}))
    assert digest(frame) != digest(frame.with_columns(a=pl.Series([1, 3])))


def test_lazy_and_streaming_values_cannot_be_digested(tmp_path: Path) -> None:
    csv = tmp_path / "a.csv"
    csv.write_text("x\n1\n")
    pyarrow.parquet.write_table(pa.table({"x": [1]}), tmp_path / "a.parquet")
    with open(csv, "rb") as handle:
        cases = {
            "a polars LazyFrame": pl.scan_csv(csv),  # its pickle is the plan "read a.csv", not the rows
            "a pyarrow Dataset": pyarrow.dataset.dataset(tmp_path / "a.parquet"),
            "a generator": (value for value in [1]),
            "an iterator (list_iterator)": iter([1]),
            "an open file (BufferedReader)": handle,
            "an open file (BytesIO)": io.BytesIO(b"1"),
            "a callable (len)": len,
            "a callable (test_lazy_and_streaming_values_cannot_be_digested.<locals>.<lambda>)": lambda: 1,
        }
        for kind, value in cases.items():
            with pytest.raises(UndigestableError) as raised:
                digest(value)
            assert raised.value.kind == kind
            assert raised.value.path == []


def test_an_undigestable_value_inside_containers_is_located() -> None:
    with pytest.raises(UndigestableError, match=r"cannot digest a callable \(print\) at \['a'\]\['b'\]\[1\]"):
        digest({"a": {"b": [1, print]}})


def test_an_unpicklable_value_cannot_be_digested() -> None:
    with pytest.raises(UndigestableError, match=r"a lock that cannot be pickled \(TypeError: .*lock"):
        digest({"lock": threading.Lock()})
