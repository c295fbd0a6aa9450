"""places: a task's name from the roots and requires() keys; stable when values change; found by path."""

from __future__ import annotations

import re

import luigi
import pytest

import kart_core
from kart_core.places import (
    MAX_PLACE_LENGTH,
    _unique,
    find_path,
    find_place,
    labelled_requirements,
    place_graph,
    place_name,
    requirement_places,
    root_labels,
)


class PlSource(kart_core.TaskOnKart[int]):
    size = luigi.IntParameter(default=1)


class PlModel(kart_core.TaskOnKart[int]):
    data = kart_core.TaskInstanceParameter()
    strength = luigi.FloatParameter(default=1.0)


class PlReport(kart_core.TaskOnKart[int]):
    strength = luigi.FloatParameter(default=1.0)
    size = luigi.IntParameter(default=1)

    def requires(self):
        source = PlSource(size=self.size)
        return {"models": [PlModel(data=source, strength=self.strength)], "raw": source}


class PlChain(kart_core.TaskOnKart[int]):
    depth = luigi.IntParameter()

    def requires(self):
        return PlChain(depth=self.depth - 1) if self.depth else []


class PlBroken(kart_core.TaskOnKart[int]):
    def requires(self):
        return {"oops": "not a task"}


def test_labels_follow_dict_keys_list_positions_and_task_parameters() -> None:
    report = PlReport()
    assert [label for label, _ in labelled_requirements(report)] == ["models.0", "raw"]
    assert [label for label, _ in labelled_requirements(PlModel(data=PlSource()))] == ["data"]
    assert [label for label, _ in labelled_requirements(PlChain(depth=1))] == ["0"]
    with pytest.raises(kart_core.errors.TaskDefinitionError, match=r"PlBroken.requires\(\) returned str"):
        labelled_requirements(PlBroken())


def test_places_name_roots_then_shortest_paths_and_ignore_values() -> None:
    def places(strength: float, size: int) -> dict[str, str]:
        graph = place_graph([PlReport(strength=strength, size=size), PlReport(strength=9.0, size=size)])
        return {
            f"{type(graph.nodes[key]).__name__}:{graph.nodes[key].make_unique_id()}": p
            for key, p in graph.places.items()
        }

    first, second = places(1.0, 1), places(2.0, 3)
    assert (
        sorted(first.values())
        == sorted(second.values())
        == [
            "PlModel__PlReport.models.0",
            "PlModel__PlReport_2.models.0",
            "PlReport",
            "PlReport_2",
            "PlSource__PlReport.raw",  # shared by both roots: the first root's path, the shorter key path
        ]
    )
    assert set(first) != set(second)  # the unique ids changed, the places did not


def test_find_place_follows_the_path_without_walking_the_graph() -> None:
    roots = [PlReport(strength=2.0), PlReport(strength=3.0)]
    graph = place_graph(roots)
    for key, place in graph.places.items():
        task, deps = find_place(roots, place)
        assert task is graph.nodes[key] or kart_core.node_key(task) == key
        assert [kart_core.node_key(d) for d in deps] == graph.upstream[key]
    assert find_place(roots, "PlModel__PlReport.models.7") is None
    assert find_place(roots, "PlSource__PlReport.models.0") is None  # the path leads to a PlModel
    assert find_place(roots, "Nothing") is None


def test_requirement_places_extend_the_path_and_match_unless_a_shorter_path_wins() -> None:
    roots = [PlReport(strength=2.0)]
    graph = place_graph(roots)
    by_class = {type(task).__name__: key for key, task in graph.nodes.items()}
    model = graph.nodes[by_class["PlModel"]]
    # The model's source is reached from the root directly (PlSource__PlReport.raw), a shorter path.
    assert requirement_places("PlModel__PlReport.models.0", model) == {
        by_class["PlSource"]: "PlSource__PlReport.models.0.data"
    }
    assert graph.places[by_class["PlSource"]] == "PlSource__PlReport.raw"
    assert requirement_places("PlReport", roots[0]) == {
        by_class["PlModel"]: "PlModel__PlReport.models.0",
        by_class["PlSource"]: "PlSource__PlReport.raw",
    }
    assert requirement_places("PlChain__PlChain.0.0--0123456789", PlChain(depth=3)) == {}


