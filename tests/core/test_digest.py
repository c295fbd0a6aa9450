"""Digests that decide whether a Kedro node reruns: equal content, equal digest; any change, a new one."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd

from kart_core.digest import digest


def test_mapping_and_set_order_do_not_matter() -> None:
    assert digest({"a": 1, "b": [1, 2]}) == digest({"b": [1, 2], "a": 1})
    assert digest({"x", "y", "z"}) == digest({"z", "y", "x"})
    assert digest([1, 2]) != digest([2, 1])


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
