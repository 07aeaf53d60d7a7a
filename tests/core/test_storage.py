"""Space format 2 (issue 10): deletes, snapshots that readers keep while writers and compaction
run, concurrent writers, compaction and its crash safety, legacy spaces, doctor."""
from __future__ import annotations

import json
import random
import threading

import numpy as np
import pytest
from storage_helpers import FsyncSpy, make_legacy
from tiny_data import copy_space
from typer.testing import CliRunner

from talkrec import Space
from talkrec.cli import app
from talkrec.errors import InputError, NotFoundError
from talkrec.space.doctor import doctor


@pytest.fixture()
def d(tiny_space_dir, tmp_path):
    return copy_space(tiny_space_dir, tmp_path / "space")


def _ids(hits):
    return [h.item_id for h in hits]


def test_deletes_of_built_and_cold_start_items_and_re_adding_them(d):
    s = Space.load(d)
    s.add_items([{"item_id": "cold1", "name": "Cold Qwzzyx", "tags": ["jazz"]}])
    assert "cold1" in _ids(s.search("qwzzyx", k=3, mode="hybrid"))
    assert s.remove(["cold1", "jazz3"]) == 59
    for mode in ("multi", "text", "lexical", "hybrid"):
        assert not {"cold1", "jazz3"} & set(_ids(s.search("jazz qwzzyx", k=60, mode=mode))), mode
    assert "jazz3" not in _ids(s.similar("jazz4", k=59)) and "jazz3" not in s.item_ids
    with pytest.raises(NotFoundError):
        s.item("jazz3")
    with pytest.raises(NotFoundError, match=r"unknown item.*nope.*nothing was deleted"):
        s.remove(["jazz4", "nope"])                                   # a batch: all or nothing
    assert s.index.position("jazz4") is not None
    with pytest.raises(InputError, match="given twice"):
        s.remove(["jazz4", "jazz4"])
    with pytest.raises(NotFoundError):
        s.remove(["cold1"])                                           # already deleted
    s.close()                                                         # one writer at a time
    again = Space.load(d)
    assert len(again.index) == 59 and again.index.position("cold1") is None
    again.add_items([{"item_id": "cold1", "name": "Cold Again", "tags": ["pop"]},
                     {"item_id": "jazz3", "name": "Jazz Band 3", "tags": ["jazz"]}])
    assert again.item("cold1")["name"] == "Cold Again" and len(again.index) == 61
    assert "cold1" in _ids(again.search("cold again", k=3, mode="lexical"))
    again.compact()
    again.close()
    third = Space.load(d)
    assert len(third.index) == 61 and third.item("cold1")["name"] == "Cold Again"
    user = next(u for u, _ in third.users(45) if "jazz5" in third.user_history(u))
    third.remove(["jazz5"])                                           # histories follow deletes
    assert "jazz5" not in third.user_history(user) and third.recommend(user=user, k=3)


def test_an_update_keeps_the_fields_it_does_not_give_and_replaces_the_vectors(d):
    s = Space.load(d)
    year, v0, audio0 = s.item("pop2")["year"], s.index.vector("pop2").copy(), s.raw_input("pop2", "audio").copy()
    metal = np.mean([s.index.vector(i) for i in s.item_ids if i.startswith("metal")], axis=0)
    s.add_items([{"item_id": "pop2", "name": "Pop Two", "tags": ["metal"], "vectors": {"audio": [1.0, 0, 0, 0]}}])
    it = s.item("pop2")
    assert it["name"] == "Pop Two" and it["year"] == year and it["tags"] == ["metal"] and it["cold_start"]
    assert not np.array_equal(s.raw_input("pop2", "audio"), audio0)          # the given audio replaces the old
    assert float(s.index.vector("pop2") @ metal) > float(v0 @ metal) + 0.1   # its text and audio now say metal
    assert len(s.index) == 60 and list(s.item_ids).count("pop2") == 1
    assert Space.load(d).item("pop2")["name"] == "Pop Two"                 # another Space may read


