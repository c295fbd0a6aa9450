"""Which msgspec decoder reads a manifest without its inputs (``manifest.decoded``): one decoder for small ones."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from kart_core import manifest
from kart_core.manifest import FORMAT, Manifest


def _document(inputs: int) -> bytes:
    entry = {"size": 3, "digest": "xxh3_128:" + "0" * 32, "commit": "c" * 32, "sealed": False, "owner": "m.T"}
    item = {
        "commit": "d" * 32,
        "digest": "x:1",
        "key": "u.pkl",
        "manifest": "log/manifest/U_1.json",
        "reader": "m.T",
        "task": "U[1]",
    }
    document = {
        "commit": "c" * 32,
        "format": FORMAT,
        "inputs": [{**item, "key": f"u{index}.pkl", "required": True} for index in range(inputs)],
        "outputs": {"a/T_1.pkl": entry},
        "task": "T[11111111]",
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


@pytest.fixture
def fresh_decoders() -> Any:
    manifest._document_decoder.cache_clear()
    yield manifest._document_decoder
    manifest._document_decoder.cache_clear()


def test_a_small_manifest_read_without_inputs_needs_no_second_decoder(fresh_decoders: Any) -> None:
    """A chain link's manifest (one input) read by a load and by the lineage check: one decoder made, not two."""
    data = _document(1)
    assert len(data) < manifest._SKIP_INPUTS_FROM
    whole = manifest.decoded(Manifest, data, False)
    part = manifest.decoded(Manifest, data, False, inputs=False)
    assert whole is not None and part is not None and len(whole.inputs) == 1
    assert part.inputs == () and replace(whole, inputs=()) == part
    assert fresh_decoders.cache_info().currsize == 1


def test_a_large_manifest_read_without_inputs_builds_none(fresh_decoders: Any) -> None:
    """A fan-in's manifest (thousands of inputs) read by a load is decoded without building its inputs."""
    data = _document(200)
    assert len(data) >= manifest._SKIP_INPUTS_FROM
    whole = manifest.decoded(Manifest, data, False)
    part = manifest.decoded(Manifest, data, False, inputs=False)
    assert whole is not None and part is not None and len(whole.inputs) == 200
    assert part.inputs == () and replace(whole, inputs=()) == part
    assert fresh_decoders.cache_info().currsize == 2  # the decoder that skips the inputs' objects
