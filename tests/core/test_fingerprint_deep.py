"""The code fingerprint of deep code: a chain of project functions longer than Python's stack allows to recurse.

Each test writes real modules into tmp_path and imports them; an edit is a rewrite plus a fresh import.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from kart_core import CodeFingerprinter, ModuleClassifier
from kart_core.errors import FingerprintError

LINKS = 400  # about 8 stack frames a link: a recursive walk of 400 needs 3,200 frames (the limit is 1,000)


def _link(index: int) -> str:
    return f"from fpchain.m{index + 1:03d} import step as _next\n\n\ndef step(x):\n    return _next(x) + {index}\n"


@pytest.fixture
def chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Package ``fpchain``: m000.step calls m001.step ... calls m399.step, which reads TAIL."""
    package = tmp_path / "fpchain"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for index in range(LINKS - 1):
        (package / f"m{index:03d}.py").write_text(_link(index))
    (package / f"m{LINKS - 1:03d}.py").write_text("TAIL = 1\n\n\ndef step(x):\n    return x * TAIL\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # an edit within the same second must be read
    yield package
    _forget("fpchain")


def _forget(prefix: str) -> None:
    for name in [n for n in sys.modules if n == prefix or n.startswith(prefix + ".")]:
        del sys.modules[name]


def _head() -> ModuleType:
    """A fresh import of the chain, tail first (importing the head first would nest 400 imports)."""
    _forget("fpchain")
    importlib.invalidate_caches()
    for index in reversed(range(LINKS)):
        module = importlib.import_module(f"fpchain.m{index:03d}")
    return module


def test_a_chain_longer_than_the_stack_is_fingerprinted_and_its_tail_counts(chain: Path) -> None:
    fingerprint = CodeFingerprinter(ModuleClassifier(["fpchain"])).fingerprint(_head().step)
    assert {f"fpchain.m{index:03d}.step" for index in range(LINKS)} <= set(fingerprint.items)
    assert "fpchain.m399.TAIL" in fingerprint.items

    (chain / "m399.py").write_text("TAIL = 20\n\n\ndef step(x):\n    return x * TAIL\n")
    edited = CodeFingerprinter(ModuleClassifier(["fpchain"])).fingerprint(_head().step)
    assert edited.digest != fingerprint.digest
    changed = {key for key in fingerprint.items if fingerprint.items[key] != edited.items[key]}
    assert changed == {"fpchain.m399.TAIL"}


def test_running_out_of_stack_names_the_root_and_leaves_the_fingerprinter_usable(chain: Path) -> None:
    head = _head().step
    fingerprinter = CodeFingerprinter(ModuleClassifier(["fpchain"]))
    depth = len(_frames())
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(depth + 60)  # a caller already deep: too little room for even a few links
    try:
        with pytest.raises(FingerprintError, match=r"code of fpchain\.m000\.step ran out of Python's stack") as info:
            fingerprinter.fingerprint(head)
    finally:
        sys.setrecursionlimit(limit)
    assert isinstance(info.value, RecursionError) and info.value.__suppress_context__  # no 1,000-line traceback
    assert fingerprinter.fingerprint(head) == CodeFingerprinter(ModuleClassifier(["fpchain"])).fingerprint(head)


def _frames() -> list[object]:
    frame, frames = sys._getframe(), []
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    return frames
