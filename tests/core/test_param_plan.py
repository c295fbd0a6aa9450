"""config_frozen: one look at luigi's config per walk; a walk that is no build leaves the change to the next build."""

from __future__ import annotations

from pathlib import Path

import pytest

import kart_core


def test_a_frozen_walk_that_is_no_build_leaves_the_config_change_to_the_next_build(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with kart_core.config_frozen():
        pass  # a build saw this config
    monkeypatch.setenv("KART_WORKSPACE", str(tmp_path / "elsewhere"))
    with kart_core.config_frozen(record_build=False) as changed:  # kart_airflow.to_dag's walk
        assert changed is False
        with kart_core.config_frozen() as inner:  # nested: the outer freeze decides
            assert inner is False
    with kart_core.config_frozen() as changed:
        assert changed is True  # the next build still sees the change
    with kart_core.config_frozen() as changed:
        assert changed is False
