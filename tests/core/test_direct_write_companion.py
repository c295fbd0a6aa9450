"""A companion file written beside the name ``path()`` hands out (``splitext(path)[0] + ".schema.json"``) lands
beside the output at the commit, as in gokart (attacker at15 F2).

Before: the commit moved the output only; the companion stayed under the private name (``.kart-took-{hex}.…``),
so a reader of the output found no companion (a first run), or the companion of the run before beside the new
output (a rerun): the new csv paired with the old schema, silently. Now each file named with the run's private
prefix is moved to the name without it with the run's outputs (a side file: recorded nowhere; one that names
another output of the task gets its record), and a failed run removes it. Local disk and moto S3; threads and
process workers.
"""

from __future__ import annotations

import json
import os
from typing import Any

import luigi
import pytest
from stored_text import get_text, put_text

import kart_core
from kart_core.storage import storage_for

LEASE = 30.0  # the ``where`` fixture's lease (tests/core/conftest.py)


class Export(kart_core.TaskOnKart[Any]):
    """Writes a csv by path and its schema beside it; ``fail``: raises after both."""

    kind = luigi.Parameter(default="int", significant=False)
    fail = luigi.BoolParameter(default=False, significant=False)

    def output(self) -> Any:
        return self.make_target("export/table.csv")

    def run(self) -> None:
        path = self.output().path()
        put_text(path, "a\n1\n2\n" if self.kind == "int" else "a\n1.5\n2.5\n")
        put_text(os.path.splitext(path)[0] + ".schema.json", json.dumps({"a": self.kind}))
        if self.fail:
            raise RuntimeError("half way")


class Use(kart_core.TaskOnKart[Any]):
    def requires(self) -> Any:
        return Export(kind=os.environ.get("KIND", "int"), workspace_directory=self.workspace_directory)

    def run(self) -> None:
        path = self.input().path()
        schema = json.loads(get_text(os.path.splitext(path)[0] + ".schema.json"))
        self.dump({"schema": schema["a"], "data": get_text(path).split()[1:]})


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_a_companion_written_beside_the_private_name_lands_beside_the_output(
    where: str, executor: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    workers = 2 if executor == "process" else 1
    export = Export(workspace_directory=where)
    schema = os.path.splitext(export.output().path())[0] + ".schema.json"
    put_text(export.output().path(), "a\n1\n2\n")  # as gokart left it: the csv and its schema
    put_text(schema, json.dumps({"a": "int"}))
    monkeypatch.setenv("KIND", "float")
    kart_core.build(
        Export(kind="float", rerun=True, workspace_directory=where),
        workers=workers,
        executor=executor,
        return_value=False,
        log_level=50,
    )
    value = kart_core.build(
        Use(rerun=True, workspace_directory=where), workers=workers, executor=executor, log_level=50
    )
    assert value == {"schema": "float", "data": ["1.5", "2.5"]}  # before: {'schema': 'int', ...}
    assert json.loads(get_text(schema)) == {"a": "float"}
    left = [entry.relative for entry in storage_for(where).walk(where, include_temporary=True)]
    assert not [name for name in left if ".kart-took-" in name]

    with pytest.raises(kart_core.GokartBuildError, match="half way"):
        kart_core.build(
            Export(kind="int", fail=True, rerun=True, workspace_directory=where),
            workers=workers,
            executor=executor,
            return_value=False,
            log_level=50,
        )
    assert json.loads(get_text(schema)) == {"a": "float"}  # the failed run's companion never landed
    left = [entry.relative for entry in storage_for(where).walk(where, include_temporary=True)]
    assert not [name for name in left if ".kart-took-" in name]  # and was removed


class Shards(kart_core.TaskOnKart[Any]):
    """Writes two shards by path and dumps the list of their final paths as its index (attacker at15 F4)."""

    def output(self) -> Any:
        return {
            "s0": self.make_target("shards/s0.csv"),
            "s1": self.make_target("shards/s1.csv"),
            "index": self.make_target("shards/index.pkl"),
        }

    def run(self) -> None:
        for key in ("s0", "s1"):
            put_text(self.output()[key].path(), "a\n1\n2\n")
        self.dump([self.output()[key].final_path() for key in ("s0", "s1")], "index")


class Count(kart_core.TaskOnKart[Any]):
    def requires(self) -> Any:
        return Shards(workspace_directory=self.workspace_directory)

    def run(self) -> None:
        self.dump(sum(len(get_text(path).split()[1:]) for path in self.load("index")))


def test_final_path_names_the_output_where_its_commit_puts_it(where: str) -> None:
    assert kart_core.build(Count(workspace_directory=where), log_level=50) == 4
    shards = Shards(workspace_directory=where)
    assert shards.output()["index"].load() == [shards.output()[key].path() for key in ("s0", "s1")]
