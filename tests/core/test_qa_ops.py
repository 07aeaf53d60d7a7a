"""Operations QA (doctor, logs, followers): damage a copy of a space and check that loading
never cuts acknowledged writes, that ``talkrec doctor --repair`` keeps them and never deletes
what may be all that is left, that a damaged file is named (not a traceback), and that a
follower neither skips records after a failed catch-up nor reports a deleted space as healthy."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from tiny_data import copy_space
from typer.testing import CliRunner

from talkrec import Space
from talkrec.cli import app
from talkrec.errors import TalkrecError
from talkrec.index import wal
from talkrec.space import Follower
from talkrec.space.doctor import doctor


@pytest.fixture()
def d(tiny_space_dir, tmp_path):
    return copy_space(tiny_space_dir, tmp_path / "space")


def _add(space: Space, *ids: str) -> None:
    space.add_items([{"item_id": i, "name": f"Ops Qwzzyx {i}", "tags": ["jazz"]} for i in ids])


def _written(d: Path) -> Path:
    """Three acknowledged writes (two upserts, a delete) in the space's log; the log's path."""
    s = Space.load(d, auto_compact=False)
    _add(s, "ops1")
    _add(s, "ops2")
    s.remove(["metal1"])
    s.close()
    return d / json.loads((d / "MANIFEST.json").read_text())["logs"][-1]


def _ids(d: Path) -> set[str]:
    s = Space.load(d, auto_compact=False)
    try:
        return set(s.index.ids.tolist())
    finally:
        s.close()


# ---------------------------------------------------------------------------- the log
def test_a_corrupt_record_that_acknowledged_writes_follow_is_not_cut_by_a_load(d):
    log = _written(d)
    data = log.read_bytes()
    bad = bytearray(data)
    bad[60] ^= 0xFF                                   # a flipped bit in the first record's payload
    log.write_bytes(bytes(bad))
    with pytest.raises(TalkrecError) as e:            # before: loaded, and the whole log cut to 0 bytes
        Space.load(d)
    assert str(log) in str(e.value) and "acknowledged" in str(e.value)
    assert log.read_bytes() == bytes(bad)             # nothing cut
    r = CliRunner().invoke(app, ["info", "--space", str(d)])
    assert r.exit_code == 2 and "Traceback" not in r.output and "wal-" in r.output


def test_doctor_repair_drops_only_the_corrupt_bytes_and_keeps_the_writes_after_them(d):
    log = _written(d)
    bad = bytearray(log.read_bytes())
    bad[60] ^= 0xFF
    log.write_bytes(bytes(bad))
    rep = doctor(d)
    assert [f.kind for f in rep.findings] == ["corrupt_log"] and not rep.healthy
    assert log.read_bytes() == bytes(bad)             # a check changes nothing
    rep = doctor(d, repair=True)
    assert rep.healthy and rep.findings[0].repaired
    assert (d / (log.name + ".corrupt")).read_bytes() == bytes(bad)
    ids = _ids(d)
    assert "ops1" not in ids and "ops2" in ids and "metal1" not in ids    # only the damaged write is lost
    assert doctor(d).healthy


def test_a_zero_filled_log_tail_is_a_torn_tail_not_a_crash(d):
    log = _written(d)
    good = log.read_bytes()
    with open(log, "ab") as f:                        # a file extended, never written (power loss)
        f.write(b"\0" * 4096)
    rep = doctor(d)                                   # before: struct.error out of doctor and of every load
    assert [f.kind for f in rep.findings] == ["torn_log"]
    assert doctor(d, repair=True).healthy and log.read_bytes() == good
    assert {"ops1", "ops2"} <= _ids(d)


def test_salvage_reads_past_a_corrupt_length(tmp_path):
    f = tmp_path / "wal-000001.log"
    payloads = [wal.encode_delete([f"x{i}"]) for i in range(4)]
    f.write_bytes(b"".join(wal.frame(p) for p in payloads))
    raw = bytearray(f.read_bytes())
    at = len(wal.frame(payloads[0]))
    raw[at:at + 4] = (7).to_bytes(4, "little")       # the second record's length hit
    f.write_bytes(bytes(raw))
    with pytest.raises(wal.CorruptLog):
        wal.read_log(f)
    got = wal.salvage(f)
    assert [wal.decode(p).ids for p in got.payloads] == [["x0"], ["x2"], ["x3"]]
    assert got.dropped == [(at, at + len(wal.frame(payloads[1])))]
    f.write_bytes(bytes(raw[:at + 5]))                # bad bytes at the end only: a torn tail, as before
    scan = wal.read_log(f)
    assert len(scan.payloads) == 1 and scan.valid_bytes == at and scan.problem


# ---------------------------------------------------------------------------- generations
def test_doctor_repair_keeps_an_old_generation_when_the_manifests_one_is_missing(d):
    m = json.loads((d / "MANIFEST.json").read_text())
    os.replace(d / m["generation"], d / "gen-000007")     # the manifest names a generation that is not there
    rep = doctor(d, repair=True)
    assert not rep.healthy and {f.kind for f in rep.findings} >= {"unreadable_generation", "unreferenced"}
    assert (d / "gen-000007" / "index" / "vectors.npy").exists()    # before: deleted as "unreferenced"


def test_doctor_reports_a_generation_without_the_raw_inputs_space_json_names(d):
    assert doctor(d).healthy
    m = json.loads((d / "MANIFEST.json").read_text())
    (d / m["generation"] / "inputs" / "audio.npy").unlink()        # every add_items then failed with KeyError
    rep = doctor(d)                                                  # before: "healthy"
    assert not rep.healthy and [f.kind for f in rep.findings] == ["missing_inputs"]
    assert rep.findings[0].path.endswith("audio.npy")


def test_doctor_names_a_space_json_that_is_not_json(d):
    (d / "space.json").write_text('{"name": ')
    rep = doctor(d)                                   # before: "not_a_space" at the folder, the file unnamed
    assert [(f.kind, f.path) for f in rep.findings] == [("corrupt_config", str(d / "space.json"))]


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_a_damaged_index_file_is_named_not_a_traceback(d, damage):
    m = json.loads((d / "MANIFEST.json").read_text())
    f = d / m["generation"] / "index" / "vectors.npy"
    if damage == "missing":
        f.unlink()
    else:
        f.write_bytes(f.read_bytes()[:200])
    with pytest.raises(TalkrecError) as e:
        Space.load(d)
    assert str(f) in str(e.value)
    if damage == "missing":
        assert isinstance(e.value, FileNotFoundError)     # a load racing a compaction still retries on it
    r = CliRunner().invoke(app, ["info", "--space", str(d)])
    assert r.exit_code == 2 and "Traceback" not in r.output


# ---------------------------------------------------------------------------- followers
def _pair(d: Path) -> tuple[Space, Space, Follower]:
    return Space.load(d, auto_compact=False), (f := Space.load(d, follow=True)), Follower(f)


def test_a_catch_up_that_fails_in_a_later_log_skips_no_record(d, monkeypatch):
    w, r, fol = _pair(d)
    try:
        _add(w, "ops1")                                # in the first log
        w.store._seal(w.store.manifest)                # a second log, as a compaction starts one
        _add(w, "ops2")
        second = w.store.manifest.logs[-1]
        real, calls = Follower._scan, []

        def flaky(self, name, *args):
            if name == second and not calls:
                calls.append(name)
                raise OSError("EIO")
            return real(self, name, *args)
        monkeypatch.setattr(Follower, "_scan", flaky)
        with pytest.raises(OSError):
            fol.catch_up()
        fol.catch_up()
        assert {"ops1", "ops2"} <= set(r.index.ids.tolist())     # before: ops1 was skipped for good
        assert list(r.index.ids) == list(w.index.ids)
    finally:
        w.close()


def test_a_follower_whose_space_was_deleted_says_so(d):
    w, r, fol = _pair(d)
    _add(w, "ops1")
    fol.catch_up()
    w.close()
    shutil.rmtree(d)
    with pytest.raises(RuntimeError, match="MANIFEST.json is gone"):    # before: 0 records, no error
        fol.catch_up()
    assert "ops1" in set(r.index.ids.tolist())        # still serving what it had


def test_a_follower_reads_a_log_replaced_by_another_file(d):
    w, r, fol = _pair(d)
    _add(w, "ops1")
    fol.catch_up()
    w.close()
    log = d / json.loads((d / "MANIFEST.json").read_text())["logs"][-1]
    tmp = log.with_name("copy")
    shutil.copyfile(log, tmp)
    os.replace(tmp, log)                              # another file of the same name (a restore, a repair)
    w = Space.load(d, auto_compact=False)
    try:
        _add(w, "ops2")
        fol.catch_up()
        assert "ops2" in set(r.index.ids.tolist())    # before: read the old file for ever, ops2 never came
        assert np.array_equal(np.sort(r.index.ids), np.sort(w.index.ids))
    finally:
        w.close()


def test_doctor_repair_on_a_space_it_may_not_write_checks_only(d):
    """A LOCK this process cannot open (here a folder; a read-only file system or a folder of
    another user alike): doctor checks only, reads work, a write is a clear WriteConflict."""
    from talkrec.space import WriteConflict
    (d / "LOCK").unlink(missing_ok=True)
    (d / "LOCK").mkdir()
    rep = doctor(d, repair=True)                       # before: the OSError out of doctor (a traceback)
    assert [f.kind for f in rep.findings] == ["locked"] and "cannot be opened for writing" in rep.findings[0].detail
    s = Space.load(d)                                  # before: every read command crashed on open(LOCK)
    try:
        assert rep.items == len(s.index) and s.similar(s.index.ids[0], k=3)
        with pytest.raises(WriteConflict, match="cannot be written here"):
            s.remove([s.index.ids[0]])
    finally:
        s.close()


# ---------------------------------------------------------------------------- reindex
def test_reindex_to_an_index_type_the_database_refuses_is_an_error_and_changes_nothing(d, tmp_path):
    pytest.importorskip("milvus_lite")
    from talkrec.pipeline.reindex import reindex
    before = (d / "space.json").read_bytes()
    with pytest.raises(TalkrecError, match="BOGUS"):  # before: pymilvus' MilvusException (a traceback in the CLI)
        reindex(d, {"backend": "milvus", "uri": str(tmp_path / "items.db"), "index_type": "BOGUS"})
    assert (d / "space.json").read_bytes() == before
    assert len(Space.load(d).index) == 60
