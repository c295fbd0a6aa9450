"""A kart task's outputs as paths and URIs (what Airflow Assets and XCom carry). Pure: no Airflow import."""

from __future__ import annotations

import os
import pathlib
import urllib.parse
from typing import Any

from luigi.task import flatten

__all__ = ["output_paths", "output_uri", "output_uris", "xcom_path"]


def output_paths(task: Any) -> list[str]:
    """Every output path of the task, in ``output()`` order."""
    return [target.path() for target in flatten(task.output())]


def output_uri(path: str) -> str:
    """A URI for an output path: object-storage URLs unchanged, local paths as absolute ``file://`` URIs.

    The same string as ``pathlib.Path(os.path.abspath(path)).as_uri()`` on POSIX (percent-encoded,
    ``/`` kept), built without a Path object: to_dag makes one per output of every task.
    """
    if "://" in path:
        return path
    if os.name != "posix":
        return pathlib.Path(os.path.abspath(path)).as_uri()
    return "file://" + urllib.parse.quote(os.path.abspath(path))


def output_uris(task: Any) -> list[str]:
    """The URIs of every output of the task (what its outlet Assets are)."""
    return [output_uri(path) for path in output_paths(task)]


def xcom_path(paths: list[str]) -> str | list[str]:
    """The path(s) pushed to XCom: one string for the usual single output, else the list."""
    return paths[0] if len(paths) == 1 else paths
