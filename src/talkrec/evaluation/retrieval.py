"""The text-retrieval task of the evaluation: the versioned query set, and every system's
ranking of the items for each query (BM25, the text models, the MULTI spaces, popularity,
and the RRF hybrids whose weights are chosen on the validation queries)."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import resolve_path
from ..index.analysis import bm25_params
from . import baselines as B
from .common import val_mean
from .embed import embed_texts
from .product import search_ranker
from .queries import generate_queries, item_tag_sets, load_queries, relevant_items, save_queries
from .tasks import TaskResult, text_retrieval

log = logging.getLogger(__name__)

__all__ = ["queryset", "retrieval"]

HYBRID_WEIGHTS = (0.5, 1.0, 2.0, 4.0)


def queryset(path: Path, catalog: Any, rc: Mapping[str, Any], templates: tuple[str, ...], seed: int,
             item_ids: np.ndarray, dataset: str, write: bool) -> tuple[list, dict[str, Any]]:
    """Load the versioned query set (or generate and save it when missing / in small mode)."""
    if path.exists() and write:
        qs, meta = load_queries(path)
        return qs, meta
    qs = generate_queries(catalog.tags, n_sets=int(rc["n_sets"]), min_support=int(rc["min_support"]),
                          min_weight=float(rc["min_weight"]), categories=rc.get("categories"), templates=templates,
                          val_fraction=float(rc["val_fraction"]), random_state=seed, item_ids=item_ids)
    meta = {"dataset": dataset, "seed": seed, "min_support": rc["min_support"], "min_weight": rc["min_weight"],
            "categories": rc.get("categories"), "n_sets": rc["n_sets"], "val_fraction": rc["val_fraction"]}
    if write:
        meta = save_queries(qs, path, meta)
        log.info("wrote query set %s", path)
    return qs, meta


def retrieval(qs: list, item_ids: np.ndarray, tags: pd.DataFrame, rc: Mapping[str, Any], cfg: Mapping[str, Any],
              texts: list[str], item_text_emb: Mapping[str, np.ndarray], multi: Mapping[str, tuple[Any, np.ndarray]],
              popularity: np.ndarray, task: str, spaces: Mapping[str, Any] | None = None
              ) -> tuple[TaskResult, dict[str, Any]]:
    """Rank items for every query with BM25, each text model, each MULTI space, hybrids, and
    ``Space.search`` of each of ``spaces`` (row ``HYBRID <name>``: the product's default mode)."""
    k, cache = int(cfg["k"]), resolve_path(cfg["cache_dir"], cfg)
    it = item_tag_sets(tags, min_weight=float(rc["min_weight"]), categories=rc.get("categories"))
    idx = {x: i for i, x in enumerate(item_ids.tolist())}
    rel = [{idx[i] for i in relevant_items(q.tags, it) if i in idx} for q in qs]
    keep = [j for j, r in enumerate(rel) if len(r) > 0]
    qs = [qs[j] for j in keep]
    rel = [rel[j] for j in keep]
    qtexts = [q.text for q in qs]
    qemb = {m: embed_texts(qtexts, m, kind="query", cache_dir=cache) for m in item_text_emb}
    rankers: dict[str, Any] = {}
    # the BM25 baseline is the lexical list the product fuses: the space's k1 / b where there is one
    first = next(iter((spaces or {}).values()), None)
    settings = bm25_params(first.config.get("search") if first is not None else None)
    bm = B.BM25(texts, **settings._replace(fields=None)._asdict())
    bm_rank = bm.search(qtexts, k)
    rankers["BM25"] = lambda qp, ex: bm_rank[qp]
    text_rank = {}
    for m, E in item_text_emb.items():
        text_rank[m] = B.knn(qemb[m], E, k)
        rankers[f"TEXT {m}"] = (lambda R: (lambda qp, ex: R[qp]))(text_rank[m])
    fm = cfg["fusion_text_model"]
    multi_rank = {}
    for name, (fusion, M) in multi.items():
        Qp = fusion.project("text", qemb[fm])
        multi_rank[name] = B.knn(Qp, M, k)
        rankers[name] = (lambda R: (lambda qp, ex: R[qp]))(multi_rank[name])
    for name, space in (spaces or {}).items():
        rankers[f"HYBRID {name}"] = search_ranker(space, item_ids, qtexts, k)
    pop = B.popularity_ranking(popularity, k, len(qs))
    rankers["Popularity"] = lambda qp, ex: pop[qp]
    res = text_retrieval([q.qid for q in qs], [q.split for q in qs], rel, rankers, k=k, task=task)
    info: dict[str, Any] = {"n_queries": len(qs), "n_val": sum(q.split == "val" for q in qs),
                            "bm25": {"k1": bm.k1, "b": bm.b}}
    _add_hybrids(res, info, qs, rel, k, fm, multi_rank, text_rank[fm], bm_rank)
    return res, info


def _add_hybrids(res: TaskResult, info: dict[str, Any], qs: list, rel: list[set[int]], k: int, fm: str,
                 multi_rank: Mapping[str, np.ndarray], text_rank: np.ndarray, bm_rank: np.ndarray) -> None:
    """RRF of each MULTI space with the text model's own space (and with BM25), the weights
    chosen on the validation queries; added to ``res``, the choices to ``info``."""
    qids, splits = [q.qid for q in qs], [q.split for q in qs]

    def best_on_val(lists: list[np.ndarray], grid: list[tuple[float, ...]]) -> tuple[tuple[float, ...], np.ndarray,
                                                                                    dict[str, float]]:
        best, vals = None, {}
        for ws in grid:
            R = B.rrf(lists, k, weights=[1.0, *ws])
            v = val_mean(text_retrieval(qids, splits, rel, {"h": lambda qp, ex: R[qp]}, k=k), "h")
            vals["/".join(str(w) for w in ws)] = v
            if best is None or v > best[0]:
                best = (v, ws, R)
        return best[1], best[2], vals

    grid = HYBRID_WEIGHTS
    for name in multi_rank:
        (w,), R, vals = best_on_val([multi_rank[name], text_rank], [(w,) for w in grid])
        res.add(f"HYBRID {name} + TEXT {fm}", R, rel, k, note=f"RRF, text weight {w} chosen on validation queries")
        info.setdefault("hybrid_val", {})[name] = vals
        info.setdefault("hybrid_weight", {})[name] = w
        (wt, wb), R, vals = best_on_val([multi_rank[name], text_rank, bm_rank], [(a, b) for a in grid for b in grid])
        res.add(f"HYBRID {name} + TEXT {fm} + BM25", R, rel, k,
                note=f"RRF, text weight {wt}, BM25 weight {wb} chosen on validation queries")
        info.setdefault("hybrid_bm25_val", {})[name] = vals
        info.setdefault("hybrid_bm25_weights", {})[name] = [wt, wb]
