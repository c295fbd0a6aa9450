"""kart_core.inspect.ownership: whose run a (Class, unique id) in a workspace listing is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kart_core.inspect.ownership import FOREIGN, OWNED, UNKNOWN, Ownership
from kart_core.workspace import KART_LOG_KINDS, log_relative_path

A, B, C = "a" * 32, "b" * 32, "c" * 32


def _run(workspace: Path, cls: str, uid: str, outputs: list[str], manifest: bool = True) -> None:
    """The five run logs of ``cls``'s run ``uid``, its outputs and (optionally) its manifest listing them."""
    for kind in KART_LOG_KINDS[:-1]:
        _write(workspace / log_relative_path(kind, cls, uid), b"log")
    for output in outputs:
        _write(workspace / output, b"data")
    if manifest:
        document = {
            "format": "kart-manifest/1",
            "task": f"{cls}[{uid[:8]}]",
            "commit": "0" * 32,
            "outputs": {o: {"size": 4, "digest": "x:0", "commit": "0" * 32, "sealed": False} for o in outputs},
        }
        _write(workspace / log_relative_path(KART_LOG_KINDS[-1], cls, uid), json.dumps(document).encode())


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _ownership(workspace: Path, *classes: str) -> Ownership:
    from kart_core.workspace import list_files

    return Ownership(str(workspace), list_files(str(workspace)), classes)


def test_the_default_output_path_names_the_module(tmp_path: Path) -> None:
    _run(tmp_path, "Load", A, [f"proja/tasks/Load_{A}.pkl"])
    _run(tmp_path, "Load", B, [f"projb/tasks/Load_{B}.pkl"])
    own = _ownership(tmp_path, "proja.tasks.Load")
    assert (own.run("Load", A), own.run("Load", B)) == (OWNED, FOREIGN)
    assert own.file(f"log/task_log/Load_{B}.pkl") == FOREIGN and own.file(f"log/manifest/Load_{B}.json") == FOREIGN
    assert own.file(f"projb/tasks/Load_{B}.pkl") == FOREIGN and own.file(f"log/task_params/Load_{A}.pkl") == OWNED
    assert own.file(f"proja/tasks/Load_{A}.pkl.sig") == OWNED  # kart's earlier signature files follow their output
    assert _ownership(tmp_path, "projb.tasks.Load").run("Load", B) == OWNED


def test_the_manifest_names_the_outputs_once_they_are_gone(tmp_path: Path) -> None:
    _run(tmp_path, "Load", A, [f"proja/tasks/Load_{A}.pkl", f"data/extra_{A}.csv"])
    (tmp_path / f"proja/tasks/Load_{A}.pkl").unlink()
    own = _ownership(tmp_path, "proja.tasks.Load")
    assert own.run("Load", A) == OWNED
    assert own.file(f"data/extra_{A}.csv") == OWNED  # a custom path, listed by an owned run's manifest


def test_custom_paths_and_gone_outputs_cannot_be_told(tmp_path: Path) -> None:
    _run(tmp_path, "Load", A, [f"data/load_{A}.pkl"])  # make_target("data/load.pkl"): no module in it
    _run(tmp_path, "Load", B, [], manifest=False)  # outputs deleted, no manifest
    own = _ownership(tmp_path, "proja.tasks.Load")
    assert (own.run("Load", A), own.run("Load", B)) == (UNKNOWN, UNKNOWN)
    assert own.file(f"data/load_{A}.pkl") == UNKNOWN and own.file(f"log/task_log/Load_{B}.pkl") == UNKNOWN


def test_a_unique_id_two_same_named_classes_share_keeps_its_logs(tmp_path: Path) -> None:
    # Same parameters, same upstreams: the unique id (class name, parameters, upstreams) is the same.
    _run(tmp_path, "Load", A, [f"proja/tasks/Load_{A}.pkl"])
    _write(tmp_path / f"projb/tasks/Load_{A}.pkl", b"theirs")
    own = _ownership(tmp_path, "proja.tasks.Load")
    assert own.run("Load", A) == UNKNOWN and own.file(f"log/task_log/Load_{A}.pkl") == UNKNOWN
    assert own.file(f"proja/tasks/Load_{A}.pkl") == OWNED and own.file(f"projb/tasks/Load_{A}.pkl") == FOREIGN


def test_other_class_names_and_strangers_are_foreign(tmp_path: Path) -> None:
    _run(tmp_path, "Report", C, [f"proja/tasks/Report_{C}.pkl"])
    _write(tmp_path / f"elsewhere/Stranger_{A}.pkl", b"?")
    own = _ownership(tmp_path, "proja.tasks.Load")
    assert own.run("Report", C) == FOREIGN and own.file(f"elsewhere/Stranger_{A}.pkl") == FOREIGN
    assert own.class_names == {"Load"}


def test_a_damaged_manifest_is_no_evidence(tmp_path: Path) -> None:
    _run(tmp_path, "Load", A, [f"data/load_{A}.pkl"])
    _write(tmp_path / log_relative_path(KART_LOG_KINDS[-1], "Load", A), b"\x80not json")
    assert _ownership(tmp_path, "proja.tasks.Load").run("Load", A) == UNKNOWN


def test_a_class_must_name_its_module() -> None:
    with pytest.raises(ValueError, match="module.Class"):
        Ownership("ws", [], ["Load"])
