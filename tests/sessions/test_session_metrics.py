"""Hand-worked values of the metrics the study uses (the project's, :mod:`talkrec.metrics`)
and the task builders."""
from __future__ import annotations

import math

import numpy as np
import pytest

from talkrec.metrics import average_precision_at_k, bootstrap_ci, ndcg_at_k, recall_at_k
from talkrec.sessions.evaluate import continuation_task, last_item_task, per_query_metrics, rank_task, summarize
from talkrec.sessions.sessionize import SessionSet


def test_recall_hand_worked():
    # relevant {b, d, z}; top-3 = a b c -> 1 of 3; top-5 = a b c d e -> 2 of 3
    r = ["a", "b", "c", "d", "e"]
    assert recall_at_k({"b", "d", "z"}, r, 3) == pytest.approx(1 / 3)
    assert recall_at_k({"b", "d", "z"}, r, 5) == pytest.approx(2 / 3)


def test_average_precision_hand_worked():
    r = ["a", "b", "c", "d", "e"]
    # hits at ranks 2 and 4: P(2) = 1/2, P(4) = 2/4 -> (0.5 + 0.5) / min(3, 5) = 1/3
    assert average_precision_at_k({"b", "d", "z"}, r, 5) == pytest.approx(1 / 3)
    # k = 3: one hit at rank 2 -> 0.5 / min(3, 3)
    assert average_precision_at_k({"b", "d", "z"}, r, 3) == pytest.approx(0.5 / 3)
    # a single relevant item: AP = reciprocal rank
    assert average_precision_at_k({"c"}, r, 5) == pytest.approx(1 / 3)
    # more relevant than k, perfect top-2 -> 1
    assert average_precision_at_k({"a", "b", "c", "d"}, r, 2) == pytest.approx(1.0)


def test_ndcg_hand_worked():
    r = ["a", "b", "c", "d", "e"]
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k({"b", "d", "z"}, r, 5) == pytest.approx(dcg / idcg)
    assert ndcg_at_k({"a"}, r, 5) == pytest.approx(1.0)
    assert ndcg_at_k({"c"}, r, 5) == pytest.approx(0.5)          # 1 / log2(4)
    assert ndcg_at_k({"e"}, r, 4) == 0.0


def test_empty_relevant_scores_zero_and_bad_k_is_rejected():
    # one documented behaviour for the whole project: nothing relevant -> 0
    assert ndcg_at_k(set(), ["a"], 5) == 0.0
    assert average_precision_at_k(set(), ["a"], 5) == 0.0
    with pytest.raises(ValueError):
        recall_at_k({"a"}, ["a"], 0)


def test_bootstrap_interval_contains_mean_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    v = rng.random(50)
    mean, lo, hi = bootstrap_ci(v)
    assert lo < mean < hi and mean == pytest.approx(v.mean())
    _, lo2, hi2 = bootstrap_ci(np.tile(v, 20))
    assert hi2 - lo2 < hi - lo
    assert bootstrap_ci(np.ones(10)) == (1.0, 1.0, 1.0)


def test_last_item_task_targets_the_last_item():
    ss = SessionSet(np.arange(2), np.array(["u", "v"]), [["a", "b", "c"], ["c", "a"]])
    t = last_item_task(ss, ["a", "b", "c"])
    assert t.contexts == [[0, 1], [2]] and t.relevant == [{2}, {0}] and not t.exclude_context


def test_continuation_task_shows_1_to_10_items_and_excludes_them():
    items = [f"i{j}" for j in range(30)]
    ss = SessionSet(np.arange(12), np.array(["u"] * 12), [items[j:j + 15] for j in range(12)])
    t = continuation_task(ss, items)
    assert t.n_visible.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 2]
    assert t.contexts[2] == [2, 3, 4]
    assert t.relevant[2] == set(range(5, 17))
    assert t.exclude_context
    ranked = rank_task(lambda ctx: np.tile(np.arange(30, 0, -1.0), (len(ctx), 1)), t, k=5)
    assert 2 not in ranked[2] and ranked[0].tolist() == [1, 2, 3, 4, 5]


def test_unknown_targets_stay_relevant_and_cannot_be_hit():
    ss = SessionSet(np.arange(1), np.array(["u"]), [["a", "b", "new1", "new2"]])
    t = continuation_task(ss, ["a", "b"])
    assert len(t.relevant[0]) == 3          # b, new1, new2
    assert recall_at_k(t.relevant[0], [1, 0], 2) == pytest.approx(1 / 3)


def test_per_query_metrics_ignore_padding_and_summarize():
    # a 3-item vocabulary ranked at k = 5: rank_task pads with -1, which never hits the
    # relevant set {-1} of an unknown last item
    ss = SessionSet(np.arange(2), np.array(["u", "v"]), [["a", "b", "c"], ["a", "new"]])
    t = last_item_task(ss, ["a", "b", "c"])
    assert t.relevant == [{2}, {-1}]
    ranked = rank_task(lambda ctx: np.tile(np.array([0.1, 0.3, 0.2]), (len(ctx), 1)), t, k=5)
    assert ranked.tolist() == [[1, 2, 0, -1, -1]] * 2
    pq = per_query_metrics(ranked, t, ks=(1, 5))
    # query 0: c at rank 2 -> nDCG 1/log2(3), AP 1/2, recall@1 0, recall@5 1; query 1: nothing
    assert pq["ndcg@5"].tolist() == pytest.approx([1 / math.log2(3), 0.0])
    assert pq["map@5"].tolist() == pytest.approx([0.5, 0.0])
    assert pq["recall@1"].tolist() == [0.0, 0.0] and pq["recall@5"].tolist() == [1.0, 0.0]
    s = summarize(pq, n_boot=50)["map@5"]
    assert s["mean"] == pytest.approx(0.25) and s["n"] == 2 and s["lo"] <= s["mean"] <= s["hi"]
