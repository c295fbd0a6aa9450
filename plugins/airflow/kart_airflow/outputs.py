"""A kart task's outputs as paths and URIs (what Airflow Assets and XCom carry). Pure: no Airflow import."""

from __future__ import annotations

import os
import pathlib
from typing import Any

from luigi.task import flatten

__all__ = ["output_paths", "output_uri", "xcom_path"]


def output_paths(task: Any) -> list[str]:
    """Every output path of the task, in ``output()`` order."""
    return [target.path() for target in flatten(task.output())]


def output_uri(path: str) -> str:
    """A URI for an output path: object-storage URLs unchanged, local paths as absolute ``file://`` URIs."""
    if "://" in path:
        return path
    return pathlib.Path(os.path.abspath(path)).as_uri()


def xcom_path(paths: list[str]) -> str | list[str]:
    """The path(s) pushed to XCom: one string for the usual single output, else the list."""
    return paths[0] if len(paths) == 1 else paths