def test_an_update_keeps_the_inputs_it_does_not_name_and_its_ease_list(d):
    s = Space.load(d)
    item = next(i for i in s.item_ids if set(s.item(i)["modalities"]) == {"text", "cf", "audio"})
    v0, mods = s.index.vector(item).copy(), s.item(item)["modalities"]
    cf0, audio0 = s.raw_input(item, "cf").copy(), s.raw_input(item, "audio").copy()
    s.add_items([{"item_id": item, "name": s.item(item)["name"]}])             # nothing new: nothing lost
    assert s.item(item)["modalities"] == mods and np.allclose(s.index.vector(item), v0, atol=1e-6)
    s.add_items([{"item_id": item, "name": "Renamed", "tags": ["metal"]}])       # new tags: plays and audio stay
    assert s.item(item)["modalities"] == mods
    assert np.array_equal(s.raw_input(item, "cf"), cf0) and np.array_equal(s.raw_input(item, "audio"), audio0)
    written = [(h.item_id, round(h.score, 9)) for h in s.similar(item, k=10)]
    ease = s.config["similar"]["cf_weight"] / (s.config["similar"].get("rrf_c", 60.0) + 1)
    assert written[0][1] >= ease              # its own EASE list is in the RRF (rank 1 alone gives this much)
    s.compact()                               # the written row becomes a generation row: the same answer
    assert [(h.item_id, round(h.score, 9)) for h in s.similar(item, k=10)] == written
    s.add_items([{"item_id": item, "name": "Renamed", "vectors": {"audio": None}}])   # null clears a modality
    assert s.item(item)["modalities"] == ["text", "cf"] and np.isnan(s.raw_input(item, "audio")).all()
    s.add_items([{"item_id": "cold9", "name": "Cold Nine", "tags": ["metal"]}])       # a new item: content only
    assert s.item("cold9")["modalities"] == ["text"]


def _answers(s: Space) -> dict[str, list[tuple[str, float]]]:
    """Every read the product offers, on a few queries (k=8; scores to 5 decimals)."""
    out = {}
    for q in ("heavy metal band", "smooth jazz", "qwzzyx pop"):
        for mode in ("multi", "text", "lexical", "hybrid"):
            out[f"search {mode} {q}"] = s.search(q, k=8, mode=mode)
        out[f"search filtered {q}"] = s.search(q, k=8, where="tag=jazz")
    for it in ("metal1", "jazz2", "pop3", "new1", "new2"):
        out[f"similar {it}"] = s.similar(it, k=8)
    out["recommend items"] = s.recommend(items=["metal1", "new1", "jazz2"], k=8)
    out["recommend user"] = s.recommend(user="umetal0", k=8)
    return {k: [(h.item_id, round(float(h.score), 5)) for h in v] for k, v in out.items()}


def test_every_read_answers_the_same_live_replayed_and_compacted(d):
    """A background compaction (or a restart that replays the log) must not change what a
    read answers: new, updated and deleted items alike. BM25's own scores may move (a written
    row is scored with its generation's statistics until a compaction), not its order."""
    s = Space.load(d)
    s.add_items([{"item_id": "new1", "name": "Qwzzyx Trio", "tags": ["jazz", "piano"]},
                 {"item_id": "new2", "name": "Newcomer", "tags": ["metal"], "vectors": {"audio": [1.0, 0, 0, 0]}}])
    s.add_items([{"item_id": "jazz2", "name": "Jazz Band 2", "tags": ["jazz", "fusion"]},   # new tags
                 {"item_id": "pop3", "name": "Pop Band 3", "listeners": 5}])                 # another field
    s.remove(["metal4", "pop7"])
    live = _answers(s)
    s.close()
    replayed = Space.load(d)
    states = {"replayed": _answers(replayed)}
    assert replayed.compact()["compacted"]
    states["compacted"] = _answers(replayed)
    replayed.close()
    states["reloaded"] = _answers(Space.load(d))
    for state, answers in states.items():
        for read, want in live.items():
            got = answers[read]
            if "lexical" in read:
                want, got = [i for i, _ in want], [i for i, _ in got]
            assert got == want, (state, read)


