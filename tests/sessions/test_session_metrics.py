"""Hand-worked metric values and the task builders."""
from __future__ import annotations

import math

import numpy as np
import pytest

from talkrec.sessions.evaluate import (average_precision_at_k, bootstrap_ci, continuation_task, last_item_task,
                                       ndcg_at_k, rank_task, recall_at_k)
from talkrec.sessions.sessionize import SessionSet


def test_recall_hand_worked():
    # relevant {b, d, z}; top-3 = a b c -> 1 of 3; top-5 = a b c d e -> 2 of 3
    r = ["a", "b", "c", "d", "e"]
    assert recall_at_k(r, {"b", "d", "z"}, 3) == pytest.approx(1 / 3)
    assert recall_at_k(r, {"b", "d", "z"}, 5) == pytest.approx(2 / 3)


def test_average_precision_hand_worked():
    r = ["a", "b", "c", "d", "e"]
    # hits at ranks 2 and 4: P(2) = 1/2, P(4) = 2/4 -> (0.5 + 0.5) / min(3, 5) = 1/3
    assert average_precision_at_k(r, {"b", "d", "z"}, 5) == pytest.approx(1 / 3)
    # k = 3: one hit at rank 2 -> 0.5 / min(3, 3)
    assert average_precision_at_k(r, {"b", "d", "z"}, 3) == pytest.approx(0.5 / 3)
    # a single relevant item: AP = reciprocal rank
    assert average_precision_at_k(r, {"c"}, 5) == pytest.approx(1 / 3)
    # more relevant than k, perfect top-2 -> 1
    assert average_precision_at_k(r, {"a", "b", "c", "d"}, 2) == pytest.approx(1.0)


def test_ndcg_hand_worked():
    r = ["a", "b", "c", "d", "e"]
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(r, {"b", "d", "z"}, 5) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(r, {"a"}, 5) == pytest.approx(1.0)
    assert ndcg_at_k(r, {"c"}, 5) == pytest.approx(0.5)          # 1 / log2(4)
    assert ndcg_at_k(r, {"e"}, 4) == 0.0


def test_metrics_reject_empty_relevant_and_bad_k():
    with pytest.raises(ValueError):
        ndcg_at_k(["a"], set(), 5)
    with pytest.raises(ValueError):
        recall_at_k(["a"], {"a"}, 0)


def test_bootstrap_interval_contains_mean_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    v = rng.random(50)
    lo, hi = bootstrap_ci(v)
    assert lo < v.mean() < hi
    lo2, hi2 = bootstrap_ci(np.tile(v, 20))
    assert hi2 - lo2 < hi - lo
    assert bootstrap_ci(np.ones(10)) == (1.0, 1.0)


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
    assert recall_at_k([1, 0], t.relevant[0], 2) == pytest.approx(1 / 3)


def test_agrees_with_the_project_wide_metrics():
    core = pytest.importorskip("talkrec.evaluation.metrics")
    rng = np.random.default_rng(0)
    for _ in range(20):
        ranked = rng.permutation(30)[:20].tolist()
        rel = set(rng.choice(30, size=int(rng.integers(1, 8)), replace=False).tolist())
        for k in (10, 20):
            assert ndcg_at_k(ranked, rel, k) == pytest.approx(core.ndcg_at_k(rel, ranked, k))
            assert recall_at_k(ranked, rel, k) == pytest.approx(core.recall_at_k(rel, ranked, k))
