"""A snapshot's exact top-k lists by cosine: the fused vectors (:func:`top_rows`) and a
text-model matrix (:func:`text_top`); and the top of a blend of the z-scored fused cosines
with other scores (:func:`blend_top`, what ``Space.recommend`` ranks by).

With the generation's int8 copies (:meth:`~talkrec.index.segments.Generation.int8`, made by a
serving process at warm-up) the base rows go through :class:`~talkrec.index.quantized.Int8TopK`
(a quarter of the bytes read, the same list up to ties within 1e-6); rows written since the
generation are few and scored in float32; without the copies, one float32 product over
every row. Either way the list is the exact top k."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..ranking import top_k
from .quantized import Int8TopK

if TYPE_CHECKING:
    from .snapshot import Snapshot

__all__ = ["MAX_CHANGES", "blend_ready", "blend_top", "text_top", "top_rows"]

#: rows changed since the generation (dead base rows + delta rows) up to which
#: :func:`blend_top` answers, or a sixteenth of the base rows where that is more: each is a
#: ``d``-term product per query, and the dead ones are gathered once per snapshot (beyond:
#: the float32 product, until compaction)
MAX_CHANGES = 1024


def top_rows(snap: "Snapshot", q: np.ndarray, need: int, allowed: np.ndarray,
             exclude: Sequence[int] = ()) -> tuple[np.ndarray, np.ndarray]:
    """The ``need`` rows where ``allowed`` (and not in ``exclude``) of highest fused cosine
    to ``q``, best first (ties: the lower row), and their cosines."""
    ix = snap.gen.int8(None)
    if ix is None:
        s = snap.scores(q)
        top = top_k(s, need, exclude=list(exclude), allowed=allowed)
        return top, s[top]
    ok = allowed.copy()
    ok[list(exclude)] = False
    return _merged(snap, ix, q, need, ok, snap.delta.vectors[:snap.m])


def text_top(snap: "Snapshot", key: str, q: np.ndarray, need: int,
             allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ``need`` rows where ``allowed`` of highest cosine in input ``key``'s text-model
    matrix (rows without a text never), best first, and those cosines: the top of
    :meth:`~talkrec.index.snapshot.Snapshot.text_scores`."""
    ix = snap.gen.int8(key)
    if ix is None:
        s = np.where(allowed, snap.text_scores(key, q), -np.inf)
        top = top_k(s, need)
        return top, s[top]
    _, has = snap.gen.text(key)
    if snap.m:
        Td, hasd = snap.delta.text(key, snap.m)
        Td, has = Td[:snap.m], np.concatenate([has, hasd[:snap.m]])
    else:
        Td = np.zeros((0, len(q)), np.float32)
    return _merged(snap, ix, q, need, allowed & has, Td)


