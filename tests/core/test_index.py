"""Vector index: exact kNN, filters, upserts, persistence."""
from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from talkrec.errors import InputError
from talkrec.index import VectorIndex, parse_where


@pytest.fixture()
def index():
    V = np.array([[1, 0], [0.9, 0.1], [0, 1], [-1, 0], [0.7, 0.7]], dtype=np.float32)
    meta = pd.DataFrame({"item_id": list("abcde"), "name": list("ABCDE"), "year": [1990, 2001, 1985, 2010, None],
                         "tags": [["metal", "rock"], ["rock"], ["jazz"], [], ["metal"]], "decade": ["90s", "00s", "80s", "10s", None]})
    return VectorIndex(meta["item_id"], V, meta)


def test_exact_order_and_exclude(index):
    res = index.search(np.array([1.0, 0.0]), k=3)
    assert [r[0] for r in res] == ["a", "b", "e"]
    assert res[0][1] == pytest.approx(1.0)
    assert [r[0] for r in index.search(np.array([1.0, 0.0]), k=2, exclude=["a"])] == ["b", "e"]
    assert [r[0] for r in index.search(np.array([1.0, 0.0]), k=2, offset=1)] == ["b", "e"]


def test_ties_offset_and_search_many(index):
    # cosines to (0, 1): c 1, e .707, b .11, a 0, d 0 -> the a/d tie goes to the lower position
    q = np.array([0.0, 1.0])
    assert [r[0] for r in index.search(q, k=4)] == ["c", "e", "b", "a"]
    assert [r[0] for r in index.search(q, k=2, offset=3)] == ["a", "d"]
    assert index.search(q, k=3, offset=4) == [index.search(q, k=5)[4]]
    assert index.search(q, k=2, exclude=["c", "e", "b", "a", "d"]) == []
    P, S = index.search_many(np.array([[0.0, 1.0], [1.0, 0.0]]), 3)
    assert [[index.ids[i] for i in row] for row in P] == [["c", "e", "b"], ["a", "b", "e"]]
    assert S[0].tolist() == pytest.approx([r[1] for r in index.search(q, k=3)])
    P, S = index.search_many(np.array([[1.0, 0.0]]), 9)                # k above the catalog size
    assert P.shape == (1, 5) and P[0].tolist() == [0, 1, 4, 2, 3]


def test_filters(index):
    q = np.array([1.0, 0.0])
    assert [r[0] for r in index.search(q, 5, where="tag=metal")] == ["a", "e"]
    assert [r[0] for r in index.search(q, 5, where="tag=metal,tag=rock")] == ["a"]
    assert [r[0] for r in index.search(q, 5, where="year>=2000")] == ["b", "d"]
    assert [r[0] for r in index.search(q, 5, where={"year": {"<": 1995}, "decade": "80s"})] == ["c"]
    assert index.search(q, 5, where="tag=polka") == []
    with pytest.raises(InputError, match=r"unknown filter field 'colour'; filterable fields: \["):
        index.search(q, 5, where="colour=red")
    with pytest.raises(InputError, match=r"unknown filter field 'yaer'; did you mean 'year'\? filterable fields"):
        index.search(q, 5, where="yaer>=2000")
    with pytest.raises(InputError, match="cannot parse"):
        parse_where("year >>= 3")
    with pytest.raises(InputError, match="needs a number"):
        index.search(q, 5, where="year>=new")


def test_bad_queries(index):
    with pytest.raises(InputError, match="dimension"):
        index.search(np.ones(3), 2)
    with pytest.raises(InputError):
        index.search(np.zeros(2), 2)
    with pytest.raises(InputError):
        index.search(np.ones(2), 0)


