"""Diverse lists: a ranked pool of candidates re-ranked greedily by maximal marginal relevance
(MMR, Carbonell & Goldstein 1998) with at most ``n`` items per value of a metadata field (an
artist cap), after less popular items are moved up by ``novelty``. Playlist continuations,
``Space.recommend(diversity=..., novelty=..., max_per_artist=...)`` and
``Space.similar(novelty=...)`` choose their items here.

With ``novelty > 0`` (``recommend`` and ``similar``, whose pools' scores are on one scale) the pool is
first put in the order of ``(1 - novelty) * (s - s_min) / (s_max - s_min) + novelty * nov``
(first in the pool on ties): its scores ``s`` scaled to [0, 1] over the pool, mixed with each
candidate's novelty ``nov`` in [0, 1] (its scaled self-information among the space's users,
:mod:`.popularity`: 1 for an item nobody has). Scaled scores rather than ranks keep the items
the ranking is sure of: on MovieLens at ``k=200`` from a pool of 1000 they lose less nDCG for
the same novelty (docs/evaluation.md, "Trading accuracy for novelty").

Then, at each step the candidate with the highest ``(1 - diversity) * rel - diversity *
max_sim`` is taken, where ``rel = 1 - j / len(pool)`` is the candidate's rank ``j`` in that
order (a playlist pool's scores may not be on one scale: a session model's and kNN's) and
``max_sim`` its highest fused-space cosine to the items taken so far (first of the highest on
ties); a candidate whose field value has reached the cap is dropped. ``diversity = novelty =
0`` keeps the pool's order. Hits keep the scores of the ranking they came from.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from ..errors import InputError
from ..limits import is_number
from .popularity import novelty_of

if TYPE_CHECKING:
    from .core import Space

__all__ = ["POOL", "by_novelty", "check", "rerank", "select"]

#: the candidates re-ranked when a call names no ``pool`` (at least ``offset + k``)
POOL = 100


def check(diversity: Any, max_per_artist: Any, novelty: Any = 0.0) -> None:
    """``diversity`` and ``novelty`` numbers in [0, 1) and ``max_per_artist`` ``None`` or a
    positive integer."""
    for name, value in (("diversity", diversity), ("novelty", novelty)):
        if not is_number(value) or not 0 <= value < 1:
            raise InputError(f"{name} must be a number in [0, 1), got {value!r}", field=name)
    if max_per_artist is not None and (isinstance(max_per_artist, bool) or not isinstance(max_per_artist, (int, np.integer))
                                       or max_per_artist < 1):
        raise InputError(f"max_per_artist must be a positive integer, got {max_per_artist!r}", field="max_per_artist")


def select(space: "Space", pool: Sequence[tuple[str, float]], k: int, diversity: float,
           max_per: tuple[str, int] | None, novelty: float = 0.0) -> list[tuple[str, float]]:
    """At most ``k`` of ``pool`` (``(item_id, score)`` best first), each once: the pool put in
    order by its scores mixed with ``novelty``, then MMR with ``diversity`` and at most
    ``max_per=(field, n)`` per value of ``field`` (module docstring). Each candidate's highest
    cosine to the items taken is kept up to date as items are taken (one product per item
    taken, not one per candidate and step)."""
    idx = space.index
    if novelty > 0 and len(pool):
        pool = by_novelty(space, pool, novelty)
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


def by_novelty(space: "Space", pool: Sequence[tuple[str, float]], novelty: float) -> list[tuple[str, float]]:
    """``pool`` in the order of its scores scaled to [0, 1] mixed with novelty (module
    docstring); a score that is not finite counts as the pool's lowest."""
    s = np.array([score for _, score in pool], dtype=np.float64)
    fin = s[np.isfinite(s)]
    lo, hi = (float(fin.min()), float(fin.max())) if len(fin) else (0.0, 0.0)
    s = np.where(np.isfinite(s), s, lo)
    scaled = (s - lo) / (hi - lo) if hi > lo else np.ones(len(s))
    mix = (1 - novelty) * scaled + novelty * novelty_of(space, [iid for iid, _ in pool])
    return [pool[j] for j in np.lexsort((np.arange(len(pool)), -mix))]


def rerank(space: "Space", ranked: Callable[[int], list[Any]], k: int, offset: int, *, diversity: float,
           max_per_artist: int | None, artist_field: str, pool: int | None, novelty: float = 0.0) -> list[Any]:
    """Hits ``offset`` to ``offset + k`` of the list chosen from the first ``pool`` of
    ``ranked(pool)`` (hits, best first) with ``diversity``, ``novelty`` and ``max_per_artist``:
    the pool does not depend on the page, so pages within it do not overlap (``None``:
    :data:`POOL`, or ``offset + k`` when that is more). A space without ``artist_field`` is a
    catalog of artists (each item its own)."""
    check(diversity, max_per_artist, novelty)
    pool = max(POOL, offset + k) if pool is None else pool
    if isinstance(pool, bool) or not isinstance(pool, (int, np.integer)) or pool < offset + k:
        raise InputError(f"pool must be an integer of at least offset + k ({offset + k}), got {pool!r}: the list "
                         "is chosen from the pool", field="pool")
    hits = ranked(int(pool))
    by_id = {h.item_id: h for h in hits}
    max_per = (artist_field, max_per_artist) if max_per_artist is not None and artist_field in space.index.columns \
        else None
    chosen = select(space, [(h.item_id, h.score) for h in hits], offset + k, diversity, max_per, novelty)
    return [by_id[iid] for iid, _ in chosen[offset:]]
