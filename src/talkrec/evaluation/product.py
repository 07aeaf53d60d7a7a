"""The talkrec product inside the evaluation (issue 12): spaces built by
:func:`talkrec.pipeline.build` from a build config (the product's stages, ALSEncoder, EASE,
the fusion defaults), queried through the methods users call: ``Space.similar``,
``Space.recommend`` and ``Space.search``.

A dataset block of the evaluation config names its build config (``build_config``, e.g.
``configs/lastfm.yaml``; a user's own generic config works the same when its items carry the
evaluation's ids: :func:`check_shared_ids`) and optional
``build_overrides`` (dotted keys; the ``small`` mode's few epochs). All builds of one
dataset share one build cache, so text embeddings are computed once.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..config import merge, resolve_path

log = logging.getLogger(__name__)

__all__ = ["ProductBuilder", "check_shared_ids", "lexical_ranker", "rank_ids", "recommend_ranker", "search_ranker",
           "similar_ranker"]


class ProductBuilder:
    """Builds spaces of one evaluation dataset from its build config into the eval cache."""

    def __init__(self, cfg: Mapping[str, Any], ds: str) -> None:
        from ..pipeline import load_config
        from ..pipeline.schema import check_build_config

        block = cfg[ds]
        path = resolve_path(block["build_config"], cfg)
        over = {"data_root": str(resolve_path(cfg["data_root"], cfg)), "seed": int(cfg["seed"])}
        self.cfg = merge(load_config(path, over), block.get("build_overrides") or {})
        check_build_config(self.cfg)                           # a misspelt setting fails now, not at the first build
        small = "-small" if cfg.get("small_mode") else ""      # a --small run never touches a full run's spaces
        self.root = resolve_path(cfg["cache_dir"], cfg) / "product" / f"{ds}-{self.cfg['name']}{small}"
        self.builds: dict[str, dict[str, Any]] = {}
        self.ds = ds
        self._own: Any = None

    @property
    def own_catalog(self) -> bool:
        """Whether the build loads its own data (generic format) instead of the evaluation's catalog."""
        return self.cfg.get("dataset", "generic") == "generic"

    def catalog(self, evaluation_catalog: Any, query_ids: Sequence[str] | None = None) -> Any:
        """The catalog the build starts from: its own (generic format) or the evaluation's.

        Its own must share item ids with the evaluation (its queries are the evaluation's items,
        ``query_ids`` when given, else every item of ``evaluation_catalog``): none shared is an
        :class:`~talkrec.errors.InputError` (every product row would score 0), some a warning
        that says how many."""
        if self.own_catalog:
            if self._own is None:
                from ..pipeline import load_dataset
                own = load_dataset(self.cfg)
                wanted = evaluation_catalog.item_ids if query_ids is None else query_ids
                check_shared_ids(own.item_ids, wanted, self.cfg.get("_config_path"), self.ds)
                self._own = own
            return self._own
        return evaluation_catalog

    def build(self, tag: str, catalog: Any, **overrides: Any) -> Any:
        """Build (or rebuild) the space ``tag`` from ``catalog`` (see :meth:`catalog`; folds
        with held-out users removed, cold items held out) and load it."""
        from ..pipeline import build
        from ..space import Space

        out = self.root / tag
        t0 = time.perf_counter()
        summary = build(merge({**self.cfg, "output": str(out), "build_cache": str(self.root / "cache.build")},
                              overrides), show_progress=False, catalog=catalog)
        self.builds[tag] = {"seconds": round(time.perf_counter() - t0, 1),
                            "stages": {st["stage"]: {kk: st[kk] for kk in ("seconds", "epochs", "best_epoch", "cached")
                                                     if kk in st} for st in summary["stages"]}}
        log.info("product build %s: %.1fs", tag, time.perf_counter() - t0)
        return Space.load(out)

    def settings(self, space: Any) -> dict[str, Any]:
        """What the evaluated product serves: fusion settings, strategies, modality weights, EASE."""
        c = space.config
        ease = c.get("build_config", {}).get("ease", {})
        return {"build_config": self.cfg.get("_config_path"), "profile": c.get("profile", "default"),
                "fusion": c["fusion"], "modality_weights": c.get("modality_weights"), "similar": c.get("similar"),
                "recommend": c.get("recommend"), "ease": ease, "search": c.get("search"), "builds": self.builds}


def check_shared_ids(own_ids: Sequence[str], query_ids: Sequence[str], build_config: str | None, ds: str) -> int:
    """How many of the evaluation's query items ``query_ids`` the build config's own catalog
    has: none is an :class:`~talkrec.errors.InputError` naming the build config, some but
    not all a warning that says how many (queries about the others get no ranking)."""
    from ..errors import InputError

    have = set(map(str, own_ids))
    queries = list(dict.fromkeys(map(str, query_ids)))
    shared = sum(q in have for q in queries)
    data = {"music": "Last.fm artist", "movies": "MovieLens movie"}.get(ds, "the evaluation's")
    if not shared:
        raise InputError(f"the build config's catalog shares no item ids with the evaluation data ({ds}: "
                         f"{len(queries)} {data} ids, e.g. {queries[:3]}; the catalog's, e.g. "
                         f"{sorted(have)[:3]}): every query would find nothing and every product row score 0. "
                         f"{ds}.build_config must build the evaluation's items (e.g. its dataset, or a generic "
                         "catalog keyed by the same ids)", path=build_config, field=f"{ds}.build_config")
    if shared < len(queries):
        log.warning("%s: %s.build_config's catalog has %d of the evaluation's %d query items; queries about the "
                    "other %d get no ranking (they score 0)", build_config, ds, shared, len(queries),
                    len(queries) - shared)
    return shared


