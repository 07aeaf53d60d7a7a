"""Ranking primitives shared by search, evaluation and sessions: top-k and reciprocal rank fusion.

:func:`top_k` is the one top-k of the project: descending score, ties broken by the lower
position, non-finite scores never returned, optional exclusions and an allowed-items mask,
for one score vector or a batch of them. :func:`rrf_scores` is reciprocal rank fusion
(Cormack, Clarke & Buettcher 2009), the product's hybrid search.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["partition_rows", "rrf_depth", "rrf_scores", "top_k", "top_k_among", "top_then"]

#: rows at least this wide are partitioned one at a time (:func:`partition_rows`)
_ROW_BY_ROW = 4096


def top_k(scores: np.ndarray, k: int, *, exclude: Sequence[int] | Sequence[Sequence[int]] | None = None,
          allowed: np.ndarray | None = None) -> np.ndarray:
    """Positions of the ``k`` largest scores, best first.

    Ties are broken by the lower position (deterministic, also at the k-th place), and a
    position is never returned when its score is not finite (NaN, or ``-inf`` from a mask),
    when ``allowed`` is False there, or when it is excluded.

    * ``scores`` of shape ``(n,)``: returns a 1-D int64 array of at most ``k`` positions
      (fewer when fewer scores are eligible). ``exclude`` is a sequence of positions.
    * ``scores`` of shape ``(m, n)`` (a batch, one query per row): returns an int64 array of
      shape ``(m, k)``; a row with fewer than ``k`` eligible positions is padded at its end
      with ``-1``. ``exclude[r]`` lists the positions removed for row ``r``.

    ``allowed`` is a boolean mask broadcastable to ``scores`` (``(n,)`` applies to every row).
    The input is never modified.

    >>> top_k(np.array([0.2, 0.9, 0.2, -np.inf]), 3).tolist()
    [1, 0, 2]
    >>> top_k(np.array([[1.0, 3.0, 2.0], [5.0, 5.0, np.nan]]), 3, exclude=[[1], []]).tolist()
    [[2, 0, -1], [0, 1, -1]]
    """
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 0:
        raise ValueError(f"k must be a non-negative integer, got {k!r}")
    S = np.asarray(scores)
    if S.ndim not in (1, 2):
        raise ValueError(f"scores must be 1-D or 2-D, got shape {S.shape}")
    neg = _negated_keys(S, allowed)
    if S.ndim == 1:
        if exclude is not None and len(exclude):
            neg[np.asarray(exclude, dtype=np.int64)] = np.inf
        return _top_row(neg, int(k))
    if exclude is not None:
        if len(exclude) != len(S):
            raise ValueError(f"exclude has {len(exclude)} rows for {len(S)} score rows")
        for r, ex in enumerate(exclude):
            if len(ex):
                neg[r, np.asarray(ex, dtype=np.int64)] = np.inf
    return _top_rows(neg, int(k))


def _negated_keys(S: np.ndarray, allowed: np.ndarray | None) -> np.ndarray:
    """A new array of ``-score`` (ascending = best first) with ``+inf`` where a position is
    not eligible (non-finite score or not allowed)."""
    if not np.issubdtype(S.dtype, np.floating):
        S = S.astype(np.float64)
    ok = np.isfinite(S)
    if allowed is not None:
        ok &= np.asarray(allowed, dtype=bool)
    return np.where(ok, -S, np.inf)


def _top_row(neg: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k of one row of negated keys (``inf`` = not eligible)."""
    elig = np.flatnonzero(neg < np.inf)
    k = min(k, len(elig))
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    if k < len(elig):
        v = neg[elig]
        thr = np.partition(v, k - 1)[k - 1]          # the k-th best key
        better = elig[v < thr]
        tied = elig[v == thr][: k - len(better)]    # lower positions win the tie at the cut
        elig = np.concatenate([better, tied])
    return elig[np.lexsort((elig, neg[elig]))].astype(np.int64)


