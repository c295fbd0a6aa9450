"""Digests that decide whether a Kedro node reruns: equal content, equal digest; any change, a new one."""

from __future__ import annotations

import functools
import io
import os
import subprocess
import sys
import threading
from hashlib import md5
from pathlib import Path
from typing import Any

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


def _object(values: list[object]) -> pd.Series:
    return pd.Series(values, dtype=object)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ([1, 2], ["1", "2"]),  # df[df.id == 1] tells them apart; hashing alone reads both as text
        ([1, 1], [1, 1.0]),  # equal under ==, grouped together by hash_pandas_object
        ([True, 1], [1, 1]),
        ([0.0, 0.0], [0.0, -0.0]),
        (["a", None], ["a", np.nan]),  # both missing to pandas, not to `is None`
        (["a", None], ["a", pd.NA]),
        ([b"1"], ["1"]),
        ([(1,), "x"], [(1.0,), "x"]),
    ],
)
def test_object_columns_count_each_values_type_and_exact_value(one: list[object], other: list[object]) -> None:
    assert digest(pd.DataFrame({"id": _object(one)})) != digest(pd.DataFrame({"id": _object(other)}))
    assert digest(_object(one)) != digest(_object(other))
    assert digest(pd.Index(one, dtype=object)) != digest(pd.Index(other, dtype=object))
    assert digest(pd.Series([0] * len(one), index=pd.Index(one, dtype=object))) != digest(
        pd.Series([0] * len(one), index=pd.Index(other, dtype=object))
    )
    assert digest(pd.DataFrame({"id": _object(one)})) == digest(pd.DataFrame({"id": _object(list(one))}))


def test_multiindex_object_levels_count_each_values_type() -> None:
    # (A MultiIndex level keeps one of the values equal under ==: [1, 1.0] is stored as [1, 1].)
    one = pd.MultiIndex.from_arrays([pd.Index([1, 2], dtype=object), ["a", "b"]])
    other = pd.MultiIndex.from_arrays([pd.Index(["1", "2"], dtype=object), ["a", "b"]])
    assert digest(pd.Series(0, index=one)) != digest(pd.Series(0, index=other))
    assert digest(one) != digest(other)


def test_negative_zero_counts_in_float_columns_series_and_indexes() -> None:
    assert digest(pd.Series([1.0, 0.0])) != digest(pd.Series([1.0, -0.0]))  # 1 / x: inf against -inf
    assert digest(pd.DataFrame({"x": [0.0]})) != digest(pd.DataFrame({"x": [-0.0]}))
    assert digest(pd.Index([0.0])) != digest(pd.Index([-0.0]))
    assert digest(pd.Series([0j])) != digest(pd.Series([complex(0.0, -0.0)]))


def test_categories_count_each_values_type() -> None:
    assert digest(pd.Series(pd.Categorical([1, "a"]))) != digest(pd.Series(pd.Categorical(["1", "a"])))


def test_string_columns_digest_as_before_so_caches_keyed_by_them_stay() -> None:
    frame = pd.DataFrame({"name": ["ann", "bob"], "n": [1.5, 2.0]}, index=pd.Index(["x", "y"], dtype=object))
    frame = frame.astype({"name": object})
    # The digest of this frame before object columns counted their types (kart 2026-11-30, b5bdfe1).
    assert digest(frame) == "0932c9ff8c0490a3ac918de281292d41"


def test_object_column_digests_are_stable_across_processes_and_hash_seeds() -> None:
    code = (
        "import pandas as pd, numpy as np; from kart_core.digest import digest; "
        "print(digest(pd.DataFrame({'a': pd.Series([1, '1', None, np.nan, 2.5, (1, 'x'), b'b'], dtype=object)})))"
    )
    outputs = set()
    for seed in ("0", "1", "77"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": os.pathsep.join(sys.path)}
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        outputs.add(done.stdout.strip())
    assert len(outputs) == 1


def test_lists_in_an_object_column_are_still_digested_by_their_pickle() -> None:
    assert digest(pd.DataFrame({"x": _object([[1], [2]])})) != digest(pd.DataFrame({"x": _object([[1], [3]])}))


class _Named:
    """A value whose str() shows its name only."""

    def __init__(self, name: str, size: int) -> None:
        self.name, self.size = name, size

    def __str__(self) -> str:
        return self.name


def test_object_values_whose_text_may_lose_data_are_digested_by_their_pickle() -> None:
    assert digest(_object([_Named("a", 1), 2])) != digest(_object([_Named("a", 2), 2]))
    big, changed = np.zeros(2000), np.zeros(2000)
    changed[1000] = 1.0  # str() shows "[0. 0. 0. ... 0. 0. 0.]" for both
    assert digest(pd.DataFrame({"x": _object([big, 1])})) != digest(pd.DataFrame({"x": _object([changed, 1])}))


class _Scorer:
    """A fitted model that is called on data (as a torch module is)."""

    def __init__(self, weight: float) -> None:
        self.weight = weight

    def __call__(self, value: float) -> float:
        return value * self.weight


def test_a_callable_object_counts_by_its_state_and_names_its_class() -> None:
    """Before: "a callable (_Scorer)" was undigestable, as functions are (they still are: pickled by name)."""
    assert digest(_Scorer(2.0)) == digest(_Scorer(2.0)) != digest(_Scorer(3.0))
    code: set[Any] = set()
    assert digest({"model": _Scorer(2.0), "n": [1]}, code) == digest({"model": _Scorer(2.0), "n": [1]})
    assert code == {_Scorer}
    cases = {"_Scorer": _Scorer, "_Scorer.__call__": _Scorer(2.0).__call__, "partial": functools.partial(_Scorer, 2)}
    for name, value in cases.items():
        with pytest.raises(UndigestableError) as raised:
            digest(value)
        assert raised.value.kind == f"a callable ({name})"


def test_the_digest_of_plain_values_is_md5_of_their_type_and_repr_in_order() -> None:
    """The byte stream behind every stored digest (code fingerprints, input digests): each value's type qualname,
    ``:``, then its ``repr`` for a scalar, its length then its items for a list, tuple or dict. Exact scalars take a
    shortcut (``_PLAIN_PREFIX``, one update); a subclass goes the long way: both write these bytes."""

    class Name(str):
        pass

    value = {"a": [1, None, True, 2.5, b"b", "é'"], "n": Name("x")}
    stream = (
        b"dict:2"
        + b"str:'a'"
        + b"list:6"
        + b"int:1NoneType:Nonebool:Truefloat:2.5bytes:b'b'"
        + 'str:"é\'"'.encode()
        + b"str:'n'"
        + f"{Name.__qualname__}:'x'".encode()  # a subclass counts by its own name
    )
    assert digest(value) == md5(stream).hexdigest()