def test_upsert_and_persist(index, tmp_path):
    index.upsert(["f", "a"], np.array([[0, -1], [0, 1]], dtype=np.float32),
                 pd.DataFrame({"name": ["F", "A2"], "tags": [["new"], ["jazz"]]}))
    assert len(index) == 6
    assert index.search(np.array([0.0, -1.0]), 1)[0][0] == "f"
    assert [r[0] for r in index.search(np.array([0.0, 1.0]), 2)] == ["a", "c"]
    index.save(tmp_path / "ix")
    again = VectorIndex.load(tmp_path / "ix")
    assert again.ids.tolist() == index.ids.tolist()
    assert np.allclose(again.vectors, index.vectors)
    assert [r[0] for r in again.search(np.array([0.0, 1.0]), 5, where="tag=jazz")] == ["a", "c"]


def test_ann_matches_exact():
    rng = np.random.default_rng(0)
    V = rng.normal(size=(3000, 16)).astype(np.float32)
    ix = VectorIndex([str(i) for i in range(3000)], V, ann=True)
    Q = rng.normal(size=(20, 16))
    rec = np.mean([len({a for a, _ in ix.search(q, 10)} & {a for a, _ in ix.search(q, 10, exact=True)}) / 10 for q in Q])
    assert rec >= 0.9


def test_bm25_by_hand():
    from talkrec.index.lexical import LexicalIndex

    lex = LexicalIndex(["heavy metal band", "soft jazz trio", "jazz metal fusion", ""])
    # Lucene BM25, k1 = 1.5, b = 0.75; every non-empty text has 3 terms and avgdl = 9/4, so
    # the length norm of a 3-term text is 1 - b + b * 3 / 2.25 = 1.25.
    # "jazz": df = 2 of N = 4 -> idf = ln(1 + (4 - 2 + .5) / (2 + .5)) = ln 2;
    # tf part = 1 / (1 + 1.5 * 1.25) = 0.347826
    jazz = np.log(2.0) / (1 + 1.5 * 1.25)
    assert np.allclose(lex.scores("jazz"), [0.0, jazz, jazz, 0.0])
    # "trio": df = 1 -> idf = ln(1 + 3.5 / 1.5)
    trio = np.log(1 + 3.5 / 1.5) / (1 + 1.5 * 1.25)
    assert np.allclose(lex.scores("Jazz TRIO"), [0.0, jazz + trio, jazz, 0.0])
    assert np.allclose(lex.scores("the and of"), 0.0)        # stopwords only: nothing matches
    assert lex.search(["metal", "jazz trio", "xyz"], 3).tolist() == [[0, 2, -1], [1, 2, -1], [-1, -1, -1]]
    assert lex.search(["jazz"], 3, exclude=[[1]]).tolist() == [[2, -1, -1]]


def test_bm25_scoring_without_bm25s_is_bm25s_to_the_bit(tmp_path):
    """Serving scores a saved index with numpy only; the scores and tokens are bm25s' own."""
    import bm25s
    from bm25s.stopwords import STOPWORDS_EN

    from talkrec.index.analysis import STOPWORDS_EN as OURS
    from talkrec.index.lexical import LexicalIndex

    assert OURS == frozenset(STOPWORDS_EN)
    rng = np.random.default_rng(0)
    words = ["metal", "jazz", "Rock", "the", "80s", "hip-hop", "café", "r&b", "a", "x", "trip_hop", "électro"]
    docs = [" ".join(rng.choice(words, size=rng.integers(0, 12))) for _ in range(300)]
    LexicalIndex(docs).save(tmp_path / "bm25")
    ours = LexicalIndex.load(tmp_path / "bm25")
    ref = bm25s.BM25.load(str(tmp_path / "bm25"), show_progress=False, verbosity=0)
    for q in ["metal jazz", "jazz jazz the", "Ünïcode 80s", "the a", "", "R&B hip-hop café électro", "x"]:
        toks = bm25s.tokenize([q], stopwords="en", return_ids=False, show_progress=False)[0]
        assert ours.tokenize([q]) == [list(toks)]
        want = np.asarray(ref.get_scores(toks), dtype=np.float64) if toks else np.zeros(len(docs))
        assert np.array_equal(ours.scores(q), want), q


