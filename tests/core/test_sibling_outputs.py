"""TaskOnKart.kart_sibling_outputs_if_complete: a sibling task's check by its unique id, as its own would answer."""

from __future__ import annotations

import json
from pathlib import Path

import luigi
import luigi.task_register
import pytest

import kart_core
from kart_core.commit_marker import writing_marker
from kart_core.file_processor import make_file_processor
from kart_core.workspace import MANIFEST, log_task_path

_PICKLE = make_file_processor("x.pkl")


class Keyed(kart_core.TaskOnKart[int]):
    """One output per ``name``, at a path made of the name (as kart_kedro's node runs)."""

    name = luigi.Parameter()
    kart_compact_run_logs = True
    kart_run_record_in_manifest = True  # so a complete check may hand its run record back

    def output(self):
        return self.make_target(f"keyed/{self.name}.pkl", processor=_PICKLE)

    def run(self) -> None:
        self.dump(len(self.name))


def _check(template: Keyed, sibling: Keyed, run: bool = True) -> kart_core.SiblingOutputs:
    return template.kart_sibling_outputs_if_complete(sibling.make_unique_id(), [f"keyed/{sibling.name}.pkl"], run=run)


@pytest.fixture
def pair(workspace: str) -> tuple[Keyed, Keyed]:
    return Keyed(name="template", workspace_directory=workspace), Keyed(name="sibling", workspace_directory=workspace)


def test_a_missing_sibling_is_decided_incomplete(pair: tuple[Keyed, Keyed]) -> None:
    template, sibling = pair
    assert _check(template, sibling) == kart_core.SiblingOutputs(True, None)
    assert not sibling.complete()


def test_a_complete_sibling_names_what_outputs_if_complete_names(pair: tuple[Keyed, Keyed]) -> None:
    template, sibling = pair
    kart_core.build(sibling, reset_register=False, return_value=False)
    found = _check(template, sibling)
    assert found.decided and found.found == kart_core.outputs_if_complete(sibling)
    assert found.found is not None and found.found.run is not None  # the run record, from the same read
    light = _check(template, sibling, run=False)
    assert light.found is not None and light.found.digests == found.found.digests and light.found.run is None
    assert _check(template, template) == kart_core.SiblingOutputs(True, None)  # the template itself never ran


def test_an_unfinished_commit_or_by_path_write_is_incomplete(pair: tuple[Keyed, Keyed]) -> None:
    template, sibling = pair
    kart_core.build(sibling, reset_register=False, return_value=False)
    path = str(sibling.output().path())
    marker = Path(writing_marker(path))
    marker.write_text("")  # a by-path writer killed before its commit
    assert _check(template, sibling) == kart_core.SiblingOutputs(True, None)
    assert not sibling.complete()
    marker.unlink()
    assert _check(template, sibling).found is not None


def test_a_truncated_output_is_complete_but_named_by_its_record(pair: tuple[Keyed, Keyed]) -> None:
    """As complete(): existence counts; the digest is the committed one, so a load refuses the damaged bytes."""
    template, sibling = pair
    kart_core.build(sibling, reset_register=False, return_value=False)
    committed = kart_core.output_digests(sibling)
    Path(sibling.output().path()).write_bytes(b"\x80")
    found = _check(template, sibling)
    assert found.found is not None and found.found.digests == committed
    with pytest.raises(kart_core.errors.LoadError), kart_core.verify_loads():
        sibling.output().load()


def test_without_a_manifest_only_the_sibling_can_tell(pair: tuple[Keyed, Keyed]) -> None:
    """Its digests are then read from the bytes (output_digests): not this check's to name."""
    template, sibling = pair
    kart_core.build(sibling, reset_register=False, return_value=False)
    Path(log_task_path(sibling, MANIFEST)).unlink()
    assert _check(template, sibling) == kart_core.SiblingOutputs(False, None)


def test_an_output_its_manifest_does_not_name_is_not_named_by_this_check(pair: tuple[Keyed, Keyed]) -> None:
    """A manifest without the output's entry (written by another kart, edited): its digest is read from the bytes."""
    template, sibling = pair
    kart_core.build(sibling, reset_register=False, return_value=False)
    manifest = Path(log_task_path(sibling, MANIFEST))
    recorded = json.loads(manifest.read_text())
    recorded["outputs"] = {}
    manifest.write_text(json.dumps(recorded))
    assert _check(template, sibling) == kart_core.SiblingOutputs(False, None)
    assert next(iter(kart_core.outputs_if_complete(sibling).digests.values())).startswith("read:")


def test_with_signing_on_only_the_sibling_can_tell(pair: tuple[Keyed, Keyed], monkeypatch: pytest.MonkeyPatch) -> None:
    template, sibling = pair
    kart_core.build(sibling, reset_register=False, return_value=False)
    monkeypatch.setenv("KART_SIGNING_KEY", "a test key of some length")
    assert _check(template, sibling) == kart_core.SiblingOutputs(False, None)


@pytest.mark.parametrize("setting", ["rerun", "strict_check", "modification_time_check"])
def test_a_template_that_reruns_or_checks_inputs_cannot_tell(workspace: str, setting: str) -> None:
    template = Keyed(name="template", workspace_directory=workspace, **{setting: True})
    sibling = Keyed(name="sibling", workspace_directory=workspace)
    assert _check(template, sibling) == kart_core.SiblingOutputs(False, None)


def test_the_sibling_target_is_the_one_its_task_makes(pair: tuple[Keyed, Keyed]) -> None:
    from kart_core.task_targets import sibling_target

    template, sibling = pair
    made, own = sibling_target(template, sibling.make_unique_id(), "keyed/sibling.pkl", _PICKLE), sibling.output()
    assert (made._path, made.record, made.owner) == (own._path, own.record, own.owner)


def test_a_task_made_by_values_is_found_without_making_one(workspace: str) -> None:
    assert Keyed.kart_by_values_if_made(name="found", workspace_directory=workspace) is None
    made = Keyed.kart_by_values(name="found", workspace_directory=workspace)
    assert Keyed.kart_by_values_if_made(name="found", workspace_directory=workspace) is made
    assert Keyed.kart_by_values_if_made(workspace_directory=workspace, name="found") is None  # another order
    luigi.task_register.Register.clear_instance_cache()
    assert Keyed.kart_by_values_if_made(name="found", workspace_directory=workspace) is None