def _merged(snap: "Snapshot", ix: Int8TopK, q: np.ndarray, need: int, ok: np.ndarray,
            delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The top ``need`` of the base rows (``ix``) and of the delta rows (``delta``, scored
    in float32) among the rows where ``ok``; ties to the lower row."""
    n0 = snap.n0
    rows, sims = ix.top(q, need, ok[:n0])
    if snap.m:
        ds = delta @ np.asarray(q, dtype=np.float32)
        dt = top_k(ds, need, allowed=ok[n0:])
        rows, sims = np.concatenate([rows, dt + n0]), np.concatenate([sims, ds[dt]])
        order = np.lexsort((rows, -sims))[:need]
        rows, sims = rows[order], sims[order]
    return rows, sims


def blend_ready(snap: "Snapshot") -> bool:
    """Whether :func:`blend_top` answers for ``snap``: the generation has its int8 copy of the
    fused vectors, at most :data:`MAX_CHANGES` (or ``n0 / 16``) rows changed since, and every
    delta row is finite."""
    if snap.gen.int8(None) is None or snap.changes > max(MAX_CHANGES, snap.n0 // 16):
        return False
    return bool(snap.memo("delta_finite", lambda: np.isfinite(snap.delta.vectors[:snap.m]).all()))


def _changed_rows(snap: "Snapshot") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The vectors of the dead base rows, and the live delta rows with their vectors: once
    per snapshot."""
    def make() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        dead = np.flatnonzero(~snap.live[:snap.n0])
        live_delta = np.flatnonzero(snap.live[snap.n0:])
        return snap.gen.vectors[dead], live_delta, np.ascontiguousarray(snap.delta.vectors[live_delta])
    return snap.memo("changed_rows", make)  # type: ignore[no-any-return]


def blend_top(snap: "Snapshot", q: np.ndarray, weight: float, rest: np.ndarray, drop: Sequence[int],
              need: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The ``need`` live rows not in ``drop`` with the largest ``weight * z_i + rest_i``, best
    first (ties: the lower row), and those totals; ``z_i = (s_i - mean) / std`` with ``s_i`` the
    row's fused cosine to ``q`` and the mean and (population) standard deviation over those same
    rows (a std below 1e-12 counts as 1). Requires :func:`blend_ready`.

    Equal, up to 1e-6, to a float32 product over every row z-scored and ranked, without it:
    the mean and variance come from the int8 copy's column sums and Gram matrix
    (:meth:`~talkrec.index.quantized.Int8TopK.moments`) corrected by the changed and dropped
    rows, and each base row's total gets an interval from its int8 score's certified bounds; only
    rows whose upper end reaches the ``need``-th lower end are scored in float32. ``None`` where
    the scores are nearly constant (the variance would be rounding noise): score every row then."""
    ix = snap.gen.int8(None)
    n0 = snap.n0
    q32 = np.asarray(q, dtype=np.float32)
    q64 = q32.astype(np.float64)
    dead_V, live_delta, delta_V = _changed_rows(snap)
    drop_rows = np.array(sorted({int(p) for p in drop if snap.live[p]}), dtype=np.int64)
    s_delta = delta_V @ q32                                   # float32, as Snapshot.scores
    s_drop = snap.rows(drop_rows).astype(np.float64) @ q64
    s_dead = (dead_V @ q32).astype(np.float64)
    c, G = ix.moments()
    n = n0 - len(s_dead) + len(s_delta) - len(s_drop)
    if n <= 0:
        return np.empty(0, dtype=np.int64), np.empty(0)
    sd64 = s_delta.astype(np.float64)
    mean = (c @ q64 - s_dead.sum() + sd64.sum() - s_drop.sum()) / n
    ex2 = (q64 @ G @ q64 - s_dead @ s_dead + sd64 @ sd64 - s_drop @ s_drop) / n
    var = ex2 - mean * mean
    if var < 1e-9 * max(ex2, 1e-300):
        return None
    sd = float(np.sqrt(var))
    sd = sd if sd > 1e-12 else 1.0

    def total(s: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return weight * ((s.astype(np.float64) - mean) / sd) + rest[rows]

    ok = snap.live[:n0].copy()
    ok[drop_rows[drop_rows < n0]] = False
    approx, err = ix.bounds(q32)
    a = weight / sd
    lo = a * (approx.astype(np.float64) - np.sign(a) * err) - a * mean + rest[:n0]
    hi = lo + 2 * abs(a) * err.astype(np.float64)
    delta_rows = live_delta + n0
    if len(drop_rows) and len(delta_rows) and drop_rows[-1] >= n0:
        keep = ~np.isin(delta_rows, drop_rows)
        delta_rows, s_delta = delta_rows[keep], s_delta[keep]
    t_delta = total(s_delta, delta_rows)
    pool = np.concatenate([lo[ok], t_delta])
    need = min(int(need), len(pool))
    if need <= 0:
        return np.empty(0, dtype=np.int64), np.empty(0)
    tau = np.partition(pool, len(pool) - need)[len(pool) - need]
    surv = np.flatnonzero(ok & (hi >= tau - 1e-9 * (1.0 + abs(tau))))
    s = (ix.X @ q32)[surv] if len(surv) > n0 // 3 else ix.X[surv] @ q32
    rows = np.concatenate([surv, delta_rows])
    tot = np.concatenate([total(s, surv), t_delta])
    order = top_k(tot, need)
    return rows[order], tot[order]
