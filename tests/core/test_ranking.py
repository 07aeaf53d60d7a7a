"""The one top-k and RRF, against hand-worked examples and a brute-force reference."""
from __future__ import annotations

import numpy as np
import pytest

from talkrec.ranking import partition_rows, rrf_depth, rrf_scores, top_k, top_k_among


def test_descending_with_ties_by_lower_position():
    s = np.array([0.5, 0.9, 0.5, 0.1, 0.9])
    # 0.9 at 1 and 4, then 0.5 at 0 and 2, then 0.1 at 3
    assert top_k(s, 5).tolist() == [1, 4, 0, 2, 3]
    # the cut falls inside the 0.5 tie: the lower position (0) wins, also in a batch
    assert top_k(s, 3).tolist() == [1, 4, 0]
    assert top_k(np.array([1.0, 1.0, 1.0, 1.0]), 2).tolist() == [0, 1]
    assert top_k(np.tile(np.ones(6), (3, 1)), 2).tolist() == [[0, 1]] * 3


def test_non_finite_scores_are_never_returned():
    s = np.array([-np.inf, 2.0, np.nan, 1.0, np.inf])
    assert top_k(s, 5).tolist() == [1, 3]              # fewer than k come back for 1-D
    assert top_k(np.array([-np.inf, -np.inf]), 3).tolist() == []
    assert top_k(s[None, :], 3).tolist() == [[1, 3, -1]]


def test_k_larger_than_n_and_k_zero():
    s = np.array([3, 1, 2])                              # integer scores work too
    assert top_k(s, 10).tolist() == [0, 2, 1]
    assert top_k(s, 0).tolist() == []
    assert top_k(np.array([[3.0, 1.0, 2.0]]), 5).tolist() == [[0, 2, 1, -1, -1]]
    assert top_k(np.zeros((0, 4)), 2).shape == (0, 2)
    with pytest.raises(ValueError):
        top_k(s, -1)
    with pytest.raises(ValueError):
        top_k(np.zeros((2, 2, 2)), 1)


def test_exclude_and_allowed():
    s = np.array([0.9, 0.8, 0.7, 0.6])
    assert top_k(s, 2, exclude=[0]).tolist() == [1, 2]
    assert top_k(s, 3, allowed=np.array([False, True, False, True])).tolist() == [1, 3]
    assert top_k(s, 3, exclude=[1], allowed=np.array([False, True, True, True])).tolist() == [2, 3]
    # batch: one exclusion list per row, a shared mask
    S = np.array([[0.9, 0.8, 0.7, 0.6], [0.1, 0.2, 0.3, 0.4]])
    R = top_k(S, 3, exclude=[[0], [3, 2]], allowed=np.array([True, True, True, False]))
    assert R.tolist() == [[1, 2, -1], [1, 0, -1]]
    # a per-row mask
    R = top_k(S, 2, allowed=np.array([[1, 0, 0, 1], [0, 1, 1, 0]], dtype=bool))
    assert R.tolist() == [[0, 3], [2, 1]]
    with pytest.raises(ValueError):
        top_k(S, 2, exclude=[[0]])


def test_input_is_not_modified():
    s = np.array([0.3, 0.2, 0.1], dtype=np.float32)
    S = np.tile(s, (2, 1))
    top_k(s, 2, exclude=[0], allowed=np.array([True, False, True]))
    top_k(S, 2, exclude=[[0], [1]])
    assert s.tolist() == pytest.approx([0.3, 0.2, 0.1]) and S[:, 0].tolist() == pytest.approx([0.3, 0.3])


@pytest.mark.parametrize("seed", range(5))
def test_batched_equals_rows_and_brute_force(seed):
    rng = np.random.default_rng(seed)
    S = rng.integers(0, 6, size=(40, 30)).astype(np.float32)   # many ties
    S[rng.random(S.shape) < 0.2] = -np.inf
    allowed = rng.random(30) < 0.8
    excl = [rng.choice(30, size=int(rng.integers(0, 4)), replace=False).tolist() for _ in range(40)]
    for k in (1, 5, 29, 30, 35):
        R = top_k(S, k, exclude=excl, allowed=allowed)
        for r in range(len(S)):
            ok = [j for j in range(30) if np.isfinite(S[r, j]) and allowed[j] and j not in excl[r]]
            want = sorted(ok, key=lambda j: (-S[r, j], j))[:k]
            assert top_k(S[r], k, exclude=excl[r], allowed=allowed).tolist() == want
            assert R[r].tolist() == want + [-1] * (k - len(want))


def test_rrf_by_hand():
    # list A ranks items 2, 0; list B (weight 2) ranks 0, 1.  c = 1:
    # s(0) = 1/(1+2) + 2/(1+1) = 1.3333, s(1) = 2/(1+2) = 0.6667, s(2) = 1/(1+1) = 0.5, s(3) = 0
    s = rrf_scores([np.array([2, 0]), np.array([0, 1])], 4, c=1.0, weights=[1.0, 2.0])
    assert np.allclose(s, [4 / 3, 2 / 3, 0.5, 0.0])
    assert top_k(s, 3).tolist() == [0, 1, 2]
    assert top_k(np.array([1.0, -np.inf, 1.0]), 5).tolist() == [0, 2]
    with pytest.raises(ValueError):
        rrf_scores([np.array([0])], 2, weights=[1.0, 2.0])


