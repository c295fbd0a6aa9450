"""A first commit records its outputs' stamps by writing them over the manifest it claimed, in place
(``kart_core.storage.local.rewrite_claimed``, ``Transaction._stamp_claimed``).

Since 9779214 a first commit wrote its manifest a second time after the moves (a new file renamed over the claimed
one) to record each output's stamp (inode, status-change time), which the move sets. On an ext4 without a journal a
file creation costs 18-833 us (docs/benchmarks.md): that doubled kart's file creations per manifest. The claim now
holds the staged files' stamps (the same inodes; status-change times with as many digits), so the stamps after the
moves are written over the claimed bytes in place: only digits of stamps differ. Real builds, real files; the tasks
are test_damage's.

Since session 22 the stamps after the moves are written over the claimed bytes without encoding the manifest again
(``kart_core.manifest.restamped``: the stamp's digits at the one place its text is found); where that cannot be done
(another inode, another width, the text found twice) the manifest is encoded anew as before.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_damage import TwoOutputs, _manifest

import kart_core as gokart
import kart_core.transaction
from kart_core.manifest import Entry, Input, Manifest, restamp_at, restamped
from kart_core.storage import LocalStorage
from kart_core.storage.local import HeldClaim, rewrite_claimed
from kart_core.target import TargetOnKart


def _stamp(path: str) -> list[int]:
    found = os.stat(path)
    return [found.st_ino, found.st_ctime_ns]


@pytest.fixture
def claims(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, bytes]]:
    """(path, inode, bytes) of each manifest a first commit claimed (``LocalStorage.claim_new`` as it is, observed)."""
    seen: list[tuple[str, int, bytes]] = []
    original = LocalStorage.claim_new

    @contextlib.contextmanager
    def observed(self: LocalStorage, path: str, data: bytes) -> Iterator[bool]:
        with original(self, path, data) as created:
            if created:
                seen.append((path, os.stat(path).st_ino, data))
            yield created

    monkeypatch.setattr(LocalStorage, "claim_new", observed)
    return seen


def test_a_first_commit_stamps_its_outputs_in_the_file_it_claimed(tmp_path: Path, claims: list) -> None:
    task = TwoOutputs(workspace_directory=str(tmp_path))
    gokart.build(task)
    manifest = _manifest(task)
    [(path, inode, claimed)] = [claim for claim in claims if Path(claim[0]) == manifest]
    assert os.stat(manifest).st_ino == inode  # written over in place: no second file (before: another inode)
    final = manifest.read_bytes()
    assert len(final) == len(claimed) and final != claimed
    document = Manifest.from_bytes(final)
    outputs = task.output()
    for target in outputs.values():
        assert isinstance(target, TargetOnKart) and target.record is not None
        assert list(document.outputs[target.record.key].stamp or ()) == _stamp(target.path())  # taken after the move
    assert not [name for name in os.listdir(manifest.parent) if name.startswith(".")]  # no temporary file left
    assert gokart.build(TwoOutputs(workspace_directory=str(tmp_path))) == {"a": "a-v1", "b": "b-v1"}


def test_a_reader_or_a_kill_amid_the_rewrite_finds_the_claimed_manifest_but_for_stamps(
    tmp_path: Path, claims: list
) -> None:
    """Every prefix of the new bytes over the claimed ones (a kill amid the write, or a reader copying the page while
    it is written) parses, and to the claimed manifest with each stamp the old one, the new one or a mix of their
    digits: a stamp that is not the file's makes a load hash that output once, nothing else."""
    task = TwoOutputs(workspace_directory=str(tmp_path))
    gokart.build(task)
    manifest = _manifest(task)
    [(_, _, claimed)] = [claim for claim in claims if Path(claim[0]) == manifest]
    final = manifest.read_bytes()
    before, after = Manifest.from_bytes(claimed), Manifest.from_bytes(final)
    assert before.outputs.keys() == after.outputs.keys()
    for cut in range(len(final) + 1):
        torn = Manifest.from_bytes(final[:cut] + claimed[cut:])
        assert torn.commit == after.commit and torn.run == after.run and torn.side == after.side
        for key, entry in torn.outputs.items():
            assert entry.stamp is not None and entry.stamp[0] == after.outputs[key].stamp[0]  # type: ignore[index]
            assert len(str(entry.stamp[1])) == len(str(after.outputs[key].stamp[1]))  # type: ignore[index]
            assert dataclasses.replace(entry, stamp=None) == dataclasses.replace(after.outputs[key], stamp=None)