def test_an_update_that_keeps_the_description_encodes_nothing(d, monkeypatch):
    s = Space.load(d)
    s.add_items([{"item_id": "cold1", "name": "Cold One", "tags": ["jazz", "piano"]}])
    v1, desc1 = s.index.vector("cold1").copy(), s.item("cold1")["description"]
    enc = s.text_encoder(for_writes=True)
    texts, encode = [], enc.encode

    def spy(x, **kw):
        texts.extend([x] if isinstance(x, str) else x)
        return encode(x, **kw)
    monkeypatch.setattr(enc, "encode", spy)
    # another field changes, the description does not: no forward pass, the same vector
    s.add_items([{"item_id": "cold1", "name": "Cold One", "tags": ["jazz", "piano"], "listeners": 7}])
    assert texts == [] and s.item("cold1")["listeners"] == 7 and s.item("cold1")["description"] == desc1
    assert np.array_equal(s.index.vector("cold1"), v1)
    # a built item given its own description keeps its built text vector (what encoding it gives)
    key = s.config["input_files"]["text"]
    desc, row = s.item("pop2")["description"], s.index.input_row(key, s.index.position("pop2")).copy()
    s.add_items([{"item_id": "pop2", "name": "Pop Two", "description": desc},
                 {"item_id": "cold2", "name": "Cold Two", "tags": ["metal"]}])
    assert texts == [s.item("cold2")["description"]]                  # only the new text is encoded
    assert np.array_equal(s.index.input_row(key, s.index.position("pop2")), row)
    fresh = encode(desc, kind="passage")
    assert float(fresh @ row / np.linalg.norm(fresh) / np.linalg.norm(row)) > 0.9999
    # a changed description is encoded again
    s.add_items([{"item_id": "cold1", "name": "Cold One", "tags": ["metal"]}])
    assert texts[-1] == s.item("cold1")["description"] != desc1
    assert not np.array_equal(s.index.vector("cold1"), v1)


def test_an_update_without_tags_keeps_the_items_tags_and_description(d):
    s = Space.load(d)
    before = s.item("pop2")
    assert before["tags"] and before["description"]
    s.add_items([{"item_id": "pop2", "name": before["name"], "listeners": 5}])       # another field only
    after = s.item("pop2")
    assert (after["tags"], after["description"], after["listeners"]) == (before["tags"], before["description"], 5)
    tag = before["tags"][0]
    assert "pop2" in _ids(s.search("band", k=60, where=f"tag={tag}", mode="lexical"))
    s.add_items([{"item_id": "pop2", "name": "Pop Renamed Qwzzyx"}])                 # a new name, no tags
    renamed = s.item("pop2")
    assert renamed["tags"] == before["tags"] and "Pop Renamed Qwzzyx" in renamed["description"]
    assert tag in renamed["description"] and _ids(s.search("qwzzyx", k=1, mode="lexical")) == ["pop2"]
    s.add_items([{"item_id": "pop2", "name": "Pop Renamed Qwzzyx", "tags": []}])     # tags given empty: cleared
    assert s.item("pop2")["tags"] == []


