"""The movie half of the evaluation (MovieLens ml-latest-small + TMDB overviews).

:func:`run_movies` in named steps: load and embed, search ALS on the validation users of
the tuning folds, choose the fusion settings on validation users and validation queries,
score every system on the held-out users of each of the folds, and text retrieval with
models fitted on all ratings (no users are evaluated there).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import resolve_path
from . import baselines as B
from .coldstart import cold_catalog, movies_cold_start
from .common import Timer, param_grid_draws, subset_catalog, val_mean
from .embed import embed_texts
from .product import ProductBuilder, recommend_ranker, vectors_aligned
from .queries import MOVIE_TEMPLATES
from .retrieval import queryset, retrieval
from .splits import (check_user_protocol, positives_by_user, query_target_halves, split_val_test,
                     train_interactions, user_folds, without_users_tags)
from .tasks import TaskResult, UserQueries, concat_results, user_recommendation

log = logging.getLogger(__name__)

__all__ = ["run_movies"]


@dataclass
class MovieData:
    """Movies, ratings, descriptions and text embeddings, and the user protocol (folds,
    validation/test users, query and target halves of each user's positives)."""

    mc: Mapping[str, Any]             # the config's ``movies`` block
    cat: Any
    ids: np.ndarray
    idx: dict[str, int]               # item id -> row
    texts: list[str]
    T: dict[str, np.ndarray]          # text model -> item matrix
    O: np.ndarray                     # overview embeddings of the fusion text model (NaN: none)
    has_ov: np.ndarray
    fm: str                           # the fusion text model
    users: list[str]
    folds: dict[str, int]
    usplit: dict[str, str]
    halves: dict[str, tuple[list[str], list[str]]]
    apps: pd.DataFrame | None = None  # who applied which user tag (``tags.csv``)
    cache: Path | None = None         # text embeddings' cache

    def fold_catalog(self, users: Sequence[str]) -> Any:
        """The catalog without the tags ``users`` applied (:func:`.splits.without_users_tags`)."""
        return self.cat if self.apps is None else without_users_tags(self.cat, self.apps, users)

    def fold_text(self, fold_cat: Any) -> dict[str, np.ndarray]:
        """:attr:`T` of the fold's catalog: the movies whose description it changes embedded again."""
        desc = describe_movies(self.mc, fold_cat)
        changed = [j for j, i in enumerate(self.ids) if desc[i] != self.texts[j]]
        if not changed:
            return self.T
        out = {m: X.copy() for m, X in self.T.items()}
        for m, X in out.items():
            X[changed] = embed_texts([desc[self.ids[j]] for j in changed], m, kind="passage", cache_dir=self.cache)
        return out

    @property
    def inter(self) -> pd.DataFrame:
        return self.cat.interactions

    def fold_queries(self, f: int) -> UserQueries:
        idx = self.idx
        us = [u for u in self.users if self.folds[u] == f and u in self.halves]
        return UserQueries(us, [[idx[i] for i in self.halves[u][0]] for u in us],
                           [{idx[i] for i in self.halves[u][1]} for u in us], [self.usplit[u] for u in us])

    def cf_data(self, train: pd.DataFrame) -> pd.DataFrame:
        """The ratings ALS sees: all, or only the positives (``cf_ratings: positive``)."""
        return train[train["weight"] > float(self.mc["threshold"])] if self.mc["cf_ratings"] == "positive" else train

    def pop_of(self, train: pd.DataFrame) -> np.ndarray:
        """Number of positive ratings of each movie in ``train``."""
        c = train[train["weight"] > float(self.mc["threshold"])]["item_id"].value_counts()
        return np.array([c.get(i, 0) for i in self.ids], dtype=np.float64)


def describe_movies(mc: Mapping[str, Any], cat: Any) -> dict[str, str]:
    """The evaluation's TEMPLATE description of each movie (the ``movies.template`` settings)."""
    from ..descriptions import TemplateDescriber
    return TemplateDescriber(header="movie", only_listed=True, **mc["template"]).describe(cat)


def run_movies(cfg: dict[str, Any], timer: Timer) -> dict[str, Any]:
    """Every movie system on held-out-user recommendation (10 folds) and tag-query retrieval;
    the MULTI rows come from the product (:mod:`.product`): one space per fold built from the
    movies build config without the fold's users, queried with ``Space.recommend``, and one
    on all ratings for ``Space.search``."""
    mc, seed = cfg["movies"], int(cfg["seed"])
    pb = ProductBuilder(cfg, "movies")
    d = _load(cfg, timer, pb)
    base = pb.catalog(d.cat)
    n = len(d.ids)
    tune = list(range(min(int(mc["tune_folds"]), int(mc["n_folds"]))))
    als_params, trials = _als_search(cfg, d, tune, timer)
    ease_params, ease_trials = _ease_search(cfg, d, tune, timer)

    rc = mc["retrieval"]
    qpath = resolve_path(rc["queryset"], cfg) if not cfg["small_mode"] else None
    qs, qmeta = queryset(qpath or Path("/nonexistent"), d.cat, rc, MOVIE_TEMPLATES, seed, d.ids, "movielens",
                         write=qpath is not None)
    rec, fold_info = _folds(cfg, d, als_params, ease_params, pb, base, timer)

    t0 = time.perf_counter()
    full = pb.build("full", base)
    multi = {"MULTI TEMPLATE+OVERVIEW": (full.fusion, vectors_aligned(full, d.ids))}
    ret, ret_info = retrieval(qs, d.ids, d.cat.tags, rc, cfg, d.texts, {m: d.T[m] for m in cfg["text_models"]}, multi,
                              d.pop_of(d.inter), "movies-retrieval", spaces={"talkrec (Space.search)": full})
    timer("movies/retrieval", t0)
    cold = movies_cold_start(cfg, d, pb, timer)
    return {"rec": rec, "ret": ret, "n_items": n, "ret_info": ret_info, "queryset_meta": qmeta,
            "item_users": d.pop_of(d.inter), "n_users": len(d.users),    # novelty@k: users with a positive rating
            "dataset": {"movies": n, "users": len(d.users), "evaluated_users": len(rec.query_ids),
                        "with_overview": int(d.has_ov.sum()), "folds": fold_info,
                        "user_split": {s: int(sum(rec.split == s)) for s in ("val", "test")}},
            "als": {"chosen": als_params.__dict__, "trials": trials}, "ease": ease_trials,
            "fusion": {"chosen": pb.settings(full), "history": full.fusion.history_}, "cold_start": cold}


def _load(cfg: Mapping[str, Any], timer: Timer, pb: ProductBuilder | None = None) -> MovieData:
    """MovieLens (small mode: the first users and the movies they rated most), template and
    overview embeddings, folds and validation/test users, query/target halves. ``pb``: its
    catalog is loaded (and checked against the movies) before the embeddings."""
    from ..data.datasets import load_movielens
    from ..data.datasets.movielens import read_tag_applications

    mc, seed = cfg["movies"], int(cfg["seed"])
    t0 = time.perf_counter()
    cat = load_movielens(resolve_path(cfg["data_root"], cfg) / "movielens-ml-latest-small")
    if mc.get("max_users"):
        inter = cat.interactions
        us = sorted(inter["user_id"].unique(), key=lambda u: int(u))[: int(mc["max_users"])]
        inter = inter[inter["user_id"].isin(us)]
        top = inter["item_id"].value_counts()
        keep = set(top.index[: int(mc.get("max_items") or len(top))])
        cat = subset_catalog(cat, keep)
        cat.interactions = inter[inter["item_id"].isin(keep)]
    inter = cat.interactions                         # the user protocol, checked before the slow steps
    users = sorted(inter["user_id"].unique(), key=str)
    folds = user_folds(users, n_folds=int(mc["n_folds"]), random_state=seed)
    usplit = split_val_test(users, val_fraction=float(mc["val_fraction"]), random_state=seed)
    pos = positives_by_user(inter, threshold=float(mc["threshold"]))
    halves = query_target_halves(pos, query_fraction=0.5, min_positives=2, random_state=seed)
    check_user_protocol(folds, usplit, halves, n_folds=int(mc["n_folds"]), tune_folds=int(mc["tune_folds"]))
    if pb is not None:
        pb.catalog(cat)                              # a build config without the movies fails now
    ids = cat.item_ids
    desc = describe_movies(mc, cat)
    texts = [desc[i] for i in ids]
    ov = cat.texts.get("overview", pd.Series(dtype=object))
    has_ov = np.array([i in ov.index for i in ids])
    ov_texts = [str(ov[i]) for i in ids[has_ov]]
    timer("movies/load", t0)
    t0 = time.perf_counter()
    cache = resolve_path(cfg["cache_dir"], cfg)
    T = {m: embed_texts(texts, m, kind="passage", cache_dir=cache) for m in cfg["text_models"]}
    fm = cfg["fusion_text_model"]
    O = np.full_like(T[fm], np.nan)
    O[has_ov] = embed_texts(ov_texts, fm, kind="passage", cache_dir=cache)
    timer("movies/text-embeddings", t0)

    tgp = resolve_path(cfg["data_root"], cfg) / "movielens-ml-latest-small" / "tags.csv"
    apps = read_tag_applications(tgp, set(ids.tolist())) if tgp.exists() else None
    return MovieData(mc, cat, ids, {x: i for i, x in enumerate(ids.tolist())}, texts, T, O, has_ov, fm, users, folds,
                     usplit, halves, apps, cache)


def _als_search(cfg: Mapping[str, Any], d: MovieData, tune: list[int], timer: Timer
                ) -> tuple[B.ALSParams, list[dict[str, Any]]]:
    """ALS random search on the validation users of the tuning folds, scored by the sum of
    cosine kNN, item-factor-mean dot and implicit's recommend nDCG."""
    mc, seed, k = cfg["movies"], int(cfg["seed"]), int(cfg["k"])
    t0 = time.perf_counter()
    trials, best = [], None
    for p in param_grid_draws(mc["als"], int(mc["als"]["n_trials"]), seed):
        parts = []
        for f in tune:
            uq = d.fold_queries(f)
            als = B.ALSModel(d.cf_data(train_interactions(d.inter, uq.users)), d.ids, p, random_state=seed)
            parts.append(user_recommendation(uq, {"CF": als.item_factors, "CFdot": als.item_factors}, k=k,
                                             rankers={"ALS": lambda qi, ex, a=als: a.recommend(ex, k)},
                                             dot=["CFdot"]))
        r = concat_results(parts)
        v, v2, v3 = val_mean(r, "CF"), val_mean(r, "ALS"), val_mean(r, "CFdot")
        trials.append({**p.__dict__, "val_ndcg_cosine_knn": v, "val_ndcg_dot_mean": v3, "val_ndcg_recommend": v2})
        log.info("movies ALS %s val nDCG cosine %.4f dot %.4f recommend %.4f", p, v, v3, v2)
        if best is None or v + v2 + v3 > best[0]:
            best = (v + v2 + v3, p)
    timer("movies/als-search", t0)
    return best[1], trials


def _ease_search(cfg: Mapping[str, Any], d: MovieData, tune: list[int], timer: Timer
                 ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """EASE's lambda chosen on the validation users of the tuning folds: (params, trials)."""
    ec, k = d.mc["ease"], int(cfg["k"])
    t0 = time.perf_counter()
    params = {kk: v for kk, v in ec.items() if kk != "regularization"}
    trials, best = [], None
    for lam in ec["regularization"]:
        parts = []
        for f in tune:
            uq = d.fold_queries(f)
            m = B.fit_ease(train_interactions(d.inter, uq.users), d.ids, regularization=float(lam), **params)
            parts.append(user_recommendation(uq, {}, k=k, rankers={"E": lambda qi, ex, m=m: B.ease_ranking(m, ex, k, ex)}))
        v = val_mean(concat_results(parts), "E")
        trials.append({"regularization": float(lam), **params, "val_ndcg": v})
        log.info("movies EASE lambda %s val nDCG %.4f", lam, v)
        if best is None or v > best[0]:
            best = (v, {**params, "regularization": float(lam)})
    timer("movies/ease-search", t0)
    return best[1], trials


def _folds(cfg: Mapping[str, Any], d: MovieData, als_params: B.ALSParams, ease_params: Mapping[str, Any],
           pb: ProductBuilder, base: Any, timer: Timer) -> tuple[TaskResult, list[dict[str, Any]]]:
    """Every system on the held-out users of each fold, models (and the product's space)
    fitted on the other users."""
    seed, k, fm = int(cfg["seed"]), int(cfg["k"]), d.fm
    t0 = time.perf_counter()
    parts, fold_info = [], []
    for f in range(int(d.mc["n_folds"])):
        tf = time.perf_counter()
        uq = d.fold_queries(f)
        train = train_interactions(d.inter, uq.users)
        als = B.ALSModel(d.cf_data(train), d.ids, als_params, random_state=seed)
        ease = B.fit_ease(train, d.ids, **ease_params)
        fold_cat = d.fold_catalog(uq.users)             # without the held-out users' own tags
        T = d.fold_text(fold_cat)
        space = pb.build(f"fold{f}", cold_catalog(pb.catalog(fold_cat), [], users=uq.users))
        C = als.item_factors
        mods = {"cf": C, "text": T[fm]}
        emb = {"MULTI TEMPLATE+OVERVIEW": vectors_aligned(space, d.ids)}
        for m in cfg["text_models"]:
            emb[f"TEXT {m}"] = T[m]
        emb[f"TEXT {fm} OVERVIEW"] = d.O
        emb["CF (ALS, cosine kNN)"] = C
        emb["CF (ALS item-factor mean, dot)"] = C
        emb["CONCAT CF+TEXT"] = B.concat_modalities(mods)
        emb["PCA-200 CF+TEXT"] = B.reduce_concat(mods, method="pca", random_state=seed)
        emb["RP-200 CF+TEXT"] = B.reduce_concat(mods, method="rp", random_state=seed)
        pop = d.pop_of(train)
        rankers = {"MULTI talkrec (Space.recommend)": recommend_ranker(space, d.ids, k),
                   "EASE": lambda qi, ex, m=ease: B.ease_ranking(m, ex, k, ex),
                   "ALS recommend (recalculate_user)": lambda qi, ex, a=als: a.recommend(ex, k),
                   "Popularity": lambda qi, ex, p=pop: B.popularity_ranking(p, k, len(qi), ex)}
        parts.append(user_recommendation(uq, emb, k=k, rankers=rankers, dot=["CF (ALS item-factor mean, dot)"]))
        space.close()
        fold_info.append({"fold": f, "held_out_users": len(uq.users), "train_users": int(train["user_id"].nunique()),
                          "items_with_cf": int(B.present(C).sum()), "build": pb.builds[f"fold{f}"],
                          "seconds": round(time.perf_counter() - tf, 1)})
        log.info("movies fold %d: %d users, %.1fs", f, len(uq.users), time.perf_counter() - tf)
    rec = concat_results(parts)
    rec.notes["TEXT %s OVERVIEW" % fm] = f"TMDB overview+keywords, {int(d.has_ov.sum())} of {len(d.ids)} movies have one"
    timer("movies/folds", t0)
    return rec, fold_info
