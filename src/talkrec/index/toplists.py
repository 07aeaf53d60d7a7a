"""A snapshot's exact top-k lists by cosine: the fused vectors (:func:`top_rows`) and a
text-model matrix (:func:`text_top`).

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

__all__ = ["text_top", "top_rows"]


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
