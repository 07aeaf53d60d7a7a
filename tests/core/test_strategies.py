"""The strategies Space.similar / Space.recommend serve (issue 12): RRF with EASE, the
z-scored blend, ``fusion: paper``, modality weights, and that filters, offsets, exclusions
and cold items keep working through them."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from talkrec.errors import InputError, NotFoundError
from talkrec.pipeline import build
from talkrec.space import Space
from talkrec.space.strategies import zscore
from talkrec.space.coldscores import cold_neighbors, content_rows
from tiny_data import copy_space


@pytest.fixture(scope="module")
def space(tiny_space_dir):
    return Space.load(tiny_space_dir)


@pytest.fixture
def tiny_config(tiny_space_dir):
    """The build config of the tiny space (the suite's TINY_SPACE_CONFIG over the defaults)."""
    cfg = json.loads((tiny_space_dir / "space.json").read_text())["build_config"]
    return {k: v for k, v in cfg.items() if k not in ("output", "profile")}


def test_the_build_stores_ease_and_the_default_strategies(space, tiny_space_dir):
    assert (tiny_space_dir / "ease" / "ease.npz").exists()
    assert space.config["similar"]["strategy"] == "rrf" and space.config["recommend"]["strategy"] == "blend"
    assert space.config["modality_weights"] == {"text": 1.0, "cf": 1.0, "audio": 1.0}


def test_score_kind_says_what_similar_and_recommend_score(space, tiny_space_dir):
    from talkrec.space.strategies import score_kind

    assert (score_kind(space, "similar"), score_kind(space, "recommend")) == ("rrf", "blend")
    sp = Space.load(tiny_space_dir)
    sp.config["similar"], sp.config["recommend"] = {"strategy": "knn"}, {"strategy": "rrf"}
    assert (score_kind(sp, "similar"), score_kind(sp, "recommend")) == ("cosine", "rrf")
    q = sp.item_vector("jazz3")                                   # knn: the fused space's cosines
    assert np.isclose(sp.similar("jazz3", k=1)[0].score, float(np.max(sp.index.scores(q)[
        [p for p in range(sp.index.n_rows) if sp.index.id_at(p) != "jazz3"]])))


def test_similar_fuses_the_fused_list_with_the_ease_list(space):
    hits = space.similar("jazz3", k=8)
    assert [h.item_id for h in hits].count("jazz3") == 0 and all(h.item_id.startswith("jazz") for h in hits)
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True) and scores[0] <= 1.5 / 61    # RRF scores (c = 60)
    # offset pages through the same ranking; a filter keeps only matching items
    assert [h.item_id for h in space.similar("jazz3", k=3, offset=2)] == [h.item_id for h in hits[2:5]]
    only = space.similar("jazz3", k=5, where={"name": "Metal Band 2"})
    assert [h.item_id for h in only] == ["metal2"]
    with pytest.raises(NotFoundError):
        space.similar("nope")
    with pytest.raises(InputError):
        space.similar("jazz3", k=0)


def test_similar_reads_the_fused_list_only_as_deep_as_its_top_can_reach(tiny_space_dir, monkeypatch):
    """``ranking.rrf_depth`` cuts the fused list short of ``similar.depth``: the same hits and
    scores as the whole list (c = 1 here, so that the cut falls inside the tiny catalog)."""
    from talkrec.index.snapshot import Snapshot
    from talkrec.space import strategies

    sp = Space.load(tiny_space_dir)
    # without the BM25 list: beside it (weight 2) no depth short of the whole list is enough
    sp.config["similar"] = {**sp.config["similar"], "rrf_c": 1.0, "lexical_weight": 0.0}
    depths = []
    search_rows = Snapshot.search_rows

    def spy(self, q, k=10, **kw):
        depths.append(k)
        return search_rows(self, q, k, **kw)
    monkeypatch.setattr(Snapshot, "search_rows", spy)

    def answers():
        return [[(h.item_id, h.score) for h in sp.similar(item, k=k, offset=off, where=where)]
                for item in sp.item_ids for k, off in ((1, 0), (2, 1), (3, 0)) for where in (None, "tag=rock")]
    cut = answers()
    assert min(depths) < len(sp.item_ids) - 1                  # the list was cut short
    monkeypatch.setattr(strategies, "rrf_depth", lambda *a, **kw: None)
    depths.clear()
    assert answers() == cut and min(depths) >= len(sp.item_ids) - 1
    monkeypatch.undo()
    sp.config["similar"]["lexical_weight"] = 2.0
    monkeypatch.setattr(Snapshot, "search_rows", spy)
    depths.clear()
    answers()
    assert min(depths) >= len(sp.item_ids) - 1


def test_recommend_blends_and_keeps_exclusions(space):
    hist = ["pop1", "pop2", "pop3"]
    hits = space.recommend(items=hist, k=10)
    ids = [h.item_id for h in hits]
    assert not set(ids) & set(hist) and all(i.startswith("pop") for i in ids[:8])
    seen = space.recommend(items=hist, k=60, exclude_seen=False)
    assert set(hist) <= {h.item_id for h in seen}
    assert [h.item_id for h in space.recommend(items=hist, k=4, offset=3)] == ids[3:7]
    filtered = space.recommend(items=hist, k=5, where={"name": "Jazz Band 4"})
    assert [h.item_id for h in filtered] == ["jazz4"]
    u = space.users(1)[0][0]
    assert space.recommend(user=u, k=5)