def test_bm25_word_pairs_by_hand():
    """``search.bm25_pairs``: two words joined only by spaces or hyphens are also one term, so
    that a query for a two-word tag prefers the items tagged with it."""
    from talkrec.index.analysis import tokenize_text
    from talkrec.index.lexical import LexicalIndex

    assert tokenize_text("Post-Rock, indie  rock. The hip hop-a-b x y-z r&b", pairs=True) == [
        "post", "post rock", "rock", "indie", "indie rock", "rock", "hip", "hip hop", "hop"]
    assert tokenize_text("Post-Rock, indie rock") == ["post", "rock", "indie", "rock"]      # off: words only
    assert tokenize_text("rock and roll, drum n bass", pairs=True) == ["rock", "roll", "drum", "bass"]
    docs = ["post-rock", "post-punk, rock"]
    lex = LexicalIndex(docs, k1=1.5, b=0.0, pairs=True)
    # b = 0: a term with tf 1 weighs 1 / (1 + 1.5) = 0.4; N = 2, idf = ln(1 + (N - df + 0.5) / (df + 0.5)):
    # post and rock (df 2) ln(1.2), "post rock" (df 1) ln(2)
    assert np.allclose(lex.scores("post-rock"), [0.4 * (2 * np.log(1.2) + np.log(2)), 0.4 * 2 * np.log(1.2)])
    words_only = LexicalIndex(docs, k1=1.5, b=0.0)
    assert np.allclose(words_only.scores("post-rock"), 0.4 * 2 * np.log(1.2))       # a tie without pairs


def test_bm25_stemmer_by_hand_and_as_bm25s_stems():
    """``search.bm25_stemmer``: a query word and a description word with one stem are one term
    ("animated" finds "Animation"), the words of a pair are stemmed each, and the index holds what
    ``bm25s.tokenize(stemmer=...)`` gives, term for term."""
    import bm25s
    import Stemmer

    from talkrec.index.analysis import stemmer_setting, tokenize_text
    from talkrec.index.lexical import LexicalIndex

    assert tokenize_text("Animated movies for kids", stemmer="english") == ["anim", "movi", "kid"]
    assert tokenize_text("Animated movies for kids") == ["animated", "movies", "kids"]        # off: words
    assert tokenize_text("post-rock bands, running", pairs=True, stemmer="english") == [
        "post", "post rock", "rock", "rock band", "band", "run"]
    docs = ["Genres: Animation, Children", "New Kids Nitro", "Tags: running"]
    lex = LexicalIndex(docs, k1=1.5, b=0.0, stemmer="english")
    # b = 0: tf 1 weighs 1 / (1 + 1.5) = 0.4; anim and kid each in 1 of 3 documents: idf ln(1 + 2.5 / 1.5)
    idf = np.log(1 + 2.5 / 1.5)
    assert np.allclose(lex.scores("animated movie for kids"), [0.4 * idf, 0.4 * idf, 0.0])
    assert np.allclose(LexicalIndex(docs, k1=1.5, b=0.0).scores("animated movie for kids"), [0.0, 0.4 * idf, 0.0])
    corpus = ["Rock bands running runs", "the ran runner", "connection connected", "Ünïcode cafés", ""]
    tok = bm25s.tokenize(corpus, stopwords="en", stemmer=Stemmer.Stemmer("english"), return_ids=False,
                         show_progress=False)
    assert LexicalIndex(corpus, stemmer="english").tokenize(corpus) == [list(t) for t in tok]
    assert stemmer_setting(None) is None and stemmer_setting(False) == "" and stemmer_setting("none") == ""
    assert stemmer_setting(" English") == "english"
    with pytest.raises(InputError, match="bm25_stemmer.*Snowball language"):
        stemmer_setting("klingon")


