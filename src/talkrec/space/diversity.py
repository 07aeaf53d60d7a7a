"""Diverse lists: a ranked pool of candidates re-ranked greedily by maximal marginal relevance
(MMR, Carbonell & Goldstein 1998) with at most ``n`` items per value of a metadata field (an
artist cap). Playlist continuations and ``Space.recommend(diversity=..., max_per_artist=...)``
choose their items here.

At each step the candidate with the highest ``(1 - diversity) * rel - diversity * max_sim``
is taken, where ``rel = 1 - j / len(pool)`` is the candidate's rank ``j`` in the pool (its
scores may not be on one scale: a session model's and kNN's) and ``max_sim`` its highest
fused-space cosine to the items taken so far (first of the highest on ties); a candidate
whose field value has reached the cap is dropped. ``diversity = 0`` keeps the pool's order.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from ..errors import InputError
from ..limits import is_number

if TYPE_CHECKING:
    from .core import Space

__all__ = ["check", "rerank", "select"]


def check(diversity: Any, max_per_artist: Any) -> None:
    """``diversity`` a number in [0, 1) and ``max_per_artist`` ``None`` or a positive integer."""
    if not is_number(diversity) or not 0 <= diversity < 1:
        raise InputError(f"diversity must be a number in [0, 1), got {diversity!r}", field="diversity")
    if max_per_artist is not None and (isinstance(max_per_artist, bool) or not isinstance(max_per_artist, (int, np.integer))
                                       or max_per_artist < 1):
        raise InputError(f"max_per_artist must be a positive integer, got {max_per_artist!r}", field="max_per_artist")


def select(space: "Space", pool: Sequence[tuple[str, float]], k: int, diversity: float,
           max_per: tuple[str, int] | None) -> list[tuple[str, float]]:
    """At most ``k`` of ``pool`` (``(item_id, score)`` best first), each once, by MMR with
    ``diversity`` and at most ``max_per=(field, n)`` per value of ``field`` (module docstring).
    Each candidate's highest cosine to the items taken is kept up to date as items are taken
    (one product per item taken, not one per candidate and step)."""
    idx = space.index
    ids = [iid for iid, _ in pool]
    rel = 1.0 - np.arange(len(pool)) / max(len(pool), 1)
    left = np.ones(len(pool), dtype=bool)
    V = idx.rows([idx.position(i) for i in ids]) if diversity > 0 and len(pool) else None
    max_sim = np.full(len(pool), -np.inf, dtype=np.float32)
    chosen: list[tuple[str, float]] = []
    taken: set[str] = set()
    counts: dict[Any, int] = {}
    while left.any() and len(chosen) < k:
        if V is not None and chosen:
            mmr = (1 - diversity) * rel - diversity * max_sim.astype(np.float64)
            j = int(np.argmax(np.where(left, mmr, -np.inf)))
        else:
            j = int(np.argmax(left))                               # the first candidate left
        left[j] = False
        iid = ids[j]
        if iid in taken:
            continue
        if max_per is not None:
            field, limit = max_per
            val = idx.value(idx.position(iid), field)
            key = tuple(val) if isinstance(val, list) else val
            if counts.get(key, 0) >= limit:
                continue
            counts[key] = counts.get(key, 0) + 1
        taken.add(iid)
        chosen.append(pool[j])
        if V is not None:
            np.maximum(max_sim, V @ V[j], out=max_sim)
    return chosen


def rerank(space: "Space", ranked: Callable[[int], list[Any]], k: int, offset: int, *, diversity: float,
           max_per_artist: int | None, artist_field: str, pool: int) -> list[Any]:
    """Hits ``offset`` to ``offset + k`` of the diverse list chosen from the first ``pool`` of
    ``ranked(pool)`` (hits, best first): the pool does not depend on the page, so pages do not
    overlap. A space without ``artist_field`` is a catalog of artists (each item its own)."""
    check(diversity, max_per_artist)
    if isinstance(pool, bool) or not isinstance(pool, (int, np.integer)) or pool < offset + k:
        raise InputError(f"pool must be an integer of at least offset + k ({offset + k}), got {pool!r}: the list "
                         "is chosen from the pool", field="pool")
    hits = ranked(int(pool))
    by_id = {h.item_id: h for h in hits}
    max_per = (artist_field, max_per_artist) if max_per_artist is not None and artist_field in space.index.columns \
        else None
    chosen = select(space, [(h.item_id, h.score) for h in hits], offset + k, diversity, max_per)
    return [by_id[iid] for iid, _ in chosen[offset:]]
