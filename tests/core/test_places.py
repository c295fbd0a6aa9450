"""places: a task's name from the roots and requires() keys; stable when values change; found by path."""

from __future__ import annotations

import re

import luigi
import pytest

import kart_core
from kart_core.places import (
    MAX_PLACE_LENGTH,
    Trail,
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
    model, trail = find_path(roots, "PlModel__PlReport.models.0")
    assert trail == Trail("PlReport.models.0", positions=0, width=1, trailing=1)
    # The model's source is reached from the root directly (PlSource__PlReport.raw), a shorter path.
    assert requirement_places(model, trail) == {by_class["PlSource"]: "PlSource__PlReport.models.0.data"}
    assert graph.places[by_class["PlSource"]] == "PlSource__PlReport.raw"
    assert requirement_places(roots[0], Trail("PlReport")) == {
        by_class["PlModel"]: "PlModel__PlReport.models.0",
        by_class["PlSource"]: "PlSource__PlReport.raw",
    }


def test_deep_places_are_compacted_to_the_limit_with_their_steps() -> None:
    graph = place_graph([PlChain(depth=150)])
    places = list(graph.places.values())
    assert len(set(places)) == 151 and max(map(len, places)) <= MAX_PLACE_LENGTH == 40
    # PlChain__PlChain and 12 steps of ".0" fit in 40 characters and stay as they are; deeper ones are
    # the class, the root, the last step and the steps: a chain's only count (13 steps: "n").
    assert places[12] == "PlChain__PlChain" + ".0" * 12 and places[13] == "PlChain__PlChain.0--n"
    assert all(re.fullmatch(r"PlChain__PlChain\.0--[a-z2-7]{1,3}", place) for place in places[13:])
    assert graph.paths[graph.order[13]] == "PlChain" + ".0" * 13  # the full path, of which the place is a compaction
    # Followed from the root, one requires() per step, with the full path for the places below it.
    assert find_place([PlChain(depth=150)], places[-1])[0].depth == 0
    task, trail = find_path([PlChain(depth=150)], places[100])
    assert (task, trail.path) == (PlChain(depth=50), "PlChain" + ".0" * 100)
    assert find_place([PlChain(depth=150)], places[3])[0].depth == 147
    assert find_place([PlChain(depth=150)], "PlChain__PlChain.0--aaaaaaaa") is None  # a step beyond the chain
    assert find_place([PlChain(depth=150)], "PlChain__PlChain.0--0") is None  # not base32: walked, not found
    assert find_place([PlChain(depth=150)], "PlSource__PlChain.0--n") is None  # leads to a PlChain: walked, not found
    assert find_place([PlChain(depth=150)], places[100] + "-2") is None  # renamed on a clash: place_graph decides
    assert requirement_places(task, trail) == {graph.order[101]: places[101]}


class PlWide(kart_core.TaskOnKart[int]):
    """Node ``index`` of ``layer``, 4 wide; requires two of the layer below, and counts its requires() calls."""

    layer = luigi.IntParameter()
    index = luigi.IntParameter()
    scale = luigi.FloatParameter(default=1.0)
    calls: dict[tuple[int, int], int] = {}  # noqa: RUF012 - the test resets it

    def requires(self):
        PlWide.calls[self.layer, self.index] = PlWide.calls.get((self.layer, self.index), 0) + 1
        below = sorted({self.index, (self.index + 1) % 4})
        return [PlWide(layer=self.layer - 1, index=i, scale=self.scale) for i in below] if self.layer else []


def test_a_compacted_place_is_followed_with_one_requires_per_step_and_ignores_values() -> None:
    roots = [PlWide(layer=30, index=i) for i in range(4)]
    graph = place_graph(roots)
    deep = {key: place for key, place in graph.places.items() if "--" in place}
    assert len(deep) > 60 and all(len(place) <= MAX_PLACE_LENGTH and "---" not in place for place in deep.values())
    for n, (key, place) in enumerate(deep.items()):
        PlWide.calls = {}
        # New task objects (luigi caches them, and kart their requires()): the same places, other unique ids.
        task, trail = find_path([PlWide(layer=30, index=i, scale=n + 2.0) for i in range(4)], place)
        assert (task.layer, task.index) == (graph.nodes[key].layer, graph.nodes[key].index)
        assert trail.path == graph.paths[key]
        assert sum(PlWide.calls.values()) == 30 - task.layer  # one requires() per step: no walk
    # Another parameter value everywhere: other unique ids, the same places.
    other = place_graph([PlWide(layer=30, index=i, scale=2.0) for i in range(4)])
    assert [other.places[key] for key in other.order] == [graph.places[key] for key in graph.order]
    assert set(other.places) != set(graph.places)


class PlFan(kart_core.TaskOnKart[int]):
    """A root requiring ``size`` tasks: all sources but the second, a PlWide graph 20 layers deep."""

    size = luigi.IntParameter()

    def requires(self):
        return [PlWide(layer=20, index=0) if i == 1 else PlSource(size=i) for i in range(self.size)]


def test_compacted_places_keep_while_each_list_on_the_path_stays_within_a_power_of_two() -> None:
    def deepest(size: int) -> str:
        graph = place_graph([PlFan(size=size)])
        return graph.places[kart_core.node_key(PlWide(layer=0, index=3))]

    # The first step takes position 1 of the list: 2 bits for 3 or 4 entries, 3 bits for 5, which
    # moves the bits of the later steps (PlWide's positions) and so renames the compacted place.
    assert deepest(3) == deepest(4) != deepest(5)
    assert all(re.fullmatch(r"PlWide__PlFan\.1--[a-z2-7]+", deepest(size)) for size in (3, 5))
    for size in (3, 4, 5):
        assert find_place([PlFan(size=size)], deepest(size))[0] == PlWide(layer=0, index=3)


def test_a_place_whose_steps_do_not_fit_beside_the_root_is_compacted_with_a_hash() -> None:
    steps = Trail("R" * 10).step("a", 1, 1)
    for _ in range(40):  # 41 steps, each the second of two: 41 bits, 9 base32 characters
        steps = steps.step("b", 1, 1)
    assert place_name("PlModel", steps) == "PlModel__" + "R" * 10 + ".b--a" + "7" * 8 + "b"
    for _ in range(60):  # 101 bits: 21 characters, beside PlModel__RRRRRRRRRR they would exceed 40
        steps = steps.step("c", 1, 1)
    hashed = place_name("PlModel", steps)
    assert re.fullmatch(r"PlModel__R{10}\.c---[a-z2-7]{8}", hashed)
    assert hashed == place_name("PlModel", steps.path)  # the hash is of the path only


def test_compaction_keeps_the_named_key_before_a_list_position() -> None:
    path = "PlReport.models.0.data.raw.models.0"
    trail = Trail(path, positions=0b1000, width=5, trailing=1)
    assert place_name("PlModel", trail) == "PlModel__PlReport.models.0--bi"
    # A bare path (no positions known): compacted with a hash of the full place.
    place = place_name("PlModel", path)
    assert re.fullmatch(r"PlModel__PlReport\.models\.0---[a-z2-7]{8}", place)
    assert place_name("PlModel", path) == place and place_name("PlModel", path + ".1") != place
    assert place_name("PlModel", "PlReport.models.0") == "PlModel__PlReport.models.0"  # short: as it is
    # A long class name is cut from the right, before the hash; the root's label would not fit.
    assert re.fullmatch(r"A{29}---[a-z2-7]{8}", place_name("A" * 60, Trail("PlReport.raw", 0, 1, 1)))


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


class PlRaising(kart_core.TaskOnKart[int]):
    key = luigi.Parameter(default="a")

    def requires(self):
        return {"x": PlSource()}[self.key]


class PlAboveBroken(kart_core.TaskOnKart[int]):
    def requires(self):
        return {"broken": PlRaising(key="missing")}


def test_an_exception_from_requires_keeps_its_type_and_names_the_task() -> None:
    for walk in (
        lambda: place_graph([PlAboveBroken()]),
        lambda: find_place([PlAboveBroken()], "PlRaising__PlAboveBroken.broken"),
        lambda: kart_core.build(PlAboveBroken(), log_level=50),
    ):
        with pytest.raises(Exception, match="missing") as raised:
            walk()
        error = raised.value if isinstance(raised.value, KeyError) else raised.value.__cause__
        assert isinstance(error, KeyError)
        assert error.__notes__ == [
            "kart: raised by requires() of PlRaising(key=missing); fix it, or the parameters that reach it."
        ]
