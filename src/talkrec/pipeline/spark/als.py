"""The CF modality on Spark MLlib: implicit ALS with the embedded build's confidences and the
same random search on validation users as :func:`talkrec.encoders.cf.tune_als`.

Confidence. The embedded build factorizes confidences ``c = 1 + alpha*log1p(w)`` (implicit,
duplicates of a (user, item) pair summed). Spark's ``ALS(implicitPrefs=True)`` turns a
rating ``r`` into ``c = 1 + alpha*|r|`` (preference ``r > 0``). So each pair's rating is
``r = (n - 1)/alpha + sum(log1p(w))`` over its ``n`` interactions: ``r = log1p(w)`` for a
single one, and the same summed confidence for duplicates. Ratings are floored at 1e-6 so
that an interaction implicit counts as a positive of confidence 1 (``w = 0``) stays a
positive. The ``linear`` scheme uses ``w`` for ``log1p(w)``.

Regularization. Spark scales ``regParam`` by each user's (item's) number of interactions;
implicit does not. The same value therefore means a stronger penalty on Spark, and the
search's regularization choices (:data:`SPARK_SEARCH_SPACE`) are smaller.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ...encoders.cf import SEARCH_SPACE, draw_params, heldout_ndcg, validation_split
from ...errors import InputError

log = logging.getLogger(__name__)

__all__ = ["SPARK_SEARCH_SPACE", "cf_stage", "factor_matrix", "fit_als", "keyed_factors", "pair_frame", "rating_frame", "ratings",
           "tune_als_spark", "user_index"]

#: :data:`talkrec.encoders.cf.SEARCH_SPACE` with Spark-sized regularization (see module doc).
SPARK_SEARCH_SPACE: dict[str, list[Any]] = {**SEARCH_SPACE, "regularization": [0.001, 0.005, 0.01, 0.05, 0.1]}
_FLOOR = 1e-6
_SCORE_BLOCK = 512


def user_index(interactions: pd.DataFrame, item_ids: np.ndarray) -> np.ndarray:
    """The ids (str, sorted) of the users with an interaction on one of ``item_ids``: a
    user's ALS id is its position (as in ALSEncoder)."""
    on = interactions["item_id"].astype(str).isin(set(np.asarray(item_ids).astype(str).tolist()))
    return np.unique(interactions.loc[on, "user_id"].to_numpy(dtype=str))


def pair_frame(interactions: Any, *, scheme: str = "log") -> Any:
    """``(user int, item int, n long, s double)`` per (user, item) pair of a Spark frame of
    ``(user int, item int, weight)``: the count of its interactions and the sum of
    ``log1p(max(w, 0))`` (``w`` for ``scheme="linear"``), from which :func:`ratings` makes
    the rating of any ``alpha``."""
    from pyspark.sql import functions as F

    if scheme not in ("log", "linear"):
        raise InputError(f"confidence scheme must be 'log' or 'linear', got {scheme!r}", field="confidence_scheme")
    w = F.col("weight").cast("double")
    f = F.log1p(F.greatest(w, F.lit(0.0))) if scheme == "log" else w
    return interactions.groupBy("user", "item").agg(F.count("*").alias("n"), F.sum(f).alias("s"))


def rating_frame(spark: Any, interactions: pd.DataFrame, item_ids: np.ndarray, users: np.ndarray, *,
                 min_weight: float = 0.0, scheme: str = "log") -> Any:
    """:func:`pair_frame` of a pandas ``(user_id, item_id, weight)`` table: users numbered by
    their position in ``users`` (:func:`user_index`), items by their position in
    ``item_ids``; other items and interactions below ``min_weight`` are dropped."""
    for c in ("user_id", "item_id", "weight"):
        if c not in interactions.columns:
            raise InputError(f"interactions need a '{c}' column; got {list(interactions.columns)}", field=c)
    df = interactions[interactions["weight"] >= min_weight] if min_weight else interactions
    col = pd.Series(np.arange(len(item_ids)), index=item_ids).reindex(df["item_id"].astype(str).to_numpy()).to_numpy()
    keep = ~np.isnan(col)
    pdf = pd.DataFrame({"user": np.searchsorted(users, df["user_id"].to_numpy(dtype=str)[keep]).astype(np.int32),
                        "item": col[keep].astype(np.int32), "weight": df["weight"].to_numpy(dtype=np.float64)[keep]})
    if pdf.empty:
        raise InputError("no interactions left to factorize (check min_weight and item ids)", field="interactions")
    return pair_frame(spark.createDataFrame(pdf), scheme=scheme)