def test_bm25_stopwords_by_hand_saved_and_checked(tmp_path):
    """``search.bm25_stopwords``: a space's own stopwords are no terms of the index nor of a
    query ("movies" in a query no longer finds *Film-Noir* or "great movie"), in a pair neither
    (they break it as an English stopword does), with stems too; they are saved with the index;
    the setting names what is wrong with a bad entry."""
    from talkrec.index.analysis import BM25Settings, bm25_params, stop_set, stopwords_setting, tokenize_text
    from talkrec.index.lexical import LexicalIndex

    stop = ("film", "films", "movie", "movies")
    assert tokenize_text("Funny movies, film-noir", stopwords=stop_set(stop)) == ["funny", "noir"]
    assert tokenize_text("funny movie night", pairs=True, stopwords=stop_set(stop)) == ["funny", "night"]
    assert tokenize_text("Animated films", stemmer="english", stopwords=stop_set(stop)) == ["anim"]
    docs = ["Genres: Film-Noir, Crime", "Tags: great movie, funny", "Genres: Comedy, funny"]
    lex = LexicalIndex(docs, k1=1.5, b=0.0, stopwords=["Movies", "movie", "film"])
    assert lex.stopwords == ("film", "movie", "movies") and "movie" not in lex.vocab and "film" not in lex.vocab
    # b = 0: tf 1 weighs 0.4; "funny" in 2 of 3 documents: idf ln(1 + 1.5 / 2.5)
    assert np.allclose(lex.scores("funny movies"), [0.0, 0.4 * np.log(1.6), 0.4 * np.log(1.6)])
    plain = LexicalIndex(docs, k1=1.5, b=0.0)
    assert plain.scores("movie")[1] > 0 and plain.scores("film")[0] > 0            # without: they match
    lex.save(tmp_path / "bm25")
    back = LexicalIndex.load(tmp_path / "bm25")
    assert back.settings == lex.settings and np.array_equal(back.scores("funny movies"), lex.scores("funny movies"))
    assert bm25_params({"bm25_stopwords": [" Films", "movies", "films"]}).stopwords == ("films", "movies")
    assert bm25_params({}) == BM25Settings() and stopwords_setting([]) == ()
    for bad, what in (("movies", "a list of words"), (["great movie"], "one word"), ([3], "one word"),
                      (["x"], "one word")):
        with pytest.raises(InputError, match=what) as e:
            bm25_params({"bm25_stopwords": bad})
        assert e.value.field == "search.bm25_stopwords"


@pytest.mark.parametrize("k1,b", [(1.5, 0.75), (1.2, 0.1), (0.0, 1.0), (3.0, 0.0)])
def test_bm25_matrix_is_bm25s_index_to_the_bit(k1, b):
    """The index is built with numpy (a compaction builds it while the server answers reads),
    not bm25s' loop over the documents: the same arrays, vocabulary and corpus statistics."""
    import bm25s

    from talkrec.index.lexical import LexicalIndex

    rng = np.random.default_rng(int(k1 * 10 + b * 100))
    words = ["metal", "jazz", "Rock", "the", "80s", "hip-hop", "café", "r&b", "a", "x", "trip_hop", "électro"]
    for docs in ([" ".join(rng.choice(words, size=rng.integers(0, 30))) for _ in range(400)],
                 ["", "the a", "rock rock pop", "", "jazz rock"], ["solo"]):
        tok = bm25s.tokenize(docs, stopwords="en", show_progress=False)
        ref = bm25s.BM25(k1=k1, b=b)
        ref.index(tok, show_progress=False)
        ours = LexicalIndex(docs, k1=k1, b=b)
        for name, got in (("data", ours.data), ("indices", ours.indices), ("indptr", ours.indptr)):
            want = np.asarray(ref.scores[name])
            assert got.dtype == want.dtype and np.array_equal(got, want), (name, docs[:3])
        assert ours.vocab == ref.vocab_dict
        assert ours.avgdl == float(np.mean([len(d) for d in tok.ids]))
    # no text has a word (bm25s itself raises here): an index that matches nothing
    assert np.array_equal(LexicalIndex(["", "the"], k1=k1, b=b).scores("the rock"), [0.0, 0.0])


