"""kart_core.testing: order-insensitive frame comparison and the empty-DataFrame check (--test-run-pandas)."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest

import kart_core as gokart
from kart_core import testing
from kart_core.testing import assert_frame_contents_equal, run_with_empty_data_frames


class TtLoad(gokart.TaskOnKart[pd.DataFrame]):
    def run(self) -> None:
        self.dump(pd.DataFrame({"user": [1, 2, 3], "score": [0.5, 0.1, 0.9]}))


class TtRobust(gokart.TaskOnKart[pd.DataFrame]):
    source = gokart.TaskInstanceParameter()

    def run(self) -> None:
        frame = self.load_data_frame(self.source, required_columns={"user", "score"})
        self.dump(frame[frame["score"] > 0.2])


class TtFragile(gokart.TaskOnKart[pd.DataFrame]):
    source = gokart.TaskInstanceParameter()

    def run(self) -> None:
        frame = self.load_data_frame(self.source, required_columns={"score"})
        self.dump(pd.DataFrame({"first": [frame["score"].iloc[0]]}))  # fails on an empty frame


class TtOtherSpace(gokart.TaskOnKart[int]):
    task_namespace = "other"
    source = gokart.TaskInstanceParameter()

    def run(self) -> None:
        self.dump(len(self.load_data_frame(self.source)))


def test_frames_equal_up_to_row_and_column_order() -> None:
    actual = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]}, index=[10, 11, 12])
    expected = actual.loc[[12, 10, 11], ["b", "a"]]
    assert_frame_contents_equal(actual, expected)


@pytest.mark.parametrize(
    ("expected", "message"),
    [
        (pd.DataFrame({"a": [1, 2, 4], "b": ["x", "y", "z"]}, index=[10, 11, 12]), "values are different"),
        (pd.DataFrame({"a": [1, 2, 3]}, index=[10, 11, 12]), r"columns differ: actual lacks \[\], has extra \['b'\]"),
        (pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]}, index=[10, 11, 13]), "index differ"),
        (pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]}, index=[10, 10, 12]), "expected has duplicated index"),
    ],
)
def test_frames_that_differ_fail(expected: pd.DataFrame, message: str) -> None:
    actual = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]}, index=[10, 11, 12])
    with pytest.raises(AssertionError, match=message):
        assert_frame_contents_equal(actual, expected)


def test_keyword_arguments_reach_pandas() -> None:
    actual, expected = pd.DataFrame({"a": [1, 2]}), pd.DataFrame({"a": [1.0, 2.0]})
    with pytest.raises(AssertionError):
        assert_frame_contents_equal(actual, expected)
    assert_frame_contents_equal(actual, expected, check_dtype=False)


def test_not_a_frame_is_reported() -> None:
    with pytest.raises(AssertionError, match="actual is a list"):
        assert_frame_contents_equal([1], pd.DataFrame())  # type: ignore[arg-type]


def _graph(workspace: str) -> TtOtherSpace:
    load = TtLoad(workspace_directory=workspace)
    fragile = TtFragile(source=TtRobust(source=load, workspace_directory=workspace), workspace_directory=workspace)
    return TtOtherSpace(source=fragile, workspace_directory=workspace)


def test_empty_frames_find_the_fragile_task_without_writing(workspace: str) -> None:
    root = _graph(workspace)
    gokart.build(root.source)  # built normally first, as the command-line check does
    files_before = sorted(os.walk(workspace))
    statuses = {status.name: status for status in run_with_empty_data_frames(root.source)}
    assert set(statuses) == {"TtLoad", "TtRobust", "TtFragile"}
    assert statuses["TtRobust"].ok and statuses["TtLoad"].ok
    assert not statuses["TtFragile"].ok and isinstance(statuses["TtFragile"].error, IndexError)
    assert (
        statuses["TtFragile"]
        .format()
        .startswith(
            f"status=NG; namespace=__not_user_specified; name=TtFragile; "
            f"id={root.source.make_unique_id()}; message=IndexError:"
        )
    )
    assert sorted(os.walk(workspace)) == files_before  # dump() wrote nothing


def test_methods_are_restored_after_the_check(workspace: str) -> None:
    root = _graph(workspace)
    gokart.build(root.source)
    run_with_empty_data_frames(root.source)
    fragile = TtFragile(
        source=TtRobust(source=TtLoad(workspace_directory=workspace), workspace_directory=workspace),
        workspace_directory=workspace,
    )
    assert fragile is root.source  # luigi hands out the same cached object...
    assert "dump" not in vars(fragile) and "load_data_frame" not in vars(fragile)  # ...without the stand-ins
    assert fragile.load_data_frame(fragile.source)["user"].tolist() == [1, 3]


def test_namespace_filter(workspace: str) -> None:
    root = _graph(workspace)
    statuses = run_with_empty_data_frames(root, namespace="other")
    assert [(s.name, s.ok) for s in statuses] == [("TtOtherSpace", True)]


def test_test_run_settings_and_pytest_ignores_the_class() -> None:
    assert gokart.test_run is testing.test_run
    assert testing.test_run().pandas is False and testing.test_run().namespace is None
    assert testing.test_run.__test__ is False


def _run(args: list[str]) -> int | str | None:
    with pytest.raises(SystemExit) as exit_info:
        gokart.run(args)
    return exit_info.value.code


def test_command_line_check_exits_0_when_all_pass(capsys: pytest.CaptureFixture[str]) -> None:
    source = '{"type": "TtLoad", "params": {}}'
    code = _run(["other.TtOtherSpace", "--local-scheduler", "--test-run-pandas", "--source", source])
    output = capsys.readouterr().out
    assert code == 0
    assert "status=OK; namespace=other; name=TtOtherSpace;" in output
    assert "status=OK; namespace=__not_user_specified; name=TtLoad;" in output


def test_command_line_check_exits_1_on_a_fragile_task(capsys: pytest.CaptureFixture[str]) -> None:
    # TaskInstanceParameter values on the command line are JSON; a fragile task directly on an upstream.
    source = '{"type": "TtLoad", "params": {}}'
    code = _run(["TtFragile", "--local-scheduler", "--test-run-pandas", "--source", source])
    assert code == 1
    output = capsys.readouterr().out
    assert (
        "status=NG; namespace=__not_user_specified; name=TtFragile;" in output
        and "status=OK; namespace=__not_user_specified; name=TtLoad;" in output
    )


def test_command_line_namespace_limits_the_check(capsys: pytest.CaptureFixture[str]) -> None:
    inner = json.dumps({"type": "TtLoad", "params": {}})
    source = json.dumps({"type": "TtFragile", "params": {"source": inner}})
    args = ["other.TtOtherSpace", "--local-scheduler", "--test-run-pandas", "--source", source]
    assert _run([*args, "--test-run-namespace", "other"]) == 0
    assert capsys.readouterr().out.count("status=") == 1
    assert _run(args) == 1
