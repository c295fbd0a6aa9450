"""Tiny file datasets, so the project needs nothing beyond kedro (no kedro-datasets)."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
from kedro.io import AbstractDataset, AbstractVersionedDataset, Version


class CsvDataset(AbstractDataset[pd.DataFrame, pd.DataFrame]):
    """A CSV file read and written with pandas (no index)."""

    def __init__(self, filepath: str) -> None:
        self._filepath = Path(filepath)

    def load(self) -> pd.DataFrame:
        return pd.read_csv(self._filepath)

    def save(self, data: pd.DataFrame) -> None:
        self._filepath.parent.mkdir(parents=True, exist_ok=True)
        data.to_csv(self._filepath, index=False)

    def _exists(self) -> bool:
        return self._filepath.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


class JsonDataset(AbstractDataset[Any, Any]):
    """A JSON file."""

    def __init__(self, filepath: str) -> None:
        self._filepath = Path(filepath)

    def load(self) -> Any:
        return json.loads(self._filepath.read_text())

    def save(self, data: Any) -> None:
        self._filepath.parent.mkdir(parents=True, exist_ok=True)
        self._filepath.write_text(json.dumps(data, indent=2, sort_keys=True))

    def _exists(self) -> bool:
        return self._filepath.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


class VersionedJsonDataset(AbstractVersionedDataset[Any, Any]):
    """A JSON file with Kedro versioning (``versioned: true``): each save is a new version folder."""

    def __init__(self, filepath: str, version: Version | None = None) -> None:
        super().__init__(PurePosixPath(filepath), version)

    def load(self) -> Any:
        return json.loads(Path(self._get_load_path()).read_text())

    def save(self, data: Any) -> None:
        path = Path(self._get_save_path())
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2, sort_keys=True))

    def _exists(self) -> bool:
        try:
            return Path(self._get_load_path()).exists()
        except Exception:  # no version saved yet
            return False

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "version": self._version}
