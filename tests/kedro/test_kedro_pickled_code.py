"""pickled_code: the classes and functions a pickle names, read from its opcodes; which values are plain data."""

from __future__ import annotations

import collections
import fractions
import io
import pickle

import dill
import numpy as np
import pandas as pd
import pytest
from kart_kedro.pickled_code import pickled_names, plain_data, resolve_name

VALUE = [collections.OrderedDict(a=1), collections.OrderedDict(b=2), fractions.Fraction(1, 3), fractions.Fraction(2, 3)]


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_every_protocol_names_each_class_once_also_when_its_names_come_from_the_memo(protocol: int) -> None:
    # The second OrderedDict and Fraction take their module and name strings from the memo (protocol 4+).
    assert pickled_names(io.BytesIO(pickle.dumps(VALUE, protocol=protocol))) == (
        "collections:OrderedDict",
        "fractions:Fraction",
    )


def test_dill_pickles_are_read_too() -> None:
    assert pickled_names(io.BytesIO(dill.dumps(VALUE))) == ("collections:OrderedDict", "fractions:Fraction")


def test_a_truncated_pickle_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        pickled_names(io.BytesIO(pickle.dumps(VALUE, protocol=5)[:-5]))


def test_resolve_name_finds_nested_names_and_returns_none_for_missing_ones() -> None:
    assert resolve_name("collections:OrderedDict") is collections.OrderedDict
    assert resolve_name("fractions:Fraction.limit_denominator") is fractions.Fraction.limit_denominator
    assert resolve_name("collections:NoSuchName") is None
    assert resolve_name("no_such_module_kart:Name") is None


class Model:
    pass


@pytest.mark.parametrize(
    "value",
    [
        None,
        [1, "a", {"x": (1.0, None, b"b")}],
        np.arange(3),
        np.float64(1.5),
        pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}),
        pd.Series([1.0, 2.0], name="s"),
    ],
)
def test_plain_data(value: object) -> None:
    assert plain_data(value) is True


@pytest.mark.parametrize(
    "value",
    [
        Model(),
        [1, Model()],
        {"model": Model()},
        np.array([Model()], dtype=object),
        pd.DataFrame({"a": [Model()]}),
        list(range(20_000)),  # past the items plain_data looks at: its pickle is scanned instead
    ],
)
def test_not_plain_data(value: object) -> None:
    assert plain_data(value) is False