def top_k_among(scores: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """:func:`top_k` of ``scores`` restricted to ``rows`` (ascending positions whose scores are
    finite): the same positions in the same order (ties to the lower position), read from those
    rows only. What a score vector that is ``-inf`` or 0 almost everywhere (BM25, RRF) needs:
    ranking its 2,000 reached rows rather than its 17,632 costs a third. More than twice ``k``
    rows are partitioned first; fewer are put in order by one stable sort (of ~k rows, a third
    of a partition's cost).

    >>> top_k_among(np.array([0.0, 0.5, 0.0, 0.9, 0.5]), np.array([1, 3, 4]), 2).tolist()
    [3, 1]
    """
    rows = np.asarray(rows, dtype=np.int64)
    v = np.asarray(scores)[rows]
    return rows[top_k(v, k) if len(rows) > 2 * k else np.argsort(-v, kind="stable")[:k]]


def top_then(scores: np.ndarray, rows: np.ndarray, k: int, then: Callable[[int], np.ndarray]) -> np.ndarray:
    """:func:`top_k_among` ``rows``, then, while fewer than ``k``, the positions of ``then(k)``
    (``k`` positions, best first) that are not among them, in that order. A reciprocal rank
    fusion reaches only its lists' rows, each list read to a fixed depth; ``then`` (the first
    list read deeper) continues the same ranking past them, so that the top ``k`` never
    depends on how many are asked for and pages never overlap.

    >>> top_then(np.array([0.0, 0.5, 0.0, 0.9]), np.array([1, 3]), 3, lambda k: np.array([3, 2, 0])[:k]).tolist()
    [3, 1, 2]
    """
    top = top_k_among(scores, rows, k)
    if len(top) < k:
        more = np.asarray(then(k), dtype=np.int64)
        top = np.concatenate([top, more[~np.isin(more, top)][:k - len(top)]])
    return top


def partition_rows(a: np.ndarray, k: int) -> np.ndarray:
    """The positions of each row's ``k`` smallest values, unordered: exactly
    ``np.argpartition(a, k - 1, axis=1)[:, :k]`` (the same positions in the same order).

    Wide rows (4,096 values or more) are partitioned one at a time: numpy's call over the whole
    matrix first fills an int64 index array as large as ``a`` (144 MB for 1,024 x 17,632), and
    its page faults cost more than the selection (random C-ordered 1,024 x 17,632, k 200: 0.56 s
    whole, 0.05 s row by row; 8 x 17,632, k 10: 0.35 / 0.24 ms). Give a C-ordered ``a``: a row of
    a column-major matrix is read with a stride, 5-10x slower."""
    m, n = a.shape
    if not 0 < k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}")
    if n < _ROW_BY_ROW:
        return np.argpartition(a, k - 1, axis=1)[:, :k]
    out = np.empty((m, k), dtype=np.intp)
    for r in range(m):
        out[r] = np.argpartition(a[r], k - 1)[:k]
    return out


def _top_rows(neg: np.ndarray, k: int) -> np.ndarray:
    """Batched top-k: argpartition per row, exact ``_top_row`` for rows tied at the cut."""
    m, n = neg.shape
    out = np.full((m, k), -1, dtype=np.int64)
    kk = min(k, n)
    if kk == 0 or m == 0:
        return out
    if kk < n:
        part = partition_rows(neg, kk)
    else:
        part = np.broadcast_to(np.arange(n), (m, n)).copy()
    vals = np.take_along_axis(neg, part, axis=1)
    order = np.lexsort((part, vals), axis=1)
    top = np.take_along_axis(part, order, axis=1)
    top[~np.isfinite(np.take_along_axis(vals, order, axis=1))] = -1
    out[:, :kk] = top
    if kk < n:
        thr = vals.max(axis=1)
        cut = np.isfinite(thr)
        n_tied_all = (neg == thr[:, None]).sum(axis=1)
        n_tied_top = (vals == thr[:, None]).sum(axis=1)
        for r in np.flatnonzero(cut & (n_tied_all > n_tied_top)):
            best = _top_row(neg[r], kk)
            out[r] = -1
            out[r, :len(best)] = best
    return out


def rrf_scores(rankings: Sequence[np.ndarray], n_items: int, *, c: float = 60.0,
               weights: Sequence[float] | None = None) -> np.ndarray:
    r"""Fused score of every item: :math:`s(i) = \sum_r w_r / (c + \mathrm{rank}_r(i))`
    (ranks start at 1; an item absent from a list gets nothing from it).

    ``rankings`` are 1-D arrays of distinct item positions in ``[0, n_items)``, best first: a
    batched :func:`top_k` row's ``-1`` padding must be cut off first (numpy would read it as
    the last item, which would score), and is refused.
    """
    w = [1.0] * len(rankings) if weights is None else [float(x) for x in weights]
    if len(w) != len(rankings):
        raise ValueError(f"{len(rankings)} rankings but {len(w)} weights")
    s = np.zeros(n_items, dtype=np.float64)
    for wr, r in zip(w, rankings):
        r = np.asarray(r, dtype=np.int64)
        if len(r) and r.min() < 0:
            raise ValueError(f"rankings hold item positions >= 0, got {int(r.min())} (cut top_k's -1 padding off)")
        s[r] += wr / (c + np.arange(1, len(r) + 1))
    return s


def rrf_depth(need: int, *, c: float = 60.0, weight: float = 1.0, others: float = 0.0) -> int | None:
    r"""How deep a list of weight ``weight`` must be read for the top ``need`` of
    :func:`rrf_scores` over it and other lists of total weight ``others`` (read to any depth)
    to be exactly the top, with the same scores, of the fusion over the whole list; ``None``
    when nothing short of the whole list is enough.

    The list's own first ``need`` items score at least :math:`w / (c + need)` each, so the
    ``need``-th best fused score is at least that. An item below depth :math:`D` scores at
    most :math:`w / (c + D + 1) + o / (c + 1)`; for the smallest :math:`D` that puts this below
    :math:`w / (c + need)` (plus one), such an item can neither enter the top nor tie with
    it, and every item of the top lies within depth :math:`D`, so its score is unchanged.

    >>> rrf_depth(10, c=60.0, weight=1.0, others=0.5)      # 1/(60+106) < 1/70 - 0.5/61
    105
    >>> rrf_depth(200, c=60.0, weight=1.0, others=0.5) is None
    True
    """
    if need < 1 or weight <= 0 or others < 0 or c < 0:
        raise ValueError(f"rrf_depth needs need >= 1, weight > 0, others >= 0, c >= 0; got {need}, {weight}, "
                         f"{others}, {c}")
    gap = weight / (c + need) - others / (c + 1)
    if gap <= 0:
        return None
    return max(math.floor(weight / gap - c) + 1, need)
