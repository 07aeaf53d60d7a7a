"""The write-ahead log (issue 10, findings 2 and 5): records round-trip, a torn or corrupt tail
loses only the write it held, group commit shares fsyncs, and a space replays its log."""
from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
from storage_helpers import FsyncSpy
from tiny_data import copy_space

from talkrec.index import wal


def _upsert(i: int) -> bytes:
    V = np.full((1, 3), float(i), dtype=np.float32)
    return wal.encode_upsert([f"id{i}"], V, [{"item_id": f"id{i}", "name": f"N {i}", "tags": ["a", "b"], "year": None}],
                             {"text": np.ones((1, 2, 4), dtype=np.float32)})


def test_records_round_trip(tmp_path):
    rec = wal.decode(_upsert(7))
    assert rec.op == "upsert" and rec.ids == ["id7"] and rec.vectors.tolist() == [[7.0, 7.0, 7.0]]
    assert rec.meta == [{"item_id": "id7", "name": "N 7", "tags": ["a", "b"], "year": None}]
    assert rec.inputs["text"].shape == (1, 2, 4)
    d = wal.decode(wal.encode_delete(["a", "b"]))
    assert d.op == "delete" and d.ids == ["a", "b"] and d.vectors is None
    with pytest.raises(ValueError):
        wal.decode(wal._pack({"op": "drop", "ids": []}, []))


def test_a_torn_or_corrupt_tail_loses_only_its_record(tmp_path):
    f = tmp_path / "wal-000001.log"
    log = wal.LogFile(f)
    ends = [log.append(wal.frame(_upsert(i))) for i in range(3)]
    log.sync()
    log.close()
    assert [wal.decode(p).ids for p in wal.read_log(f).payloads] == [["id0"], ["id1"], ["id2"]]
    data = f.read_bytes()
    for cut in (ends[1] + 3, ends[1] + 20, ends[2] - 1):                 # inside the header, the payload
        f.write_bytes(data[:cut])
        scan = wal.read_log(f)
        assert len(scan.payloads) == 2 and scan.valid_bytes == ends[1] and scan.problem
    bad = bytearray(data)
    bad[ends[1] + 30] ^= 0xFF                                           # a flipped bit in the last record
    f.write_bytes(bytes(bad))
    scan = wal.read_log(f)
    assert len(scan.payloads) == 2 and "checksum" in scan.problem
    wal.truncate_log(f, scan.valid_bytes)
    assert f.stat().st_size == ends[1] and wal.read_log(f).problem is None


def test_a_failed_append_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    log = wal.LogFile(tmp_path / "w.log")
    log.append(wal.frame(_upsert(0)))
    real = os.write

    def half(fd, data):
        real(fd, bytes(data)[:10])
        raise OSError("disk full (simulated)")
    monkeypatch.setattr(os, "write", half)
    with pytest.raises(OSError):
        log.append(wal.frame(_upsert(1)))
    monkeypatch.undo()
    assert len(wal.read_log(tmp_path / "w.log").payloads) == 1 and wal.read_log(tmp_path / "w.log").problem is None


def test_group_commit_shares_one_fsync_among_concurrent_writers():
    seq = [0]
    lock = threading.Lock()
    syncs: list[int] = []

    class Tip:
        def __init__(self, s: int) -> None:
            self.seq = s

    def sync(tip: Tip) -> None:
        time.sleep(0.05)                     # a slow disk
        syncs.append(tip.seq)

    gc = wal.GroupCommit(lambda: Tip(seq[0]), sync)

    def writer() -> None:
        for _ in range(5):
            with lock:
                seq[0] += 1
                mine = seq[0]
            gc.wait(mine)
            assert gc.durable >= mine
    threads = [threading.Thread(target=writer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert gc.durable == 40 and len(syncs) < 40 / 2                     # many writes per fsync

    def failing(tip: Tip) -> None:
        raise OSError("EIO (simulated)")
    bad = wal.GroupCommit(lambda: Tip(1), failing)
    with pytest.raises(OSError, match="EIO"):
        bad.wait(1)
    with pytest.raises(OSError, match="EIO"):                            # covered writes stay failed
        bad.wait(1)


# ----------------------------------------------------------------------------- a space's log
def test_a_write_appends_one_log_record_and_fsyncs_it_before_it_returns(tiny_space_dir, tmp_path, monkeypatch):
    """Every upsert rewrote the whole index (finding 2), and nothing was fsync'ed (finding 5):
    now only the log changes, and it is fsync'ed before add_items returns."""
    from talkrec import Space

    d = copy_space(tiny_space_dir, tmp_path / "space")
    s = Space.load(d)
    before = {p.relative_to(d): (p.stat().st_ino, p.stat().st_mtime_ns, p.stat().st_size)
              for p in d.rglob("*") if p.is_file()}
    spy = FsyncSpy(monkeypatch)
    s.add_items([{"item_id": "w1", "name": "Written Once", "tags": ["jazz"]}])
    after = {p.relative_to(d): (p.stat().st_ino, p.stat().st_mtime_ns, p.stat().st_size)
             for p in d.rglob("*") if p.is_file()}
    changed = sorted(str(p) for p in after if before.get(p) != after[p])
    assert [c for c in changed if c != "LOCK"] == ["wal-000001.log"], changed
    assert str(d / "wal-000001.log") in spy.paths
    s.remove(["w1"])
    assert spy.paths.count(str(d / "wal-000001.log")) == 2


def test_a_torn_tail_of_a_spaces_log_drops_only_the_last_write(tiny_space_dir, tmp_path):
    from talkrec import Space

    d = copy_space(tiny_space_dir, tmp_path / "space")
    s = Space.load(d)
    for i in range(3):
        s.add_items([{"item_id": f"t{i}", "name": f"Torn {i}", "tags": ["pop"]}])
    s.close()
    log = d / "wal-000001.log"
    with open(log, "r+b") as f:                                         # cut the last record in half
        f.truncate(log.stat().st_size - 40)
    again = Space.load(d)
    assert [again.index.position(f"t{i}") is not None for i in range(3)] == [True, True, False]
    assert len(again.index) == 62 and again.store.problems and "truncated" in again.store.problems[0]
    assert wal.read_log(log).problem is None                            # cut back to the last whole record
    again.add_items([{"item_id": "t2", "name": "Torn 2", "tags": ["pop"]}])
    assert Space.load(d).index.position("t2") is not None
