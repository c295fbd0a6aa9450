"""Opt-in integrity check: kart refuses to load outputs it did not sign with the configured key."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import luigi.configuration
import pandas as pd
import pytest

import kart_core
from kart_core.errors import GokartBuildError, IntegrityError
from kart_core.signing import Signer, signature_path, signer_from_config
from kart_core.target import make_model_target, make_target

OWNER = "Train[0badc0de]"


class _WritesAFileWhenUnpickled:
    """A pickle payload an attacker could plant: unpickling runs code (here: creates a marker file)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (open, (self.marker, "w"))


@pytest.fixture
def signing_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """Turn signing on through the environment."""
    monkeypatch.setenv("KART_SIGNING_KEY", "test-secret")
    return "test-secret"


def test_signing_is_off_without_a_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KART_SIGNING_KEY", raising=False)
    assert signer_from_config() is None
    target = make_target(str(tmp_path / "plain.pkl"))
    target.dump(1)
    assert not os.path.exists(signature_path(target.path()))


def test_key_from_luigi_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KART_SIGNING_KEY", raising=False)
    config = luigi.configuration.get_config()
    config.add_section("TaskOnKart")
    config.set("TaskOnKart", "signing_key", "from-config")
    signer = signer_from_config()
    assert signer is not None and "from-config" not in repr(signer)


def test_signed_output_round_trips(signing_key: str, tmp_path: Path) -> None:
    target = make_target(str(tmp_path / "frame.pkl"), owner=OWNER)
    target.dump(pd.DataFrame({"a": [1, 2]}))
    assert Path(signature_path(target.path())).read_text().startswith("kart-hmac-sha256:")
    pd.testing.assert_frame_equal(target.load(), pd.DataFrame({"a": [1, 2]}))


def test_tampered_pickle_is_refused_before_any_code_runs(signing_key: str, tmp_path: Path) -> None:
    target = make_target(str(tmp_path / "model.pkl"), owner=OWNER)
    target.dump({"weights": [1, 2, 3]})
    marker = tmp_path / "pwned"
    Path(target.path()).write_bytes(pickle.dumps(_WritesAFileWhenUnpickled(str(marker))))
    with pytest.raises(IntegrityError) as info:
        target.load()
    assert target.path() in str(info.value) and OWNER in str(info.value) and "does not match" in str(info.value)
    assert not marker.exists()


def test_unsigned_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "foreign.pkl")
    make_target(path).dump([1])  # written while signing was off, e.g. by gokart
    monkeypatch.setenv("KART_SIGNING_KEY", "now-on")
    with pytest.raises(IntegrityError, match="did not sign") as info:
        make_target(path, owner=OWNER).load()
    assert path in str(info.value)


def test_file_signed_with_another_key_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "data.csv")
    make_target(path, signer=Signer(b"key-one")).dump(pd.DataFrame({"a": [1]}))
    with pytest.raises(IntegrityError, match="does not match"):
        make_target(path, signer=Signer(b"key-two")).load()


def test_remove_deletes_the_signature(signing_key: str, tmp_path: Path) -> None:
    target = make_target(str(tmp_path / "x.txt"))
    target.dump(["line"])
    target.remove()
    assert not os.path.exists(target.path()) and not os.path.exists(signature_path(target.path()))


def test_model_target_is_signed_and_checked(signing_key: str, tmp_path: Path) -> None:
    def save(model: Any, path: str) -> None:
        with open(path, "wb") as file:
            pickle.dump(model, file)

    def load(path: str) -> Any:
        with open(path, "rb") as file:
            return pickle.load(file)

    target = make_model_target(str(tmp_path / "model.zip"), str(tmp_path / "tmp"), save, load, owner=OWNER)
    target.dump({"w": 1})
    assert target.load() == {"w": 1}
    with open(target.path(), "ab") as file:
        file.write(b"appended")
    with pytest.raises(IntegrityError, match=r"Train\[0badc0de\]"):
        target.load()


class Upstream(kart_core.TaskOnKart[Any]):
    """Writes a pickle."""

    def run(self) -> None:
        self.dump({"value": 41})


class Downstream(kart_core.TaskOnKart[Any]):
    """Reads it."""

    def requires(self) -> Any:
        return Upstream(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(self.load()["value"] + 1)


def test_pipeline_refuses_a_tampered_upstream_output(signing_key: str, workspace: str) -> None:
    upstream = Upstream(workspace_directory=workspace)
    kart_core.build(upstream, reset_register=False)
    Path(upstream.output().path()).write_bytes(pickle.dumps({"value": 999}))
    with pytest.raises(GokartBuildError) as info:
        kart_core.build(Downstream(workspace_directory=workspace), reset_register=False)
    (errors,) = info.value.raised_exceptions.values()
    assert isinstance(errors[0], IntegrityError) and upstream.output().path() in str(errors[0])
    assert not Downstream(workspace_directory=workspace).output().exists()