# ----------------------------------------------------------------------------- issue 10: persistence, snapshots
def test_the_graph_is_saved_with_the_index_and_loaded_not_rebuilt(tmp_path, monkeypatch):
    import talkrec.index.store as store

    rng = np.random.default_rng(1)
    V = rng.normal(size=(500, 8)).astype(np.float32)
    ix = VectorIndex([str(i) for i in range(500)], V, ann=True, M=8, ef_construction=50)
    ix.save(tmp_path / "ix")
    assert (tmp_path / "ix" / "hnsw.bin").exists()
    monkeypatch.setattr(store, "build_graph", lambda *a, **k: (_ for _ in ()).throw(AssertionError("rebuilt")))
    again = VectorIndex.load(tmp_path / "ix")
    q = rng.normal(size=8)
    assert again.search(q, 5) == ix.search(q, 5)


def test_saved_vectors_load_bit_for_bit_not_normalized_again(tmp_path):
    """A generation loaded again (a restart, a follower) serves the very vectors it served, and
    its saved int8 copies match them: normalizing unit rows again changed the last bit of some."""
    from talkrec.index.store import l2_normalize

    rng = np.random.default_rng(3)
    ix = VectorIndex([str(i) for i in range(400)], rng.normal(size=(400, 48)).astype(np.float32))
    assert (l2_normalize(ix.vectors) != ix.vectors).any()           # what a second normalization does
    ix.save(tmp_path / "ix")
    assert np.array_equal(VectorIndex.load(tmp_path / "ix").vectors, ix.vectors)
    again = VectorIndex(ix.ids, ix.vectors, unit=True)
    assert np.array_equal(again.vectors, ix.vectors)
    mixed = ix.vectors.copy()
    mixed[::2] *= 2                                                  # rows not of length 1: normalized
    again = VectorIndex(ix.ids, mixed, unit=True)
    assert np.allclose(again.vectors, ix.vectors, atol=1e-6) and np.array_equal(again.vectors[1::2], ix.vectors[1::2])


def test_bm25_saved_and_loaded_and_delta_rows_scored_with_the_base_statistics(tmp_path, monkeypatch):
    from talkrec.index import lexical_files
    from talkrec.index.lexical import LexicalIndex
    from talkrec.index.segments import DeltaRows

    docs = ["heavy metal band", "soft jazz trio", "jazz metal fusion", "", "jazz jazz club"]
    lex = LexicalIndex(docs[:4])
    lex.save(tmp_path / "bm25")
    monkeypatch.setattr(lexical_files, "VOCAB_CHUNK", 2)                   # the vocabulary read in pieces
    again = LexicalIndex.load(tmp_path / "bm25")
    assert np.allclose(again.scores("jazz metal"), lex.scores("jazz metal")) and again.avgdl == lex.avgdl
    assert again.vocab == lex.vocab and (tmp_path / "bm25" / "talkrec_vocab.txt").is_file()
    saved = (tmp_path / "bm25" / "talkrec_vocab.txt").read_text(encoding="utf-8").split("\n")
    for bad in (["jazz", "jazz"] + saved[2:], saved[:-1]):                 # a token twice; one missing
        (tmp_path / "bm25" / "talkrec_vocab.txt").write_text("\n".join(bad), encoding="utf-8")
        assert LexicalIndex.load(tmp_path / "bm25").vocab == lex.vocab     # not the vocabulary: the JSON is read
    (tmp_path / "bm25" / "talkrec_vocab.txt").unlink()                      # an index saved before it
    assert LexicalIndex.load(tmp_path / "bm25").vocab == lex.vocab
    # a delta row scores as the same text would inside the base (same idf, avgdl): compare
    # with the base's own score of an identical document
    delta = DeltaRows(2, {})
    delta.append(["d0", "d1"], np.zeros((2, 2)), [{}, {}], {}, lex.tokenize(["soft jazz trio", "nothing"]))
    for q in ("jazz", "jazz trio", "trio trio", "metal"):
        got = delta.bm25(again, lex.tokenize([q])[0], 2)
        assert np.allclose(got, [lex.scores(q)[1], 0.0]), q
    assert delta.bm25(again, ["qwzzyx"], 2).tolist() == [0.0, 0.0]
    only_new = DeltaRows(2, {})
    only_new.append(["d"], np.zeros((1, 2)), [{}], {}, [["qwzzyx"]])
    assert only_new.bm25(again, ["qwzzyx"], 1)[0] > 0                  # a word the base never saw