def test_recommend_rrf_strategy(space, tmp_path):
    d = tmp_path / "s"
    copy_space(space.path, d)
    cfg = json.loads((d / "space.json").read_text())
    cfg["recommend"] = {"strategy": "rrf", "weights": {"ease": 0.5}}
    (d / "space.json").write_text(json.dumps(cfg))
    s = Space.load(d)
    ids = [h.item_id for h in s.recommend(items=["metal1", "metal2"], k=6)]
    assert len(ids) == 6 and all(i.startswith("metal") for i in ids) and "metal1" not in ids


def test_cold_items_still_rank(tiny_space_dir, tmp_path):
    d = tmp_path / "s"
    copy_space(tiny_space_dir, d)
    s = Space.load(d)
    s.add_items([{"item_id": "newjazz", "name": "New Jazz Trio", "tags": ["jazz", "band"],
                  "vectors": {"audio": [0.0, 1.0, 0.0, 0.0]}}])
    assert "newjazz" in [h.item_id for h in s.similar("jazz1", k=25)]
    near = s.similar("newjazz", k=5)                 # no EASE list: its fused list
    assert all(h.item_id.startswith("jazz") for h in near)
    fused_only = [h.score for h in s.similar("newjazz", k=10)]
    s.config["similar"] = {**s.config["similar"], "cold_neighbors": 5, "cold_weight": 0.25}
    borrowed = s.similar("newjazz", k=10)            # its 5 nearest items' EASE lists as a second list
    assert all(h.item_id.startswith("jazz") for h in borrowed[:5])
    assert [h.score for h in borrowed] != fused_only and borrowed[0].score > 1 / 61
    assert "newjazz" in [h.item_id for h in s.recommend(items=["jazz1", "jazz2"], k=30)]
    def rank(**cfg):
        s.config["recommend"] = {**s.config["recommend"], **cfg}
        return [h.item_id for h in s.recommend(items=["jazz1", "jazz2"], k=40)].index("newjazz")
    # CF scores imputed from its nearest items with CF lift the cold item among its cluster
    assert rank(cold_neighbors=5) < rank(cold_neighbors=0)
    s.config["recommend"] = {**s.config["recommend"], "cold_boost": 10.0}    # exposure for items without CF
    assert s.recommend(items=["jazz1", "jazz2"], k=3)[0].item_id == "newjazz"
    s.close()


def test_paper_profile_is_one_switch(tmp_path, tiny_config, tiny_catalog):
    out = tmp_path / "paper"
    cfg = {**tiny_config, "fusion": "paper", "output": str(out)}
    from talkrec.pipeline import serving
    full = serving.resolve_profile({**cfg, "similar": {"strategy": "rrf"}, "recommend": {"strategy": "blend"},
                                    "ease": {"enabled": True}})
    assert full["fusion"] == serving.PAPER_FUSION and full["ease"]["enabled"] is False
    assert full["similar"] == {"strategy": "knn"} and full["recommend"] == {"strategy": "knn"}
    with pytest.raises(InputError) as e:
        serving.resolve_profile({**cfg, "fusion": "fancy"})
    assert e.value.field == "fusion"
    with pytest.raises(InputError) as e:
        serving.resolve_profile({**cfg, "fusion": {}, "similar": {"strategy": "x"}, "recommend": {}})
    assert e.value.field == "similar.strategy"
    with pytest.raises(InputError) as e:                     # before any stage runs
        build({**cfg, "fusion": {}, "search": {"bm25_b": 2}, "output": str(tmp_path / "never")},
              show_progress=False, catalog=tiny_catalog)
    assert e.value.field == "search.bm25_b" and not (tmp_path / "never.build").exists()
    # a small paper build (few epochs) serves plain kNN: scores are cosines
    build({**cfg, "fusion": {"max_epochs": 5, "batch_size": 32, "hidden_dim": 32, "out_dim": 16}, "similar":
           {"strategy": "knn"}, "recommend": {"strategy": "knn"}, "ease": {"enabled": False}},
          show_progress=False, catalog=tiny_catalog)
    s = Space.load(out)
    assert not (out / "ease").exists() and s.config["similar"]["strategy"] == "knn"
    v = s.item_vector("jazz1")
    h = s.similar("jazz1", k=3)
    assert np.isclose(h[0].score, float(s.item_vector(h[0].item_id) @ v), atol=1e-5)


def test_modality_weights_reach_the_build_and_cold_upserts(tmp_path, tiny_config, tiny_catalog):
    out = tmp_path / "w"
    cfg = {**tiny_config, "output": str(out), "modality_weights": {"audio": 0.0}}
    build(cfg, show_progress=False, catalog=tiny_catalog)
    s = Space.load(out)
    assert s.config["modality_weights"]["audio"] == 0.0
    # audio weighs nothing: an item's vector is the mean of its text and cf projections
    p = s.fusion.modality_outputs({"text": s.raw_input("jazz1", "text")[:1], "cf": s.raw_input("jazz1", "cf")})
    want = p["text"][0] + p["cf"][0]
    assert np.allclose(s.item_vector("jazz1"), want / np.linalg.norm(want), atol=1e-4)
    s.add_items([{"item_id": "n1", "name": "N", "tags": ["jazz"], "vectors": {"audio": [0.0, 1.0, 0.0, 0.0]}}])
    t = s.fusion.project("text", s.raw_input("n1", "text")[0])
    assert np.allclose(s.item_vector("n1"), t / np.linalg.norm(t), atol=1e-4)
    s.close()
    with pytest.raises(InputError) as e:
        build({**cfg, "modality_weights": {"smell": 1.0}}, show_progress=False, catalog=tiny_catalog)
    assert e.value.field == "modality_weights"