def test_deep_places_are_compacted_to_the_limit_with_a_hash() -> None:
    graph = place_graph([PlChain(depth=150)])
    places = list(graph.places.values())
    assert len(set(places)) == 151 and max(map(len, places)) == MAX_PLACE_LENGTH == 40
    # PlChain__PlChain and 12 steps of ".0" fit in 40 characters and stay as they are; deeper ones are
    # the class, the root, the last step and a hash of the full place.
    assert places[12] == "PlChain__PlChain" + ".0" * 12 and places[13] != "PlChain__PlChain" + ".0" * 13
    assert all(re.fullmatch(r"PlChain__PlChain\.0--[a-z2-7]{8}", place) for place in places[13:])
    assert graph.paths[graph.order[13]] == "PlChain" + ".0" * 13  # the full path, of which the place is a compaction
    # No path to follow: found by walking the task objects, with the full path for the places below it.
    assert find_place([PlChain(depth=150)], places[-1])[0].depth == 0
    assert find_path([PlChain(depth=150)], places[100]) == (PlChain(depth=50), "PlChain" + ".0" * 100)
    assert find_place([PlChain(depth=150)], places[3])[0].depth == 147
    assert find_place([PlChain(depth=150)], "PlChain__PlChain.0--aaaaaaaa") is None
    assert find_place([PlChain(depth=150)], places[100] + "-2") is None  # renamed on a clash: place_graph decides
    assert requirement_places(places[100], PlChain(depth=50), "PlChain" + ".0" * 100) == {graph.order[101]: places[101]}


def test_compaction_keeps_the_named_key_before_a_list_position() -> None:
    path = "PlReport.models.0.data.raw.models.0"
    place = place_name("PlModel", path)
    assert re.fullmatch(r"PlModel__PlReport\.models\.0--[a-z2-7]{8}", place)
    assert place_name("PlModel", path) == place and place_name("PlModel", path + ".1") != place
    assert place_name("PlModel", "PlReport.models.0") == "PlModel__PlReport.models.0"  # short: as it is
    # A long class name is cut from the right, before the hash.
    assert re.fullmatch(r"A{30}--[a-z2-7]{8}", place_name("A" * 60, "PlReport.raw"))


def test_clashing_places_get_numbered_suffixes_in_breadth_first_order() -> None:
    assert _unique({"a": "X--abcdefgh", "b": "Y", "c": "X--abcdefgh", "d": "X--abcdefgh"}) == {
        "a": "X--abcdefgh",
        "b": "Y",
        "c": "X--abcdefgh-2",
        "d": "X--abcdefgh-3",
    }
    # A root class already named like a numbered label: the next root of the base class takes the next number.
    assert root_labels([PlChain_2(), PlChain(depth=0), PlChain(depth=1)]) == ["PlChain_2", "PlChain", "PlChain_3"]
    graph = place_graph([PlChain_2(), PlChain(depth=0), PlChain(depth=1)])
    assert sorted(graph.places.values()) == ["PlChain", "PlChain_2", "PlChain_3"]
    assert find_place([PlChain_2(), PlChain(depth=0), PlChain(depth=1)], "PlChain_3")[0].depth == 1


class PlChain_2(kart_core.TaskOnKart[int]):  # noqa: N801 - named like the label of a second PlChain root
    pass


class PlCounted(kart_core.TaskOnKart[int]):
    """A chain whose requires() counts its calls, by depth."""

    depth = luigi.IntParameter()
    calls: dict[int, int] = {}  # noqa: RUF012 - the test resets it

    def requires(self):
        PlCounted.calls[self.depth] = PlCounted.calls.get(self.depth, 0) + 1
        return {"below": PlCounted(depth=self.depth - 1)} if self.depth else []


def test_place_graph_calls_requires_once_per_task_with_the_unique_ids() -> None:
    PlCounted.calls = {}
    graph = place_graph([PlCounted(depth=3)])
    assert sorted(graph.places.values()) == [
        "PlCounted",
        "PlCounted__PlCounted.below",
        "PlCounted__PlCounted.below.below",
        "PlCounted__PlCounted.below.below.below",
    ]
    # node_key (the unique id) and the labels read the same memo of requires().
    assert PlCounted.calls == {3: 1, 2: 1, 1: 1, 0: 1}
