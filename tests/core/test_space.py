"""The Python API of a built space, on the tiny three-cluster catalog (known answers)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from talkrec import Space
from talkrec.errors import InputError, NotFoundError
from tiny_data import copy_space


@pytest.fixture()
def space(tiny_space_dir, tmp_path):
    d = tmp_path / "space"
    copy_space(tiny_space_dir, d)
    return Space.load(d)


def _cluster(i: str) -> str:
    return i.rstrip("0123456789")


def test_similar_and_recommend_stay_in_cluster(space):
    hits = space.similar("jazz3", k=5)
    assert len(hits) == 5 and "jazz3" not in [h.item_id for h in hits]
    assert sum(_cluster(h.item_id) == "jazz" for h in hits) >= 4
    rec = space.recommend(items=["metal1", "metal2"], k=5)
    assert {"metal1", "metal2"}.isdisjoint(h.item_id for h in rec)
    assert sum(_cluster(h.item_id) == "metal" for h in rec) >= 4
    user = space.interactions["user_id"].iloc[0]
    seen = set(space.user_history(user))
    assert seen.isdisjoint(h.item_id for h in space.recommend(user=user, k=10))


def test_search_modes_and_filters(space):
    for mode in ("multi", "text", "hybrid", "lexical"):
        hits = space.search("jazz", k=5, mode=mode)
        assert sum(_cluster(h.item_id) == "jazz" for h in hits) >= 4, mode
    hits = space.search("music", k=10, where="year>=2000")
    assert hits and all(h.metadata["year"] >= 2000 for h in hits)
    with pytest.raises(InputError):
        space.search("   ")
    with pytest.raises(InputError):
        space.search("jazz", mode="bogus")
    assert [h.item_id for h in space.search("jazz", k=3, offset=2)] == [h.item_id for h in space.search("jazz", k=5)][2:5]


def test_personalized_search_moves_towards_user(space):
    plain = space.search("band", k=10, mode="multi")
    pers = space.personalized_search("band", items=["pop1", "pop2", "pop3"], alpha=0.8, k=10)
    assert sum(_cluster(h.item_id) == "pop" for h in pers) > sum(_cluster(h.item_id) == "pop" for h in plain)


def test_query_by_vector_and_errors(space):
    hits = space.search_by_vector("audio", np.array([0, 1.0, 0, 0]), k=5)
    assert sum(_cluster(h.item_id) == "jazz" for h in hits) >= 4
    with pytest.raises(InputError, match="dimension 4"):
        space.search_by_vector("audio", np.ones(7))
    with pytest.raises(InputError, match="unknown modality"):
        space.search_by_vector("smell", np.ones(4))
    with pytest.raises(NotFoundError):
        space.similar("nope")
    # an id from a numpy array (space.item_ids) is quoted as the user wrote it
    with pytest.raises(NotFoundError, match=r"^unknown item 'nope'$"):
        space.similar(np.array(["nope"])[0])
    with pytest.raises(NotFoundError, match=r"^unknown item 'nope'$"):
        space.recommend(items=[np.array(["nope"])[0]])


def test_cold_start_items_are_served_and_persist(space):
    out = space.add_items([{"item_id": "new-jazz", "name": "Fresh Trio", "tags": ["jazz"]},
                           {"item_id": "new-audio", "name": "Unknown", "vectors": {"audio": [0, 0, 1.0, 0]}}])
    assert out[0]["modalities"] == ["text"] and out[1]["modalities"] == ["text", "audio"]
    assert "new-jazz" in [h.item_id for h in space.search("jazz", k=25, mode="multi")]
    near = space.similar("new-audio", k=5)
    assert sum(_cluster(h.item_id) == "pop" for h in near) >= 3
    again = Space.load(space.path)
    assert again.item("new-jazz")["name"] == "Fresh Trio"
    with pytest.raises(InputError, match="row 1.*item_id"):
        space.add_items([{"name": "x"}])
    with pytest.raises(InputError, match=r"vectors.audio.*4 finite"):
        space.add_items([{"item_id": "z", "name": "z", "vectors": {"audio": [1, 2]}}])


def test_playlists_and_explain(space):
    pl = space.continue_playlist(["metal1", "metal2", "metal3"], k=5)
    assert len({h.item_id for h in pl}) == 5 and {"metal1", "metal2", "metal3"}.isdisjoint(h.item_id for h in pl)
    hits, stats = space.generate_playlist("jazz", n=8)
    assert len(hits) == 8 and len({h.item_id for h in hits}) == 8
    assert stats["coherence"] >= stats["coherence_plain_topn"] - 1e-6
    ex = space.explain("metal1", "metal2")
    assert "metal" in ex["shared_tags"]
    assert ex["cosine"] == pytest.approx(sum(ex["modality_contributions"].values()), abs=1e-4)


def test_mixed_queries(space):
    q = space.mixed_query_vector(text="band", vectors={"audio": np.array([1.0, 0, 0, 0])}, weights={"text": 0.2})
    hits = space.index.search(q, 5)
    assert sum(_cluster(i) == "metal" for i, _ in hits) >= 4
    user = "ujazz0"
    for src in ("items", "cf"):
        v = space.user_vector(user, source=src)
        near = space.index.search(v, 5)
        assert sum(_cluster(i) == "jazz" for i, _ in near) >= 4, src
    with pytest.raises(InputError, match="weights for parts not given"):
        space.mixed_query_vector(text="x", weights={"user": 1.0})
    with pytest.raises(NotFoundError):
        space.user_vector("nobody")


def test_session_model_backs_continuation(space, tmp_path):
    from talkrec.sessions.models import NextItemSessionModel

    # Sessions that always walk metal0 -> metal1 -> ... -> metal9 (cyclic): a model that
    # learns it continues "metal3, metal4" with metal5; kNN would not know that order.
    items = [f"metal{j}" for j in range(10)] + ["jazz0"]
    rng = np.random.default_rng(0)
    sess = [[f"metal{(a + t) % 10}" for t in range(6)] for a in rng.integers(0, 10, 300)]
    m = NextItemSessionModel(d_model=16, n_layers=1, n_heads=2, max_length=8, max_epochs=20, n_negatives=5,
                             learning_rate=1e-2, device="cpu", random_state=0).fit(sess, item_ids=items)
    m.save(tmp_path / "sess")
    with pytest.raises(InputError, match="no session model"):
        space.continue_playlist(["metal3"], k=3, method="session")
    space.attach_session_model(tmp_path / "sess")
    out = space.continue_playlist(["metal3", "metal4"], k=3, method="session")
    assert out[0].item_id == "metal5"
    assert len({h.item_id for h in out}) == 3 and {"metal3", "metal4"}.isdisjoint(h.item_id for h in out)
    # seeds the model does not know fall back to kNN; filters apply to session results too
    assert len(space.continue_playlist(["pop1"], k=4, method="session")) == 4
    assert all(h.metadata["year"] >= 1985 for h in space.continue_playlist(["metal3", "metal4"], k=3, where="year>=1985"))
    assert Space.load(space.path).session_model() is not None


def test_hybrid_search_fuses_bm25_over_descriptions(space):
    # a made-up word only BM25 can match literally; the new item has no other modality
    space.add_items([{"item_id": "odd", "name": "Qwzzyx Ensemble", "tags": ["jazz"]}])
    assert [h.item_id for h in space.search("qwzzyx", k=1, mode="lexical")] == ["odd"]
    assert space.search("qwzzyx", k=1, mode="lexical")[0].score > 0
    assert "odd" in [h.item_id for h in space.search("qwzzyx", k=3, mode="hybrid")]
    assert space.search("zzzz nothing matches", k=5, mode="lexical") == []
    # filters apply to the lexical list too
    assert all(h.metadata["year"] >= 2000 for h in space.search("jazz band", k=10, mode="lexical", where="year>=2000"))
    space.config["search"]["hybrid_bm25_weight"] = 50.0
    assert [h.item_id for h in space.search("qwzzyx", k=1, mode="hybrid")] == ["odd"]
    # weight 0 leaves the lexical list out of the fusion altogether
    space.config["search"]["hybrid_bm25_weight"] = 0.0

    def no_lexical(*args):
        raise AssertionError("the lexical list was used with weight 0")

    space.lexical_index = no_lexical
    assert len(space.search("jazz band", k=10, mode="hybrid")) == 10


def test_hybrid_search_scores_bm25_beside_the_query_encode(space):
    """Issue 13: BM25 needs no query vector, so a hybrid query starts its lexical list before
    its forward pass ends; text mode does not score BM25; a bad filter fails before encoding."""
    import threading
    import time

    events: list[str] = []
    enc = space.text_encoder()
    encode = enc.encode

    def slow_encode(text, **kw):
        events.append("encode")
        time.sleep(0.2)
        events.append("encoded")
        return encode(text, **kw)

    enc.encode = slow_encode
    lexical, lock = space.lexical_index, threading.Lock()

    class Recorded:
        def scores(self, text):
            with lock:
                events.append("bm25")
            return lexical().scores(text)

    space.lexical_index = Recorded
    before = [h.item_id for h in space.search("jazz band", k=5, mode="hybrid")]
    assert events.index("bm25") < events.index("encoded")
    events.clear()
    assert len(space.search("jazz band", k=5, mode="text")) == 5 and "bm25" not in events
    events.clear()
    with pytest.raises(InputError):
        space.search("jazz band", k=5, mode="hybrid", where="nosuchfield=3")
    assert events == []
    enc.encode, space.lexical_index = encode, lexical
    assert [h.item_id for h in space.search("jazz band", k=5, mode="hybrid")] == before


def test_hybrid_lists_run_on_the_callers_thread_beside_other_searches(space):
    """Issue 13: side threads only for a text search running alone; beside other searches the
    cores are busy and a hand-over only adds CPU, so each query scores its own lists."""
    import threading

    from talkrec.space import search

    threads: list[int] = []
    lexical = space.lexical_index

    class Recorded:
        def scores(self, text):
            threads.append(threading.get_ident())
            return lexical().scores(text)

    space.lexical_index = Recorded
    try:
        alone = space.search("jazz band", k=5, mode="hybrid")
        assert threads[-1] != threading.get_ident()
        with search.counted():                       # another text search is running
            busy = space.search("jazz band", k=5, mode="hybrid")
        assert threads[-1] == threading.get_ident()
        assert busy == alone and search._running == 0
    finally:
        space.lexical_index = lexical


def test_bm25_parameters_come_from_the_space_settings_and_survive_compaction(space):
    from talkrec.index.lexical import LexicalIndex
    from talkrec.index.segments import descriptions

    def expected(k1, b, q):
        return LexicalIndex(descriptions(space.index.meta), k1=k1, b=b, pairs=True).scores(q)

    q = "jazz metal band"
    saved = space.index.gen.lexical()
    assert (saved.k1, saved.b, saved.pairs) == (1.2, 0.1, True)   # the build's defaults, written with the space
    assert np.allclose(space.lexical_index().scores(q), expected(1.2, 0.1, q))
    space.config["search"]["bm25_b"] = 0.75                  # a changed setting applies without a rebuild
    moved = space.lexical_index().scores(q)
    assert np.allclose(moved, expected(1.2, 0.75, q)) and not np.allclose(moved, expected(1.2, 0.1, q))
    # a space saved with other settings compacts into a generation with those settings
    cfg = json.loads((space.path / "space.json").read_text())
    cfg["search"].update(bm25_k1=0.5, bm25_b=0.5)
    (space.path / "space.json").write_text(json.dumps(cfg))
    again = Space.load(space.path)
    again.add_items([{"item_id": "new1", "name": "New Jazz Band", "tags": ["jazz"]}])
    assert again.compact()["compacted"]
    lex = Space.load(space.path).index.gen.lexical()
    assert (lex.k1, lex.b, lex.n) == (0.5, 0.5, len(again.index))
    # a space from before these settings keeps the index it saved
    del cfg["search"]["bm25_k1"], cfg["search"]["bm25_b"]
    (space.path / "space.json").write_text(json.dumps(cfg))
    old = Space.load(space.path)
    assert np.allclose(old.lexical_index().scores(q), old.index.gen.lexical().scores(q))
    for bad in ({"bm25_k1": -1}, {"bm25_b": 1.5}, {"bm25_b": "high"}, {"bm25_k1": True}):
        old.config["search"] = {**cfg["search"], **bad}
        with pytest.raises(InputError, match=r"search\.bm25_(k1|b) must be a number") as e:
            old.search("jazz", mode="lexical")
        assert e.value.field == f"search.{next(iter(bad))}"


def test_a_batch_with_one_item_id_twice_is_refused_and_the_space_stays_loadable(space):
    """Issue 10 finding 1: two records with one item_id used to store two index rows, after
    which every write failed and the space no longer loaded."""
    n = len(space.index)
    dup = [{"item_id": "d", "name": "A", "tags": ["rock"]}, {"item_id": "d", "name": "B", "tags": ["jazz"]}]
    with pytest.raises(InputError, match=r"row 2.*item_id.*'d' already appears in row 1"):
        space.add_items(dup)
    assert len(space.index) == n and space.index.position("d") is None
    again = Space.load(space.path)                  # nothing was written
    assert len(again.index) == n
    assert again.add_items([dup[1]])[0]["item_id"] == "d"   # later writes still work
    assert len(Space.load(space.path).index) == n + 1
    from talkrec.index import VectorIndex

    with pytest.raises(InputError, match="duplicate ids"):
        VectorIndex(space.item_ids, space.embeddings(), space.index.meta).upsert(
            ["x", "x"], np.ones((2, space.index.dim)), space.index.meta.iloc[:2])


def test_cli_add_refuses_a_duplicate_batch_and_info_still_answers(space, tmp_path):
    """The reproduction of issue 10 finding 1, through the CLI."""
    import json

    from typer.testing import CliRunner

    from talkrec.cli import app

    f = tmp_path / "dup.jsonl"
    f.write_text('{"item_id":"d","name":"A","tags":["rock"]}\n{"item_id":"d","name":"B","tags":["jazz"]}\n')
    runner = CliRunner()
    r = runner.invoke(app, ["add", str(f), "--space", str(space.path)])
    assert r.exit_code != 0 and "already appears in row 1" in r.output
    r = runner.invoke(app, ["info", "--space", str(space.path)])
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert info["items"] == len(space.index)
    assert info["serving"] == {part: space.config.get(part, {}) for part in ("search", "similar", "recommend")}


# ----------------------------------------------------------------------------- issue 11: one path for all callers
def test_add_items_checks_metadata_types_against_the_columns(space):
    """The metadata checks the service used to do itself now guard every write; top-level
    fields and the ``metadata`` object are checked alike; nothing is written on a refusal."""
    n = len(space.index)
    bad = [({"year": "recent"}, "year", "year is numeric; got 'recent'"),
           ({"year": True}, "year", "year is numeric"),
           ({"tags_extra": 1, "genre": "jazz"}, "genre", "genre is a list field"),
           ({"year": [1990]}, "year", "year is not a list field"),
           ({"modalities": ["x"]}, "modalities", "metadata key 'modalities' is reserved"),
           ({"my field": 1}, "my field", "metadata key 'my field' is reserved or not an identifier")]
    for fields, field, message in bad:
        with pytest.raises(InputError, match=f"row 1: field '{field}': {message}"):
            space.add_items([{"item_id": "typed", "name": "Typed", **fields}])
        with pytest.raises(InputError, match=f"row 1: field 'metadata.{field}': {message}"):
            space.add_items([{"item_id": "typed", "name": "Typed", "metadata": fields}])
    with pytest.raises(InputError, match="field 'metadata.tags': .*reserved"):
        space.add_items([{"item_id": "typed", "name": "Typed", "metadata": {"tags": ["x"]}}])
    with pytest.raises(InputError, match="given twice"):
        space.add_items([{"item_id": "typed", "name": "Typed", "year": 1990, "metadata": {"year": 1991}}])
    with pytest.raises(InputError, match="metadata must be an object"):
        space.add_items([{"item_id": "typed", "name": "Typed", "metadata": ["year"]}])
    assert len(space.index) == n and len(Space.load(space.path).index) == n
    space.add_items([{"item_id": "typed", "name": "Typed", "metadata": {"year": 1991, "label": "X"}}])
    assert space.item("typed")["year"] == 1991 and space.item("typed")["label"] == "X"


def test_cli_add_refuses_a_string_in_a_numeric_column(space, tmp_path):
    from typer.testing import CliRunner

    from talkrec.cli import app

    f = tmp_path / "typed.json"
    f.write_text('[{"item_id": "typed", "name": "Typed", "year": "recent"}]')
    r = CliRunner().invoke(app, ["add", str(f), "--space", str(space.path)])
    assert r.exit_code == 2 and "row 1: field 'year': year is numeric; got 'recent'" in r.output
    assert Space.load(space.path).index.position("typed") is None


def test_a_failed_persist_leaves_the_served_state_and_the_disk_unchanged(space, monkeypatch):
    import os

    from talkrec.space import WriteError

    n = len(space.index)
    before = [h.item_id for h in space.search("jazz", k=5)]

    def boom(fd, data):
        raise OSError("disk full (simulated)")
    monkeypatch.setattr(os, "write", boom)          # the log append fails
    with pytest.raises(WriteError, match="disk full.*nothing was changed"):
        space.add_items([{"item_id": "crash1", "name": "Crash", "tags": ["jazz"]}])
    monkeypatch.undo()
    assert len(space.index) == n and space.index.position("crash1") is None
    assert [h.item_id for h in space.search("jazz", k=5)] == before
    again = Space.load(space.path)
    assert len(again.index) == n and again.index.position("crash1") is None


def test_resolve_names_and_find(space):
    from talkrec.space.browse import name_index

    assert space.resolve("jazz3") == "jazz3" and space.resolve("jAZZ bAND 3") == "jazz3"
    with pytest.raises(NotFoundError, match="neither an id nor an exact name"):
        space.resolve("Nobody")
    assert space.find("metal band 1", 3)[0] == ("metal1", "Metal Band 1")
    with pytest.raises(InputError, match="name is empty"):
        space.find("  ")
    import pandas as pd
    meta = pd.DataFrame({"item_id": ["a", "b", "c"], "name": ["Twin", "twin", "Other"], "listeners": [5, 50, 1]})
    assert name_index(meta) == {"twin": "b", "other": "c"}                 # the most listened
    assert name_index(meta.drop(columns="listeners"))["twin"] == "a"      # else the first
    # the name map follows writes
    space.add_items([{"item_id": "fresh", "name": "Brand New Name"}])
    assert space.resolve("brand new name") == "fresh"


def test_facets_and_users(space):
    f = space.facets()
    assert {"name": "year", "type": "numeric", "min": 1980.0, "max": 2009.0} in [vars(x) for x in f.fields]
    assert f.numeric_fields == ["year"] and {t for t, _ in f.top_tags} >= {"metal", "jazz", "pop"}
    users = space.users(5)
    assert len(users) == 5 and users[0][1] >= users[-1][1]
    space.add_items([{"item_id": "fresh", "name": "Fresh", "tags": ["zydeco"]}])
    assert "zydeco" in {t for t, _ in space.facets().top_tags}     # facets follow writes


def test_filter_translation_is_shared_by_service_and_cli(space):
    from talkrec.index.filters import FilterSpec, parse_range

    w = space.filter_where(FilterSpec(tags=["jazz"], decade="90s", ranges={"listeners": (None, None)}, where="name~band"))
    assert w == {"tags": ["jazz"], "year": {">=": 1990, "<=": 1999}, "name": {"~": "band"}}
    assert space.filter_where(FilterSpec(ranges={"year": (None, 2001)}, where="year>=1995,tag=pop,tag=band")) == \
        {"year": {"<=": 2001, ">=": "1995"}, "tag": ["pop", "band"]}
    hits = space.search("music", k=10, where=space.filter_where(FilterSpec(decade="1990s")))
    assert hits and all(1990 <= h.metadata["year"] <= 1999 for h in hits)
    assert space.filter_where(FilterSpec()) is None and space.filter_where(None) is None
    assert parse_range("year:1990:") == ("year", 1990.0, None)
    for bad, needle in [(FilterSpec(ranges={"nosuch": (1, 2)}), r"unknown range field 'nosuch'; numeric fields: \['year'\]"),
                        (FilterSpec(ranges={"year": (2, 1)}), "min 2 > max 1"),
                        (FilterSpec(tags=[" "]), "empty tag"),
                        (FilterSpec(decade="nineties"), "decade must look like"),
                        (FilterSpec(ranges={"year": (1990, None)}, where="year>=1995"), "two '>=' filters"),
                        (FilterSpec(decade="90s", ranges={"year": (1991, None)}), "two '>=' filters")]:
        with pytest.raises(InputError, match=needle):
            space.filter_where(bad)
    for bad in ("year:abc:", "year:1", ":1:2", "year:inf:"):
        with pytest.raises(InputError, match="range"):
            parse_range(bad)
    import pandas as pd
    dec = pd.DataFrame({"item_id": ["a"], "decade": [["80s"]], "year": [1985]})
    assert FilterSpec(decade="1980s").to_where(dec) == {"decade": ["1980s"]}   # a decade field wins over year


def test_cli_filters_go_through_the_same_translation(space):
    import json

    from typer.testing import CliRunner

    from talkrec.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["search", "music", "--space", str(space.path), "--tag", "jazz", "--range", "year:1993:1995",
                            "-k", "5", "--json"])
    assert r.exit_code == 0, r.output
    hits = json.loads(r.output)
    assert hits and all(1993 <= h["metadata"]["year"] <= 1995 and "jazz" in h["metadata"]["tags"] for h in hits)
    r = runner.invoke(app, ["recommend", "--items", "Pop Band 1", "--space", str(space.path), "--decade", "80s",
                            "--json"])
    assert r.exit_code == 0, r.output
    assert all(1980 <= h["metadata"]["year"] <= 1989 for h in json.loads(r.output))
    r = runner.invoke(app, ["similar", "Jazz Band 3", "--space", str(space.path), "--range", "nosuch:1:2"])
    assert r.exit_code == 2 and "unknown range field" in r.output


def test_continuation_reports_seeds_coherence_and_notes(space):
    c = space.continuation(["pop1", "pop2", "pop1"], 8)
    ids = [h.item_id for h in c.items]
    assert c.seeds == ["pop1", "pop2"] and len(set(ids)) == 8 and {"pop1", "pop2"}.isdisjoint(ids)
    assert c.coherence > 0.5 and c.coherence_seeds > 0.5 and not c.notes
    one = space.continuation(["pop1"], 5, max_per_artist=1)       # no artist field: each item is its own
    assert len({h.item_id for h in one.items}) == 5 and "each item is its own artist" in one.notes[0]
    by_genre = space.continuation(["pop1"], 5, max_per_artist=1, artist_field="genre")
    assert len({tuple(h.metadata["genre"]) for h in by_genre.items}) == len(by_genre.items) <= 3
    assert space.continuation(["pop1"], 1).coherence_seeds is None
    with pytest.raises(InputError, match="unknown field 'nosuch' for max_per"):
        space.continue_playlist(["pop1"], 3, max_per=("nosuch", 1))


def test_media_files_take_one_path_for_queries_and_items(space, tmp_path, monkeypatch):
    """Queries by file and ``media`` records encode through talkrec.encoders.media with the
    build's settings; the same refusals everywhere (encoder faked: MusiCNN is an extra)."""
    import talkrec.encoders.audio as audio_mod
    from talkrec.encoders.media import NotMediaModality

    clip = tmp_path / "clip.wav"
    clip.write_bytes(b"fake-wav")
    with pytest.raises(NotMediaModality, match="precomputed vectors"):   # the tiny space's audio is vectors
        space.search_by_media("audio", clip)
    with pytest.raises(InputError, match="unknown modality 'smell'"):
        space.encode_media("smell", clip)
    calls = []

    class FakeEncoder:
        dim = 4

        def __init__(self, **kw):
            self.kw, self.last_failures = kw, []

        def encode(self, paths, **kw):
            calls.append((self.kw, list(paths), kw))
            return np.array([[0, 0, 1.0, 0]] * len(paths), dtype=np.float32)

    monkeypatch.setattr(audio_mod, "AudioEncoder", FakeEncoder)
    monkeypatch.setitem(space.config, "build_config", {"content": {"audio": {"source": "audio_files",
                                                                             "params": {"max_seconds": 30}}}})
    hits = space.search_by_media("audio", clip, k=5)
    assert sum(_cluster(h.item_id) == "pop" for h in hits) >= 4
    assert calls[-1][0] == {"max_seconds": 30} and calls[-1][2]["on_error"] == "nan"
    space.encode_media("audio", clip, cache=False)
    assert calls[-1][0] == {"max_seconds": 30, "cache": False}
    out = space.add_items([{"item_id": "by-file", "name": "By File", "media": {"audio": str(clip)}}])
    assert out[0]["modalities"] == ["text", "audio"]
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    for path, name, needle in [(tmp_path / "clip.exe", None, "must end in one of .wav"), (empty, None, "empty"),
                               (tmp_path / "missing.wav", None, "file not found"),
                               (empty, "my upload.wav", "my upload.wav: cannot encode audio file")]:
        with pytest.raises(InputError, match=needle):
            space.encode_media("audio", path, name=name)
    with pytest.raises(InputError, match="row 1: field 'media.audio'.*empty"):
        space.add_items([{"item_id": "x", "name": "X", "media": {"audio": str(empty)}}])


