"""Unique ids, byte-identical to gokart 1.12.2's. Pure: no I/O, no luigi, no task objects.

The recipe (gokart 1.12.2's ``TaskOnKart.make_unique_id``; docs/reference.md, "Cache contract"):
md5 over ``str(list)`` of the upstream ids, the significant string parameters, the class name
and, optionally, the class's own source code. A nested task parameter is serialized as JSON
naming its family and the hex of its bz2-compressed parameters, so it counts both in the
parameters and as an upstream. ``kart_core.identity`` applies the recipe to task objects;
tests/core/test_hashing.py pins golden values and tests/core/test_gokart_compat.py
compares whole pipelines with gokart.
"""

from __future__ import annotations

import bz2
import json
from collections.abc import Mapping, Sequence
from typing import Any

try:
    # CPython's own md5: the same digest, and for an id's ~100 bytes about a third cheaper than
    # hashlib's OpenSSL one, which sets up a new context per call. Some builds leave it out.
    from _md5 import md5
except ImportError:  # pragma: no cover - a Python built without its own hashes
    from hashlib import md5

__all__ = ["unique_id_from_parts", "serialize_task_reference", "decode_task_reference", "short_id"]


def unique_id_from_parts(
    upstream: Sequence[Any],
    str_params: Mapping[str, str],
    class_name: str,
    own_code: str | None = None,
) -> str:
    """Return the md5 hex id of a task from its upstream ids, significant params and class name.

    Args:
        upstream: for each upstream task, its unique id (a TaskOnKart) or its significant
            ``to_str_params`` dict (a plain luigi.Task); insignificant upstreams left out.
        str_params: the task's ``to_str_params(only_significant=True)``, in parameter order.
        class_name: the bare class name, without module.
        own_code: the task's own source, only with ``serialized_task_definition_check``.
    """
    parts: list[Any] = list(upstream)
    parts.append(str_params if type(str_params) is dict else dict(str_params))  # str() of a dict, as gokart
    parts.append(class_name)
    if own_code is not None:
        parts.append(own_code)
    return md5(str(parts).encode()).hexdigest()


def serialize_task_reference(task_family: str, str_params: Mapping[str, str]) -> str:
    """Serialize a task used as a parameter value the way gokart's TaskInstanceParameter does."""
    packed = bz2.compress(json.dumps(dict(str_params)).encode()).hex()
    return json.dumps({"type": task_family, "params": packed})


def decode_task_reference(text: str) -> dict[str, Any]:
    """Invert serialize_task_reference: ``{"type": family, "params": {name: str value}}``."""
    ref = dict(json.loads(text))
    if "params" in ref and isinstance(ref["params"], str):
        ref["params"] = json.loads(bz2.decompress(bytes.fromhex(ref["params"])).decode())
    return ref


def short_id(unique_id: str) -> str:
    """The first 8 characters of a unique id, as used in task labels and Airflow task ids."""
    return unique_id[:8]