def test_zscore():
    s = np.array([1.0, 2.0, 3.0, 100.0])
    z = zscore(s, np.array([True, True, True, False]))
    assert np.allclose(z[:3], [-1.2247449, 0.0, 1.2247449]) and z[3] == 0.0
    assert (zscore(np.ones(3), np.ones(3, bool)) == 0).all()


def test_bm25_fields_index_every_tag_and_new_rows_the_same_way(tmp_path, tiny_config, tiny_catalog):
    from talkrec.index.segments import lexical_texts, row_text

    meta = pd.DataFrame({"description": ["Jazz trio.", None], "name": ["A", "Bee"], "genre": [["jazz", "bop"], None],
                         "year": [1990, 2000]})
    # fields joined with " | " and tags with ", ": no word pair (search.bm25_pairs) spans two of them
    assert lexical_texts(meta, ["description", "genre", "missing"]) == ["Jazz trio. | jazz, bop", "Bee"]
    assert row_text({"name": "Bee", "genre": ["x", 3, "y"]}, ["description", "genre"]) == "Bee | x, y"
    out = tmp_path / "fields"
    build({**tiny_config, "output": str(out), "search": {**tiny_config["search"], "bm25_fields": ["description", "genre"]}},
          show_progress=False, catalog=tiny_catalog)
    s = Space.load(out)
    assert s.index.gen.lexical().fields == ("description", "genre")
    # a tag that only the genre field holds (the item's own description does not name it)
    s.add_items([{"item_id": "odd", "name": "Odd", "description": "plain words", "tags": {"genre": ["zzgenre"]}}])
    assert [h.item_id for h in s.search("zzgenre", k=3, mode="lexical")] == ["odd"]      # a delta row
    # an update that leaves the tags out keeps them, and its row is tokenized with them (as a replay does)
    s.add_items([{"item_id": "odd", "name": "Odd", "listeners": 3}])
    live = [(h.item_id, h.score) for h in s.search("zzgenre plain", k=3, mode="lexical")]
    assert live and live[0][0] == "odd" and s.item("odd")["genre"] == ["zzgenre"] and s.item("odd")["listeners"] == 3
    s.close()
    s = Space.load(out)
    assert [(h.item_id, h.score) for h in s.search("zzgenre plain", k=3, mode="lexical")] == live
    assert s.compact()["compacted"]
    again = Space.load(out)
    assert again.index.gen.lexical().fields == ("description", "genre")
    assert [h.item_id for h in again.search("zzgenre", k=3, mode="lexical")] == ["odd"]  # the new generation
    with pytest.raises(InputError) as e:                     # a field the catalog does not have: before any stage
        build({**tiny_config, "output": str(tmp_path / "never"), "search": {"bm25_fields": ["description", "genres"]}},
              show_progress=False, catalog=tiny_catalog)
    assert e.value.field == "search.bm25_fields" and "'genres'" in str(e.value)
    assert not (tmp_path / "never").exists()
    for bad in ("genre", [], [""], [1]):
        with pytest.raises(InputError) as e:
            again.config["search"]["bm25_fields"] = bad
            again.search("jazz", mode="lexical")
        assert e.value.field == "search.bm25_fields"


def test_bm25_word_pairs_reach_built_written_replayed_and_compacted_rows(tmp_path, tiny_config, tiny_catalog):
    """``search.bm25_pairs: true``: the built index, the rows written since, a replay of the log
    and the compacted generation all index word pairs, and queries are tokenized to match."""
    out = tmp_path / "pairs"
    build({**tiny_config, "output": str(out), "search": {**tiny_config["search"], "bm25_pairs": True,
                                                          "bm25_fields": ["description", "genre"]}},
          show_progress=False, catalog=tiny_catalog)
    s = Space.load(out)
    assert s.index.gen.lexical().pairs
    s.add_items([{"item_id": "pr", "name": "Pr", "description": "zzpost-zzrock", "tags": {"genre": ["calm"]}},
                 {"item_id": "pp", "name": "Pp", "description": "calm", "tags": {"genre": ["zzpost-punk", "zzrock"]}}])
    live = [(h.item_id, h.score) for h in s.search("zzpost zzrock", k=3, mode="lexical")]
    assert [i for i, _ in live] == ["pr", "pp"] and live[0][1] > live[1][1]      # the pair decides
    s.close()
    s = Space.load(out)                                          # the log replayed
    assert [(h.item_id, h.score) for h in s.search("zzpost zzrock", k=3, mode="lexical")] == live
    assert s.compact()["compacted"]
    again = Space.load(out)
    assert again.index.gen.lexical().pairs and "zzpost zzrock" in again.index.gen.lexical().vocab
    assert [h.item_id for h in again.search("zzpost zzrock", k=3, mode="lexical")] == ["pr", "pp"]
    with pytest.raises(InputError) as e:
        again.config["search"]["bm25_pairs"] = "yes"
        again.search("jazz", mode="lexical")
    assert e.value.field == "search.bm25_pairs"