def test_query_encoder_caches_passes_through_and_reports_errors():
    from talkrec.encoders.query import QueryEncoder

    calls = []

    class Fake:
        modality, dim = "text", 2

        def config(self):
            return {"model": "fake"}

        def encode(self, inputs, **kw):
            calls.append((inputs, kw))
            if "boom" in inputs:
                raise RuntimeError("model failed")
            return np.array([[len(t), 1.0] for t in inputs] if isinstance(inputs, list) else [len(inputs), 1.0])

    q = QueryEncoder(Fake(), cache_size=2)
    assert q.dim == 2 and q.config() == {"model": "fake"} and q.modality == "text"
    assert q.encode("ab", kind="query").tolist() == [2.0, 1.0] and calls[-1] == (["ab"], {"kind": "query"})
    q.encode("ab", kind="query")                                   # cached: no new call
    assert len(calls) == 1
    q.encode("abc", kind="query"), q.encode("abcd", kind="query")  # "ab" falls out of the LRU
    q.encode("ab", kind="query")
    assert len(calls) == 4
    assert q.encode(["x", "yy"], kind="passage").shape == (2, 2) and calls[-1][1] == {"kind": "passage"}
    with pytest.raises(RuntimeError, match="model failed"):
        q.encode("boom", kind="query")
    with pytest.raises(ValueError):
        QueryEncoder(Fake(), max_batch=0)