def test_rewrite_claimed_writes_only_over_the_bytes_it_was_given(tmp_path: Path) -> None:
    path = tmp_path / "T_1.json"
    path.write_bytes(b'{"stamp":[1,1000]}')
    inode = path.stat().st_ino
    # Another writer's bytes there (a settle that replaced the claimed file): left alone.
    assert rewrite_claimed(str(path), b'{"stamp":[1,1001]}', b'{"stamp":[1,2000]}') is False
    assert path.read_bytes() == b'{"stamp":[1,1000]}'
    assert rewrite_claimed(str(path), b'{"stamp":[1,1000]}', b'{"stamp":[1,2000]}') is True
    assert path.read_bytes() == b'{"stamp":[1,2000]}' and path.stat().st_ino == inode
    with pytest.raises(ValueError, match="in place"):
        rewrite_claimed(str(path), b'{"stamp":[1,2000]}', b'{"stamp":[1,20000]}')
    assert path.read_bytes() == b'{"stamp":[1,2000]}'
    assert rewrite_claimed(str(tmp_path / "absent.json"), b"{}", b"{}") is False
    assert not (tmp_path / "absent.json").exists()


def test_a_held_claim_writes_over_its_own_file_and_never_over_a_file_put_in_its_place(tmp_path: Path) -> None:
    """Since session 24 a first commit writes its stamps through the claim's descriptor (``HeldClaim.rewrite``)
    instead of opening the manifest again by path and reading it back. The file written is the claimed one only
    while it is at the path: one renamed over it or a removal (``st_nlink`` 0) gives False with nothing written,
    as ``rewrite_claimed`` gives for other bytes there; after the claim ends nothing is written either (its
    descriptor's number may name another file by then)."""
    storage = LocalStorage()
    path = tmp_path / "log" / "manifest" / "T_1.json"
    with storage.claim_new(str(path), b'{"stamp":[1,1000]}') as claim:
        assert isinstance(claim, HeldClaim) and claim
        inode = path.stat().st_ino
        assert claim.rewrite(b'{"stamp":[1,1000]}', b'{"stamp":[1,2000]}') is True
        assert path.read_bytes() == b'{"stamp":[1,2000]}' and path.stat().st_ino == inode
        with pytest.raises(ValueError, match="in place"):
            claim.rewrite(b'{"stamp":[1,2000]}', b'{"stamp":[1,20000]}')
        other = tmp_path / "log" / "manifest" / "other.json"
        other.write_bytes(b'{"other":[1,100]}')
        os.replace(other, path)  # another writer's file in its place
        assert claim.rewrite(b'{"stamp":[1,2000]}', b'{"stamp":[1,3000]}') is False
        assert path.read_bytes() == b'{"other":[1,100]}'
    with storage.claim_new(str(tmp_path / "T_2.json"), b"{}") as claim:
        os.remove(tmp_path / "T_2.json")  # removed while claimed
        assert claim.rewrite(b"{}", b"{}") is False
        assert not (tmp_path / "T_2.json").exists()
    with storage.claim_new(str(tmp_path / "T_3.json"), b"[1]") as claim:
        pass
    assert claim.rewrite(b"[1]", b"[2]") is False  # the claim has ended
    assert (tmp_path / "T_3.json").read_bytes() == b"[1]"
    with storage.claim_new(str(tmp_path / "T_3.json"), b"[1]") as again:
        assert again is False


