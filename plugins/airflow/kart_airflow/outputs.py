"""A kart task's outputs as paths and URIs (what Airflow Assets, XCom and lineage carry). Pure: no Airflow import.

Two kinds of URI, for two questions:

- ``output_uri``/``output_uris``: where the bytes are — an object-storage URL as is, a local path as its
  absolute ``file://`` URI. XCom and OpenLineage datasets name outputs so (OpenLineage names datasets by
  their physical location).
- ``asset_uri``/``asset_uris``: which output it is — the identity of an Airflow Asset, the same from every
  checkout, working directory and machine. An output inside a local workspace is named by its
  workspace-relative path under the ``x-kart`` scheme and an Asset namespace
  (``x-kart://workspace/mlpipeline/tasks/Train_<id>.pkl``; Airflow leaves ``x-`` schemes as written,
  AIP-60); an object-storage output by its URL; only an output outside any workspace (a bare
  ``make_target`` by path) by its absolute ``file://`` URI. The namespace (default ``workspace``) keeps
  apart two workspaces that one Airflow deployment schedules (prod and staging, two teams): the
  relative path alone would make their outputs of one task one Asset.
"""

from __future__ import annotations

import os
import pathlib
import re
import urllib.parse
from typing import Any

from luigi.task import flatten

import kart_core

__all__ = [
    "ASSET_SCHEME",
    "DEFAULT_ASSET_NAMESPACE",
    "asset_uri",
    "asset_uris",
    "check_asset_namespace",
    "output_paths",
    "output_uri",
    "output_uris",
    "xcom_path",
]

ASSET_SCHEME = "x-kart"
DEFAULT_ASSET_NAMESPACE = "workspace"
# The URI's authority: kept as written by Airflow (no normalizer for x- schemes), so lowercase only, or
# "Prod" in a producer's DAG file and "prod" in a consumer's would be two Assets that never meet.
_NAMESPACE = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")


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
    """The location URIs of every output of the task (``output_uri``), in ``output()`` order."""
    return [output_uri(path) for path in output_paths(task)]


def check_asset_namespace(namespace: Any) -> str:
    """``namespace`` when it can name an Asset namespace (``x-kart://<namespace>/…``), else a named error.

    Args:
        namespace: 1 to 63 characters: lowercase letters, digits, ``.``, ``-``, ``_``, starting with a
            letter or digit (a DNS label's alphabet plus ``_``: URI-safe as an authority, no escaping).

    Returns:
        ``namespace`` unchanged.

    Raises:
        SettingValueError: (a ValueError) naming the value and the rule.
    """
    if isinstance(namespace, str) and _NAMESPACE.fullmatch(namespace):
        return namespace
    raise kart_core.errors.SettingValueError(
        f"kart_airflow: Asset namespace {namespace!r} cannot name Assets x-kart://<namespace>/…: use 1 to 63 "
        "lowercase letters, digits, '.', '-' or '_', starting with a letter or digit (e.g. 'prod', 'team-a')."
    )


def asset_uri(target: Any, namespace: str = DEFAULT_ASSET_NAMESPACE) -> str:
    """The Airflow Asset URI of one output target: the same wherever the checkout and workspace lie.

    Args:
        target: a kart output target (``TaskOnKart.output()`` item).
        namespace: the Asset namespace of outputs in a local workspace (``check_asset_namespace``; not
            checked here, ``asset_uris`` and ``to_dag`` check it once).

    Returns:
        ``x-kart://{namespace}/{workspace-relative path}`` (percent-encoded, ``/`` kept) for an output in
        a local workspace; the URL for object storage (``s3://…``, ``gs://…``, ``memory://…``); the
        absolute ``file://`` URI (``output_uri``) for a local output that belongs to no workspace (the
        namespace applies to neither: both name one place already).
    """
    path = str(target.path())
    if "://" in path and not path.startswith("file://"):
        return path  # one place for every checkout and machine already
    # The workspace-relative name kart's integrity records and signatures use (a full path for a
    # target made by path, outside any workspace).
    name = getattr(target, "signing_name", None)
    if isinstance(name, str) and name and "://" not in name and not os.path.isabs(name):
        return f"{ASSET_SCHEME}://{namespace}/" + urllib.parse.quote(name)
    return output_uri(path.removeprefix("file://"))


def asset_uris(task: Any, namespace: str = DEFAULT_ASSET_NAMESPACE) -> list[str]:
    """The Airflow Asset URIs of every output of the task (``asset_uri``), in ``output()`` order.

    What ``to_dag`` declares as the task's outlets and its dependants' inlets; a DAG in another file
    scheduled on a kart output can name it with ``[Asset.ref(uri=uri) for uri in asset_uris(task)]``,
    passing the producer DAG's ``asset_namespace`` as ``namespace`` when it sets one.

    Raises:
        SettingValueError: ``namespace`` is not a valid Asset namespace (``check_asset_namespace``).
    """
    check_asset_namespace(namespace)
    return [asset_uri(target, namespace) for target in flatten(task.output())]


def xcom_path(paths: list[str]) -> str | list[str]:
    """The path(s) pushed to XCom: one string for the usual single output, else the list."""
    return paths[0] if len(paths) == 1 else paths