def test_cli_remove_compact_and_doctor(d):
    r = CliRunner().invoke(app, ["remove", "metal1", "metal2", "--space", str(d)])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == {"deleted": ["metal1", "metal2"], "items_total": 58}
    r = CliRunner().invoke(app, ["remove", "metal1", "--space", str(d)])
    assert r.exit_code == 2 and "unknown item" in r.output
    r = CliRunner().invoke(app, ["compact", "--space", str(d)])
    assert r.exit_code == 0 and json.loads(r.output)["generation"] == "gen-000002", r.output
    r = CliRunner().invoke(app, ["doctor", str(d), "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    assert rep["healthy"] and rep["items"] == 58 and rep["format"] == 2
    assert sorted(p.name for p in d.iterdir() if p.name.startswith(("gen-", "wal-"))) == ["gen-000002", "wal-000002.log"]


def test_readers_see_one_consistent_snapshot_while_writers_and_compaction_run(d):
    s = Space.load(d, compact_min_rows=6, compact_fraction=0.0)
    stop, errors, checked = threading.Event(), [], [0]

    def reader(kind: int) -> None:
        rnd = random.Random(kind)
        while not stop.is_set():
            try:
                if kind == 0:
                    hits = s.search(rnd.choice(["jazz", "metal band", "pop", "fresh"]), k=15)
                elif kind == 1:
                    hits = s.similar(f"metal{rnd.randrange(1, 20)}", k=15)
                else:
                    hits = s.continue_playlist([f"pop{rnd.randrange(1, 20)}"], k=10, diversity=0.3)
                ids = _ids(hits)
                assert len(ids) == len(set(ids)), ids
                checked[0] += 1
            except Exception as e:  # noqa: BLE001 - collected and reported
                errors.append(repr(e))

    def writer(w: int) -> None:
        for i in range(12):
            s.add_items([{"item_id": f"w{w}-{i}", "name": f"Fresh {w} {i}", "tags": ["pop", "jazz"]}])
            if i % 3 == 2:
                s.remove([f"w{w}-{i - 1}"])
            if i % 4 == 0:                          # updates of built items too
                s.add_items([{"item_id": f"metal{w + 10}", "name": f"Metal Band {w + 10}", "tags": ["metal"]}])
    readers = [threading.Thread(target=reader, args=(k,)) for k in range(3)]
    writers = [threading.Thread(target=writer, args=(w,)) for w in range(2)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join()
    s.compact()
    stop.set()
    for t in readers:
        t.join()
    assert not errors, errors[:5]
    assert checked[0] > 10
    assert s.store.manifest.generation != "gen-000001"                 # background compactions ran
    want = 60 + 2 * 12 - 2 * 4
    assert len(s.index) == want and len(set(s.item_ids)) == want
    again = Space.load(d)
    assert sorted(again.item_ids) == sorted(s.item_ids)


def test_concurrent_writers_land_once_each_sharing_fsyncs(d, monkeypatch):
    s = Space.load(d)
    s.add_items([{"item_id": "first", "name": "First"}])
    spy = FsyncSpy(monkeypatch)

    def writer(w: int) -> None:
        for i in range(6):
            s.add_items([{"item_id": f"c{w}-{i}", "name": f"Concurrent {w} {i}", "tags": ["pop"]}])
    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = list(Space.load(d).item_ids)
    assert len(ids) == len(set(ids)) == 61 + 24
    assert all(f"c{w}-{i}" in ids for w in range(4) for i in range(6))
    log_syncs = spy.paths.count(str(d / "wal-000001.log"))
    assert 0 < log_syncs <= 24                                         # group commit: never more than one per write


def test_reads_go_on_during_a_slow_fsync_and_see_the_write_only_once_durable(d, monkeypatch):
    """A write waiting for its fsync blocks no reader, and no reader sees it before it is
    durable (the snapshot is published after the fsync)."""
    import os

    from storage_helpers import fd_path

    s = Space.load(d)
    real, entered, release = os.fsync, threading.Event(), threading.Event()

    def slow_disk(fd: int) -> None:
        if fd_path(fd).endswith(".log"):
            entered.set()
            release.wait(30)
        real(fd)
    monkeypatch.setattr(os, "fsync", slow_disk)
    t = threading.Thread(target=s.add_items, args=([{"item_id": "slow", "name": "Slow Disk Qwzzyx"}],))
    t.start()
    assert entered.wait(30)
    assert _ids(s.search("jazz", k=3)) and s.similar("metal1", k=3) and len(s.index) == 60
    assert s.index.position("slow") is None and "slow" not in _ids(s.search("qwzzyx", k=3, mode="lexical"))
    release.set()
    t.join()
    assert s.index.position("slow") is not None and len(s.index) == 61


def test_compaction_carries_a_graph_over_and_search_matches_exact(tiny_space_dir, tmp_path):
    from talkrec.index.snapshot import Snapshot

    d = copy_space(tiny_space_dir, tmp_path / "space")
    cfg = json.loads((d / "space.json").read_text())
    cfg["index"] = {"ann": True, "M": 8, "ef_construction": 50, "ef_search": 64}
    (d / "space.json").write_text(json.dumps(cfg))
    s = Space.load(d)                              # no graph saved yet: built, then saved by compaction
    assert s.index.gen.index.graph is not None
    s.add_items([{"item_id": f"g{i}", "name": f"Graph {i}", "vectors": {"audio": [0, 0, 1.0, 0]}} for i in range(5)])
    s.remove(["pop3", "g1"])
    s.compact()
    assert (d / "gen-000002" / "index" / "hnsw.bin").exists()
    s.add_items([{"item_id": "g9", "name": "Graph 9", "vectors": {"audio": [0, 1.0, 0, 0]}}])
    s.remove(["jazz2"])
    s.compact()                                    # the saved graph is copied: labels map to rows
    labels = s.index.gen.index.graph_labels
    assert labels is not None and (labels < 0).sum() >= 1
    snap: Snapshot = Space.load(d).index
    for iid in ("g0", "pop5", "jazz7", "metal3", "g9"):
        q = snap.vector(iid)
        approx, exact = snap.search(q, 8), snap.search(q, 8, exact=True)
        assert len({i for i, _ in approx} & {i for i, _ in exact}) >= 7
        assert not {"pop3", "g1", "jazz2"} & {i for i, _ in approx}


def test_compaction_extends_the_bm25_index_without_tokenizing_the_catalog_again(d, monkeypatch):
    """A compaction's BM25 index is the generation's, dead rows dropped and the written rows'
    tokens added (tokenizing every description held the GIL ~0.75 s on Last.fm while reads
    waited): the same scores as tokenizing the compacted texts; a generation saved without
    its term counts (written before them) is tokenized as before."""
    import bm25s

    from talkrec.index.lexical import LexicalIndex
    from talkrec.index.segments import lexical_texts

    def fresh(space):
        lex = space.index.gen.lexical()
        return LexicalIndex(lexical_texts(space.index.meta, lex.fields), k1=lex.k1, b=lex.b, fields=lex.fields,
                            pairs=lex.pairs)

    s = Space.load(d)
    s.add_items([{"item_id": "w1", "name": "Qwzzyx Band", "tags": ["jazz", "brandnewword"]},
                 {"item_id": "jazz4", "name": "Jazz Band 4", "tags": ["metal", "metal"]}])   # an update
    s.remove(["pop3", "w1"])
    s.add_items([{"item_id": "w2", "name": "Second Qwzzyx", "tags": ["folk"]}])
    assert s.index.gen.lexical().pairs                           # the build's default: words and word pairs
    with monkeypatch.context() as m:
        for owner, name in ((bm25s, "tokenize"), (LexicalIndex, "tokenize")):    # words; words and pairs
            m.setattr(owner, name, lambda *a, **k: (_ for _ in ()).throw(AssertionError("tokenized")))
        assert s.compact()["compacted"]
    lex, ref = s.index.gen.lexical(), fresh(s)
    assert lex.has_counts and lex.pairs and lex.n == len(s.index) == ref.n and lex.avgdl == ref.avgdl
    for q in ("jazz band", "qwzzyx", "brandnewword", "metal metal", "folk", "pop"):
        assert np.array_equal(lex.scores(q), ref.scores(q)), q
    assert _ids(s.search("qwzzyx", k=3, mode="lexical")) == ["w2"]
    s.close()
    bm25 = d / Space.load(d).index.gen.name / "bm25"             # as an earlier version saved it
    for f in ("talkrec_tf.npy", "talkrec_doclen.npy"):
        (bm25 / f).unlink()
    old = Space.load(d)
    assert not old.index.gen.lexical().has_counts
    old.add_items([{"item_id": "w3", "name": "Third Qwzzyx", "tags": ["rock"]}])
    assert old.compact()["compacted"]
    lex, ref = old.index.gen.lexical(), fresh(old)
    assert lex.has_counts and np.array_equal(lex.scores("qwzzyx rock"), ref.scores("qwzzyx rock"))
    old.close()


@pytest.mark.parametrize("crash_at", [1, 2])
def test_a_crash_during_compaction_leaves_a_space_that_loads(d, monkeypatch, crash_at):
    """Crash at the seal (1st manifest write) or after the next generation was written but
    before the manifest names it (2nd): the space loads with every write, and the load
    deletes the generation nobody names."""
    import talkrec.space.writer as writer_mod

    s = Space.load(d)
    s.add_items([{"item_id": "x1", "name": "Before The Crash", "tags": ["pop"]}])
    s.remove(["jazz1"])
    real, calls = writer_mod.write_manifest, []

    def crash(*a, **kw):
        calls.append(a)
        if len(calls) == crash_at:
            raise OSError("killed (simulated)")
        real(*a, **kw)
    monkeypatch.setattr(writer_mod, "write_manifest", crash)
    with pytest.raises(OSError, match="killed"):
        s.compact()
    monkeypatch.undo()
    s.close()
    assert (d / "gen-000002").exists() == (crash_at == 2)
    again = Space.load(d)
    assert again.index.position("x1") is not None and again.index.position("jazz1") is None and len(again.index) == 60
    assert not (d / "gen-000002").exists() and doctor(d).healthy
    again.add_items([{"item_id": "x2", "name": "After The Crash"}])
    assert again.compact()["compacted"] and len(Space.load(d).index) == 61


def test_leftovers_of_a_killed_writer_are_cleaned_on_load(d):
    """Temporary folders left by kill -9 were never cleaned up (29 MB after 5 rounds)."""
    legacy = make_legacy(d)
    (legacy / ".index.k2j3h4g5").mkdir()                     # what main's atomic_dir left behind
    (legacy / ".index.k2j3h4g5" / "vectors.npy").write_bytes(b"x" * 1000)
    (legacy / "inputs" / ".text.npy.abcdefgh.npy").write_bytes(b"x" * 1000)
    rep = doctor(legacy)
    assert not rep.healthy and {f.kind for f in rep.findings} >= {"orphan", "legacy_format"}
    s = Space.load(legacy)
    assert len(s.index) == 60
    assert not list(legacy.glob(".index.*")) and not list((legacy / "inputs").glob(".*"))
    assert doctor(legacy).healthy


def test_a_legacy_space_loads_and_migrates_on_its_first_write(d):
    legacy = make_legacy(d)
    s = Space.load(legacy)
    before = _ids(s.search("jazz", k=5))
    s.add_items([{"item_id": "m1", "name": "Migrated", "tags": ["jazz"]}])
    assert (legacy / "MANIFEST.json").exists() and not (legacy / "index").exists()
    again = Space.load(legacy)
    assert again.index.position("m1") is not None and _ids(again.search("jazz", k=5, where="cold_start=false")) == before
    assert doctor(legacy).healthy and doctor(legacy).format == 2


def test_doctor_repairs_duplicate_ids_of_the_old_bug_and_a_torn_log(d):
    import pandas as pd

    legacy = make_legacy(d)
    meta = pd.read_parquet(legacy / "index" / "meta.parquet")
    V = np.load(legacy / "index" / "vectors.npy")
    dup = meta.iloc[[3]].assign(name="Second Row")            # finding 1 stored an id twice
    pd.concat([meta, dup], ignore_index=True).to_parquet(legacy / "index" / "meta.parquet", index=False)
    np.save(legacy / "index" / "vectors.npy", np.vstack([V, V[3:4]]))
    for f in (legacy / "inputs").glob("*.npy"):
        X = np.load(f)
        np.save(f, np.concatenate([X, X[3:4]]))
    with pytest.raises(ValueError, match="unique"):
        Space.load(legacy)
    rep = doctor(legacy)
    assert not rep.healthy and "duplicate_ids" in {f.kind for f in rep.findings}
    rep = doctor(legacy, repair=True)
    assert rep.healthy and rep.format == 2, rep.to_json()
    s = Space.load(legacy)
    assert len(s.index) == 60 and s.item(meta["item_id"][3])["name"] == "Second Row"
    s.add_items([{"item_id": "after", "name": "After"}])
    s.close()
    log = legacy / "wal-000001.log"
    log.write_bytes(log.read_bytes()[:-5])
    rep = doctor(legacy)
    assert not rep.healthy and [f.kind for f in rep.findings] == ["torn_log"]
    assert doctor(legacy, repair=True).healthy and doctor(legacy).healthy


def test_a_second_writer_process_is_refused(d):
    import subprocess
    import sys

    from storage_helpers import child_env

    s = Space.load(d)
    s.add_items([{"item_id": "mine", "name": "Mine"}])                # this process holds LOCK
    code = ("from talkrec import Space\nfrom talkrec.space import WriteError\n"
            f"s = Space.load({str(d)!r})\n"
            "try:\n    s.remove(['jazz1'])\nexcept WriteError as e:\n    print('refused', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=child_env(), timeout=300)
    assert "refused" in out.stdout and "another process" in out.stdout, out.stderr[-2000:]
    with pytest.raises(Exception, match="another Space object of this process"):
        Space.load(d).remove(["jazz1"])
    s.close()
    other = Space.load(d)
    s2 = Space.load(d)
    other.add_items([{"item_id": "theirs", "name": "Theirs"}])
    other.close()
    with pytest.raises(Exception, match="changed by another process"):
        s2.add_items([{"item_id": "stale", "name": "Stale"}])       # s2 loaded before that write


def test_compaction_runs_in_the_background_past_the_threshold_of_space_json(d):
    cfg = json.loads((d / "space.json").read_text())
    cfg["storage"] = {"compact_min_rows": 3, "compact_fraction": 0.0}
    (d / "space.json").write_text(json.dumps(cfg))
    s = Space.load(d)
    assert s.store.threshold(60) == 3 and Space.load(d, compact_min_rows=7).store.threshold(60) == 7
    for i in range(2):
        s.add_items([{"item_id": f"bg{i}", "name": f"Background {i}"}])
    assert s.store.manifest.generation == "gen-000001"
    s.remove(["jazz1"])                                    # 3 changes: 2 new rows + 1 dead base row
    s.close()                                              # waits for the compaction it started
    assert s.store.manifest.generation == "gen-000002" and len(Space.load(d).index) == 61


def test_a_closed_space_writes_again_and_another_sees_its_writes(d):
    s = Space.load(d)
    s.add_items([{"item_id": "a1", "name": "A1"}])
    s.close()
    s.add_items([{"item_id": "a2", "name": "A2"}])          # its own writes are not "another process"
    s.compact()
    s.close()
    other = Space.load(d)
    assert {"a1", "a2"} <= set(other.item_ids)
    other.remove(["a1"])
    other.close()
    with pytest.raises(Exception, match="changed by another process"):
        s.add_items([{"item_id": "a3", "name": "A3"}])      # s did not see other's delete


def test_doctor_recovers_an_index_moved_aside_by_an_interrupted_write(d):
    legacy = make_legacy(d)
    (legacy / "index").rename(legacy / ".index.old-99")
    rep = doctor(legacy)
    assert not rep.healthy and [f.kind for f in rep.findings if not f.note] == ["recover_old"]
    r = CliRunner().invoke(app, ["doctor", str(legacy)])
    assert r.exit_code == 1 and "recover_old" in r.output
    rep = doctor(legacy, repair=True)
    assert rep.healthy and rep.format == 2 and rep.items == 60
    assert len(Space.load(legacy).index) == 60 and not list(legacy.glob(".index*"))


def test_a_build_does_not_replace_a_space_another_process_writes_to(d, tmp_path):
    """A server that had written kept appending acknowledged writes to the log of the folder a
    rebuild swapped out (lost), and would compact its old items into the new space."""
    import subprocess
    import sys

    from tiny_data import TINY_SPACE_CONFIG, make_tiny_catalog

    from talkrec.pipeline import build
    from talkrec.space.files import WriteError

    cfg = {**TINY_SPACE_CONFIG, "output": str(d), "build_cache": str(tmp_path / "cache.build")}
    code = (f"from talkrec import Space\ns = Space.load({str(d)!r})\n"
            "s.add_items([{'item_id': 'held1', 'name': 'H'}])\n"
            "print('writing', flush=True)\nimport sys\nsys.stdin.read()\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "writing"
        with pytest.raises(WriteError, match=r"open for writing in another process .*it was not replaced"):
            build(cfg, show_progress=False, catalog=make_tiny_catalog())
        assert not (tmp_path / "cache.build").exists()                  # refused before any stage ran
    finally:
        holder.communicate("", timeout=60)
    assert "held1" in Space.load(d).item_ids                             # the space and its write are there
    own = Space.load(d)
    own.add_items([{"item_id": "mine1", "name": "M"}])                   # this process writes to it now
    with pytest.raises(WriteError, match=r"a Space object of this process \(close\(\) it first\)"):
        build(cfg, show_progress=False, catalog=make_tiny_catalog())
    own.close()
    build(cfg, show_progress=False, catalog=make_tiny_catalog())           # nobody writes to it: replaced
    assert "held1" not in Space.load(d).item_ids


def test_a_space_loaded_before_a_rebuild_does_not_write_its_old_items_over_the_new_one(d, tmp_path):
    """A rebuilt space had the very manifest of the one it replaced (generation 1, log 1), so a
    process that had loaded the old one and not written yet took the new one for its own: its
    first write and compaction put the 60 old items back over a rebuild of 30."""
    import json

    from tiny_data import TINY_SPACE_CONFIG, make_tiny_catalog

    from talkrec.pipeline import build, subsample
    from talkrec.space.files import WriteError

    stale = Space.load(d)
    first_id = json.loads((d / "MANIFEST.json").read_text())["space_id"]
    build({**TINY_SPACE_CONFIG, "output": str(d), "build_cache": str(tmp_path / "c.build")}, show_progress=False,
          catalog=subsample(make_tiny_catalog(), 30, 0))
    new_id = json.loads((d / "MANIFEST.json").read_text())["space_id"]
    assert new_id not in ("", first_id)
    with pytest.raises(WriteError, match="changed by another process since it was loaded"):
        stale.add_items([{"item_id": "late1", "name": "Late"}])
    stale.close()
    fresh = Space.load(d)
    assert len(fresh.item_ids) == 30
    fresh.add_items([{"item_id": "ok1", "name": "Ok"}])                # writes and compactions keep the id
    fresh.compact()
    fresh.close()
    manifest = json.loads((d / "MANIFEST.json").read_text())
    assert manifest["generation"] == "gen-000002" and manifest["space_id"] == new_id
    assert len(Space.load(d).item_ids) == 31


def test_a_new_space_carries_its_int8_copies_so_no_serving_process_makes_them(tmp_path, monkeypatch):
    """Issue 13 ("anything a query needs is built at build time"): only a compaction saved the
    int8 copies, so every `talkrec serve` of a freshly built space quantized its vectors and
    its text matrix again at warm-up (0.1 s for Last.fm). The build saves them; a process
    reading the generation loads them (32 rows checked) and they score as a new copy does."""
    import pandas as pd

    from talkrec.index import quantized
    from talkrec.index.store import VectorIndex
    from talkrec.space.files import read_generation, write_new_space

    rng = np.random.default_rng(0)
    n = quantized.MIN_ROWS
    V = rng.normal(size=(n, 8)).astype(np.float32)
    meta = pd.DataFrame({"item_id": [f"i{i}" for i in range(n)], "name": [f"item {i}" for i in range(n)],
                         "description": ["rock"] * n})
    index = VectorIndex([f"i{i}" for i in range(n)], V, meta)
    write_new_space(tmp_path, index, {"text": rng.normal(size=(n, 6)).astype(np.float32)}, text_key="text")
    assert sorted(p.name for p in (tmp_path / "gen-000001" / "int8").iterdir()) == ["fused.npz", "input-text.npz"]
    calls = []
    real = quantized._quantize
    monkeypatch.setattr(quantized, "_quantize", lambda X: calls.append(len(X)) or real(X))
    gen = read_generation(tmp_path / "gen-000001", ann=False)
    gen.warm_int8("text")
    assert calls == [32, 32]                          # the saved copies checked, not made again
    q = rng.normal(size=8).astype(np.float32)
    rows, sims = gen.int8(None).top(q, 10)
    fresh = quantized.Int8TopK(gen.vectors).top(q, 10)
    assert rows.tolist() == fresh[0].tolist() and np.array_equal(sims, fresh[1])