def test_bm25_stemmer_reaches_built_written_replayed_and_compacted_rows(tmp_path, tiny_config, tiny_catalog):
    """``search.bm25_stemmer: english``: "zzanimated" finds the rows whose text says
    "zzanimation" in the built index, in rows written since, after a replay of the log and in
    the compacted generation; the explanation names the query's word, not its stem; a space
    built without the setting keeps its words (and a setting added later is honoured)."""
    out = tmp_path / "stem"
    build({**tiny_config, "output": str(out), "search": {**tiny_config["search"], "bm25_stemmer": "english"}},
          show_progress=False, catalog=tiny_catalog)
    s = Space.load(out)
    assert s.index.gen.lexical().stemmer == "english"
    s.add_items([{"item_id": "an", "name": "An", "description": "zzanimation for zzmovies"},
                 {"item_id": "other", "name": "Other", "description": "calm zzmovie"}])
    live = [(h.item_id, h.score) for h in s.search("zzanimated zzmovie", k=3, mode="lexical")]
    assert [i for i, _ in live] == ["an", "other"]             # zzanim and zzmovi: the stems
    ex = s.explain_search("zzanimated zzmovie", "an", mode="lexical")
    assert {t["term"] for t in ex["terms"]} == {"zzanimated", "zzmovie"}
    s.close()
    s = Space.load(out)                                          # the log replayed
    assert [(h.item_id, h.score) for h in s.search("zzanimated zzmovie", k=3, mode="lexical")] == live
    assert s.compact()["compacted"]
    again = Space.load(out)
    assert again.index.gen.lexical().stemmer == "english" and "zzanim" in again.index.gen.lexical().vocab
    assert [h.item_id for h in again.search("zzanimated zzmovie", k=3, mode="lexical")] == ["an", "other"]
    again.config["search"]["bm25_stemmer"] = False               # turned off: the words must match as typed
    assert again.search("zzanimated", k=3, mode="lexical") == []
    with pytest.raises(InputError) as e:
        again.config["search"]["bm25_stemmer"] = "elvish"
        again.search("jazz", mode="lexical")
    assert e.value.field == "search.bm25_stemmer"
    plain = tmp_path / "plain"
    build({**tiny_config, "output": str(plain)}, show_progress=False, catalog=tiny_catalog)
    p = Space.load(plain)
    assert p.index.gen.lexical().stemmer == ""
    assert p.search("bands", k=5, mode="lexical") == []               # the built rows say "band"
    p.config["search"] = {**p.config.get("search", {}), "bm25_stemmer": "english"}
    hits = p.search("bands", k=5, mode="lexical")                      # the generation's index, stemmed
    assert len(hits) == 5 and all(h.name.startswith("Metal Band") for h in hits)


def test_bm25_stopwords_reach_built_written_replayed_and_compacted_rows_and_the_names(tmp_path, tiny_config,
                                                                                      tiny_catalog):
    """``search.bm25_stopwords``: the space's own stopwords are no terms in the built index, in
    rows written since, after a replay of the log, in the compacted generation and in the names
    list; a query with one scores as without it; the explanation lists the other words only; a
    space built without the setting honours it when it is added later."""
    from talkrec.space.namelist import name_scores

    out = tmp_path / "stop"
    build({**tiny_config, "output": str(out), "search": {**tiny_config["search"], "bm25_stopwords": ["zzmovies"]}},
          show_progress=False, catalog=tiny_catalog)
    s = Space.load(out)
    assert s.index.gen.lexical().stopwords == ("zzmovies",)
    s.add_items([{"item_id": "f", "name": "Zzmovies Zzfunny", "description": "zzmovies zzfunny"},
                 {"item_id": "c", "name": "Calm", "description": "zzmovies zzcalm"}])
    assert s.search("zzmovies", k=3, mode="lexical") == []
    live = [(h.item_id, h.score) for h in s.search("zzfunny zzmovies", k=3, mode="lexical")]
    assert live == [(h.item_id, h.score) for h in s.search("zzfunny", k=3, mode="lexical")] and live[0][0] == "f"
    assert {t["term"] for t in s.explain_search("zzfunny zzmovies", "f", mode="lexical")["terms"]} == {"zzfunny"}
    assert not name_scores(s, s.index, "zzmovies").any()                 # the names list: no term either
    s.close()
    s = Space.load(out)                                                  # the log replayed
    assert [(h.item_id, h.score) for h in s.search("zzfunny zzmovies", k=3, mode="lexical")] == live
    assert s.compact()["compacted"]
    again = Space.load(out)
    assert again.index.gen.lexical().stopwords == ("zzmovies",) and "zzmovies" not in again.index.gen.lexical().vocab
    assert [h.item_id for h in again.search("zzfunny zzmovies", k=3, mode="lexical")] == ["f"]
    plain = tmp_path / "plain"
    build({**tiny_config, "output": str(plain)}, show_progress=False, catalog=tiny_catalog)
    p = Space.load(plain)
    p.add_items([{"item_id": "f", "name": "F", "description": "zzmovies zzfunny"}])
    assert [h.item_id for h in p.search("zzmovies", k=3, mode="lexical")] == ["f"]
    p.config["search"] = {**p.config.get("search", {}), "bm25_stopwords": ["zzmovies"]}
    assert p.search("jazz zzmovies", k=3, mode="lexical") == p.search("jazz", k=3, mode="lexical") != []


