"""A follower (``Space.load(path, follow=True)`` + :class:`Follower`): a read replica of a space
that another Space writes. After every catch-up it answers exactly what the writer answers,
across upserts, deletes, compactions with writes on both sides of them, a compaction it
missed, a torn record at the log's end and a log the writer's restart cut; it refuses
writes and never writes a file."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from tiny_data import copy_space

from talkrec import Space
from talkrec.errors import InputError
from talkrec.space import Follower, WriteError
from talkrec.space.files import read_manifest


@pytest.fixture()
def d(tiny_space_dir, tmp_path):
    return copy_space(tiny_space_dir, tmp_path / "space")


def _same(writer: Space, follower: Space) -> None:
    """The follower's items, vectors, metadata and answers are the writer's."""
    w, f = writer.index, follower.index
    assert list(w.ids) == list(f.ids)
    assert np.array_equal(writer.embeddings(), follower.embeddings())
    for iid in list(w.ids)[::7]:
        assert writer.item(iid) == follower.item(iid)
        assert _shown(writer.similar(iid, k=5)) == _shown(follower.similar(iid, k=5))
    for q in ("jazz", "rock qwzzyx", "ambient"):
        for mode in ("hybrid", "lexical"):
            assert _shown(writer.search(q, k=8, mode=mode)) == _shown(follower.search(q, k=8, mode=mode)), (q, mode)


def _shown(hits) -> list:
    return [(h.item_id, h.name, h.score, h.metadata) for h in hits]


def _files(d: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(d)): (p.stat().st_size, p.stat().st_mtime_ns) for p in d.rglob("*") if p.is_file()}


def _pair(d: Path) -> tuple[Space, Space, Follower]:
    """A writer (compacting only when told), a follower of the same folder, and its Follower."""
    writer = Space.load(d, auto_compact=False)
    follower = Space.load(d, follow=True)
    return writer, follower, Follower(follower)


def _add(space: Space, *ids: str, tag: str = "jazz") -> None:
    space.add_items([{"item_id": i, "name": f"Followed Qwzzyx {i}", "tags": [tag, "rock"]} for i in ids])


def test_a_follower_answers_what_the_writer_wrote_through_writes_and_compactions(d, caplog):
    caplog.set_level("INFO", logger="talkrec.space.follower")
    writer, follower, fol = _pair(d)
    follower.warm_up()
    assert fol.catch_up() == 0
    _add(writer, "f1", "f2")
    _add(writer, "f3", tag="pop")
    writer.remove(["jazz3"])
    assert "f1" not in follower.index.ids                       # nothing until it catches up
    assert fol.catch_up() == 3
    _same(writer, follower)
    gen0 = follower.index.gen.name
    writer.compact()                                             # the new generation carries what it had
    _add(writer, "f4")                                           # and a write after the compaction
    assert fol.catch_up() == 1
    assert follower.index.gen.name != gen0 and fol.generations == 1
    (started, took), = fol.status()["recent_loads"]                 # when it loaded, and for how long
    assert took == fol.last_load_s and abs(started - time.time()) < 600
    _same(writer, follower)
    _add(writer, "f5")                                           # a write between a seal and its compaction
    fol.catch_up()
    writer.remove(["f1"])
    writer.compact()
    writer.remove(["f2"])
    fol.catch_up()
    _same(writer, follower)
    carried = [r.getMessage() for r in caplog.records if "following generation" in r.getMessage()]
    assert len(carried) == 2 and all("carried over" in m for m in carried), carried
    assert fol.status()["generation"] == read_manifest(d).generation and fol.status()["error"] is None
    writer.close()


def test_a_follower_that_missed_compactions_loads_the_newest_generation(d):
    writer, follower, fol = _pair(d)
    _add(writer, "m0")
    fol.catch_up()
    for tag in ("pop", "ambient", "rock"):    # three generations it never saw, each only updating m0:
        _add(writer, "m0", tag=tag)           # the same ids in the same order, other tags and vectors
        writer.compact()
    fol.catch_up()
    _same(writer, follower)
    assert follower.item("m0")["tags"] == writer.item("m0")["tags"]
    _add(writer, "m9")
    fol.catch_up()
    _same(writer, follower)
    writer.close()


def test_hit_fields_are_not_carried_onto_a_generation_two_compactions_on(d):
    writer = Space.load(d, auto_compact=False)
    _add(writer, "m0")
    writer.compact()                                             # m0: the last base row
    follower = Space.load(d, follow=True)
    follower.warm_up()                                           # its hits' fields made, m0's tags included
    fol = Follower(follower)
    fol.catch_up()
    _add(writer, "tmp")                                          # a generation with the same ids in the same order
    writer.remove(["tmp"])
    writer.compact()
    _add(writer, "m0", tag="ambient")                            # and one where m0's fields changed in place
    writer.compact()
    fol.catch_up()
    assert [h.metadata.get("tags") for h in follower.search("followed qwzzyx m0", k=1, mode="lexical")] == \
           [h.metadata.get("tags") for h in writer.search("followed qwzzyx m0", k=1, mode="lexical")]
    _same(writer, follower)
    writer.close()


def test_a_space_built_again_is_not_followed(d):
    import json
    follower = Space.load(d, follow=True)
    fol = Follower(follower)
    m = json.loads((d / "MANIFEST.json").read_text())
    (d / "MANIFEST.json").write_text(json.dumps({**m, "space_id": "another-build"}))
    with pytest.raises(RuntimeError, match="built again"):
        fol.catch_up()


def test_a_record_still_being_appended_waits_for_the_next_catch_up(d):
    writer, follower, fol = _pair(d)
    _add(writer, "t1")
    log = d / read_manifest(d).logs[-1]
    size = log.stat().st_size
    _add(writer, "t2")
    writer.close()
    full = log.read_bytes()
    log.write_bytes(full[:size + 5])                             # the next record half written
    assert fol.catch_up() == 1 and "t1" in follower.index.ids and "t2" not in follower.index.ids
    log.write_bytes(full)                                        # the rest of it arrives
    assert fol.catch_up() == 1 and "t2" in follower.index.ids


def test_a_log_cut_by_the_writer_restart_is_read_again(d):
    writer = Space.load(d, auto_compact=False)
    _add(writer, "c1", "c2")
    writer.close()
    follower = Space.load(d, follow=True)
    fol = Follower(follower)
    log = d / read_manifest(d).logs[-1]
    log.write_bytes(b"")                                         # (what a cut looks like from here)
    fol.catch_up()
    assert "c1" not in follower.index.ids and fol.status()["generation"] == read_manifest(d).generation


def test_a_follower_refuses_writes_and_writes_no_file(d):
    writer = Space.load(d, auto_compact=False)
    _add(writer, "w1")
    writer.close()
    before = _files(d)
    follower = Space.load(d, follow=True)
    follower.warm_up()
    Follower(follower).catch_up()
    for write in (lambda: _add(follower, "w2"), lambda: follower.remove(["w1"]), follower.compact):
        with pytest.raises(WriteError, match="followed read-only"):
            write()
    assert _files(d) == before and not any(p.name.startswith(".") for p in d.iterdir() if p.name != "LOCK")
    with pytest.raises(InputError, match="follow=True"):
        Follower(Space.load(d))
    with pytest.raises(InputError, match="interval"):
        Follower(follower, interval=0)
    for bad in ({"pace": -1}, {"read_wait": float("nan")}, {"read_wait": "0.01"}):
        with pytest.raises(InputError, match=next(iter(bad))):
            Follower(follower, **bad)


def test_the_follow_thread_catches_up_on_its_own(d):
    writer = Space.load(d)
    follower = Space.load(d, follow=True)
    fol = Follower(follower, interval=0.01).start()
    try:
        _add(writer, "th1")
        for _ in range(500):
            if "th1" in follower.index.ids:
                break
            os.sched_yield()
            fol._stop.wait(0.01)
        assert "th1" in follower.index.ids and fol.records >= 1
    finally:
        fol.stop()
        writer.close()


def test_a_compaction_saves_the_int8_copies_and_a_follower_reads_them(d, monkeypatch):
    """The tiny space is under MIN_ROWS: the threshold is lowered so that warm-up makes the copies."""
    from talkrec.index import quantized, segments

    monkeypatch.setattr(segments, "MIN_ROWS", 0)
    writer, follower, fol = _pair(d)
    writer.warm_up()
    follower.warm_up()
    _add(writer, "i1", "i2")
    writer.compact()
    gen = d / read_manifest(d).generation
    text_key = writer.config["input_files"]["text"]
    assert sorted(p.name for p in (gen / "int8").iterdir()) == ["fused.npz", f"input-{text_key}.npz"]
    loaded = []
    real = quantized.Int8TopK.load.__func__
    monkeypatch.setattr(quantized.Int8TopK, "load",
                        classmethod(lambda cls, X, p: loaded.append(p.name) or real(cls, X, p)))
    fol.catch_up()
    assert sorted(loaded) == sorted(p.name for p in (gen / "int8").iterdir())
    assert follower.index.gen.int8(None) is not None
    _same(writer, follower)
    writer.close()
    from talkrec.space.doctor import doctor
    assert doctor(d).healthy
    other = quantized.Int8TopK(np.random.default_rng(0).standard_normal(follower.index.gen.vectors.shape)
                               .astype(np.float32))
    other.save(gen / "int8" / "fused.npz")                       # another matrix's copy in its place
    report = doctor(d)
    assert not report.healthy and [f.kind for f in report.findings] == ["bad_int8_copy"]
    assert doctor(d, repair=True).healthy and not (gen / "int8" / "fused.npz").exists()


def test_a_generation_replaced_while_it_loads_is_taken_on_at_the_next_catch_up(d, monkeypatch):
    from talkrec.space import follower as follower_mod

    writer, follower, fol = _pair(d)
    _add(writer, "r1")
    writer.compact()
    real, calls = follower_mod.read_generation, []

    def gone_once(folder, **kw):
        calls.append(folder.name)
        if len(calls) == 1:
            raise FileNotFoundError(folder)        # a compaction removed it between manifest and load
        return real(folder, **kw)
    monkeypatch.setattr(follower_mod, "read_generation", gone_once)
    assert fol.catch_up() == 0 and fol.generations == 0 and "r1" not in follower.index.ids
    fol.catch_up()
    assert fol.generations == 1 and fol.status()["last_load_s"] > 0
    _same(writer, follower)
    writer.close()


def test_a_follower_keeps_up_through_kill_9_of_its_writer(d):
    """A writer process compacting every few writes is killed (SIGKILL) at random moments, three
    rounds, each round a new writer (whose load cuts a torn tail); the follower's thread runs
    throughout. After each kill it serves every acknowledged write and delete, and at the end
    it answers what a fresh load of the space answers."""
    import random
    import time

    from storage_helpers import kill_a_writer

    follower = Space.load(d, follow=True)
    fol = Follower(follower, interval=0.01).start()
    rnd = random.Random(7)
    acked: set[str] = set()
    deleted: set[str] = set()
    deleting: set[str] = set()                                 # a delete begun when the writer died may have landed
    try:
        for round_no in range(3):
            got = kill_a_writer(d, {"compact_min_rows": 4, "compact_fraction": 0.0}, round_no, acks=6,
                                pause=rnd.uniform(0.0, 1.0))
            acked, deleted, deleting = acked | got[0], deleted | got[1], deleting | got[2]
            want = acked - deleted - deleting
            deadline = time.time() + 60                         # the follower is a catch-up or two behind

            def caught_up() -> bool:
                live = set(follower.item_ids)
                return want <= live and not deleted & live
            while not caught_up() and time.time() < deadline:
                time.sleep(0.05)
            live = set(follower.item_ids)
            assert want <= live and not deleted & live, (sorted(want - live), fol.status(), read_manifest(d))
    finally:
        fol.stop()
    fol.catch_up()
    truth = Space.load(d)
    assert fol.status()["error"] is None and fol.generations >= 1
    _same(truth, follower)


def test_reads_in_flight_are_counted_once_per_outermost_read(d, monkeypatch):
    """``Space`` reads (and only the outermost: ``similar`` calls other reads) hold the store's
    ``reads`` while they run: what a follower's load waits for."""
    from talkrec.space import core

    space = Space.load(d, follow=True)
    seen = []
    make_hits, hits_at = core.make_hits, core.hits_at           # where each read makes its hits
    monkeypatch.setattr(core, "make_hits", lambda snap, pairs: seen.append(len(space.store.reads._tokens))
                        or make_hits(snap, pairs))
    monkeypatch.setattr(core, "hits_at", lambda snap, rows, scores: seen.append(len(space.store.reads._tokens))
                        or hits_at(snap, rows, scores))
    assert not space.store.reads
    space.similar(space.item_ids[0], k=3)
    space.search("jazz", k=3, mode="lexical")
    assert seen == [1, 1] and not space.store.reads
    with pytest.raises(Exception):
        space.similar("no such item")
    assert not space.store.reads                                  # a read that failed is out of flight too


def test_a_paced_load_waits_for_the_reads_in_flight_and_is_never_starved():
    """:func:`follower._paced`: while a read is in flight the load stops at its next function
    call (``read_wait`` long enough); with reads that never end it still finishes (a short
    ``read_wait``: it runs ``pace`` after each wait)."""
    import threading
    import time

    from talkrec.space.follower import ReadsInFlight, _paced

    reads, steps, done = ReadsInFlight(), [], threading.Event()

    def load() -> str:
        for i in range(200):
            steps.append(i)
            len(steps)                       # a C call: the hook's chance to wait
        return "loaded"

    out = []
    with reads:
        t = threading.Thread(target=lambda: (out.append(_paced(load, 0.002, reads, wait=60.0)), done.set()))
        t.start()
        time.sleep(0.2)
        before = len(steps)
        time.sleep(0.3)
        assert len(steps) == before <= 1 and not done.is_set()    # it waits while the read runs
    t.join(30)
    assert out == ["loaded"] and len(steps) == 200                # and goes on once it ended
    steps.clear()
    with reads:                                                   # a read that outlasts the whole load
        assert _paced(load, 0.002, reads, wait=0.001) == "loaded" and len(steps) == 200
    with reads, reads:
        assert reads
    assert not reads
