"""``Space.recommend(strategy="best_score")``: each candidate scored by the history item it is
nearest to, not by the history's mean.

The mean of a history that spans two tastes (jazz and metal) lies between them, where neither
is; ``best_score`` ranks every item by its largest cosine to any history item in the fused
space, so both tastes are served, each by the items closest to it (Qdrant's ``best_score``
recommend strategy, the one its users ask for beside the average vector). With negative
examples it takes Qdrant's rule: an item nearer some history item than every negative scores
that cosine; one nearer a negative scores minus its largest cosine to the negatives, below
every item the history wins; with negatives alone, every item scores so (the items least like
all of them first). The rule has no weight: ``negative_weight`` does not apply.

Exact over every live row, with chunked matrix products (:data:`CHUNK` history items at a time;
17,632 x 200 Last.fm vectors against 50 history items: a few ms).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError
from ..limits import check_page
from ..ranking import top_k
from .vectors import item_vectors

if TYPE_CHECKING:
    from ..index.filters import Where
    from ..index.snapshot import Snapshot
    from .core import Space

__all__ = ["best_score_rows", "nearest_cosines"]

#: history vectors per matrix product
CHUNK = 64


def nearest_cosines(snap: "Snapshot", Q: np.ndarray) -> np.ndarray:
    """Per row of ``snap``, its largest cosine to the unit vectors ``Q`` (one a row; float64,
    ``-inf`` for dead rows): :math:`s(j) = \\max_{h} v_j \\cdot q_h`."""
    base, delta = snap.gen.vectors, snap.delta.vectors[:snap.m]
    out = np.full(snap.n_rows, -np.inf)
    for a in range(0, len(Q), CHUNK):
        Qc = Q[a:a + CHUNK].T
        out[:snap.n0] = np.maximum(out[:snap.n0], (base @ Qc).max(axis=1))
        if snap.m:
            out[snap.n0:] = np.maximum(out[snap.n0:], (delta @ Qc).max(axis=1))
    return np.where(snap.live, out, -np.inf)


def best_score_rows(space: "Space", hist: Sequence[str], neg: Sequence[str], k: int, where: "Where",
                    offset: int, exclude: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The top ``k`` rows (after ``offset``) by ``best_score`` for the history ``hist`` and the
    negative examples ``neg`` (module docstring), filtered by ``where``, ``exclude`` left out;
    and their scores."""
    check_page(k, offset)
    if not hist and not neg:
        raise InputError("need at least one item (or negative examples)", field="items")
    snap = space.index
    P, N = (item_vectors(snap, list(dict.fromkeys(ids))) for ids in (hist, neg))   # unknown: NotFoundError
    s = nearest_cosines(snap, P) if len(P) else np.full(snap.n_rows, -np.inf)
    if len(N):
        n = nearest_cosines(snap, N)
        s = np.where(s > n, s, -n)                      # a dead row: +inf, left out below
    allowed = snap.mask(where) & np.isfinite(s)
    excl = [p for p in (snap.position(e) for e in exclude) if p is not None]
    if excl:
        allowed = allowed.copy()
        allowed[excl] = False
    top = top_k(s, k + offset, allowed=allowed)[offset:]
    return top, s[top]
