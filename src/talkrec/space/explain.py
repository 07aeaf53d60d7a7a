r"""Explanations: which tags and which modalities make two items close, and where the second
stands in what ``Space.similar`` serves for the first.

The fused vector of an item is ``s / |s|`` with ``s = sum_m w_m z_m`` over its modalities'
normalized projections ``z_m``, ``w_m`` the space's ``modality_weights`` (1 when it has none).
Hence ``cos(a, b) = sum_{m,n} <w_m z_a^m, w_n z_b^n> / (|s_a| |s_b|)``: each modality pair's term
is its exact share of the similarity.

What ``similar`` serves is that cosine's kNN only under ``similar.strategy: knn``; under
``rrf`` it fuses the fused list with the item's EASE list and its BM25 list
(:mod:`.strategies`), so :func:`explain` also gives ``b``'s rank in ``a``'s served list and,
per fused list, ``b``'s rank there and its part :math:`w / (c + \mathrm{rank})` of the score.
:func:`explain_search` does the same for a search: an item's place in what ``Space.search``
serves for a text, the hybrid lists' ranks and parts, and the query's BM25 terms it matches.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..fusion.model import modality_weight
from ..index.store import checked_query
from ..limits import K_MAX
from .popularity import novelty_setting
from .search import _counted_terms, check_mode, check_text, hybrid_lists, search_score_kind
from .strategies import score_kind, similar_lists

if TYPE_CHECKING:
    from .core import Space


def _projections(space: "Space", item_id: str) -> dict[str, np.ndarray]:
    """The item's normalized projection per modality it has (mean over text views), times the
    modality's weight in the fused mean (``modality_weights``, as the build and cold start
    combine them: a modality the weights leave out weighs 0)."""
    weights = space.config.get("modality_weights") or None
    out = {}
    for m in space.modalities:
        rows = space.raw_input(item_id, m)
        zs = [space.fusion.project(m, r) for r in rows if not np.isnan(r).any()]
        if zs:
            out[m] = np.mean(zs, axis=0) * modality_weight(weights, m)
    return out


def explain(space: "Space", a: str, b: str) -> dict[str, Any]:
    """Why ``a`` and ``b`` are close: their cosine, shared tags and each modality pair's share."""
    ia, ib = space.item(a), space.item(b)
    va, vb = space.item_vector(a), space.item_vector(b)
    za, zb = _projections(space, a), _projections(space, b)
    contrib: dict[str, float] = {}
    if za and zb:
        sa, sb = sum(za.values()), sum(zb.values())
        denom = float(np.linalg.norm(sa) * np.linalg.norm(sb)) or 1.0
        for m, x in za.items():
            for n, y in zb.items():
                contrib[f"{m}~{n}"] = float(x @ y) / denom
    ta = [t for t in (ia.get("tags") or [])]
    tb = set(ib.get("tags") or [])
    shared = [t for t in ta if t in tb]
    return {"a": a, "b": b, "names": {"a": str(ia.get("name", a)), "b": str(ib.get("name", b))},
            "cosine": float(va @ vb), "shared_tags": shared[:20],
            "modality_contributions": dict(sorted(contrib.items(), key=lambda kv: -kv[1])),
            "modalities": {"a": sorted(za), "b": sorted(zb)}, "similar": served(space, a, b)}


def served(space: "Space", a: str, b: str) -> dict[str, Any]:
    r"""Where ``b`` stands in ``space.similar(a)`` as served (no filter, the space's default
    ``novelty``): ``rank`` (from 1; ``None`` past the first :data:`~talkrec.limits.K_MAX`, or
    for ``b == a``) and ``score``; ``strategy`` (``"rrf"`` or ``"cosine"``, the fused space's
    kNN); ``novelty``; and under ``rrf``, per fused list of weight > 0 (``fused``, ``cf``:
    EASE, ``content``: a cold item's list by content, ``lexical``: BM25), ``b``'s ``rank``
    there (``None``: not in it) and its ``part`` :math:`w / (c + \mathrm{rank})` of the RRF
    score (the parts add up to the score when ``novelty`` is 0)."""
    hits = space.similar(a, k=K_MAX)
    rank = next((i + 1 for i, h in enumerate(hits) if h.item_id == b), None)
    out: dict[str, Any] = {"strategy": score_kind(space, "similar"), "rank": rank,
                           "score": float(hits[rank - 1].score) if rank else None,
                           "novelty": novelty_setting(space, "similar", None), "lists": []}
    if out["strategy"] != "rrf" or a == b:
        return out
    snap = space.index
    lists, c, _, _ = similar_lists(space, snap, a, checked_query(space.item_vector(a), snap.dim, 1, 0), None)
    pb = snap.position(b)
    for name, (rows, w) in lists.items():
        if w > 0:
            at = np.flatnonzero(rows == pb)
            r = int(at[0]) + 1 if len(at) else None
            out["lists"].append({"list": name, "weight": w, "rank": r, "part": w / (c + r) if r else 0.0})
    return out


def explain_search(space: "Space", text: str, item_id: str, mode: str | None = None) -> dict[str, Any]:
    r"""Where ``item_id`` stands in ``space.search(text, mode=mode)`` as served (no filter):
    ``rank`` (from 1; ``None`` past the first :data:`~talkrec.limits.K_MAX`), ``score``, the
    ``mode`` used and its ``score_kind``; under ``hybrid``, per fused list (``fused``: the query
    projected into the fused space, ``text``: the text model, ``lexical``: BM25) the item's
    ``rank`` there and its ``part`` :math:`w / (c + \mathrm{rank})` of the score (they add up
    to it); ``terms``: the query's BM25 terms the item's text has, each with its part of the
    item's BM25 score, largest first; ``cosine``: the query's and the item's in the fused space."""
    check_text(text)
    used = check_mode(mode or space.config.get("search", {}).get("mode", "hybrid"))
    item = space.item(item_id)                                 # an unknown item: NotFoundError
    hits = space.search(text, k=K_MAX, mode=used)
    rank = next((i + 1 for i, h in enumerate(hits) if h.item_id == item_id), None)
    snap = space.index
    p = snap.position(item_id)
    out: dict[str, Any] = {"query": text, "item": item_id, "name": str(item.get("name", item_id)), "mode": used,
                           "score_kind": search_score_kind(space, used), "rank": rank,
                           "score": float(hits[rank - 1].score) if rank else None, "lists": [],
                           "terms": _matched_terms(space, text, p),
                           "cosine": float(space.item_vector(item_id) @ space.text_query_vector(text))}
    if out["score_kind"] == "rrf":
        lists, c, _ = hybrid_lists(space, snap, text, snap.mask(None))
        for name, (rows, w) in lists.items():
            at = np.flatnonzero(rows == p)
            r = int(at[0]) + 1 if len(at) else None
            out["lists"].append({"list": name, "weight": w, "rank": r, "part": w / (c + r) if r else 0.0})
    return out


def _matched_terms(space: "Space", text: str, p: int) -> list[dict[str, Any]]:
    """The BM25 terms of ``text`` (as the index tokenizes it) that row ``p`` has, each with its
    part of the row's BM25 score, largest first."""
    view = space.lexical_index()
    lex = view.snap.gen.lexical(view.k1, view.b, view.fields, view.pairs)
    terms, counts = _counted_terms(lex.tokenize([text.strip()])[0])
    parts = [(t, float(view.snap.lexical_term_scores(lex, [t], counts[j:j + 1])[p])) for j, t in enumerate(terms)]
    return [{"term": t, "score": v} for t, v in sorted(parts, key=lambda tv: -tv[1]) if v > 0]