def test_query_encoder_batches_the_passages_of_concurrent_writes():
    """Issue 10: concurrent writers overlap their text encoding (one forward pass for the
    descriptions that queued up while another ran)."""
    import threading
    import time

    from talkrec.encoders.query import QueryEncoder

    calls = []

    class Slow:
        modality, dim = "text", 2

        def encode(self, inputs, **kw):
            calls.append(list(inputs))
            time.sleep(0.05)
            return np.array([[len(t), 2.0] for t in inputs])

    q = QueryEncoder(Slow(), max_batch=16)
    out: dict[int, np.ndarray] = {}

    def write(i: int) -> None:
        out[i] = q.encode(["x" * i, "y"] if i % 2 else "x" * i, kind="passage")
    threads = [threading.Thread(target=write, args=(i,)) for i in range(1, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) < 8 and sum(len(c) for c in calls) == 12
    for i, v in out.items():
        assert v.tolist() == ([[i, 2.0], [1, 2.0]] if i % 2 else [i, 2.0])
    assert q.encode(["z"] * 17, kind="passage").shape == (17, 2) and calls[-1] == ["z"] * 17   # over max_batch: alone


def test_query_encoder_lanes_run_batches_side_by_side_and_encode_each_query_once():
    """Issue 13: with one pass at a time, queries that arrived during a pass waited for it to
    end; two lanes encode the next batch while one runs, never a query twice, never more than
    two passes at once, and an encoder that cannot run calls in parallel refuses lanes."""
    import threading
    import time

    from talkrec.encoders.query import QueryEncoder

    calls, running, peak, lock = [], [0], [0], threading.Lock()

    class Parallel:
        modality, dim, parallel_safe = "text", 2, True

        def encode(self, inputs, **kw):
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
                calls.append(list(inputs))
            time.sleep(0.05)
            with lock:
                running[0] -= 1
            return np.array([[len(t), 3.0] for t in inputs])

    q = QueryEncoder(Parallel(), lanes=2, cache_size=0)
    out: dict[int, list[float]] = {}
    start = threading.Barrier(12)

    def search(i: int) -> None:
        start.wait()
        time.sleep(0.01 * (i % 4))
        out[i] = q.encode("q" * i, kind="query").tolist()
    threads = [threading.Thread(target=search, args=(i,)) for i in range(1, 13)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 2 and len(calls) < 12
    assert sorted(len(t) for c in calls for t in c) == list(range(1, 13))     # every query once
    assert out == {i: [float(i), 3.0] for i in range(1, 13)}
    assert QueryEncoder(Parallel()).lanes == 1
    for bad, enc in ((0, Parallel()), (2, type("Serial", (), {"modality": "text", "dim": 2})())):
        with pytest.raises(InputError) as e:
            QueryEncoder(enc, lanes=bad)
        assert e.value.field == "lanes"


def test_query_encoder_serves_every_thread_not_the_two_that_free_the_lanes():
    """Issue 13: a thread whose query another pass had encoded still waited for a lane of
    its own (a semaphore), and the two threads that freed the lanes took them again at once:
    of 8 threads searching in a loop, 6 finished one query in seconds while 2 ran passes of
    one. A text encoded by any pass is returned at once, and waiting texts join the next pass."""
    import threading
    import time

    from talkrec.encoders.query import QueryEncoder

    sizes = []

    class Parallel:
        modality, dim, parallel_safe = "text", 2, True

        def encode(self, inputs, **kw):
            sizes.append(len(inputs))
            time.sleep(0.004)
            return np.array([[len(t), 1.0] for t in inputs])

    q = QueryEncoder(Parallel(), lanes=2, cache_size=0)
    done = [0] * 8
    stop = time.perf_counter() + 1.5

    def search(j: int) -> None:
        i = 0
        while time.perf_counter() < stop:
            assert q.encode("q" * (j + 1) + " " * i, kind="query").tolist() == [float(j + 1 + i), 1.0]
            done[j], i = done[j] + 1, i + 1
    threads = [threading.Thread(target=search, args=(j,)) for j in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert min(done) >= 10, done                      # before: [~190, ~190, 1, 1, 1, 1, 1, 1]
    assert max(done) <= 4 * min(done), done
    assert max(sizes) > 2 and sum(sizes) == sum(done)   # queries share passes, each encoded once


def test_a_low_priority_query_encoder_runs_the_model_on_its_own_niced_thread():
    """Issue 10: two writers on two cores queued every read behind their forward passes; the
    write path's encoder runs on one thread of its own with a lowered priority."""
    import os
    import threading

    from talkrec.encoders.query import QueryEncoder

    seen = []

    class Probe:
        modality, dim = "text", 1

        def encode(self, inputs, **kw):
            tid = threading.get_native_id()
            seen.append((tid, os.getpriority(os.PRIO_PROCESS, tid)))
            return np.ones((len(inputs), 1)) if isinstance(inputs, list) else np.ones(1)

    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    q = QueryEncoder(Probe(), cache_size=0, nice=7)
    assert q.encode("a", kind="passage").tolist() == [1.0]
    assert q.encode(["b"] * 40, kind="passage").shape == (40, 1)              # the pass-through path too
    (tid, prio), (tid2, _) = seen
    assert tid != threading.get_native_id() and tid2 == tid and prio == min(19, base + 7)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base  # the caller is untouched
    QueryEncoder(Probe(), nice=0).encode("c", kind="passage")
    assert seen[-1][0] == threading.get_native_id()
    for bad in (-1, 20):
        with pytest.raises(InputError) as e:
            QueryEncoder(Probe(), nice=bad)
        assert e.value.field == "nice"


def test_passages_run_side_by_side_with_workers():
    """Issue 10: concurrent single-item writes were encoded one padded batch at a time on one
    thread (~75 writes/s); with ``workers`` their passes overlap, each a call of its own."""
    import threading

    from talkrec.encoders.query import QueryEncoder

    inside, most, calls = [0], [0], []
    both = threading.Barrier(2, timeout=10)
    guard = threading.Lock()

    class Probe:
        modality, dim = "text", 1

        def encode(self, inputs, **kw):
            with guard:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
                calls.append(list(inputs) if isinstance(inputs, list) else [inputs])
            both.wait()                   # returns only once two passes are in flight at once
            with guard:
                inside[0] -= 1
            return np.full((len(inputs), 1), float(len(inputs[0]))) if isinstance(inputs, list) else np.ones(1)

    for nice in (0, 5):
        q = QueryEncoder(Probe(), cache_size=0, nice=nice, workers=2)
        out = [None, None]
        ts = [threading.Thread(target=lambda i=i: out.__setitem__(i, q.encode(["x" * (i + 1)], kind="passage")))
              for i in range(2)]
        [t.start() for t in ts]
        [t.join() for t in ts]
        assert most[0] == 2 and [o.tolist() for o in out] == [[[1.0]], [[2.0]]]    # each its own pass, in order
    assert sorted(map(tuple, calls)) == [("x",), ("x",), ("xx",), ("xx",)]
    with pytest.raises(InputError):
        QueryEncoder(Probe(), workers=0)


def test_onnx_passes_from_several_threads_give_the_vectors_of_one(tiny_space_dir):
    from concurrent.futures import ThreadPoolExecutor

    from talkrec.encoders.text import TextEncoder

    enc = TextEncoder.for_space({**Space.load(tiny_space_dir).config["text"], "n_threads": 1}, tiny_space_dir)
    assert enc.parallel_safe
    texts = [f"an artist described by the tags rock, {w} and {w}s" for w in ("jazz", "metal", "folk", "drone") * 4]
    alone = enc.encode(texts, kind="passage", batch_size=1)
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda t: enc.encode([t], kind="passage")[0], texts))
    assert np.allclose(np.stack(got), alone, atol=1e-5)


def test_written_descriptions_have_their_own_encoder_and_settings(tiny_space_dir, tmp_path):
    d = tmp_path / "s"
    copy_space(tiny_space_dir, d)
    s = Space.load(d)
    w = s.text_encoder(for_writes=True)
    assert w is s.text_encoder(for_writes=True) and w is not s.text_encoder()
    assert (w.nice, w.encoder.n_threads, w.cache_size) == (10, 1, 0)
    s.add_items([{"item_id": "w1", "name": "Written", "tags": ["jazz"]}])
    assert np.allclose(s.item_vector("w1"), Space.load(d).item_vector("w1"))
    two = Space.load(d, write_threads=2, write_nice=0).text_encoder(for_writes=True)
    assert two.encoder.parallel_safe      # ONNX Runtime: two one-thread passes side by side
    assert (two.nice, two.encoder.n_threads, two.workers) == (0, 1, 2)
    for bad in ({"write_threads": 0}, {"write_nice": 20}, {"write_threads": "2"}):
        with pytest.raises(InputError) as e:
            Space.load(d, **bad)
        assert e.value.field == f"storage.{next(iter(bad))}"


def test_hit_fields_are_kept_for_a_bounded_number_of_rows(monkeypatch):
    import pandas as pd

    from talkrec.space.hits import _BaseRows

    meta = pd.DataFrame({"name": [f"n{i}" for i in range(10)], "tags": [["a", "b"]] * 10, "year": list(range(10))})
    rows = _BaseRows(meta, ("tags", "year"))
    monkeypatch.setattr(_BaseRows, "KEPT", 4)
    for p in range(10):
        name, md, lists = rows.made(p)
        assert name == f"n{p}" and md == {"tags": ["a", "b"], "year": p} and lists == ("tags",)
        assert len(rows.done) <= 4
    assert rows.made(9)[1] is rows.made(9)[1]               # kept: made once


def test_a_hit_shares_its_rows_fields_until_read_and_owns_them_after(tiny_space_dir):
    """Hits over base rows share the generation's kept fields (no copy per hit); reading
    ``metadata`` gives the hit its own dict and lists, so changing one hit's metadata changes
    no other hit, no later answer, and not what the service encodes."""
    from talkrec.space.hits import Hit

    s = Space.load(tiny_space_dir)
    a, b = s.similar("jazz1", k=5), s.similar("jazz1", k=5)
    assert a == b and a[0] is not b[0]
    view = b[0].fields_view()
    assert view == a[0].metadata and a[0].metadata is not view            # a copy on first read
    a[0].metadata["tags"].append("changed")
    a[0].metadata["new"] = 1
    assert "changed" not in b[0].metadata["tags"] and "new" not in b[0].metadata
    assert "changed" not in s.similar("jazz1", k=5)[0].metadata["tags"] and a != b
    a[0].metadata = {"x": 1}
    assert a[0].metadata == {"x": 1} and a[0].fields_view() == {"x": 1}
    h = Hit("i", "I", 0.5, {"tags": ["t"]})
    assert h.to_dict() == {"item_id": "i", "name": "I", "score": 0.5, "metadata": {"tags": ["t"]}}
    assert h.to_dict()["metadata"]["tags"] is not h.metadata["tags"]
    assert repr(h) == "Hit(item_id='i', name='I', score=0.5, metadata={'tags': ['t']})"
    assert h == Hit("i", "I", 0.5, {"tags": ["t"]}) and h != Hit("i", "I", 0.5) and Hit("i", "I", 0.5).metadata == {}
    with pytest.raises(TypeError):
        hash(h)


def test_a_warmed_space_warms_each_new_generation_before_serving_it(tiny_space_dir, tmp_path, monkeypatch, caplog):
    """After a compaction the first reads paid for the new generation's hit fields and the
    models' row alignment (8-12 ms for Last.fm); a warmed space makes them before the swap."""
    from talkrec.space import warming
    from talkrec.space.hits import _base_rows

    def memo_kinds(sp):
        return {k[0] for k in sp.index.gen._memo if isinstance(k, tuple)}

    s = Space.load(copy_space(tiny_space_dir, tmp_path / "s"), auto_compact=False)
    s.warm_up()
    s.warm_up()                                               # registered once, not twice
    assert len(s.store.warmers) == 1
    seen = []
    s.store.warmers.append(lambda snap, old: seen.append((snap.gen.name, old.gen.name, s.index.gen.name)))
    s.warm_up()                                               # another warm-up keeps a warmer someone added
    assert len(s.store.warmers) == 2
    s.remove(["jazz0"])
    s.add_items([{"item_id": "new1", "name": "New Jazz", "tags": ["jazz"]}])
    old_rows, before = _base_rows(s.index), s.index.gen.name
    s.compact()
    assert seen == [(s.index.gen.name, before, before)]       # given the new generation while the old is served
    assert {"hit_rows", "model_rows", "als_aligned"} <= memo_kinds(s)
    new_rows, snap = _base_rows(s.index), s.index
    assert len(new_rows.done) == snap.n0                     # every row made, the unchanged ones carried over
    for iid in ("jazz1", "pop5", "metal19"):
        assert new_rows.done[snap.position(iid)] is old_rows.done[Space.load(tiny_space_dir).index.position(iid)]
    assert new_rows.done[snap.position("new1")][0] == "New Jazz"
    assert [h.item_id for h in s.similar("new1", k=3)] == [h.item_id for h in Space.load(s.path).similar("new1", k=3)]

    lazy = Space.load(copy_space(tiny_space_dir, tmp_path / "lazy"), auto_compact=False)
    lazy.add_items([{"item_id": "new1", "name": "New Jazz", "tags": ["jazz"]}])
    lazy.compact()
    assert not lazy.store.warmers and not {"hit_rows", "model_rows"} & memo_kinds(lazy)

    def broken(snap):
        raise RuntimeError("boom")
    monkeypatch.setattr(warming, "warm_hit_rows", broken)  # a failed warm-up: logged, the compaction lands
    s.add_items([{"item_id": "new2", "name": "Newer Jazz", "tags": ["jazz"]}])
    assert s.compact()["compacted"] and "new2" in set(s.item_ids)
    assert "warming" in caplog.text and "boom" in caplog.text


def test_warm_up_makes_every_hit_row_and_the_server_freezes_what_it_loaded(tiny_space_dir, monkeypatch):
    """Issue 13: hit fields made on first use, and full collections walking every loaded
    object, put 80-120 ms into the p99 of similar / recommend at k=200 over HTTP."""
    import gc

    from talkrec.service.app import create_app
    from talkrec.space.hits import _base_rows, _BaseRows, warm_hit_rows

    fresh = Space.load(tiny_space_dir)
    assert fresh._shared.ease is None and fresh._shared.als_items is None
    fresh.warm_up()                                          # what similar / recommend read: loaded
    assert fresh._shared.ease is not None and fresh._shared.als_items is not None
    assert {"model_rows", "als_aligned"} <= {k[0] for k in fresh.index.gen._memo if isinstance(k, tuple)}
    s = Space.load(tiny_space_dir)
    before = [h.to_dict() for h in s.similar("jazz1", k=20)]
    s.warm_up()
    assert len(_base_rows(s.index).done) == s.index.n0
    assert [h.to_dict() for h in s.similar("jazz1", k=20)] == before
    monkeypatch.setattr(_BaseRows, "KEPT", 3)                # a catalog over the cap is left lazy
    assert warm_hit_rows(Space.load(tiny_space_dir).index) == 0
    monkeypatch.undo()
    gc.unfreeze()
    create_app(tiny_space_dir)
    assert gc.get_freeze_count() > 0
    gc.unfreeze()