def test_per_snapshot_model_state_after_writes_equals_a_lookup_from_scratch(tiny_space_dir, tmp_path, monkeypatch):
    """Issue 10/13: every write makes a snapshot, and the first read after it re-derived the
    model rows, ALS factors and cold neighbours over the whole catalog (9 / 18 ms on Last.fm).
    They are now made once per generation and patched per snapshot: after updates, deletes
    and new items they must equal a lookup from scratch."""
    from talkrec.space import strategies as st

    d = tmp_path / "s"
    copy_space(tiny_space_dir, d)
    s = Space.load(d, auto_compact=False)
    ease = st.ease_model(s)
    s.similar("jazz1")
    s.add_items([{"item_id": "newjazz", "name": "New Jazz Trio", "tags": ["jazz"], "vectors": {"audio": [0, 1, 0, 0]}},
                 {"item_id": "jazz2", "name": "Jazz Band 2", "tags": ["jazz", "rock"]}])   # an update: a delta row
    s.remove(["pop1"])
    s.add_items([{"item_id": "newpop", "name": "New Pop", "tags": ["pop"]}])
    snap = s.index
    looked = []
    real = snap.gen.index.position
    monkeypatch.setattr(snap.gen.index, "position", lambda i: looked.append(i) or real(i))
    rows = st.rows_of(snap, ease.item_ids_, ("ease", id(ease)), ease._pos)
    assert not looked                                 # the generation's lookup is reused
    monkeypatch.undo()
    want = [-1 if (p := snap.position(i)) is None else p for i in ease.item_ids_.tolist()]
    assert rows.tolist() == want and rows[ease._pos["jazz2"]] >= snap.n0 and rows[ease._pos["pop1"]] == -1
    ids, F, pos = st._als_items(s)
    out, has = st._als_scores(s, snap, ["jazz1", "jazz3"])
    ref, ref_has = np.zeros(snap.n_rows), np.zeros(snap.n_rows, dtype=bool)
    mean = F[[pos["jazz1"], pos["jazz3"]]].mean(axis=0)
    for i, f in zip(ids.tolist(), F):
        p = snap.position(i)
        if p is not None and not np.isnan(f).any():
            ref[p], ref_has[p] = float(f @ mean), True
    assert np.array_equal(has, ref_has) and np.allclose(out, ref, atol=1e-5)
    cold, nb, w = cold_neighbors(s, snap, 3)
    warm = np.array([p for p in (snap.position(i) for i in ease.item_ids_[ease.has_cf_].tolist()) if p is not None])
    assert sorted(snap.id_at(int(c)) for c in cold) == ["newjazz", "newpop"]
    S = snap.rows(cold) @ snap.rows(warm).T
    for r in range(len(cold)):
        best = np.sort(S[r])[::-1][:3]
        assert set(nb[r].tolist()) <= set(warm.tolist()) and np.allclose(np.sort(w[r])[::-1], np.maximum(best, 0), atol=1e-6)
    s.close()


def test_fusion_and_ease_train_on_the_free_cores_outside_the_cache_key(tmp_path, tiny_config, tiny_catalog,
                                                                       monkeypatch):
    """Issue 13: fusion trained on one thread (55 s of the Last.fm build; 35 s on two free
    cores). The thread count is the machine's, so it must not change the cached model's key."""
    out = tmp_path / "t"
    cfg = {**tiny_config, "output": str(out), "fusion": {"max_epochs": 3, "hidden_dim": 16, "out_dim": 8}}

    def stages() -> dict:
        return {s["stage"]: s for s in json.loads((out / "build_report.json").read_text())["stages"]}
    monkeypatch.setenv("TALKREC_THREADS", "2")
    build(cfg, show_progress=False, catalog=tiny_catalog)
    first = stages()
    assert first["fusion"]["threads"] == 2 and first["ease"]["threads"] == 2 and not first["fusion"].get("cached")
    monkeypatch.setenv("TALKREC_THREADS", "1")
    build(cfg, show_progress=False, catalog=tiny_catalog)
    assert stages()["fusion"].get("cached") and stages()["ease"]["threads"] == 1
    build({**cfg, "fusion": {**cfg["fusion"], "n_threads": 1}}, show_progress=False, catalog=tiny_catalog)
    assert stages()["fusion"]["threads"] == 1 and not stages()["fusion"].get("cached")   # configured: part of the key


