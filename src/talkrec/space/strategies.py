"""What ``Space.similar`` and ``Space.recommend`` serve beyond the fused space's kNN (issue 12).

A space built with interactions keeps an EASE model (``ease/``, :class:`~talkrec.encoders.ease.EASE`)
and ALS factors (``cf/``); ``space.json`` names the strategies (set by the build config,
:mod:`talkrec.pipeline.serving`):

* ``similar.strategy: rrf`` - reciprocal rank fusion of the item's fused-space list (the top
  ``depth`` by cosine, weight 1) and its EASE list (the items it predicts, weight ``cf_weight``):
  :math:`s(j) = \\sum_r w_r / (c + \\mathrm{rank}_r(j))`. An item without interactions (a cold
  item), or one written since the build by ``add_items`` (its vector is its new content), has
  no EASE list: with ``cold_neighbors: n`` it borrows the lists of its ``n`` nearest items that
  have one (cosine-weighted, weight ``cold_weight``), else it gets its fused list. Nearest by
  content alone (``cold_match: content``, the default: the item's text and audio against theirs,
  without their CF, as the cold item itself is made) or by the fused list (``fused``);
  ``cold_content_weight`` adds the cold item's own list by content (its content against every
  item's, like with like) at that weight. ``lexical_weight`` adds every item's BM25 list: its
  own BM25 text as the query, without the terms more than ``lexical_max_df`` of the items have
  (:func:`.search.lexical_neighbors`).
* ``recommend.strategy: blend`` - per query, each score z-scored over the candidates and
  summed with ``weights``: the fused cosine of the items' mean vector, EASE's ``x B`` and the
  dot of the items' mean ALS factors with every item's. An item without CF (cold) scores 0
  in ``x B`` like every item no list reaches, and the candidates' mean (z = 0) in the ALS term;
  ``cold_neighbors: m`` gives them instead the cosine-weighted mean of those scores over their
  ``m`` nearest items with CF in the fused space (:mod:`.coldscores`); ``cold_boost`` adds a constant to items
  without ALS factors (exposure for new items; default 0), ``cold_prior`` their popularity as
  predicted from catalog fields (:mod:`.priors`). ``rrf`` - RRF of the fused list and the
  ``x B`` list (weight ``weights.ease``). ``knn`` (and ``fusion: paper``) - the fused space alone.
  ``best_score``: by the nearest history item (:mod:`.best_score`). A call may name one (:func:`recommend_strategy`).
Each returns the snapshot's rows, best first, ``offset`` skipped, and their scores (:data:`Rows`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ..index.filters import Where
from ..index.store import checked_query
from ..errors import InputError
from ..estimator import read_npz
from ..index.toplists import blend_ready, blend_top
from ..limits import NEGATIVE_WEIGHT_MAX, check_page, is_number
from ..ranking import rrf_depth, rrf_scores, top_k, top_then
from .coldscores import content_rows, impute_cold
from .modelrows import base_rows_of, delta_models, ease_model, rows_of
from .priors import cold_prior
from .search import counted, lexical_neighbors

if TYPE_CHECKING:
    from ..index.snapshot import Snapshot
    from .core import Space

Rows = tuple[np.ndarray, np.ndarray]       # rows of the snapshot, best first, and their scores

__all__ = ["NEGATIVE_WEIGHT", "RECOMMEND_STRATEGIES", "Rows", "SimilarLists", "checked_negative_weight", "ease_model",
           "recommend_rows", "recommend_strategy", "score_kind", "similar_lists", "similar_rows", "zscore"]

#: what ``recommend.strategy`` and ``Space.recommend(strategy=)`` take
RECOMMEND_STRATEGIES = ("blend", "rrf", "knn", "best_score")

#: ``recommend.negative_weight`` where a space names none (chosen on MovieLens validation users:
#: docs/evaluation.md, "Negative examples")
NEGATIVE_WEIGHT = 0.05


def score_kind(space: "Space", part: str, strategy: str | None = None) -> str:
    """What ``Space.similar`` (``part="similar"``) or ``Space.recommend`` (``"recommend"``; a call's
    ``strategy``, else the space's) score, so which path they take: ``"rrf"``, ``"blend"`` (a sum
    of z-scores) or ``"cosine"`` (the fused space's kNN: strategy ``knn``, or no list to fuse: no
    EASE, and for similar no BM25 list; ``best_score``: a history item's cosine)."""
    cfg = space.config.get(part, {})
    strategy = strategy or cfg.get("strategy", "knn")
    if strategy == "best_score":
        return "cosine"
    lists = ease_model(space) is not None or (part == "similar" and float(cfg.get("lexical_weight", 0.0)) > 0)
    if strategy == "knn" or not lists:
        return "cosine"
    return "rrf" if strategy == "rrf" else "blend"


def recommend_strategy(space: "Space", given: str | None) -> str:
    """The strategy a ``Space.recommend`` call takes: ``given`` (one of
    :data:`RECOMMEND_STRATEGIES`; ``blend`` and ``rrf`` need the space's EASE model) or, for
    ``None``, the space's ``recommend.strategy``."""
    if given is None:
        return str(space.config.get("recommend", {}).get("strategy", "knn"))
    if given not in RECOMMEND_STRATEGIES:
        raise InputError(f"strategy must be one of {', '.join(RECOMMEND_STRATEGIES)}, got {given!r}", field="strategy")
    if given in ("blend", "rrf") and ease_model(space) is None:
        raise InputError(f"strategy {given} fuses the space's EASE list, and this space has none (built without "
                         "interactions): use knn or best_score", field="strategy")
    return given


def checked_negative_weight(space: "Space", given: float | None = None) -> float:
    """:math:`\\gamma`, the weight of negative examples against the history in every term of
    ``Space.recommend`` (Rocchio's relevance feedback): ``given``, else the space's
    ``recommend.negative_weight``, else :data:`NEGATIVE_WEIGHT`."""
    if given is None:
        return float(space.config.get("recommend", {}).get("negative_weight", NEGATIVE_WEIGHT))
    if isinstance(given, bool) or not is_number(given) or not 0 <= float(given) <= NEGATIVE_WEIGHT_MAX:
        raise InputError(f"negative_weight must be a number in [0, {NEGATIVE_WEIGHT_MAX:g}], got {given!r}",
                         field="negative_weight")
    return float(given)


def zscore(s: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """``(s - mean) / std`` over the entries where ``ok`` (std 0 -> 1); 0 elsewhere."""
    n = int(np.count_nonzero(ok))
    if not n:
        return np.zeros(len(s), dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    mean = np.where(ok, s, 0.0).sum() / n           # masked passes: no gather or scatter of the rows
    dev = np.where(ok, s - mean, 0.0)
    sd = float(np.sqrt(dev @ dev / n))
    dev /= sd if sd > 1e-12 else 1.0
    return dev


def _ease_list(space: "Space", snap: "Snapshot", item_id: str) -> np.ndarray:
    """The items the item's EASE row predicts (B > 0) as snapshot rows, strongest first
    (empty for an item without interactions)."""
    ease = ease_model(space)
    e = ease._pos.get(item_id) if ease is not None else None
    if e is None:
        return np.empty(0, dtype=np.int64)
    rows = rows_of(snap, ease.item_ids_, ("ease", id(ease)), ease._pos)
    nb = ease.neighbors_[e]
    r = rows[nb[(nb >= 0) & (ease.weights_[e] > 0)]]        # what the item predicts (B > 0)
    return r[r >= 0]


def _borrowed_list(space: "Space", snap: "Snapshot", content: np.ndarray | None, fused: np.ndarray, s: np.ndarray,
                   n: int) -> np.ndarray:
    """For an item without interactions: the EASE lists of the ``n`` items with one nearest
    to it, each max-normalized and weighted by its cosine, summed; as snapshot rows, best
    first. Nearest by ``content``, the cosine of each row's content-only vector to the item's
    (``cold_match: content``: like with like, its text and audio against theirs, without their
    CF); where it is None, the first ``n`` of its fused list (rows ``fused``, scores ``s``)."""
    ease = ease_model(space)
    if ease is None:
        return np.empty(0, dtype=np.int64)
    rows = rows_of(snap, ease.item_ids_, ("ease", id(ease)), ease._pos)
    if content is not None:
        sims = content
        warm = np.zeros(snap.n_rows, dtype=bool)
        warm[rows[(rows >= 0) & ease.has_cf_]] = True
        near = top_k(sims, n, allowed=warm)
    else:
        near, sims = fused, s
    total = np.zeros(snap.n_rows, dtype=np.float64)
    used = 0
    for r in near:
        e = ease._pos.get(snap.id_at(int(r)))
        if e is None or not ease.has_cf_[e]:
            continue
        nb, w = ease.neighbors_[e], ease.weights_[e]
        ok = (nb >= 0) & (w > 0)
        tr = rows[nb[ok]]
        if len(tr) and w[ok].max() > 0:
            np.add.at(total, tr[tr >= 0], (max(float(sims[r]), 0.0) * w[ok] / w[ok].max())[tr >= 0])
        used += 1
        if used >= n:
            break
    return top_k(np.where(total > 0, total, -np.inf), len(fused))


def _signed_ease(space: "Space", snap: "Snapshot", hist: Sequence[str], neg: Sequence[str],
                 gamma: float) -> np.ndarray | None:
    """EASE's scores of a history with negative examples: :math:`x_+ B / |+| - \\gamma\\, x_- B / |-|`
    (the history's own sum, unchanged, without negatives)."""
    s = _ease_scores(space, snap, hist)
    if s is None or not neg:
        return s
    s_neg = _ease_scores(space, snap, neg, seen_max=False)
    return s / max(len(hist), 1) - gamma * s_neg / len(neg)  # type: ignore[operator]


def _signed_als(space: "Space", snap: "Snapshot", hist: Sequence[str], neg: Sequence[str],
                gamma: float) -> tuple[np.ndarray, np.ndarray] | None:
    """ALS's scores with negative examples: the dot with the mean factors of the history minus
    ``gamma`` times the dot with the negatives' (each a mean: 0 for an empty history)."""
    als = _als_scores(space, snap, hist)
    if als is None or not neg:
        return als
    return als[0] - gamma * _als_scores(space, snap, neg)[0], als[1]  # type: ignore[index]


def _ease_scores(space: "Space", snap: "Snapshot", hist: Sequence[str], seen_max: bool = True) -> np.ndarray | None:
    """EASE's ``x B`` for the history, per snapshot row (0 where no list reaches; with
    ``seen_max`` the history's own items get the maximum, so they lead when not excluded)."""
    ease = ease_model(space)
    if ease is None:
        return None
    rows = rows_of(snap, ease.item_ids_, ("ease", id(ease)), ease._pos)
    items, values = ease.entries(ease.positions(list(hist)))     # EASE.score's sums, per snapshot row
    r = rows[items]
    keep = r >= 0
    out = np.bincount(r[keep], weights=values[keep].astype(np.float64), minlength=snap.n_rows)
    seen = [p for p in (snap.position(i) for i in hist) if p is not None] if seen_max else []
    out[seen] = out.max() if len(out) else 0.0     # B_ii = 0, but a seen item is what the user likes most
    return out


def _als_items(space: "Space") -> tuple[np.ndarray, np.ndarray, dict[str, int]] | None:
    """The ALS item ids, factors and positions from ``cf/factors.npz`` (numpy only: serving
    never imports implicit), loaded once; None without ``cf/``."""
    sh = space._shared
    if sh.als_items is None and (space.path / "cf" / "factors.npz").exists():
        z = read_npz(space.path / "cf" / "factors.npz", ("item_ids", "item_factors"), "ALSEncoder")
        ids, F = z["item_ids"].astype(str), z["item_factors"]
        sh.als_items = (ids, F, {k: i for i, k in enumerate(ids.tolist())})
    return sh.als_items  # type: ignore[no-any-return]


def _als_scores(space: "Space", snap: "Snapshot", hist: Sequence[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """Dot of the history's mean ALS item factors with every row's, and which rows have factors."""
    als = _als_items(space)
    if als is None:
        return None
    ids, F, pos = als

    def aligned() -> tuple[np.ndarray, np.ndarray]:
        """Each base row's factors (0 without, or NaN ones) and which base rows have them:
        once per generation (a product over them lands in row order, no gather or scatter)."""
        rows0 = base_rows_of(snap, ids, ("als", id(F)))
        ok = (rows0 >= 0) & ~np.isnan(F).any(axis=1)
        Fb = np.zeros((snap.n0, F.shape[1]), dtype=np.float32)
        Fb[rows0[ok]] = F[ok]
        has0 = np.zeros(snap.n0, dtype=bool)
        has0[rows0[ok]] = True
        return Fb, has0
    Fb, has0 = snap.gen.memo(("als_aligned", id(F)), aligned)

    def live() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Which rows have factors, the dead base rows, and the delta rows with factors and
        those: once per snapshot."""
        j, d_rows = delta_models(snap, ("als", id(F)), pos)
        fin = ~np.isnan(F[j]).any(axis=1)
        j, d_rows = j[fin], d_rows[fin]
        has = np.concatenate([has0 & snap.live[:snap.n0], np.zeros(snap.m, dtype=bool)])
        has[d_rows] = True
        return has, np.flatnonzero(~snap.live[:snap.n0]), d_rows, np.ascontiguousarray(F[j])
    has, dead, d_rows, Fd = snap.memo(("als_rows", id(F)), live)
    h = [pos[i] for i in hist if i in pos and not np.isnan(F[pos[i]]).any()]
    out = np.zeros(snap.n_rows, dtype=np.float64)
    if h:
        mf = F[h].mean(axis=0)
        out[:snap.n0] = Fb @ mf
        out[dead] = 0.0
        out[d_rows] = Fd @ mf
    return out, has.copy()


def similar_rows(space: "Space", item_id: str, k: int, where: Where, offset: int) -> Rows:
    """``similar.strategy: rrf``: RRF of the fused list, the item's EASE list (a cold item: the
    lists it borrows, and with ``cold_content_weight`` its list by content) and, with
    ``lexical_weight``, its BM25 list (:func:`.search.lexical_neighbors`)."""
    check_page(k, offset)
    with counted():
        return _similar_rows(space, item_id, k, where, offset)


class SimilarLists(NamedTuple):
    """What ``similar.strategy: rrf`` fuses for an item (:func:`similar_lists`)."""

    lists: dict[str, tuple[np.ndarray, float]]   # name -> (snapshot rows best first, weight)
    c: float                                     # the RRF constant
    read: int                                    # how deep the fused list was read
    allowed: np.ndarray                          # the rows the filter lets through


def similar_lists(space: "Space", snap: "Snapshot", item_id: str, q: np.ndarray, where: Where,
                  need: int | None = None) -> SimilarLists:
    """The lists ``similar.strategy: rrf`` fuses for ``item_id`` (unit vector ``q``), by name:
    ``fused`` (the fused space, read ``read`` deep), ``cf`` (its EASE list, or for an item
    without one the lists it borrows), ``content`` (a cold item's own list by content) and
    ``lexical`` (its BM25 list). ``need``: how many rows the caller ranks (``None``: every list
    to its full ``depth``)."""
    cfg: Mapping[str, Any] = space.config.get("similar", {})
    p = snap.position(item_id)
    allowed = snap.mask(where)
    c = float(cfg.get("rrf_c", 60.0))
    # EASE knows an item by its id (as in recommend): an updated item keeps its list, a new one borrows
    ease = _ease_list(space, snap, item_id)
    w_ease, w_lex = float(cfg.get("cf_weight", 0.5)), float(cfg.get("lexical_weight", 0.0))
    borrow = not len(ease) and int(cfg.get("cold_neighbors", 0)) > 0 and ease_model(space) is not None
    depth = read = int(cfg.get("depth", 1000))        # whatever k: past the lists, the fused order (top_then)
    # the BM25 list on this thread: on another beside the fused list it waits for the GIL (docs/service.md)
    lex = lexical_neighbors(space, p, depth, allowed, float(cfg.get("lexical_max_df", 1.0)),
                            int(cfg.get("lexical_max_terms", 0))) if w_lex > 0 else np.empty(0, np.int64)
    if need is not None and not borrow and w_ease >= 0 and c >= 0 and snap.backend is None \
            and snap.gen.index.graph is None:
        # an exact list need not go deeper than the fusion's top can reach (ranking.rrf_depth:
        # 105 of 1000 for the top 10 beside an EASE list of weight 0.5; a BM25 list of weight 2
        # leaves no such depth); the same hits and scores
        others = (w_ease if len(ease) else 0.0) + w_lex
        read = min(depth, rrf_depth(need, c=c, weight=1.0, others=others) or depth)
    # the fused list from the index, so HNSW or a vector database answers it as for knn
    fused, scores = snap.search_rows(q, read, where=where, exclude=[item_id])
    own, w_own = np.empty(0, dtype=np.int64), 0.0                     # a cold item's own list by content
    if borrow:                                                        # a cold item: borrow its neighbours' lists
        s = np.full(snap.n_rows, -np.inf)
        s[fused] = scores
        by_content = cfg.get("cold_match", "content") == "content"
        w_own = float(cfg.get("cold_content_weight", 0.0))
        content = (content_rows(space, snap) @ q).astype(np.float64) if by_content or w_own > 0 else None
        ease = _borrowed_list(space, snap, content if by_content else None, fused, s, int(cfg["cold_neighbors"]))
        w_ease = float(cfg.get("cold_weight", 0.25))
        if w_own > 0:                                                 # like with like, as the neighbour search
            own = top_k(content, depth, exclude=[p], allowed=allowed)
    lists = {"fused": (fused, 1.0), "cf": (ease[allowed[ease] & (ease != p)], w_ease), "content": (own, w_own),
             "lexical": (lex, w_lex)}
    return SimilarLists(lists, c, read, allowed)


def _similar_rows(space: "Space", item_id: str, k: int, where: Where, offset: int) -> Rows:
    snap = space.index
    q = checked_query(space.item_vector(item_id), snap.dim, k, offset)   # unknown item: NotFoundError
    need, p = k + offset, snap.position(item_id)
    lists, c, read, allowed = similar_lists(space, snap, item_id, q, where, need)
    fused = lists["fused"][0]
    rrf = rrf_scores([r for r, _ in lists.values()], snap.n_rows, c=c, weights=[w for _, w in lists.values()])
    cand = np.flatnonzero(rrf > 0)                   # the lists' rows, in row order: rank only them
    top = top_then(rrf, cand[allowed[cand] & (cand != p)], need,       # a list shorter than read: every row
                   lambda n: fused if len(fused) < read else snap.search_rows(q, n, where=where, exclude=[item_id])[0])
    top = top[offset:]
    return top, rrf[top]


def recommend_rows(space: "Space", hist: Sequence[str], q: np.ndarray, k: int, where: Where, offset: int,
                   exclude: Sequence[str], neg: Sequence[str] = (), gamma: float = 0.0,
                   parts: dict[str, Any] | None = None, strategy: str | None = None) -> Rows:
    """``recommend.strategy: blend`` or ``rrf`` for the history ``hist`` (mean vector ``q``)
    and the negative examples ``neg`` at weight ``gamma`` (:func:`checked_negative_weight`;
    excluded by the caller). ``parts`` (:mod:`.explain`) is filled with what the scores are made
    of: under ``blend`` each weighted term per row (``fused``, ``ease``, ``als``, ``cold``: the
    boost and prior of rows without CF), under ``rrf`` ``lists`` (name -> rows, weight) and ``c``."""
    check_page(k, offset)
    snap = space.index
    q = checked_query(q, snap.dim, k, offset)
    cfg: Mapping[str, Any] = space.config.get("recommend", {})
    w = {"fused": 1.0, "ease": 1.0, "als": 1.0, **cfg.get("weights", {})}
    allowed = snap.mask(where)
    excl = [p for p in (snap.position(e) for e in exclude) if p is not None]
    cand = allowed.copy()
    cand[excl] = False
    need = k + offset
    if (strategy or cfg.get("strategy")) == "rrf":
        s_fused = snap.scores(q)
        cand &= np.isfinite(s_fused)
        s_ease = _signed_ease(space, snap, hist, neg, gamma)
        depth = int(cfg.get("depth", 1000))                # whatever k: past the lists, the fused order
        lists = [top_k(s_fused, depth, allowed=cand)]
        if s_ease is not None:
            listed = s_ease > 0 if neg else s_ease != 0       # with negatives: what the history outweighs
            lists.append(top_k(np.where(listed, s_ease, -np.inf), depth, allowed=cand))
        total = rrf_scores(lists, snap.n_rows, c=float(cfg.get("rrf_c", 60.0)),
                           weights=[1.0, float(w["ease"])][:len(lists)])
        if parts is not None:
            parts.update(lists=dict(zip(("fused", "cf"), zip(lists, (1.0, float(w["ease"]))))),
                         c=float(cfg.get("rrf_c", 60.0)))
        top = top_then(total, np.flatnonzero((total > 0) & cand), need, lambda n: top_k(s_fused, n, allowed=cand))
        return top[offset:], total[top[offset:]]
    # without a filter, the blend's top comes from the int8 copy (toplists.blend_top), no
    # float32 product over every row (``allowed`` is the liveness mask itself then)
    fast = allowed is snap.live and blend_ready(snap) and parts is None
    s_fused = None if fast else snap.scores(q)
    if s_fused is not None:
        cand &= np.isfinite(s_fused)
    s_ease = _signed_ease(space, snap, hist, neg, gamma)
    als = _signed_als(space, snap, hist, neg, gamma) if w["als"] or cfg.get("cold_boost") or cfg.get("cold_prior") \
        else None
    no_cf = ~als[1] if als is not None else None
    if int(cfg.get("cold_neighbors", 0)) > 0 and s_ease is not None:   # CF scores of cold items from their neighbours
        cold = impute_cold(space, snap, cfg, [s_ease] if als is None else [s_ease, als[0]])
        if als is not None:
            als[1][cold] = True
    rest, told = np.zeros(snap.n_rows), ({} if parts is None else parts)    # told: only when explaining
    if s_ease is not None and w["ease"]:
        rest += (z := float(w["ease"]) * zscore(s_ease, cand))
        told["ease"] = z
    if als is not None:
        rest += (z := float(w["als"]) * zscore(als[0], cand & als[1]))
        before = rest.copy() if parts is not None else None       # explaining: the cold terms are what comes next
        rest[no_cf] += float(cfg.get("cold_boost", 0.0))          # exposure for items without CF
        if cfg.get("cold_prior"):                                 # and their popularity from catalog fields
            rest[no_cf] += cold_prior(space, snap, cfg)[no_cf]
        if before is not None:
            told.update(als=z, cold=rest - before)
    top = blend_top(snap, q, float(w["fused"]), rest, excl, need) if fast else None
    if top is not None:
        return top[0][offset:], top[1][offset:]
    if s_fused is None:                      # nearly constant scores: blend_top declined
        s_fused = snap.scores(q)
    total = (z := float(w["fused"]) * zscore(s_fused, cand)) + rest
    told["fused"] = z
    top = top_k(np.where(cand, total, -np.inf), need, exclude=excl, allowed=cand)[offset:]
    return top, total[top]