@pytest.mark.parametrize("k1,b,pairs", [(1.5, 0.75, False), (1.2, 0.1, False), (1.2, 0.1, True)])
def test_a_merged_bm25_index_is_the_index_of_the_texts_to_the_bit(tmp_path, k1, b, pairs):
    """A compaction extends the generation's BM25 index with the rows written since instead
    of tokenizing every description again: the same scores, to the bit, as tokenizing."""
    from collections import Counter

    from talkrec.index.lexical import LexicalIndex

    rnd = random.Random(0)
    words = ["rock", "jazz", "metal", "pop", "the", "indie", "folk", "dark", "80s", "a", "zz9", "post-rock,",
             "hip-hop."]
    docs = [" ".join(rnd.choice(words) for _ in range(rnd.randint(0, 8))) for _ in range(300)]
    new = [" ".join(rnd.choice(words + ["brandnew", "qwzzyx"]) for _ in range(rnd.randint(0, 8))) for _ in range(50)]

    def counts(texts):
        added = {}
        toks = base.tokenize(texts)
        for j, t in enumerate(toks):
            for w, c in Counter(t).items():
                added.setdefault(w, ([], []))
                added[w][0].append(j)
                added[w][1].append(float(c))
        return {w: (np.array(r), np.array(c)) for w, (r, c) in added.items()}, np.array([len(t) for t in toks])

    LexicalIndex(docs, k1=k1, b=b, pairs=pairs).save(tmp_path / "bm25")
    base = LexicalIndex.load(tmp_path / "bm25")                # as a compaction finds it
    assert base.has_counts and base.pairs == pairs and (pairs == ("rock jazz" in base.vocab))
    queries = words + ["brandnew rock rock", "qwzzyx", "nothing here", "post-rock and rock jazz", "hip hop"]
    for keep, added_texts in ((sorted(rnd.sample(range(300), 200)), new), (list(range(300)), []),
                              ([], new[:5]), ([3, 7], [])):
        added, lens = counts(added_texts)
        merged = LexicalIndex.merged(base, np.array(keep, dtype=np.int64), added, lens)
        ref = LexicalIndex([docs[i] for i in keep] + added_texts, k1=k1, b=b, pairs=pairs)
        assert (merged.n, merged.avgdl) == (ref.n, ref.avgdl)
        for q in queries:
            assert np.array_equal(merged.scores(q), ref.scores(q)), q
        assert np.array_equal(merged.idf(words), ref.idf(words))
        merged.save(tmp_path / "again")                        # and merged again after a reload
        assert np.array_equal(LexicalIndex.load(tmp_path / "again").scores("jazz rock"), ref.scores("jazz rock"))
    # counts that do not fit the index (a damaged file) are not used: compaction tokenizes then
    np.save(tmp_path / "bm25" / "talkrec_tf.npy", np.ones(3, np.int32))
    assert not LexicalIndex.load(tmp_path / "bm25").has_counts
    # an index saved before the term counts were kept cannot be merged; compaction tokenizes then
    for f in ("talkrec_tf.npy", "talkrec_doclen.npy"):
        (tmp_path / "bm25" / f).unlink()
    old = LexicalIndex.load(tmp_path / "bm25")
    assert not old.has_counts and np.array_equal(old.scores("jazz"), base.scores("jazz"))
    with pytest.raises(ValueError, match="term counts"):
        LexicalIndex.merged(old, np.arange(3), {}, np.zeros(0))


