"""kart_core.identity: gokart's id recipe applied to task objects, defined once and reused by `kart why`."""

from __future__ import annotations

import luigi
import pytest

import kart_core
from kart_core.errors import TaskDefinitionError
from kart_core.hashing import unique_id_from_parts
from kart_core.identity import compute_unique_id, own_code, unique_id_with_upstream, upstream_parts


class IdLeaf(kart_core.TaskOnKart[int]):
    n = luigi.IntParameter(default=1)


class IdInsignificant(kart_core.TaskOnKart[int]):
    pass


class IdExternal(luigi.ExternalTask):
    name = luigi.Parameter(default="raw")


class IdJoin(kart_core.TaskOnKart[int]):
    def requires(self):
        return [IdLeaf(n=2), IdInsignificant(significant=False), IdExternal()]


def test_upstream_parts_hold_kart_ids_and_luigi_params_and_skip_insignificant() -> None:
    task = IdJoin()
    positions, parts = upstream_parts(task.kart_requires())
    assert parts == [IdLeaf(n=2).make_unique_id(), {"name": "raw"}]
    assert [(index, type(dep).__name__) for index, dep in positions] == [(0, "IdLeaf")]


def test_the_id_is_the_hashing_recipe_over_those_parts() -> None:
    task = IdJoin()
    _, parts = upstream_parts(task.kart_requires())
    expected = unique_id_from_parts(parts, {}, "IdJoin")
    assert compute_unique_id(IdJoin(cache_unique_id=False)) == expected == task.make_unique_id()
    assert unique_id_with_upstream(task, parts) == expected


def test_another_upstream_id_gives_another_id() -> None:
    task = IdJoin()
    _, parts = upstream_parts(task.kart_requires())
    assert unique_id_with_upstream(task, ["0" * 32, parts[1]]) != task.make_unique_id()


def test_a_cycle_is_a_task_definition_error() -> None:
    class IdCycle(kart_core.TaskOnKart[int]):
        def requires(self):
            return IdCycle()

    with pytest.raises(TaskDefinitionError, match="IdCycle depends on itself"):
        IdCycle().make_unique_id()


def test_own_code_is_the_source_beyond_the_base() -> None:
    class IdCoded(kart_core.TaskOnKart[int]):
        def run(self) -> None:
            self.dump(3)

    code = own_code(IdCoded, kart_core.TaskOnKart)
    assert "self.dump(3)" in code and "def make_unique_id" not in code


_DEFINED_BY_EXEC = """
import kart_core

class {name}(kart_core.TaskOnKart):
    serialized_task_definition_check = {check}

    def run(self):
        self.dump({value})
"""


def _defined_by_exec(name: str, value: int, check: bool = True) -> type:
    namespace: dict[str, object] = {"__name__": "exec_defined"}
    exec(_DEFINED_BY_EXEC.format(name=name, value=value, check=check), namespace)  # noqa: S102 - no source file
    return namespace[name]  # type: ignore[return-value]


def test_a_task_whose_own_code_has_no_source_is_refused_not_given_an_id_without_it(workspace: str) -> None:
    """gokart raises OSError there; leaving the method out kept the id when run() changed (a stale result)."""
    from kart_core.errors import SourceUnavailableError

    task = _defined_by_exec("IdExecDefined", 1)(workspace_directory=workspace)
    with pytest.raises(SourceUnavailableError, match=r"IdExecDefined\.run: serialized_task_definition_check") as caught:
        task.make_unique_id()
    assert isinstance(caught.value, OSError) and isinstance(caught.value, TaskDefinitionError)
    with pytest.raises(kart_core.GokartBuildError, match="SourceUnavailableError"):
        kart_core.build(task, reset_register=False)


def test_without_the_definition_check_a_task_without_source_still_runs(workspace: str) -> None:
    task = _defined_by_exec("IdExecPlain", 5, check=False)(workspace_directory=workspace)
    assert kart_core.build(task, reset_register=False) == 5


def test_a_method_without_source_inherited_from_a_project_base_counts_too(workspace: str) -> None:
    """gokart's own code is every method beyond TaskOnKart's, a project base class's included."""
    from kart_core.errors import SourceUnavailableError

    base = _defined_by_exec("IdExecBase", 2, check=False)

    class IdFileChild(base):  # type: ignore[misc, valid-type]
        serialized_task_definition_check = True

        def requires(self):  # noqa: D102
            return []

    with pytest.raises(SourceUnavailableError, match=r"IdFileChild\.run"):
        IdFileChild(workspace_directory=workspace).make_unique_id()
