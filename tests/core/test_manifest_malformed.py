"""Manifests malformed in ways JSON allows: damage reported and repaired like any other unreadable manifest.

Attacker at20 K3: a manifest holding deeply nested JSON failed every build with a bare ``RecursionError`` (no file
named, never repaired), and ``"outputs": []`` was read as a manifest without entries, so the load warned that the
task's manifest "is gone". Both are now an unreadable manifest: ``DamagedOutputError`` naming it, and a build
that needs the task runs it again. msgspec's parse and the general one agree on each.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import luigi
import pytest

import kart_core
from kart_core.errors import DamagedOutputError
from kart_core.manifest import Manifest, read_manifest
from kart_core.storage import storage_for
from kart_core.workspace import MANIFEST, log_task_path


class MmUp(kart_core.TaskOnKart[Any]):
    journal = luigi.Parameter(significant=False)

    def run(self) -> None:
        with open(self.journal, "a") as handle:
            handle.write("run\n")
        self.dump({"v": 1})


class MmDown(kart_core.TaskOnKart[Any]):
    up = kart_core.TaskInstanceParameter()
    offset = luigi.IntParameter(default=0)

    def run(self) -> None:
        self.dump(self.load("up")["v"] + self.offset)


def _deep(document: dict[str, Any]) -> bytes:
    """``document`` with a key holding 200,000 nested lists (past any parser's recursion limit)."""
    text = json.dumps(document)
    return (text[:-1] + ',"zz":' + "[" * 200_000 + "]" * 200_000 + "}").encode()


def _outputs_list(document: dict[str, Any]) -> bytes:
    return json.dumps({**document, "outputs": []}).encode()


def _built(tmp_path: Path) -> tuple[MmUp, str, dict[str, Any]]:
    up = MmUp(journal=str(tmp_path / "journal.txt"), workspace_directory=str(tmp_path / "ws"))
    kart_core.build(MmDown(up=up, workspace_directory=str(tmp_path / "ws")), reset_register=False)
    manifest = log_task_path(up, MANIFEST)
    return up, manifest, json.loads(storage_for(manifest).read_bytes(manifest))


@pytest.mark.parametrize("malform", [_deep, _outputs_list])
@pytest.mark.parametrize("run", [True, False])
def test_the_parse_raises_a_value_or_type_error(tmp_path: Path, malform: Any, run: bool) -> None:
    _, _, document = _built(tmp_path)
    with pytest.raises((ValueError, TypeError)) as caught:
        Manifest.from_bytes(malform(document), run=run)
    assert not isinstance(caught.value, RecursionError)
    assert "nested too deeply" in str(caught.value) or "outputs are a JSON list" in str(caught.value)


@pytest.mark.parametrize("malform", [_deep, _outputs_list])
def test_a_malformed_manifest_is_damage_and_rebuilt(
    tmp_path: Path, malform: Any, caplog: pytest.LogCaptureFixture
) -> None:
    up, manifest, document = _built(tmp_path)
    with storage_for(manifest).atomic_write(manifest) as file:
        file.write(malform(document))
    with pytest.raises(DamagedOutputError) as caught:
        read_manifest(storage_for(manifest), manifest, "log/manifest/x.json", None)
    assert caught.value.kind == "manifest" and caught.value.path == manifest
    with caplog.at_level(logging.WARNING):
        again = MmDown(up=up, offset=1, workspace_directory=str(tmp_path / "ws"))
        assert kart_core.build(again, reset_register=False) == 2  # before: RecursionError, or served unchecked
    assert (tmp_path / "journal.txt").read_text().count("run") == 2  # MmUp rebuilt
    warnings = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    assert any("its manifest cannot be read" in warning and manifest in warning for warning in warnings), warnings
    assert not any("is gone" in warning for warning in warnings), warnings
    assert Manifest.from_bytes(storage_for(manifest).read_bytes(manifest)).outputs  # a whole manifest again
