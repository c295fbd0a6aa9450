"""A manifest is encoded by msgspec where it writes json's bytes (``kart_core.manifest._dumps``), by json elsewhere.

Since session 22 ``Manifest.to_bytes`` hands plain JSON data (``_plain``) to msgspec, about a seventh of json's
instructions, and keeps msgspec's bytes only when they are ASCII without DEL: for such data they are what
``json.dumps(value, sort_keys=True, separators=(",", ":"))`` writes. These tests compare the two on many values,
the edges included (floats json writes with an exponent, control characters, characters json escapes and msgspec
does not), and check that what json refuses is still refused with json's error.
"""

from __future__ import annotations

import datetime
import enum
import json
import math
import random
from typing import Any

import pytest

from kart_core.manifest import Entry, Input, Manifest, _dumps, _plain


def _json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode("utf-8")


_CHARACTERS = [chr(code) for code in range(128)] + ["é", "\u2028", "日", "\U0001f600", "\udcff"]


def _text(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return "".join(rng.choice("abcdefXYZ0123456789_=.\n/") for _ in range(rng.randrange(12)))
    return "".join(rng.choice(_CHARACTERS) for _ in range(rng.randrange(6)))


def _float(rng: random.Random) -> float:
    pick = rng.random()
    if pick < 0.1:
        return rng.choice([0.0, -0.0, 1e-4, 1e16, 9.999999999999998e15, 1e-05, math.nan, math.inf, -math.inf])
    if pick < 0.3:  # processing times and clocks, as run records hold them
        return round(rng.uniform(0, 2e9), rng.randrange(12))
    return rng.choice([1, -1]) * rng.random() * 10 ** rng.randint(-30, 30)


def _value(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.random()
    if depth < 4 and pick < 0.25:
        return {_text(rng): _value(rng, depth + 1) for _ in range(rng.randrange(5))}
    if depth < 4 and pick < 0.4:
        items = [_value(rng, depth + 1) for _ in range(rng.randrange(5))]
        return tuple(items) if rng.random() < 0.3 else items
    return rng.choice(
        [
            lambda: _text(rng),
            lambda: rng.randint(-(2**70), 2**70),
            lambda: rng.randint(-5, 5),
            lambda: _float(rng),
            lambda: rng.random() < 0.5,
            lambda: None,
        ]
    )()


def _same_as_json(value: Any) -> None:
    try:
        expected = _json(value)
    except (TypeError, ValueError) as exc:
        with pytest.raises(type(exc)):
            _dumps(value)
        return
    assert _dumps(value) == expected


@pytest.mark.parametrize("seed", range(8))
def test_the_encoding_is_json_s_for_random_documents(seed: int) -> None:
    rng = random.Random(seed)
    plain = 0
    for _ in range(2_000):
        value = _value(rng)
        _same_as_json(value)
        plain += _plain(value, 0)
    assert plain > 500  # msgspec encoded a good part of them (else this compared json with itself)


def test_a_run_record_as_kart_writes_it_is_encoded_by_msgspec_as_json_encodes_it() -> None:
    record = {
        "task_log": {
            "file_path": ["/w/kedro/_/n0__d0_4d7c.pkl"],
            "kart_built_at": 1796287190.93578,
            "module_versions": "kedro==1.7.0\nluigi==3.8.1\nmsgspec==0.22.0",
            "processing_time": 0.001900007002404891,
            "random_seed": {"seed": 1397875922, "seed_methods": ["random.seed", "numpy.random.seed"]},
        },
        "task_params": {"inputs": '["params:increment"]', "node_name": "n0", "upstream": "[]"},
    }
    assert _plain(record, 0)
    assert _dumps(record) == _json(record)
    entry = Entry(size=36, digest="xxh3_128:" + "1" * 32, commit="2" * 32, sealed=False, owner="m.T", stamp=(5, 17))
    inputs = (Input(task="U[1]", manifest="log/manifest/U_1.json", key="u.pkl", commit=None, digest="d", stamp=(1, 2)),)
    manifest = Manifest(task="T[4d7c7020]", commit="2" * 32, outputs={"a.pkl": entry}, run=record, inputs=inputs)
    head = {
        "commit": manifest.commit,
        "format": "kart-manifest/1",
        "inputs": [item.to_json() for item in inputs],
        "outputs": {"a.pkl": entry.to_json()},
        "requirements": True,
        "task": manifest.task,
    }
    assert manifest.to_bytes() == _json(head)[:-1] + b',"run":' + _json(record) + b"}"  # the bytes kart wrote before
    assert Manifest.from_bytes(manifest.to_bytes()) == manifest


class _Level(enum.IntEnum):
    LOW = 1


class _Name(str):
    pass


@pytest.mark.parametrize(
    "value",
    [
        {"when": datetime.datetime(2026, 12, 3, 9, 0)},  # json refuses it (msgspec would write a string)
        {"tags": {"a", "b"}},  # json refuses a set
        {"raw": b"bytes"},
        {"level": _Level.LOW},  # a subclass: json's choice
        {"name": _Name("x")},
        {1: "int key", 2: "another"},  # json writes the keys as strings
        {"a": 1, 2: "mixed keys"},  # json cannot sort them: TypeError
        {"small": 1e-05, "large": 1e16, "nan": math.nan, "inf": -math.inf},  # json's exponents and NaN
        {"path": "caf\u00e9/\x7f/\udcff"},  # characters json escapes and msgspec does not (a lone surrogate)
        [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["deep"]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
    ],
)
def test_what_msgspec_would_write_otherwise_is_left_to_json(value: Any) -> None:
    _same_as_json(value)


def test_a_structure_that_holds_itself_is_json_s_error() -> None:
    looped: dict[str, Any] = {"a": []}
    looped["a"].append(looped)
    with pytest.raises(ValueError, match="Circular reference"):
        _dumps(looped)
    manifest = Manifest(task="T[1]", commit="c" * 32, run=looped)
    with pytest.raises(ValueError, match="Circular reference"):  # the commit then writes it without the run record
        manifest.to_bytes()
