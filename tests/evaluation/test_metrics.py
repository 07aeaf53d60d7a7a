"""Metrics against values worked out by hand (see the comments)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from talkrec.metrics import (average_precision_at_k, bootstrap_ci, coverage_at_k, dcg_at_k, entropy,
                             expected_contrastive_loss, gini_at_k, gini_index, modality_group_entropy, ndcg_at_k,
                             novelty_at_k,
                             paired_bootstrap_pvalue, popularity_buckets, recall_at_k, relative_to_reference_by_bucket)

L3 = 1.0 / math.log2(3)  # discount of rank 2


def test_ndcg_hand_values() -> None:
    # R = {a, c}, L = [a, b, c]: DCG = 1/log2(2) + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3)
    assert ndcg_at_k({"a", "c"}, ["a", "b", "c"], 3) == pytest.approx(1.5 / (1 + L3))
    assert ndcg_at_k({"a", "c"}, ["a", "b", "c"], 3) == pytest.approx(0.919721, abs=1e-6)
    # k = 2 cuts c: DCG = 1, IDCG still over min(k, |R|) = 2 ranks
    assert ndcg_at_k({"a", "c"}, ["a", "b", "c"], 2) == pytest.approx(1 / (1 + L3))
    # the only relevant item at rank 2: 1/log2(3)
    assert ndcg_at_k({"b"}, ["a", "b"], 10) == pytest.approx(L3)
    # more relevant items than k: IDCG uses k ranks
    assert ndcg_at_k({"a", "b", "c"}, ["c"], 1) == 1.0
    assert ndcg_at_k({"x"}, ["a", "b"], 2) == 0.0
    assert ndcg_at_k(set(), ["a"], 1) == 0.0
    # a repeated id counts once, at its first place; the repeat keeps its place (rank 2 here)
    assert ndcg_at_k({"b"}, ["a", "a", "b"], 3) == pytest.approx(0.5)      # b at rank 3: 1/log2(4)
    assert dcg_at_k({"a", "c"}, ["a", "b", "c"], 3) == pytest.approx(1.5)


def test_ndcg_perfect_and_worst() -> None:
    assert ndcg_at_k({1, 2, 3}, [3, 1, 2, 9], 3) == pytest.approx(1.0)
    assert ndcg_at_k({1, 2, 3}, [9, 8, 7], 3) == 0.0
    with pytest.raises(ValueError):
        ndcg_at_k({1}, [1], 0)


def test_recall_hand_values() -> None:
    assert recall_at_k({"a", "c", "d"}, ["a", "b", "c"], 3) == pytest.approx(2 / 3)
    assert recall_at_k({"a", "c", "d"}, ["a", "b", "c"], 1) == pytest.approx(1 / 3)
    assert recall_at_k(set(), ["a"], 3) == 0.0


def test_average_precision_hand_values() -> None:
    # R = {a, c}, L = [a, b, c]: hits at 1 and 3 -> (1/1 + 2/3) / min(2, 3)
    assert average_precision_at_k({"a", "c"}, ["a", "b", "c"], 3) == pytest.approx((1 + 2 / 3) / 2)
    # k = 2 cuts c: 1/1 / min(2, 2)
    assert average_precision_at_k({"a", "c"}, ["a", "b", "c"], 2) == pytest.approx(0.5)
    # a repeated id counts once, at its first place: a is the 3rd entry of [b, b, a] -> P(3) = 1/3
    assert average_precision_at_k({"a"}, ["b", "b", "a"], 3) == pytest.approx(1 / 3)
    assert average_precision_at_k(set(), ["a"], 3) == 0.0
    with pytest.raises(ValueError):
        average_precision_at_k({"a"}, ["a"], 0)


def test_gini_hand_values() -> None:
    # sorted [0,0,0,4]: sum (2i-5) c_i = 3*4 = 12; n*sum = 16 -> 0.75
    assert gini_index([0, 0, 0, 4]) == pytest.approx(0.75)
    assert gini_index([2, 2, 2]) == pytest.approx(0.0)
    assert gini_index([3, 1]) == pytest.approx(0.25)   # (-1*1 + 1*3) / (2*4)
    # counts a=2, b=1, c=1, d=0 -> sorted [0,1,1,2]: (-1 + 1 + 6) / 16
    assert gini_at_k([["a", "b"], ["a", "c"]], ["a", "b", "c", "d"], 2) == pytest.approx(6 / 16)
    assert gini_at_k([["a", "b"], ["a", "c"]], ["a", "b", "c", "d"], 1) == pytest.approx(0.75)


def test_coverage() -> None:
    assert coverage_at_k([["a", "b"], ["a", "c"]], ["a", "b", "c", "d"], 2) == pytest.approx(0.75)
    assert coverage_at_k([["a", "b"], ["a", "c"]], ["a", "b", "c", "d"], 1) == pytest.approx(0.25)


def test_novelty_hand_values() -> None:
    pop, users = {"a": 3, "b": 1}, 3                          # c absent: consumed by no one
    # [a, b]: log2(4/4) = 0 and log2(4/2) = 1 -> 0.5; [c]: log2(4/1) = 2; mean over queries 1.25
    assert novelty_at_k([["a", "b"], ["c"]], pop, users, 2) == pytest.approx(1.25)
    # k cuts first, a repeat counts once, an empty ranking is left out: [a, a | b] -> a alone -> 0
    assert novelty_at_k([["a", "a", "b"], []], pop, users, 2) == pytest.approx(0.0)
    assert novelty_at_k([[]], pop, users, 2) == 0.0
    with pytest.raises(ValueError, match="n_users"):
        novelty_at_k([["a"]], pop, 0, 2)
    with pytest.raises(ValueError, match=r"\[0, n_users=3\]"):
        novelty_at_k([["a"]], {"a": 4}, users, 2)


def test_entropy_and_modality_groups() -> None:
    assert entropy([1, 1]) == pytest.approx(math.log(2))
    assert entropy([2, 0, 2]) == pytest.approx(math.log(2))
    assert entropy([5]) == 0.0
    assert entropy([1, 1, 1, 1]) == pytest.approx(math.log(4))
    group = {"q1": "g1", "q2": "g2", "a": "g1", "b": "g2", "c": "g2"}
    # row g1 = {g1: 1, g2: 1} -> ln 2; row g2 = {g2: 1} -> 0; mean ln2 / 2
    h, mat = modality_group_entropy({"q1": ["a", "b"], "q2": ["c"]}, group, k=2)
    assert h == pytest.approx(math.log(2) / 2)
    assert mat == {"g1": {"g1": 1, "g2": 1}, "g2": {"g2": 1}}
    h1, _ = modality_group_entropy({"q1": ["a", "b"], "q2": ["c"]}, group, k=1)
    assert h1 == 0.0


def test_ecl_hand_values() -> None:
    u = np.array([[1, 0], [0, 1], [-1, 0]], dtype=float)
    v = np.array([[1, 0], [0, 1], [0, -1]], dtype=float)
    # worked out in the module docstring's notation: ECL(0) = (-1 - 1.5)/2, ECL(1) = (-1.5 - 1)/2,
    # ECL(2) = (-0.5 - 0.5)/2
    e = expected_contrastive_loss({"u": u, "v": v})
    assert e == pytest.approx([-1.25, -1.25, -0.5])
    # scale does not matter (cosine)
    assert expected_contrastive_loss({"u": 3 * u, "v": v}) == pytest.approx(e)
    v2 = v.copy()
    v2[2] = np.nan
    e2 = expected_contrastive_loss({"u": u, "v": v2})
    assert math.isnan(e2[2])
    # item 0 (u,v): d00=0, others over j with v present = {1}: d01 = 1 -> -1; (v,u): d01 = 1, d02 = 2 -> -1.5
    assert e2[0] == pytest.approx(-1.25)


def test_bootstrap_ci() -> None:
    m, lo, hi = bootstrap_ci([0.5] * 10, n_resamples=200, random_state=1)
    assert (m, lo, hi) == pytest.approx((0.5, 0.5, 0.5))
    x = np.random.default_rng(0).random(200)
    m, lo, hi = bootstrap_ci(x, n_resamples=500, random_state=3)
    assert lo < m < hi
    assert m == pytest.approx(x.mean())
    # about +-1.96 standard errors
    se = x.std(ddof=1) / math.sqrt(len(x))
    assert (hi - lo) == pytest.approx(2 * 1.96 * se, rel=0.2)
    assert bootstrap_ci(x, n_resamples=500, random_state=3) == (m, lo, hi)   # seeded
    assert all(math.isnan(v) for v in bootstrap_ci([]))


def test_paired_pvalue() -> None:
    a, b = np.ones(50), np.zeros(50)
    assert paired_bootstrap_pvalue(a, b, n_resamples=999) == pytest.approx(1 / 1000)
    assert paired_bootstrap_pvalue(b, a, n_resamples=999) == pytest.approx(1.0)


def test_popularity_buckets_and_relative() -> None:
    assert popularity_buckets([5, 1, 3, 2], 2).tolist() == [1, 0, 1, 0]
    r = relative_to_reference_by_bucket([0.2, 0.4], [0.1, 0.4], [0, 1])
    assert r == pytest.approx({0: 1.0, 1: 0.0})


# A ranking with a repeat: r = [a, a, b]. The rule everywhere: cut to the first k entries, then
# each id counts once, at its first place (a repeat gains nothing and keeps its place).
R_DUP = ["a", "a", "b"]


def test_dcg_cuts_first_and_counts_a_repeat_once() -> None:
    # k = 2: entries [a, a]: a gains 1 at rank 1, its repeat at rank 2 gains 0 -> DCG 1 = IDCG
    assert dcg_at_k({"a"}, R_DUP, 2) == pytest.approx(1.0)
    assert ndcg_at_k({"a"}, R_DUP, 2) == pytest.approx(1.0)
    # k = 3: a at rank 1, b at rank 3: 1 + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3)
    assert dcg_at_k({"a", "b"}, R_DUP, 3) == pytest.approx(1.5)
    assert ndcg_at_k({"a", "b"}, R_DUP, 3) == pytest.approx(1.5 / (1 + L3))
    # b is the 3rd entry: outside k = 2
    assert dcg_at_k({"b"}, R_DUP, 2) == 0.0
    assert ndcg_at_k({"b"}, R_DUP, 2) == 0.0
    # [a, a, a]: one gain, at rank 1
    assert dcg_at_k({"a"}, ["a", "a", "a"], 3) == pytest.approx(1.0)


def test_dcg_never_exceeds_the_ideal() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        ranking = rng.integers(0, 6, size=int(rng.integers(1, 9))).tolist()
        rel = set(rng.integers(0, 6, size=int(rng.integers(1, 4))).tolist())
        for k in (1, 2, 3, 5, 10):
            idcg = sum(1 / math.log2(i + 1) for i in range(1, min(k, len(rel)) + 1))
            assert dcg_at_k(rel, ranking, k) <= idcg + 1e-12
            assert ndcg_at_k(rel, ranking, k) <= 1.0 + 1e-12
            assert 0.0 <= average_precision_at_k(rel, ranking, k) <= 1.0 + 1e-12
            assert 0.0 <= recall_at_k(rel, ranking, k) <= 1.0


def test_recall_and_ap_cut_first_then_count_once() -> None:
    assert recall_at_k({"b"}, R_DUP, 2) == 0.0                  # b is the 3rd entry
    assert recall_at_k({"a", "b"}, R_DUP, 2) == pytest.approx(0.5)
    assert recall_at_k({"b"}, R_DUP, 3) == 1.0
    assert average_precision_at_k({"b"}, R_DUP, 2) == 0.0
    # b first at place 3: P(3) = 1/3, one relevant item
    assert average_precision_at_k({"b"}, R_DUP, 3) == pytest.approx(1 / 3)
    # {a, b}: hits at 1 (P = 1/1) and 3 (P = 2/3) -> (1 + 2/3) / min(2, 3)
    assert average_precision_at_k({"a", "b"}, R_DUP, 3) == pytest.approx(5 / 6)
    # a repeat is not a second hit: [a, a, a] -> P(1) = 1 only
    assert average_precision_at_k({"a"}, ["a", "a", "a"], 3) == pytest.approx(1.0)


def test_coverage_and_gini_cut_first_then_count_once() -> None:
    assert coverage_at_k([R_DUP], ["a", "b"], 2) == pytest.approx(0.5)
    # top 2 of [a, a, b] holds only a: counts a = 1, b = 0 -> sorted [0, 1]: (-1*0 + 1*1) / (2*1)
    assert gini_at_k([R_DUP], ["a", "b"], 2) == pytest.approx(0.5)
    # a listed twice in one ranking counts once: a = 1, b = 1 -> 0
    assert gini_at_k([["a", "a"], ["b"]], ["a", "b"], 2) == pytest.approx(0.0)
    assert gini_at_k([R_DUP], ["a", "b"], 3) == pytest.approx(0.0)


def test_gini_index_refuses_negative_counts_whatever_their_sum() -> None:
    for counts in ([-1, 1], [-2, 1], [-1, 3]):
        with pytest.raises(ValueError, match="non-negative"):
            gini_index(counts)


def test_bootstrap_needs_resamples_and_paired_values() -> None:
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_ci([1, 2, 3], n_resamples=0)
    with pytest.raises(ValueError, match="n_resamples"):
        paired_bootstrap_pvalue([1, 2, 3], [0, 1, 2], n_resamples=0)
    with pytest.raises(ValueError, match=r"shapes \(3,\) and \(1,\)"):
        paired_bootstrap_pvalue([1, 2, 3], [0])
    with pytest.raises(ValueError, match=r"shapes \(3,\) and \(2, 3\)"):
        paired_bootstrap_pvalue([1, 2, 3], [[0, 1, 2], [0, 1, 2]])


def test_popularity_buckets_are_equal_size_quantiles_with_ties_in_input_order() -> None:
    # [5, 5, 5, 5] -> ranks 0..3 in input order -> floor(rank * 2 / 4) = 0, 0, 1, 1
    assert popularity_buckets([5, 5, 5, 5], 2).tolist() == [0, 0, 1, 1]
    # sorted stably: 1 (pos 3), 2 (0), 2 (2), 2 (5), 3 (4), 4 (1) -> ranks [1, 5, 2, 0, 4, 3]
    # floor(rank * 2 / 6): 0, 1, 0, 0, 1, 1 - each bucket holds 3
    assert popularity_buckets([2, 4, 2, 1, 3, 2], 2).tolist() == [0, 1, 0, 0, 1, 1]


def test_metric_inputs_that_meant_something_else_are_refused():
    """Found by the library QA pass: ``k=True`` was k=1, a bare string of relevant ids was its
    characters (ndcg 0.387 for 'ab' against ['ab', 'a']), ``confidence=95`` failed in numpy,
    ``n_buckets <= 0`` made 0 or negative buckets, NaN counts gave a NaN Gini, and ECL of no
    modality raised StopIteration."""
    import numpy as np

    from talkrec import metrics as M
    for f in (M.ndcg_at_k, M.recall_at_k, M.average_precision_at_k, M.dcg_at_k):
        with pytest.raises(ValueError, match="k must be a positive integer"):
            f({"a"}, ["a"], True)
        with pytest.raises(ValueError, match="not one string"):
            f("ab", ["ab", "a"], 2)
    assert M.ndcg_at_k(["ab"], ["ab", "a"], 2) == 1.0
    for bad in (95, 0, 1.0, True):
        with pytest.raises(ValueError, match="confidence must be a number in"):
            M.bootstrap_ci([0.1, 0.2], confidence=bad)
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match="n_buckets"):
            M.popularity_buckets([1.0, 2.0], bad)
    with pytest.raises(ValueError, match="no NaN"):
        M.gini_index([1.0, np.nan])
    with pytest.raises(ValueError, match="at least one modality"):
        M.expected_contrastive_loss({})
