"""Playlist continuation and playlist generation from text (paper 001 section 4.3).

Coherence of a playlist is measured as the mean pairwise cosine similarity of its items in
the fused space (``coherence``), relevance as the mean cosine of its items to the query
(``relevance``). Generation is a greedy walk over a candidate pool of the query's nearest
items: each step adds the item maximising ``(1-c)*sim(query, x) + c*mean sim(x, chosen)``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError
from ..index.filters import Where
from ..index.store import l2_normalize
from ..limits import check_page, is_number
from .diversity import check as check_diversity, select as diversity_select
from .vectors import id_list

if TYPE_CHECKING:
    from .core import Space
    from .hits import Hit


def playlist_stats(V: np.ndarray, q: np.ndarray | None = None) -> dict[str, float]:
    """``coherence`` = mean pairwise cosine of the rows of ``V``; ``relevance`` = mean cosine to ``q``."""
    V = l2_normalize(V)
    n = len(V)
    out: dict[str, float] = {}
    if n >= 2:
        S = V @ V.T
        out["coherence"] = float((S.sum() - np.trace(S)) / (n * (n - 1)))
    if q is not None and n:
        out["relevance"] = float((V @ l2_normalize(q)).mean())
    return out


@dataclass(frozen=True)
class Continuation:
    """A playlist continuation: the new ``items``, the ``seeds`` once each in order, the
    coherence of seeds + items and of the seeds alone (``None`` below two items), notes, and
    what the scores are: ``"session"`` when the session model ranked the candidates (it knows
    a seed; items it does not know follow with their cosines), else ``"cosine"``."""

    items: list["Hit"]
    seeds: list[str]
    coherence: float | None
    coherence_seeds: float | None
    notes: list[str]
    score_kind: str = "cosine"


def continue_playlist(space: "Space", seeds: Sequence[str], k: int, *, where: Where = None, recency: float = 0.7,
                      diversity: float = 0.0, max_per_artist: int | None = None, artist_field: str = "artist",
                      method: str = "auto") -> Continuation:
    """The next ``k`` items for an ordered playlist: never a seed, never an item twice, at
    most ``max_per_artist`` items per value of ``artist_field`` (a space without that field
    is a catalog of artists: each item is its own artist, which a note says). ``method``:
    ``"knn"`` the seeds' recency-weighted mean vector, ``"session"`` the attached session
    model (one must be), ``"auto"`` the session model where one is attached."""
    check_page(k)
    if method not in ("auto", "knn", "session"):
        raise InputError(f"method must be auto, knn or session, got {method!r}", field="method")
    session = None if method == "knn" else space.session_model()
    if method == "session" and session is None:
        raise InputError("no session model is attached to this space (talkrec attach-session MODEL_DIR)", field="method")
    if not id_list(seeds):
        raise InputError("a playlist continuation needs at least one seed item", field="items")
    if not is_number(recency) or not 0 < recency <= 1:
        raise InputError(f"recency must be a number in (0, 1], got {recency!r}", field="recency")
    check_diversity(diversity, max_per_artist)
    notes: list[str] = []
    max_per = None
    if max_per_artist is not None:
        if artist_field in space.index.columns:
            max_per = (artist_field, max_per_artist)
        else:
            notes.append(f"no '{artist_field}' field: each item is its own artist, so results never repeat an "
                         "artist")
    seeds = list(dict.fromkeys(str(s) for s in seeds))
    w = np.array([recency ** (len(seeds) - 1 - i) for i in range(len(seeds))], dtype=np.float32)
    if session is not None and not any(session.knows(x) for x in seeds):
        session = None                       # it knows none of the seeds: kNN alone
    pool = _pool(space, seeds, space.items_vector(seeds, w), max(k * 5, 50), where, session)
    chosen = diversity_select(space, pool, k, diversity, max_per)
    V = space.index.rows([space.index.position(i) for i in seeds + [c for c, _ in chosen]])
    return Continuation(space.hits(chosen), seeds, playlist_stats(V).get("coherence"),
                        playlist_stats(V[:len(seeds)]).get("coherence"), notes,
                        "cosine" if session is None else "session")


def _pool(space: "Space", seeds: list[str], q: np.ndarray, n: int, where: Where,
          session: Any) -> list[tuple[str, float]]:
    """Candidates: the session model's ranking of what it knows, kNN items behind (new
    items, filters); kNN alone without a session model."""
    pool = space.index.search(q, n, where=where, exclude=seeds)
    if session is None:
        return pool
    allowed = space.index.mask(where)
    ranked = []
    for iid, s in session.continue_session(seeds, n, exclude=set(seeds)):
        p = space.index.position(iid)
        if p is not None and (allowed is None or allowed[p]):
            ranked.append((iid, s))
    seen = {i for i, _ in ranked}
    return ranked + [(i, s) for i, s in pool if i not in seen]


def _check_generate(n: Any, coherence: Any, pool: Any) -> None:
    """``n`` in [1, 500], ``pool`` a positive integer, ``coherence`` a number in [0, 1]."""
    for name, v in (("n", n), ("pool", pool)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise InputError(f"{name} must be a positive integer, got {v!r}", field=name)
    if n > 500:
        raise InputError(f"n must be in [1, 500], got {n}", field="n")
    if not is_number(coherence) or not 0 <= coherence <= 1:
        raise InputError(f"coherence must be a number in [0, 1], got {coherence!r}", field="coherence")


def generate_playlist(space: "Space", text: str, n: int, *, where: Where = None, coherence: float = 0.5,
                      pool: int = 200) -> tuple[list["Hit"], dict[str, float]]:
    """``n`` items from the query's ``max(pool, n)`` nearest (the HTTP API asks for
    ``pool >= n``); ``coherence`` in [0, 1] weighs coherence against relevance."""
    _check_generate(n, coherence, pool)
    q = space.text_query_vector(text)
    cands = space.search(text, max(pool, n), where=where)
    if not cands:
        return [], {}
    ids = [h.item_id for h in cands]
    V = space.index.rows([space.index.position(i) for i in ids])
    rel = np.array([h.score for h in cands], dtype=np.float32)
    rel = (rel - rel.min()) / max(float(rel.max() - rel.min()), 1e-9)
    chosen = [0]
    csum = V @ V[0]
    left = np.ones(len(ids), dtype=bool)
    left[0] = False
    while len(chosen) < min(n, len(ids)):
        score = (1 - coherence) * rel + coherence * (csum / len(chosen))
        score[~left] = -np.inf
        j = int(np.argmax(score))
        chosen.append(j)
        left[j] = False
        csum += V @ V[j]
    hits = [cands[j] for j in chosen]
    stats = playlist_stats(V[chosen], q)
    top = playlist_stats(V[: len(chosen)], q)
    stats["coherence_plain_topn"] = top.get("coherence", float("nan"))
    stats["relevance_plain_topn"] = top.get("relevance", float("nan"))
    return hits, stats
