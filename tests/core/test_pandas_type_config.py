"""kart_core.pandas_type_config: the config of a task's namespace checks its DataFrame dumps."""

from __future__ import annotations

from typing import Any

import luigi
import pandas as pd
import pytest

from kart_core.errors import PandasTypeError
from kart_core.pandas_type_config import PandasTypeConfig, check_pandas_types


class PriceTypes(PandasTypeConfig):
    task_namespace = "ptc_prices"

    @classmethod
    def type_dict(cls) -> dict[str, Any]:
        return {"price": int}


class StrictPriceTypes(PriceTypes):
    """A subclass declaring another namespace: found too (configs are looked up through subclasses)."""

    task_namespace = "ptc_strict"

    @classmethod
    def type_dict(cls) -> dict[str, Any]:
        return {"price": int, "name": str}


def test_the_namespace_config_refuses_a_wrong_type_naming_the_column() -> None:
    with pytest.raises(PandasTypeError, match=r'"<class \'str\'>" is passed in column "price"'):
        check_pandas_types(pd.DataFrame({"price": [1, "2"]}), "ptc_prices")


def test_a_subclass_config_checks_its_own_namespace() -> None:
    check_pandas_types(pd.DataFrame({"price": [1], "name": [3]}), "ptc_prices")  # name is not checked here
    with pytest.raises(PandasTypeError, match='column "name"'):
        check_pandas_types(pd.DataFrame({"price": [1], "name": [3]}), "ptc_strict")


def test_other_namespaces_and_non_frames_are_not_checked() -> None:
    check_pandas_types(pd.DataFrame({"price": ["x"]}), "ptc_unknown")
    check_pandas_types(pd.DataFrame({"price": ["x"]}), None)
    check_pandas_types({"price": ["x"]}, "ptc_prices")


def test_a_redefined_config_replaces_the_earlier_one() -> None:
    class Redefined(PandasTypeConfig):
        task_namespace = "ptc_redefined"

        @classmethod
        def type_dict(cls) -> dict[str, Any]:
            return {"a": int}

    frame = pd.DataFrame({"a": ["text"]})
    with pytest.raises(PandasTypeError):
        check_pandas_types(frame, "ptc_redefined")

    class Redefined(PandasTypeConfig):  # type: ignore[no-redef]  # noqa: F811  (a notebook cell run again)
        task_namespace = "ptc_redefined"

        @classmethod
        def type_dict(cls) -> dict[str, Any]:
            return {"a": str}

    check_pandas_types(frame, "ptc_redefined")


def test_many_registered_task_classes_do_not_change_the_answer() -> None:
    for index in range(300):
        type(f"PtcFiller{index}", (luigi.Task,), {"task_namespace": "ptc_fillers", "x": luigi.IntParameter()})
    with pytest.raises(PandasTypeError, match='column "price"'):
        check_pandas_types(pd.DataFrame({"price": [1.5]}), "ptc_prices")