def test_snapshots_are_immutable_views(tmp_path):
    from talkrec.index.segments import Generation
    from talkrec.index.snapshot import Snapshot

    V = np.eye(4, dtype=np.float32)
    meta = pd.DataFrame({"item_id": list("abcd"), "name": list("ABCD"), "year": [1990, 1991, 1992, 1993]})
    s0 = Snapshot.of(Generation("gen-000001", VectorIndex(meta["item_id"], V, meta), {"x": V.copy()}))
    s1 = s0.with_upsert(["b", "e"], np.array([[0, 0, 0, 1], [0.6, 0.8, 0, 0]], dtype=np.float32),
                        [{"item_id": "b", "name": "B2"}, {"item_id": "e", "name": "E", "label": "new"}],
                        {"x": np.zeros((2, 4), np.float32)}, [[], []])
    s2 = s1.with_delete(["a", "e"])
    assert [len(s0), len(s1), len(s2)] == [4, 5, 3]
    assert s0.search(np.array([0, 1.0, 0, 0]), 1)[0][0] == "b"            # the old snapshot is unchanged
    assert s1.search(np.array([0, 1.0, 0, 0]), 1)[0][0] == "e"
    assert s1.search(np.array([0, 0, 0, 1.0]), 2) == [("d", pytest.approx(1.0)), ("b", pytest.approx(1.0))]  # ties: row
    assert s2.ids.tolist() == ["c", "d", "b"] and s2.meta["name"].tolist() == ["C", "D", "B2"]
    assert s2.position("a") is None and s1.position("a") == 0 and s2.position("b") == 4
    assert s1.mask("label=new").tolist() == [False, False, False, False, False, True]
    assert s2.mask("year>=1992").tolist() == [False, False, True, True, False, False]
    assert s1.columns == ["item_id", "name", "year", "label"] and s0.columns == ["item_id", "name", "year"]
    with pytest.raises(RuntimeError, match="newest"):
        s1.with_delete(["c"])                                              # s2 was made from s1
    with pytest.raises(ValueError):
        s2.live[0] = True                                                  # read-only


def test_shared_product_answers_concurrent_queries_together_each_with_its_own_scores():
    import threading

    from talkrec.index.segments import SharedProduct

    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 16)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    Q = rng.normal(size=(24, 16)).astype(np.float32)
    prod = SharedProduct(X)
    assert np.array_equal(prod(Q[0]), X @ Q[0])                # alone: the plain product, to the bit
    out: list[np.ndarray | None] = [None] * len(Q)
    start = threading.Barrier(len(Q))

    def ask(i: int) -> None:
        start.wait()
        out[i] = prod(Q[i])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(Q))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for q, got in zip(Q, out):
        assert got is not None and got.shape == (len(X),)
        assert np.allclose(got, X @ q, rtol=0, atol=1e-5)
    with pytest.raises(ValueError):
        prod(np.ones(3, dtype=np.float32))                     # a failed product raises to its caller
    assert np.array_equal(prod(Q[1]), X @ Q[1])                # and leaves the next one working


def test_the_text_search_matrix_takes_each_items_first_description_view():
    """Multi-view spaces (movies: TEMPLATE + overview) search the text model on an item's first
    view, falling back to its next view; an item without any has no text (issue 12)."""
    from talkrec.index.segments import text_matrix

    nan = np.full(2, np.nan)
    X = np.array([[[1.0, 0.0], [0.0, 1.0]],        # both views: the first
                  [nan, [0.0, 1.0]],               # no first view: the second
                  [nan, nan],                      # none
                  [[0.6, 0.8], nan]], dtype=np.float32)
    T, has = text_matrix(X)
    np.testing.assert_allclose(T, [[1, 0], [0, 1], [0, 0], [0.6, 0.8]], rtol=1e-6)
    assert has.tolist() == [True, True, False, True]
    T2, has2 = text_matrix(X[:, 0])                    # one view: as it is
    assert has2.tolist() == [True, False, False, True] and T2.dtype == np.float32


