"""A load a child process relays to its run carries the entry it read, stamp included, as the manifest's reader gives
it: the stamp a tuple (an Entry stays hashable and equal to the committed one), not the JSON list it travels as."""

from __future__ import annotations

from pathlib import Path

import kart_core
from kart_core import child_loads
from kart_core.manifest import Entry


class CeValue(kart_core.TaskOnKart[int]):
    def run(self) -> None:
        self.dump(1)


def test_a_relayed_entry_keeps_its_stamp_as_a_tuple(tmp_path: Path) -> None:
    task = CeValue(workspace_directory=str(tmp_path / "ws"))
    record = task.output().record
    assert record is not None
    entry = Entry(size=5, digest="xxh3_128:00", commit="c1", sealed=False, owner=None, stamp=(12, 3456))
    folder = child_loads.new_folder()
    child_loads.make_folder(folder)
    try:
        child_loads.Relay("CeValue[x]", 1, folder).note_load(record, entry)
        (relayed,) = child_loads.collect(folder)
    finally:
        child_loads.remove(folder)
    assert relayed.entry == entry and relayed.entry.stamp == (12, 3456)
    assert hash(relayed.entry) == hash(entry)
