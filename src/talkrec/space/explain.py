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
serves for a text, the hybrid lists' ranks and parts, and the query's BM25 terms it matches;
:func:`explain_recommend` for a recommendation: its place in what ``Space.recommend`` serves,
each term of its score, and the history items that bring it ("because you have ...").
:class:`Explanations` gives the three to :class:`~talkrec.space.Space`.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..fusion.model import modality_weight
from ..index.analysis import tokenize_text
from ..index.store import checked_query
from ..errors import InputError
from ..limits import K_MAX
from .popularity import novelty_setting
from .search import _counted_terms, check_mode, check_text, hybrid_lists, search_score_kind
from .shared import consistent
from .strategies import (_als_items, checked_negative_weight, ease_model, recommend_rows, recommend_strategy,
                         score_kind, similar_lists)
from .vectors import id_list, signed_vector

if TYPE_CHECKING:
    from .core import Space


class Explanations:
    """The explanation methods of :class:`~talkrec.space.Space` (each on one snapshot)."""

    @consistent
    def explain(self: "Space", a: str, b: str) -> dict[str, Any]:  # type: ignore[misc]
        """Why two items are close: shared tags, each modality's share of the cosine, and ``b``'s
        place in what :meth:`~talkrec.space.Space.similar` serves for ``a`` (:func:`explain`)."""
        return explain(self, a, b)

    @consistent
    def explain_search(self: "Space", text: str, item_id: str, *,  # type: ignore[misc]
                       mode: str | None = None) -> dict[str, Any]:
        """Why ``item_id`` is a hit for ``text``: its place in the search, each hybrid list's
        part, the query's BM25 terms it matches (:func:`explain_search`)."""
        return explain_search(self, text, item_id, mode)

    @consistent
    def explain_recommend(self: "Space", item_id: str, *, items: Sequence[str] | None = None,  # type: ignore[misc]
                          user: str | None = None, negative: Sequence[str] | None = None,
                          negative_weight: float | None = None, strategy: str | None = None) -> dict[str, Any]:
        """Why ``item_id`` is recommended from ``items`` or ``user``'s history (away from
        ``negative``, as :meth:`~talkrec.space.Space.recommend`): its place, each term of its
        score, the history items that bring it (:func:`explain_recommend`)."""
        return explain_recommend(self, item_id, items, user, negative, negative_weight, strategy)


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
    out["lists"] = _places({n: lw for n, lw in lists.items() if lw[1] > 0}, snap.position(b), c)
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
        out["lists"] = _places(lists, p, c)
    return out


def _places(lists: dict[str, tuple[np.ndarray, float]], p: int | None, c: float) -> list[dict[str, Any]]:
    r"""Row ``p``'s place in each RRF list (name -> rows best first, weight): its ``rank`` (from
    1; ``None``: not in it) and its ``part`` :math:`w / (c + \mathrm{rank})` of the score."""
    out = []
    for name, (rows, w) in lists.items():
        at = np.flatnonzero(rows == p)
        r = int(at[0]) + 1 if len(at) else None
        out.append({"list": name, "weight": w, "rank": r, "part": w / (c + r) if r else 0.0})
    return out


def _matched_terms(space: "Space", text: str, p: int) -> list[dict[str, Any]]:
    """The BM25 terms of ``text`` (as the index tokenizes it) that row ``p`` has, each with its
    part of the row's BM25 score, largest first; a term is shown as the query's word(s) that give
    it (with a stemmer "animated" for the term ``anim``; "run/running" where two do)."""
    view = space.lexical_index()
    lex = view.generation_index()
    toks = lex.tokenize([text.strip()])[0]
    shown: dict[str, list[str]] = {}
    for t, w in zip(toks, tokenize_text(text.strip(), lex.pairs, stopwords=lex.stop)):   # the same places, unstemmed
        if w not in shown.setdefault(t, []):
            shown[t].append(w)
    terms, counts = _counted_terms(toks)
    parts = [(t, float(view.snap.lexical_term_scores(lex, [t], counts[j:j + 1])[p])) for j, t in enumerate(terms)]
    return [{"term": "/".join(shown.get(t, [t])), "score": v} for t, v in sorted(parts, key=lambda tv: -tv[1])
            if v > 0]


