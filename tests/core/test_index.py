"""Vector index: exact kNN, filters, upserts, persistence."""
from __future__ import annotations

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
    with pytest.raises(InputError, match="unknown filter field 'colour'"):
        index.search(q, 5, where="colour=red")
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
