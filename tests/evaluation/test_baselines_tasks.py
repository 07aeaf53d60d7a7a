"""Baselines, kNN/RRF helpers and the OLGA join on toy inputs."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from talkrec.evaluation import baselines as B
from talkrec.evaluation.tasks import UserQueries, item_to_item, olga_ground_truth, user_recommendation


def test_knn_excludes_and_skips_missing() -> None:
    E = np.array([[1, 0], [0.9, 0.1], [np.nan, np.nan], [0, 1], [-1, 0]], dtype=np.float32)
    R = B.knn(E[[0]], E, 3, exclude=[[0]])
    assert R[0].tolist() == [1, 3, 4]          # item 2 (NaN) never returned, item 0 excluded
    R = B.knn(np.array([[np.nan, np.nan]]), E, 2)
    assert R.tolist() == [[-1, -1]]
    R = B.knn(E[[0]], E, 2, candidates=np.array([0, 0, 0, 1, 1], dtype=bool))
    assert R[0].tolist() == [3, 4]


def test_rrf_hand_example() -> None:
    a = np.array([[0, 1, 2]])
    b = np.array([[2, 1, -1]])
    # c=1: s0 = 1/2; s1 = 1/3 + 1/3 = 0.667; s2 = 1/4 + 1/2 = 0.75
    assert B.rrf([a, b], 3, c=1.0).tolist() == [[2, 1, 0]]
    assert B.rrf([a, b], 3, c=1.0, weights=[1.0, 0.0]).tolist() == [[0, 1, 2]]


def test_popularity_ranking_excludes() -> None:
    R = B.popularity_ranking(np.array([5, 9, 1, 7.0]), 2, 2, exclude=[[], [1]])
    assert R.tolist() == [[1, 3], [3, 0]]


def test_concat_and_reductions() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((50, 8)).astype(np.float32)
    b = rng.standard_normal((50, 3)).astype(np.float32)
    b[::5] = np.nan
    C = B.concat_modalities({"a": a, "b": b})
    assert C.shape == (50, 11)
    assert np.allclose(C[0, 8:], 0)                              # missing block is zeros
    assert np.allclose(np.linalg.norm(C[1, :8]), 1)              # blocks L2-normalized
    for m in ("pca", "rp"):
        Z = B.reduce_concat({"a": a, "b": b}, method=m, n_components=5)
        assert Z.shape == (50, 5) and np.isfinite(Z).all()
        assert np.allclose(np.linalg.norm(Z, axis=1), 1, atol=1e-5)
    imp = B.impute_global_mean(b)
    assert np.allclose(imp[0], np.nanmean(b, axis=0))


def test_bm25_matches_terms() -> None:
    bm = B.BM25(["heavy metal band", "soft jazz trio", "jazz metal fusion"])
    R = bm.search(["jazz"], 3)
    assert set(R[0][:2].tolist()) == {1, 2} and R[0][2] == -1


def test_als_recommend_runs() -> None:
    rng = np.random.default_rng(0)
    rows = [(str(u), str(i), float(rng.integers(1, 5))) for u in range(30) for i in rng.choice(20, 6, replace=False)]
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "weight"])
    ids = [str(i) for i in range(25)]                            # 5 items without interactions
    m = B.ALSModel(df, ids, B.ALSParams(factors=4, iterations=3), random_state=0)
    assert np.isnan(m.item_factors[20:]).all() and np.isfinite(m.item_factors[:20]).all()
    R = m.recommend([[0, 1, 2]], 5)
    assert R.shape == (1, 5) and not set(R[0].tolist()) & {0, 1, 2}


def test_olga_join_undirected(tmp_path) -> None:
    pd.DataFrame({"olga_index": ["1", "2", "3", "4"], "allmusic_id": ["a", "b", "c", "d"],
                  "name": ["The Beatles", "Rolling Stones", "Nobody Here", "Beatles"], "name_dizofartist": "",
                  "mb_tags": ""}).to_csv(tmp_path / "olga_partial_artists.csv", index=False)
    pd.DataFrame({"src_olga_index": ["1", "2", "3"], "dst_olga_index": ["2", "3", "4"]}).to_csv(
        tmp_path / "olga_partial_allmusic_edges.csv", index=False)
    items = pd.DataFrame({"item_id": ["10", "20", "30"], "join_name": ["beatles", "rolling stones", ""]})
    rel, rep = olga_ground_truth(items, tmp_path)
    assert rel == {"10": {"20"}, "20": {"10"}}                    # undirected; unmatched and self links dropped
    assert rep["undirected_links"] == 1


def test_item_to_item_and_users() -> None:
    E = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=np.float32)
    ids = ["a", "b", "c", "d"]
    res = item_to_item(ids, {"a": {"b"}, "c": {"a"}}, {"a": "test", "c": "test"}, {"E": E}, k=2)
    assert res.scores["E"]["ndcg"].tolist() == pytest.approx([1.0, 0.0])
    uq = UserQueries(["u"], [[0]], [{1, 3}], ["test"])
    r = user_recommendation(uq, {"E": E}, k=3)
    assert r.rankings["E"][0].tolist() == [1, 3, 2]              # query item excluded
    assert r.scores["E"]["recall"][0] == 1.0