def explain_recommend(space: "Space", item_id: str, items: Sequence[str] | None = None, user: str | None = None,
                      negative: Sequence[str] | None = None, negative_weight: float | None = None,
                      strategy: str | None = None) -> dict[str, Any]:
    r"""Where ``item_id`` stands in ``space.recommend(items=items)`` (or ``user=user``; with
    ``negative`` examples at ``negative_weight``, and by ``strategy``, as there) as served (no
    filter, the space's default ``novelty``): ``rank`` (from 1; ``None`` past the first
    :data:`~talkrec.limits.K_MAX`, or for an item of the history, ``in_history``, or a negative
    example, ``in_negative``), ``score``, ``strategy`` and ``novelty``; ``parts``: under ``blend`` each
    weighted term of its score, ``value`` = ``weight`` x the term's z-score (``fused``,
    ``ease``, ``als``; ``cold``: the boost and prior of an item without CF, weight ``None``;
    they add up to the score when ``novelty`` is 0), under ``rrf`` each list's ``rank`` and
    ``value`` :math:`w / (c + \mathrm{rank})`; ``because``: the history items most
    like it in the fused space (at most 10; under ``best_score`` the first is the one whose cosine
    is the score, unless a negative example is nearer), each with its ``cosine`` to it, EASE's weight
    ``ease`` :math:`B_{h,i}` (its share of the EASE term) and the ``als`` dot of their factors
    (``None`` where either has none). An item of the history or a negative example has no parts."""
    if (items is None) == (user is None):
        raise InputError("give exactly one of items or user", field="items")
    hist = id_list(items) if items is not None else space.user_history(user)  # type: ignore[arg-type]
    neg = [] if negative is None else id_list(negative, "negative")
    name = str(space.item(item_id).get("name", item_id))         # an unknown item: NotFoundError
    hits = space.recommend(items=items, user=user, k=K_MAX, negative=negative, negative_weight=negative_weight,
                           strategy=strategy)
    strategy = recommend_strategy(space, strategy)
    rank = next((i + 1 for i, h in enumerate(hits) if h.item_id == item_id), None)
    out: dict[str, Any] = {"item": item_id, "name": name, "strategy": score_kind(space, "recommend", strategy),
                           "rank": rank,
                           "score": float(hits[rank - 1].score) if rank else None, "in_history": item_id in hist,
                           "in_negative": item_id in neg,
                           "novelty": novelty_setting(space, "recommend", None), "parts": [],
                           "because": _because(space, hist, item_id)}
    snap = space.index
    p = snap.position(item_id)
    if out["strategy"] != "cosine" and not (out["in_history"] or out["in_negative"]):   # never scored for it
        parts: dict[str, Any] = {}
        gamma = checked_negative_weight(space, negative_weight)
        recommend_rows(space, hist, signed_vector(snap, hist, neg, gamma), 1, None, 0, hist + neg, neg, gamma,
                       parts=parts, strategy=strategy)
        out["parts"] = [{"part": x["list"], "weight": x["weight"], "rank": x["rank"], "value": x["part"]}
                        for x in _places(parts.get("lists", {}), p, parts.get("c", 0.0))]
        w = {"fused": 1.0, "ease": 1.0, "als": 1.0, **space.config.get("recommend", {}).get("weights", {})}
        out["parts"] += [{"part": n, "weight": w.get(n), "rank": None, "value": float(parts[n][p])}
                         for n in ("fused", "ease", "als", "cold") if n in parts]
    return out


def _because(space: "Space", hist: Sequence[str], item_id: str, n: int = 10) -> list[dict[str, Any]]:
    """The ``n`` history items most like ``item_id`` in the fused space, with their EASE weight
    to it and the dot of their ALS factors (:func:`explain_recommend`)."""
    v = space.item_vector(item_id)
    ease, als = ease_model(space), _als_items(space)
    seen = [h for h in dict.fromkeys(hist) if h != item_id]
    cos = {h: float(space.item_vector(h) @ v) for h in seen}
    out = []
    for h in sorted(seen, key=lambda h: -cos[h])[:n]:
        row: dict[str, Any] = {"item_id": h, "cosine": cos[h], "ease": None, "als": None}
        if ease is not None and h in ease._pos and item_id in ease._pos:
            e = ease._pos[h]
            at = np.flatnonzero(ease.neighbors_[e] == ease._pos[item_id])
            row["ease"] = float(ease.weights_[e][at[0]]) if len(at) else 0.0
        if als is not None and h in als[2] and item_id in als[2]:
            dot = float(als[1][als[2][h]] @ als[1][als[2][item_id]])
            row["als"] = dot if np.isfinite(dot) else None
        out.append(row)
    names = {h.item_id: h.name for h in space.hits([(r["item_id"], 0.0) for r in out])}
    return [{**r, "name": names.get(r["item_id"], r["item_id"])} for r in out]