def ratings(pairs: Any, alpha: float) -> Any:
    """``(user, item, rating)`` whose Spark confidence ``1 + alpha*rating`` is the embedded
    build's summed confidence of the pair: ``rating = max((n - 1)/alpha + s, 1e-6)``."""
    from pyspark.sql import functions as F

    return pairs.select("user", "item", F.greatest((F.col("n") - 1) / float(alpha) + F.col("s"),
                                                   F.lit(_FLOOR)).cast("float").alias("rating"))


def fit_als(pairs: Any, params: Mapping[str, Any], *, seed: int) -> Any:
    """Spark's ALS model on :func:`rating_frame` pairs with talkrec's parameter names
    (``factors, regularization, alpha, iterations``)."""
    from pyspark.ml.recommendation import ALS

    alpha = float(params.get("alpha", 2.0))
    als = ALS(rank=int(params.get("factors", 64)), regParam=float(params.get("regularization", 0.01)), alpha=alpha,
              maxIter=int(params.get("iterations", 15)), implicitPrefs=True, seed=int(seed), userCol="user",
              itemCol="item", ratingCol="rating", coldStartStrategy="drop")
    return als.fit(ratings(pairs, alpha))


def factor_matrix(factors: Any, n: int, rank: int) -> np.ndarray:
    """ALS ``(id, features)`` factors as an ``(n, rank)`` matrix; NaN rows for absent ids."""
    pdf = factors.toPandas()
    out = np.full((n, rank), np.nan, dtype=np.float32)
    if len(pdf):
        out[pdf["id"].to_numpy(dtype=np.int64)] = np.stack(pdf["features"].to_numpy()).astype(np.float32)
    return out


