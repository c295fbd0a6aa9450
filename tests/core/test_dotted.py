"""import_object: one resolver for task classes, seed functions and entry-point plugins."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from kart_core.dotted import import_object


def test_module_attribute_and_nested_attribute() -> None:
    assert import_object("json.dumps") is json.dumps
    assert import_object("json.decoder.JSONDecoder.decode") is json.decoder.JSONDecoder.decode
    assert import_object("json.decoder:JSONDecoder.decode") is json.decoder.JSONDecoder.decode


def test_missing_module_or_attribute_is_an_import_error_naming_the_path() -> None:
    with pytest.raises(ImportError, match=r"cannot import module 'no_such_package'"):
        import_object("no_such_package.x")
    with pytest.raises(ImportError, match=r"'json\.nope': 'json' has no attribute 'nope'"):
        import_object("json.nope")


def test_a_broken_import_inside_an_existing_module_is_not_hidden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "kart_dotted_broken.py").write_text("import kart_dotted_missing_dependency\nX = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="kart_dotted_missing_dependency"):
        import_object("kart_dotted_broken.X")
    sys.modules.pop("kart_dotted_broken", None)