def rank_ids(hits: Sequence[Any], idx: Mapping[str, int], k: int) -> np.ndarray:
    """Hits as a row of evaluation item indices (``-1`` padded; unknown ids dropped)."""
    row = np.full(k, -1, dtype=np.int64)
    r = [idx[h.item_id] for h in hits if h.item_id in idx][:k]
    row[:len(r)] = r
    return row


def vectors_aligned(space: Any, ids: np.ndarray) -> np.ndarray:
    """The space's fused vectors in the evaluation's item order (NaN rows where it has none)."""
    pos = {x: i for i, x in enumerate(space.item_ids.tolist())}
    V = space.embeddings("multi")
    out = np.full((len(ids), V.shape[1]), np.nan, dtype=np.float32)
    have = [(j, pos[i]) for j, i in enumerate(ids.tolist()) if i in pos]
    if have:
        a, b = zip(*have)
        out[list(a)] = V[list(b)]
    return out


def inputs_aligned(space: Any, ids: np.ndarray) -> dict[str, np.ndarray]:
    """The space's raw modality inputs (text: mean over views) in the evaluation's item order."""
    pos = {x: i for i, x in enumerate(space.item_ids.tolist())}
    rows = np.array([pos.get(i, -1) for i in ids.tolist()])
    out = {}
    for m in space.modalities:
        X = space.embeddings(m)
        Y = np.full((len(ids), X.shape[1]), np.nan, dtype=np.float32)
        Y[rows >= 0] = X[rows[rows >= 0]]
        out[m] = Y
    return out


def similar_ranker(space: Any, ids: np.ndarray, k: int, **options: Any) -> Any:
    """``fn(query_positions, exclude) -> (n_q, k)`` through ``Space.similar`` (queries the
    space does not have get no ranking; ``options``: more of its keyword arguments, e.g.
    ``novelty`` and ``pool``)."""
    from ..errors import NotFoundError

    idx = {x: i for i, x in enumerate(ids.tolist())}

    def fn(qi: np.ndarray, ex: Any) -> np.ndarray:
        out = np.full((len(qi), k), -1, dtype=np.int64)
        for j, q in enumerate(qi):
            try:
                out[j] = rank_ids(space.similar(str(ids[q]), k=k, **options), idx, k)
            except NotFoundError:
                pass
        return out
    return fn


def lexical_ranker(space: Any, ids: np.ndarray, k: int, *, max_df: float = 1.0, max_terms: int = 0) -> Any:
    """``fn(query_positions, exclude) -> (n_q, k)``: the BM25 more-like-this baseline - each
    query item's BM25 list in the space alone, its own BM25 text as the query
    (:func:`talkrec.space.search.lexical_neighbors`, the list ``Space.similar`` fuses)."""
    from ..space.search import lexical_neighbors

    idx = {x: i for i, x in enumerate(ids.tolist())}
    snap = space.index
    allowed = snap.mask(None)

    def fn(qi: np.ndarray, ex: Any) -> np.ndarray:
        out = np.full((len(qi), k), -1, dtype=np.int64)
        for j, q in enumerate(qi):
            p = snap.position(str(ids[q]))
            if p is not None:
                rows = lexical_neighbors(space, p, k, allowed, max_df, max_terms)
                got = [idx[x] for x in (snap.id_at(int(r)) for r in rows) if x in idx][:k]
                out[j, :len(got)] = got
        return out
    return fn


def recommend_ranker(space: Any, ids: np.ndarray, k: int, **options: Any) -> Any:
    """``fn(user_positions, query_items) -> (n_u, k)`` through ``Space.recommend(items=...)``
    (seen items excluded; query items the space does not have are left out; ``options``: more
    of its keyword arguments, e.g. ``novelty`` and ``pool``)."""
    idx = {x: i for i, x in enumerate(ids.tolist())}
    have = set(space.item_ids.tolist())

    def fn(qi: np.ndarray, query: Sequence[Sequence[int]]) -> np.ndarray:
        out = np.full((len(qi), k), -1, dtype=np.int64)
        for j, q in enumerate(qi):
            items = [str(ids[i]) for i in query[q] if str(ids[i]) in have]
            if items:
                out[j] = rank_ids(space.recommend(items=items, k=k, **options), idx, k)
        return out
    return fn


def search_ranker(space: Any, ids: np.ndarray, texts: Sequence[str], k: int) -> Any:
    """``fn(query_positions, exclude) -> (n_q, k)`` through ``Space.search`` (the space's
    default mode: hybrid)."""
    idx = {x: i for i, x in enumerate(ids.tolist())}
    R = np.stack([rank_ids(space.search(t, k=k), idx, k) for t in texts]) if len(texts) else \
        np.empty((0, k), dtype=np.int64)
    return lambda qp, ex: R[qp]