def tune_als_spark(spark: Any, interactions: pd.DataFrame, item_ids: np.ndarray, *, n_trials: int = 8,
                   validation_fraction: float = 0.2, k: int = 50, min_weight: float = 0.0, seed: int = 0,
                   space: Mapping[str, Sequence[Any]] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """:func:`talkrec.encoders.cf.tune_als` on Spark: the same validation users and hidden
    interactions (:func:`~talkrec.encoders.cf.validation_split` from the same seed), the same
    parameter draws, the same score (nDCG@k of the hidden items, seen items excluded,
    :func:`~talkrec.encoders.cf.heldout_ndcg`). Returns ``(best_params, trials)``."""
    rng = np.random.default_rng(seed)
    ids = np.asarray(item_ids).astype(str)
    train, hidden = validation_split(interactions, rng, validation_fraction=validation_fraction,
                                     min_weight=min_weight)
    users = user_index(train, ids)
    pairs = rating_frame(spark, train, ids, users, min_weight=min_weight).cache()
    held = _held_out(train, hidden, ids, users, min_weight)
    trials: list[dict[str, Any]] = []
    best: tuple[float, dict[str, Any]] = (-1.0, {})
    for t in range(n_trials):
        params = draw_params(dict(space or SPARK_SEARCH_SPACE), rng)
        model = fit_als(pairs, params, seed=seed)
        score = _score(model, held, len(ids), int(params["factors"]), k)
        trials.append({**params, f"ndcg@{k}": score})
        log.info("spark ALS trial %d %s -> nDCG@%d %.4f", t, params, k, score)
        if score > best[0]:
            best = (score, params)
    pairs.unpersist()
    return best[1], trials


def _held_out(train: pd.DataFrame, hidden: pd.DataFrame, ids: np.ndarray, users: np.ndarray,
              min_weight: float) -> pd.DataFrame:
    """Per validation user still in ``train``: its ALS id, seen item positions (kept
    training interactions) and hidden item positions."""
    pos = pd.Series(np.arange(len(ids)), index=ids)
    kept = train[train["weight"] >= min_weight] if min_weight else train
    rows = []
    for u, grp in hidden.groupby("user_id"):
        j = int(np.searchsorted(users, u))
        if j >= len(users) or users[j] != u:
            continue          # every interaction of this user was hidden: ALS has no factors for it
        seen = pos.reindex(kept.loc[kept["user_id"] == u, "item_id"].astype(str).to_numpy()).dropna()
        truth = pos.reindex(grp["item_id"].astype(str).to_numpy()).dropna()
        rows.append({"user": j, "seen": seen.to_numpy(dtype=np.int64), "truth": truth.to_numpy(dtype=np.int64)})
    return pd.DataFrame(rows, columns=["user", "seen", "truth"])


def _score(model: Any, held: pd.DataFrame, n_items: int, rank: int, k: int) -> float:
    """Mean held-out nDCG@k of ``model`` over the users of ``held`` (scored in blocks)."""
    if held.empty:
        return 0.0
    item_f = factor_matrix(model.itemFactors, n_items, rank)
    absent = np.isnan(item_f).any(axis=1)
    item_f = np.nan_to_num(item_f)
    user_f = factor_matrix(model.userFactors.where(model.userFactors["id"].isin(held["user"].tolist())),
                           int(held["user"].max()) + 1, rank)
    total, count = 0.0, 0
    for s in range(0, len(held), _SCORE_BLOCK):
        block = held.iloc[s:s + _SCORE_BLOCK]
        U = user_f[block["user"].to_numpy()]
        ok = ~np.isnan(U).any(axis=1)
        scores = np.nan_to_num(U[ok]) @ item_f.T
        scores[:, absent] = -np.inf
        for r, seen in enumerate(block["seen"].to_numpy()[ok]):
            scores[r, seen] = -np.inf
        truth = list(block["truth"].to_numpy()[ok])
        n = sum(1 for t in truth if len(t))
        total += heldout_ndcg(scores, truth, k) * n
        count += n
    return total / count if count else 0.0


def cf_stage(spark: Any, cfg: Mapping[str, Any], catalog: Any, data_key: str, cache: Any, timer: Any, seed: int,
             root: str) -> tuple[Any, Any]:
    """The CF stage of ``engine: spark``: tuned (``cf.tune``, cached) and fitted on Spark,
    item and user factors written as Parquet under ``root``. Returns ``(ALSEncoder serving
    the factors, item table (item_id, cf))``, or ``(None, None)`` as the embedded cf stage."""
    from ...encoders.cf import ALSEncoder
    from ..cache import content_hash
    from .frames import matrix_of, parquet_stage, uri

    ccfg = cfg["cf"]
    if catalog.interactions is None or not ccfg.get("enabled", True):
        return None, None
    ids = catalog.item_ids
    with timer.stage("cf") as info:
        min_w = float(ccfg.get("min_weight", 0.0))
        params: dict[str, Any] = {"factors": 64, "regularization": 0.01, "alpha": 2.0, "iterations": 15,
                                  **ccfg.get("params", {})}
        if ccfg.get("tune"):
            best = cache.json("cf-tune-spark", content_hash(data_key, ccfg, seed),
                              lambda: tune_als_spark(spark, catalog.interactions, ids, n_trials=int(ccfg.get("n_trials", 8)),
                                                     min_weight=min_w, seed=seed, space=ccfg.get("space"))[0], info)
            params.update(best)
            info["tuned"] = best
        inter = catalog.interactions
        kept = inter[inter["weight"] >= min_w] if min_w else inter
        users = user_index(kept, ids)
        key = content_hash(data_key, params, min_w, seed)
        fitted: list[Any] = []

        def model() -> Any:
            if not fitted:
                pairs = rating_frame(spark, kept, ids, users, scheme=params.get("confidence_scheme", "log"))
                fitted.append(fit_als(pairs, params, seed=seed))
            return fitted[0]

        items = parquet_stage(spark, uri(root, f"cf-items-{key}"), lambda: keyed_factors(
            spark, model().itemFactors, ids, "item_id"), info)
        users_t = parquet_stage(spark, uri(root, f"cf-users-{key}"), lambda: keyed_factors(
            spark, model().userFactors, users, "user_id"), info)
        rank = int(params["factors"])
        user_f = np.nan_to_num(matrix_of(users_t, "cf", users, rank, key="user_id"))   # every user has factors
        enc = ALSEncoder.from_factors(ids, matrix_of(items, "cf", ids, rank), users, user_f,
                                      min_weight=min_w, random_state=seed, **params)
        info["params"] = params
        info["items_with_cf"] = int((~np.isnan(enc.item_factors_).any(axis=1)).sum())
    return enc, items


def keyed_factors(spark: Any, factors: Any, names: np.ndarray, column: str) -> Any:
    """ALS ``(id, features)`` factors keyed by the string ids ``names[id]``: ``(column, cf)``."""
    lookup = spark.createDataFrame(pd.DataFrame({"id": np.arange(len(names), dtype=np.int32),
                                                 column: np.asarray(names).astype(str)}))
    return factors.join(lookup, "id").select(column, factors["features"].alias("cf"))

