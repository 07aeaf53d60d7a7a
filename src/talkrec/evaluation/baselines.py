"""Baselines of papers 001 and 004, and the shared kNN / ranking helpers.

* :func:`knn` - exact cosine top-k over an item matrix (NaN rows are not retrievable).
* :class:`BM25` - lexical search over item texts (bm25s).
* :func:`l2n`, :func:`impute_global_mean`, :func:`concat_modalities` - the plain
  concatenation of L2-normalized modality vectors.
* :func:`reduce_concat` - PCA-200 / Gaussian random projection of the concatenated
  modalities, fitted on the items that have every modality, with the global mean for a
  missing modality at prediction time (paper 004 section 2.5).
* :func:`popularity_ranking` - most popular first.
* :func:`fit_als` / :class:`ALSModel` - implicit's ALS (confidence 1 + alpha*log1p(w)),
  its item factors, and its own ``recommend(recalculate_user=True)``.
* :func:`rrf` - reciprocal rank fusion (the hybrid search system).
* :func:`fit_ease` / :func:`ease_ranking` - EASE (Steck 2019, :class:`talkrec.encoders.ease.EASE`),
  its ``x B`` rankings.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..index.lexical import LexicalIndex
from ..ranking import rrf_scores, top_k

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- kNN
def l2n(X: np.ndarray) -> np.ndarray:
    """Rows divided by their L2 norm (NaN rows stay NaN, zero rows stay zero)."""
    X = np.asarray(X, dtype=np.float32)
    n = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(n > 1e-12, n, 1.0)


def knn(Q: np.ndarray, E: np.ndarray, k: int, *, exclude: Sequence[Sequence[int]] | None = None,
        candidates: np.ndarray | None = None, chunk: int = 1024, dot: bool = False) -> np.ndarray:
    """Top-``k`` item indices by cosine similarity (``dot=True``: inner product with the
    un-normalized item rows, as ALS scores), best first, for each query row.

    ``E`` rows with NaN (or zero) are never returned; NaN query rows return ``-1``s.
    ``exclude[q]`` lists item indices removed for query ``q`` (the query item itself,
    the query half of a user). ``candidates`` is a boolean mask restricting the items.
    Ties are broken by item index (stable).
    """
    E = np.asarray(E, dtype=np.float32)
    ok = ~np.isnan(E).any(axis=1) & (np.abs(np.nan_to_num(E)).sum(axis=1) > 0)
    if candidates is not None:
        ok &= np.asarray(candidates, dtype=bool)
    En = np.nan_to_num(E) if dot else l2n(np.nan_to_num(E))
    Qn = l2n(np.asarray(Q, dtype=np.float32))
    out = np.full((len(Qn), k), -1, dtype=np.int64)
    for s in range(0, len(Qn), chunk):
        q = Qn[s:s + chunk]
        bad = np.isnan(q).any(axis=1) | (np.abs(np.nan_to_num(q)).sum(axis=1) == 0)
        S = np.nan_to_num(q) @ En.T
        top = top_k(S, k, exclude=None if exclude is None else exclude[s:s + len(q)], allowed=ok)
        top[bad] = -1
        out[s:s + len(q)] = top
    return out


def rrf(rankings: Sequence[np.ndarray], k: int, *, c: float = 60.0, weights: Sequence[float] | None = None
        ) -> np.ndarray:
    r"""Reciprocal rank fusion of several rankings per query (Cormack et al. 2009).

    .. math:: s(i) = \sum_r \frac{w_r}{c + \mathrm{rank}_r(i)}

    ``rankings`` are (n_queries, depth) index arrays (``-1`` padding ignored). Returns the
    top-``k`` indices by fused score (ties by index).
    This is the product's fusion (:func:`talkrec.ranking.rrf_scores`) applied per query, so the
    evaluated hybrid is the one ``Space.search(mode="hybrid")`` serves.
    """
    n = rankings[0].shape[0]
    n_items = 1 + max((int(R.max()) for R in rankings if R.size), default=0)
    out = np.full((n, k), -1, dtype=np.int64)
    for q in range(n):
        s = rrf_scores([R[q][R[q] >= 0] for R in rankings], n_items, c=c, weights=weights)
        best = top_k(s, k, allowed=s > 0)  # items in none of the lists are not candidates
        out[q, :len(best)] = best
    return out


# --------------------------------------------------------------------------- BM25
#: BM25 over item texts is the product's lexical index (bm25s, English stopwords, stems where the
#: space's ``search.bm25_stemmer`` says), so the baseline is exactly the list that hybrid search fuses.
BM25 = LexicalIndex


# --------------------------------------------------------------------------- concat / PCA / RP
def present(X: np.ndarray) -> np.ndarray:
    return ~np.isnan(np.asarray(X)).any(axis=1)


def standardize(X: np.ndarray) -> np.ndarray:
    """Z-score columns over the present rows (for raw descriptors such as Spotify's)."""
    X = np.asarray(X, dtype=np.float32)
    ok = present(X)
    mu, sd = X[ok].mean(axis=0), X[ok].std(axis=0)
    return (X - mu) / np.where(sd > 1e-6, sd, 1.0)


def impute_global_mean(X: np.ndarray) -> np.ndarray:
    """NaN rows replaced by the mean of the present rows (paper 004 section 2.5)."""
    X = np.array(X, dtype=np.float32)
    ok = present(X)
    X[~ok] = X[ok].mean(axis=0) if ok.any() else 0.0
    return X


def concat_modalities(mods: Mapping[str, np.ndarray], *, missing: str = "zero") -> np.ndarray:
    """Concatenate L2-normalized modality blocks; a missing block is zeros (``missing="zero"``,
    so it adds nothing to a cosine) or the block's global mean (``"mean"``). Rows missing
    every modality are NaN."""
    blocks = []
    anyp = np.zeros(len(next(iter(mods.values()))), dtype=bool)
    for X in mods.values():
        ok = present(X)
        anyp |= ok
        B = l2n(np.nan_to_num(X))
        if missing == "mean":
            B[~ok] = B[ok].mean(axis=0)
        else:
            B[~ok] = 0.0
        blocks.append(B)
    out = np.concatenate(blocks, axis=1).astype(np.float32)
    out[~anyp] = np.nan
    return out


def reduce_concat(mods: Mapping[str, np.ndarray], *, method: str, n_components: int = 200,
                  random_state: int = 0) -> np.ndarray:
    """PCA (``method="pca"``) or Gaussian random projection (``"rp"``) of the concatenated,
    L2-normalized modalities, fitted on the items that have every modality; at prediction
    a missing modality is the global mean of that modality (004 section 2.5)."""
    from sklearn.decomposition import PCA
    from sklearn.random_projection import GaussianRandomProjection

    full = np.ones(len(next(iter(mods.values()))), dtype=bool)
    for X in mods.values():
        full &= present(X)
    if full.sum() < 2:
        raise ValueError("fewer than two items have every modality")
    Xc = np.concatenate([impute_global_mean(l2n(X)) for X in mods.values()], axis=1)
    nc = min(n_components, Xc.shape[1], int(full.sum()))
    if method == "pca":
        r = PCA(n_components=nc, random_state=random_state)
    elif method == "rp":
        r = GaussianRandomProjection(n_components=nc, random_state=random_state)
    else:
        raise ValueError(f"method must be 'pca' or 'rp', got {method!r}")
    r.fit(Xc[full])
    return l2n(r.transform(Xc).astype(np.float32))


def popularity_ranking(popularity: np.ndarray, k: int, n_queries: int,
                       exclude: Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """The same most-popular list for every query (minus its excluded items); ties by index."""
    n_ex = max((len(e) for e in exclude), default=0) if exclude is not None else 0
    order = top_k(np.asarray(popularity, dtype=np.float64), k + n_ex)
    out = np.full((n_queries, k), -1, dtype=np.int64)
    for q in range(n_queries):
        ex = set(exclude[q]) if exclude is not None else set()
        row = [i for i in order if i not in ex][:k]
        out[q, :len(row)] = row
    return out


# --------------------------------------------------------------------------- ALS
@dataclass
class ALSParams:
    factors: int = 64
    regularization: float = 0.05
    alpha: float = 1.0
    iterations: int = 15


class ALSModel:
    """implicit ALS on (user, item, weight) with confidence ``1 + alpha * log1p(weight)``.

    ``item_factors`` is aligned to ``item_ids`` (NaN rows for items without interactions).
    Single-threaded and seeded, hence reproducible.
    """

    def __init__(self, interactions: pd.DataFrame, item_ids: Sequence[str], params: ALSParams,
                 random_state: int = 0) -> None:
        from implicit.cpu.als import AlternatingLeastSquares

        self.item_ids = np.asarray(item_ids).astype(str)
        self.item_index = {k: i for i, k in enumerate(self.item_ids.tolist())}
        df = interactions[interactions["item_id"].astype(str).isin(self.item_index)]
        self.users = np.asarray(sorted(df["user_id"].astype(str).unique()))
        uidx = {u: i for i, u in enumerate(self.users.tolist())}
        rows = df["user_id"].astype(str).map(uidx).to_numpy()
        cols = df["item_id"].astype(str).map(self.item_index).to_numpy()
        conf = 1.0 + params.alpha * np.log1p(df["weight"].to_numpy(dtype=np.float64))
        self.params = params
        self.ui = sp.csr_matrix((conf.astype(np.float32), (rows, cols)), shape=(len(self.users), len(self.item_ids)))
        self.model = AlternatingLeastSquares(factors=params.factors, regularization=params.regularization,
                                             alpha=1.0, iterations=params.iterations, random_state=random_state,
                                             num_threads=1, calculate_training_loss=False)
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, "blas"):  # implicit's advice; also makes runs reproducible
            self.model.fit(self.ui, show_progress=False)
        F = np.asarray(self.model.item_factors, dtype=np.float32)
        has = np.asarray(self.ui.getnnz(axis=0) > 0).ravel()
        self.item_factors = F.copy()
        self.item_factors[~has] = np.nan

    def recommend(self, query_items: Sequence[Sequence[int]], k: int,
                  weights: Sequence[Sequence[float]] | None = None) -> np.ndarray:
        """implicit's own ``recommend(recalculate_user=True)`` for new users given by item
        indices (confidence from ``weights``, default 1 + alpha*log1p(1))."""
        out = np.full((len(query_items), k), -1, dtype=np.int64)
        for q, items in enumerate(query_items):
            items = np.asarray(items, dtype=np.int64)
            if not len(items):
                continue
            w = (np.ones(len(items)) if weights is None else np.asarray(weights[q], dtype=np.float64))
            conf = (1.0 + self.params.alpha * np.log1p(w)).astype(np.float32)
            row = sp.csr_matrix((conf, (np.zeros(len(items), dtype=np.int64), items)), shape=(1, len(self.item_ids)))
            ids, _ = self.model.recommend(0, row, N=k, recalculate_user=True, filter_already_liked_items=True)
            ids = np.asarray(ids).ravel()[:k]
            out[q, :len(ids)] = ids
        return out


# --------------------------------------------------------------------------- EASE
def fit_ease(interactions: pd.DataFrame, item_ids: Sequence[str], **params: object) -> object:
    """:class:`~talkrec.encoders.ease.EASE` fitted on ``interactions`` in the ``item_ids`` order."""
    from ..encoders.ease import EASE

    return EASE(**params).fit(interactions, item_ids)  # type: ignore[arg-type]


def ease_ranking(model: object, histories: Sequence[Sequence[int]], k: int,
                 exclude: Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """Top-``k`` items by EASE's ``x B`` (from the model's kept lists) for each history of item
    rows (an item-to-item query: its own row); items no list reaches are not ranked."""
    out = np.full((len(histories), k), -1, dtype=np.int64)
    for q, h in enumerate(histories):
        if not len(h):
            continue
        s = model.score_rows(np.asarray(h, dtype=np.int64))  # type: ignore[attr-defined]
        s[s == 0] = -np.inf
        top = top_k(s, k, exclude=list(exclude[q]) if exclude is not None else None)
        out[q, :len(top)] = top
    return out
