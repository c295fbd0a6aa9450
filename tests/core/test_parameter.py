"""TaskInstanceParameter: gokart's serialization, computed once per task, and a size limit for deep chains."""

from __future__ import annotations

import pickle

import luigi
import pytest
from luigi.task import task_id_str

import kart_core
from kart_core import parameter
from kart_core.errors import TaskParameterTooLargeError
from kart_core.hashing import decode_task_reference


class TpBottom(kart_core.TaskOnKart[int]):
    def run(self) -> None:
        self.dump(0)


class TpLink(kart_core.TaskOnKart[int]):
    prev = kart_core.TaskInstanceParameter()
    n = luigi.IntParameter()

    def run(self) -> None:
        self.dump(self.n)


def _chain(depth: int, workspace: str) -> TpLink:
    top: kart_core.TaskOnKart[int] = TpBottom(workspace_directory=workspace)
    for n in range(1, depth):
        top = TpLink(prev=top, n=n, workspace_directory=workspace)
    assert isinstance(top, TpLink)
    return top


def test_the_serialized_value_is_gokarts_and_computed_once_per_task(workspace: str) -> None:
    top = _chain(3, workspace)
    text = TpLink.prev.serialize(top.prev)
    assert TpLink.prev.serialize(top.prev) is text
    reference = decode_task_reference(text)
    assert reference["type"] == "TpLink"
    assert reference["params"]["n"] == "1"
    assert decode_task_reference(reference["params"]["prev"]) == {"type": "TpBottom", "params": {}}


def test_task_id_is_luigis_though_computed_on_first_read(workspace: str) -> None:
    top = _chain(3, workspace)
    assert "task_id" not in vars(top)  # not computed by the constructor
    expected = task_id_str("TpLink", luigi.Task.to_str_params(top, only_significant=True, only_public=True))
    assert top.task_id == expected
    assert hash(top) == hash(expected)
    assert pickle.loads(pickle.dumps(top)).task_id == expected


@pytest.mark.parametrize("handler", [False, True])
def test_a_chain_over_the_size_limit_names_the_task_the_parameter_and_what_to_do(
    workspace: str, monkeypatch: pytest.MonkeyPatch, handler: bool
) -> None:
    """With a luigi event handler registered too (the walk then fires BROKEN_TASK for the broken task, whose
    task_id is what broke: it failed with that error again, from the event's bookkeeping, before 2026-12-02
    15:20 UTC; seen when another test module's handler was registered in the same process)."""
    broken: list[str] = []

    def note(task: object, error: BaseException) -> None:
        broken.append(type(error).__name__)

    if handler:
        luigi.Task.event_handler(luigi.Event.BROKEN_TASK)(note)
    top = _chain(12, workspace)  # the serialized value of top.prev: 1,186 bytes
    monkeypatch.setattr(parameter, "MAX_TASK_PARAMETER_BYTES", 1_000)
    try:
        with pytest.raises(
            kart_core.GokartBuildError, match="TaskParameterTooLargeError: TpLink.prev: its value TpLink"
        ):
            kart_core.build(top)
    finally:
        if handler:
            luigi.Task.remove_event_handler(luigi.Event.BROKEN_TASK, note)
    assert broken == (["TaskParameterTooLargeError"] if handler else [])
    with pytest.raises(kart_core.GokartBuildError, match="TaskParameterTooLargeError: TpLink.prev: its value TpLink"):
        kart_core.build(top)
    # Creating one more link fails too: luigi's instance cache hashes the task it is given (its task_id).
    with pytest.raises(TaskParameterTooLargeError) as raised:
        TpLink(prev=top, n=12, workspace_directory=workspace)
    message = str(raised.value)
    assert message.startswith(f"TpLink.prev: its value {top.prev.kart_label()} serializes to ")
    assert "over kart's limit of 1,000 bytes" in message
    assert "requires()" in message


def test_a_chain_under_the_limit_builds_with_every_link(workspace: str) -> None:
    assert kart_core.build(_chain(40, workspace)) == 39