def test_cold_items_borrow_the_lists_of_their_nearest_items_by_content(tiny_space_dir, tmp_path, tiny_config):
    """Issue 12: a cold item's vector is made of its content alone; its neighbours for borrowed
    EASE lists are now found among the other items' content-only vectors (like with like),
    not among their fused vectors, which carry CF (music cold start 0.78x -> 0.81x of warm)."""
    from talkrec.pipeline import serving

    d = tmp_path / "s"
    copy_space(tiny_space_dir, d)
    s = Space.load(d, auto_compact=False)
    s.add_items([{"item_id": "newjazz", "name": "New Jazz Trio", "tags": ["jazz", "band"],
                  "vectors": {"audio": [0.0, 1.0, 0.0, 0.0]}}])
    snap = s.index
    C = content_rows(s, snap)
    p = snap.position("newjazz")
    assert C.shape == (snap.n_rows, snap.dim) and np.allclose(C[p], s.item_vector("newjazz"), atol=1e-5)
    keys = s.config["input_files"]
    want = s.fusion.transform({m: snap.gen.inputs[keys[m]] for m in s.modalities if m != "cf"},
                              s.config.get("modality_weights") or None)
    assert np.allclose(C[:snap.n0], np.nan_to_num(want), atol=1e-6)
    two = Space.load(d, auto_compact=False)                   # a multi-view text input, stored (n, views, d)
    X = two.index.gen.inputs[keys["text"]]
    two.index.gen.inputs[keys["text"]] = np.stack([X, X], axis=1)
    assert np.allclose(content_rows(two, two.index), C, atol=1e-5)   # two equal views: the same vectors
    lists = {}
    for match in ("content", "fused"):
        s.config["similar"] = {**s.config["similar"], "cold_neighbors": 5, "cold_weight": 0.5, "cold_match": match}
        lists[match] = [h.item_id for h in s.similar("newjazz", k=10)]
        assert all(i.startswith("jazz") for i in lists[match][:5])
    with pytest.raises(InputError) as e:
        serving.resolve_profile({**tiny_config, "similar": {"strategy": "rrf", "cold_match": "nearest"}, "recommend": {},
                                 "fusion": {}})
    assert e.value.field == "similar.cold_match"
    with pytest.raises(InputError) as e:
        serving.resolve_profile({**tiny_config, "similar": {}, "recommend": {"cold_match": 1}, "fusion": {}})
    assert e.value.field == "recommend.cold_match"
    # with similar.cold_content_weight, RRF adds the cold item's own list by content; at a weight
    # that dominates the others its top is that list: the items whose content is nearest its own
    s.config["similar"] = {**s.config["similar"], "cold_match": "content", "cold_content_weight": 1000.0}
    by_content = C @ s.item_vector("newjazz")
    by_content[p] = -np.inf
    want = [snap.id_at(int(r)) for r in np.argsort(-by_content, kind="stable")[:3]]
    assert [h.item_id for h in s.similar("newjazz", k=3)] == want
    s.config["similar"]["cold_content_weight"] = 0.0                   # off: as before
    assert [h.item_id for h in s.similar("newjazz", k=10)] == lists["content"]
    for bad in (-1, "high", True):
        with pytest.raises(InputError) as e:
            serving.resolve_profile({**tiny_config, "similar": {"cold_content_weight": bad}, "recommend": {},
                                     "fusion": {}})
        assert e.value.field == "similar.cold_content_weight"
    s.close()


def _bm25_list_by_hand(s, p, max_df, max_terms):
    """The BM25 list of row ``p`` from a BM25 index of the snapshot's texts, made here: its
    text's tokens less its name's, those in at most ``max_df`` of the rows, the ``max_terms`` of
    largest count x idf; each row's score for that query (rows with none left out, ``p`` too)."""
    from collections import Counter

    from talkrec.index.lexical import LexicalIndex
    from talkrec.index.segments import lexical_texts

    snap = s.index
    view = s.lexical_index()
    have = snap.gen.lexical(view.settings)
    texts = lexical_texts(snap.meta_rows(range(snap.n_rows)), have.fields)
    lex = LexicalIndex(texts, **have.settings._asdict())
    c = Counter(lex.tokenize([texts[p]])[0]) - Counter(lex.tokenize([snap.value(p, "name")])[0])
    n_live = snap.n_rows                                          # no deletes here: every row is live
    idf = {t: np.log(1 + (n_live - df + 0.5) / (df + 0.5)) for t, df in zip(c, lex.doc_freq(list(c)))}
    terms = [t for t in c if lex.doc_freq([t])[0] <= max_df * n_live]
    terms = sorted(terms, key=lambda t: -c[t] * idf[t])[:max_terms or None]
    scores = lex.token_scores([t for t in terms for _ in range(c[t])])
    scores[p] = 0.0
    return {r: float(scores[r]) for r in np.flatnonzero(scores > 0)}