def test_rrf_depth_by_hand():
    # the top 10 beside a list of weight 0.5, c = 60: the 10th best fused score is at least
    # 1/70 = 0.014286; an item below depth D scores at most 1/(61+D) + 0.5/61 = 1/(61+D) + 0.008197,
    # below 1/70 once 61 + D > 164.2, D >= 104; one more for rounding: 105
    assert rrf_depth(10, c=60.0, weight=1.0, others=0.5) == 105
    assert 1 / (60 + 106) + 0.5 / 61 < 1 / 70 < 1 / (60 + 104) + 0.5 / 61
    # c = 1, the top 2 beside weight 0.5: gap = 1/3 - 0.5/2 = 1/12, D = floor(12 - 1) + 1 = 12
    assert rrf_depth(2, c=1.0, weight=1.0, others=0.5) == 12
    assert rrf_depth(5, c=60.0) == 6                         # alone: the list's own top (and one)
    assert rrf_depth(200, c=60.0, weight=1.0, others=0.5) is None     # 1/260 < 0.5/61: no depth is enough
    with pytest.raises(ValueError):
        rrf_depth(0)


@pytest.mark.parametrize("seed", range(40))
def test_a_list_read_to_rrf_depth_gives_the_same_top_and_scores(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(30, 400))
    c = float(rng.choice([0.0, 1.0, 5.0, 60.0]))
    need = int(rng.integers(1, 12))
    w_other = float(rng.choice([0.0, 0.25, 0.5, 1.0]))
    main = rng.permutation(n)[: int(rng.integers(need, n + 1))]
    other = rng.permutation(n)[: int(rng.integers(0, n // 2))]
    depth = rrf_depth(need, c=c, weight=1.0, others=w_other if len(other) else 0.0)
    if depth is None:                      # only where the other lists alone can outscore the top
        assert 1.0 / (c + need) <= (w_other if len(other) else 0.0) / (c + 1)
        return
    full = rrf_scores([main, other], n, c=c, weights=[1.0, w_other])
    cut = rrf_scores([main[:depth], other], n, c=c, weights=[1.0, w_other])
    for s in (full, cut):
        s[s <= 0] = -np.inf
    want, got = top_k(full, need), top_k(cut, need)
    assert got.tolist() == want.tolist()
    assert np.array_equal(cut[got], full[want])


@pytest.mark.parametrize("n", [7, 5000])
def test_partition_rows_is_numpys_argpartition_row_by_row(n):
    """Issue 13: EASE's top lists of 1,024 x 17,632 chunks spent most of the stage in numpy's
    ``argpartition(axis=1)``, which fills an index array as large as the matrix; row by row
    gives the same positions in the same order (ties, infinities and NaN included)."""
    rng = np.random.default_rng(n)
    a = rng.integers(0, 50, size=(6, n)).astype(np.float32)        # many ties
    a[rng.random(a.shape) < 0.05] = np.inf
    a[0, : n // 2] = np.nan
    for k in (1, 3, n // 2, n):
        assert np.array_equal(partition_rows(a, k), np.argpartition(a, k - 1, axis=1)[:, :k])
    s = np.sort(np.where(np.isnan(a[1]), np.inf, a[1]))
    assert np.sort(a[1][partition_rows(a, 3)[1]]).tolist() == s[:3].tolist()    # the 3 smallest
    for bad in (0, n + 1):
        with pytest.raises(ValueError):
            partition_rows(a, bad)


def test_top_k_among_ranks_only_the_given_rows_as_top_k_would():
    """By hand: rows 1, 3, 4 of [0, .5, 0, .9, .5]; 0.9 first, then the 0.5 tie to the lower row,
    whether the rows are partitioned (more than k) or sorted whole (k or fewer)."""
    s = np.array([0.0, 0.5, 0.0, 0.9, 0.5])
    assert top_k_among(s, np.array([1, 3, 4]), 2).tolist() == [3, 1]
    assert top_k_among(s, np.array([1, 3, 4]), 3).tolist() == [3, 1, 4]
    assert top_k_among(s, np.array([1, 3, 4]), 10).tolist() == [3, 1, 4]
    assert top_k_among(s, np.array([], dtype=np.int64), 3).tolist() == []
    # against top_k over the whole vector with every other row masked out (BM25-like ties)
    rng = np.random.default_rng(0)
    for n, m, k in ((1000, 300, 50), (1000, 300, 300), (1000, 300, 1000), (500, 10, 3)):
        s = np.round(rng.gamma(2.0, 2.0, n), 1)
        rows = np.sort(rng.choice(n, m, replace=False))
        masked = np.full(n, -np.inf)
        masked[rows] = s[rows]
        assert top_k_among(s, rows, k).tolist() == top_k(masked, k).tolist(), (n, m, k)