def test_a_first_commit_opens_its_manifest_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The claim's descriptor writes the stamps: the manifest is opened for writing only by its creation (the claim;
    before session 24 again to write the stamps, ``rewrite_claimed``); and
    the staged files' stamps in the claim come from their dumps' ``fstat`` (no ``stat`` of a staged file by path),
    yet equal what a ``stat`` gives."""
    opened: list[str] = []
    stated: list[str] = []
    original_open, original_stat = os.open, os.stat

    def observed_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR) and not flags & os.O_CREAT:  # a write to a file already there
            opened.append(os.fspath(path))
        return original_open(path, flags, *args, **kwargs)

    def observed_stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if not isinstance(path, int):
            stated.append(os.fspath(path))
        return original_stat(path, *args, **kwargs)

    task = TwoOutputs(workspace_directory=str(tmp_path))
    claimed: list[bytes] = []
    original_claim = LocalStorage.claim_new

    @contextlib.contextmanager
    def observed_claim(self: LocalStorage, path: str, data: bytes) -> Iterator[object]:
        with original_claim(self, path, data) as created:
            claimed.append(data)
            yield created

    monkeypatch.setattr(LocalStorage, "claim_new", observed_claim)
    monkeypatch.setattr(os, "open", observed_open)
    monkeypatch.setattr(os, "stat", observed_stat)
    gokart.build(task)
    monkeypatch.undo()
    manifest = str(_manifest(task))
    assert manifest not in opened
    assert not [path for path in stated if path.endswith(".kart-tmp")]
    [data] = claimed
    document = Manifest.from_bytes(data)
    for target in task.output().values():
        assert isinstance(target, TargetOnKart) and target.record is not None
        stamp = document.outputs[target.record.key].stamp
        assert stamp is not None and stamp[0] == os.stat(target.path()).st_ino  # the staged file's inode, moved
    assert gokart.build(TwoOutputs(workspace_directory=str(tmp_path))) == {"a": "a-v1", "b": "b-v1"}


def test_the_stamps_are_written_over_the_claim_without_encoding_the_manifest_again(
    tmp_path: Path, claims: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One encoding per first commit: what the digits written over the claim give is byte for byte what encoding the
    manifest with the stamps taken after the moves gives."""
    encoded: list[str] = []
    original = Manifest.to_bytes

    def observed(self: Manifest) -> bytes:
        encoded.append(self.task)
        return original(self)

    monkeypatch.setattr(Manifest, "to_bytes", observed)
    task = TwoOutputs(workspace_directory=str(tmp_path))
    gokart.build(task)
    manifest = _manifest(task)
    assert encoded.count(task.kart_label()) == 1  # the claim's; before session 22 a second one after the moves
    [(_, inode, claimed)] = [claim for claim in claims if Path(claim[0]) == manifest]
    final = manifest.read_bytes()
    assert os.stat(manifest).st_ino == inode and final != claimed
    assert original(Manifest.from_bytes(final)) == final  # what an encoding of the stamped manifest writes
    for target in task.output().values():
        assert isinstance(target, TargetOnKart) and target.record is not None
        assert list(Manifest.from_bytes(final).outputs[target.record.key].stamp or ()) == _stamp(target.path())