def test_similar_fuses_each_items_bm25_list_made_from_its_own_text(tiny_space_dir, tmp_path, tiny_config):
    """``similar.lexical_weight``: RRF adds the item's BM25 list, its own BM25 text the query
    (``lexical_max_df``: without the terms of more than that share of the rows;
    ``lexical_max_terms``: only that many, by count x idf). Built rows read their terms from
    the index, written rows tokenize their text: the same list either way."""
    from talkrec.pipeline import serving
    from talkrec.ranking import rrf_scores
    from talkrec.space import strategies as st
    from talkrec.space.search import lexical_neighbors

    d = tmp_path / "s"
    copy_space(tiny_space_dir, d)
    s = Space.load(d)
    assert s.config["similar"]["lexical_weight"] == 2.0          # on in new builds (pipeline DEFAULTS)
    snap = s.index
    allowed = snap.mask(None)
    p = snap.position("jazz3")
    for max_df, max_terms in ((1.0, 0), (0.2, 0), (1.0, 2), (0.4, 1)):
        got = lexical_neighbors(s, p, 100, allowed, max_df, max_terms)
        want = _bm25_list_by_hand(s, p, max_df, max_terms)
        # best first, ties (rows with the same terms) to the lower row, the whole list or its top 5
        assert got.tolist() == sorted(want, key=lambda r: (-want[r], r)) and p not in got.tolist(), (max_df, max_terms)
        assert lexical_neighbors(s, p, 5, allowed, max_df, max_terms).tolist() == got[:5].tolist()
    # less its name ("Jazz Band 3": "jazz", "band", "jazz band", "band 3"), jazz3's terms are the
    # template's (in all 60 rows), "band" once more and "jazz" from its tags (in 20 rows): max_df 0.4
    # keeps the jazz rows, 0.2 leaves no term at all
    kept = {snap.id_at(int(r)) for r in lexical_neighbors(s, p, 100, allowed, 0.4, 0)}
    assert kept == {f"jazz{j}" for j in range(20)} - {"jazz3"}
    assert lexical_neighbors(s, p, 100, allowed, 0.2, 0).tolist() == []
    # "Jazz Band 13" shares "13" and "band 13" with Metal / Pop Band 13 (3 rows): as the query they
    # alone would make those its nearest items; less the name, they are not in its list
    p13, lex13 = snap.position("jazz13"), s.index.gen.lexical()
    assert "band 13" in lex13.doc_terms(p13)[0] and lex13.doc_freq(["band 13"])[0] == 3
    near13 = {snap.id_at(int(r)) for r in lexical_neighbors(s, p13, 100, allowed, 0.4, 0)}
    assert near13 == {f"jazz{j}" for j in range(20)} - {"jazz13"}
    assert lexical_neighbors(s, p, 3, allowed, 1.0, 0).tolist() == lexical_neighbors(s, p, 100, allowed, 1.0, 0)[:3].tolist()
    # similar is the RRF of the fused list, the EASE list and the BM25 list at their weights
    s.config["similar"] = {**s.config["similar"], "lexical_max_df": 1.0, "lexical_max_terms": 0}
    q = s.item_vector("jazz3")
    fused = snap.search_rows(q, 1000, exclude=["jazz3"])[0]
    ease = st._ease_list(s, snap, "jazz3")
    lex = lexical_neighbors(s, p, 1000, allowed, 1.0, 0)
    rrf = rrf_scores([fused, ease[ease != p], lex], snap.n_rows, c=60.0, weights=[1.0, 0.5, 2.0])
    rrf[p] = -np.inf
    want = [(snap.id_at(int(r)), float(rrf[r])) for r in np.lexsort((np.arange(len(rrf)), -rrf))[:8]]
    assert [(h.item_id, h.score) for h in s.similar("jazz3", k=8)] == want
    s.config["similar"]["lexical_weight"] = 0.0
    assert [(h.item_id, h.score) for h in s.similar("jazz3", k=8)] != want
    # a written row (an update that keeps every field) gets the same list from its text
    before = [snap.id_at(int(r)) for r in lexical_neighbors(s, p, 100, allowed, 1.0, 0)]
    s.add_items([{k: v for k, v in s.item("jazz3").items() if k in ("item_id", "name", "tags", "genre", "year")}])
    snap = s.index
    p2 = snap.position("jazz3")
    assert p2 >= snap.n0
    after = [snap.id_at(int(r)) for r in lexical_neighbors(s, p2, 100, snap.mask(None), 1.0, 0)]
    assert after == before
    for key, bad in (("lexical_weight", -1), ("lexical_weight", "high"), ("lexical_max_df", 0),
                     ("lexical_max_df", 1.5), ("lexical_max_terms", -1), ("lexical_max_terms", 2.5)):
        with pytest.raises(InputError) as e:
            serving.resolve_profile({**tiny_config, "similar": {key: bad}, "recommend": {}, "fusion": {}})
        assert e.value.field == f"similar.{key}"
    s.close()


