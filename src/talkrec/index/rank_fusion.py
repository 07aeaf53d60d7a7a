"""Reciprocal rank fusion (Cormack, Clarke & Buettcher 2009) of ranked lists."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def rrf_scores(rankings: Sequence[np.ndarray], n_items: int, *, c: float = 60.0,
               weights: Sequence[float] | None = None) -> np.ndarray:
    r"""Fused score of every item: :math:`s(i) = \sum_r w_r / (c + \mathrm{rank}_r(i))`
    (ranks start at 1; an item absent from a list gets nothing from it).

    ``rankings`` are 1-D arrays of item positions, best first.
    """
    w = [1.0] * len(rankings) if weights is None else [float(x) for x in weights]
    if len(w) != len(rankings):
        raise ValueError(f"{len(rankings)} rankings but {len(w)} weights")
    s = np.zeros(n_items, dtype=np.float64)
    for wr, r in zip(w, rankings):
        r = np.asarray(r, dtype=np.int64)
        s[r] += wr / (c + np.arange(1, len(r) + 1))
    return s


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` largest finite scores, best first (ties by position)."""
    finite = np.flatnonzero(np.isfinite(scores))
    k = min(k, len(finite))
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    cand = finite[np.argpartition(-scores[finite], k - 1)[:k]] if k < len(finite) else finite
    return cand[np.lexsort((cand, -scores[cand]))]