def test_delta_rows_per_row_values_are_made_once_per_row():
    """``DeltaRows.per_row`` maps each row's id once, extends as rows arrive, and a snapshot of
    ``m`` rows sees only its rows (what a read after a write pays: the rows written since)."""
    from talkrec.index.segments import DeltaRows

    d = DeltaRows(2, {})
    asked: list[list[str]] = []

    def of(ids):
        asked.append(list(ids))
        return [len(i) for i in ids]

    def add(*ids):
        d.append(list(ids), np.ones((len(ids), 2), np.float32), [{} for _ in ids], {}, [[] for _ in ids])
    add("a", "bb")
    assert d.per_row("k", 2, of).tolist() == [1, 2] and asked == [["a", "bb"]]
    add("ccc")
    assert d.per_row("k", 2, of).tolist() == [1, 2] and len(asked) == 1      # an older snapshot: no new lookups
    assert d.per_row("k", 3, of).tolist() == [1, 2, 3] and asked[-1] == ["ccc"]
    assert d.per_row("other", 1, of).tolist() == [1] and asked[-1] == ["a"]   # each key has its own values
    assert d.per_row("k", 0, of).tolist() == []


@pytest.mark.parametrize("pairs", [False, True])
def test_a_documents_terms_and_long_queries_score_as_its_text_does(tmp_path, pairs):
    """``doc_terms`` reads a document's terms and counts back from the index (no text) as
    tokenizing its text gives them; ``term_scores`` (one pass over the postings) scores a
    query of terms and counts as ``token_scores`` scores the same tokens, repeats included."""
    from collections import Counter

    from talkrec.index.lexical import LexicalIndex

    rnd = random.Random(1)
    words = ["rock", "jazz", "metal", "the", "indie", "dark", "80s", "post-rock,", "hip-hop.", "rock"]
    docs = [" ".join(rnd.choice(words) for _ in range(rnd.randint(0, 9))) for _ in range(120)]
    LexicalIndex(docs, k1=1.2, b=0.1, pairs=pairs).save(tmp_path / "bm25")
    lex = LexicalIndex.load(tmp_path / "bm25")                 # the term counts, as a server maps them
    for i, d in enumerate(docs):
        terms, counts = lex.doc_terms(i)
        assert dict(zip(terms, counts.tolist())) == dict(Counter(lex.tokenize([d])[0])), d
    by_hand = LexicalIndex(["jazz jazz rock", "rock", "metal"], k1=1.5, b=0.75)
    # "jazz" twice and "rock" once in a query: twice jazz's column plus rock's, as in bm25s
    want = 2 * by_hand.token_scores(["jazz"]) + by_hand.token_scores(["rock"])
    assert np.allclose(by_hand.term_scores(["jazz", "rock", "qwzzyx"], np.array([2, 1, 5])), want)
    assert np.allclose(want, by_hand.token_scores(["jazz", "rock", "jazz"]))
    assert by_hand.term_scores([], np.zeros(0, np.int64)).tolist() == [0.0, 0.0, 0.0]
    for d in docs[:40]:
        c = Counter(lex.tokenize([d])[0])
        assert np.allclose(lex.term_scores(list(c), np.array(list(c.values()))), lex.token_scores(lex.tokenize([d])[0]))
    for f in ("talkrec_tf.npy", "talkrec_doclen.npy"):           # an index saved without its counts
        (tmp_path / "bm25" / f).unlink()
    assert LexicalIndex.load(tmp_path / "bm25").doc_terms(0) is None