def test_a_stamp_that_cannot_be_written_over_the_claim_encodes_the_manifest_anew(
    tmp_path: Path, claims: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``restamp_at`` declining (its stamp text found twice, another inode or width): the stamps are still recorded,
    by encoding the manifest with them (in place when as long, else a new file)."""
    declined: list[bytes] = []

    def declining(data: bytes, old: tuple[int, ...], new: tuple[int, ...]) -> tuple[int, bytes] | None:
        declined.append(data)
        return None

    monkeypatch.setattr(kart_core.transaction, "restamp_at", declining)
    task = TwoOutputs(workspace_directory=str(tmp_path))
    gokart.build(task)
    manifest = _manifest(task)
    assert declined
    document = Manifest.from_bytes(manifest.read_bytes())
    for target in task.output().values():
        assert isinstance(target, TargetOnKart) and target.record is not None
        assert list(document.outputs[target.record.key].stamp or ()) == _stamp(target.path())
    assert gokart.build(TwoOutputs(workspace_directory=str(tmp_path))) == {"a": "a-v1", "b": "b-v1"}


def _entry(stamp: tuple[int, ...] | None) -> Entry:
    return Entry(size=3, digest="xxh3_128:" + "0" * 32, commit="c" * 32, sealed=False, owner="m.T", stamp=stamp)


def test_restamped_writes_the_digits_of_the_one_stamp_it_finds() -> None:
    old, new = (41, 1796287190951371027), (41, 1796287190999999999)
    manifest = Manifest(task="T[1]", commit="c" * 32, outputs={"a.pkl": _entry(old), "b.pkl": _entry((42, old[1]))})
    data = manifest.to_bytes()
    outputs = {**manifest.outputs, "a.pkl": _entry(new)}
    assert restamped(data, old, new) == Manifest(task="T[1]", commit="c" * 32, outputs=outputs).to_bytes()
    assert restamped(data, old, old) == data


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ((41, 1796287190951371027), (43, 1796287190951371027)),  # another inode: not a change of digits alone
        ((41, 999), (41, 1000)),  # another width: the document would change length
        ((41, 1000), (41, -100)),  # a sign: a mix of the two could read "-000"
        ((41, 1000), (41, 1000, 7)),  # not an entry's stamp
        ((41, 2000), (41, 3000)),  # not in the document
    ],
)
def test_restamped_declines_what_is_not_a_change_of_digits_of_one_stamp(
    old: tuple[int, ...], new: tuple[int, ...]
) -> None:
    data = Manifest(task="T[1]", commit="c" * 32, outputs={"a.pkl": _entry((41, 1796287190951371027))}).to_bytes()
    if old == (41, 1000):
        data = Manifest(task="T[1]", commit="c" * 32, outputs={"a.pkl": _entry((41, 1000))}).to_bytes()
    assert restamped(data, old, new) is None


def test_restamped_declines_a_stamp_text_found_twice() -> None:
    """Another entry, or an input or run record holding the same text: which one is the entry's is not known."""
    stamp = (41, 1796287190951371027)
    later = (41, 1796287190951371999)
    twice = Manifest(task="T[1]", commit="c" * 32, outputs={"a.pkl": _entry(stamp), "b.pkl": _entry(stamp)})
    assert restamped(twice.to_bytes(), stamp, later) is None
    in_run = Manifest(task="T[1]", commit="c" * 32, outputs={"a.pkl": _entry(stamp)}, run={"x": {"stamp": [*stamp]}})
    assert restamped(in_run.to_bytes(), stamp, later) is None
    inputs = (Input(task="U[1]", manifest="m.json", key="u.pkl", commit=None, digest="d", stamp=stamp),)
    in_inputs = Manifest(task="T[1]", commit="c" * 32, outputs={"a.pkl": _entry(stamp)}, inputs=inputs)
    assert restamped(in_inputs.to_bytes(), stamp, later) is None
    # A text inside a JSON string has its quotes escaped: not a stamp, so the entry's is found once.
    in_string = Manifest(
        task="T[1]", commit="c" * 32, outputs={"a.pkl": _entry(stamp)}, run={"note": '"stamp":[41,1796287190951371027]'}
    )
    patched = restamped(in_string.to_bytes(), stamp, later)
    assert patched is not None and Manifest.from_bytes(patched).run == in_string.run
    assert Manifest.from_bytes(patched).outputs["a.pkl"].stamp == later


def test_restamp_at_names_the_place_and_digits_restamped_writes() -> None:
    """A first commit writes only the changed digits over its claimed manifest (``HeldClaim.rewrite_at``), no changed
    copy of it (a fan-in's is 30 MB): the place and text are those ``restamped`` writes, and it declines alike."""
    old, new = (41, 1796287190951371027), (41, 1796287190999999999)
    manifest = Manifest(task="T[1]", commit="c" * 32, outputs={"a.pkl": _entry(old), "b.pkl": _entry((42, old[1]))})
    data = manifest.to_bytes()
    place = restamp_at(data, old, new)
    assert place is not None
    at, text = place
    assert data[:at] + text + data[at + len(text) :] == restamped(data, old, new)
    assert restamp_at(data, old, (43, new[1])) is None and restamp_at(data, (41, 2000), (41, 3000)) is None


def test_a_held_claim_writes_only_the_places_it_is_given_over_its_own_file(tmp_path: Path) -> None:
    storage = LocalStorage()
    path = tmp_path / "log" / "manifest" / "T_1.json"
    with storage.claim_new(str(path), b'{"a":[1,1000],"b":[2,1000]}') as claim:
        assert isinstance(claim, HeldClaim)
        inode = path.stat().st_ino
        assert claim.rewrite_at([(8, b"2000"), (21, b"3000")]) is True
        assert path.read_bytes() == b'{"a":[1,2000],"b":[2,3000]}' and path.stat().st_ino == inode
        other = tmp_path / "log" / "manifest" / "other.json"
        other.write_bytes(b'{"other":[1,100]}')
        os.replace(other, path)  # another writer's file in its place: nothing written
        assert claim.rewrite_at([(8, b"4000")]) is False
        assert path.read_bytes() == b'{"other":[1,100]}'
    assert claim.rewrite_at([(1, b"x")]) is False  # the claim has ended
