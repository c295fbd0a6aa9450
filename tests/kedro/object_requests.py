"""The requests a test's Kedro datasets send to object storage, as the servers on 127.0.0.1 receive them.

``count_requests(monkeypatch)`` wraps the one method through which s3fs (``S3FileSystem._call_s3``) and
gcsfs (``GCSFileSystem._request``) send every request: the request still goes to the real server (moto,
the GCS emulator); the wrapper only writes down what it was and how many bytes an object download
brought back.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import unquote

import pytest


@dataclasses.dataclass
class Requests:
    """What was sent since the last ``clear()``.

    Attributes:
        calls: (kind, object key or listing prefix) per request, in order: S3 API method names
            (``head_object``, ``list_objects_v2``, ``get_object``, ...) or, for GCS, ``list``,
            ``metadata`` and ``download``.
        downloaded: bytes of object content received, by object key.
    """

    calls: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    downloaded: dict[str, int] = dataclasses.field(default_factory=dict)

    def clear(self) -> None:
        """Forget what was counted so far."""
        self.calls.clear()
        self.downloaded.clear()

    def of(self, kind: str) -> list[str]:
        """The keys or prefixes of the requests of ``kind``, in order."""
        return [where for what, where in self.calls if what == kind]


def count_requests(monkeypatch: pytest.MonkeyPatch) -> Requests:
    """Count every request s3fs and gcsfs send for the rest of the test."""
    import gcsfs.core
    import s3fs.core

    seen = Requests()
    call_s3 = s3fs.core.S3FileSystem._call_s3

    async def counted_s3(self: Any, method: str, *args: Any, **kwargs: Any) -> Any:
        answer = await call_s3(self, method, *args, **kwargs)
        key = str(kwargs.get("Key", kwargs.get("Prefix", "")))
        seen.calls.append((method, key))
        if method == "get_object":
            seen.downloaded[key] = seen.downloaded.get(key, 0) + int(answer.get("ContentLength", 0))
        return answer

    request = gcsfs.core.GCSFileSystem._request

    async def counted_gcs(self: Any, method: str, path: str, *args: Any, **kwargs: Any) -> Any:
        answer = await request(self, method, path, *args, **kwargs)
        if "/download/" in path:  # GCSFileSystem.url(): the object's bytes
            key = unquote(path.split("/o/", 1)[1].split("?", 1)[0])
            seen.calls.append(("download", key))
            seen.downloaded[key] = seen.downloaded.get(key, 0) + len(answer[3])
        elif method == "GET" and path == "b/{}/o":  # objects.list
            seen.calls.append(("list", str(kwargs.get("prefix", ""))))
        elif method == "GET" and path == "b/{}/o/{}":  # objects.get: one object's metadata
            seen.calls.append(("metadata", str(args[1])))
        else:
            seen.calls.append((method, path))
        return answer

    monkeypatch.setattr(s3fs.core.S3FileSystem, "_call_s3", counted_s3)
    monkeypatch.setattr(gcsfs.core.GCSFileSystem, "_request", counted_gcs)
    return seen