def test_a_catalog_without_interactions_fuses_the_fused_list_and_the_bm25_list(tmp_path, tiny_config, tiny_catalog):
    """No interactions, no EASE: similar's RRF still has the item's BM25 list (a content-only
    catalog; on Last.fm without plays 0.176 -> 0.327), recommend is the fused space's kNN."""
    import dataclasses

    from talkrec.ranking import rrf_scores
    from talkrec.space.search import lexical_neighbors
    from talkrec.space.strategies import score_kind

    out = tmp_path / "content"
    cat = dataclasses.replace(tiny_catalog, interactions=None)
    build({**tiny_config, "output": str(out), "fusion": {"max_epochs": 5, "batch_size": 32, "hidden_dim": 32,
                                                         "out_dim": 16}}, show_progress=False, catalog=cat)
    s = Space.load(out)
    assert s.config["similar"]["strategy"] == "rrf" and s.config["recommend"]["strategy"] == "knn"
    s.warm_up()                                                     # no popularity to count: no failure
    with pytest.raises(InputError, match="novelty needs a space built with interactions") as e:
        s.recommend(items=["jazz13"], novelty=0.2)                  # nothing says what is popular here
    assert e.value.field == "novelty"
    assert (score_kind(s, "similar"), score_kind(s, "recommend")) == ("rrf", "cosine")
    s.config["similar"] = {**s.config["similar"], "lexical_max_df": 1.0}
    snap, p = s.index, s.index.position("jazz13")
    fused = snap.search_rows(s.item_vector("jazz13"), 1000, exclude=["jazz13"])[0]
    lex = lexical_neighbors(s, p, 1000, snap.mask(None), 1.0, int(s.config["similar"]["lexical_max_terms"]))
    rrf = rrf_scores([fused, lex], snap.n_rows, c=60.0, weights=[1.0, 2.0])
    rrf[p] = -np.inf
    want = [(snap.id_at(int(r)), float(rrf[r])) for r in np.lexsort((np.arange(len(rrf)), -rrf))[:6]]
    assert [(h.item_id, h.score) for h in s.similar("jazz13", k=6)] == want and len(lex)
    s.config["similar"]["lexical_weight"] = 0.0                     # off: the fused space's cosines
    assert score_kind(s, "similar") == "cosine" and s.similar("jazz13", k=1)[0].score > 3.5 / 61
    s.close()


def test_names_list_finds_a_named_item_and_not_a_shared_word(tmp_path, tiny_config, tiny_catalog):
    """``search.hybrid_name_weight``: hybrid search fuses a list of BM25 over the names alone, where
    name and query cover each other (every word of one is in the other). With BM25 over the tags
    only, a query that is a name finds that item first, in rows written since the build and after
    a compaction; a query that shares one word with a longer name does not reach it through the
    list; the explanation names the list; a space without the setting has no such list."""
    from talkrec.space.namelist import name_scores

    out = tmp_path / "names"
    build({**tiny_config, "output": str(out),
           "search": {**tiny_config["search"], "mode": "hybrid", "bm25_fields": ["genre"], "hybrid_name_weight": 4.0}},
          show_progress=False, catalog=tiny_catalog)
    s = Space.load(out)
    rows = [{"item_id": "zq", "name": "Zzq Quartet", "tags": {"genre": ["jazz"]}},
            {"item_id": "zql", "name": "Zzq Quartet Live in Zzparis", "tags": {"genre": ["jazz"]}},
            {"item_id": "zc", "name": "Calm Zzq", "tags": {"genre": ["pop"]}}]
    s.add_items(rows)
    for space in (s, None):
        if space is None:                                         # the same after a compaction (base rows)
            assert s.compact()["compacted"]
            s.close()
            space = Space.load(out)
        snap = space.index
        score = {i: name_scores(space, snap, "zzq quartet")[snap.position(i)] for i in ("zq", "zql", "zc")}
        # Zzq Quartet: the query is its name; Live in Zzparis: the query's words are in it, a longer name
        # scores less (b 0.75); Calm Zzq: shares one word, no cover
        assert score["zq"] > score["zql"] > 0 and score["zc"] == 0
        assert name_scores(space, snap, "zzq quartet tonight")[snap.position("zq")] > 0    # its name is in the query
        assert {h.item_id for h in space.search("zzq quartet", k=2)} == {"zq", "zql"}   # the names list's two
        ex = space.explain_search("zzq quartet", "zq")
        assert [pl["list"] for pl in ex["lists"]][-1] == "name" and ex["lists"][-1]["rank"] == 1
    space.remove(["zq"])
    assert "zq" not in [h.item_id for h in space.search("zzq quartet", k=5)]
    space.config["search"] = {**space.config["search"], "hybrid_name_weight": 0}
    assert "name" not in [pl["list"] for pl in space.explain_search("zzq quartet", "zql")["lists"]]
    with pytest.raises(InputError) as e:
        build({**tiny_config, "output": str(tmp_path / "never"), "search": {"hybrid_name_weight": -1}},
              show_progress=False, catalog=tiny_catalog)
    assert e.value.field == "search.hybrid_name_weight"


def test_bm25_neighbours_keep_a_tag_that_is_also_the_name_when_names_are_not_indexed(tmp_path, tiny_config,
                                                                                      tiny_catalog):
    """An item's BM25 list in ``similar`` drops its name's words from its text (the description
    holds the name). Where BM25 indexes tag fields only, the name is not in the text: an item named
    "Jazz" tagged jazz keeps the tag, and its list holds the other jazz items."""
    from talkrec.space.search import lexical_neighbors

    out = tmp_path / "tagsonly"
    build({**tiny_config, "output": str(out), "search": {**tiny_config["search"], "bm25_fields": ["genre"]}},
          show_progress=False, catalog=tiny_catalog)
    s = Space.load(out)
    s.add_items([{"item_id": "jz", "name": "Jazz", "tags": {"genre": ["jazz"]}}])
    snap = s.index
    got = lexical_neighbors(s, snap.position("jz"), 10, np.ones(snap.n_rows, bool))
    assert len(got) and all(str(snap.ids[p]).startswith("jazz") for p in got)
